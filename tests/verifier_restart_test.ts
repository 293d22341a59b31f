/**
 * A verifier restarted on its data directory keeps the jobs the chain chose it for before the
 * owner's assignment with the spec came (issue 16 item 2): the chain's naming is journaled with
 * the job's escrow terms (the escrow's `JobSubmitted` is behind the restarted node's chain
 * cursor, so it never shows again), the record awaiting the spec comes back even from before the
 * checkpoint a clean stop writes, and the owner's assignment that comes after the restart is
 * checked against the journaled terms: a forged or mismatched one costs its sender and keeps
 * nothing, the client's creates the job's actor. A real local ledger file, a real journal, the
 * in-process network.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { encodeMessage, TOPICS } from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { DECLINE_DEFAULTS } from "../actors/declines.ts";
import { SqliteJournal } from "../runtime/durability/journal.ts";
import { type DurableNode, openDurableNode } from "../runtime/durability/recovery.ts";
import { until } from "./_poll.ts";

const NO_MODEL = "0".repeat(64);
/** The peers that sent assignments, by network. */
const senders = new Map<InProcessNetwork, Map<string, NetworkPort>>();

function spec(input: unknown = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] }): JobSpec {
  return {
    kind: { type: "builtin", name: "matmul" },
    input,
    inputCommitment: commitmentOf(input),
    requirements: { hardware: "cpu", minStake: 10n },
    maxPrice: 100n,
    bidWindowMs: 500,
    // Wide margins: the machine running the tests is shared and loaded.
    executionMs: 600_000,
    verificationMs: 600_000,
    maxAttempts: 1,
    verifierCount: 1,
  };
}

/** The escrow's terms of a job with spec `s` (what the owner's escrow commits to). */
function terms(s: JobSpec) {
  const { verifierCount, bidWindowMs, executionMs, verificationMs } = s;
  return { verifierCount, bidWindowMs, executionMs, verificationMs };
}

function openVerifier(dir: string, network: InProcessNetwork, ledger: LocalLedger) {
  return openDurableNode({
    id: "v1",
    roles: ["verifier"],
    network: network.join("v1"),
    chain: ledger.as("v1"),
    capabilityIntervalMs: 0,
    dataDir: `${dir}/v1`,
    checkpointEvery: 2,
  });
}

/** The owner's assignment of `jobId` to `w1`, with `s`, sent by `from` to v1. */
async function assign(
  network: InProcessNetwork,
  from: string,
  s: JobSpec,
  jobId = "j1",
): Promise<void> {
  let port = senders.get(network)?.get(from);
  if (port === undefined) {
    port = network.join(from);
    await port.start();
    senders.set(network, new Map([...senders.get(network) ?? [], [from, port]]));
  }
  const data = encodeMessage(TOPICS.assignments, {
    type: "job.assign",
    jobId,
    worker: "w1",
    bidId: "b1",
    price: 50n,
    verifiers: ["v1"],
    attempt: 1,
    spec: s,
  });
  await port.send("v1", TOPICS.assignments, data);
}

Deno.test("a verifier restarted after the chain named it keeps the owner's assignment that comes then, checked against the escrow journaled with the naming", async () => {
  const dir = await Deno.makeTempDir({ prefix: "verifier-restart-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let network = new InProcessNetwork();
  let v1: DurableNode | undefined;
  try {
    v1 = await openVerifier(dir, network, ledger);
    await v1.start(); // bonds v1 as a verifier: the chain may choose it
    const job = spec();
    const client = ledger.as("client");
    await ledger.as("w1").stake({ amount: 100n });
    await client.submitJob({
      jobId: "j1",
      amount: 100n,
      minStake: 10n,
      modelHash: NO_MODEL,
      inputCommitment: job.inputCommitment,
      ...terms(job),
    });
    await client.assignWorker({ jobId: "j1", worker: "w1", price: 50n });
    // The chain named v1 (the only bonded verifier) before any spec came.
    await until("the naming", 10_000, () => v1!.node.tree.declined("j1")?.assigned);
    const node = v1.node;
    assert.deepEqual(node.tree.declined("j1")?.assigned?.escrow, {
      client: "client",
      modelHash: NO_MODEL,
      inputCommitment: job.inputCommitment,
      amount: 100n,
      minStake: 10n,
      ...terms(job),
    });
    assert.equal(node.tree.declined("j1")?.assigned?.attempt, 1, "the chain's attempt");
    // A clean stop writes a checkpoint: the record is before it.
    await v1.stop();
    network.close();
    network = new InProcessNetwork();
    v1 = await openVerifier(dir, network, ledger);
    await v1.start();
    const record = v1.node.tree.declined("j1");
    assert.equal(record?.reason, "awaiting_spec", "the record came back from the journal");
    assert.equal(record.assigned?.escrow?.client, "client");

    // A forged assignment (another peer, another input), then one from the client whose spec is
    // not the escrowed one: each refused at the boundary at the sender's cost, nothing kept.
    const rejected = v1.node.stats.wireRejected;
    await assign(network, "mallory", spec({ a: [[7]], b: [[7]] }));
    await until(
      "the forgery refused",
      10_000,
      () => v1!.node.stats.wireRejected > rejected || undefined,
    );
    await assign(network, "client", spec({ a: [[9]], b: [[9]] }));
    await until(
      "the mismatch refused",
      10_000,
      () => v1!.node.stats.wireRejected > rejected + 1 || undefined,
    );
    await v1.node.settled();
    assert.equal(v1.node.tree.get("job:j1"), undefined, "no actor from a refused assignment");
    assert.equal(v1.node.tree.declined("j1")?.spec, undefined, "no spec kept");
    const scores = new Map(v1.node.peers().map((p) => [p.peer, p.score]));
    const initial = 100; // the peer machine's default initial score
    for (const peer of ["mallory", "client"]) {
      assert.ok((scores.get(peer) ?? initial) < initial, `${peer} paid for it: ${[...scores]}`);
    }

    // The client's own assignment creates the job's actor: v1 verifies the job it was chosen for.
    await assign(network, "client", job);
    await until("the job's actor", 10_000, () => v1!.node.tree.get("job:j1"));
    await v1.node.settled();
    const actor = v1.node.job("j1");
    assert.ok(actor !== undefined && !actor.done, `the job is open: ${actor?.state}`);
    assert.deepEqual(actor.context.roles, ["verifier"], "it verifies the job");
    assert.equal(actor.context.spec.inputCommitment, job.inputCommitment);
    assert.equal(v1.node.tree.declined("j1"), undefined, "the record gave way to the actor");
  } finally {
    await v1?.stop();
    network.close();
    ledger.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a verifier restarted between a job's escrow and the chain's naming (its cursor past the escrow) reads the escrow again and keeps the owner's assignment", async () => {
  const dir = await Deno.makeTempDir({ prefix: "verifier-restart-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let network = new InProcessNetwork();
  let v1: DurableNode | undefined;
  try {
    v1 = await openVerifier(dir, network, ledger);
    await v1.start();
    const job = spec();
    const client = ledger.as("client");
    await ledger.as("w1").stake({ amount: 100n });
    const escrow = (jobId: string) =>
      client.submitJob({
        jobId,
        amount: 100n,
        minStake: 10n,
        modelHash: NO_MODEL,
        inputCommitment: job.inputCommitment,
        ...terms(job),
      });
    await escrow("j1");
    // Another job names v1 before the restart: its journaled naming puts v1's chain cursor past
    // j1's escrow.
    await escrow("j0");
    await client.assignWorker({ jobId: "j0", worker: "w1", price: 50n });
    await until("j0's naming", 10_000, () => v1!.node.tree.declined("j0")?.assigned);
    await v1.stop();
    network.close();
    network = new InProcessNetwork();
    v1 = await openVerifier(dir, network, ledger);
    const j0 = v1.chainCursor;
    await v1.start();
    // The chain names v1 for j1 after the restart.
    await client.assignWorker({ jobId: "j1", worker: "w1", price: 50n });
    const assigned = await until(
      "j1's naming",
      10_000,
      () => v1!.node.tree.declined("j1")?.assigned,
    );
    assert.ok(j0.blockNumber > 0, "the restarted node follows the chain from after j0's naming");
    assert.equal(assigned.escrow?.inputCommitment, job.inputCommitment, "j1's escrow read again");
    await assign(network, "client", job);
    await until("j1's actor", 10_000, () => v1!.node.tree.get("job:j1"));
    await v1.node.settled();
    assert.deepEqual(v1.node.job("j1")?.context.roles, ["verifier"]);
    // j0's assignment comes after the restart too: checked against the escrow journaled with
    // its naming.
    await assign(network, "client", job, "j0");
    await until("j0's actor", 10_000, () => v1!.node.tree.get("job:j0"));
  } finally {
    await v1?.stop();
    network.close();
    ledger.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a restarted node reads the chain's news again from where it stood a record's time to live before its journal's end, not from the first block", async () => {
  const dir = await Deno.makeTempDir({ prefix: "verifier-restart-" });
  try {
    const journal = SqliteJournal.open(`${dir}/journal.sqlite`);
    const chain = (seq: number, at: number, block: number) =>
      journal.append({
        seq,
        at,
        source: "chain",
        target: "job:j1",
        event: { type: "chain.result.submitted", ref: `${block}:0xb:0` },
      });
    chain(1, 0, 1);
    chain(2, 100_000, 2);
    chain(3, 700_000, 3);
    journal.append({
      seq: 4,
      at: 1_000_000,
      source: "network",
      target: "job:j1",
      event: { type: "job.result.received" },
    });
    const ttl = DECLINE_DEFAULTS.ttlMs;
    assert.equal(journal.lastOf("chain")?.event["ref"], "3:0xb:0", "the cursor");
    assert.equal(journal.lastOf("chain", { before: ttl })?.event["ref"], "2:0xb:0", "the news");
    assert.equal(journal.lastOf("chain", { before: 1_000_001 }), undefined, "older than all");
    journal.close();
    // A node opened on that journal follows the chain from after block 3 and reads its news
    // again from after block 2.
    const ledger = LocalLedger.open(":memory:");
    const network = new InProcessNetwork();
    const durable = await openDurableNode({
      id: "v1",
      roles: ["verifier"],
      network: network.join("v1"),
      chain: ledger.as("v1"),
      dataDir: dir,
    });
    try {
      assert.deepEqual(durable.chainCursor, { blockNumber: 3, eventIndex: 1 });
      assert.deepEqual(durable.chainNewsFrom, { blockNumber: 2, eventIndex: 1 });
    } finally {
      await durable.stop();
      network.close();
      ledger.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
