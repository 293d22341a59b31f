import assert from "node:assert/strict";
import type { JobContext } from "../machines/job_machine.ts";
import type { JobSpec } from "../machines/types.ts";
import { DECLINE_DEFAULTS, type DeclineRecord, Declines } from "./declines.ts";
import { ActorTree, jobContextOf } from "./tree.ts";

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

function record(jobId: string, at: number, spec?: JobSpec): DeclineRecord {
  return {
    jobId,
    owner: "o",
    attempt: 1,
    reason: "busy",
    at,
    bidWindowEndsAt: at + 100,
    ...(spec ? { spec } : {}),
  };
}

Deno.test("Declines is bounded in count (oldest out first) and in time", () => {
  const declines = new Declines({ maxRecords: 2, ttlMs: 1_000 });
  declines.record(record("a", 0));
  declines.record(record("b", 10));
  declines.record(record("c", 20));
  assert.equal(declines.size, 2);
  assert.equal(declines.get("a", 20), undefined);
  assert.equal(declines.get("b", 20)?.jobId, "b");
  // b was made at 10: gone at 1_010, c stays until 1_020.
  assert.equal(declines.get("b", 1_010), undefined);
  assert.equal(declines.get("c", 1_010)?.jobId, "c");
  declines.record(record("d", 1_015));
  assert.deepEqual([...declines.values()].map((r) => r.jobId), ["c", "d"]);
  declines.expire(1_020);
  assert.deepEqual([...declines.values()].map((r) => r.jobId), ["d"]);
  assert.throws(() => new Declines({ maxRecords: -1 }), {
    name: "RangeError",
    message: /declines\.maxRecords/,
  });
  assert.throws(() => new Declines({ ttlMs: 0 }), { name: "RangeError", message: /ttlMs/ });
});

Deno.test("Declines keeps early results only with a spec, two per job, for a bounded number of jobs", () => {
  const declines = new Declines({ maxEarlyResults: 2 });
  const result = (worker: string) => ({ worker, commitment: worker, output: [worker] });
  declines.record(record("nospec", 0));
  assert.equal(declines.keepResult("nospec", result("w1"), 0), false);
  for (const jobId of ["x", "y", "z"]) declines.record(record(jobId, 0, SPEC));
  assert.equal(declines.keepResult("x", result("w1"), 0), true);
  declines.keepResult("x", result("w2"), 0);
  declines.keepResult("x", result("w3"), 0);
  assert.deepEqual(declines.get("x", 0)?.results?.map((r) => r.worker), ["w2", "w3"]);
  declines.keepResult("y", result("w1"), 0);
  declines.keepResult("z", result("w1"), 0);
  // Three jobs held results: the oldest (x) lost its own, not its record.
  assert.equal(declines.get("x", 0)?.results, undefined);
  assert.equal(declines.get("x", 0)?.spec, SPEC);
  assert.equal(declines.get("z", 0)?.results?.length, 1);
});

function tree(roles: ("worker" | "verifier" | "client")[] = ["verifier"]) {
  let now = 1_000;
  const t = new ActorTree({ self: "me", roles, now: () => now, onEffect: () => {} });
  let seq = 0;
  const deliver = (target: string, event: { type: string; [k: string]: unknown }) =>
    t.deliver({ seq: ++seq, at: now, source: "network", target, event });
  return { t, deliver, advance: (ms: number) => (now += ms) };
}

const declined = (extra: Record<string, unknown> = {}) => ({
  type: "job.declined",
  owner: "o",
  attempt: 1,
  bidWindowEndsAt: 1_500,
  reason: "no_role",
  ...extra,
});

Deno.test("ActorTree records a decline without an actor, and refuses one for its own job or a job it follows", () => {
  const { t, deliver } = tree(["worker", "client"]);
  assert.deepEqual(deliver("job:j1", declined({ reason: "busy" })), { status: "accepted" });
  assert.equal(t.get("job:j1"), undefined);
  assert.equal(t.declined("j1")?.reason, "busy");
  assert.equal(deliver("job:j2", declined({ owner: "me" })).status, "rejected");
  deliver("job:j3", {
    type: "job.announced",
    owner: "o",
    spec: SPEC,
    attempt: 1,
    bidWindowEndsAt: 1_500,
  });
  const refused = deliver("job:j3", declined());
  assert.equal(refused.status, "rejected");
  assert.equal(t.declined("j3"), undefined);
  assert.equal(deliver("job:j4", { type: "job.declined", owner: "o" }).status, "rejected");
  // The worker bids after all (a slot freed): its announcement creates the actor, the record goes.
  deliver("job:j1", {
    type: "job.announced",
    owner: "o",
    spec: SPEC,
    attempt: 1,
    bidWindowEndsAt: 1_500,
  });
  assert.equal(t.get("job:j1")?.state, "bidding");
  assert.equal(t.declined("j1"), undefined);
});

Deno.test("ActorTree creates the actor of a declined job when the chain names this node, with the results heard before", () => {
  const { t, deliver, advance } = tree(["verifier"]);
  // The spec an owner's assignment brought, checked against the escrow at the boundary.
  deliver("job:j1", declined({ spec: SPEC, reason: "awaiting_chain" }));
  deliver("job:j1", {
    type: "job.result.received",
    worker: "w1",
    commitment: "d".repeat(64),
    output: [7],
  });
  advance(600);
  const assigned = (verifiers: string[]) => ({
    type: "chain.worker.assigned",
    worker: "w1",
    price: 50n,
    verifiers,
  });
  // Not named: nothing to follow.
  assert.equal(deliver("job:j1", assigned(["v2"])).status, "rejected");
  assert.equal(t.get("job:j1"), undefined);
  assert.deepEqual(deliver("job:j1", assigned(["me"])), { status: "accepted" });
  const cell = t.get("job:j1")!;
  assert.equal(cell.state, "executing");
  const c: JobContext = jobContextOf(cell);
  assert.deepEqual(c.verifiers, ["me"]);
  assert.equal(c.owner, "o");
  assert.deepEqual(c.outputs["w1"], { commitment: "d".repeat(64), value: [7] });
  assert.equal(t.declined("j1"), undefined);
  // A spec an announcement brought (a worker's decline) is nobody's word the chain checked: the
  // chain's naming waits for the owner's assignment, which then creates the actor (review 2, H3).
  const both = tree(["worker", "verifier"]);
  both.deliver("job:j3", declined({ spec: SPEC, reason: "busy" }));
  assert.deepEqual(both.deliver("job:j3", assigned(["me"])), { status: "accepted" });
  assert.equal(both.t.get("job:j3"), undefined);
  assert.equal(both.t.declined("j3")?.assigned?.worker, "w1");
  assert.equal(both.deliver("job:j3", declined({ spec: SPEC, reason: "busy" })).status, "accepted");
  assert.equal(both.t.get("job:j3"), undefined, "another announcement creates nothing either");
  both.deliver("job:j3", declined({ spec: SPEC, reason: "awaiting_chain" }));
  assert.equal(both.t.get("job:j3")?.state, "executing");
  // A record without the spec (a node that may not verify) creates nothing.
  const other = tree(["worker"]);
  other.deliver("job:j2", declined({ reason: "busy" }));
  assert.equal(other.deliver("job:j2", assigned(["me"])).status, "rejected");
  assert.equal(other.t.get("job:j2"), undefined);
});

Deno.test("a worker outbid stops following the job when the chain assigns it, and may bid on its next auction", () => {
  const { t, deliver } = tree(["worker"]);
  const announced = (attempt: number) => ({
    type: "job.announced",
    owner: "o",
    spec: SPEC,
    attempt,
    bidWindowEndsAt: 1_000,
  });
  const assigned = (worker: string) => ({
    type: "chain.worker.assigned",
    jobId: "j",
    worker,
    price: 10n,
    verifiers: ["v1"],
    blockNumber: 1,
    eventIndex: 0,
  });
  assert.equal(deliver("job:j", announced(1)).status, "accepted");
  assert.ok(t.get("job:j") !== undefined);
  // Another worker won: nothing is left for this node to do in the job.
  assert.equal(deliver("job:j", assigned("other")).status, "accepted");
  assert.equal(t.get("job:j"), undefined);
  assert.equal(t.retired("j")?.state, "outbid");
  assert.equal(deliver("job:j", assigned("other")).status, "rejected", "retired");
  // The same auction again: refused; the next one: followed.
  assert.equal(deliver("job:j", announced(1)).status, "rejected");
  assert.equal(deliver("job:j", announced(2)).status, "accepted");
  assert.equal(jobContextOf(t.get("job:j")!).attempt, 2);
  // The winner, and a verifier, keep following.
  const won = tree(["worker"]);
  won.deliver("job:j", announced(1));
  won.deliver("job:j", assigned("me"));
  assert.equal(won.t.get("job:j")?.state, "executing");
  const verifier = tree(["worker", "verifier"]);
  verifier.deliver("job:j", announced(1));
  verifier.deliver("job:j", assigned("other"));
  assert.ok(verifier.t.get("job:j") !== undefined, "a verifier may still be chosen");
});

Deno.test("Declines: a new naming by the chain drops the news and results kept of the earlier one", () => {
  const declines = new Declines();
  const first = { worker: "w1", price: 5n, verifiers: ["me"], ref: "1:a:0" };
  declines.awaitSpec("j1", first, 10);
  assert.ok(declines.keepChain("j1", { type: "chain.assignment.revoked", worker: "w1" }, 20));
  assert.equal(declines.get("j1", 20)?.chain?.length, 1);
  // The next auction's assignment names this node again: attempt 1's revocation must not reach
  // the actor attempt 2's spec creates (it would walk it to a third auction).
  const second = { worker: "w2", price: 5n, verifiers: ["me"], ref: "2:b:0" };
  const renamed = declines.awaitSpec("j1", second, 30);
  assert.equal(renamed.chain, undefined);
  assert.equal(renamed.results, undefined);
  assert.deepEqual(renamed.assigned, second);
  // The same naming handed over again (a reorg) keeps what came after it.
  assert.ok(declines.keepChain("j1", { type: "chain.result.submitted", worker: "w2" }, 40));
  assert.equal(declines.awaitSpec("j1", second, 50).chain?.length, 1);
});

Deno.test("Declines keeps a bounded share of awaiting_chain records per sender: one peer's assignments push out only its own", () => {
  const declines = new Declines({ maxAwaitingPerSender: 2 });
  const awaiting = (jobId: string, owner: string, at = 0): DeclineRecord => ({
    ...record(jobId, at, SPEC),
    owner,
    reason: "awaiting_chain",
  });
  declines.record(awaiting("real", "alice"));
  for (const jobId of ["m1", "m2", "m3"]) declines.record(awaiting(jobId, "mallory"));
  assert.equal(declines.awaitingFrom("mallory"), 2);
  assert.equal(declines.get("m1", 0), undefined, "mallory's oldest went");
  assert.equal(declines.get("real", 0)?.owner, "alice", "alice's stayed");
  // Another reason is not the sender's to count; a record made again is counted once.
  declines.record({ ...record("busy", 0), owner: "mallory" });
  declines.record(awaiting("m3", "mallory"));
  assert.equal(declines.awaitingFrom("mallory"), 2);
  assert.equal(declines.get("m2", 0)?.jobId, "m2");
  // Taken (its actor made) or expired: no longer counted.
  declines.take("m3", 0);
  assert.equal(declines.awaitingFrom("mallory"), 1);
  declines.expire(DECLINE_DEFAULTS.ttlMs);
  assert.equal(declines.awaitingFrom("mallory"), 0);
  assert.equal(declines.awaitingFrom("alice"), 0);
  assert.throws(() => new Declines({ maxAwaitingPerSender: -1 }), {
    name: "RangeError",
    message: /maxAwaitingPerSender/,
  });
});

Deno.test("Declines counts announcements' records per owner and drops them first past the count bound: no number of announcements pushes out a chain-backed record (review 2, M1)", () => {
  const declines = new Declines({ maxRecords: 10, maxAnnouncedPerOwner: 3 });
  declines.record({ ...record("kept", 0, SPEC), owner: "alice", reason: "awaiting_chain" });
  declines.awaitSpec("named", { worker: "w1", price: 1n, verifiers: ["me"], attempt: 1 }, 0);
  // One owner's announcements: past its share, its own oldest goes.
  for (let i = 0; i < 100; i++) declines.record({ ...record(`m${i}`, 0, SPEC), owner: "mallory" });
  assert.equal(declines.announcedFrom("mallory"), 3);
  assert.equal(declines.get("m96", 0), undefined);
  assert.equal(declines.get("m99", 0)?.owner, "mallory");
  // Many owners' (sybils'): past the count bound, announcements' records go first.
  for (let i = 0; i < 100; i++) declines.record({ ...record(`s${i}`, 0, SPEC), owner: `s${i}` });
  assert.equal(declines.size, 10);
  assert.equal(declines.get("kept", 0)?.reason, "awaiting_chain", "the assignment's record stayed");
  assert.equal(declines.get("named", 0)?.reason, "awaiting_spec", "the chain's naming stayed");
  assert.equal(declines.announcedFrom("mallory"), 0);
  // Named by the chain, a record is no longer an announcement's.
  declines.awaitSpec("s99", { worker: "w1", price: 1n, verifiers: ["me"], attempt: 1 }, 0);
  assert.equal(declines.announcedFrom("s99"), 0);
  assert.throws(() => new Declines({ maxAnnouncedPerOwner: -1 }), {
    name: "RangeError",
    message: /maxAnnouncedPerOwner/,
  });
});
