/**
 * Tests of the content-addressed model stores: hashing, verification on read, atomic writes,
 * and the named errors.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "./executor.ts";
import {
  DirectoryModelStore,
  MemoryModelStore,
  ModelIntegrityError,
  type ModelStore,
} from "./model_store.ts";

const bytes = new TextEncoder().encode("not really a model");
const missing = "0".repeat(64);

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "model_store_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function checkContract(store: ModelStore): Promise<void> {
  const hash = await store.put(bytes);
  assert.equal(hash, sha256Hex(bytes));
  assert.equal(await store.put(bytes), hash);
  assert.equal(await store.has(hash), true);
  assert.equal(await store.has(missing), false);
  assert.equal(await store.has("nope"), false);
  assert.deepEqual(await store.get(hash), bytes);
  assert.deepEqual(await store.list(), [hash]);
  await assert.rejects(store.get(missing), {
    name: "ModelNotFoundError",
    message: `Model not found: ${missing}`,
  });
  await assert.rejects(store.get("../etc/passwd"), {
    name: "TypeError",
    message: /Invalid model hash/,
  });
  const aborted = AbortSignal.abort();
  await assert.rejects(store.get(hash, { signal: aborted }), { name: "AbortError" });
}

Deno.test("MemoryModelStore keeps models by content hash", async () => {
  await checkContract(new MemoryModelStore());
});

Deno.test("MemoryModelStore copies bytes in and out", async () => {
  const store = new MemoryModelStore();
  const mine = bytes.slice();
  const hash = await store.put(mine);
  mine[0] = 0;
  const got = await store.get(hash);
  got[1] = 0;
  assert.deepEqual(await store.get(hash), bytes);
});

Deno.test("DirectoryModelStore keeps models by content hash", async () => {
  await withTempDir(async (dir) => {
    const store = new DirectoryModelStore(dir);
    assert.deepEqual(await store.list(), []);
    await checkContract(store);
    const hash = sha256Hex(bytes);
    assert.equal(store.pathOf(hash), join(dir, "models", `${hash}.onnx`));
    assert.deepEqual(await Deno.readFile(store.pathOf(hash)), bytes);
    const names = [];
    for await (const entry of Deno.readDir(store.directory)) names.push(entry.name);
    assert.deepEqual(names, [`${hash}.onnx`], "no temporary file is left behind");
    // A second store on the same directory sees the model.
    assert.deepEqual(await new DirectoryModelStore(dir).get(hash), bytes);
  });
});

Deno.test("DirectoryModelStore.get() refuses a tampered model file", async () => {
  await withTempDir(async (dir) => {
    const store = new DirectoryModelStore(dir);
    const hash = await store.put(bytes);
    const tampered = bytes.slice();
    tampered[0]! ^= 1;
    await Deno.writeFile(store.pathOf(hash), tampered);
    const error = await store.get(hash).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof ModelIntegrityError);
    assert.equal(error.name, "ModelIntegrityError");
    assert.equal(error.hash, hash);
    assert.equal(error.actualHash, sha256Hex(tampered));
    assert.match(
      error.message,
      /^Model integrity check failed: [0-9a-f]{64} holds bytes hashing to [0-9a-f]{64}$/,
    );
    // Putting the right bytes again repairs the file.
    assert.equal(await store.put(bytes), hash);
    assert.deepEqual(await store.get(hash), bytes);
  });
});
