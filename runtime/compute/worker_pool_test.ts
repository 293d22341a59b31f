import assert from "node:assert/strict";
import { WorkerPool } from "./worker_pool.ts";

Deno.test("WorkerPool.run() bounds concurrency and the queue", async () => {
  const pool = new WorkerPool({ concurrency: 2, maxQueued: 1 });
  let peak = 0;
  let running = 0;
  const gates: (() => void)[] = [];
  const task = () =>
    pool.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
      return running;
    });
  const runs = [task(), task(), task()];
  await assert.rejects(task(), (e: Error) => e.name === "PoolFullError");
  assert.equal(pool.running, 2);
  assert.equal(pool.queued, 1);
  while (gates.length > 0 || pool.running > 0) {
    gates.shift()?.();
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(runs);
  assert.equal(peak, 2);
});

Deno.test("WorkerPool.run() aborts a task at its deadline", async () => {
  const pool = new WorkerPool({ concurrency: 1 });
  let seen: AbortSignal | undefined;
  await assert.rejects(
    pool.run((signal) => {
      seen = signal;
      return new Promise(() => {});
    }, { timeoutMs: 10 }),
    (e: Error) => e.name === "TimeoutError",
  );
  assert.equal(seen?.aborted, true);
  assert.equal(pool.running, 0, "the slot is free again");
});

Deno.test("WorkerPool.run() drops a queued task when its caller aborts", async () => {
  const pool = new WorkerPool({ concurrency: 1 });
  let release = () => {};
  const first = pool.run(() => new Promise<void>((r) => (release = r)));
  const controller = new AbortController();
  const second = pool.run(() => Promise.resolve(1), { signal: controller.signal });
  controller.abort(new Error("Not needed"));
  await assert.rejects(second, /Not needed/);
  assert.equal(pool.queued, 0);
  release();
  await first;
});

Deno.test("WorkerPool.run() measures a deadline on its injected clock", async () => {
  const { SimulatedClock } = await import("xstate");
  const clock = new SimulatedClock();
  const pool = new WorkerPool({ concurrency: 1, clock });
  let seen: AbortSignal | undefined;
  const run = pool.run((signal) => {
    seen = signal;
    return new Promise(() => {});
  }, { timeoutMs: 10 });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(seen?.aborted, false, "30 real ms are not 10 virtual ms");
  clock.increment(10);
  await assert.rejects(run, (e: Error) => e.name === "TimeoutError");
  assert.equal(pool.running, 0);
});

Deno.test("WorkerPool.run() queues a pastLimit task beyond maxQueued (a verifier's re-run)", async () => {
  const pool = new WorkerPool({ concurrency: 1, maxQueued: 1 });
  const gates: (() => void)[] = [];
  const task = (options = {}) =>
    pool.run(() => new Promise<number>((r) => gates.push(() => r(1))), options);
  const runs = [task(), task()];
  await assert.rejects(task(), (e: Error) => e.name === "PoolFullError");
  const past = task({ pastLimit: true });
  assert.equal(pool.queued, 2, "queued past the limit");
  while (gates.length > 0 || pool.running > 0) {
    gates.shift()?.();
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.deepEqual(await Promise.all([...runs, past]), [1, 1, 1]);
});

Deno.test("WorkerPool.close() aborts its running tasks' signals and refuses the queued ones, with its reason", async () => {
  const pool = new WorkerPool({ concurrency: 1 });
  let told: unknown;
  const running = pool.run(
    (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => {
          told = signal.reason;
          reject(new Error("noticed"));
        })
      ),
    { timeoutMs: 60_000 },
  );
  const queued = pool.run(() => Promise.resolve("never"));
  pool.close("shutting down");
  await assert.rejects(running, (e) => e === "shutting down");
  await assert.rejects(queued, (e) => e === "shutting down");
  assert.equal(told, "shutting down", "the running task was told through its signal");
  await assert.rejects(pool.run(() => Promise.resolve(1)), (e) => e === "shutting down");
});

Deno.test("a pool's task signal stops listening to the caller's signal once the task is over", async () => {
  const pool = new WorkerPool({ concurrency: 1 });
  const caller = new AbortController();
  let seen: AbortSignal | undefined;
  await pool.run((signal) => {
    seen = signal;
    return Promise.resolve();
  }, { signal: caller.signal });
  caller.abort("after the task");
  assert.equal(seen?.aborted, false, "the task was over: nothing is linked to it any more");
  // While a task runs, the caller's abort reaches it.
  const running = pool.run(
    (signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
    {
      signal: (() => {
        const c = new AbortController();
        setTimeout(() => c.abort("stop"), 10);
        return c.signal;
      })(),
    },
  );
  await assert.rejects(running, (e) => e === "stop");
  pool.close();
});

Deno.test("WorkerPool.run() waits out a deadline past the host timer's 2^31 - 1 ms instead of firing it at once", async () => {
  const pool = new WorkerPool({ concurrency: 1 });
  const aborted = await pool.run(
    (signal) => new Promise<boolean>((resolve) => setTimeout(() => resolve(signal.aborted), 30)),
    { timeoutMs: 3e9 },
  );
  assert.equal(aborted, false);
  pool.close();
});
