/**
 * Real nodes (in-process network, a local ledger file) running jobs under the chain-decided
 * settlement (`policy.settlement: "chain"`): the escrow carries terms, the chain chooses the
 * verifiers among those bonded, each verifier node signs and submits its attestation, and the
 * chain's verdict moves the jobs. The client never records a verdict: a decorator on its chain
 * port counts the calls it makes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainEvent, ChainPort } from "../chain/port.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { createNode, type Node } from "../runtime/kernel/mod.ts";

function spec(input: unknown = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] }): JobSpec {
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: "cpu", minStake: 100n },
    maxPrice: 1_000n,
    bidWindowMs: 150,
    executionMs: 5_000,
    verificationMs: 5_000,
    maxAttempts: 1,
    verifierCount: 4,
  };
}

/** Counts the methods called on `port`. */
function counting(port: ChainPort, calls: string[]): ChainPort {
  return new Proxy(port, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        calls.push(String(key));
        return value.apply(target, args);
      };
    },
  });
}

async function market(
  fault: "none" | "wrong_result",
  options: { bonded?: number; sybils?: number } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "ciro-chain-settlement-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  const network = new InProcessNetwork({ heartbeatMs: 1_000 });
  const calls: string[] = [];
  const nodes: Node[] = [];
  const policy = { bidSelection: "lowest_price", quorum: "bft", settlement: "chain" } as const;
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    chain: counting(ledger.as("client"), calls),
    policy,
    capabilityIntervalMs: 0,
  });
  nodes.push(client);
  nodes.push(createNode({
    id: "worker-1",
    roles: ["worker"],
    network: network.join("worker-1"),
    chain: ledger.as("worker-1"),
    policy,
    worker: { hardware: "cpu", stake: 1_000n, priceRatio: 0.5, etaMs: 100, capacity: 2, fault },
    capabilityIntervalMs: 0,
  }));
  for (let i = 1; i <= (options.bonded ?? 5); i++) {
    const id = `verifier-${i}`;
    // Each verifier node bonds itself on chain at start.
    nodes.push(createNode({
      id,
      roles: ["verifier"],
      network: network.join(id),
      chain: ledger.as(id),
      policy,
      verifierStake: 100n,
      capabilityIntervalMs: 0,
    }));
  }
  // Sybils: verifier identities that announce themselves over gossip but bond nothing, and
  // would dispute everything.
  for (let i = 1; i <= (options.sybils ?? 0); i++) {
    const id = `sybil-${i}`;
    nodes.push(createNode({
      id,
      roles: ["verifier"],
      network: network.join(id),
      chain: ledger.as(id),
      policy,
      verifierFault: "always_invalid",
      verifierStake: 0n,
      capabilityIntervalMs: 0,
    }));
  }
  for (const node of nodes) await node.start();
  for (const node of nodes) await node.announceCapabilities();
  const stop = async () => {
    for (const node of nodes) await node.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  };
  return { ledger, client, calls, stop };
}

async function finish(client: Node, jobId: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const state = client.job(jobId)?.state;
    if (state !== undefined && ["settled", "refunded", "failed", "expired"].includes(state)) {
      return state;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Job ${jobId} did not finish: ${client.job(jobId)?.state}`);
}

async function events(ledger: LocalLedger): Promise<ChainEvent[]> {
  const port = ledger.as("reader");
  return (await port.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 10_000 })).events;
}

Deno.test("chain-decided settlement on real nodes: verifiers chosen and counted by the chain, the worker paid", async () => {
  const m = await market("none");
  try {
    const jobId = m.client.submitJob({ spec: spec() });
    assert.equal(await finish(m.client, jobId), "settled");
    const evs = await events(m.ledger);
    const assigned = evs.find((e) => e.name === "WorkerAssigned");
    assert.ok(assigned?.name === "WorkerAssigned");
    assert.equal(assigned.verifiers.length, 4, "the chain chose 4 of the 5 bonded verifiers");
    const recorded = evs.filter((e) => e.name === "AttestationRecorded");
    assert.ok(recorded.length >= 3, `${recorded.length} attestations counted on chain`);
    assert.ok(evs.some((e) => e.name === "JobVerified"));
    assert.ok(evs.some((e) => e.name === "PaymentReleased"));
    assert.ok(!m.calls.includes("recordVerification"), `the client called ${m.calls}`);
    const t = await m.ledger.as("reader").totals();
    assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
  } finally {
    await m.stop();
  }
});

Deno.test("chain-decided settlement on real nodes: a wrong result is disputed by the chain's quorum", async () => {
  const m = await market("wrong_result");
  try {
    const jobId = m.client.submitJob({ spec: spec() });
    assert.equal(await finish(m.client, jobId), "refunded");
    const evs = await events(m.ledger);
    assert.ok(evs.some((e) => e.name === "JobDisputed"));
    const slashed = evs.filter((e) => e.name === "WorkerSlashed");
    assert.deepEqual(slashed.map((e) => e.name === "WorkerSlashed" ? e.worker : ""), ["worker-1"]);
    assert.ok(!m.calls.includes("recordVerification"), `the client called ${m.calls}`);
  } finally {
    await m.stop();
  }
});

Deno.test("chain-decided settlement on real nodes: an input that fails is reported, confirmed by the verifiers, refunded, nobody slashed, the reason reaches the client", async () => {
  const m = await market("none");
  try {
    // A 2x2 times a 3x3 matrix: every honest executor fails on it.
    const jobId = m.client.submitJob({
      spec: spec({ a: [[1, 2], [3, 4]], b: [[1, 2, 3], [4, 5, 6], [7, 8, 9]] }),
    });
    assert.equal(await finish(m.client, jobId), "failed");
    const evs = await events(m.ledger);
    const reported = evs.find((e) => e.name === "FailureReported");
    assert.ok(reported?.name === "FailureReported", "the worker reported the failure on chain");
    assert.ok(evs.some((e) => e.name === "JobVerified"), "the verifiers confirmed it");
    assert.ok(!evs.some((e) => e.name === "WorkerSlashed"), "nobody slashed");
    const refund = evs.find((e) => e.name === "EscrowRefunded");
    assert.ok(refund?.name === "EscrowRefunded" && refund.reason === "failed");
    const failure = m.client.job(jobId)?.context.failure;
    assert.equal(failure, `execution failed: ${reported.reason}`);
    assert.ok(!m.calls.includes("recordVerification"));
  } finally {
    await m.stop();
  }
});

Deno.test("chain-decided settlement on real nodes: zero-stake Sybil verifiers are never chosen and cannot dispute honest work", async () => {
  const m = await market("none", { bonded: 4, sybils: 8 });
  try {
    const jobIds = [1, 2, 3].map(() => m.client.submitJob({ spec: spec() }));
    for (const jobId of jobIds) {
      const state = await finish(m.client, jobId);
      assert.equal(state, "settled", `${jobId}: ${m.client.job(jobId)?.context.failure}`);
    }
    const evs = await events(m.ledger);
    for (const e of evs) {
      if (e.name === "WorkerAssigned") {
        assert.ok(e.verifiers.every((v) => v.startsWith("verifier-")), `chose ${e.verifiers}`);
      }
      if (e.name === "AttestationRecorded") assert.ok(e.verifier.startsWith("verifier-"));
    }
    assert.ok(!evs.some((e) => e.name === "WorkerSlashed"), "nobody slashed");
  } finally {
    await m.stop();
  }
});

Deno.test("chain-decided settlement on real nodes: a job asking for more verifiers than are bonded is refused at submission, with the reason", async () => {
  const m = await market("none", { bonded: 3 });
  try {
    const jobId = m.client.submitJob({ spec: spec() });
    assert.equal(await finish(m.client, jobId), "failed");
    const failure = m.client.job(jobId)?.context.failure ?? "";
    assert.match(failure, /not_enough_verifiers: .*asks for 4 verifiers but 3 are bonded/);
    const evs = await events(m.ledger);
    assert.ok(!evs.some((e) => e.name === "JobSubmitted"), "no escrow was taken");
  } finally {
    await m.stop();
  }
});
