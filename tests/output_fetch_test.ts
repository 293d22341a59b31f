/**
 * Outputs fetched by content hash (`runtime/kernel/output_fetch.ts`, the payload protocol): a
 * worker whose result gossip is lost still gets verified, because each chosen verifier that sees
 * the result on chain without its output fetches it from the worker by the commitment, checks
 * the hash and goes on; on the in-process network and on real libp2p hosts. And the parts: the
 * bounded store, the transfer's hash check, a bad request charged to its sender.
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import {
  PAYLOAD_PROTOCOL,
  PayloadHashMismatchError,
  PayloadNotFoundError,
} from "../protocols/payload_errors.ts";
import { MemoryPayloadStore, type PayloadStore } from "../protocols/payload_protocol.ts";
import { fetchPayloadFrom, servePayloadStore } from "../protocols/payload_transfer.ts";
import { canonicalJson, commitmentOf } from "../runtime/compute/mod.ts";
import { createNode, type Node, type NodeObservation } from "../runtime/kernel/mod.ts";
import { OutputStore } from "../runtime/kernel/output_fetch.ts";
import { spec } from "./_drive.ts";

const encoder = new TextEncoder();

/** `port`, with every result it sends dropped (the worker's output message lost). */
function losingResults<T extends NetworkPort>(port: T, dropped: { count: number }): T {
  return new Proxy(port, {
    get(target, key) {
      if (key === "send") {
        return (
          peer: string,
          topic: string,
          data: Uint8Array,
          options?: { signal?: AbortSignal },
        ) => {
          if (topic === TOPICS.results) {
            dropped.count++;
            return Promise.resolve();
          }
          return target.send(peer, topic as never, data, options);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("OutputStore keeps outputs by their commitment, bounded in count and bytes", async () => {
  const store = new OutputStore({ maxEntries: 2, maxBytes: 1_000 });
  const a = store.keep({ a: 1 });
  assert.equal(a, commitmentOf({ a: 1 }), "the hash of an output is its commitment");
  const b = store.keep([1, 2, 3]);
  await store.get(a); // a is now the most recently used
  store.keep("c");
  assert.equal(store.size, 2);
  assert.ok(await store.has(a));
  assert.equal(await store.has(b), false, "the least recently used went first");
  const big = store.keep("x".repeat(600));
  store.keep("y".repeat(600));
  assert.equal(await store.has(big), false, "over maxBytes, the oldest goes");
  assert.ok(store.bytes <= 1_000);
  await assert.rejects(store.put(a, encoder.encode("not it")), PayloadHashMismatchError);
  assert.throws(() => new OutputStore({ maxEntries: 0 }), RangeError);
});

Deno.test("fetchPayloadFrom() on the in-process network: found, missing, corrupted and malformed requests", async () => {
  const network = new InProcessNetwork();
  const server = network.join("server");
  const liar = network.join("liar");
  const me = network.join("me");
  for (const p of [server, liar, me]) await p.start();
  try {
    const bytes = encoder.encode(canonicalJson({ result: [[19, 22], [43, 50]] }));
    const hash = commitmentOf({ result: [[19, 22], [43, 50]] });
    const store = new MemoryPayloadStore();
    await store.put(hash, bytes);
    const charged: string[] = [];
    const watched = new Proxy(server, {
      get(target, key) {
        if (key === "reject") {
          return (peer: string, where: string, code: string) =>
            charged.push(`${peer} ${where} ${code}`);
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    servePayloadStore(watched, store);
    const lying: PayloadStore = {
      has: () => Promise.resolve(true),
      get: () => Promise.resolve(encoder.encode("something else")),
      put: () => Promise.reject(new Error("read-only")),
    };
    servePayloadStore(liar, lying);
    assert.deepEqual(await fetchPayloadFrom(me, "server", hash), bytes);
    await assert.rejects(fetchPayloadFrom(me, "server", "ab".repeat(32)), PayloadNotFoundError);
    await assert.rejects(
      fetchPayloadFrom(me, "liar", hash),
      (e: unknown) => e instanceof PayloadHashMismatchError && e.expected === hash,
    );
    await assert.rejects(fetchPayloadFrom(me, "server", "not a hash"), TypeError);
    // A request that is not a hash is refused and charged to its sender.
    const answer = await me.request("server", PAYLOAD_PROTOCOL, encoder.encode("../../etc"));
    assert.equal(answer[0], 2, "the error status");
    assert.deepEqual(charged, [`me ${PAYLOAD_PROTOCOL} bad_hash`]);
  } finally {
    for (const p of [server, liar, me]) await p.stop();
    network.close();
  }
});

interface Market {
  readonly client: Node;
  readonly worker: Node;
  readonly verifiers: readonly Node[];
  readonly observations: { node: string; o: NodeObservation }[];
  readonly ledger: LocalLedger;
}

/** Submits one matmul job and waits until the client sees it finished; the job's summary. */
async function runJob(m: Market) {
  const jobId = m.client.submitJob({
    spec: spec({ bidWindowMs: 2_000, executionMs: 10_000, verificationMs: 20_000 }),
  });
  const job = await waitFor("the job to finish", () => {
    const j = m.client.job(jobId);
    return j?.done ? j : undefined;
  }, 90_000);
  return { jobId, job };
}

/** Asserts the job settled and every verifier got the output by a fetch, not by gossip. */
async function assertSettledByFetch(
  m: Market,
  jobId: string,
  job: { state: string },
  dropped: number,
): Promise<void> {
  assert.ok(
    dropped >= 1,
    `the worker's result gossip was dropped (job ${job.state}: ${
      JSON.stringify(m.client.job(jobId)?.context.path)
    })`,
  );
  const fetchedBy = m.observations.filter(({ o }) =>
    o.type === "delivered" && o.envelope.target === `job:${jobId}` &&
    o.envelope.event.type === "job.result.received" &&
    (o.envelope.event as { via?: string }).via === "fetch"
  ).map(({ node }) => node);
  const context = m.client.job(jobId)?.context;
  assert.equal(
    job.state,
    "settled",
    `path ${JSON.stringify(context?.path)}, failure ${context?.failure}, fetched by ${fetchedBy}`,
  );
  const verifierIds = m.verifiers.map((v) => v.id);
  assert.ok(
    verifierIds.filter((id) => fetchedBy.includes(id)).length >= 3,
    `at least a quorum of verifiers fetched the output: ${fetchedBy.join(",")}`,
  );
  assert.ok(fetchedBy.includes(m.client.id), "the owner fetched the output too");
  assert.deepEqual(
    (context?.outputs[m.worker.id] as { value?: unknown } | undefined)?.value,
    [[19, 22], [43, 50]],
    "the owner holds the output (the product of the spec's matrices)",
  );
  const totals = await m.client.chainTotals();
  assert.ok(totals.paid > 0n, "the chain paid the worker");
  assert.equal(totals.escrowed, totals.paid + totals.fees + totals.refunded + totals.locked);
}

Deno.test("verifiers fetch a lost output from the worker by hash and the job settles (in-process network)", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const dropped = { count: 0 };
  const observations: Market["observations"] = [];
  const nodes: Node[] = [];
  const add = (o: Parameters<typeof createNode>[0]) => {
    const node = createNode({ ...o, capabilityIntervalMs: 0 });
    node.observe((obs) => observations.push({ node: o.id, o: obs }));
    nodes.push(node);
    return node;
  };
  try {
    const client = add({
      id: "client",
      roles: ["client"],
      network: network.join("client"),
      chain: ledger.as("client"),
    });
    const worker = add({
      id: "w1",
      roles: ["worker"],
      network: losingResults(network.join("w1"), dropped),
      chain: ledger.as("w1"),
      worker: { hardware: "cpu", stake: 1_000n, etaMs: 50 },
    });
    const verifiers = [1, 2, 3, 4].map((i) =>
      add({
        id: `v${i}`,
        roles: ["verifier"],
        network: network.join(`v${i}`),
        chain: ledger.as(`v${i}`),
      })
    );
    for (const node of nodes) await node.start();
    for (const node of nodes) await node.announceCapabilities();
    const m = { client, worker, verifiers, observations, ledger };
    const { jobId, job } = await runJob(m);
    await assertSettledByFetch(m, jobId, job, dropped.count);
  } finally {
    for (const node of nodes) await node.stop();
    network.close();
    ledger.close();
  }
});

Deno.test({
  name: "verifiers fetch a lost output from the worker by hash and the job settles (libp2p hosts)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { createLibp2pHost } = await import("../protocols/libp2p_host.ts");
    const ledger = LocalLedger.open(":memory:");
    const dropped = { count: 0 };
    const observations: Market["observations"] = [];
    const nodes: Node[] = [];
    const hosts: { stop(): Promise<void> }[] = [];
    try {
      const first = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
      hosts.push(first);
      const boot = [first.multiaddrs()[0]!];
      const rest = await Promise.all(
        [0, 1, 2, 3, 4].map(() =>
          createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], bootstrap: boot })
        ),
      );
      hosts.push(...rest);
      // Everyone dials everyone: this test is about the payload, not discovery.
      for (const a of rest) {
        for (const b of [first, ...rest]) {
          if (a !== b) await a.dial(b.multiaddrs()[0]!).catch(() => {});
        }
      }
      const add = (o: Parameters<typeof createNode>[0]) => {
        const node = createNode({ ...o, capabilityIntervalMs: 500 });
        node.observe((obs) => observations.push({ node: o.id, o: obs }));
        nodes.push(node);
        return node;
      };
      const client = add({
        id: first.self,
        roles: ["client"],
        network: first,
        chain: ledger.as(first.self),
      });
      const w = rest[0]!;
      const worker = add({
        id: w.self,
        roles: ["worker"],
        network: losingResults(w, dropped),
        chain: ledger.as(w.self),
        worker: { hardware: "cpu", stake: 1_000n, etaMs: 50 },
      });
      const verifiers = rest.slice(1).map((h) =>
        add({ id: h.self, roles: ["verifier"], network: h, chain: ledger.as(h.self) })
      );
      for (const node of nodes) await node.start();
      // Gossip flows every way before the job: each node heard every other's capabilities.
      await waitFor(
        "every node to hear every other",
        () => nodes.every((n) => n.knownNodes().length === nodes.length) ? true : undefined,
      );
      const m = { client, worker, verifiers, observations, ledger };
      const { jobId, job } = await runJob(m);
      await assertSettledByFetch(m, jobId, job, dropped.count);
    } finally {
      for (const node of nodes) await node.stop().catch(() => {});
      for (const host of hosts) await host.stop().catch(() => {});
      ledger.close();
    }
  },
});
