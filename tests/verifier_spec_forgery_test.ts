/**
 * The second review of a chosen verifier's spec checks (issue 16), end to end on the in-process
 * network and a real local ledger, each forgery sent by a peer (`mallory`) that is not the job's
 * owner (the owner's node is `owner`, its chain account `client`: nothing binds a peer to it):
 *
 * - H1: a builtin job's spec forged as `{ type: "onnx", modelHash: 0x00..00 }` (the chain records
 *   a builtin's model hash as zero) and sent first costs its sender; the verifier keeps the
 *   owner's and the job settles.
 * - H2: a spec forged with `maxAttempts: 1` (the job's is 2; the first worker is silent) is not
 *   the escrow's (its spec hash differs): refused, and the verifier follows the chain to the
 *   second attempt.
 * - H3: on a node that is both worker and verifier, a re-announcement of the job by another peer
 *   (attempt 3, another input) does not replace the owner's chain-checked assignment: the
 *   verifier re-runs the job's input and the honest worker is paid, not slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import {
  announcementTopicsOf,
  decodeMessage,
  encodeMessage,
  type Topic,
  TOPICS,
} from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { specHashOf } from "../protocols/spec_hash.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { assignmentMismatch, escrowTermsOf } from "../runtime/kernel/assignment_hints.ts";
import { createNode, type Node } from "../runtime/kernel/mod.ts";
import { oneVerifierSpec } from "./_drive.ts";
import { gate, lagging } from "./_chain_lag.ts";
import { finished, until } from "./_poll.ts";

/** `port` whose assignments to `peer` wait until `held` resolves (the forgeries go first). */
function delayedTo(port: NetworkPort, peer: string, held: Promise<void>): NetworkPort {
  return new Proxy(port, {
    get(target, key) {
      if (key === "send") {
        return async (to: string, topic: Topic, data: Uint8Array, o?: object) => {
          if (topic === TOPICS.assignments && to === peer) await held;
          return target.send(to, topic, data, o);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** `node`'s score of peer `peer` (100 for one it has no actor of). */
function scoreOf(node: Node, peer: string): number {
  return node.peers().find((p) => p.peer === peer)?.score ?? 100;
}

const common = { capabilityIntervalMs: 0, retainFinishedMs: null };

for (const lag of [false, true]) {
  Deno.test(
    `A verifier refuses a builtin job's spec forged as ONNX with the zero model hash, sent first${
      lag ? " while its chain lags" : ""
    } (review 2, H1)`,
    async () => {
      const ledger = LocalLedger.open(":memory:");
      const network = new InProcessNetwork();
      const forged = gate();
      const owner = createNode({
        id: "owner",
        roles: ["client"],
        network: lag
          ? delayedTo(network.join("owner"), "v1", forged.opened)
          : network.join("owner"),
        chain: ledger.as("client"),
        ...common,
      });
      const worker = createNode({
        id: "w1",
        roles: ["worker"],
        network: network.join("w1"),
        chain: ledger.as("w1"),
        worker: { hardware: "cpu", stake: 100n },
        ...common,
      });
      const verifier = createNode({
        id: "v1",
        roles: ["verifier"],
        network: network.join("v1"),
        chain: lag ? lagging(ledger.as("v1"), forged.opened) : ledger.as("v1"),
        ...common,
      });
      const mallory = network.join("mallory");
      const all = [owner, worker, verifier];
      const jobId = "forged-kind";
      const spec: JobSpec = oneVerifierSpec();
      const watch = ledger.as("mallory").subscribe((event) => {
        if (event.name !== (lag ? "WorkerAssigned" : "JobSubmitted") || event.jobId !== jobId) {
          return;
        }
        const kind = { type: "onnx", modelHash: "0".repeat(64) };
        // Encoded by hand: the schema refuses an ONNX kind with the zero hash before sending too.
        const message = {
          type: "job.assign",
          jobId,
          worker: "w1",
          bidId: `${jobId}.1.w1`,
          price: "1",
          verifiers: ["v1"],
          attempt: 1,
          spec: { ...wireSpec(spec), kind },
        };
        void (async () => {
          await mallory.send(
            "v1",
            TOPICS.assignments,
            new TextEncoder().encode(JSON.stringify(message)),
          );
          await until(
            "the forgery judged",
            30_000,
            () => scoreOf(verifier, "mallory") < 100 || undefined,
          );
          forged.open();
        })();
      });
      try {
        await mallory.start();
        for (const n of all) await n.start();
        for (const n of all) await n.announceCapabilities();
        const done = finished(owner, jobId);
        owner.submitJob({ spec, jobId });
        assert.equal(await done, "settled", "the verifier re-ran the builtin and attested");
        assert.ok(scoreOf(verifier, "mallory") < 100, "the forgery cost its sender");
        assert.deepEqual(verifier.job(jobId)?.context.spec.kind, spec.kind);
      } finally {
        watch();
        for (const n of all) await n.stop();
        await mallory.stop();
        network.close();
        ledger.close();
      }
    },
  );
}

/** A spec as the wire spells it (amounts as decimal strings). */
function wireSpec(spec: JobSpec): Record<string, unknown> {
  return JSON.parse(JSON.stringify(spec, (_k, v) => typeof v === "bigint" ? String(v) : v));
}

Deno.test("A worker and verifier keeps the owner's chain-checked assignment over a re-announcement by another peer with another input (review 2, H3)", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const named = gate();
  const owner = createNode({
    id: "owner",
    roles: ["client"],
    network: network.join("owner"),
    chain: ledger.as("client"),
    ...common,
  });
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    worker: { hardware: "cpu", stake: 100n },
    ...common,
  });
  // Declines the job as a worker (its price floor is above the job's cap); its chain follower
  // shows the naming only once the re-announcement was heard.
  const verifier = createNode({
    id: "v1",
    roles: ["worker", "verifier"],
    network: network.join("v1"),
    chain: lagging(ledger.as("v1"), named.opened),
    worker: { hardware: "cpu", stake: 100n, minPrice: 10_000n },
    ...common,
  });
  const mallory = network.join("mallory");
  const all = [owner, worker, verifier];
  const jobId = "forged-announce";
  const spec: JobSpec = oneVerifierSpec();
  const input = { a: [[9, 9], [9, 9]], b: [[1, 0], [0, 1]] };
  const forged: JobSpec = { ...spec, input, inputCommitment: commitmentOf(input) };
  const announce = (id: string, attempt: number, s: JobSpec) => {
    const topic = announcementTopicsOf(s, id, attempt, 0)[0]!;
    const message = {
      type: "job.announce",
      jobId: id,
      owner: "mallory",
      attempt,
      bidWindowEndsAt: Date.now() + 600_000,
      spec: s,
    };
    return mallory.publish(topic, encodeMessage(topic as never, message as never));
  };
  const watch = ledger.as("mallory").subscribe((event) => {
    if (event.name !== "WorkerAssigned" || event.jobId !== jobId) return;
    void (async () => {
      await until(
        "the owner's assignment kept",
        30_000,
        () => verifier.declined(jobId)?.reason === "awaiting_chain" || undefined,
      );
      await announce(jobId, 3, forged);
      // A second announcement on the same topic, after the first: once it is recorded, the
      // first was judged.
      await announce("probe", 1, forged);
      await until("the probe declined", 30_000, () => verifier.declined("probe") || undefined);
      named.open();
    })();
  });
  try {
    await ledger.as("v1").stake({ amount: 100n, role: "verifier" });
    await ledger.as("v1").registerKey!({ publicKey: await ledger.as("v1").accountPublicKey!() });
    await mallory.start();
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const done = finished(owner, jobId);
    owner.submitJob({ spec, jobId });
    assert.equal(await done, "settled", "the verifier re-ran the job's own input");
    assert.equal(verifier.job(jobId)?.context.owner, "owner");
    assert.equal(verifier.job(jobId)?.context.spec.inputCommitment, spec.inputCommitment);
    assert.equal(await ledger.as("w1").stakeOf("w1"), 100n, "the honest worker was not slashed");
  } finally {
    watch();
    for (const n of all) await n.stop();
    await mallory.stop();
    network.close();
    ledger.close();
  }
});

Deno.test("The wire refuses an ONNX job kind with the zero model hash (a builtin's on chain) (review 2, H1)", () => {
  const spec = {
    ...wireSpec(oneVerifierSpec()),
    kind: { type: "onnx", modelHash: "0".repeat(64) },
  };
  const message = {
    type: "job.assign",
    jobId: "j1",
    worker: "w1",
    bidId: "j1.1.w1",
    price: "1",
    verifiers: ["v1"],
    attempt: 1,
    spec,
  };
  const data = new TextEncoder().encode(JSON.stringify(message));
  assert.throws(() => decodeMessage(TOPICS.assignments, data), {
    name: "WireError",
    message: /zero hash/,
  });
  const ok = { ...message, spec: { ...spec, kind: { type: "onnx", modelHash: "ab".repeat(32) } } };
  decodeMessage(TOPICS.assignments, new TextEncoder().encode(JSON.stringify(ok)));
});

Deno.test("assignmentMismatch() refuses an ONNX spec with the zero model hash for a builtin's escrow (review 2, H1)", () => {
  const spec = oneVerifierSpec();
  const terms = escrowTermsOf({
    client: "client",
    amount: spec.maxPrice,
    modelHash: "0".repeat(64),
    inputCommitment: spec.inputCommitment,
    minStake: spec.requirements.minStake,
    verifierCount: spec.verifierCount,
    bidWindowMs: spec.bidWindowMs,
    executionMs: spec.executionMs,
    verificationMs: spec.verificationMs,
  });
  const hint = { jobId: "j1", from: "mallory", worker: "w1", verifiers: ["v1"], attempt: 1, spec };
  assert.equal(assignmentMismatch(hint, terms, false), null);
  const forged = { ...spec, kind: { type: "onnx", modelHash: "0".repeat(64) } } as const;
  assert.match(assignmentMismatch({ ...hint, spec: forged }, terms, false) ?? "", /zero hash/);
});

Deno.test("A verifier refuses a spec forged with maxAttempts 1 (not the escrow's spec hash) and follows the chain to the second attempt (review 2, H2)", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const forged = gate();
  const owner = createNode({
    id: "owner",
    roles: ["client"],
    network: delayedTo(network.join("owner"), "v1", forged.opened),
    chain: ledger.as("client"),
    ...common,
  });
  // The first worker bids lowest and stays silent: the job is auctioned again, and w2 wins.
  const silent = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    worker: { hardware: "cpu", stake: 100n, priceRatio: 0.3, fault: "silent" },
    ...common,
  });
  const worker = createNode({
    id: "w2",
    roles: ["worker"],
    network: network.join("w2"),
    chain: ledger.as("w2"),
    worker: { hardware: "cpu", stake: 100n, priceRatio: 0.9 },
    ...common,
  });
  const verifier = createNode({
    id: "v1",
    roles: ["verifier"],
    network: network.join("v1"),
    chain: lagging(ledger.as("v1"), forged.opened),
    ...common,
  });
  const mallory = network.join("mallory");
  const all = [owner, silent, worker, verifier];
  const jobId = "forged-attempts";
  // Execution short enough for the silent worker's attempt to end; verification wide.
  const spec: JobSpec = {
    ...oneVerifierSpec(),
    executionMs: 3_000,
    verificationMs: 20_000,
    maxAttempts: 2,
  };
  const watch = ledger.as("mallory").subscribe((event) => {
    if (event.name !== "WorkerAssigned" || event.jobId !== jobId || event.attempt !== 1) return;
    const forgery = encodeMessage(TOPICS.assignments, {
      type: "job.assign",
      jobId,
      worker: event.worker,
      bidId: `${jobId}.1.${event.worker}`,
      price: event.price,
      verifiers: [...event.verifiers],
      attempt: 1,
      spec: { ...spec, maxAttempts: 1 },
    });
    void (async () => {
      await mallory.send("v1", TOPICS.assignments, forgery);
      await until(
        "the forgery judged",
        30_000,
        () => scoreOf(verifier, "mallory") < 100 || undefined,
      );
      forged.open();
    })();
  });
  try {
    await mallory.start();
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const done = finished(owner, jobId);
    owner.submitJob({ spec, jobId });
    assert.equal(await done, "settled", "the second attempt's worker was paid");
    assert.ok(scoreOf(verifier, "mallory") < 100, "the forgery cost its sender");
    const submitted = (await ledger.as("reader").eventsSince({ blockNumber: 0, eventIndex: 0 }, {
      limit: 1_000,
    })).events.find((e) => e.name === "JobSubmitted" && e.jobId === jobId);
    assert.equal(
      (submitted as { specHash?: string } | undefined)?.specHash,
      specHashOf(spec),
      "the escrow commits to the owner's spec",
    );
    assert.equal(verifier.job(jobId)?.context.spec.maxAttempts, 2);
  } finally {
    watch();
    for (const n of all) await n.stop();
    await mallory.stop();
    network.close();
    ledger.close();
  }
});

Deno.test("assignmentMismatch() refuses a spec that is not the escrow's spec hash, though every field the escrow shows matches (review 2, H2)", () => {
  const spec = oneVerifierSpec();
  const terms = escrowTermsOf({
    client: "client",
    amount: spec.maxPrice,
    modelHash: "0".repeat(64),
    inputCommitment: spec.inputCommitment,
    minStake: spec.requirements.minStake,
    verifierCount: spec.verifierCount,
    bidWindowMs: spec.bidWindowMs,
    executionMs: spec.executionMs,
    verificationMs: spec.verificationMs,
    specHash: specHashOf(spec),
  });
  const hint = { jobId: "j1", from: "mallory", worker: "w1", verifiers: ["v1"], attempt: 1, spec };
  assert.equal(assignmentMismatch(hint, terms, false), null);
  for (
    const forged of [
      { ...spec, maxAttempts: 16 },
      { ...spec, priority: "high" as const },
      { ...spec, requirements: { ...spec.requirements, hardware: "gpu" as const } },
    ]
  ) {
    assert.match(
      assignmentMismatch({ ...hint, spec: forged }, terms, false) ?? "",
      /carries a spec whose hash is [0-9a-f]{64}: the chain's escrow commits to/,
    );
    // Without the escrow's spec hash (an older escrow), the field checks let these by.
    const { specHash: _none, ...older } = terms;
    assert.equal(assignmentMismatch({ ...hint, spec: forged }, older, false), null);
  }
});
