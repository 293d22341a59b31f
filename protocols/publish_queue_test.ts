import assert from "node:assert/strict";
import { PublishQueue } from "./publish_queue.ts";

const T = "/ciro/results/1";
const bytes = (n: number) => new Uint8Array([n]);
const values = (list: readonly { data: Uint8Array }[]) => list.map((w) => w.data[0]);

Deno.test("PublishQueue keeps a topic's messages in order until taken", () => {
  const queue = new PublishQueue({ now: () => 0 });
  queue.push(T, bytes(1));
  queue.push(T, bytes(2));
  queue.push("/ciro/jobs/1", bytes(9));
  assert.ok(queue.has(T));
  assert.deepEqual(values(queue.take(T)), [1, 2]);
  assert.equal(queue.has(T), false);
  assert.deepEqual(queue.stats(), { waiting: 1, flushed: 2, expired: 0, overflowed: 0, closed: 0 });
});

Deno.test("PublishQueue drops the oldest of a full topic and counts it", () => {
  const queue = new PublishQueue({ perTopic: 2, now: () => 0 });
  for (const n of [1, 2, 3]) queue.push(T, bytes(n));
  assert.deepEqual(values(queue.take(T)), [2, 3]);
  assert.equal(queue.stats().overflowed, 1);
});

Deno.test("PublishQueue drops messages past their expiry (virtual time)", () => {
  let now = 0;
  const queue = new PublishQueue({ expiryMs: 1_000, now: () => now });
  queue.push(T, bytes(1));
  now = 600;
  queue.push(T, bytes(2));
  now = 1_000;
  assert.deepEqual(values(queue.take(T)), [2]);
  assert.equal(queue.stats().expired, 1);
  now = 5_000;
  queue.push(T, bytes(3));
  now = 7_000;
  queue.expire();
  assert.deepEqual(queue.topics(), []);
  assert.equal(queue.stats().expired, 2);
});

Deno.test("PublishQueue.putBack() returns unsent messages ahead of newer ones, with their own expiry", () => {
  let now = 0;
  const queue = new PublishQueue({ expiryMs: 1_000, now: () => now });
  queue.push(T, bytes(1));
  queue.push(T, bytes(2));
  const taken = queue.take(T);
  queue.push(T, bytes(3));
  queue.putBack(T, taken.slice(1));
  assert.equal(queue.stats().flushed, 1);
  now = 999;
  assert.deepEqual(values(queue.take(T)), [2, 3]);
  queue.putBack(T, [{ data: bytes(2), expiresAt: 500 }]);
  assert.deepEqual(queue.topics(), [], "an expired message is not put back");
});

Deno.test("PublishQueue.close() counts what was waiting", () => {
  const queue = new PublishQueue();
  queue.push(T, bytes(1));
  queue.close();
  assert.deepEqual(queue.stats(), { waiting: 0, flushed: 0, expired: 0, overflowed: 0, closed: 1 });
});

Deno.test("PublishQueue refuses bounds that are not positive", () => {
  assert.throws(() => new PublishQueue({ perTopic: 0 }), RangeError);
  assert.throws(() => new PublishQueue({ expiryMs: 0 }), RangeError);
});
