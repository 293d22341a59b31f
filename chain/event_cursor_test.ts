/**
 * Tests of the cursor stores: round trips, restart from a file or database, damaged state.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  checkCursor,
  compareCursors,
  type CursorState,
  FileCursorStore,
  MemoryCursorStore,
  SqliteCursorStore,
} from "./event_cursor.ts";

const state: CursorState = {
  cursor: { blockNumber: 42, eventIndex: 3 },
  recentBlocks: [
    { blockNumber: 40, blockHash: "0x40" },
    { blockNumber: 41, blockHash: "0x41" },
  ],
};

Deno.test("MemoryCursorStore.load() returns a copy of the last save", async () => {
  const store = new MemoryCursorStore();
  assert.equal(await store.load(), undefined);
  await store.save(state);
  const loaded = await store.load();
  assert.deepEqual(loaded, state);
  assert.notEqual(loaded, state);
  await store.close();
});

Deno.test("FileCursorStore.load() reads back a saved state after a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cursor.json`;
    const first = new FileCursorStore(path);
    assert.equal(await first.load(), undefined);
    await first.save(state);
    await first.save({ ...state, cursor: { blockNumber: 43, eventIndex: 0 } });
    await first.close();
    const second = new FileCursorStore(path);
    assert.deepEqual(await second.load(), {
      ...state,
      cursor: { blockNumber: 43, eventIndex: 0 },
    });
    await Deno.writeTextFile(path, "{not json");
    await assert.rejects(second.load(), { name: "CursorStoreError", message: /not JSON/ });
    await Deno.writeTextFile(path, JSON.stringify({ cursor: { blockNumber: -1, eventIndex: 0 } }));
    await assert.rejects(second.load(), { name: "CursorStoreError" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteCursorStore.load() keeps one state per key across a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/cursors.db`;
    const a = new SqliteCursorStore(path, { key: "a" });
    const b = new SqliteCursorStore(path, { key: "b" });
    await a.save(state);
    assert.equal(await b.load(), undefined);
    await b.save({ cursor: { blockNumber: 1, eventIndex: 0 }, recentBlocks: [] });
    await a.close();
    await b.close();
    const again = new SqliteCursorStore(path, { key: "a" });
    assert.deepEqual(await again.load(), state);
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compareCursors() orders by block, then event index", () => {
  assert.ok(
    compareCursors({ blockNumber: 1, eventIndex: 9 }, { blockNumber: 2, eventIndex: 0 }) < 0,
  );
  assert.ok(
    compareCursors({ blockNumber: 2, eventIndex: 1 }, { blockNumber: 2, eventIndex: 0 }) > 0,
  );
  assert.equal(
    compareCursors({ blockNumber: 2, eventIndex: 1 }, { blockNumber: 2, eventIndex: 1 }),
    0,
  );
  assert.throws(() => checkCursor({ blockNumber: 1.5, eventIndex: 0 }), TypeError);
});
