/**
 * Missing models fetched from peers by hash over the payload protocol (`runtime/model_fetch.ts`,
 * wired into nodes): verifiers without the model fetch it and the job settles, a worker with
 * `fetchModels` fetches from the job's owner, and a peer serving bytes that do not hash to the
 * model is refused with nothing stored.
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { PayloadHashMismatchError, PayloadNotFoundError } from "../protocols/payload_errors.ts";
import { InferenceClient } from "../runtime/sdk/client.ts";
import { fetchModel, serveModels } from "../runtime/compute/model_fetch.ts";
import { MemoryModelStore, type ModelStore } from "../runtime/compute/model_store.ts";
import { createNode, type Node, type NodeObservation } from "../runtime/kernel/mod.ts";
import { buildMlpModel } from "../runtime/compute/onnx_model_builder.ts";
import type { OnnxJobInput } from "../runtime/compute/onnx_executor.ts";

const MLP_BYTES = buildMlpModel({ inputSize: 8, hiddenSize: 16, outputSize: 4, seed: 7 });
const MLP_HASH = await new MemoryModelStore().put(MLP_BYTES);
const INPUT: OnnxJobInput = {
  inputs: {
    input: { dims: [1, 8], dtype: "float32", data: [0.5, -1, 2, 0.25, -0.75, 1.5, 0, 3] },
  },
};
const REQUEST = {
  modelId: MLP_HASH,
  input: INPUT,
  maxPrice: 1_000n,
  minStake: 100n,
  maxLatency: 3_000,
  deadlines: { bidWindowMs: 60, executionMs: 1_000, verificationMs: 3_000 },
} as const;

async function storeWith(bytes?: Uint8Array): Promise<MemoryModelStore> {
  const store = new MemoryModelStore();
  if (bytes) await store.put(bytes);
  return store;
}

/** A store that claims to hold the MLP but serves corrupted bytes (a lying peer). */
function lyingStore(): ModelStore {
  const corrupted = MLP_BYTES.slice();
  corrupted[corrupted.length - 1]! ^= 0xff;
  return {
    put: () => Promise.reject(new Error("read-only")),
    get: () => Promise.resolve(corrupted.slice()),
    has: (hash) => Promise.resolve(hash === MLP_HASH),
    list: () => Promise.resolve([MLP_HASH]),
  };
}

Deno.test("fetchModel: a peer serving corrupted bytes is refused and nothing is stored", async () => {
  const network = new InProcessNetwork();
  const evil = network.join("evil");
  const honest = network.join("honest");
  const me = network.join("me");
  for (const p of [evil, honest, me]) await p.start();
  try {
    serveModels(evil, lyingStore());
    serveModels(honest, await storeWith(MLP_BYTES));
    const mine = new MemoryModelStore();
    await assert.rejects(
      fetchModel(me, "evil", MLP_HASH, { models: mine }),
      (e: unknown) => e instanceof PayloadHashMismatchError && e.expected === MLP_HASH,
    );
    assert.deepEqual(await mine.list(), []);
    await assert.rejects(
      fetchModel(me, "honest", "ab".repeat(32), { models: mine }),
      PayloadNotFoundError,
    );
    await fetchModel(me, "honest", MLP_HASH, { models: mine });
    assert.deepEqual(await mine.list(), [MLP_HASH]);
    assert.deepEqual(await mine.get(MLP_HASH), MLP_BYTES);
  } finally {
    for (const p of [evil, honest, me]) await p.stop();
    network.close();
  }
});

interface Setup {
  /** The client's model store, if it holds one. */
  readonly clientModels?: ModelStore;
  readonly worker: { readonly models: ModelStore; readonly fetchModels?: boolean };
  readonly verifierModels: () => Promise<ModelStore>;
  /** A node advertising the model first, serving corrupted bytes. */
  readonly liar?: boolean;
}

async function market(setup: Setup) {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const nodes: Node[] = [];
  const observations: { node: string; o: NodeObservation }[] = [];
  const add = (o: Parameters<typeof createNode>[0]) => {
    const node = createNode({ ...o, capabilityIntervalMs: 0 });
    node.observe((obs) => observations.push({ node: o.id, o: obs }));
    nodes.push(node);
    return node;
  };
  const client = add({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    chain: ledger.as("client"),
    ...(setup.clientModels ? { models: setup.clientModels } : {}),
  });
  if (setup.liar) {
    add({
      id: "liar",
      roles: ["client"],
      network: network.join("liar"),
      chain: ledger.as("liar"),
      models: lyingStore(),
    });
  }
  add({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    models: setup.worker.models,
    ...(setup.worker.fetchModels ? { fetchModels: true } : {}),
    worker: { hardware: "cpu", stake: 1_000n, etaMs: 50 },
  });
  const verifierStores: ModelStore[] = [];
  for (let i = 1; i <= 4; i++) {
    const models = await setup.verifierModels();
    verifierStores.push(models);
    add({
      id: `v${i}`,
      roles: ["verifier"],
      network: network.join(`v${i}`),
      chain: ledger.as(`v${i}`),
      models,
    });
  }
  for (const node of nodes) await node.start();
  for (const node of nodes) await node.announceCapabilities();
  await new Promise((r) => setTimeout(r, 20));
  return {
    client,
    worker: nodes.find((n) => n.id === "w1")!,
    sdk: new InferenceClient(client, { graceMs: 5_000 }),
    verifierStores,
    observations,
    ledger,
    async close() {
      for (const node of nodes) await node.stop();
      network.close();
      ledger.close();
    },
  };
}

Deno.test("verifiers without the model fetch it from the worker by hash and the job settles", async () => {
  const m = await market({
    worker: { models: await storeWith(MLP_BYTES) },
    verifierModels: () => storeWith(),
  });
  try {
    const result = await m.sdk.infer(REQUEST);
    assert.equal(result.state, "settled");
    assert.equal(result.verification, "accepted");
    assert.ok(Object.values(result.attestations).filter((v) => v === "valid").length >= 3);
    for (const store of m.verifierStores) assert.deepEqual(await store.list(), [MLP_HASH]);
    const totals = await m.client.chainTotals();
    assert.equal(totals.escrowed, totals.paid + totals.fees + totals.refunded + totals.locked);
  } finally {
    await m.close();
  }
});

Deno.test("a worker with fetchModels bids without the model and fetches it from the job's owner", async () => {
  const workerModels = await storeWith();
  const m = await market({
    clientModels: await storeWith(MLP_BYTES),
    worker: { models: workerModels, fetchModels: true },
    verifierModels: () => storeWith(MLP_BYTES),
  });
  try {
    // A model it may fetch is heard on the whole shard only; its samples once it holds it (so
    // that 256 advertised models cost 256 subscriptions, not 2,304: gossipsub refuses a
    // subscription list past its limits).
    const samplesOf = (hash: string) =>
      m.worker.shardTopics().filter((t) => t.includes(`/${hash}/`)).length;
    assert.ok(m.worker.shardTopics().some((t) => t.endsWith(`/cpu/${MLP_HASH}`)));
    assert.equal(samplesOf(MLP_HASH), 0);
    assert.ok(m.worker.shardTopics().filter((t) => t.includes("/matmul/")).length > 0);
    const result = await m.sdk.infer(REQUEST);
    assert.equal(result.state, "settled");
    assert.equal(result.worker, "w1");
    assert.deepEqual(await workerModels.list(), [MLP_HASH]);
    assert.ok(samplesOf(MLP_HASH) > 0, "held now: its samples are heard");
  } finally {
    await m.close();
  }
});

Deno.test("a peer advertising the model but serving corrupted bytes is refused; the next peer serves it", async () => {
  const m = await market({
    liar: true,
    worker: { models: await storeWith(MLP_BYTES) },
    verifierModels: () => storeWith(),
  });
  try {
    const result = await m.sdk.infer(REQUEST);
    assert.equal(result.state, "settled");
    assert.equal(result.verification, "accepted");
    for (const store of m.verifierStores) {
      assert.deepEqual(await store.list(), [MLP_HASH]);
      assert.deepEqual(await store.get(MLP_HASH), MLP_BYTES);
    }
    // Every verifier asked the liar first (it advertised first), refused its bytes and scored it down.
    const penalised = m.observations.filter(({ o }) =>
      o.type === "delivered" && o.envelope.target === "peer:liar" &&
      o.envelope.event.type === "peer.scored" &&
      String((o.envelope.event as { reason?: string }).reason).includes("hash mismatch")
    ).map(({ node }) => node);
    assert.deepEqual([...new Set(penalised)].sort(), ["v1", "v2", "v3", "v4"]);
  } finally {
    await m.close();
  }
});

Deno.test({
  name: "fetchModel over libp2p: streamed, hash-checked, corrupted bytes refused",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { createLibp2pHost } = await import("../protocols/libp2p_host.ts");
    const server = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const liar = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const me = await createLibp2pHost({
      listen: ["/ip4/127.0.0.1/tcp/0"],
      bootstrap: [...server.multiaddrs(), ...liar.multiaddrs()],
    });
    try {
      for (const h of [server, liar, me]) await h.start();
      serveModels(server, await storeWith(MLP_BYTES));
      serveModels(liar, lyingStore());
      for (let i = 0; i < 100 && me.peers().length < 2; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const mine = new MemoryModelStore();
      await assert.rejects(
        fetchModel(me, liar.self, MLP_HASH, { models: mine }),
        PayloadHashMismatchError,
      );
      assert.deepEqual(await mine.list(), []);
      await fetchModel(me, server.self, MLP_HASH, { models: mine });
      assert.deepEqual(await mine.get(MLP_HASH), MLP_BYTES);
    } finally {
      for (const h of [me, liar, server]) await h.stop();
    }
  },
});
