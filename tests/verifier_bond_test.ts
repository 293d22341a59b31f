/**
 * Chain-decided settlement is the node's default, and a verifier node bonds itself on chain as a
 * verifier at start (`verifierStake`, config `verifier.stake`, default
 * {@link DEFAULT_VERIFIER_STAKE}): the chain chooses the job's verifiers among the nodes that
 * bonded, and a node that bonded nothing (an explicit 0) is never chosen. Legacy settlement is an
 * explicit opt-in, and the default falls back to it only on a chain port without the
 * chain-decided calls.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainPort } from "../chain/port.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import {
  createNode,
  DEFAULT_VERIFIER_STAKE,
  type Node,
  NODE_DEFAULT_POLICY,
  nodePolicy,
} from "../runtime/kernel/mod.ts";
import { parseConfig } from "../runtime/ops/mod.ts";

Deno.test("by default a node runs chain-decided jobs, its verifiers bond themselves and the chain chooses among them", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork({ heartbeatMs: 1_000 });
  const nodes: Node[] = [];
  // No policy anywhere: the defaults decide.
  const make = (id: string, extra: Record<string, unknown>) => {
    const node = createNode({
      id,
      network: network.join(id),
      chain: ledger.as(id),
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
  for (let i = 1; i <= 3; i++) make(`verifier-${i}`, { roles: ["verifier"], verifierStake: 100n });
  make("default-bond", { roles: ["verifier"] });
  // An explicit 0 bonds nothing: the chain never chooses it, though it announces itself.
  make("unbonded", { roles: ["verifier"], verifierStake: 0n });
  try {
    for (const node of nodes) await node.start();
    for (const node of nodes) await node.announceCapabilities();
    assert.equal(client.policy.settlement, "chain");
    const reader = ledger.as("reader");
    for (let i = 1; i <= 3; i++) assert.equal(await reader.stakeOf(`verifier-${i}`), 100n);
    assert.equal(await reader.stakeOf("default-bond"), DEFAULT_VERIFIER_STAKE);
    assert.equal(await reader.stakeOf("unbonded"), 0n);
    assert.ok(client.verifierPool().includes("unbonded"), "gossip names it all the same");
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
    const deadline = Date.now() + 30_000;
    while (!client.job(jobId)?.done && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(client.job(jobId)?.state, "settled");
    assert.equal(client.job(jobId)?.context.policy.settlement, "chain");
    const { events } = await reader.eventsSince({ blockNumber: 0, eventIndex: 0 }, {
      limit: 10_000,
    });
    const escrowed = events.find((e) => e.name === "JobSubmitted");
    assert.ok(escrowed?.name === "JobSubmitted");
    const assigned = events.find((e) => e.name === "WorkerAssigned");
    assert.ok(assigned?.name === "WorkerAssigned");
    assert.deepEqual([...assigned.verifiers].sort(), [
      "default-bond",
      "verifier-1",
      "verifier-2",
      "verifier-3",
    ]);
    // The chain decided: the verdict is JobVerified from the verifiers' attestations.
    assert.ok(events.some((e) => e.name === "JobVerified"));
  } finally {
    for (const node of nodes) await node.stop();
    ledger.close();
  }
});

Deno.test("the node's policy: chain by default, legacy only when asked or when the chain port cannot decide", () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    const port = ledger.as("n");
    assert.deepEqual(nodePolicy({ chain: port }), NODE_DEFAULT_POLICY);
    assert.equal(NODE_DEFAULT_POLICY.settlement, "chain");
    // A policy without settlement takes the default's.
    assert.deepEqual(
      nodePolicy({ chain: port, policy: { bidSelection: "fastest", quorum: "bft" } }),
      {
        bidSelection: "fastest",
        quorum: "bft",
        settlement: "chain",
      },
    );
    const legacy = { bidSelection: "lowest_price", quorum: "bft", settlement: "legacy" } as const;
    assert.deepEqual(nodePolicy({ chain: port, policy: legacy }), legacy);
    // A port without the chain-decided calls (the Starknet adapter before they land).
    const bare = new Proxy(port, {
      get: (t, k) => k === "submitAttestations" ? undefined : Reflect.get(t, k),
    }) as ChainPort;
    assert.equal(nodePolicy({ chain: bare }).settlement, "legacy");
    const network = new InProcessNetwork();
    assert.throws(
      () =>
        createNode({
          id: "n",
          roles: ["client"],
          network: network.join("n"),
          chain: bare,
          policy: { bidSelection: "lowest_price", quorum: "bft", settlement: "chain" },
        }),
      {
        name: "RangeError",
        message:
          /^Cannot create node "n": policy.settlement "chain" needs a chain port with chain-decided calls/,
      },
    );
    assert.throws(
      () =>
        createNode({
          id: "n2",
          roles: ["verifier"],
          network: network.join("n2"),
          chain: port,
          verifierStake: -1n,
        }),
      { name: "RangeError", message: /^Invalid verifierStake -1: must be a non-negative bigint$/ },
    );
  } finally {
    ledger.close();
  }
});

Deno.test("a job submitted with a policy that leaves settlement out follows the node's", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const node = createNode({
    id: "c",
    roles: ["client"],
    network: network.join("c"),
    chain: ledger.as("c"),
    capabilityIntervalMs: 0,
  });
  try {
    await node.start();
    const input = { a: [[1]], b: [[1]] };
    const spec = {
      kind: { type: "builtin", name: "matmul" },
      input,
      inputCommitment: commitmentOf(input),
      maxPrice: 10n,
      verifierCount: 0,
    } as const;
    const a = node.submitJob({ spec, policy: { bidSelection: "fastest", quorum: "majority" } });
    const b = node.submitJob({
      spec,
      policy: { bidSelection: "fastest", quorum: "bft", settlement: "legacy" },
    });
    assert.deepEqual(node.job(a)?.context.policy, {
      bidSelection: "fastest",
      quorum: "majority",
      settlement: "chain",
    });
    assert.equal(node.job(b)?.context.policy.settlement, "legacy");
  } finally {
    await node.stop();
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
  const defaults = parseConfig({ dataDir: "./d", roles: ["verifier"] });
  assert.equal(defaults.verifier.stake, DEFAULT_VERIFIER_STAKE);
  assert.equal(defaults.policy.settlement, undefined, "the node decides: chain where it can");
  assert.equal(parseConfig({ dataDir: "./d", verifier: { stake: 0 } }).verifier.stake, 0n);
  assert.throws(() => parseConfig({ dataDir: "./d", policy: { settlement: "client" } }), {
    message: /Invalid config "policy.settlement": must be legacy or chain/,
  });
  assert.throws(() => parseConfig({ dataDir: "./d", verifier: { stake: -1 } }), {
    message: /Invalid config "verifier.stake"/,
  });
});
