import assert from "node:assert/strict";
import { ActorTree, jobContextOf } from "../../actors/tree.ts";
import type { AddressedEvent } from "../../machines/address.ts";
import type { JobSpec } from "../../machines/types.ts";
import { announcementTopicsOf, encodeMessage, TOPICS } from "../../protocols/messages.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { commitmentOf } from "../compute/mod.ts";
import { AssignmentHints } from "./assignment_hints.ts";
import { Ingress, WIRE_PENALTY } from "./ingress.ts";

const INPUT = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
const SPEC: JobSpec = {
  kind: { type: "builtin", name: "matmul" },
  input: INPUT,
  inputCommitment: commitmentOf(INPUT),
  requirements: { hardware: "cpu", minStake: 0n },
  maxPrice: 100n,
  bidWindowMs: 1_000,
  executionMs: 5_000,
  verificationMs: 5_000,
  maxAttempts: 2,
  verifierCount: 1,
};
/** What the chain's `JobSubmitted` says of a job with {@link SPEC}, submitted by `alice`. */
const TERMS = {
  client: "alice",
  modelHash: "0".repeat(64),
  inputCommitment: SPEC.inputCommitment,
  amount: SPEC.maxPrice,
  minStake: SPEC.requirements.minStake,
  verifierCount: SPEC.verifierCount,
  bidWindowMs: SPEC.bidWindowMs,
  executionMs: SPEC.executionMs,
  verificationMs: SPEC.verificationMs,
};

/** A verifier's real tree and ingress; the inbox is this function's loop. */
function verifier(options: { hints?: AssignmentHints; roles?: ("verifier" | "worker")[] } = {}) {
  let now = 1_000;
  const submitted: AddressedEvent[] = [];
  const rejected: string[] = [];
  const tree = new ActorTree({
    self: "me",
    roles: options.roles ?? ["verifier"],
    now: () => now,
    onEffect: () => {},
  });
  let seq = 0;
  const deliver = (source: string, addressed: AddressedEvent) =>
    tree.deliver({ seq: ++seq, at: now, source, ...addressed });
  const ingress = new Ingress({
    self: "me",
    tree,
    network: {} as NetworkPort,
    submit: (source, addressed) => {
      submitted.push(addressed);
      deliver(source, addressed);
    },
    onRejected: (_m, code, reason) => rejected.push(`${code}: ${reason}`),
    escrowSeen: () => true,
    keepSpec: (options.roles ?? ["verifier"]).includes("verifier"),
    now: () => now,
    ...(options.hints ? { hints: options.hints } : {}),
  });
  /** `from` sends this node an assignment of `jobId`; returns the validator's verdict. */
  const assign = (
    from: string,
    jobId: string,
    extra: { spec?: JobSpec; verifiers?: string[]; attempt?: number; worker?: string } = {},
  ) => {
    const data = encodeMessage(TOPICS.assignments, {
      type: "job.assign",
      jobId,
      worker: extra.worker ?? "w1",
      bidId: `${jobId}.1.w1`,
      price: 50n,
      verifiers: extra.verifiers ?? ["me", "v2"],
      attempt: extra.attempt ?? 1,
      spec: extra.spec ?? SPEC,
    });
    const message = { topic: TOPICS.assignments, from, data };
    const verdict = ingress.validate(message);
    if (verdict === "accept") ingress.receive(message);
    return verdict;
  };
  const chainAssigns = (jobId: string, verifiers = ["me", "v2"], attempt?: number) =>
    deliver("chain", {
      target: `job:${jobId}`,
      event: {
        type: "chain.worker.assigned",
        worker: "w1",
        price: 50n,
        verifiers,
        ...(attempt === undefined ? {} : { attempt }),
        ref: `${attempt ?? 1}:t:0`,
      },
    });
  /** `node` gossips its capabilities: this node knows it as a node of the network. */
  const knows = (node: string) => {
    const data = encodeMessage(TOPICS.capabilities, {
      type: "node.capabilities",
      node,
      roles: ["client"],
      hardware: "cpu",
      models: [],
    });
    const message = { topic: TOPICS.capabilities, from: node, data };
    assert.equal(ingress.validate(message), "accept");
    ingress.receive(message);
  };
  const scored = () => submitted.filter((a) => a.event.type === "peer.scored").map((a) => a.target);
  return {
    tree,
    ingress,
    submitted,
    rejected,
    assign,
    chainAssigns,
    scored,
    knows,
    deliver,
    advance: (ms: number) => (now += ms),
  };
}

Deno.test("a verifier keeps an owner's assignment once the chain's escrow matches it, and the chain's naming creates the actor", () => {
  const v = verifier();
  // The assignment outran the chain's escrow: held, nothing journaled.
  assert.equal(v.assign("alice", "j1"), "accept");
  assert.equal(v.submitted.length, 0);
  assert.equal(v.ingress.heldAssignments, 1);
  // The escrow shows and fits: the spec is kept (one journaled event, no actor yet).
  v.ingress.escrowShown("j1", TERMS);
  assert.deepEqual(v.submitted.map((a) => a.event.type), ["job.declined"]);
  assert.equal(v.tree.declined("j1")?.reason, "awaiting_chain");
  assert.deepEqual(v.tree.declined("j1")?.spec, SPEC);
  assert.equal(v.tree.declined("j1")?.owner, "alice");
  assert.equal(v.tree.get("job:j1"), undefined);
  // The same assignment again: nothing more.
  v.assign("alice", "j1");
  assert.equal(v.submitted.length, 1);
  // The chain names this node: its actor, from the kept spec.
  assert.equal(v.chainAssigns("j1").status, "accepted");
  const context = jobContextOf(v.tree.get("job:j1")!);
  assert.equal(context.owner, "alice");
  assert.deepEqual(context.verifiers, ["me", "v2"]);
  assert.deepEqual(context.spec, SPEC);
  assert.equal(v.tree.declined("j1"), undefined);
});

Deno.test("a verifier the chain named before the owner's assignment came keeps the naming, early results and the chain's news, and the spec creates the actor", () => {
  const v = verifier();
  v.ingress.escrowShown("j2", TERMS);
  assert.equal(v.chainAssigns("j2").status, "accepted");
  const record = v.tree.declined("j2");
  assert.equal(record?.reason, "awaiting_spec");
  assert.deepEqual(record?.assigned?.verifiers, ["me", "v2"]);
  assert.equal(v.tree.get("job:j2"), undefined);
  // The worker's result outruns the owner's assignment: kept in the record.
  const output = { product: [[19, 22], [43, 50]] };
  const result = {
    type: "job.result" as const,
    jobId: "j2",
    worker: "w1",
    commitment: "e".repeat(64),
    output,
  };
  const data = encodeMessage(TOPICS.results, result);
  const message = { topic: TOPICS.results, from: "w1", data };
  assert.equal(v.ingress.validate(message), "accept");
  v.ingress.receive(message);
  assert.equal(v.tree.declined("j2")?.results?.length, 1);
  // So does the chain's record of the result (a node without an actor would drop it).
  const onChain = { type: "chain.result.submitted", worker: "w1", commitment: "e".repeat(64) };
  assert.equal(v.deliver("chain", { target: "job:j2", event: onChain }).status, "accepted");
  assert.equal(v.tree.declined("j2")?.chain?.length, 1);
  // The owner's assignment: the actor is created, assigned, with the result it is to verify.
  assert.equal(v.assign("alice", "j2", { attempt: 1 }), "accept");
  const cell = v.tree.get("job:j2");
  assert.ok(cell, "the spec creates the actor");
  const context = jobContextOf(cell);
  assert.equal(context.winner?.worker, "w1");
  assert.deepEqual(context.verifiers, ["me", "v2"]);
  assert.deepEqual(context.outputs["w1"]?.value, output);
  // It is verifying what the chain holds, with the output it heard.
  assert.equal(cell.state, "verifying");
  assert.deepEqual(context.result, { worker: "w1", commitment: "e".repeat(64) });
  assert.equal(context.verifying, true);
  assert.equal(v.tree.declined("j2"), undefined);
});

Deno.test("a forged or mismatched assignment costs its sender and holds nothing", () => {
  const v = verifier();
  v.knows("alice");
  for (const jobId of ["f1", "f2", "f3", "f4"]) v.ingress.escrowShown(jobId, TERMS);
  // Not the job's client on chain (a node of the network: its account is its node id).
  assert.equal(v.assign("mallory", "f1"), "reject");
  assert.match(v.rejected.at(-1)!, /came from "mallory", not its client on chain "alice"/);
  // The owner, with another input than it escrowed.
  const otherInput = { a: [[1]], b: [[2]] };
  const swapped = { ...SPEC, input: otherInput, inputCommitment: commitmentOf(otherInput) };
  assert.equal(v.assign("alice", "f2", { spec: swapped }), "reject");
  assert.match(v.rejected.at(-1)!, /input commitment .*the chain's escrow says/);
  // Another model than it escrowed.
  const onnx: JobSpec = { ...SPEC, kind: { type: "onnx", modelHash: "a".repeat(64) } };
  assert.equal(v.assign("alice", "f3", { spec: onnx }), "reject");
  assert.match(v.rejected.at(-1)!, /names model a{64}: the chain's escrow says 0{64}/);
  // The committed input's hash, but another input.
  assert.equal(v.assign("alice", "f4", { spec: { ...SPEC, input: otherInput } }), "reject");
  assert.match(v.rejected.at(-1)!, /does not hash to its commitment/);
  assert.deepEqual(v.scored(), ["peer:mallory", "peer:alice", "peer:alice", "peer:alice"]);
  for (const a of v.submitted) assert.equal(a.event["delta"], WIRE_PENALTY);
  for (const jobId of ["f1", "f2", "f3", "f4"]) {
    assert.equal(v.tree.declined(jobId), undefined);
    assert.equal(v.tree.get(`job:${jobId}`), undefined);
  }
  // A forgery that outran the escrow is held, then costs its sender when the escrow shows.
  assert.equal(v.assign("mallory", "f5"), "accept");
  v.ingress.escrowShown("f5", TERMS);
  assert.deepEqual(v.scored().at(-1), "peer:mallory");
  assert.equal(v.tree.declined("f5"), undefined);
  // The chain names this node: without a spec kept, no actor (it waits for the owner's).
  v.chainAssigns("f5");
  assert.equal(v.tree.get("job:f5"), undefined);
});

Deno.test("an assignment that does not name this node as a verifier, or reaches a node that is no verifier, is let by", () => {
  const v = verifier();
  v.ingress.escrowShown("n1", TERMS);
  assert.equal(v.assign("alice", "n1", { verifiers: ["v2", "v3"] }), "accept");
  assert.equal(v.submitted.length, 0);
  assert.equal(v.tree.declined("n1"), undefined);
  assert.equal(v.ingress.ignored, 1);
  const w = verifier({ roles: ["worker"] });
  w.ingress.escrowShown("n2", TERMS);
  assert.equal(w.assign("alice", "n2"), "accept");
  assert.equal(w.submitted.length, 0);
  assert.equal(w.tree.declined("n2"), undefined);
});

Deno.test("assignments waiting for their escrow are bounded in count and in time", () => {
  const v = verifier({ hints: new AssignmentHints({ maxHeld: 2, heldMs: 10_000 }) });
  for (const jobId of ["h1", "h2", "h3"]) v.assign("alice", jobId);
  assert.equal(v.ingress.heldAssignments, 2, "the oldest is dropped past the bound");
  // h1 was dropped: its escrow keeps nothing.
  v.ingress.escrowShown("h1", TERMS);
  assert.equal(v.tree.declined("h1"), undefined);
  v.ingress.escrowShown("h2", TERMS);
  assert.equal(v.tree.declined("h2")?.reason, "awaiting_chain");
  // h3 waited past heldMs: the next hold drops it.
  v.advance(10_001);
  v.assign("alice", "h4");
  assert.equal(v.ingress.heldAssignments, 1);
  v.ingress.escrowShown("h3", TERMS);
  assert.equal(v.tree.declined("h3"), undefined);
  assert.throws(() => new AssignmentHints({ maxHeld: -1 }), RangeError);
  assert.throws(() => new AssignmentHints({ heldMs: 0 }), RangeError);
});

Deno.test("where the job's client on chain is no node of the network (an account, not a peer id), the spec's chain-checked content is what is checked", () => {
  const v = verifier();
  // "client" is the job's chain account; its owner's node id is another (as over libp2p).
  const terms = { ...TERMS, client: "client" };
  v.ingress.escrowShown("a1", terms);
  assert.equal(v.assign("12D3KooWowner", "a1"), "accept");
  assert.equal(v.tree.declined("a1")?.reason, "awaiting_chain");
  assert.equal(v.tree.declined("a1")?.owner, "12D3KooWowner");
  // The content is still the chain's to vouch for.
  v.ingress.escrowShown("a2", terms);
  const otherInput = { a: [[1]], b: [[2]] };
  const swapped = { ...SPEC, input: otherInput, inputCommitment: commitmentOf(otherInput) };
  assert.equal(v.assign("12D3KooWowner", "a2", { spec: swapped }), "reject");
  assert.equal(v.tree.declined("a2"), undefined);
});

Deno.test("a job's client that was a node of the network stays one when it leaves: a forgery after it disconnected costs its sender", () => {
  const v = verifier();
  v.knows("alice");
  v.ingress.peerEvent({ type: "disconnected", peer: "alice" });
  v.ingress.escrowShown("g1", TERMS);
  assert.equal(v.assign("mallory", "g1", { attempt: 3 }), "reject");
  assert.match(v.rejected.at(-1)!, /came from "mallory", not its client on chain "alice"/);
  assert.equal(v.tree.declined("g1"), undefined);
  // A peer seen connecting (no capabilities heard) counts as a node too.
  v.ingress.peerEvent({ type: "connected", peer: "bob" });
  v.ingress.peerEvent({ type: "disconnected", peer: "bob" });
  v.ingress.escrowShown("g2", { ...TERMS, client: "bob" });
  assert.equal(v.assign("mallory", "g2"), "reject");
  assert.equal(v.tree.declined("g2"), undefined);
});

Deno.test("the escrow terms a verifier remembers are bounded, the oldest out first", () => {
  const hints = new AssignmentHints({ maxTerms: 3 });
  for (const jobId of ["t1", "t2", "t3", "t4"]) hints.escrowed(jobId, TERMS);
  assert.equal(hints.terms("t1"), undefined, "the oldest is forgotten");
  for (const jobId of ["t2", "t3", "t4"]) assert.deepEqual(hints.terms(jobId), TERMS, jobId);
  // Shown again: its terms replaced, nothing pushed out.
  hints.escrowed("t3", { ...TERMS, client: "bob" });
  assert.equal(hints.terms("t3")?.client, "bob");
  assert.ok(hints.terms("t2") !== undefined && hints.terms("t4") !== undefined);
  assert.deepEqual(new AssignmentHints({ maxTerms: 0 }).escrowed("t1", TERMS), []);
  const none = new AssignmentHints({ maxTerms: 0 });
  none.escrowed("t1", TERMS);
  assert.equal(none.terms("t1"), undefined, "no memory, no terms");
});

Deno.test("where the client is no node, a forgery sent first with attempt 16 and a 1 ms verification window costs its sender, and the chain's attempt is the actor's", () => {
  const v = verifier();
  // "client" is the job's chain account, no node id: nothing binds a peer to it.
  const terms = { ...TERMS, client: "client" };
  v.ingress.escrowShown("r1", terms);
  // The review's forgery: the escrow's model and input, another attempt and deadline.
  const forged = { ...SPEC, verificationMs: 1 };
  assert.equal(v.assign("mallory", "r1", { spec: forged, attempt: 16 }), "reject");
  assert.match(v.rejected.at(-1)!, /names verificationMs 1: the chain's escrow says 5000/);
  assert.deepEqual(v.scored(), ["peer:mallory"]);
  assert.equal(v.tree.declined("r1"), undefined, "nothing kept");
  // Each of the escrow's terms is checked.
  const wrong: [Partial<JobSpec>, RegExp][] = [
    [{ maxPrice: 99n }, /names max price 99: the chain's escrow holds 100/],
    [{ requirements: { hardware: "cpu", minStake: 5n } }, /names minimum stake 5/],
    [{ verifierCount: 4 }, /names verifierCount 4: the chain's escrow says 1/],
    [{ bidWindowMs: 7 }, /names bidWindowMs 7/],
    [{ executionMs: 7 }, /names executionMs 7/],
  ];
  for (const [change, why] of wrong) {
    assert.equal(v.assign("mallory", "r1", { spec: { ...SPEC, ...change } }), "reject");
    assert.match(v.rejected.at(-1)!, why);
  }
  // The same forgery with the escrow's terms but no input (a forger that knows none): of no use
  // to a verifier, which re-runs the job on the input the spec carries; let by.
  const { input: _input, ...noInput } = SPEC;
  assert.equal(v.assign("mallory", "r1", { spec: noInput, attempt: 16 }), "accept");
  assert.equal(v.tree.declined("r1"), undefined);
  // With the input too (it heard the announcement): kept, the attempt the sender's word until
  // the chain names this node.
  assert.equal(v.assign("mallory", "r1", { attempt: 16 }), "accept");
  assert.equal(v.tree.declined("r1")?.attempt, 16);
  // A later one does not displace it, whatever attempt it claims: the content is the same.
  assert.equal(v.assign("12D3KooWowner", "r1", { attempt: 1 }), "accept");
  assert.equal(v.tree.declined("r1")?.owner, "mallory");
  // The chain names this node for attempt 1: the actor follows the chain's attempt.
  assert.equal(v.chainAssigns("r1", ["me", "v2"], 1).status, "accepted");
  const context = jobContextOf(v.tree.get("job:r1")!);
  assert.equal(context.attempt, 1, "the chain's attempt, not 16");
  assert.equal(context.spec.verificationMs, SPEC.verificationMs, "the escrow's deadline");
  assert.equal(context.winner?.worker, "w1");
});

Deno.test("once the chain named this node, an assignment of that attempt naming another worker or other verifiers costs its sender; a later attempt waits for the chain, an earlier one is stale", () => {
  const v = verifier();
  const terms = { ...TERMS, client: "client" };
  v.ingress.escrowShown("r2", terms);
  assert.equal(v.chainAssigns("r2", ["me", "v2"], 2).status, "accepted");
  assert.equal(v.tree.declined("r2")?.assigned?.attempt, 2);
  assert.equal(v.assign("mallory", "r2", { attempt: 2, worker: "w9" }), "reject");
  assert.match(v.rejected.at(-1)!, /names worker "w9" for attempt 2: the chain assigned "w1"/);
  assert.equal(v.assign("mallory", "r2", { attempt: 2, verifiers: ["me", "v3"] }), "reject");
  assert.match(v.rejected.at(-1)!, /names verifiers \["me","v3"\] for attempt 2/);
  assert.deepEqual(v.scored(), ["peer:mallory", "peer:mallory"]);
  // Attempt 16: ahead of what this node's chain showed, held (not kept, not charged).
  assert.equal(v.assign("mallory", "r2", { attempt: 16 }), "accept");
  assert.equal(v.ingress.heldAssignments, 1);
  // Attempt 1: an earlier auction's copy, let by.
  const ignored = v.ingress.ignored;
  assert.equal(v.assign("12D3KooWowner", "r2", { attempt: 1 }), "accept");
  assert.equal(v.ingress.ignored, ignored + 1);
  assert.equal(v.tree.get("job:r2"), undefined);
  // The owner's copy of attempt 2 creates the actor, on the chain's attempt.
  assert.equal(v.assign("12D3KooWowner", "r2", { attempt: 2 }), "accept");
  assert.equal(jobContextOf(v.tree.get("job:r2")!).attempt, 2);
  assert.equal(v.scored().length, 2, "the owner paid nothing");
});

Deno.test("an owner's assignment ahead of this node's chain is held until the chain names this node for that attempt", () => {
  const v = verifier();
  v.ingress.escrowShown("r3", { ...TERMS, client: "client" });
  // This node's chain follower showed attempt 1's naming and its revocation; the owner already
  // saw attempt 2's naming.
  v.chainAssigns("r3", ["me", "v2"], 1);
  const revoked = { type: "chain.assignment.revoked", worker: "w1", ref: "2:t:0" };
  assert.equal(v.deliver("chain", { target: "job:r3", event: revoked }).status, "accepted");
  assert.equal(v.assign("12D3KooWowner", "r3", { attempt: 2 }), "accept");
  assert.equal(v.ingress.heldAssignments, 1);
  assert.equal(v.tree.declined("r3")?.spec, undefined, "not kept yet");
  // The chain's attempt 2 naming shows (before it is journaled): the held copy is judged and
  // kept, and creates the actor on the chain's history so far (attempt 1, revoked).
  v.ingress.assignedOnChain("r3", {
    worker: "w1",
    price: 50n,
    verifiers: ["me", "v2"],
    attempt: 2,
  });
  assert.equal(v.ingress.heldAssignments, 0);
  assert.equal(jobContextOf(v.tree.get("job:r3")!).attempt, 2);
  // The journaled naming of attempt 2 follows.
  assert.equal(v.chainAssigns("r3", ["me", "v2"], 2).status, "accepted");
  assert.equal(v.tree.get("job:r3")!.state, "executing");
  assert.equal(v.scored().length, 0);
  // A naming that does not name this node releases nothing.
  assert.equal(v.assign("12D3KooWowner", "r4"), "accept");
  v.ingress.assignedOnChain("r4", { worker: "w1", price: 50n, verifiers: ["v2"], attempt: 1 });
  assert.equal(v.ingress.heldAssignments, 1);
});

Deno.test("held assignments are budgeted per sender: one peer's push out only its own, past the bound the biggest sender's", () => {
  const hint = (from: string, jobId: string) => ({
    jobId,
    from,
    worker: "w1",
    verifiers: ["me"],
    attempt: 1,
    spec: SPEC,
  });
  const roomy = new AssignmentHints({ maxHeld: 10, maxHeldPerSender: 2, heldMs: 10_000 });
  assert.ok(roomy.hold(hint("alice", "a1"), 0));
  for (let i = 0; i < 5; i++) assert.ok(roomy.hold(hint("mallory", `m${i}`), 0));
  assert.equal(roomy.heldFrom("mallory"), 2, "its share, its own oldest out");
  assert.deepEqual(roomy.release("m2"), [], "m2 went");
  assert.equal(roomy.release("m4").length, 1);
  assert.deepEqual(roomy.release("a1").map((h) => h.from), ["alice"], "alice's stayed");
  // Full: a newcomer pushes out the oldest of the sender holding most, not the oldest overall.
  const hints = new AssignmentHints({ maxHeld: 3, maxHeldPerSender: 2, heldMs: 10_000 });
  assert.ok(hints.hold(hint("alice", "a1"), 0));
  assert.ok(hints.hold(hint("mallory", "m1"), 0));
  assert.ok(hints.hold(hint("mallory", "m2"), 0));
  assert.ok(hints.hold(hint("bob", "b1"), 0));
  assert.deepEqual([hints.heldFrom("alice"), hints.heldFrom("mallory"), hints.heldFrom("bob")], [
    1,
    1,
    1,
  ]);
  assert.deepEqual(hints.release("m1"), [], "mallory's oldest went");
  assert.equal(hints.release("a1").length, 1, "alice's, older, stayed");
  // One per sender and job: the latest replaces its own.
  assert.ok(hints.hold(hint("bob", "b1"), 0));
  assert.equal(hints.heldFrom("bob"), 1);
  assert.throws(() => new AssignmentHints({ maxHeldPerSender: -1 }), RangeError);
  assert.equal(new AssignmentHints({ maxHeldPerSender: 0 }).hold(hint("a", "x"), 0), false);
});

Deno.test("a worker that is also a verifier and declined the job's announcement keeps the owner's chain-checked assignment in place of the announced spec", () => {
  const v = verifier({ roles: ["verifier", "worker"] });
  v.ingress.escrowShown("d1", TERMS);
  // Declined as a worker, the announced spec kept (gossip: not checked against the escrow here).
  const announced = { ...SPEC, maxAttempts: 9 };
  const declined = {
    type: "job.declined",
    owner: "alice",
    attempt: 1,
    bidWindowEndsAt: 0,
    reason: "busy",
    spec: announced,
  };
  assert.equal(v.deliver("network", { target: "job:d1", event: declined }).status, "accepted");
  assert.equal(v.tree.declined("d1")?.reason, "busy");
  assert.equal(v.assign("alice", "d1"), "accept");
  assert.equal(v.tree.declined("d1")?.reason, "awaiting_chain");
  assert.deepEqual(v.tree.declined("d1")?.spec, SPEC);
  // And that one stays.
  assert.equal(v.assign("alice", "d1", { spec: announced, attempt: 2 }), "accept");
  assert.deepEqual(v.tree.declined("d1")?.spec, SPEC);
});

Deno.test("by default a busy honest owner's assignments ahead of the chain are all held", () => {
  // The demo's client (25 jobs in flight) had up to 31 held at once on one verifier; a share of 8
  // dropped some, and their jobs failed their quorum.
  const hints = new AssignmentHints();
  for (let i = 0; i < 100; i++) {
    assert.ok(
      hints.hold({
        jobId: `j${i}`,
        from: "owner",
        worker: "w1",
        verifiers: ["me"],
        attempt: 1,
        spec: SPEC,
      }, 0),
    );
  }
  assert.equal(hints.heldFrom("owner"), 100);
  for (let i = 0; i < 100; i++) assert.equal(hints.release(`j${i}`).length, 1, `j${i} was kept`);
});

Deno.test("one peer's announcements, 10,000 of them, do not push an owner's chain-checked record out of a worker and verifier, nor replace it (review 2, M1 and H3)", () => {
  const v = verifier({ roles: ["worker", "verifier"] });
  v.ingress.escrowShown("j1", TERMS);
  assert.equal(v.assign("alice", "j1"), "accept");
  assert.equal(v.tree.declined("j1")?.reason, "awaiting_chain");
  const announce = (jobId: string, attempt: number, spec: JobSpec) => {
    const topic = announcementTopicsOf(spec, jobId, attempt, 0)[0]!;
    const data = encodeMessage(topic as typeof TOPICS.jobs, {
      type: "job.announce",
      jobId,
      owner: "mallory",
      attempt,
      bidWindowEndsAt: 10_000_000,
      spec,
    });
    const message = { topic, from: "mallory", data };
    if (v.ingress.validate(message) === "accept") v.ingress.receive(message);
  };
  for (let i = 0; i < 10_000; i++) announce(`m${i}`, 1, SPEC);
  // The job itself announced again by another peer, a later attempt, another input.
  const input = { a: [[9]], b: [[1]] };
  announce("j1", 3, { ...SPEC, input, inputCommitment: commitmentOf(input) });
  assert.equal(v.tree.declined("j1")?.owner, "alice");
  assert.equal(v.tree.declined("j1")?.spec?.inputCommitment, SPEC.inputCommitment);
  v.chainAssigns("j1", ["me", "v2"], 1);
  const cell = v.tree.get("job:j1");
  assert.ok(cell !== undefined, "the owner's kept spec made the actor");
  assert.equal(jobContextOf(cell).spec.inputCommitment, SPEC.inputCommitment);
});
