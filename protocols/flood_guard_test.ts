import assert from "node:assert/strict";
import { FloodGuard } from "./flood_guard.ts";

/** Sends `rate` messages per second for `seconds` of virtual time; how many were taken. */
function send(
  guard: FloodGuard,
  clock: { now: number },
  key: string,
  rate: number,
  seconds: number,
) {
  let taken = 0;
  const step = 1_000 / rate;
  for (let t = 0; t < seconds * 1_000; t += step) {
    clock.now += step;
    if (guard.take(key)) taken++;
  }
  return taken;
}

Deno.test("FloodGuard reports a key at 100 times its limit once, within its excess", () => {
  const clock = { now: 0 };
  const floods: string[] = [];
  const guard = new FloodGuard(
    { capacity: 20, refillPerSecond: 10, now: () => clock.now },
    { onFlood: (key) => floods.push(key) },
  );
  assert.equal(guard.excess.capacity, 100, "five bursts of excess by default");
  assert.equal(guard.excess.refillPerSecond, 20, "refilled at twice the rate by default");
  // 1,000 a second: 20 taken at once, then the excess (100, +20/s) is gone in about 0.1 s.
  let reportedAt = -1;
  for (let n = 1; n <= 1_000 && reportedAt < 0; n++) {
    clock.now += 1;
    guard.take("flooder");
    if (floods.length > 0) reportedAt = n;
  }
  assert.deepEqual(floods, ["flooder"]);
  assert.ok(reportedAt > 100 && reportedAt < 150, `reported after ${reportedAt} messages`);
  assert.equal(guard.floods, 1);
  // Reported once: its buckets start full again, so the next report takes another excess.
  for (let n = 0; n < 100; n++) {
    clock.now += 1;
    guard.take("flooder");
  }
  assert.equal(floods.length, 1);
});

Deno.test("FloodGuard never reports a key up to twice its limit, only throttles it", () => {
  const clock = { now: 0 };
  const floods: string[] = [];
  const guard = new FloodGuard(
    { capacity: 20, refillPerSecond: 10, now: () => clock.now },
    { onFlood: (key) => floods.push(key) },
  );
  // An honest relay at 1.9 times the limit for ten minutes: about half its messages are over
  // the limit and ignored, and it is never called a flood.
  const taken = send(guard, clock, "relay", 19, 600);
  assert.deepEqual(floods, []);
  assert.ok(taken < 19 * 600 * 0.6, `${taken} taken`);
  // After a stall of 10 s (the node was busy), the backlog of an honest peer at its rate
  // arrives at once: throttled, not a flood (the buckets refilled meanwhile: a stall up to six
  // bursts' worth of the rate is absorbed).
  clock.now += 10_000;
  for (let n = 0; n < 100; n++) guard.take("relay");
  assert.deepEqual(floods, []);
  // The same peer at 20 times the limit is one.
  send(guard, clock, "relay", 200, 0.5);
  assert.deepEqual(floods, ["relay"]);
});

Deno.test("FloodGuard takes its excess bucket from the options", () => {
  const clock = { now: 0 };
  const floods: string[] = [];
  const guard = new FloodGuard(
    { capacity: 2, refillPerSecond: 1, now: () => clock.now },
    { excess: { capacity: 3, refillPerSecond: 0 }, onFlood: (key) => floods.push(key) },
  );
  for (let n = 0; n < 5; n++) guard.take("a"); // 2 taken, 3 excess
  assert.deepEqual(floods, []);
  guard.take("a");
  assert.deepEqual(floods, ["a"]);
});
