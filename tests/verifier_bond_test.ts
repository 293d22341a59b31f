/**
 * A verifier node bonds itself on chain as a verifier at start (`verifierStake`, config
 * `verifier.stake`), so an operator turns chain-decided settlement on with configuration alone:
 * the chain chooses the job's verifiers among the nodes that bonded, and a node that bonded
 * nothing is never chosen.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { createNode, type Node } from "../runtime/kernel/mod.ts";
import { parseConfig } from "../runtime/ops/mod.ts";

Deno.test("verifier nodes bond themselves at start and the chain chooses among them", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork({ heartbeatMs: 1_000 });
  const policy = { bidSelection: "lowest_price", quorum: "bft", settlement: "chain" } as const;
  const nodes: Node[] = [];
  const make = (id: string, extra: Record<string, unknown>) => {
    const node = createNode({
      id,
      network: network.join(id),
      chain: ledger.as(id),
      policy,
      capabilityIntervalMs: 0,
      ...extra,
    } as never);
    nodes.push(node);
    return node;
  };
  const client = make("client", { roles: ["client"] });
  make("worker-1", {
    roles: ["worker"],
    worker: { hardware: "cpu", stake: 1_000n, priceRatio: 0.5, etaMs: 100 },
  });
  for (let i = 1; i <= 4; i++) make(`verifier-${i}`, { roles: ["verifier"], verifierStake: 100n });
  make("unbonded", { roles: ["verifier"] });
  try {
    for (const node of nodes) await node.start();
    for (const node of nodes) await node.announceCapabilities();
    const reader = ledger.as("reader");
    for (let i = 1; i <= 4; i++) assert.equal(await reader.stakeOf(`verifier-${i}`), 100n);
    assert.equal(await reader.stakeOf("unbonded"), 0n);
    const input = { a: [[1, 2]], b: [[3], [4]] };
    const jobId = client.submitJob({
      spec: {
        kind: { type: "builtin", name: "matmul" },
        input,
        inputCommitment: commitmentOf(input),
        requirements: { hardware: "cpu", minStake: 100n },
        maxPrice: 1_000n,
        bidWindowMs: 150,
        executionMs: 5_000,
        verificationMs: 5_000,
        maxAttempts: 1,
        verifierCount: 4,
      },
    });
    const deadline = Date.now() + 20_000;
    while (!client.job(jobId)?.done && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(client.job(jobId)?.state, "settled");
    const { events } = await reader.eventsSince({ blockNumber: 0, eventIndex: 0 }, {
      limit: 10_000,
    });
    const assigned = events.find((e) => e.name === "WorkerAssigned");
    assert.ok(assigned?.name === "WorkerAssigned");
    assert.deepEqual([...assigned.verifiers].sort(), [
      "verifier-1",
      "verifier-2",
      "verifier-3",
      "verifier-4",
    ]);
  } finally {
    for (const node of nodes) await node.stop();
    ledger.close();
  }
});

Deno.test("config: verifier.stake and policy.settlement are accepted, and a bad value names its key", () => {
  const config = parseConfig({
    dataDir: "./d",
    roles: ["verifier"],
    verifier: { stake: "100" },
    policy: { settlement: "chain" },
  });
  assert.equal(config.verifier.stake, 100n);
  assert.equal(config.policy.settlement, "chain");
  assert.throws(() => parseConfig({ dataDir: "./d", policy: { settlement: "client" } }), {
    message: /Invalid config "policy.settlement": must be legacy or chain/,
  });
  assert.throws(() => parseConfig({ dataDir: "./d", verifier: { stake: -1 } }), {
    message: /Invalid config "verifier.stake"/,
  });
});
