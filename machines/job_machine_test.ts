import assert from "node:assert/strict";
import { bid, Driver, spec } from "../tests/_drive.ts";
import {
  bidRejection,
  type JobInput,
  jobMachine,
  MAX_REFUND_RETRY_MS,
  MAX_REFUND_SENDS,
  REFUND_GRACE_MS,
  REFUND_LIMIT_MS,
  REFUND_RETRY_MS,
} from "./job_machine.ts";

const POOL = ["v1", "v2", "v3", "v4", "v5"];
const C = "c".repeat(64);
const BAD = "b".repeat(64);

function owner(overrides: Partial<JobInput> = {}): Driver {
  return new Driver(jobMachine, {
    jobId: "j1",
    spec: spec(),
    owner: "client",
    self: "client",
    roles: ["client"],
    at: 0,
    verifierPool: POOL,
    ...overrides,
  });
}

/** Drives an owner's job into `executing` with w1 assigned. */
function executing(overrides: Partial<JobInput> = {}): Driver {
  const d = owner(overrides);
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  d.send({ type: "bid.received", at: 11, bid: bid("w2", 60n) });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  d.send({
    type: "chain.worker.assigned",
    at: 110,
    worker: "w1",
    price: 40n,
    verifiers: d.context.verifiers,
  });
  return d;
}

function verifying(): Driver {
  const d = executing();
  d.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  return d;
}

Deno.test("jobMachine() runs announced -> bidding -> ... -> settled for its owner", () => {
  const d = owner();
  assert.equal(d.state, "announced");
  assert.deepEqual(d.emitted("chain.escrow.lock").map((e) => e.amount), [100n]);

  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  assert.equal(d.state, "bidding");
  assert.deepEqual(d.context.deadlines, { bid_window: 105 });
  assert.deepEqual(d.emitted("timer.arm"), [{ type: "timer.arm", key: "bid_window", at: 105 }]);
  assert.equal(d.emitted("net.announce")[0].bidWindowEndsAt, 105);

  d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  d.send({ type: "bid.received", at: 11, bid: bid("w2", 60n) });
  // A bid is a record with its status, not a child actor (job machine version 4).
  assert.equal(Object.keys(d.snapshot.children).length, 0, "no bid actors");
  assert.deepEqual(
    Object.values(d.context.bids as Record<string, { status: string }>).map((b) => b.status),
    ["open", "open"],
  );

  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "assigned");
  const [assign] = d.emitted("chain.assign");
  assert.equal(assign.worker, "w1");
  assert.equal(assign.price, 40n);
  assert.equal(assign.verifiers.length, 4);
  assert.ok(!assign.verifiers.includes("w1"));

  d.send({
    type: "chain.worker.assigned",
    at: 110,
    worker: "w1",
    price: 40n,
    verifiers: assign.verifiers,
  });
  assert.equal(d.state, "executing");
  assert.equal(d.context.deadlines.execution, 1_110);
  assert.equal(d.context.bids["b-w1"].status, "accepted");
  assert.equal(d.context.bids["b-w2"].status, "rejected");
  assert.equal(d.context.bids["b-w2"].reason, "outbid");

  d.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  assert.equal(d.state, "verifying");
  assert.equal(d.context.deadlines.verification, 1_200);

  const [v1, v2, v3] = d.context.verifiers;
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 300,
    verifier: v1,
    verdict: "valid",
    commitment: C,
  });
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 301,
    verifier: v2,
    verdict: "valid",
    commitment: C,
  });
  assert.equal(d.state, "verifying", "2 of 4 is not a BFT quorum");
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 302,
    verifier: v3,
    verdict: "valid",
    commitment: C,
  });
  assert.equal(d.state, "settling");
  assert.deepEqual(d.emitted("chain.verification.record").map((e) => e.accepted), [true]);

  d.send({ type: "chain.job.verified", at: 310 });
  assert.equal(d.emitted("chain.release").length, 1);
  d.send({
    type: "chain.payment.released",
    at: 320,
    worker: "w1",
    amount: 40n,
    fee: 0n,
    change: 60n,
  });
  assert.equal(d.state, "settled");
  assert.equal(d.snapshot.status, "done");
  assert.deepEqual(d.context.path.map((p: { state: string }) => p.state), [
    "announced",
    "bidding",
    "assigned",
    "executing",
    "verifying",
    "settling",
    "settled",
  ]);
  assert.deepEqual(d.context.deadlines, {});
});

Deno.test("jobMachine() expires and refunds when no acceptable bid arrives in the window", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 500n) }); // above the maximum price
  assert.equal(d.context.bids["b-w1"].reason, "price_above_max");
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "refunding");
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"]);
  d.send({ type: "chain.escrow.refunded", at: 120, amount: 100n, reason: "expired" });
  assert.equal(d.state, "expired");
  assert.equal(d.context.refunded, 100n);
});

Deno.test("jobMachine() is cancelled by its client before assignment, also while escrow is pending", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "job.cancel", at: 20 });
  assert.equal(d.state, "refunding");
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["cancelled"]);
  d.send({ type: "chain.escrow.refunded", at: 30, amount: 100n, reason: "cancelled" });
  assert.equal(d.state, "cancelled");

  const pending = owner();
  pending.send({ type: "job.cancel", at: 1 });
  assert.equal(pending.state, "announced");
  pending.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  assert.equal(pending.state, "refunding");
  assert.deepEqual(pending.emitted("chain.refund").map((e) => e.reason), ["cancelled"]);
});

Deno.test("jobMachine() refuses cancellation after assignment and by anyone but the owner", () => {
  const d = executing();
  assert.equal(d.can({ type: "job.cancel", at: 200 }), false);
  const observer = new Driver(jobMachine, {
    jobId: "j1",
    spec: spec(),
    owner: "client",
    self: "w9",
    roles: ["worker"],
    at: 0,
    escrowLocked: true,
  });
  assert.equal(observer.can({ type: "job.cancel", at: 1 }), false);
});

Deno.test("jobMachine() re-auctions when the worker goes silent, then fails when attempts run out", () => {
  const d = executing();
  d.send({ type: "timer.fired", at: 1_110, key: "execution", due: 1_110 });
  assert.equal(d.state, "reassigning");
  assert.deepEqual(d.emitted("chain.assignment.revoke").map((e) => e.worker), ["w1"]);

  d.send({ type: "chain.assignment.revoked", at: 1_120, worker: "w1" });
  assert.equal(d.state, "bidding");
  assert.equal(d.context.attempt, 2);
  assert.deepEqual(d.context.excluded, ["w1"]);
  assert.deepEqual(d.emitted("chain.slash").map((e) => [e.worker, e.reason]), [["w1", "downtime"]]);
  assert.equal(d.emitted("net.announce")[0].attempt, 2);
  assert.equal(d.context.deadlines.bid_window, 1_220);

  d.send({ type: "bid.received", at: 1_130, bid: bid("w1", 10n, { bidId: "again" }) });
  assert.equal(d.context.bids["again"].reason, "worker_excluded");
  d.send({ type: "bid.received", at: 1_131, bid: bid("w3", 70n) });
  d.send({ type: "timer.fired", at: 1_220, key: "bid_window", due: 1_220 });
  assert.equal(d.emitted("chain.assign")[0].worker, "w3");
  d.send({
    type: "chain.worker.assigned",
    at: 1_230,
    worker: "w3",
    price: 70n,
    verifiers: d.context.verifiers,
  });
  d.send({ type: "timer.fired", at: 2_230, key: "execution", due: 2_230 });
  d.send({ type: "chain.assignment.revoked", at: 2_240, worker: "w3" });
  assert.equal(d.state, "refunding", "maxAttempts = 2 is used up");
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["failed"]);
  d.send({ type: "chain.escrow.refunded", at: 2_250, amount: 100n, reason: "failed" });
  assert.equal(d.state, "failed");
});

Deno.test("jobMachine() disputes a wrong result: slashes the worker and refunds the client", () => {
  const d = verifying();
  const [v1, v2] = d.context.verifiers;
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 300,
    verifier: v1,
    verdict: "invalid",
    commitment: BAD,
  });
  assert.equal(d.state, "verifying", "one objection is not f + 1");
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 301,
    verifier: v2,
    verdict: "invalid",
    commitment: BAD,
  });
  assert.equal(d.state, "disputed");
  assert.deepEqual(d.emitted("chain.verification.record").map((e) => e.accepted), [false]);
  d.send({ type: "chain.job.disputed", at: 310 });
  assert.deepEqual(d.emitted("chain.slash").map((e) => [e.worker, e.reason]), [[
    "w1",
    "invalid_compute",
  ]]);
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["disputed"]);
  d.send({
    type: "chain.worker.slashed",
    at: 311,
    worker: "w1",
    amount: 25n,
    reason: "invalid_compute",
  });
  d.send({ type: "chain.escrow.refunded", at: 312, amount: 100n, reason: "disputed" });
  assert.equal(d.state, "refunded");
  assert.deepEqual(d.context.slashes, [{ worker: "w1", amount: 25n, reason: "invalid_compute" }]);
});

Deno.test("jobMachine() ignores attestations from verifiers that were not chosen, and duplicates", () => {
  const d = verifying();
  assert.equal(
    d.can({
      type: "job.attestation.received",
      worker: "w1",
      claimed: C,
      at: 300,
      verifier: "w2",
      verdict: "invalid",
      commitment: BAD,
    }),
    false,
  );
  const [v1] = d.context.verifiers;
  d.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 300,
    verifier: v1,
    verdict: "valid",
    commitment: C,
  });
  assert.equal(
    d.can({
      type: "job.attestation.received",
      worker: "w1",
      claimed: C,
      at: 301,
      verifier: v1,
      verdict: "invalid",
      commitment: C,
    }),
    false,
  );
});

Deno.test("jobMachine() fails when the escrow cannot be locked, or no quorum forms in time", () => {
  const d = owner();
  d.send({
    type: "chain.tx.failed",
    at: 3,
    request: "chain.escrow.lock",
    code: "insufficient_balance",
    message: "no funds",
  });
  assert.equal(d.state, "failed");
  assert.match(d.context.failure, /chain.escrow.lock failed: insufficient_balance/);

  const v = verifying();
  v.send({ type: "timer.fired", at: 1_200, key: "verification", due: 1_200 });
  assert.equal(v.state, "refunding");
  assert.deepEqual(v.emitted("chain.refund").map((e) => e.reason), ["failed"]);
});

Deno.test("jobMachine() ignores a stale deadline firing", () => {
  const d = executing();
  // The bid window's timer fires late, after the job moved on.
  assert.equal(d.can({ type: "timer.fired", at: 150, key: "bid_window", due: 105 }), false);
  // An execution deadline with a different due time is not the current one.
  assert.equal(d.can({ type: "timer.fired", at: 150, key: "execution", due: 150 }), false);
  assert.equal(d.can({ type: "timer.fired", at: 1_110, key: "execution", due: 1_110 }), true);
});

Deno.test("jobMachine() falls back to the next bid when the chain refuses the assignment", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  d.send({ type: "bid.received", at: 11, bid: bid("w2", 60n) });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  d.send({
    type: "chain.tx.failed",
    at: 106,
    request: "chain.assign",
    code: "insufficient_stake",
    message: "stake 5",
  });
  assert.equal(d.state, "assigned");
  assert.equal(d.context.bids["b-w1"].reason, "assignment_failed");
  assert.equal(d.emitted("chain.assign")[0].worker, "w2");
  d.send({
    type: "chain.tx.failed",
    at: 107,
    request: "chain.assign",
    code: "insufficient_stake",
    message: "stake 5",
  });
  assert.equal(d.state, "refunding");
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"]);
});

Deno.test("bidRejection() names why a bid cannot take part", () => {
  const d = owner({ spec: spec({ requirements: { hardware: "gpu", minStake: 10n } }) });
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const c = d.context;
  assert.equal(bidRejection(c, bid("w1", 101n, { hardware: "gpu" })), "price_above_max");
  assert.equal(bidRejection(c, bid("w1", 50n)), "hardware_mismatch");
  assert.equal(
    bidRejection(c, bid("w1", 50n, { hardware: "gpu", stake: 9n })),
    "insufficient_stake",
  );
  assert.equal(bidRejection(c, bid("w1", 50n, { hardware: "gpu", etaMs: 5_000 })), "eta_too_long");
  assert.equal(bidRejection(c, bid("w1", 50n, { hardware: "gpu" })), null);
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 50n, { hardware: "gpu" }) });
  assert.equal(bidRejection(d.context, bid("w1", 50n, { hardware: "gpu" })), "duplicate");
  const rejected = d.send({ type: "bid.received", at: 11, bid: bid("w2", 50n) });
  assert.match(
    rejected.find((e) => e.type === "log.reject")!.reason as string,
    /hardware_mismatch/,
  );
});

Deno.test("jobMachine() rejects a bid for a job that is not bidding, with a logged reason", () => {
  const d = executing();
  const effects = d.send({ type: "bid.received", at: 500, bid: bid("w7", 10n) });
  assert.equal(d.state, "executing");
  const log = effects.find((e) => e.type === "log.reject");
  assert.ok(log);
  assert.match(log.reason as string, /Cannot accept bid "b-w7" from "w7": not_bidding/);
});

Deno.test("jobMachine() on a worker node bids, runs the job it won, and submits the result", () => {
  const d = new Driver(jobMachine, {
    jobId: "j1",
    spec: spec(),
    owner: "client",
    self: "w1",
    roles: ["worker"],
    at: 10,
    escrowLocked: true,
    bidWindowEndsAt: 105,
  });
  assert.equal(d.state, "bidding");
  assert.equal(
    d.context.deadlines.bid_window,
    105,
    "observers keep the owner's announced deadline",
  );
  assert.equal(d.emitted("worker.consider").length, 1);
  assert.equal(d.emitted("net.announce").length, 0);
  // The observer does not decide at the window's end: the chain tells it.
  assert.equal(d.can({ type: "timer.fired", at: 105, key: "bid_window", due: 105 }), false);
  d.send({
    type: "chain.worker.assigned",
    at: 110,
    worker: "w1",
    price: 40n,
    verifiers: ["v1", "v2", "v3", "v4"],
  });
  assert.equal(d.state, "executing");
  assert.equal(d.emitted("exec.run").length, 1);
  d.send({ type: "job.execution.completed", at: 150, commitment: C, output: [[19, 22], [43, 50]] });
  assert.deepEqual(d.emitted("chain.result.submit").map((e) => e.commitment), [C]);
  assert.equal(d.emitted("net.result").length, 1);
  d.send({ type: "chain.result.submitted", at: 160, worker: "w1", commitment: C });
  assert.equal(d.state, "verifying");
  assert.equal(d.emitted("verify.run").length, 0, "a worker does not verify");
  d.send({ type: "chain.job.verified", at: 200 });
  assert.equal(d.state, "settling");
  assert.equal(d.emitted("chain.release").length, 0, "only the owner releases");
  d.send({
    type: "chain.payment.released",
    at: 210,
    worker: "w1",
    amount: 40n,
    fee: 0n,
    change: 60n,
  });
  assert.equal(d.state, "settled");
});

Deno.test("jobMachine() on a chosen verifier re-runs once it has the result and the output, in either order", () => {
  for (const outputFirst of [true, false]) {
    const d = new Driver(jobMachine, {
      jobId: "j1",
      spec: spec(),
      owner: "client",
      self: "v2",
      roles: ["verifier"],
      at: 10,
      escrowLocked: true,
    });
    assert.equal(d.emitted("worker.consider").length, 0);
    d.send({
      type: "chain.worker.assigned",
      at: 110,
      worker: "w1",
      price: 40n,
      verifiers: ["v1", "v2", "v3", "v4"],
    });
    const output = {
      type: "job.result.received",
      at: 150,
      worker: "w1",
      commitment: C,
      output: [[1]],
    };
    const result = { type: "chain.result.submitted", at: 160, worker: "w1", commitment: C };
    const first = outputFirst ? output : result;
    const second = outputFirst ? result : output;
    d.send(first);
    assert.equal(d.emitted("verify.run").length, 0);
    d.send(second);
    const [run] = d.emitted("verify.run");
    assert.ok(run, `verify.run after ${outputFirst ? "output, result" : "result, output"}`);
    assert.deepEqual(run.output, [[1]]);
    d.send({ type: "job.verification.completed", at: 170, verdict: "valid", commitment: C });
    assert.deepEqual(d.emitted("net.attestation").map((e) => e.verdict), ["valid"]);
  }
});

Deno.test("jobMachine() observers follow the chain into every final state", () => {
  const make = () =>
    new Driver(jobMachine, {
      jobId: "j1",
      spec: spec(),
      owner: "client",
      self: "o",
      roles: ["worker"],
      at: 0,
      escrowLocked: true,
    });
  for (
    const [reason, state] of [["expired", "expired"], ["cancelled", "cancelled"], [
      "disputed",
      "refunded",
    ], ["failed", "failed"]]
  ) {
    const d = make();
    d.send({ type: "chain.escrow.refunded", at: 50, amount: 100n, reason });
    assert.equal(d.state, state);
  }
  const d = make();
  d.send({ type: "chain.worker.assigned", at: 110, worker: "w1", price: 40n, verifiers: ["v1"] });
  d.send({ type: "chain.result.submitted", at: 160, worker: "w1", commitment: C });
  d.send({ type: "chain.job.disputed", at: 170 });
  assert.equal(d.state, "disputed");
  d.send({ type: "chain.assignment.revoked", at: 1 }); // nonsense: ignored
  assert.equal(d.state, "disputed");
});

Deno.test("jobMachine() withdraws a bid only for the worker that made it", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  assert.equal(d.can({ type: "bid.withdrawn", at: 11, bidId: "b-w1", worker: "w2" }), false);
  d.send({ type: "bid.withdrawn", at: 11, bidId: "b-w1", worker: "w1" });
  assert.equal(d.context.bids["b-w1"].status, "withdrawn");
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "refunding", "the only bid was withdrawn");
});

Deno.test("jobMachine() counts an attempt once when the re-announcement outruns the chain", () => {
  const d = new Driver(jobMachine, {
    jobId: "j1",
    spec: spec({ maxAttempts: 2 }),
    owner: "client",
    self: "w2",
    roles: ["worker"],
    at: 0,
    escrowLocked: true,
  });
  d.send({ type: "chain.worker.assigned", at: 110, worker: "w1", price: 40n, verifiers: ["v1"] });
  // Gossip first: the owner re-announces attempt 2 before this node sees the revocation.
  d.send({ type: "job.announced", at: 1_200, attempt: 2, bidWindowEndsAt: 1_400 });
  d.send({ type: "chain.assignment.revoked", at: 1_210, worker: "w1" });
  assert.equal(d.state, "bidding");
  assert.equal(d.context.attempt, 2);
  assert.equal(d.context.deadlines.bid_window, 1_400, "the owner's announced window");
  assert.equal(d.emitted("worker.consider").length, 1, "w2 bids on the second auction");
});

Deno.test("jobMachine() on an observer keeps only its own bid", () => {
  const d = new Driver(jobMachine, {
    jobId: "j1",
    spec: spec(),
    owner: "client",
    self: "w2",
    roles: ["worker"],
    at: 0,
    escrowLocked: true,
  });
  const effects = d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  assert.deepEqual(effects, [], "no rejection noise for other workers' bids");
  assert.deepEqual(Object.keys(d.context.bids), []);
  d.send({ type: "bid.received", at: 11, bid: bid("w2", 50n) });
  assert.deepEqual(Object.keys(d.context.bids), ["b-w2"]);
});

Deno.test("jobMachine() in optimistic mode accepts an unchallenged result when the window closes", () => {
  const policy = {
    bidSelection: "lowest_price",
    quorum: "bft",
    verification: "optimistic",
  } as const;
  const quiet = executing({ policy });
  quiet.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  quiet.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 300,
    verifier: quiet.context.verifiers[0],
    verdict: "invalid",
    commitment: BAD,
  });
  assert.equal(quiet.state, "verifying", "one challenge is not a quorum");
  quiet.send({ type: "timer.fired", at: 1_200, key: "verification", due: 1_200 });
  assert.equal(quiet.state, "settling");
  assert.deepEqual(quiet.emitted("chain.verification.record").map((e) => e.accepted), [true]);

  const challenged = executing({ policy });
  challenged.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  const [v1, v2] = challenged.context.verifiers;
  challenged.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 300,
    verifier: v1,
    verdict: "invalid",
    commitment: BAD,
  });
  challenged.send({
    type: "job.attestation.received",
    worker: "w1",
    claimed: C,
    at: 301,
    verifier: v2,
    verdict: "invalid",
    commitment: BAD,
  });
  assert.equal(challenged.state, "disputed", "a quorum's challenge inside the window disputes it");

  const strict = verifying();
  strict.send({ type: "timer.fired", at: 1_200, key: "verification", due: 1_200 });
  assert.equal(strict.state, "refunding", "quorum mode still fails without a quorum");
});

/** An attestation of `worker`'s result `claimed` by `verifier`. */
function attestation(
  at: number,
  verifier: string,
  worker = "w1",
  claimed = C,
  verdict: "valid" | "invalid" = "valid",
) {
  return {
    type: "job.attestation.received",
    at,
    verifier,
    verdict,
    commitment: verdict === "valid" ? claimed : BAD,
    worker,
    claimed,
  };
}

/** An owner's job in `bidding` with w1's and w2's bids in (w1 wins at the window's end). */
function bidding(): Driver {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "bid.received", at: 10, bid: bid("w1", 40n) });
  d.send({ type: "bid.received", at: 11, bid: bid("w2", 60n) });
  return d;
}

function rejections(d: Driver): string[] {
  return d.emitted("log.reject").map((e) => e.reason as string);
}

Deno.test("jobMachine() keeps attestations that outrun the chain's assignment, and settles on them", () => {
  const chosen: string[] = executing().context.verifiers;
  const d = bidding();
  // Gossip outruns the chain: two attestations before the owner even picked the winner, one
  // while the assignment is on its way to the chain.
  d.send(attestation(50, chosen[0]!));
  d.send(attestation(51, chosen[1]!));
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "assigned");
  assert.deepEqual(d.context.verifiers, chosen);
  d.send(attestation(106, chosen[2]!));
  assert.equal(Object.keys(d.context.attestations).length, 3);

  d.send({ type: "chain.worker.assigned", at: 110, worker: "w1", price: 40n, verifiers: chosen });
  assert.equal(d.state, "executing");
  assert.deepEqual(rejections(d), []);
  assert.deepEqual(Object.keys(d.context.attestations).sort(), chosen.slice(0, 3).sort());

  d.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  assert.equal(d.state, "settling", "the early attestations make the quorum");
  assert.deepEqual(d.emitted("chain.verification.record").map((e) => e.accepted), [true]);
  d.send({ type: "chain.job.verified", at: 210 });
  d.send({
    type: "chain.payment.released",
    at: 211,
    worker: "w1",
    amount: 40n,
    fee: 0n,
    change: 60n,
  });
  assert.equal(d.state, "settled");
});

Deno.test("jobMachine() drops early attestations that do not fit the assignment or the result", () => {
  const chosen: string[] = executing().context.verifiers;
  const other = POOL.find((v) => !chosen.includes(v))!;
  const d = bidding();
  assert.equal(d.can(attestation(40, "stranger")), false, "not in the verifier pool");
  d.send(attestation(50, chosen[0]!));
  d.send(attestation(51, other));
  d.send(attestation(52, chosen[1]!, "w2"));
  d.send(attestation(53, chosen[2]!, "w1", BAD));
  assert.equal(Object.keys(d.context.attestations).length, 4, "kept until the assignment is known");
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  d.send({ type: "chain.worker.assigned", at: 110, worker: "w1", price: 40n, verifiers: chosen });
  assert.deepEqual(rejections(d), [
    `Dropped attestation from "${other}": not a chosen verifier`,
    `Dropped attestation from "${chosen[1]}": judges worker "w2", not the assigned "w1"`,
  ]);
  d.send({ type: "chain.result.submitted", at: 200, worker: "w1", commitment: C });
  assert.deepEqual(rejections(d), [
    `Dropped attestation from "${
      chosen[2]
    }": judges "w1"'s commitment "${BAD}", not the result "${C}"`,
  ]);
  assert.deepEqual(Object.keys(d.context.attestations), [chosen[0]]);
  assert.equal(d.state, "verifying", "1 of 4 is no quorum");
  // Once the assignment is known, a misfit is refused on arrival.
  assert.equal(d.can(attestation(300, other)), false);
  assert.equal(d.can(attestation(300, chosen[1]!, "w2")), false);
  assert.equal(d.can(attestation(300, chosen[1]!, "w1", BAD)), false);
  d.send(attestation(301, chosen[1]!));
  d.send(attestation(302, chosen[2]!));
  assert.equal(d.state, "settling");
});

Deno.test("jobMachine() keeps a bounded number of early attestations", () => {
  const pool = Array.from({ length: 12 }, (_, i) => `v${i}`);
  const d = owner({ verifierPool: pool });
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  for (const [i, v] of pool.entries()) {
    if (d.can(attestation(10 + i, v))) d.send(attestation(10 + i, v));
  }
  assert.equal(Object.keys(d.context.attestations).length, 8);
});

Deno.test("jobMachine() never counts an attestation from a previous attempt for the next", () => {
  const d = executing();
  const first: string[] = d.context.verifiers;
  // Attempt 1: w1's output is gossiped and attested, but its result never reaches the chain.
  d.send(attestation(150, first[0]!));
  d.send({ type: "timer.fired", at: 1_110, key: "execution", due: 1_110 });
  d.send({ type: "chain.assignment.revoked", at: 1_120, worker: "w1" });
  assert.equal(d.context.attempt, 2);
  assert.deepEqual(d.context.attestations, {}, "the revoked attempt's attestations are gone");
  // Late gossip from attempt 1 arrives during attempt 2's auction.
  for (const [i, v] of first.entries()) d.send(attestation(1_125 + i, v));
  d.send({ type: "bid.received", at: 1_131, bid: bid("w3", 70n) });
  d.send({ type: "timer.fired", at: 1_220, key: "bid_window", due: 1_220 });
  const second: string[] = d.context.verifiers;
  d.send({ type: "chain.worker.assigned", at: 1_230, worker: "w3", price: 70n, verifiers: second });
  assert.deepEqual(d.context.attestations, {});
  assert.equal(rejections(d).length, first.length);
  for (const reason of rejections(d)) {
    assert.match(reason, /not a chosen verifier|judges worker "w1"/);
  }
  // w3 commits to the same output as w1 would have: still no quorum from attempt 1's votes.
  d.send({ type: "chain.result.submitted", at: 1_300, worker: "w3", commitment: C });
  assert.equal(d.state, "verifying");
  for (const [i, v] of second.slice(0, 3).entries()) d.send(attestation(1_310 + i, v, "w3"));
  assert.equal(d.state, "settling");
});

Deno.test("jobMachine() ignores an escrow that someone else locked under the job's id", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 4, client: "mallory", amount: 100n });
  assert.equal(d.state, "announced");
  assert.equal(d.context.escrowed, 0n);
  assert.deepEqual(rejections(d), [
    `Cannot accept escrow of job "j1": locked by "mallory", not the owner's account "client"`,
  ]);
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  assert.equal(d.state, "bidding");
  assert.equal(d.context.escrowed, 100n);

  // On a real chain the owner signs with an account, not its node id.
  const signed = owner({ ownerAccount: "0xc11e47" });
  signed.send({ type: "chain.escrow.locked", at: 4, client: "client", amount: 100n });
  assert.equal(signed.state, "announced");
  signed.send({ type: "chain.escrow.locked", at: 5, client: "0xc11e47", amount: 100n });
  assert.equal(signed.state, "bidding");

  const cancelled = owner();
  cancelled.send({ type: "job.cancel", at: 1 });
  cancelled.send({ type: "chain.escrow.locked", at: 4, client: "mallory", amount: 100n });
  assert.equal(cancelled.state, "announced", "no refund of someone else's escrow");
  assert.deepEqual(cancelled.emitted("chain.refund"), []);
});

/** Strips the type and time from an attestation event: an item of a batch. */
function heard(event: ReturnType<typeof attestation>) {
  const { type: _type, at: _at, ...item } = event;
  return item;
}

Deno.test("jobMachine() takes a batch of bids as it takes each alone: a refused one does not hold back the others", () => {
  const batch = [
    bid("w1", 40n),
    bid("w2", 500n), // above the maximum price
    bid("w1", 45n), // the same bid id again: a duplicate within the batch
    bid("w3", 50n, { hardware: "gpu" }), // spec asks cpu, a gpu bid still fits
    bid("w4", 30n, { jobId: "j2" }), // another job's bid
    bid("w5", 35n, { etaMs: 5_000 }), // too slow for the execution deadline
    bid("w6", 60n),
  ];
  const one = owner();
  one.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const singly = batch.flatMap((b) =>
    one.send({ type: "bid.received", at: 10, bid: b }).filter((e) => e.type === "log.reject")
  );
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const effects = d.send({ type: "bids.received", at: 10, bids: batch });
  assert.equal(d.state, "bidding");
  assert.deepEqual(d.context.bids, one.context.bids);
  assert.deepEqual(effects.filter((e) => e.type === "log.reject"), singly);
  const status = (id: string) => [d.context.bids[id]?.status, d.context.bids[id]?.reason];
  assert.deepEqual(status("b-w1"), ["open", null]);
  assert.equal(d.context.bids["b-w1"].price, 40n, "the first of two bids with one id stands");
  assert.deepEqual(status("b-w2"), ["rejected", "price_above_max"]);
  assert.deepEqual(status("b-w5"), ["rejected", "eta_too_long"]);
  assert.deepEqual(status("b-w6"), ["open", null]);
  assert.deepEqual(
    rejections(d),
    [
      `Cannot accept bid "b-w2" from "w2": price_above_max`,
      `Cannot accept bid "b-w1" from "w1": duplicate`,
      `Cannot accept bid "b-w4" from "w4": not_bidding`,
      `Cannot accept bid "b-w5" from "w5": eta_too_long`,
    ],
  );
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.emitted("chain.assign")[0].worker, "w1");
});

Deno.test("jobMachine() refuses every bid of a batch that comes after the auction, each with its reason", () => {
  const d = executing();
  const effects = d.send({
    type: "bids.received",
    at: 500,
    bids: [bid("w7", 10n), bid("w8", 20n)],
  });
  assert.equal(d.state, "executing");
  assert.deepEqual(effects.filter((e) => e.type === "log.reject").map((e) => e.reason), [
    `Cannot accept bid "b-w7" from "w7": not_bidding`,
    `Cannot accept bid "b-w8" from "w8": not_bidding`,
  ]);
  assert.equal(d.context.bids["b-w7"].status, "rejected");
});

Deno.test("jobMachine() on an observer keeps only its own bid of a batch", () => {
  const d = new Driver(jobMachine, {
    jobId: "j1",
    spec: spec(),
    owner: "client",
    self: "w2",
    roles: ["worker"],
    at: 0,
    escrowLocked: true,
  });
  const effects = d.send({
    type: "bids.received",
    at: 10,
    bids: [bid("w1", 40n), bid("w2", 50n), bid("w3", 500n)],
  });
  assert.deepEqual(effects, [], "no rejection noise for other workers' bids");
  assert.deepEqual(Object.keys(d.context.bids), ["b-w2"]);
});

Deno.test("jobMachine() takes a batch of attestations as each alone, and settles on the quorum", () => {
  const d = verifying();
  const [v1, v2, v3] = d.context.verifiers;
  const effects = d.send({
    type: "job.attestations.received",
    at: 300,
    attestations: [
      heard(attestation(300, v1)),
      heard(attestation(300, "w2")), // not a chosen verifier
      heard(attestation(300, v1, "w1", C, "invalid")), // v1 again
      heard(attestation(300, v2, "w9")), // judges another worker
      heard(attestation(300, v2)),
      heard(attestation(300, v3)),
    ],
  });
  assert.equal(d.state, "settling", "three valid of four chosen make the quorum");
  assert.deepEqual(Object.keys(d.context.attestations).sort(), [v1, v2, v3].sort());
  assert.equal(d.context.attestations[v1].verdict, "valid", "the first of two from v1 stands");
  assert.deepEqual(d.emitted("chain.verification.record").map((e) => e.accepted), [true]);
  assert.deepEqual(effects.filter((e) => e.type === "log.reject").map((e) => e.reason), [
    `Cannot accept attestation from "w2": not a chosen verifier`,
    `Cannot accept attestation from "${v1}": duplicate`,
    `Cannot accept attestation from "${v2}": judges worker "w9", not the assigned "w1"`,
  ]);
});

Deno.test("jobMachine() keeps a batch of early attestations within the bound", () => {
  const d = owner({ verifierPool: [] }); // no pool known: any verifier may be chosen
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const many = Array.from({ length: 12 }, (_, i) => heard(attestation(50, `v${i}`)));
  const effects = d.send({ type: "job.attestations.received", at: 50, attestations: many });
  assert.equal(Object.keys(d.context.attestations).length, 8, "the batch's own count bounds it");
  assert.deepEqual(
    effects.filter((e) => e.type === "log.reject").map((e) => e.reason),
    ["v8", "v9", "v10", "v11"].map((v) =>
      `Cannot accept attestation from "${v}": too many early attestations`
    ),
  );
});

Deno.test("jobMachine() sends a refund the chain refused again after a grace, and ends the job failed after the last (version 7)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "refunding");
  const refused = (at: number) =>
    ({
      type: "chain.tx.failed",
      at,
      request: "chain.refund",
      code: "invalid_state",
      message: "Cannot refund as expired: the job is not open",
    }) as const;
  // Another request's failure is not the refund's.
  assert.equal(d.can({ ...refused(110), request: "chain.assign" }), false);
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"], "send 1");
  let at = 110;
  for (let send = 1; send <= MAX_REFUND_SENDS; send++) {
    d.send(refused(at));
    assert.equal(d.state, "refunding", "the chain may still show the job's ending");
    assert.match(d.context.failure, /chain.refund failed: invalid_state: Cannot refund as expired/);
    const due = at + REFUND_GRACE_MS;
    assert.deepEqual(d.context.deadlines, { refund: due, refund_limit: 105 + REFUND_LIMIT_MS });
    assert.deepEqual(d.emitted("timer.arm"), [{ type: "timer.arm", key: "refund", at: due }]);
    assert.equal(d.can({ type: "timer.fired", at: due, key: "refund", due: due - 1 }), false);
    d.send({ type: "timer.fired", at: due, key: "refund", due });
    const again = d.emitted("chain.refund").map((e) => e.reason);
    assert.deepEqual(again, send < MAX_REFUND_SENDS ? ["expired"] : [], `send ${send + 1}`);
    at = due + 1;
  }
  assert.equal(d.state, "failed", `after ${MAX_REFUND_SENDS} refusals`);
  assert.deepEqual(d.context.deadlines, {});
});

Deno.test("jobMachine() waits a grace after each resent refund, answered or not, and counts only the refused ones (review R6 M3, R7 M-a)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  const refused = (at: number) =>
    ({
      type: "chain.tx.failed",
      at,
      request: "chain.refund",
      code: "invalid_state",
      message: "Cannot refund as expired: the job is not open",
    }) as const;
  d.send(refused(110));
  let due = 110 + REFUND_GRACE_MS;
  d.send({ type: "timer.fired", at: due, key: "refund", due });
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"], "send 2");
  assert.equal(d.context.refundRefusals, 1);
  // No answer comes (a crash, a resend closed quietly): its own grace ends the wait, uncounted.
  due += REFUND_GRACE_MS;
  assert.deepEqual(d.context.deadlines.refund, due);
  assert.deepEqual(d.emitted("timer.arm"), [{ type: "timer.arm", key: "refund", at: due }]);
  d.send({ type: "timer.fired", at: due, key: "refund", due });
  assert.equal(d.context.refundRefusals, 1, "an unanswered grace is not a refusal");
  assert.equal(d.state, "refunding");
  // ... it backs off, then sends again (send 3).
  const retryAt = d.context.deadlines.refund!;
  assert.equal(retryAt, due + REFUND_RETRY_MS);
  d.send({ type: "timer.fired", at: retryAt, key: "refund", due: retryAt });
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"], "send 3");
  // Refused twice more: the third refusal's grace ends the job.
  for (let refusal = 2; refusal <= MAX_REFUND_SENDS; refusal++) {
    const at = d.context.deadlines.refund! - 1;
    d.send(refused(at));
    due = at + REFUND_GRACE_MS;
    d.send({ type: "timer.fired", at: due, key: "refund", due });
    assert.equal(d.context.refundRefusals, refusal);
    const resent = refusal < MAX_REFUND_SENDS ? ["expired"] : [];
    assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), resent, `${refusal}`);
  }
  assert.equal(d.state, "failed", `after ${MAX_REFUND_SENDS} refused sends`);
  assert.equal(d.context.refundRefusals, MAX_REFUND_SENDS);
  assert.deepEqual(d.context.deadlines, {});
});

Deno.test("jobMachine() waits a grace after the first refund too, answered or not (review R6 M3)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const effects = d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  assert.equal(d.state, "refunding");
  const due = 105 + REFUND_GRACE_MS;
  assert.deepEqual(d.context.deadlines, { refund: due, refund_limit: 105 + REFUND_LIMIT_MS });
  assert.deepEqual(
    effects.filter((e) => e.type === "timer.arm" || e.type === "chain.refund").map((e) => e.type),
    ["chain.refund", "timer.arm", "timer.arm"],
  );
  // Its answer never comes (a crash lost it; the resend after recovery was closed quietly):
  // transient, sent again after the back off, uncounted (review R7 M-a).
  d.send({ type: "timer.fired", at: due, key: "refund", due });
  const retry = due + REFUND_RETRY_MS;
  assert.deepEqual(d.context.deadlines.refund, retry);
  d.send({ type: "timer.fired", at: retry, key: "refund", due: retry });
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["expired"], "sent again");
  assert.equal(d.context.refundRefusals ?? 0, 0);
  // A refunding job that is not the owner's, or holds no escrow, arms nothing.
  const unescrowed = owner();
  unescrowed.send({ type: "job.cancel", at: 1 });
  assert.equal(unescrowed.context.deadlines.refund, undefined);
});

Deno.test("jobMachine() sends a refund that failed transiently again after a back off doubled to a cap, not counted as a refusal (review R6 M4)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  const unreachable = (at: number) =>
    ({
      type: "chain.tx.failed",
      at,
      request: "chain.refund",
      code: "rpc_error",
      message: "the node is unreachable",
    }) as const;
  let at = 110;
  const waits: number[] = [];
  for (let failure = 1; failure <= 3 * MAX_REFUND_SENDS + 4; failure++) {
    d.send(unreachable(at));
    assert.equal(d.state, "refunding");
    const due = d.context.deadlines.refund!;
    waits.push(due - at);
    assert.deepEqual(d.emitted("timer.arm"), [{ type: "timer.arm", key: "refund", at: due }]);
    d.send({ type: "timer.fired", at: due, key: "refund", due });
    assert.deepEqual(
      d.emitted("chain.refund").map((e) => e.reason),
      ["expired"],
      `retry ${failure}`,
    );
    assert.equal(d.context.deadlines.refund, due + REFUND_GRACE_MS, "a grace of its own");
    at = due + 1;
  }
  assert.equal(d.context.refundRefusals ?? 0, 0, "none counted");
  assert.deepEqual(waits.slice(0, 4), [1, 2, 4, 8].map((k) => k * REFUND_RETRY_MS));
  assert.equal(Math.max(...waits), MAX_REFUND_RETRY_MS);
  assert.equal(waits.at(-1), MAX_REFUND_RETRY_MS);
  // A refusal of the chain's counts as before; the refund that lands ends the job.
  d.send({ ...unreachable(at), code: "invalid_state", message: "not yet" });
  assert.equal(d.context.deadlines.refund, at + REFUND_GRACE_MS);
  d.send({
    type: "timer.fired",
    at: at + REFUND_GRACE_MS,
    key: "refund",
    due: at + REFUND_GRACE_MS,
  });
  assert.equal(d.context.refundRefusals, 1);
  d.send({
    type: "chain.escrow.refunded",
    at: at + REFUND_GRACE_MS + 1,
    amount: 100n,
    reason: "expired",
  });
  assert.equal(d.state, "expired");
});

Deno.test("jobMachine() does not give up a refund whose every answer comes after its grace, from a slow endpoint (review R7 M-a)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  // Each send answered rpc_error 120 s later (the EVM adapter's retries); timers fire when due.
  const LATE_MS = 2 * REFUND_GRACE_MS;
  const answers: number[] = [105 + LATE_MS];
  let at = 105;
  let sends = 1;
  while (at < 105 + 6 * 3_600_000) {
    const due = d.context.deadlines.refund!;
    const next = Math.min(due, ...answers);
    at = next;
    if (next === due) d.send({ type: "timer.fired", at, key: "refund", due });
    else {
      answers.splice(answers.indexOf(next), 1);
      d.send({
        type: "chain.tx.failed",
        at,
        request: "chain.refund",
        code: "rpc_error",
        message: "Cannot send transaction: not mined after 4 sends",
      });
    }
    for (const _ of d.emitted("chain.refund")) {
      sends++;
      answers.push(at + LATE_MS);
    }
    assert.equal(d.state, "refunding", `gave up at ${at} although the chain never refused`);
  }
  assert.equal(d.context.refundRefusals ?? 0, 0, "none counted");
  assert.ok(sends > MAX_REFUND_SENDS && sends < 200, `bounded by the back off: ${sends} sends`);
  assert.equal(Math.max(...answers) - at <= LATE_MS, true);
  // The refund lands at last: the chain's ending ends the job.
  d.send({ type: "chain.escrow.refunded", at: at + 1, amount: 100n, reason: "expired" });
  assert.equal(d.state, "expired");
});

Deno.test("jobMachine() ends a refund that never lands failed after REFUND_LIMIT_MS in refunding, the escrow left on chain (review R7 L-a)", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  const entry = d.send({ type: "timer.fired", at: 105, key: "bid_window", due: 105 });
  const limit = 105 + REFUND_LIMIT_MS;
  assert.equal(d.context.deadlines.refund_limit, limit);
  assert.ok(
    entry.some((e) => e.type === "timer.arm" && e.key === "refund_limit" && e.at === limit),
  );
  // Every send fails for a cause that will not pass (no gas funds), read as transient.
  let sends = 1;
  for (let i = 0; i < 10_000; i++) {
    const due = d.context.deadlines.refund!;
    if (due >= limit) break;
    d.send({
      type: "chain.tx.failed",
      at: due - 1,
      request: "chain.refund",
      code: "rpc_error",
      message: "insufficient funds for gas",
    });
    const retry = d.context.deadlines.refund!;
    if (retry >= limit) break;
    d.send({ type: "timer.fired", at: retry, key: "refund", due: retry });
    sends += d.emitted("chain.refund").length;
  }
  assert.equal(d.state, "refunding");
  assert.equal(
    d.can({ type: "timer.fired", at: limit, key: "refund_limit", due: limit - 1 }),
    false,
  );
  d.send({ type: "timer.fired", at: limit, key: "refund_limit", due: limit });
  assert.equal(d.state, "failed", `after ${sends} sends`);
  assert.match(
    d.context.failure ?? "",
    /^Cannot refund within 24 h: the escrow stays on chain: chain.refund failed: rpc_error: insufficient funds for gas$/,
  );
  assert.deepEqual(d.context.deadlines, {});
  assert.equal(d.context.escrowed, 100n, "the escrow is not counted as refunded");
  assert.equal(d.context.refunded, 0n);
});

Deno.test("jobMachine() ends a job whose refund the chain refused as the chain shows it within the grace", () => {
  const d = owner();
  d.send({ type: "chain.escrow.locked", at: 5, client: "client", amount: 100n });
  d.send({ type: "job.cancel", at: 6 });
  assert.deepEqual(d.emitted("chain.refund").map((e) => e.reason), ["cancelled"]);
  d.send({
    type: "chain.tx.failed",
    at: 7,
    request: "chain.refund",
    code: "rpc_error",
    message: "the node is unreachable",
  });
  d.send({ type: "chain.escrow.refunded", at: 200, amount: 100n, reason: "cancelled" });
  assert.equal(d.state, "cancelled");
  assert.deepEqual(d.context.deadlines, {});
  assert.ok(d.emitted("timer.cancel").some((e) => e.key === "refund"));
});
