import assert from "node:assert/strict";
import { ActorTree } from "../../actors/tree.ts";
import type { AddressedEvent } from "../../machines/address.ts";
import type { BidOffer, JobSpec, Role } from "../../machines/types.ts";
import { encodeMessage, type Topic, TOPICS } from "../../protocols/messages.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { Ingress, MAX_ESCROW_READS_PER_SENDER } from "./ingress.ts";
import type { Announcement } from "./worker_agent.ts";

const SPEC: JobSpec = {
  kind: { type: "builtin", name: "matmul" },
  inputCommitment: "c".repeat(64),
  requirements: { hardware: "cpu", minStake: 0n },
  maxPrice: 100n,
  bidWindowMs: 1_000,
  executionMs: 5_000,
  verificationMs: 5_000,
  maxAttempts: 2,
  verifierCount: 1,
};

/**
 * A real tree and ingress; the inbox is this function's loop (stamps and delivers in order), and
 * the network port is never used (no snapshot request here).
 */
function setup(options: {
  roles?: Role[];
  triage?: (actorId: string, a: Announcement) => "bid" | "price_below_floor" | "busy";
  keepSpec?: boolean;
  shunned?: (worker: string) => boolean;
  endedOnChain?: (jobId: string) => boolean;
  readEscrow?: (jobId: string) => Promise<unknown>;
  escrowSeen?: (jobId: string) => boolean;
} = {}) {
  let now = 1_000;
  const submitted: AddressedEvent[] = [];
  const tree = new ActorTree({
    self: "me",
    roles: options.roles ?? ["worker"],
    now: () => now,
    onEffect: () => {},
  });
  let seq = 0;
  const ingress = new Ingress({
    self: "me",
    tree,
    network: {} as NetworkPort,
    submit: (source, addressed) => {
      submitted.push(addressed);
      tree.deliver({ seq: ++seq, at: now, source, ...addressed });
    },
    onRejected: () => {},
    escrowSeen: options.escrowSeen ?? (() => true),
    ...(options.triage ? { triage: options.triage } : {}),
    ...(options.keepSpec !== undefined ? { keepSpec: options.keepSpec } : {}),
    ...(options.shunned ? { shunned: options.shunned } : {}),
    ...(options.endedOnChain ? { endedOnChain: options.endedOnChain } : {}),
    ...(options.readEscrow ? { readEscrow: options.readEscrow } : {}),
  });
  const hear = (topic: Topic, from: string, message: object) => {
    const gossip = { topic, from, data: encodeMessage(topic, message as never) };
    assert.equal(ingress.validate(gossip), "accept");
    ingress.receive(gossip);
  };
  const announce = (jobId: string, attempt = 1, owner = "owner") =>
    hear(TOPICS.jobs, owner, {
      type: "job.announce",
      jobId,
      owner,
      attempt,
      bidWindowEndsAt: now + 1_000,
      spec: SPEC,
    });
  return {
    tree,
    ingress,
    submitted,
    hear,
    announce,
    advance: (ms: number) => (now += ms),
  };
}

function bid(jobId: string, worker: string): BidOffer & { type: "bid.submit" } {
  return {
    type: "bid.submit",
    bidId: `${jobId}.1.${worker}`,
    jobId,
    worker,
    price: 50n,
    etaMs: 100,
    stake: 0n,
    reputation: 500,
    hardware: "cpu",
  };
}

Deno.test("Ingress journals one job.declined for a job its worker declines, and no actor", () => {
  const asked: string[] = [];
  const m = setup({
    triage: (actorId) => {
      asked.push(actorId);
      return "price_below_floor";
    },
  });
  m.announce("j1");
  assert.deepEqual(m.submitted.map((a) => a.event.type), ["job.declined"]);
  assert.equal(m.submitted[0]!.event["reason"], "price_below_floor");
  assert.equal(
    m.submitted[0]!.event["spec"],
    undefined,
    "a node that may not verify keeps no spec",
  );
  assert.equal(m.tree.get("job:j1"), undefined);
  assert.equal(m.tree.declined("j1")?.reason, "price_below_floor");
  // The same announcement again (a relay, a snapshot): nothing more is journaled, nor asked.
  m.announce("j1");
  assert.equal(m.submitted.length, 1);
  assert.deepEqual(asked, ["job:j1"]);
  // Bids, results and attestations of a job it declined are not journaled at all.
  m.hear(TOPICS.bids, "w9", bid("j1", "w9"));
  m.hear(TOPICS.results, "w9", {
    type: "job.result",
    jobId: "j1",
    worker: "w9",
    commitment: "d".repeat(64),
    output: [1],
  });
  assert.equal(m.submitted.length, 1);
  assert.equal(m.ingress.ignored, 2);
  // A new attempt (the job was re-auctioned) is triaged again.
  m.announce("j1", 2);
  assert.equal(m.submitted.length, 2);
  assert.equal(m.tree.declined("j1")?.attempt, 2);
});

Deno.test("Ingress hands a job it will bid on to a new actor", () => {
  const m = setup({ triage: () => "bid" });
  m.announce("j2");
  assert.deepEqual(m.submitted.map((a) => a.event.type), ["job.announced"]);
  assert.equal(m.tree.get("job:j2")?.state, "bidding");
});

Deno.test("Ingress declines as no_role on a node that is not a worker; a verifier keeps the spec and early results", () => {
  const client = setup({ roles: ["client"] });
  client.announce("j3");
  assert.equal(client.tree.declined("j3")?.reason, "no_role");
  assert.equal(client.tree.get("job:j3"), undefined);

  const verifier = setup({ roles: ["verifier"], keepSpec: true });
  verifier.announce("j4");
  assert.deepEqual(verifier.tree.declined("j4")?.spec, SPEC);
  const result = {
    type: "job.result",
    jobId: "j4",
    worker: "w1",
    commitment: "e".repeat(64),
    output: [2],
  };
  verifier.hear(TOPICS.results, "w1", result);
  assert.deepEqual(verifier.submitted.map((a) => a.event.type), [
    "job.declined",
    "job.result.received",
  ]);
  assert.deepEqual(verifier.tree.declined("j4")?.results, [
    { worker: "w1", commitment: "e".repeat(64), output: [2] },
  ]);
  // Attestations are the owner's (or the chain's) to count: not journaled here.
  verifier.hear(TOPICS.attestations, "v2", {
    type: "job.attest",
    jobId: "j4",
    verifier: "v2",
    verdict: "valid",
    commitment: "e".repeat(64),
    worker: "w1",
    claimed: "e".repeat(64),
  });
  assert.equal(verifier.submitted.length, 2);
});

/** Lets the microtasks run: what the ingress gathered for the turn is submitted. */
const endOfTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("Ingress lets by the other workers' bids on a job it bid on, never on its own job", async () => {
  const m = setup({ triage: () => "bid" });
  m.announce("j5");
  m.hear(TOPICS.bids, "w9", bid("j5", "w9"));
  assert.deepEqual(m.submitted.map((a) => a.event.type), ["job.announced"]);
  assert.equal(m.ingress.ignored, 1);

  const owner = setup({ roles: ["client"] });
  owner.tree.deliver({
    seq: 1,
    at: 1_000,
    source: "operator",
    target: "job:mine",
    event: { type: "job.submit", spec: SPEC, verifierPool: [] },
  });
  owner.hear(TOPICS.bids, "w9", bid("mine", "w9"));
  await endOfTurn(); // bids on its own jobs are gathered for the turn (batcher.ts)
  assert.deepEqual(owner.submitted.map((a) => a.event.type), ["bid.received"]);
});

Deno.test("Ingress lets by bids on its own jobs from a worker the chain rates below the floor", async () => {
  const owner = setup({ roles: ["client"], shunned: (worker) => worker === "w-bad" });
  owner.tree.deliver({
    seq: 1,
    at: 1_000,
    source: "operator",
    target: "job:mine",
    event: { type: "job.submit", spec: SPEC, verifierPool: [] },
  });
  owner.hear(TOPICS.bids, "w-bad", bid("mine", "w-bad"));
  owner.hear(TOPICS.bids, "w-good", bid("mine", "w-good"));
  await endOfTurn();
  assert.deepEqual(
    owner.submitted.map((a) => (a.event as { bid?: BidOffer }).bid?.worker),
    ["w-good"],
  );
  assert.equal(owner.ingress.shunned, 1);
});

Deno.test("Ingress lets by a late announcement of a job the chain ended while this node had no part in it", () => {
  const m = setup({ triage: () => "bid", endedOnChain: (jobId) => jobId === "over" });
  // A restarted client announces again a job the chain already refunded: no actor that would
  // wait in bidding for ever (a zombie), nothing journaled.
  m.announce("over");
  assert.equal(m.submitted.length, 0);
  assert.equal(m.tree.get("job:over"), undefined);
  assert.equal(m.ingress.ignored, 1);
  m.announce("live");
  assert.deepEqual(m.submitted.map((a) => a.event.type), ["job.announced"]);
});

Deno.test("Ingress reads the escrow again before it takes a new attempt of a job it was outbid on: one the chain ended since is let by", async () => {
  const ended = new Set<string>();
  let reads = 0;
  const m = setup({
    triage: () => "bid",
    endedOnChain: (jobId) => ended.has(jobId),
    // The chain ended the job since this worker was outbid on it (it reads escrows on demand, so
    // it did not hear the ending).
    readEscrow: (jobId) => {
      reads++;
      ended.add(jobId);
      return Promise.resolve();
    },
  });
  m.announce("j", 1);
  assert.equal(m.tree.get("job:j")?.state, "bidding");
  m.tree.deliver({
    seq: 100,
    at: 1_000,
    source: "chain",
    target: "job:j",
    event: { type: "chain.worker.assigned", worker: "other", verifiers: ["v1"], price: 10n },
  });
  assert.equal(m.tree.retired("j")?.state, "outbid");
  assert.equal(reads, 0, "the first attempt's escrow was known");
  // A second attempt announced, replayed after the job ended: read first, then let by.
  const before = m.submitted.length;
  m.announce("j", 2);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(reads, 1);
  assert.equal(m.submitted.length, before, "nothing journaled");
  assert.equal(m.tree.get("job:j"), undefined, "no actor waits for ever on a job that ended");
});

Deno.test("Ingress holds at most 64 announcements of one sender for their escrow reads; the rest are let by", async () => {
  const reads: string[] = [];
  let release!: () => void;
  const answered = new Promise<void>((resolve) => (release = resolve));
  const seen = new Set<string>();
  const m = setup({
    triage: () => "bid",
    escrowSeen: (jobId) => seen.has(jobId),
    readEscrow: (jobId) => {
      reads.push(jobId);
      return answered.then(() => void seen.add(jobId));
    },
  });
  for (let i = 0; i < MAX_ESCROW_READS_PER_SENDER + 6; i++) m.announce(`flood-${i}`, 1, "flooder");
  m.announce("honest-1", 1, "owner");
  assert.equal(reads.length, MAX_ESCROW_READS_PER_SENDER + 1, "one sender's share, then another's");
  assert.ok(reads.includes("honest-1"), "another sender is still read");
  release();
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.ok(m.tree.get("job:honest-1"), "taken once its read answered");
  assert.equal(m.tree.get(`job:flood-${MAX_ESCROW_READS_PER_SENDER + 1}`), undefined);
});
