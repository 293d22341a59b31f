import assert from "node:assert/strict";
import { frame, idleSignal } from "./stream_framing.ts";

Deno.test("frame() prefixes the length as a big-endian u32", () => {
  assert.deepEqual([...frame(new Uint8Array([7, 8]))], [0, 0, 0, 2, 7, 8]);
});

Deno.test("idleSignal() aborts with StreamIdleError without progress, and not while touched", async () => {
  const idle = idleSignal(200);
  // Touch well within the timeout for 600 ms: never aborts.
  for (let i = 0; i < 6; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    idle.touch();
  }
  assert.equal(idle.signal.aborted, false);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal(idle.signal.aborted, true);
  assert.equal((idle.signal.reason as Error).name, "StreamIdleError");
  idle.clear();
  const parent = new AbortController();
  const child = idleSignal(60_000, parent.signal);
  parent.abort(new Error("deadline"));
  assert.equal((child.signal.reason as Error).message, "deadline");
  child.clear();
});
