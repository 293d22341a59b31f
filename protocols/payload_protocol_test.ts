import assert from "node:assert/strict";
import { createLibp2pHost, type Libp2pHost } from "./libp2p_host.ts";
import {
  DirectoryPayloadStore,
  fetchPayload,
  MemoryPayloadStore,
  payloadHash,
  type PayloadStore,
  servePayloads,
} from "./payload_protocol.ts";

async function pair(): Promise<[Libp2pHost, Libp2pHost]> {
  const server = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], heartbeatMs: 0 });
  const client = await createLibp2pHost({
    listen: ["/ip4/127.0.0.1/tcp/0"],
    bootstrap: [server.multiaddrs()[0]!],
    heartbeatMs: 0,
  });
  const deadline = Date.now() + 10_000;
  while (!client.peers().includes(server.self)) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for the pair to connect");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return [server, client];
}

function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let offset = 0; offset < size; offset += 65_536) {
    crypto.getRandomValues(bytes.subarray(offset, Math.min(size, offset + 65_536)));
  }
  return bytes;
}

Deno.test("MemoryPayloadStore and DirectoryPayloadStore verify hashes on put", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const store of [new MemoryPayloadStore(), new DirectoryPayloadStore(`${dir}/payloads`)]) {
      const bytes = new TextEncoder().encode("model weights");
      const hash = payloadHash(bytes);
      assert.equal(await store.has(hash), false);
      assert.equal(await store.get(hash), undefined);
      await store.put(hash, bytes);
      assert.equal(await store.has(hash), true);
      assert.deepEqual(await store.get(hash), bytes);
      const other = payloadHash(new Uint8Array([1]));
      await assert.rejects(store.put(other, bytes), { name: "PayloadHashMismatchError" });
      assert.equal(await store.has(other), false);
      await assert.rejects(store.put("not-a-hash", bytes), TypeError);
    }
    const files = [...Deno.readDirSync(`${dir}/payloads`)].map((entry) => entry.name);
    assert.deepEqual(
      files,
      [payloadHash(new TextEncoder().encode("model weights"))],
      "no temporary file left",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "fetchPayload() streams a 3 MiB payload with backpressure and stores it once verified",
  fn: async () => {
    const [server, client] = await pair();
    const dir = await Deno.makeTempDir();
    try {
      const source = new MemoryPayloadStore();
      const bytes = randomBytes(3 * 1024 * 1024 + 17);
      const hash = payloadHash(bytes);
      await source.put(hash, bytes);
      servePayloads(server, source, { chunkBytes: 16_384 });
      const store = new DirectoryPayloadStore(dir);
      // A small high-water mark makes the reader pause the stream many times.
      const fetched = await fetchPayload(client, server.self, hash, {
        store,
        highWaterMark: 32_768,
      });
      assert.equal(fetched.byteLength, bytes.byteLength);
      assert.equal(payloadHash(fetched), hash);
      assert.equal(await store.has(hash), true);

      const missing = payloadHash(new Uint8Array([9, 9, 9]));
      await assert.rejects(fetchPayload(client, server.self, missing), {
        name: "PayloadNotFoundError",
      });
      await assert.rejects(
        fetchPayload(client, server.self, hash, { maxBytes: 1_000_000 }),
        { name: "PayloadTooLargeError" },
      );
    } finally {
      await Promise.all([server.stop(), client.stop()]);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "fetchPayload() rejects a corrupted payload with PayloadHashMismatchError and stores nothing",
  fn: async () => {
    const [server, client] = await pair();
    try {
      const genuine = randomBytes(200_000);
      const hash = payloadHash(genuine);
      const corrupted = genuine.slice();
      corrupted[123_456] = corrupted[123_456]! ^ 0xff;
      // A lying peer: serves other bytes under the genuine hash.
      const lying: PayloadStore = {
        has: () => Promise.resolve(true),
        get: () => Promise.resolve(corrupted),
        put: () => Promise.reject(new Error("Read only")),
      };
      servePayloads(server, lying);
      const store = new MemoryPayloadStore();
      await assert.rejects(fetchPayload(client, server.self, hash, { store }), (error: Error) => {
        assert.equal(error.name, "PayloadHashMismatchError");
        assert.match(
          error.message,
          new RegExp(`^Payload hash mismatch: expected ${hash}, got [0-9a-f]{64}$`),
        );
        return true;
      });
      assert.equal(store.size, 0);
      assert.equal(await store.has(hash), false);
    } finally {
      await Promise.all([server.stop(), client.stop()]);
    }
  },
});
