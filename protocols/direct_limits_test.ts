import assert from "node:assert/strict";
import { DirectLimiter } from "./direct_limits.ts";

Deno.test("DirectLimiter caps one peer's concurrent streams and frees a slot on release", () => {
  const limits = new DirectLimiter({ perPeerConcurrency: 2, now: () => 0 });
  const a = limits.admit("p");
  const b = limits.admit("p");
  const c = limits.admit("p");
  assert.ok(a.ok && b.ok);
  assert.deepEqual(c.ok ? undefined : c.code, "busy");
  assert.ok(limits.admit("q").ok, "another peer is not affected");
  if (a.ok) {
    a.release();
    a.release(); // twice is once
  }
  assert.ok(limits.admit("p").ok);
  assert.equal(limits.stats().refused.busy, 1);
  assert.equal(limits.stats().active, 3);
});

Deno.test("DirectLimiter caps the streams a peer opens per second", () => {
  let now = 0;
  const limits = new DirectLimiter({
    perPeerConcurrency: 100,
    perPeerBurst: 3,
    perPeerPerSecond: 1,
    now: () => now,
  });
  const codes = Array.from({ length: 5 }, () => {
    const admission = limits.admit("p");
    if (admission.ok) admission.release();
    return admission.ok ? "ok" : admission.code;
  });
  assert.deepEqual(codes, ["ok", "ok", "ok", "rate_limited", "rate_limited"]);
  now = 1_000;
  assert.ok(limits.admit("p").ok);
});

Deno.test("DirectLimiter caps the streams served at once overall", () => {
  const limits = new DirectLimiter({ totalConcurrency: 2, now: () => 0 });
  assert.ok(limits.admit("a").ok);
  assert.ok(limits.admit("b").ok);
  const third = limits.admit("c");
  assert.equal(third.ok ? "ok" : third.code, "server_busy");
  assert.throws(() => new DirectLimiter({ perPeerConcurrency: 0 }), RangeError);
  assert.throws(() => new DirectLimiter({ idleTimeoutMs: 0 }), RangeError);
});
