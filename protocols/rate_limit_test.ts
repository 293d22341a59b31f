import assert from "node:assert/strict";
import { RateLimiter } from "./rate_limit.ts";

Deno.test("RateLimiter.take() allows a burst up to capacity then refuses and counts", () => {
  let now = 0;
  const limiter = new RateLimiter({ capacity: 3, refillPerSecond: 1, now: () => now });
  assert.equal(limiter.take("a"), true);
  assert.equal(limiter.take("a"), true);
  assert.equal(limiter.take("a"), true);
  assert.equal(limiter.take("a"), false);
  assert.equal(limiter.limited, 1);
  assert.equal(limiter.take("b"), true, "buckets are per key");
  now = 1000;
  assert.equal(limiter.take("a"), true, "one token refilled after a second");
  assert.equal(limiter.take("a"), false);
  assert.equal(limiter.limited, 2);
});

Deno.test("RateLimiter.take() never refills above capacity", () => {
  let now = 0;
  const limiter = new RateLimiter({ capacity: 2, refillPerSecond: 100, now: () => now });
  limiter.take("a");
  now = 60_000;
  assert.equal(limiter.available("a"), 2);
  assert.equal(limiter.take("a", 2), true);
  assert.equal(limiter.take("a"), false);
});

Deno.test("RateLimiter forgets the least recently used key beyond maxKeys", () => {
  const limiter = new RateLimiter({ capacity: 1, refillPerSecond: 0, maxKeys: 2, now: () => 0 });
  assert.equal(limiter.take("a"), true);
  assert.equal(limiter.take("b"), true);
  assert.equal(limiter.take("a"), false); // touches "a": "b" is now the oldest
  assert.equal(limiter.take("c"), true); // evicts "b"
  assert.equal(limiter.size, 2);
  assert.equal(limiter.take("b"), true, "an evicted key starts with a full bucket");
});

Deno.test("RateLimiter rejects bad options with RangeError", () => {
  assert.throws(() => new RateLimiter({ capacity: 0 }), RangeError);
  assert.throws(() => new RateLimiter({ refillPerSecond: -1 }), RangeError);
  assert.throws(() => new RateLimiter({ maxKeys: 0 }), RangeError);
});
