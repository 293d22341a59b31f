/**
 * One conformance suite for every settlement adapter: the same scenarios, with the same
 * assertions, run against the local ledger, the EVM adapter (Solidity contracts on Hardhat's EVM
 * in this process) and the Starknet adapter (on its JSON-RPC double). A rule that differs between
 * adapters fails here for the adapter that breaks it.
 *
 * Two families of scenarios:
 * - legacy: jobs submitted without terms, decided by the client (all three adapters);
 * - chain-decided: jobs with terms, verifiers chosen by the chain, signed attestations counted
 *   by the chain, deadlines on chain, the failure path, double-signing evidence (all three).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChainEvent, ChainPort, SignedAttestation } from "../../chain/port.ts";
import { CHAINS, type ConformanceChain, PARAMS } from "./_chains.ts";

const HASH = "ab".repeat(32);
const OTHER = "cd".repeat(32);

type Scenario = (chain: ConformanceChain) => Promise<void>;

interface Case {
  readonly name: string;
  readonly chainDecided: boolean;
  readonly advances: boolean;
  readonly run: Scenario;
}

const cases: Case[] = [];

function scenario(
  name: string,
  needs: { chainDecided?: boolean; advances?: boolean },
  run: Scenario,
): void {
  cases.push({
    name,
    chainDecided: needs.chainDecided ?? false,
    advances: needs.advances ?? false,
    run,
  });
}

async function refused(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(promise, (error: Error & { code?: string }) => {
    assert.equal(error.name, "ChainError", `${what}: ${error.message}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    return true;
  }, what);
}

async function events(port: ChainPort, jobId?: string): Promise<ChainEvent[]> {
  const all: ChainEvent[] = [];
  let from = { blockNumber: 0, eventIndex: 0 };
  for (let page = 0; page < 100; page++) {
    const { events, next } = await port.eventsSince(from, { limit: 500 });
    all.push(...events);
    if (events.length === 0) break;
    from = next;
  }
  return jobId === undefined ? all : all.filter((e) => "jobId" in e && e.jobId === jobId);
}

/** Events without their position and chain-specific fields, for comparison across adapters. */
function shape(event: ChainEvent): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...event };
  for (const key of ["blockNumber", "blockHash", "txHash", "eventIndex"]) delete rest[key];
  if (rest["name"] === "UnstakeRequested") delete rest["unlockAt"];
  if (rest["name"] === "KeyRegistered") delete rest["publicKey"];
  return rest;
}

async function assertConserved(port: ChainPort): Promise<void> {
  const t = await port.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked, "escrow conserved");
  assert.equal(t.staked, t.bonded + t.slashed + t.withdrawn, "stake conserved");
}

function job(jobId: string, extra: Record<string, unknown> = {}) {
  return {
    jobId,
    amount: 1_000n,
    minStake: 100n,
    modelHash: HASH,
    inputCommitment: HASH,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// Legacy jobs (no terms): every adapter

scenario(
  "a job settles: escrow, assignment, result, the client's verdict, payment",
  {},
  async (c) => {
    const client = await c.port("client");
    const worker = await c.port("worker");
    await worker.stake({ amount: 1_000n });
    await client.submitJob(job("j1"));
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n, verifiers: [] });
    await worker.submitResult({ jobId: "j1", commitment: OTHER });
    await client.recordVerification({ jobId: "j1", accepted: true });
    await worker.releasePayment({ jobId: "j1" });
    const fee = 800n * BigInt(PARAMS.feeBps) / 10_000n;
    assert.deepEqual((await events(client, "j1")).map(shape), [
      {
        name: "JobSubmitted",
        jobId: "j1",
        client: "client",
        amount: 1_000n,
        modelHash: HASH,
        inputCommitment: HASH,
        // Submitted without terms: the chain shows their defaults.
        minStake: 100n,
        verifierCount: 0,
        bidWindowMs: 60_000,
        executionMs: 600_000,
        verificationMs: 600_000,
      },
      {
        name: "WorkerAssigned",
        jobId: "j1",
        worker: "worker",
        price: 800n,
        verifiers: [],
        attempt: 1,
      },
      { name: "ResultSubmitted", jobId: "j1", worker: "worker", commitment: OTHER },
      { name: "JobVerified", jobId: "j1" },
      {
        name: "PaymentReleased",
        jobId: "j1",
        worker: "worker",
        amount: 800n - fee,
        fee,
        change: 200n,
      },
    ]);
    assert.equal(await client.reputationOf("worker"), 510);
    assert.equal(await client.stakeOf("worker"), 1_000n);
    const t = await client.totals();
    assert.deepEqual(
      [t.escrowed, t.paid, t.fees, t.refunded, t.locked],
      [1_000n, 800n - fee, fee, 200n, 0n],
    );
    await refused(worker.releasePayment({ jobId: "j1" }), "invalid_state", "a second release");
    await refused(
      client.refund({ jobId: "j1", reason: "cancelled" }),
      "invalid_state",
      "refund after payment",
    );
    await assertConserved(client);
  },
);

scenario(
  "a disputed result: refund, the invalid-compute slash once, reputation down",
  {},
  async (c) => {
    const client = await c.port("client");
    const worker = await c.port("worker");
    await worker.stake({ amount: 1_000n });
    await client.submitJob(job("j1"));
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 500n, verifiers: [] });
    await worker.submitResult({ jobId: "j1", commitment: OTHER });
    await refused(
      client.slash({ jobId: "j1", worker: "worker", reason: "invalid_compute" }),
      "invalid_state",
      "slash before the dispute",
    );
    await client.recordVerification({ jobId: "j1", accepted: false });
    await refused(
      worker.slash({ jobId: "j1", worker: "worker", reason: "invalid_compute" }),
      "not_authorized",
      "anyone but the client slashes a legacy job",
    );
    await refused(
      worker.releasePayment({ jobId: "j1" }),
      "invalid_state",
      "release a disputed job",
    );
    await refused(
      worker.refund({ jobId: "j1", reason: "disputed" }),
      "not_authorized",
      "the worker refunds",
    );
    await client.refund({ jobId: "j1", reason: "disputed" });
    await client.slash({ jobId: "j1", worker: "worker", reason: "invalid_compute" });
    await refused(
      client.slash({ jobId: "j1", worker: "worker", reason: "invalid_compute" }),
      "invalid_state",
      "the same slash twice",
    );
    const shapes = (await events(client, "j1")).map(shape).slice(3);
    assert.deepEqual(shapes, [
      { name: "JobDisputed", jobId: "j1" },
      { name: "EscrowRefunded", jobId: "j1", client: "client", amount: 1_000n, reason: "disputed" },
      {
        name: "WorkerSlashed",
        jobId: "j1",
        worker: "worker",
        amount: 500n,
        reason: "invalid_compute",
      },
    ]);
    assert.equal(await client.stakeOf("worker"), 500n);
    assert.equal(await client.reputationOf("worker"), 400);
    await assertConserved(client);
  },
);

scenario("who may do what: client, worker, strangers; bad amounts and ids", {}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const stranger = await c.port("stranger");
  await worker.stake({ amount: 50n });
  await refused(client.submitJob(job("j1", { amount: 0n })), "invalid_amount", "a zero escrow");
  await client.submitJob(job("j1"));
  await refused(client.submitJob(job("j1")), "duplicate_job", "a known id");
  await refused(
    client.assignWorker({ jobId: "nope", worker: "worker", price: 1n, verifiers: [] }),
    "unknown_job",
    "an unknown job",
  );
  await refused(
    stranger.assignWorker({ jobId: "j1", worker: "worker", price: 1n, verifiers: [] }),
    "not_authorized",
    "a stranger assigns",
  );
  await refused(
    client.assignWorker({ jobId: "j1", worker: "worker", price: 1n, verifiers: [] }),
    "insufficient_stake",
    "stake below the minimum",
  );
  await worker.stake({ amount: 50n });
  await refused(
    client.assignWorker({ jobId: "j1", worker: "worker", price: 1_001n, verifiers: [] }),
    "insufficient_balance",
    "price above the escrow",
  );
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 900n, verifiers: [] });
  await refused(
    client.assignWorker({ jobId: "j1", worker: "worker", price: 900n, verifiers: [] }),
    "invalid_state",
    "assign an assigned job",
  );
  await refused(
    stranger.submitResult({ jobId: "j1", commitment: HASH }),
    "not_authorized",
    "a stranger submits the result",
  );
  await refused(
    stranger.revokeAssignment({ jobId: "j1", worker: "worker" }),
    "not_authorized",
    "a stranger revokes",
  );
  await refused(
    client.recordVerification({ jobId: "j1", accepted: true }),
    "invalid_state",
    "a verdict before the result",
  );
  await worker.submitResult({ jobId: "j1", commitment: HASH });
  await refused(
    worker.submitResult({ jobId: "j1", commitment: HASH }),
    "invalid_state",
    "a second result",
  );
  await refused(
    worker.recordVerification({ jobId: "j1", accepted: true }),
    "not_authorized",
    "the worker judges itself",
  );
  await client.recordVerification({ jobId: "j1", accepted: true });
  await refused(stranger.releasePayment({ jobId: "j1" }), "not_authorized", "a stranger releases");
  await refused(client.stake({ amount: 0n }), "invalid_amount", "a zero stake");
  // A malformed argument is refused before any transaction, as a TypeError or RangeError.
  const malformed = (error: Error) => error instanceof TypeError || error instanceof RangeError;
  await assert.rejects(client.submitJob(job("")), malformed, "an empty job id");
  await assert.rejects(
    client.submitJob(job("j2", { modelHash: "XYZ" })),
    malformed,
    "a malformed model hash",
  );
  assert.equal((await events(client, "j2")).length, 0);
  await assertConserved(client);
});

scenario("a revoked worker: reassignment, the downtime slash, the stake lock", {}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const other = await c.port("other");
  await worker.stake({ amount: 2_000n });
  await other.stake({ amount: 1_000n });
  await client.submitJob(job("j1"));
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 500n, verifiers: [] });
  await refused(
    worker.requestUnstake({ amount: 1n }),
    "stake_locked",
    "unstake what an open job relies on",
  );
  await worker.stake({ amount: 300n });
  await worker.requestUnstake({ amount: 300n });
  await refused(
    client.slash({ jobId: "j1", worker: "worker", reason: "downtime" }),
    "invalid_state",
    "downtime before a revocation",
  );
  await client.revokeAssignment({ jobId: "j1", worker: "worker" });
  await client.slash({ jobId: "j1", worker: "worker", reason: "downtime" });
  await client.assignWorker({ jobId: "j1", worker: "other", price: 500n, verifiers: [] });
  await other.submitResult({ jobId: "j1", commitment: HASH });
  await client.recordVerification({ jobId: "j1", accepted: true });
  await client.releasePayment({ jobId: "j1" });
  const attempts = (await events(client, "j1")).flatMap((e) =>
    e.name === "WorkerAssigned" ? [[e.worker, e.attempt]] : []
  );
  assert.deepEqual(attempts, [["worker", 1], ["other", 2]], "the chain counts the assignments");
  const slashed = (await events(client, "j1")).find((e) => e.name === "WorkerSlashed");
  // 5 % of the bonded 2,000 plus the 300 asked to unbond after the assignment.
  assert.equal(slashed?.name === "WorkerSlashed" ? slashed.amount : -1n, 115n);
  assert.equal(await client.stakeOf("worker"), 2_000n);
  await worker.requestUnstake({ amount: 2_000n });
  assert.equal(await client.stakeOf("worker"), 0n);
  await refused(worker.requestUnstake({ amount: 1n }), "insufficient_stake", "unstake nothing");
  await refused(worker.withdraw(), "still_unbonding", "withdraw before the unbonding ends");
  await assertConserved(client);
});

scenario("unbonding ends on the chain's clock", { advances: true }, async (c) => {
  const worker = await c.port("worker");
  await refused(worker.withdraw(), "invalid_state", "withdraw with nothing unbonding");
  await worker.stake({ amount: 1_000n });
  await worker.requestUnstake({ amount: 400n });
  await refused(worker.withdraw(), "still_unbonding", "withdraw at once");
  await c.advance(PARAMS.unbondingMs + 1_000);
  await worker.withdraw();
  const withdrawn = (await events(worker)).find((e) => e.name === "StakeWithdrawn");
  assert.deepEqual(withdrawn && shape(withdrawn), {
    name: "StakeWithdrawn",
    worker: "worker",
    amount: 400n,
  });
  const t = await worker.totals();
  assert.deepEqual([t.staked, t.withdrawn, t.bonded], [1_000n, 400n, 600n]);
  await assertConserved(worker);
});

// ---------------------------------------------------------------------------------------------
// Chain-decided jobs (terms): verifiers chosen and counted by the chain

async function bondVerifiers(c: ConformanceChain, count: number): Promise<ChainPort[]> {
  const verifiers: ChainPort[] = [];
  for (let i = 0; i < count; i++) {
    const v = await c.port(`verifier-${i}`);
    await v.stake({ amount: 1_000n, role: "verifier" });
    await v.registerKey!({ publicKey: await v.accountPublicKey!() });
    verifiers.push(v);
  }
  return verifiers;
}

async function chosenFor(port: ChainPort, jobId: string, attempt = 1): Promise<string[]> {
  const assigned = (await events(port, jobId)).filter((e) => e.name === "WorkerAssigned");
  const event = assigned[attempt - 1];
  assert.ok(event !== undefined && event.name === "WorkerAssigned", `assignment ${attempt}`);
  return [...event.verifiers];
}

function sign(
  verifiers: readonly ChainPort[],
  who: string,
  statement: { jobId: string; attempt: number; subject: string; verdict: "valid" | "invalid" },
): Promise<SignedAttestation> {
  const port = verifiers.find((v) => v.account === who);
  assert.ok(port !== undefined, `verifier ${who}`);
  return port.signAttestation!(statement);
}

scenario(
  "JobSubmitted shows each of the escrow's terms and its spec hash as submitted, every one distinct",
  {
    chainDecided: true,
  },
  async (c) => {
    const client = await c.port("client");
    await bondVerifiers(c, 3);
    // Distinct values, none a default: an adapter that swaps two terms or drops one is caught.
    const terms = {
      minStake: 77n,
      verifierCount: 3,
      bidWindowMs: 11_000,
      executionMs: 222_000,
      verificationMs: 3_333_000,
    };
    const specHash = "5e".repeat(16) + "c0".repeat(16);
    await client.submitJob(job("j1", { ...terms, specHash }));
    const submitted = shape((await events(client, "j1"))[0]!);
    assert.deepEqual(Object.keys(terms).map((k) => submitted[k]), Object.values(terms));
    assert.equal(submitted["specHash"], specHash);
    // Without one (or the zero hash, which is none): absent.
    await client.submitJob(job("j2", terms));
    await client.submitJob(job("j3", { ...terms, specHash: "0".repeat(64) }));
    for (const id of ["j2", "j3"]) {
      assert.equal("specHash" in shape((await events(client, id))[0]!), false, id);
    }
    // A job without terms has no verifier to check a spec hash: refused before it is sent.
    await assert.rejects(client.submitJob(job("j4", { specHash })), {
      name: "TypeError",
      message: /Invalid specHash of job "j4"/,
    });
    await assert.rejects(client.submitJob(job("j5", { ...terms, specHash: "XY" })), {
      name: "TypeError",
      message: /specHash/,
    });
  },
);

scenario(
  "escrowOf() reads a job's client, spec hash and end as the chain holds them; unknown: undefined",
  { chainDecided: true },
  async (c) => {
    const client = await c.port("client");
    const worker = await c.port("worker");
    const stranger = await c.port("stranger");
    assert.equal(typeof stranger.escrowOf, "function", `${c.name} reads escrows`);
    const escrowOf = (jobId: string) => stranger.escrowOf!(jobId);
    await worker.stake({ amount: 1_000n });
    assert.equal(await escrowOf("j1"), undefined, "no such job");
    const specHash = "5e".repeat(16) + "c0".repeat(16);
    await client.submitJob(job("j1", { verifierCount: 0, specHash }));
    await client.submitJob(job("j2", { verifierCount: 0 }));
    await client.submitJob(job("j3", { verifierCount: 0, specHash: "0".repeat(64) }));
    await client.submitJob(job("j4"));
    // Anyone reads it, not only its parties; the zero hash is none.
    assert.deepEqual(await escrowOf("j1"), {
      jobId: "j1",
      client: "client",
      specHash,
      ended: false,
    });
    for (const jobId of ["j2", "j3", "j4"]) {
      assert.deepEqual(await escrowOf(jobId), { jobId, client: "client", ended: false }, jobId);
    }
    assert.equal(await escrowOf("j5"), undefined, "still no such job");
    // Assigned, with a result, verified: not ended until paid.
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
    assert.equal((await escrowOf("j1"))?.ended, false, "assigned");
    await worker.submitResult({ jobId: "j1", commitment: OTHER });
    assert.equal((await escrowOf("j1"))?.ended, false, "verified at once, not paid");
    await stranger.releasePayment({ jobId: "j1" });
    assert.deepEqual(await escrowOf("j1"), {
      jobId: "j1",
      client: "client",
      specHash,
      ended: true,
    });
    await client.refund({ jobId: "j2", reason: "cancelled" });
    assert.deepEqual(await escrowOf("j2"), { jobId: "j2", client: "client", ended: true });
    // Disputed: not ended until refunded.
    await client.assignWorker({ jobId: "j4", worker: "worker", price: 500n, verifiers: [] });
    await worker.submitResult({ jobId: "j4", commitment: OTHER });
    await client.recordVerification({ jobId: "j4", accepted: false });
    assert.equal((await escrowOf("j4"))?.ended, false, "disputed");
    await client.refund({ jobId: "j4", reason: "disputed" });
    assert.equal((await escrowOf("j4"))?.ended, true, "refunded after the dispute");
    assert.equal((await escrowOf("j3"))?.ended, false, "j3 untouched");
    // A bad id is the caller's error, as with every other read.
    await assert.rejects(escrowOf(""), { name: "RangeError", message: /Invalid job id/ });
    await assert.rejects(escrowOf("j".repeat(129)), { name: "RangeError" });
    await assert.rejects(escrowOf(7 as unknown as string), { name: "TypeError" });
  },
);

scenario("the chain chooses n verifiers and decides at 2f+1 valid; verifiers are paid", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const verifiers = await bondVerifiers(c, 5);
  await worker.stake({ amount: 1_000n, role: "verifier" });
  await worker.registerKey!({ publicKey: await worker.accountPublicKey!() });
  await client.submitJob(job("j1", { verifierCount: 4 }));
  await refused(
    client.assignWorker({ jobId: "j1", worker: "worker", price: 800n, verifiers: ["verifier-0"] }),
    "not_authorized",
    "the client names a verifier",
  );
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  const chosen = await chosenFor(client, "j1");
  assert.equal(new Set(chosen).size, 4, "four distinct verifiers");
  assert.ok(!chosen.includes("worker") && !chosen.includes("client"), "never a party");
  await worker.submitResult({ jobId: "j1", commitment: OTHER });
  await refused(
    client.recordVerification({ jobId: "j1", accepted: true }),
    "not_authorized",
    "the client's word",
  );
  const statement = { jobId: "j1", attempt: 1, subject: OTHER, verdict: "valid" as const };
  const signed = await Promise.all(chosen.map((v) => sign(verifiers, v, statement)));
  await client.submitAttestations!({ attestations: signed.slice(0, 2) });
  await refused(client.releasePayment({ jobId: "j1" }), "invalid_state", "release before quorum");
  // Anyone relays the third: 2f+1 = 3 of n = 4.
  await worker.submitAttestations!({ attestations: signed.slice(2, 3) });
  const stranger = await c.port("stranger");
  await stranger.releasePayment({ jobId: "j1" });
  const shapes = (await events(client, "j1")).map(shape);
  assert.deepEqual(shapes.map((s) => s["name"]), [
    "JobSubmitted",
    "WorkerAssigned",
    "ResultSubmitted",
    "AttestationRecorded",
    "AttestationRecorded",
    "AttestationRecorded",
    "JobVerified",
    "PaymentReleased",
  ]);
  // The escrow's terms and the attempt: what a chosen verifier takes from the chain.
  const terms = ["minStake", "verifierCount", "bidWindowMs", "executionMs", "verificationMs"];
  assert.deepEqual(terms.map((k) => shapes[0]![k]), [100n, 4, 60_000, 600_000, 600_000]);
  assert.equal(shapes[1]!["attempt"], 1);
  const fee = 800n * BigInt(PARAMS.feeBps) / 10_000n;
  const each = 800n * BigInt(PARAMS.verifierRewardBps) / 10_000n / 3n;
  assert.deepEqual(shapes.at(-1), {
    name: "PaymentReleased",
    jobId: "j1",
    worker: "worker",
    amount: 800n - fee - 3n * each,
    fee,
    change: 200n,
  });
  const t = await client.totals();
  assert.equal(t.paid, 800n - fee, "the worker's and the verifiers' shares");
  await assertConserved(client);
});

scenario("attestations the chain refuses, each with its code, nothing counted", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const verifiers = await bondVerifiers(c, 5);
  await worker.stake({ amount: 1_000n });
  await client.submitJob(job("j1", { verifierCount: 4 }));
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  const chosen = await chosenFor(client, "j1");
  const outsider = verifiers.find((v) => !chosen.includes(v.account)) as ChainPort;
  const first = chosen[0] as string;
  const statement = { jobId: "j1", attempt: 1, subject: OTHER, verdict: "valid" as const };
  await refused(
    client.submitAttestations!({ attestations: [await sign(verifiers, first, statement)] }),
    "invalid_state",
    "an attestation before the claim",
  );
  await worker.submitResult({ jobId: "j1", commitment: OTHER });
  await refused(
    client.submitAttestations!({ attestations: [await outsider.signAttestation!(statement)] }),
    "not_chosen",
    "a verifier the chain did not choose",
  );
  const forged = { ...(await outsider.signAttestation!(statement)), verifier: first };
  await refused(
    client.submitAttestations!({ attestations: [forged] }),
    "bad_signature",
    "another key's signature",
  );
  await refused(
    client.submitAttestations!({
      attestations: [await sign(verifiers, first, { ...statement, attempt: 2 })],
    }),
    "wrong_attempt",
    "an attestation for another attempt",
  );
  await refused(
    client.submitAttestations!({
      attestations: [await sign(verifiers, first, { ...statement, subject: HASH })],
    }),
    "wrong_subject",
    "an attestation on another result",
  );
  const good = await sign(verifiers, first, statement);
  await refused(
    client.submitAttestations!({ attestations: [good, good] }),
    "duplicate_attestation",
    "one verifier twice",
  );
  assert.equal(
    (await events(client, "j1")).filter((e) => e.name === "AttestationRecorded").length,
    0,
  );
  await client.submitAttestations!({ attestations: [good] });
  await refused(
    client.submitAttestations!({ attestations: [good] }),
    "duplicate_attestation",
    "the same attestation again",
  );
  if (c.canAdvance) {
    await c.advance(600_000 + 1_000);
    await refused(
      client.submitAttestations!({
        attestations: [await sign(verifiers, chosen[1] as string, statement)],
      }),
      "deadline_passed",
      "a verdict after the verification deadline",
    );
  }
  await assertConserved(client);
});

scenario(
  "f+1 invalid: disputed, refunded by anyone, the worker and the dissenting verifier slashed",
  {
    chainDecided: true,
  },
  async (c) => {
    const client = await c.port("client");
    const worker = await c.port("worker");
    const verifiers = await bondVerifiers(c, 4);
    await worker.stake({ amount: 1_000n });
    await client.submitJob(job("j1", { verifierCount: 4 }));
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
    const chosen = await chosenFor(client, "j1");
    await worker.submitResult({ jobId: "j1", commitment: OTHER });
    const at = (verdict: "valid" | "invalid") => ({
      jobId: "j1",
      attempt: 1,
      subject: OTHER,
      verdict,
    });
    const [a, b, d] = chosen as [string, string, string];
    await client.submitAttestations!({
      attestations: [
        await sign(verifiers, a, at("valid")),
        await sign(verifiers, b, at("invalid")),
        await sign(verifiers, d, at("invalid")),
      ],
    });
    const stranger = await c.port("stranger");
    await stranger.refund({ jobId: "j1", reason: "disputed" });
    await stranger.slash({ jobId: "j1", worker: "worker", reason: "invalid_compute" });
    await refused(
      stranger.slash({ jobId: "j1", worker: "worker", reason: "double_signing" }),
      "no_evidence",
      "double signing without evidence",
    );
    const slashes = (await events(client, "j1")).filter((e) => e.name === "WorkerSlashed").map(
      shape,
    );
    assert.deepEqual(slashes, [
      { name: "WorkerSlashed", jobId: "j1", worker: a, amount: 500n, reason: "invalid_compute" },
      {
        name: "WorkerSlashed",
        jobId: "j1",
        worker: "worker",
        amount: 500n,
        reason: "invalid_compute",
      },
    ]);
    assert.equal(await client.stakeOf(b), 1_000n, "an honest verifier keeps its stake");
    await assertConserved(client);
  },
);

scenario("more verifiers asked than bonded: refused at submission", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  await bondVerifiers(c, 2);
  await refused(
    client.submitJob(job("j1", { verifierCount: 3 })),
    "not_enough_verifiers",
    "three asked, two bonded",
  );
  assert.equal((await events(client, "j1")).length, 0);
});

scenario("a reported failure confirmed by the quorum: refund, verifiers paid, nobody slashed", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const verifiers = await bondVerifiers(c, 1);
  await worker.stake({ amount: 1_000n });
  await client.submitJob(job("j1", { verifierCount: 1 }));
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  const [v] = await chosenFor(client, "j1") as [string];
  await worker.reportFailure!({ jobId: "j1", reason: "input tensor has the wrong shape" });
  await refused(
    client.submitAttestations!({
      attestations: [
        await sign(verifiers, v, { jobId: "j1", attempt: 1, subject: OTHER, verdict: "valid" }),
      ],
    }),
    "wrong_subject",
    "a verdict on a result when the claim is a failure",
  );
  await client.submitAttestations!({
    attestations: [
      await sign(verifiers, v, { jobId: "j1", attempt: 1, subject: "failed", verdict: "valid" }),
    ],
  });
  await refused(worker.releasePayment({ jobId: "j1" }), "invalid_state", "pay a failure");
  await client.refund({ jobId: "j1", reason: "failed" });
  const reward = 800n * BigInt(PARAMS.verifierRewardBps) / 10_000n;
  const shapes = (await events(client, "j1")).map(shape);
  assert.deepEqual(shapes.slice(2), [
    {
      name: "FailureReported",
      jobId: "j1",
      worker: "worker",
      reason: "input tensor has the wrong shape",
    },
    { name: "AttestationRecorded", jobId: "j1", verifier: v, attempt: 1, verdict: "valid" },
    { name: "JobVerified", jobId: "j1" },
    {
      name: "EscrowRefunded",
      jobId: "j1",
      client: "client",
      amount: 1_000n - reward,
      reason: "failed",
    },
  ]);
  const t = await client.totals();
  assert.deepEqual([t.paid, t.slashed], [reward, 0n]);
  await assertConserved(client);
});

scenario("without verifiers a result is verified at once and anyone releases it", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const stranger = await c.port("stranger");
  await worker.stake({ amount: 1_000n });
  await client.submitJob(job("j1", { verifierCount: 0 }));
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  await worker.submitResult({ jobId: "j1", commitment: OTHER });
  await stranger.releasePayment({ jobId: "j1" });
  assert.deepEqual((await events(client, "j1")).map((e) => e.name), [
    "JobSubmitted",
    "WorkerAssigned",
    "ResultSubmitted",
    "JobVerified",
    "PaymentReleased",
  ]);
});

scenario("deadlines on chain: expiry, downtime decided by the execution deadline", {
  chainDecided: true,
  advances: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const stranger = await c.port("stranger");
  await worker.stake({ amount: 1_000n });
  const terms = { verifierCount: 0, bidWindowMs: 60_000, executionMs: 120_000 };
  await client.submitJob(job("j1", terms));
  await refused(
    stranger.refund({ jobId: "j1", reason: "expired" }),
    "deadline_not_passed",
    "expire before the bid deadline",
  );
  await refused(
    stranger.refund({ jobId: "j1", reason: "cancelled" }),
    "not_authorized",
    "a stranger cancels",
  );
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  await refused(
    stranger.revokeAssignment({ jobId: "j1", worker: "worker" }),
    "not_authorized",
    "a stranger revokes before the execution deadline",
  );
  await refused(
    stranger.slash({ jobId: "j1", worker: "worker", reason: "downtime" }),
    "invalid_state",
    "downtime before the deadline",
  );
  await c.advance(121_000);
  await refused(
    worker.submitResult({ jobId: "j1", commitment: OTHER }),
    "deadline_passed",
    "a result after the execution deadline",
  );
  await stranger.revokeAssignment({ jobId: "j1", worker: "worker" });
  await stranger.slash({ jobId: "j1", worker: "worker", reason: "downtime" });
  await c.advance(61_000);
  await stranger.refund({ jobId: "j1", reason: "expired" });
  const slashed = (await events(client, "j1")).find((e) => e.name === "WorkerSlashed");
  assert.deepEqual(slashed && shape(slashed), {
    name: "WorkerSlashed",
    jobId: "j1",
    worker: "worker",
    amount: 50n,
    reason: "downtime",
  });
  await assertConserved(client);
});

scenario("double signing: two conflicting statements by one chosen key slash it once", {
  chainDecided: true,
}, async (c) => {
  const client = await c.port("client");
  const worker = await c.port("worker");
  const verifiers = await bondVerifiers(c, 4);
  await worker.stake({ amount: 1_000n });
  await client.submitJob(job("j1", { verifierCount: 4 }));
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 800n });
  const [v] = await chosenFor(client, "j1") as [string];
  const base = { jobId: "j1", attempt: 1, subject: OTHER };
  const valid = await sign(verifiers, v, { ...base, verdict: "valid" });
  const invalid = await sign(verifiers, v, { ...base, verdict: "invalid" });
  const stranger = await c.port("stranger");
  await refused(
    stranger.reportDoubleSigning!({ first: valid, second: valid }),
    "no_evidence",
    "two identical statements",
  );
  await refused(
    stranger.reportDoubleSigning!({
      first: valid,
      second: { ...invalid, signature: valid.signature },
    }),
    "bad_signature",
    "a statement its key did not sign",
  );
  await stranger.reportDoubleSigning!({ first: valid, second: invalid });
  await stranger.reportDoubleSigning!({ first: invalid, second: valid });
  const slashes = (await events(client, "j1")).filter((e) => e.name === "WorkerSlashed").map(shape);
  assert.deepEqual(slashes, [
    { name: "WorkerSlashed", jobId: "j1", worker: v, amount: 300n, reason: "double_signing" },
  ]);
  await assertConserved(client);
});

// ---------------------------------------------------------------------------------------------

for (const [name, open] of Object.entries(CHAINS)) {
  for (const c of cases) {
    Deno.test({
      name: `${c.name} [${name}]`,
      sanitizeResources: false,
      sanitizeOps: false,
      async fn() {
        const chain = await open();
        try {
          // Every adapter runs every scenario: one that lacks what a scenario needs fails here.
          assert.ok(!c.chainDecided || chain.chainDecided, `${name} settles chain-decided jobs`);
          assert.ok(!c.advances || chain.canAdvance, `${name} moves its clock`);
          await c.run(chain);
        } finally {
          await chain.close();
        }
      },
    });
  }
}
