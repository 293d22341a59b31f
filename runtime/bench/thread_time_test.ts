import assert from "node:assert/strict";
import { parseSchedstat, threadShare, threadTime } from "./thread_time.ts";

Deno.test("parseSchedstat() reads the time on a CPU and queued, and refuses anything else", () => {
  assert.deepEqual(parseSchedstat("153939000 67921000 2\n"), { runMs: 153.939, queuedMs: 67.921 });
  assert.equal(parseSchedstat(""), undefined);
  assert.equal(parseSchedstat("1 2"), undefined);
  assert.equal(parseSchedstat("1 2 3 4"), undefined);
  assert.equal(parseSchedstat("1 -2 3"), undefined);
  assert.equal(parseSchedstat("a b c"), undefined);
});

Deno.test("threadShare() splits a wall time into on and off the CPU, and queued where known", () => {
  assert.deepEqual(
    threadShare({ cpuMs: 100, queuedMs: 10 }, { cpuMs: 700, queuedMs: 210 }, 1000),
    { cpuMs: 600, offCpuMs: 400, queuedMs: 200 },
  );
  assert.deepEqual(threadShare({ cpuMs: 100 }, { cpuMs: 700, queuedMs: 5 }, 1000), {
    cpuMs: 600,
    offCpuMs: 400,
  });
  // The CPU clock ticks coarsely: never a negative time off the CPU.
  assert.deepEqual(threadShare({ cpuMs: 0 }, { cpuMs: 110 }, 100), { cpuMs: 110, offCpuMs: 0 });
});

Deno.test("threadTime() counts the calling thread's work, and reads the time queued on Linux", () => {
  const before = threadTime();
  // Work until the thread's clock (the kernel's tick, 10 ms) moves; bounded by the wall clock.
  const until = performance.now() + 10_000;
  let after = threadTime();
  let x = 0;
  while (after.cpuMs === before.cpuMs && performance.now() < until) {
    for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
    after = threadTime();
  }
  assert.ok(x > 0);
  assert.ok(after.cpuMs > before.cpuMs, JSON.stringify({ before, after }));
  let readable = false;
  try {
    readable = Deno.readTextFileSync("/proc/thread-self/schedstat").length > 0;
  } catch { /* not Linux, or no --allow-all */ }
  if (readable) {
    assert.equal(typeof after.queuedMs, "number", JSON.stringify(after));
    assert.ok(after.queuedMs! >= before.queuedMs!, JSON.stringify({ before, after }));
  }
});
