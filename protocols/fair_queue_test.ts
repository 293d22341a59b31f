import assert from "node:assert/strict";
import { FairQueue } from "./fair_queue.ts";

/** A queue whose turns run only when the test says so. */
function manual<T>(options: { perKey?: number; total?: number; batch?: number } = {}) {
  const delivered: T[] = [];
  const turns: (() => void)[] = [];
  const queue = new FairQueue<T>((item) => delivered.push(item), {
    ...options,
    schedule: (run) => turns.push(run),
  });
  const turn = () => turns.shift()?.();
  return { queue, delivered, turn, turns };
}

Deno.test("FairQueue delivers a newcomer's message in the next turn, not behind a flood", () => {
  const { queue, delivered, turn } = manual<string>({ perKey: 1_000, batch: 4 });
  for (let i = 0; i < 1_000; i++) queue.offer("flooder", `f${i}`);
  queue.offer("honest", "h0");
  turn();
  // One per key per round: the honest message is second, not 1,001st.
  assert.deepEqual(delivered, ["f0", "h0", "f1", "f2"]);
  assert.equal(queue.size(), 997);
});

Deno.test("FairQueue refuses what does not fit a key's queue and counts it", () => {
  const { queue, delivered, turn } = manual<number>({ perKey: 3 });
  const accepted = [1, 2, 3, 4, 5].map((n) => queue.offer("a", n));
  assert.deepEqual(accepted, [true, true, true, false, false]);
  assert.equal(queue.hasRoom("a"), false);
  assert.equal(queue.hasRoom("b"), true);
  turn();
  assert.deepEqual(delivered, [1, 2, 3]);
  assert.equal(queue.stats().droppedPerKey, 2);
  assert.equal(queue.hasRoom("a"), true);
});

Deno.test("FairQueue makes room under the global bound from the longest queue", () => {
  const { queue, delivered, turn } = manual<string>({ perKey: 10, total: 5, batch: 100 });
  for (let i = 0; i < 4; i++) queue.offer("flooder", `f${i}`);
  queue.offer("other", "o0");
  assert.equal(queue.offer("honest", "h0"), true);
  assert.equal(queue.size(), 5);
  assert.equal(queue.stats().droppedGlobal, 1);
  turn();
  assert.deepEqual(delivered.sort(), ["f0", "f1", "f2", "h0", "o0"]);
});

Deno.test("FairQueue yields after each batch and keeps going while items wait", () => {
  const { queue, delivered, turn, turns } = manual<number>({ batch: 2 });
  for (let i = 0; i < 5; i++) queue.offer("a", i);
  assert.equal(turns.length, 1, "one turn scheduled, not one per item");
  turn();
  assert.deepEqual(delivered, [0, 1]);
  assert.equal(turns.length, 1);
  turn();
  turn();
  assert.deepEqual(delivered, [0, 1, 2, 3, 4]);
  assert.equal(turns.length, 0);
  queue.close();
  assert.equal(queue.offer("a", 9), false);
  assert.throws(() => new FairQueue(() => {}, { perKey: 0 }), RangeError);
});

Deno.test("FairQueue keeps delivering when a delivery throws", () => {
  const errors: unknown[] = [];
  const delivered: number[] = [];
  const turns: (() => void)[] = [];
  const queue = new FairQueue<number>((n) => {
    if (n === 1) throw new Error("boom");
    delivered.push(n);
  }, { schedule: (run) => turns.push(run), onError: (error) => errors.push(error) });
  [0, 1, 2].forEach((n) => queue.offer("a", n));
  turns.shift()!();
  assert.deepEqual(delivered, [0, 2]);
  assert.equal(errors.length, 1);
});

Deno.test("FairQueue ends a turn once sliceMs is used, however few were delivered", () => {
  let now = 0;
  const delivered: string[] = [];
  const turns: (() => void)[] = [];
  const queue = new FairQueue<string>((item) => {
    delivered.push(item);
    now += 2; // a slow subscriber: 2 ms per message
  }, { batch: 32, sliceMs: 5, now: () => now, schedule: (run) => turns.push(run) });
  for (let i = 0; i < 10; i++) queue.offer("a", `a${i}`);
  turns.shift()!();
  // 0, 2 and 4 ms had time left; at 6 ms the turn ends, with 7 still waiting for the next.
  assert.deepEqual(delivered, ["a0", "a1", "a2"]);
  assert.equal(turns.length, 1);
  turns.shift()!();
  assert.equal(delivered.length, 6);
  // Every turn delivers at least one item, even when one delivery outlasts the slice.
  const slowTurns: (() => void)[] = [];
  let slowDelivered = 0;
  const slow = new FairQueue<string>(() => {
    slowDelivered++;
    now += 50;
  }, { sliceMs: 5, now: () => now, schedule: (run) => slowTurns.push(run) });
  slow.offer("b", "b0");
  slow.offer("b", "b1");
  slowTurns.shift()!();
  assert.equal(slowDelivered, 1);
  slowTurns.shift()!();
  assert.equal(slowDelivered, 2);
  assert.throws(() => new FairQueue(() => {}, { sliceMs: 0 }), RangeError);
});
