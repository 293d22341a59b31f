/**
 * Tests of the chain-decided settlement rules of the local ledger (jobs submitted with terms):
 * bonded verifiers chosen by the chain, signed attestations counted by the chain, deadlines in
 * chain time, the execution-failure path, evidence of double signing, and every bad input refused
 * with its code and nothing moved.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger, type LocalLedgerOptions } from "./local_ledger.ts";
import type { ChainError, ChainEvent, ChainPort, JobTerms } from "./port.ts";
import { AccountKey, FAILURE_SUBJECT, type SignedAttestation } from "./settlement.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);
const RESULT = "c".repeat(64);
const WRONG = "d".repeat(64);

/** A ledger with a client, two workers and `verifiers` bonded verifiers with keys. */
export async function market(
  verifiers = 4,
  options: LocalLedgerOptions = {},
): Promise<Market> {
  const clock = { now: 1_000 };
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now, ...options });
  const client = ledger.as("c1");
  const worker = ledger.as("w1");
  const other = ledger.as("w2");
  await worker.stake({ amount: 1_000n });
  await other.stake({ amount: 1_000n });
  const ports: Record<string, ChainPort> = {};
  for (let i = 1; i <= verifiers; i++) {
    const id = `v${i}`;
    const port = ledger.as(id);
    await port.stake({ amount: 100n, role: "verifier" });
    await port.registerKey!({ publicKey: await port.accountPublicKey!() });
    ports[id] = port;
  }
  return { ledger, clock, client, worker, other, verifiers: ports };
}

export interface Market {
  ledger: LocalLedger;
  clock: { now: number };
  client: ChainPort;
  worker: ChainPort;
  other: ChainPort;
  verifiers: Record<string, ChainPort>;
}

async function events(port: ChainPort): Promise<ChainEvent[]> {
  return (await port.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 10_000 })).events;
}

async function chosen(m: Market, jobId: string): Promise<string[]> {
  const assigned = (await events(m.client)).filter((e) =>
    e.name === "WorkerAssigned" && e.jobId === jobId
  );
  const last = assigned.at(-1);
  assert.ok(last?.name === "WorkerAssigned");
  return [...last.verifiers];
}

async function submit(m: Market, jobId: string, terms: JobTerms = {}): Promise<void> {
  await m.client.submitJob({
    jobId,
    amount: 1_000n,
    minStake: 100n,
    modelHash: MODEL,
    inputCommitment: INPUT,
    verifierCount: 4,
    bidWindowMs: 1_000,
    executionMs: 5_000,
    verificationMs: 5_000,
    ...terms,
  });
}

async function attest(
  m: Market,
  verifier: string,
  jobId: string,
  verdict: "valid" | "invalid",
  subject = RESULT,
  attempt = 1,
): Promise<SignedAttestation> {
  const port = m.verifiers[verifier]!;
  return await port.signAttestation!({ jobId, attempt, subject, verdict });
}

async function refused(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    const e = error as ChainError;
    assert.equal(e.name, "ChainError", String(error));
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

/** Everything a refused call could have moved. */
async function state(m: Market) {
  return {
    totals: await m.client.totals(),
    head: m.ledger.head(),
    balances: ["c1", "w1", "w2", "v1", "v2", "v3", "v4", "treasury"].map((a) =>
      m.ledger.balanceOf(a)
    ),
  };
}

Deno.test("chain-decided: submission is refused when fewer verifiers are bonded than asked", async () => {
  const m = await market(3);
  await refused(submit(m, "j1"), "not_enough_verifiers", /asks for 4 verifiers but 3 are bonded/);
  await submit(m, "j2", { verifierCount: 3 });
  // A verifier below the minimum bond does not count.
  const m2 = await market(4, { minVerifierBond: 101n });
  await refused(submit(m2, "j1"), "not_enough_verifiers");
  // n = 0 is an explicit unverified job, never a verified job that lost its verifiers.
  await assert.rejects(submit(m, "j3", { verifierCount: -1 }), RangeError);
  await assert.rejects(submit(m, "j4", { verifierCount: 65 }), RangeError);
  m.ledger.close();
  m2.ledger.close();
});

Deno.test("chain-decided: the chain chooses the verifiers, not the client, excluding the worker", async () => {
  const m = await market(5);
  await m.verifiers["v1"]!.stake({ amount: 1_000n }); // v1 is also a would-be worker
  await submit(m, "j1");
  await refused(
    m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n, verifiers: ["v1"] }),
    "not_authorized",
    /the chain chooses its verifiers/,
  );
  await m.client.assignWorker({ jobId: "j1", worker: "v1", price: 500n });
  const set = await chosen(m, "j1");
  assert.equal(set.length, 4);
  assert.ok(!set.includes("v1"), "the worker is never one of its verifiers");
  assert.ok(!set.includes("c1"));
  // The assignment fails when excluding the worker leaves too few.
  const m2 = await market(4);
  await m2.verifiers["v1"]!.stake({ amount: 1_000n });
  await submit(m2, "j1");
  await refused(
    m2.client.assignWorker({ jobId: "j1", worker: "v1", price: 500n }),
    "not_enough_verifiers",
  );
  m.ledger.close();
  m2.ledger.close();
});

Deno.test("chain-decided: 2f+1 valid attestations accept, anyone releases, verifiers are paid", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: RESULT });
  const set = await chosen(m, "j1");
  // Signed by each verifier, relayed by a stranger in one transaction.
  const relay = m.ledger.as("stranger");
  await relay.submitAttestations!({
    attestations: [
      await attest(m, set[0]!, "j1", "valid"),
      await attest(m, set[1]!, "j1", "valid"),
    ],
  });
  await refused(relay.releasePayment({ jobId: "j1" }), "invalid_state");
  await relay.submitAttestations!({ attestations: [await attest(m, set[2]!, "j1", "valid")] });
  const names = (await events(m.client)).map((e) => e.name);
  assert.ok(names.includes("JobVerified"));
  // The client's word counts for nothing.
  await refused(
    m.client.recordVerification({ jobId: "j1", accepted: false }),
    "not_authorized",
    /nobody's word decides it/,
  );
  await relay.releasePayment({ jobId: "j1" });
  // price 500: fee 1 % = 5, verifiers 5 % = 25 shared by the 3 who agreed, the worker the rest.
  for (const v of set.slice(0, 3)) assert.equal(m.ledger.balanceOf(v), 8n);
  assert.equal(m.ledger.balanceOf(set[3]!), 0n);
  assert.equal(m.ledger.balanceOf("w1"), 500n - 5n - 24n);
  assert.equal(m.ledger.balanceOf("c1"), 500n);
  const t = await m.client.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
  assert.equal(t.locked, 0n);
  m.ledger.close();
});

Deno.test("chain-decided: f+1 invalid attestations dispute; anyone refunds and slashes; the honest minority is not slashed", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: WRONG });
  const set = await chosen(m, "j1");
  const stranger = m.ledger.as("stranger");
  await stranger.submitAttestations!({
    attestations: [
      await attest(m, set[0]!, "j1", "valid", WRONG), // a colluder
      await attest(m, set[1]!, "j1", "invalid", WRONG),
      await attest(m, set[2]!, "j1", "invalid", WRONG),
    ],
  });
  const evs = await events(m.client);
  assert.ok(evs.some((e) => e.name === "JobDisputed"));
  // The verifier that attested against the outcome was slashed in the same transaction.
  const slashed = evs.filter((e) => e.name === "WorkerSlashed").map((e) =>
    e.name === "WorkerSlashed" ? e.worker : ""
  );
  assert.deepEqual(slashed, [set[0]]);
  await stranger.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
  await stranger.refund({ jobId: "j1", reason: "disputed" });
  assert.equal(m.ledger.balanceOf("c1"), 1_000n);
  assert.equal(await m.client.stakeOf("w1"), 500n);
  for (const v of set.slice(1)) assert.equal(await m.client.stakeOf(v), 100n);
  // A late attestation after the decision is refused.
  await refused(
    stranger.submitAttestations!({
      attestations: [await attest(m, set[3]!, "j1", "valid", WRONG)],
    }),
    "invalid_state",
  );
  m.ledger.close();
});

Deno.test("chain-decided: bad attestations are refused with their code and nothing moves", async () => {
  const m = await market(5);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: RESULT });
  const set = await chosen(m, "j1");
  const notChosen = ["v1", "v2", "v3", "v4", "v5"].find((v) => !set.includes(v))!;
  const stranger = m.ledger.as("stranger");
  const good = await attest(m, set[0]!, "j1", "valid");
  const before = await state(m);
  const cases: [string, SignedAttestation, RegExp][] = [
    ["bad_signature", { ...good, signature: "00".repeat(64) }, /does not verify/],
    ["bad_signature", { ...good, verdict: "invalid" }, /does not verify/],
    // Signed by another key than the one registered for the verifier.
    [
      "bad_signature",
      new AccountKey(new Uint8Array(32).fill(9)).sign(set[0]!, {
        jobId: "j1",
        attempt: 1,
        subject: RESULT,
        verdict: "valid",
      }),
      /does not verify/,
    ],
    ["not_chosen", await attest(m, notChosen, "j1", "valid"), /did not choose it/],
    ["wrong_attempt", await attest(m, set[0]!, "j1", "valid", RESULT, 2), /attempt 2/],
    ["wrong_subject", await attest(m, set[0]!, "j1", "valid", WRONG), /judges/],
  ];
  for (const [code, attestation, pattern] of cases) {
    await refused(stranger.submitAttestations!({ attestations: [attestation] }), code, pattern);
  }
  // A batch with one bad attestation moves nothing, not even the good one.
  await refused(
    stranger.submitAttestations!({ attestations: [good, { ...good, signature: "11".repeat(64) }] }),
    "bad_signature",
  );
  assert.deepEqual(await state(m), before);
  await stranger.submitAttestations!({ attestations: [good] });
  await refused(stranger.submitAttestations!({ attestations: [good] }), "duplicate_attestation");
  // A verifier with no registered key cannot attest.
  const m2 = await market(0);
  for (const id of ["u1", "u2"]) await m2.ledger.as(id).stake({ amount: 10n, role: "verifier" });
  await submit(m2, "j1", { verifierCount: 1 });
  await m2.client.assignWorker({ jobId: "j1", worker: "w1", price: 1n });
  await m2.worker.submitResult({ jobId: "j1", commitment: RESULT });
  const [u] = await chosen(m2, "j1");
  const unsigned = await m2.ledger.as(u!).signAttestation!({
    jobId: "j1",
    attempt: 1,
    subject: RESULT,
    verdict: "valid",
  });
  await refused(m2.client.submitAttestations!({ attestations: [unsigned] }), "no_key");
  // After the verification deadline: refused.
  m.clock.now += 5_000;
  await refused(
    stranger.submitAttestations!({ attestations: [await attest(m, set[1]!, "j1", "valid")] }),
    "deadline_passed",
  );
  m.ledger.close();
  m2.ledger.close();
});

Deno.test("chain-decided: deadlines in chain time decide downtime and expiry, whatever the client does", async () => {
  const m = await market(4);
  await submit(m, "j1");
  const stranger = m.ledger.as("stranger");
  // Before the bid deadline only the client may take its escrow back.
  await refused(stranger.refund({ jobId: "j1", reason: "expired" }), "deadline_not_passed");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  // A client that revokes early cannot have the worker slashed for downtime.
  await m.client.revokeAssignment({ jobId: "j1", worker: "w1" });
  await refused(
    stranger.slash({ jobId: "j1", worker: "w1", reason: "downtime" }),
    "invalid_state",
    /did not let the job's execution deadline pass/,
  );
  await refused(
    m.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" }),
    "invalid_state",
  );
  await m.client.assignWorker({ jobId: "j1", worker: "w2", price: 500n });
  // Only the client may revoke before the execution deadline; after it, anyone.
  await refused(stranger.revokeAssignment({ jobId: "j1", worker: "w2" }), "not_authorized");
  m.clock.now += 5_000;
  await refused(m.other.submitResult({ jobId: "j1", commitment: RESULT }), "deadline_passed");
  await stranger.revokeAssignment({ jobId: "j1", worker: "w2" });
  await stranger.slash({ jobId: "j1", worker: "w2", reason: "downtime" });
  assert.equal(await m.client.stakeOf("w2"), 950n);
  // The client vanished: after the new bid window anyone returns the escrow to it, and every
  // stake lock ends with the job.
  m.clock.now += 1_000;
  await stranger.refund({ jobId: "j1", reason: "expired" });
  assert.equal(m.ledger.balanceOf("c1"), 1_000n);
  assert.equal(m.ledger.stakeLockOf("w1").locked, 0n);
  assert.equal(m.ledger.stakeLockOf("w2").locked, 0n);
  for (const v of Object.keys(m.verifiers)) assert.equal(m.ledger.stakeLockOf(v).locked, 0n);
  m.ledger.close();
});

Deno.test("chain-decided: a job stuck in verification returns its escrow after the deadline, nobody slashed", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: RESULT });
  // A lying client cannot refund a job whose result is being verified.
  await refused(m.client.refund({ jobId: "j1", reason: "failed" }), "deadline_not_passed");
  await refused(m.client.refund({ jobId: "j1", reason: "cancelled" }), "invalid_state");
  await refused(
    m.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" }),
    "invalid_state",
  );
  m.clock.now += 5_000;
  await m.ledger.as("stranger").refund({ jobId: "j1", reason: "failed" });
  assert.equal(await m.client.stakeOf("w1"), 1_000n);
  m.ledger.close();
});

Deno.test("chain-decided: a failure on the input, confirmed by a quorum, refunds the client and slashes nobody", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.reportFailure!({ jobId: "j1", reason: "input shape [2] does not match [4]" });
  const failure = (await events(m.client)).find((e) => e.name === "FailureReported");
  assert.ok(failure?.name === "FailureReported");
  assert.equal(failure.reason, "input shape [2] does not match [4]");
  const set = await chosen(m, "j1");
  const stranger = m.ledger.as("stranger");
  // An attestation on a result commitment does not judge a failure claim.
  await refused(
    stranger.submitAttestations!({ attestations: [await attest(m, set[0]!, "j1", "valid")] }),
    "wrong_subject",
  );
  await stranger.submitAttestations!({
    attestations: await Promise.all(
      set.slice(0, 3).map((v) => attest(m, v, "j1", "valid", FAILURE_SUBJECT)),
    ),
  });
  await refused(stranger.releasePayment({ jobId: "j1" }), "invalid_state", /verified failure/);
  await stranger.refund({ jobId: "j1", reason: "failed" });
  // The worker keeps no fee; the three verifiers share 5 % of the price from the escrow.
  assert.equal(m.ledger.balanceOf("w1"), 0n);
  assert.equal(m.ledger.balanceOf("c1"), 1_000n - 24n);
  assert.equal(await m.client.stakeOf("w1"), 1_000n);
  const t = await m.client.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
  assert.equal(t.slashed, 0n);
  m.ledger.close();
});

Deno.test("chain-decided: a false failure claim is disputed and slashed like invalid compute", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.reportFailure!({ jobId: "j1", reason: "lazy" });
  const set = await chosen(m, "j1");
  const stranger = m.ledger.as("stranger");
  await stranger.submitAttestations!({
    attestations: await Promise.all(
      set.slice(0, 2).map((v) => attest(m, v, "j1", "invalid", FAILURE_SUBJECT)),
    ),
  });
  await stranger.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
  await stranger.refund({ jobId: "j1", reason: "disputed" });
  assert.equal(await m.client.stakeOf("w1"), 500n);
  m.ledger.close();
});

Deno.test("chain-decided: double signing is slashed on evidence anyone submits, and only on evidence", async () => {
  const m = await market(4);
  await submit(m, "j1");
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: RESULT });
  const [v] = await chosen(m, "j1");
  const yes = await attest(m, v!, "j1", "valid");
  const no = await attest(m, v!, "j1", "invalid");
  const stranger = m.ledger.as("stranger");
  const before = await state(m);
  await refused(
    stranger.reportDoubleSigning!({ first: yes, second: yes }),
    "no_evidence",
    /do not conflict/,
  );
  await refused(
    stranger.reportDoubleSigning!({ first: yes, second: { ...no, signature: yes.signature } }),
    "bad_signature",
  );
  await refused(
    stranger.slash({ jobId: "j1", worker: v!, reason: "double_signing" }),
    "no_evidence",
  );
  await refused(
    m.client.slash({ jobId: "j1", worker: "w1", reason: "coordinated_attack" }),
    "no_evidence",
  );
  assert.deepEqual(await state(m), before);
  await stranger.reportDoubleSigning!({ first: yes, second: no });
  assert.equal(await m.client.stakeOf(v!), 70n);
  m.ledger.close();
});

Deno.test("chain-decided: a job without verifiers is paid on its result, asked for explicitly", async () => {
  const m = await market(0);
  await submit(m, "j1", { verifierCount: 0 });
  await m.client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await m.worker.submitResult({ jobId: "j1", commitment: RESULT });
  await m.ledger.as("stranger").releasePayment({ jobId: "j1" });
  assert.equal(m.ledger.balanceOf("w1"), 495n);
  m.ledger.close();
});

Deno.test("chain-decided: keys are registered once and verifiers once", async () => {
  const m = await market(1);
  const v = m.verifiers["v1"]!;
  await refused(v.registerKey!({ publicKey: await v.accountPublicKey!() }), "invalid_state");
  await assert.rejects(v.registerKey!({ publicKey: "00" }), TypeError);
  await v.stake({ amount: 1n, role: "verifier" });
  const registered = (await events(m.client)).filter((e) => e.name === "VerifierRegistered");
  assert.equal(registered.length, 1);
  m.ledger.close();
});
