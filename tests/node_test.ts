/**
 * A node end to end in one process: restore from a snapshot in the middle of bidding, bad input
 * at every boundary, and a small market on the in-process network and the real ledger.
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { JobContext } from "../machines/job_machine.ts";
import { encodeMessage, TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { simulatedClock } from "../runtime/kernel/clock.ts";
import { runDemo } from "../runtime/demo/demo.ts";
import { MemoryJournal } from "../runtime/kernel/inbox.ts";
import { createNode, type NodeObservation } from "../runtime/kernel/mod.ts";
import { bid, spec } from "./_drive.ts";

Deno.test("a job actor restored mid-bidding closes its bid window at the original deadline", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  try {
    const clock = simulatedClock(1_000);
    const first = createNode({
      id: "client",
      roles: ["client"],
      network: network.join("client"),
      chain: ledger.as("client"),
      clock,
    });
    first.inbox.submit("operator", "job:j1", {
      type: "job.submit",
      spec: spec({ bidWindowMs: 500 }),
      verifierPool: ["v1", "v2", "v3", "v4"],
    });
    first.inbox.submit("chain", "job:j1", {
      type: "chain.escrow.locked",
      client: "client",
      amount: 100n,
    });
    clock.increment(200);
    first.inbox.submit("network", "job:j1", { type: "bid.received", bid: bid("w1", 40n) });
    const cell = first.tree.get("job:j1")!;
    assert.equal(cell.state, "bidding");
    assert.equal((cell.snapshot.context as JobContext).deadlines.bid_window, 1_500);
    // Persist (structuredClone keeps bigints, as the snapshot store does) and crash.
    const persisted = structuredClone(cell.persisted);
    first.tree.stop();

    const clock2 = simulatedClock(1_200);
    const journal = new MemoryJournal();
    const second = createNode({
      id: "client",
      roles: ["client"],
      network: new InProcessNetwork().join("client"),
      chain: ledger.as("client"),
      clock: clock2,
      journal,
    });
    const restored = second.tree.restore("job:j1", persisted);
    assert.equal(restored.state, "bidding");
    // The bid came back too: a record in the job's context (job machine version 4).
    assert.equal(Object.keys((restored.snapshot.context as JobContext).bids).length, 1);
    clock2.increment(299);
    assert.equal(second.tree.get("job:j1")!.state, "bidding", "not a millisecond early");
    clock2.increment(1);
    const fired = journal.entries.find((e) => e.event.type === "timer.fired");
    assert.ok(fired, "the deadline fired through the inbox");
    assert.equal(fired.at, 1_500);
    assert.equal(fired.event["due"], 1_500);
    assert.equal(second.tree.get("job:j1")!.state, "assigned");
    assert.equal((second.tree.get("job:j1")!.snapshot.context as JobContext).winner?.worker, "w1");
    await second.settled();
  } finally {
    ledger.close();
  }
});

Deno.test("createNode() and submitJob() reject bad arguments with clear errors", () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  try {
    assert.throws(
      () =>
        createNode({
          id: "a",
          roles: ["client"],
          network: network.join("b"),
          chain: ledger.as("a"),
        }),
      { name: "RangeError", message: 'Cannot create node "a": its network identity is "b"' },
    );
    assert.throws(
      () =>
        createNode({
          id: "w",
          roles: ["worker"],
          network: network.join("w"),
          chain: ledger.as("w"),
        }),
      /the worker role needs a worker profile/,
    );
    assert.throws(
      () =>
        createNode({
          id: "w2",
          roles: ["worker"],
          network: network.join("w2"),
          chain: ledger.as("w2"),
          worker: { hardware: "cpu", priceRatio: 1.5 },
        }),
      /Invalid worker.priceRatio 1.5: must be in \(0, 1\]/,
    );
    const client = createNode({
      id: "c",
      roles: ["client"],
      network: network.join("c"),
      chain: ledger.as("c"),
    });
    assert.throws(
      () => client.submitJob({ spec: { ...spec(), inputCommitment: "0".repeat(64) } }),
      /the input does not match its commitment/,
    );
    assert.throws(() => client.inbox.submit("operator", "job:x", { type: "" }), TypeError);
    const verifier = createNode({
      id: "v",
      roles: ["verifier"],
      network: network.join("v"),
      chain: ledger.as("v"),
    });
    assert.throws(() => verifier.submitJob({ spec: spec() }), /it is not a client/);
  } finally {
    ledger.close();
  }
});

Deno.test("a node rejects events that make no sense for their target, and nothing crashes", () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  try {
    const node = createNode({
      id: "c",
      roles: ["client"],
      network: network.join("c"),
      chain: ledger.as("c"),
      clock: simulatedClock(0),
    });
    const seen: NodeObservation[] = [];
    node.observe((o) => seen.push(o));
    const rejections = () =>
      seen.filter((o) => o.type === "rejected").map((o) => (o as { reason: string }).reason);

    node.inbox.submit("network", "job:nope", {
      type: "bid.received",
      bid: bid("w1", 1n, { jobId: "nope" }),
    });
    node.inbox.submit("operator", "job:nope", { type: "job.cancel" });
    node.inbox.submit("operator", "nobody", { type: "job.cancel" });
    node.inbox.submit("operator", "job:j1", { type: "job.submit" }); // no spec
    assert.deepEqual(rejections(), [
      'unknown job "nope"',
      'unknown job "nope"',
      'unknown target "nobody"',
      '"job.submit" carries no job spec',
    ]);

    node.inbox.submit("operator", "job:j1", { type: "job.submit", spec: spec() });
    node.inbox.submit("operator", "job:j1", { type: "job.submit", spec: spec() });
    assert.equal(rejections().at(-1), 'job "j1" already exists');
    node.inbox.submit("chain", "job:j1", {
      type: "chain.payment.released",
      worker: "w",
      amount: 1n,
      fee: 0n,
      change: 0n,
    });
    assert.equal(
      rejections().at(-1),
      '"chain.payment.released" is not accepted in state announced',
    );
    assert.equal(node.tree.get("job:j1")!.state, "announced", "the job is unharmed");
    assert.equal(node.stats.rejected, 6);
  } finally {
    ledger.close();
  }
});

Deno.test("malformed and forged messages from a peer are rejected, cost it score, and get it banned", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const node = createNode({
    id: "c",
    roles: ["client"],
    network: network.join("c"),
    chain: ledger.as("c"),
    capabilityIntervalMs: 0,
    peer: {
      heartbeatMs: 60_000,
      maxMissedHeartbeats: 3,
      initialScore: 25,
      banThreshold: 0,
      banMs: 60_000,
    },
  });
  const mallory = network.join("mallory");
  try {
    await node.start();
    await mallory.start();
    await new Promise((r) => setTimeout(r, 10));
    // No verifier is bonded here: an unverified job, which the chain takes without any.
    const jobId = node.submitJob({ spec: spec({ bidWindowMs: 60_000, verifierCount: 0 }) });
    for (let i = 0; i < 100 && node.job(jobId)!.state !== "bidding"; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(node.job(jobId)!.state, "bidding");

    // Bids come to the owner directly (protocol v2), and meet the same boundary as gossip.
    await mallory.send("c", TOPICS.bids, new TextEncoder().encode("{not json"));
    await mallory.send(
      "c",
      TOPICS.bids,
      encodeMessage(TOPICS.bids, { type: "bid.submit", ...bid("honest-worker", 1n, { jobId }) }),
    );
    await mallory.send("c", TOPICS.bids, new Uint8Array(70_000));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(node.stats.wireRejected, 3);
    assert.equal(
      Object.keys(node.job(jobId)!.context.bids).length,
      0,
      "the forged bid never reached the job",
    );
    const peer = node.peers().find((p) => p.peer === "mallory")!;
    assert.equal(peer.state, "banned", `score ${peer.score}`);
    assert.equal(node.job(jobId)!.state, "bidding", "the job is unharmed");
  } finally {
    await node.stop();
    await mallory.stop();
    ledger.close();
  }
});

Deno.test("a small market settles, re-auctions, disputes and conserves money end to end", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-test-" });
  try {
    const summary = await runDemo({
      jobs: 17,
      workers: 8,
      verifiers: 4,
      concurrency: 6,
      ledgerPath: `${dir}/ledger.sqlite`,
      timeoutMs: 120_000,
      // Room for a loaded machine: a 120 ms bid window can close before any bid is heard.
      timing: { bidWindowMs: 600, executionMs: 2_000, verificationMs: 4_000 },
    });
    const finished = Object.values(summary.byState).reduce((a, b) => a + b, 0);
    assert.equal(finished, 17);
    assert.ok((summary.byState["settled"] ?? 0) > 0, JSON.stringify(summary.byState));
    assert.equal(summary.byState["expired"], 1, "job 17 needs a GPU nobody has");
    assert.ok(summary.reauctioned > 0, "the silent worker's jobs were re-auctioned");
    assert.ok(summary.disputed > 0, "the wrong worker's results were disputed");
    assert.ok(summary.slashes.downtime > 0 && summary.slashes.invalid_compute > 0);
    assert.ok(summary.moneyConserved && summary.stakeConserved);
    assert.equal(summary.totals.locked, 0n);
    assert.ok(summary.totals.slashed > 0n);
    assert.ok((await Deno.stat(`${dir}/ledger.sqlite`)).size > 0, "a real database file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
