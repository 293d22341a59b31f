/**
 * Real nodes (in-process network) settling on the Solidity contracts (Hardhat's EVM in this
 * process) under the chain-decided settlement (`policy.settlement: "chain"`): the escrow carries
 * terms, the contracts choose the verifiers among those bonded, each verifier node signs its
 * attestation (EIP-712, its account's key) and submits it, and the contracts' count moves the job.
 * The client never records a verdict.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChainEvent, ChainPort } from "../../chain/port.ts";
import type { JobSpec } from "../../machines/types.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { commitmentOf } from "../../runtime/compute/mod.ts";
import { createNode, type Node } from "../../runtime/kernel/mod.ts";
import { startEvmMarket } from "../../chain/evm/deploy.ts";

function spec(): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: "cpu", minStake: 100n },
    maxPrice: 1_000n,
    bidWindowMs: 300,
    executionMs: 10_000,
    verificationMs: 10_000,
    maxAttempts: 1,
    verifierCount: 4,
  };
}

async function run(fault: "none" | "wrong_result") {
  const evm = await startEvmMarket();
  const network = new InProcessNetwork({ heartbeatMs: 1_000 });
  const nodes: Node[] = [];
  const calls: string[] = [];
  const policy = { bidSelection: "lowest_price", quorum: "bft", settlement: "chain" } as const;
  try {
    const clientPort = await evm.connect("client", { pollMs: 20 });
    const counted = new Proxy(clientPort, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          calls.push(String(key));
          return value.apply(target, args);
        };
      },
    }) as ChainPort;
    const client = createNode({
      id: "client",
      roles: ["client"],
      network: network.join("client"),
      chain: counted,
      policy,
      capabilityIntervalMs: 0,
    });
    nodes.push(client);
    nodes.push(createNode({
      id: "worker-1",
      roles: ["worker"],
      network: network.join("worker-1"),
      chain: await evm.connect("worker-1", { pollMs: 20 }),
      policy,
      worker: { hardware: "cpu", stake: 1_000n, priceRatio: 0.5, etaMs: 100, capacity: 2, fault },
      capabilityIntervalMs: 0,
    }));
    for (let i = 1; i <= 5; i++) {
      const id = `verifier-${i}`;
      const port = await evm.connect(id, { pollMs: 20 });
      // The operator bonds each verifier on chain (the node does not yet do it at start).
      await port.stake({ amount: 100n, role: "verifier" });
      nodes.push(createNode({
        id,
        roles: ["verifier"],
        network: network.join(id),
        chain: port,
        policy,
        capabilityIntervalMs: 0,
      }));
    }
    for (const node of nodes) await node.start();
    for (const node of nodes) await node.announceCapabilities();
    const jobId = client.submitJob({ spec: spec() });
    const deadline = Date.now() + 60_000;
    let state: string | undefined;
    while (Date.now() < deadline) {
      state = client.job(jobId)?.state;
      if (state !== undefined && ["settled", "refunded", "failed", "expired"].includes(state)) {
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const node of nodes) await node.settled();
    const events: ChainEvent[] = (await clientPort.eventsSince(
      { blockNumber: 0, eventIndex: 0 },
      { limit: 10_000 },
    )).events.filter((e) => "jobId" in e && e.jobId === jobId);
    const totals = await clientPort.totals();
    return { state, events, calls, totals, stake: await clientPort.stakeOf("worker-1") };
  } finally {
    for (const node of nodes) await node.stop();
    network.close();
    await evm.close();
  }
}

Deno.test({
  name: "nodes settle on the EVM contracts under chain-decided settlement: chosen, attested, paid",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const r = await run("none");
    assert.equal(r.state, "settled", r.events.map((e) => e.name).join(", "));
    const assigned = r.events.find((e) => e.name === "WorkerAssigned");
    assert.ok(assigned?.name === "WorkerAssigned");
    assert.equal(assigned.verifiers.length, 4, "the contracts chose 4 of the 5 bonded verifiers");
    assert.ok(r.events.filter((e) => e.name === "AttestationRecorded").length >= 3);
    assert.ok(r.events.some((e) => e.name === "JobVerified"));
    assert.ok(r.events.some((e) => e.name === "PaymentReleased"));
    assert.ok(!r.calls.includes("recordVerification"), "the client's word is never asked");
    assert.equal(
      r.totals.escrowed,
      r.totals.paid + r.totals.fees + r.totals.refunded + r.totals.locked,
    );
  },
});

Deno.test({
  name:
    "nodes settle on the EVM contracts under chain-decided settlement: a wrong result disputed and slashed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const r = await run("wrong_result");
    assert.equal(r.state, "refunded", r.events.map((e) => e.name).join(", "));
    assert.ok(r.events.some((e) => e.name === "JobDisputed"));
    const slashed = r.events.filter((e) => e.name === "WorkerSlashed");
    assert.ok(
      slashed.some((e) =>
        e.name === "WorkerSlashed" && e.worker === "worker-1" && e.reason === "invalid_compute"
      ),
      JSON.stringify(slashed.map((e) => e.name === "WorkerSlashed" ? [e.worker, e.reason] : [])),
    );
    assert.equal(r.stake, 500n);
    assert.ok(!r.calls.includes("recordVerification"));
    assert.equal(r.totals.staked, r.totals.bonded + r.totals.slashed + r.totals.withdrawn);
  },
});
