/**
 * The chain is the source of truth for a job's existence and fate; gossip is a hint. Real nodes
 * on the in-process network and the local ledger, with a rogue peer that publishes what it
 * likes:
 *
 * - announcements of jobs that were never escrowed hold nothing: the worker's bid slots come
 *   back after the window (plus a grace), the jobs are dropped (`unescrowed`), honest jobs get
 *   bids again, and a joining node is not handed them;
 * - news of a job that ended on chain is remembered, so a late announcement of it is refused
 *   instead of creating a phantom job;
 * - a job a node follows that ends on chain in a way its machine cannot take is archived in the
 *   chain's final state, not left open for good;
 * - a peer whose actor bans it is banned by the network port; rejections go to the port's
 *   budgets.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorTree } from "../actors/tree.ts";
import { LocalLedger } from "../chain/local_ledger.ts";
import { DEFAULT_POLICY } from "../machines/policies.ts";
import { announcementTopic, encodeMessage, shardOf, TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { createNode, type Node } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";

async function until(predicate: () => unknown, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The shard the fake jobs are announced on (what `spec()` needs: a CPU matmul). */
const JOBS = announcementTopic(shardOf(spec()));

/** A job announcement as a rogue owner publishes it, for a job it never escrowed. */
function fakeAnnouncement(jobId: string, bidWindowMs: number): Uint8Array {
  return encodeMessage(TOPICS.jobs, {
    type: "job.announce",
    jobId,
    owner: "mallory",
    attempt: 1,
    bidWindowEndsAt: Date.now() + bidWindowMs,
    spec: spec({ bidWindowMs, verifierCount: 1 }),
  } as never);
}

Deno.test("announcements never escrowed hold no bid slot past their window, and the join snapshot skips them", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const nodes: Node[] = [];
  const mallory = network.join("mallory");
  try {
    const worker = createNode({
      id: "w1",
      roles: ["worker"],
      network: network.join("w1"),
      chain: ledger.as("w1"),
      capabilityIntervalMs: 0,
      worker: { hardware: "cpu", stake: 100n, maxOpenBids: 2, capacity: 2 },
    });
    const client = createNode({
      id: "c",
      roles: ["client"],
      network: network.join("c"),
      chain: ledger.as("c"),
      capabilityIntervalMs: 0,
    });
    nodes.push(worker, client);
    for (const n of nodes) await n.start();
    await mallory.start();
    // Two fake jobs fill the worker's two bid slots.
    for (const id of ["fake-1", "fake-2"]) {
      await mallory.publish(JOBS, fakeAnnouncement(id, 100));
    }
    await until(() => worker.job("fake-2")?.state === "bidding", 2_000, "the fake jobs");
    const scoreBefore = worker.peers().find((p) => p.peer === "mallory")!.score;
    assert.ok(worker.job("fake-1")!.context.bids, "the worker bid on them");
    assert.equal(worker.snapshot().jobs.length, 0, "a joining node is not handed fake jobs");
    // A real job in the meantime: the worker is busy.
    const busy = client.submitJob({
      jobId: "real-1",
      // No verifier is bonded in this market: an unverified job (the chain refuses more).
      spec: spec({ bidWindowMs: 200, verifierCount: 0 }),
    });
    await until(() => client.job(busy)?.done, 5_000, "real-1 to finish");
    assert.equal(client.job(busy)!.state, "expired", "no bid while the fakes held the slots");
    // The fakes are dropped a grace after their window: the chain never showed their escrow.
    await until(() => worker.retiredJob("fake-2") !== undefined, 5_000, "the fakes dropped");
    assert.equal(worker.retiredJob("fake-1")?.state, "unescrowed");
    assert.equal(worker.retiredJob("fake-2")?.state, "unescrowed");
    // And the owner that announced them pays: 10 points of score for each.
    await until(
      () => (worker.peers().find((p) => p.peer === "mallory")?.score ?? 0) <= scoreBefore - 20,
      2_000,
      "mallory's score to fall",
    );
    // A late repeat of a dropped announcement is refused.
    await mallory.publish(JOBS, fakeAnnouncement("fake-1", 100));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(worker.job("fake-1"), undefined, "no phantom comes back");
    // Honest work gets bids again.
    const real = client.submitJob({
      jobId: "real-2",
      // No verifier is bonded in this market: an unverified job (the chain refuses more).
      spec: spec({ bidWindowMs: 200, verifierCount: 0 }),
    });
    await until(() => Object.keys(client.job(real)?.context.bids ?? {}).length > 0, 5_000, "bid");
    assert.ok(worker.snapshot().jobs.some((j) => j.jobId === real), "an escrowed job is handed on");
  } finally {
    for (const n of nodes) await n.stop();
    await mallory.stop();
    ledger.close();
  }
});

function tree(self: string): ActorTree {
  return new ActorTree({ self, roles: ["worker"], now: () => 0, onEffect: () => {} });
}

const envelope = (seq: number, target: string, event: { type: string; [k: string]: unknown }) => ({
  seq,
  at: 1_000 + seq,
  source: "chain",
  target,
  event,
});

Deno.test("ActorTree remembers a job that ended on chain before it heard of it and refuses its announcement", () => {
  const t = tree("w1");
  const ended = t.deliver(envelope(1, "job:j9", {
    type: "chain.escrow.refunded",
    amount: 10n,
    reason: "expired",
  }));
  assert.equal(ended.status, "rejected");
  assert.equal(t.retired("j9")?.state, "refunded");
  const late = t.deliver({
    ...envelope(2, "job:j9", {
      type: "job.announced",
      owner: "c",
      spec: spec(),
      attempt: 1,
      bidWindowEndsAt: 5_000,
    }),
    source: "network",
  });
  assert.equal(late.status, "rejected");
  assert.equal((late as { code: string }).code, "retired");
  assert.equal(t.get("job:j9"), undefined, "no phantom job");
});

Deno.test("ActorTree archives a followed job that ended on chain in a way it cannot take (no zombie)", () => {
  const t = tree("w1");
  const created = t.deliver({
    ...envelope(1, "job:j1", {
      type: "job.announced",
      owner: "c",
      spec: spec(),
      attempt: 1,
      bidWindowEndsAt: 5_000,
    }),
    source: "network",
  });
  assert.equal(created.status, "accepted");
  assert.equal(t.get("job:j1")?.state, "bidding");
  // It was paid while this node missed the assignment and the result (it was away): the
  // machine cannot take the payment in bidding, the chain's word ends the job here too.
  const paid = t.deliver(envelope(2, "job:j1", {
    type: "chain.payment.released",
    worker: "w2",
    amount: 10n,
    fee: 1n,
    change: 0n,
  }));
  assert.equal(paid.status, "accepted");
  assert.equal(t.get("job:j1"), undefined);
  assert.equal(t.retired("j1")?.state, "settled");
});

Deno.test("ActorTree drops a followed job on job.unescrowed, never its owner's own", () => {
  const t = tree("w1");
  t.deliver({
    ...envelope(1, "job:j1", {
      type: "job.announced",
      owner: "c",
      spec: spec(),
      attempt: 1,
      bidWindowEndsAt: 5_000,
    }),
    source: "network",
  });
  const dropped = t.deliver({
    ...envelope(2, "job:j1", { type: "job.unescrowed" }),
    source: "system",
  });
  assert.equal(dropped.status, "accepted");
  assert.equal(t.retired("j1")?.state, "unescrowed");
  const owner = new ActorTree({
    self: "c",
    roles: ["client"],
    now: () => 0,
    onEffect: () => {},
  });
  owner.deliver({
    ...envelope(1, "job:j2", {
      type: "job.submit",
      spec: spec(),
      verifierPool: [],
      policy: DEFAULT_POLICY,
    }),
    source: "operator",
  });
  const refused = owner.deliver({
    ...envelope(2, "job:j2", { type: "job.unescrowed" }),
    source: "system",
  });
  assert.equal(refused.status, "rejected");
  assert.ok(owner.get("job:j2") !== undefined, "the owner's job is untouched");
});

Deno.test("a peer banned by its actor is banned by the network port, and rejections go to its budgets", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const bans: string[] = [];
  const rejections: string[] = [];
  const inner = network.join("c");
  const port: NetworkPort = Object.assign(Object.create(inner), {
    self: inner.self,
    ban: (peer: string, reason: string) => void bans.push(`${peer}: ${reason}`),
    reject: (peer: string, _where: string, code: string) => void rejections.push(`${peer}:${code}`),
  });
  for (
    const key of [
      "start",
      "stop",
      "publish",
      "subscribe",
      "handle",
      "request",
      "peers",
      "onPeerEvent",
    ]
  ) {
    (port as unknown as Record<string, unknown>)[key] =
      (inner as unknown as Record<string, (...a: unknown[]) => unknown>)[key]!.bind(inner);
  }
  const node = createNode({
    id: "c",
    roles: ["client"],
    network: port,
    chain: ledger.as("c"),
    capabilityIntervalMs: 0,
    peer: {
      heartbeatMs: 60_000,
      maxMissedHeartbeats: 3,
      initialScore: 15,
      banThreshold: 0,
      banMs: 60_000,
    },
  });
  const mallory = network.join("mallory");
  try {
    await node.start();
    await mallory.start();
    await new Promise((r) => setTimeout(r, 10));
    await mallory.send(node.id, TOPICS.bids, new TextEncoder().encode("{not json"));
    await mallory.send(node.id, TOPICS.bids, new TextEncoder().encode("{not json either"));
    await until(() => bans.length > 0, 2_000, "the ban");
    assert.equal(rejections.length, 2, rejections.join(", "));
    assert.ok(rejections.every((r) => r.startsWith("mallory:")), rejections.join(", "));
    assert.match(bans[0]!, /^mallory: /);
  } finally {
    await node.stop();
    await mallory.stop();
    ledger.close();
  }
});
