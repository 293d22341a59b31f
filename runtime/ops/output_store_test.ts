import assert from "node:assert/strict";
import { OutputStore } from "./output_store.ts";

Deno.test("OutputStore keeps outputs by job and commitment, oldest out first past maxEntries", () => {
  const store = new OutputStore({ maxEntries: 2 });
  assert.equal(store.put("j1", "c1", [1]), true);
  assert.equal(store.put("j2", "c2", [2]), true);
  assert.equal(store.put("j3", "c3", [3]), true);
  assert.equal(store.byJob("j1"), undefined);
  assert.deepEqual(store.byJob("j3"), { jobId: "j3", commitment: "c3", value: [3], bytes: 3 });
  assert.deepEqual(store.get("c2")?.value, [2]);
  assert.equal(store.size, 2);
});

Deno.test("OutputStore bounds the bytes it holds and refuses an output larger than all of them", () => {
  const store = new OutputStore({ maxBytes: 10 });
  assert.equal(store.put("a", "ca", "xxxx"), true); // "xxxx" is 6 bytes of JSON
  assert.equal(store.bytes, 6);
  assert.equal(store.put("b", "cb", 12n), true); // "12": 4 bytes, bigints as strings
  assert.equal(store.bytes, 10);
  assert.equal(store.put("c", "cc", 1), true); // 1 byte: "a" goes
  assert.equal(store.byJob("a"), undefined);
  assert.equal(store.bytes, 5);
  assert.equal(store.put("d", "cd", "x".repeat(20)), false);
  assert.equal(store.byJob("d"), undefined);
  assert.equal(store.bytes, 5);
  assert.throws(() => new OutputStore({ maxEntries: -1 }), {
    name: "RangeError",
    message: "Invalid maxEntries -1: must be a non-negative integer",
  });
});
