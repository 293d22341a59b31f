import assert from "node:assert/strict";
import { type Clock, SimulatedClock, systemClock, TimerHeap } from "./clock.ts";

/** A host clock whose one timer fires only when the test says so (`tick`). */
class ManualHost implements Clock {
  time = 0;
  armed = 0;
  cleared = 0;
  waits: number[] = [];
  #pending = new Map<number, () => void>();
  #next = 0;
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.armed++;
    this.waits.push(ms);
    const id = this.#next++;
    this.#pending.set(id, fn);
    return id;
  }
  clearTimeout(id: unknown): void {
    if (this.#pending.delete(id as number)) this.cleared++;
  }
  get pending(): number {
    return this.#pending.size;
  }
  /** Moves time to `time` and fires the pending host timers. */
  tick(time = this.time): void {
    this.time = time;
    const fns = [...this.#pending.values()];
    this.#pending.clear();
    for (const fn of fns) fn();
  }
}

Deno.test("TimerHeap fires by due time, then in arming order, and never a cancelled timer", () => {
  const host = new SimulatedClock();
  const heap = new TimerHeap(host);
  const fired: string[] = [];
  heap.setTimeout(() => fired.push("c30"), 30);
  heap.setTimeout(() => fired.push("a10"), 10);
  const cancelled = heap.setTimeout(() => fired.push("x10"), 10);
  heap.setTimeout(() => fired.push("b10"), 10);
  heap.setTimeout(() => fired.push("d20"), 20);
  heap.clearTimeout(cancelled);
  heap.clearTimeout(cancelled); // twice: nothing
  heap.clearTimeout(undefined);
  assert.deepEqual(heap.size, 4);
  host.increment(15);
  assert.deepEqual(fired, ["a10", "b10"]);
  host.increment(15);
  assert.deepEqual(fired, ["a10", "b10", "d20", "c30"]);
  assert.deepEqual(heap.size, 0);
});

Deno.test("TimerHeap keeps one host timer, for the earliest, and none once nothing waits", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  const timers = Array.from({ length: 100 }, (_, i) => heap.setTimeout(() => {}, 1_000 + i));
  assert.deepEqual(host.armed, 1);
  assert.deepEqual(host.pending, 1);
  // An earlier one moves the host timer; cancelling it leaves the host timer where it is.
  const early = heap.setTimeout(() => {}, 10);
  assert.deepEqual([host.armed, host.cleared, host.pending], [2, 1, 1]);
  heap.clearTimeout(early);
  assert.deepEqual(host.pending, 1);
  for (const t of timers) heap.clearTimeout(t);
  assert.deepEqual(heap.size, 0);
  assert.deepEqual(host.pending, 0);
});

Deno.test("TimerHeap arms the host again for what remains after a firing", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  const fired: number[] = [];
  heap.setTimeout(() => fired.push(10), 10);
  heap.setTimeout(() => fired.push(50), 50);
  // The host timer fires early (by its clock): nothing is due, and it is armed again.
  host.tick(5);
  assert.deepEqual(fired, []);
  assert.deepEqual(host.waits.at(-1), 5);
  host.tick(10);
  assert.deepEqual(fired, [10]);
  assert.deepEqual(host.waits.at(-1), 40);
  host.tick(60);
  assert.deepEqual(fired, [10, 50]);
  assert.deepEqual(host.pending, 0);
});

Deno.test("TimerHeap runs a timer armed during a firing at the next host timer, even at 0 ms", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  let runs = 0;
  const again = () => {
    runs++;
    if (runs < 5) heap.setTimeout(again, 0);
  };
  heap.setTimeout(again, 0);
  host.tick();
  assert.deepEqual(runs, 1);
  host.tick();
  assert.deepEqual(runs, 2);
});

Deno.test("TimerHeap runs every due timer when one throws, then throws the first error", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  const fired: string[] = [];
  heap.setTimeout(() => {
    throw new Error("first");
  }, 1);
  heap.setTimeout(() => fired.push("second"), 1);
  heap.setTimeout(() => {
    throw new Error("third");
  }, 1);
  heap.setTimeout(() => fired.push("later"), 100);
  assert.throws(() => host.tick(1), { name: "Error", message: /first/ });
  assert.deepEqual(fired, ["second"]);
  assert.deepEqual(host.pending, 1);
  host.tick(100);
  assert.deepEqual(fired, ["second", "later"]);
});

Deno.test("TimerHeap caps its host timer at 2^31 - 1 ms and fires nothing early", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  let fired = false;
  heap.setTimeout(() => (fired = true), 2 ** 40);
  assert.deepEqual(host.waits, [2 ** 31 - 1]);
  host.tick(2 ** 31 - 1);
  assert.deepEqual(fired, false);
  assert.deepEqual(host.waits.at(-1), 2 ** 31 - 1);
  host.tick(2 ** 40);
  assert.deepEqual(fired, true);
});

Deno.test("TimerHeap runs a timer due within its slack with the host timer's firing", () => {
  for (const [slackMs, expected] of [[0, []], [1, ["a", "b"]]] as const) {
    const host = new ManualHost();
    const heap = new TimerHeap(host, { slackMs });
    const fired: string[] = [];
    heap.setTimeout(() => fired.push("a"), 10);
    heap.setTimeout(() => fired.push("b"), 10.5);
    host.tick(9.6);
    assert.deepEqual(fired, expected);
  }
  assert.throws(() => new TimerHeap(new ManualHost(), { slackMs: -1 }), {
    name: "RangeError",
    message: /slackMs/,
  });
});

Deno.test("TimerHeap treats a negative or NaN delay as 0", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  const fired: string[] = [];
  heap.setTimeout(() => fired.push("nan"), NaN);
  heap.setTimeout(() => fired.push("negative"), -5);
  host.tick();
  assert.deepEqual(fired, ["nan", "negative"]);
});

Deno.test("systemClock fires its timers in order on the wall clock and clears them", async () => {
  const fired: string[] = [];
  const done = Promise.withResolvers<void>();
  const cancelled = systemClock.setTimeout(() => fired.push("cancelled"), 1);
  systemClock.setTimeout(() => {
    fired.push("b");
    done.resolve();
  }, 20);
  systemClock.setTimeout(() => fired.push("a"), 5);
  systemClock.clearTimeout(cancelled);
  await done.promise;
  assert.deepEqual(fired, ["a", "b"]);
});

Deno.test("TimerHeap fires timers due at one time in the order they were armed, many of them", () => {
  const host = new ManualHost();
  const heap = new TimerHeap(host);
  const fired: number[] = [];
  const timers = Array.from({ length: 64 }, (_, i) => heap.setTimeout(() => fired.push(i), 10));
  // Cancelling some moves others about in the heap; the order stays.
  for (const i of [0, 7, 33, 63]) heap.clearTimeout(timers[i]);
  host.tick(10);
  assert.deepEqual(
    fired,
    Array.from({ length: 64 }, (_, i) => i).filter((i) => ![0, 7, 33, 63].includes(i)),
  );
});

Deno.test("the wall clock never runs a deadline before its time by Date.now()", async () => {
  // The chain judges a deadline by its own clock: a node's refund or revocation armed for it
  // must not run even a fraction of a millisecond early (review R4: with a 1 ms slack and the
  // runtime truncating fractional delays, a quarter of such timers did).
  const early: string[] = [];
  const fired: Promise<void>[] = [];
  for (let i = 0; i < 200; i++) {
    const due = Date.now() + 1 + (i % 7);
    fired.push(
      new Promise((resolve) => {
        // As the node's Timers arm a deadline: what is left of it by the wall clock, now.
        systemClock.setTimeout(() => {
          const now = Date.now();
          if (now < due) early.push(`${now} < ${due}`);
          resolve();
        }, due - Date.now());
      }),
    );
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 0.5));
  }
  await Promise.all(fired);
  assert.deepEqual(early, []);
});
