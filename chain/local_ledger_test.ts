/**
 * Tests of the embedded local ledger: every contract rule and error path, events and blocks,
 * subscriptions, a database file shared by two ledgers and by a second OS process, and, after
 * random operation sequences (fast-check), the money identities and the stake lock: a slash of a
 * worker assigned to the job collects its matrix share of the stake the worker had at assignment.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { LOCAL_LEDGER_ADDRESS, LocalLedger, type LocalLedgerOptions } from "./local_ledger.ts";
import type { ChainCursor, ChainError, ChainEvent, ChainPort } from "./port.ts";
import { type RefundReason, SLASH_BPS, type SlashReason } from "../machines/types.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);
const RESULT = "c".repeat(64);
const START = { blockNumber: 0, eventIndex: 0 };
const DAY = 24 * 60 * 60 * 1000;

interface Fixture {
  ledger: LocalLedger;
  client: ChainPort;
  worker: ChainPort;
  other: ChainPort;
  clock: { now: number };
}

function open(options: LocalLedgerOptions = {}): Fixture {
  const clock = { now: 1_000 };
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now, ...options });
  return {
    ledger,
    client: ledger.as("c1"),
    worker: ledger.as("w1"),
    other: ledger.as("w2"),
    clock,
  };
}

async function withLedger(
  body: (f: Fixture) => Promise<void>,
  options: LocalLedgerOptions = {},
): Promise<void> {
  const fixture = open(options);
  try {
    await body(fixture);
  } finally {
    fixture.ledger.close();
  }
}

async function rejects(
  promise: Promise<unknown>,
  code: ChainError["code"],
  message: RegExp | string,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal(error.name, "ChainError");
    assert.equal((error as ChainError).code, code);
    if (typeof message === "string") assert.equal(error.message, message);
    else assert.match(error.message, message);
    assert.doesNotMatch(error.message, /\.$/);
    assert.match(error.message, /^[A-Z]/);
    return true;
  });
}

async function allEvents(port: ChainPort, from: ChainCursor = START): Promise<ChainEvent[]> {
  const out: ChainEvent[] = [];
  let cursor = from;
  for (let i = 0; i < 10_000; i++) {
    const { events, next } = await port.eventsSince(cursor, { limit: 100 });
    out.push(...events);
    if (events.length === 0) return out;
    cursor = next;
  }
  throw new Error("Too many events");
}

async function lastEvents(port: ChainPort, count: number): Promise<ChainEvent[]> {
  return (await allEvents(port)).slice(-count);
}

/** Strips the meta so that events compare by content. */
function bodies(events: readonly ChainEvent[]): Record<string, unknown>[] {
  return events.map(({ blockNumber: _b, blockHash: _h, txHash: _t, eventIndex: _i, ...rest }) =>
    rest
  );
}

async function submit(
  f: Fixture,
  jobId = "j1",
  amount = 1_200n,
  minStake = 100n,
): Promise<void> {
  await f.client.submitJob({ jobId, amount, minStake, modelHash: MODEL, inputCommitment: INPUT });
}

/** Stakes, submits and assigns `j1` to `w1` at price 1000 of 1200 escrow. */
async function assigned(f: Fixture, verifiers: string[] = []): Promise<void> {
  await f.worker.stake({ amount: 1_000n });
  await submit(f);
  await f.client.assignWorker({ jobId: "j1", worker: "w1", price: 1_000n, verifiers });
}

async function withResult(f: Fixture, verifiers: string[] = []): Promise<void> {
  await assigned(f, verifiers);
  await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
}

async function checkMoney(port: ChainPort): Promise<void> {
  const t = await port.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked, "escrow identity");
  assert.equal(t.staked, t.bonded + t.slashed + t.withdrawn, "stake identity");
  for (const value of Object.values(t)) assert.ok(value >= 0n);
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1_500; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Gave up waiting for ${what}`);
}

function sha256(text: string): string {
  return `0x${createHash("sha256").update(text).digest("hex")}`;
}

// ---------------------------------------------------------------------------------------------
// Jobs and escrow

Deno.test("LocalLedger.submitJob() locks the escrow and emits JobSubmitted", async () => {
  await withLedger(async (f) => {
    const receipt = await submit(f).then(() => f.ledger.head());
    assert.equal(receipt.blockNumber, 1);
    const [event] = await allEvents(f.client);
    assert.deepEqual(bodies([event as ChainEvent]), [{
      name: "JobSubmitted",
      jobId: "j1",
      client: "c1",
      amount: 1_200n,
      modelHash: MODEL,
      inputCommitment: INPUT,
      // Submitted without terms: their defaults.
      minStake: 100n,
      verifierCount: 0,
      bidWindowMs: 60_000,
      executionMs: 600_000,
      verificationMs: 600_000,
    }]);
    const t = await f.client.totals();
    assert.equal(t.escrowed, 1_200n);
    assert.equal(t.locked, 1_200n);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.submitJob() rejects a duplicate id, a non-positive amount and bad arguments", async () => {
  await withLedger(async (f) => {
    await submit(f);
    await rejects(
      f.other.submitJob({
        jobId: "j1",
        amount: 5n,
        minStake: 0n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      }),
      "duplicate_job",
      'Cannot submit job "j1": a job with this id already exists',
    );
    await rejects(submit(f, "j2", 0n), "invalid_amount", /escrow must be a positive u256, got 0/);
    await rejects(submit(f, "j2", 2n ** 256n), "invalid_amount", /positive u256/);
    await rejects(submit(f, "j2", 10n, -1n), "invalid_amount", /minimum stake must be a u256/);
    await assert.rejects(
      f.client.submitJob({
        jobId: "j2",
        amount: 1n,
        minStake: 0n,
        modelHash: "builtin:matmul",
        inputCommitment: INPUT,
      }),
      { name: "TypeError", message: /Invalid modelHash: expected 64 lowercase hex digits/ },
    );
    await assert.rejects(submit(f, ""), { name: "RangeError", message: /Invalid job id/ });
    await assert.rejects(submit(f, "x".repeat(129)), { name: "RangeError" });
    await assert.rejects(
      f.client.submitJob({
        jobId: "j2",
        amount: 1 as unknown as bigint,
        minStake: 0n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      }),
      { name: "TypeError", message: /Invalid amount: expected a bigint, got number/ },
    );
    assert.equal(f.ledger.head().blockNumber, 1, "failed calls leave no block");
    assert.equal((await f.client.totals()).escrowed, 1_200n);
  });
});

Deno.test("LocalLedger.assignWorker() checks the client, the state, the stake and the price", async () => {
  await withLedger(async (f) => {
    await rejects(
      f.client.assignWorker({ jobId: "nope", worker: "w1", price: 1n, verifiers: [] }),
      "unknown_job",
      'Cannot assign job "nope": no such job',
    );
    await submit(f, "j1", 100n, 10n);
    const w3 = f.ledger.as("w3");
    await w3.stake({ amount: 5n });
    await rejects(
      f.other.assignWorker({ jobId: "j1", worker: "w3", price: 1n, verifiers: [] }),
      "not_authorized",
      'Cannot assign job "j1": "w2" is not its client "c1"',
    );
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w3", price: 1n, verifiers: [] }),
      "insufficient_stake",
      'Cannot assign job "j1": worker "w3" has stake 5 but the job needs 10',
    );
    await w3.stake({ amount: 5n });
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w3", price: 101n, verifiers: [] }),
      "insufficient_balance",
      'Cannot assign job "j1": price 101 exceeds the escrow 100',
    );
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w3", price: -1n, verifiers: [] }),
      "invalid_amount",
      /price must not be negative/,
    );
    await f.client.assignWorker({
      jobId: "j1",
      worker: "w3",
      price: 100n,
      verifiers: ["v1", "v2"],
    });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{
      name: "WorkerAssigned",
      jobId: "j1",
      worker: "w3",
      price: 100n,
      verifiers: ["v1", "v2"],
      attempt: 1,
    }]);
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w3", price: 1n, verifiers: [] }),
      "invalid_state",
      'Cannot assign job "j1": it is not open, it is assigned (worker "w3")',
    );
  });
});

Deno.test("LocalLedger.assignWorker() ignores unbonding stake", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 150n });
    await f.worker.requestUnstake({ amount: 100n });
    await submit(f, "j1", 100n, 100n);
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w1", price: 1n, verifiers: [] }),
      "insufficient_stake",
      'Cannot assign job "j1": worker "w1" has stake 50 but the job needs 100',
    );
  });
});

Deno.test("LocalLedger.revokeAssignment() reopens the job for re-auction", async () => {
  await withLedger(async (f) => {
    await assigned(f);
    await rejects(
      f.other.revokeAssignment({ jobId: "j1", worker: "w1" }),
      "not_authorized",
      /"w2" is not its client "c1"/,
    );
    await rejects(
      f.client.revokeAssignment({ jobId: "j1", worker: "w2" }),
      "invalid_state",
      'Cannot revoke the assignment of job "j1": worker "w2" is not assigned without a result, the job is assigned',
    );
    await f.client.revokeAssignment({ jobId: "j1", worker: "w1" });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{
      name: "AssignmentRevoked",
      jobId: "j1",
      worker: "w1",
    }]);
    await rejects(
      f.client.revokeAssignment({ jobId: "j1", worker: "w1" }),
      "invalid_state",
      /the job is revoked/,
    );
    // The revoked worker can no longer submit a result.
    await rejects(
      f.worker.submitResult({ jobId: "j1", commitment: RESULT }),
      "not_authorized",
      'Cannot submit a result for job "j1": "w1" is not its assigned worker',
    );
    await f.other.stake({ amount: 100n });
    await f.client.assignWorker({ jobId: "j1", worker: "w2", price: 900n, verifiers: [] });
    await f.other.submitResult({ jobId: "j1", commitment: RESULT });
    await rejects(
      f.client.revokeAssignment({ jobId: "j1", worker: "w2" }),
      "invalid_state",
      /the job is result/,
    );
  });
});

Deno.test("LocalLedger.submitResult() accepts one result from the assigned worker only", async () => {
  await withLedger(async (f) => {
    await rejects(
      f.worker.submitResult({ jobId: "j1", commitment: RESULT }),
      "unknown_job",
      /no such job/,
    );
    await assigned(f);
    await rejects(
      f.other.submitResult({ jobId: "j1", commitment: RESULT }),
      "not_authorized",
      /"w2" is not its assigned worker/,
    );
    await assert.rejects(f.worker.submitResult({ jobId: "j1", commitment: "0xabc" }), {
      name: "TypeError",
    });
    await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{
      name: "ResultSubmitted",
      jobId: "j1",
      worker: "w1",
      commitment: RESULT,
    }]);
    await rejects(
      f.worker.submitResult({ jobId: "j1", commitment: RESULT }),
      "invalid_state",
      'Cannot submit a result for job "j1": a result was already submitted, the job is result',
    );
  });
});

Deno.test("LocalLedger.recordVerification() records a verdict once, after a result", async () => {
  await withLedger(async (f) => {
    await assigned(f);
    await rejects(
      f.client.recordVerification({ jobId: "j1", accepted: true }),
      "invalid_state",
      'Cannot record the verification of job "j1": it has no unverified result, it is assigned',
    );
    await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
    await rejects(
      f.worker.recordVerification({ jobId: "j1", accepted: true }),
      "not_authorized",
      /"w1" is not its client/,
    );
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{ name: "JobVerified", jobId: "j1" }]);
    await rejects(
      f.client.recordVerification({ jobId: "j1", accepted: false }),
      "invalid_state",
      /it is verified/,
    );
  });
  await withLedger(async (f) => {
    await withResult(f);
    await f.client.recordVerification({ jobId: "j1", accepted: false });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{ name: "JobDisputed", jobId: "j1" }]);
  });
});

Deno.test("LocalLedger.releasePayment() pays the price minus the fee and returns the change", async () => {
  await withLedger(async (f) => {
    await withResult(f);
    await rejects(
      f.client.releasePayment({ jobId: "j1" }),
      "invalid_state",
      'Cannot release payment for job "j1": it is not verified, it is result',
    );
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    await rejects(
      f.other.releasePayment({ jobId: "j1" }),
      "not_authorized",
      /"w2" is neither its client nor its worker/,
    );
    const receipt = await f.worker.releasePayment({ jobId: "j1" });
    const events = await lastEvents(f.client, 2);
    assert.deepEqual(bodies(events), [
      { name: "PaymentReleased", jobId: "j1", worker: "w1", amount: 990n, fee: 10n, change: 200n },
      { name: "ReputationUpdated", worker: "w1", score: 510 },
    ]);
    assert.deepEqual(events.map((e) => [e.blockNumber, e.eventIndex, e.txHash]), [
      [receipt.blockNumber, 0, receipt.txHash],
      [receipt.blockNumber, 1, receipt.txHash],
    ]);
    assert.equal(f.ledger.balanceOf("w1"), 990n);
    assert.equal(f.ledger.balanceOf("treasury"), 10n);
    assert.equal(f.ledger.balanceOf("c1"), 200n);
    assert.equal(await f.client.reputationOf("w1"), 510);
    const t = await f.client.totals();
    assert.deepEqual(
      [t.escrowed, t.paid, t.fees, t.refunded, t.locked],
      [1_200n, 990n, 10n, 200n, 0n],
    );
    await checkMoney(f.client);
    await rejects(
      f.client.releasePayment({ jobId: "j1" }),
      "invalid_state",
      'Cannot release payment for job "j1": it is already settled, payment was released',
    );
    await rejects(
      f.client.refund({ jobId: "j1", reason: "cancelled" }),
      "invalid_state",
      'Cannot refund job "j1": it is already settled, payment was released',
    );
  });
});

Deno.test("LocalLedger.releasePayment() honours protocolFeeBps and the treasury option", async () => {
  await withLedger(async (f) => {
    await withResult(f);
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    await f.client.releasePayment({ jobId: "j1" });
    const [paid] = await lastEvents(f.client, 2);
    assert.equal(paid?.name, "PaymentReleased");
    if (paid?.name === "PaymentReleased") assert.deepEqual([paid.amount, paid.fee], [750n, 250n]);
    assert.equal(f.ledger.balanceOf("dao"), 250n);
  }, { protocolFeeBps: 2_500, treasury: "dao" });
});

Deno.test("LocalLedger reputation starts at 500 and is capped at 1000", async () => {
  await withLedger(async (f) => {
    assert.equal(await f.client.reputationOf("nobody"), 500);
    await f.worker.stake({ amount: 1n });
    for (let i = 0; i < 52; i++) {
      const jobId = `j${i}`;
      await f.client.submitJob({
        jobId,
        amount: 10n,
        minStake: 0n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      });
      await f.client.assignWorker({ jobId, worker: "w1", price: 10n, verifiers: [] });
      await f.worker.submitResult({ jobId, commitment: RESULT });
      await f.client.recordVerification({ jobId, accepted: true });
      await f.client.releasePayment({ jobId });
    }
    assert.equal(await f.client.reputationOf("w1"), 1000);
    const scores = (await allEvents(f.client)).flatMap((e) =>
      e.name === "ReputationUpdated" ? [e.score] : []
    );
    assert.deepEqual(scores.slice(-3), [1000, 1000, 1000]);
    assert.equal(scores[0], 510);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.escrowOf() reads a job's client, spec hash and whether it ended", async () => {
  await withLedger(async (f) => {
    assert.equal(await f.other.escrowOf!("j1"), undefined);
    await withResult(f);
    const spec = "d".repeat(64);
    await f.ledger.as("v1").stake({ amount: 1_000n, role: "verifier" });
    await f.client.submitJob({
      jobId: "j2",
      amount: 10n,
      minStake: 0n,
      modelHash: MODEL,
      inputCommitment: INPUT,
      verifierCount: 1,
      specHash: spec,
    });
    // Anyone reads it, not only its parties.
    assert.deepEqual(await f.other.escrowOf!("j1"), { jobId: "j1", client: "c1", ended: false });
    assert.deepEqual(await f.other.escrowOf!("j2"), {
      jobId: "j2",
      client: "c1",
      specHash: spec,
      ended: false,
    });
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    assert.equal((await f.other.escrowOf!("j1"))?.ended, false, "verified is not paid yet");
    await f.client.releasePayment({ jobId: "j1" });
    await f.client.refund({ jobId: "j2", reason: "cancelled" });
    assert.equal((await f.other.escrowOf!("j1"))?.ended, true, "paid");
    assert.equal((await f.other.escrowOf!("j2"))?.ended, true, "refunded");
    await assert.rejects(f.other.escrowOf!(""), { name: "RangeError", message: /Invalid job id/ });
  });
});

Deno.test("LocalLedger.refund() returns the whole escrow once", async () => {
  await withLedger(async (f) => {
    await rejects(
      f.client.refund({ jobId: "j1", reason: "expired" }),
      "unknown_job",
      /no such job/,
    );
    await assigned(f);
    await rejects(
      f.worker.refund({ jobId: "j1", reason: "expired" }),
      "not_authorized",
      'Cannot refund job "j1": "w1" is not its client "c1"',
    );
    await rejects(
      f.client.refund({ jobId: "j1", reason: "disputed" }),
      "invalid_state",
      'Cannot refund job "j1" as disputed: it was not disputed, it is assigned',
    );
    await assert.rejects(
      f.client.refund({ jobId: "j1", reason: "bored" as RefundReason }),
      { name: "TypeError", message: 'Invalid refund reason: "bored"' },
    );
    await f.client.refund({ jobId: "j1", reason: "expired" });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [{
      name: "EscrowRefunded",
      jobId: "j1",
      client: "c1",
      amount: 1_200n,
      reason: "expired",
    }]);
    assert.equal(f.ledger.balanceOf("c1"), 1_200n);
    const t = await f.client.totals();
    assert.deepEqual([t.refunded, t.locked, t.paid], [1_200n, 0n, 0n]);
    await rejects(
      f.client.refund({ jobId: "j1", reason: "expired" }),
      "invalid_state",
      'Cannot refund job "j1": it is already settled, escrow was refunded',
    );
    await rejects(
      f.client.releasePayment({ jobId: "j1" }),
      "invalid_state",
      /already settled, escrow was refunded/,
    );
    await rejects(
      f.client.assignWorker({ jobId: "j1", worker: "w1", price: 1n, verifiers: [] }),
      "invalid_state",
      /it is not open, it is refunded/,
    );
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.refund() with reason disputed needs JobDisputed", async () => {
  await withLedger(async (f) => {
    await withResult(f);
    await f.client.recordVerification({ jobId: "j1", accepted: false });
    await rejects(f.client.releasePayment({ jobId: "j1" }), "invalid_state", /it is disputed/);
    await f.client.refund({ jobId: "j1", reason: "disputed" });
    const [refunded] = await lastEvents(f.client, 1);
    assert.equal(refunded?.name, "EscrowRefunded");
    await checkMoney(f.client);
  });
});

// ---------------------------------------------------------------------------------------------
// Slashing

Deno.test("LocalLedger.slash() takes 50 % for invalid compute", async () => {
  await withLedger(async (f) => {
    await withResult(f);
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" }),
      "invalid_state",
      'Cannot slash worker "w1" for invalid_compute on job "j1": no result of this worker was disputed',
    );
    await f.client.recordVerification({ jobId: "j1", accepted: false });
    await rejects(
      f.worker.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" }),
      "not_authorized",
      'Cannot slash worker "w1" for invalid_compute on job "j1": "w1" is not the job\'s client "c1"',
    );
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
    assert.deepEqual(bodies(await lastEvents(f.client, 2)), [
      { name: "WorkerSlashed", jobId: "j1", worker: "w1", amount: 500n, reason: "invalid_compute" },
      { name: "ReputationUpdated", worker: "w1", score: 400 },
    ]);
    assert.equal(await f.client.stakeOf("w1"), 500n);
    assert.equal(f.ledger.balanceOf("treasury"), 500n, "slashed stake goes to the treasury");
    const t = await f.client.totals();
    assert.deepEqual([t.staked, t.slashed, t.bonded], [1_000n, 500n, 500n]);
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" }),
      "invalid_state",
      /already slashed for this/,
    );
    // Settlement of the escrow is independent of the slash.
    await f.client.refund({ jobId: "j1", reason: "disputed" });
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.slash() takes 5 % for downtime, only after a revocation", async () => {
  await withLedger(async (f) => {
    await assigned(f);
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" }),
      "invalid_state",
      'Cannot slash worker "w1" for downtime on job "j1": this worker\'s assignment was not revoked',
    );
    await f.client.revokeAssignment({ jobId: "j1", worker: "w1" });
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" }),
      "invalid_state",
      /no result of this worker was disputed/,
    );
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" });
    const [slashed] = await lastEvents(f.client, 2);
    assert.equal(slashed?.name === "WorkerSlashed" && slashed.amount, 50n);
    assert.equal(await f.client.stakeOf("w1"), 950n);
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" }),
      "invalid_state",
      'Cannot slash worker "w1" for downtime on job "j1": already slashed for this',
    );
    // Re-assigned after the revocation: still slashable for downtime on that job only once.
    await f.client.assignWorker({ jobId: "j1", worker: "w1", price: 1n, verifiers: [] });
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" }),
      "invalid_state",
      /already slashed/,
    );
  });
});

Deno.test("LocalLedger.slash() takes 30 % for double signing and 100 % for a coordinated attack", async () => {
  await withLedger(async (f) => {
    const verifier = f.ledger.as("v1");
    await verifier.stake({ amount: 300n });
    await assigned(f, ["v1"]);
    await rejects(
      f.client.slash({ jobId: "j1", worker: "w2", reason: "double_signing" }),
      "invalid_state",
      'Cannot slash worker "w2" for double_signing on job "j1": the worker was neither assigned to the job nor one of its verifiers',
    );
    await rejects(
      f.client.slash({ jobId: "nope", worker: "w1", reason: "double_signing" }),
      "unknown_job",
      /no such job/,
    );
    await assert.rejects(
      f.client.slash({ jobId: "j1", worker: "w1", reason: "laziness" as SlashReason }),
      { name: "TypeError", message: 'Invalid slash reason: "laziness"' },
    );
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "double_signing" });
    assert.equal(await f.client.stakeOf("w1"), 700n);
    // A second, different offence on the same job takes from what is left.
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "coordinated_attack" });
    assert.equal(await f.client.stakeOf("w1"), 0n);
    await f.client.slash({ jobId: "j1", worker: "v1", reason: "coordinated_attack" });
    assert.equal(await f.client.stakeOf("v1"), 0n);
    const slashes = (await allEvents(f.client)).flatMap((e) =>
      e.name === "WorkerSlashed" ? [[e.worker, e.reason, e.amount]] : []
    );
    assert.deepEqual(slashes, [
      ["w1", "double_signing", 300n],
      ["w1", "coordinated_attack", 700n],
      ["v1", "coordinated_attack", 300n],
    ]);
    assert.equal(f.ledger.balanceOf("treasury"), 1_300n);
    assert.equal(await f.client.reputationOf("w1"), 300);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.slash() spares unbonding stake and floors reputation at 0", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 1_000n });
    await f.worker.requestUnstake({ amount: 600n });
    for (let i = 0; i < 6; i++) {
      const jobId = `j${i}`;
      await submit(f, jobId, 10n, 0n);
      await f.client.assignWorker({ jobId, worker: "w1", price: 10n, verifiers: [] });
      await f.client.revokeAssignment({ jobId, worker: "w1" });
      await f.client.slash({ jobId, worker: "w1", reason: "downtime" });
    }
    const slashes = (await allEvents(f.client)).flatMap((e) =>
      e.name === "WorkerSlashed" ? [e.amount] : []
    );
    // 5 % of 400, then of 380, ... rounded down.
    assert.deepEqual(slashes, [20n, 19n, 18n, 17n, 16n, 15n]);
    assert.equal(await f.client.reputationOf("w1"), 0);
    f.clock.now += 7 * DAY;
    await f.worker.withdraw();
    assert.equal(f.ledger.balanceOf("w1"), 600n, "the unbonding stake is withdrawn whole");
    await checkMoney(f.client);
  });
});

// ---------------------------------------------------------------------------------------------
// Stake

Deno.test("LocalLedger.stake() adds to the bonded stake and emits the total", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 100n });
    await f.worker.stake({ amount: 50n });
    assert.deepEqual(bodies(await allEvents(f.client)), [
      { name: "WorkerStaked", worker: "w1", amount: 100n, total: 100n },
      { name: "WorkerStaked", worker: "w1", amount: 50n, total: 150n },
    ]);
    assert.equal(await f.client.stakeOf("w1"), 150n);
    assert.equal(await f.client.stakeOf("nobody"), 0n);
    await rejects(
      f.worker.stake({ amount: 0n }),
      "invalid_amount",
      'Cannot stake for "w1": amount must be positive, got 0',
    );
    await rejects(f.worker.stake({ amount: 2n ** 256n - 100n }), "invalid_amount", /u256/);
  });
});

Deno.test("LocalLedger.requestUnstake() and withdraw() honour the unbonding period", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 100n });
    await rejects(
      f.worker.withdraw(),
      "invalid_state",
      'Cannot withdraw stake for "w1": nothing is unbonding',
    );
    await rejects(
      f.worker.requestUnstake({ amount: 101n }),
      "insufficient_stake",
      'Cannot unstake 101 for "w1": the bonded stake is 100',
    );
    await rejects(f.worker.requestUnstake({ amount: 0n }), "invalid_amount", /must be positive/);
    await f.worker.requestUnstake({ amount: 30n });
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [
      { name: "UnstakeRequested", worker: "w1", amount: 30n, unlockAt: 1_000 + 7 * DAY },
    ]);
    assert.equal(await f.client.stakeOf("w1"), 70n);
    f.clock.now += DAY;
    await f.worker.requestUnstake({ amount: 20n });
    f.clock.now = 1_000 + 7 * DAY - 1;
    await rejects(
      f.worker.withdraw(),
      "still_unbonding",
      `Cannot withdraw stake for "w1": 30 is unbonding until ${1_000 + 7 * DAY}, it is now ${
        1_000 + 7 * DAY - 1
      }`,
    );
    f.clock.now += 1;
    await f.worker.withdraw();
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [
      { name: "StakeWithdrawn", worker: "w1", amount: 30n },
    ]);
    await rejects(f.worker.withdraw(), "still_unbonding", /20 is unbonding/);
    f.clock.now += DAY;
    await f.worker.withdraw();
    assert.equal(f.ledger.balanceOf("w1"), 50n);
    assert.equal(await f.client.stakeOf("w1"), 50n);
    const t = await f.client.totals();
    assert.deepEqual([t.staked, t.withdrawn, t.bonded, t.slashed], [100n, 50n, 50n, 0n]);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger totals() counts unbonding stake as bonded", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 100n });
    await f.worker.requestUnstake({ amount: 40n });
    assert.equal(await f.client.stakeOf("w1"), 60n);
    assert.equal((await f.client.totals()).bonded, 100n);
    await checkMoney(f.client);
  }, { unbondingMs: 0 });
});

// ---------------------------------------------------------------------------------------------
// Stake lock: stake that backs an open job cannot leave before the job settles

/** Everything a refused transaction must leave as it was. */
async function ledgerState(f: Fixture): Promise<unknown> {
  return {
    head: f.ledger.head(),
    totals: await f.client.totals(),
    events: (await allEvents(f.client)).length,
    lock: f.ledger.stakeLockOf("w1"),
    balance: f.ledger.balanceOf("w1"),
  };
}

Deno.test("LocalLedger.requestUnstake() refuses the stake an open job locks and changes nothing", async () => {
  await withLedger(async (f) => {
    await assigned(f);
    assert.deepEqual(f.ledger.stakeLockOf("w1"), {
      stake: 1_000n,
      unbonding: 0n,
      locked: 1_000n,
      openJobs: ["j1"],
    });
    const before = await ledgerState(f);
    await rejects(
      f.worker.requestUnstake({ amount: 1n }),
      "stake_locked",
      'Cannot unstake 1 for "w1": 1000 of the bonded stake 1000 is locked by 1 open job ("j1"), at most 0 can be unstaked until they are settled',
    );
    // More than the bonded stake is still insufficient_stake, whatever the lock.
    await rejects(f.worker.requestUnstake({ amount: 1_001n }), "insufficient_stake", /is 1000$/);
    assert.deepEqual(await ledgerState(f), before, "a refused unstake leaves no trace");
    // Stake added after the assignment did not back it, and is free to leave.
    await f.worker.stake({ amount: 300n });
    await rejects(
      f.worker.requestUnstake({ amount: 301n }),
      "stake_locked",
      'Cannot unstake 301 for "w1": 1000 of the bonded stake 1300 is locked by 1 open job ("j1"), at most 300 can be unstaked until they are settled',
    );
    await f.worker.requestUnstake({ amount: 300n });
    // A result and a verdict do not settle the job: the stake stays locked until payment.
    await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
    await rejects(f.worker.requestUnstake({ amount: 1n }), "stake_locked", /"j1"/);
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    await rejects(f.worker.requestUnstake({ amount: 1n }), "stake_locked", /"j1"/);
    await f.worker.releasePayment({ jobId: "j1" });
    assert.deepEqual(f.ledger.stakeLockOf("w1"), {
      stake: 1_000n,
      unbonding: 300n,
      locked: 0n,
      openJobs: [],
    });
    await f.worker.requestUnstake({ amount: 1_000n });
    assert.equal(await f.client.stakeOf("w1"), 0n);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.requestUnstake() is possible again once the job is refunded, not at revocation", async () => {
  await withLedger(async (f) => {
    await assigned(f);
    await f.client.revokeAssignment({ jobId: "j1", worker: "w1" });
    // Revoked but not settled: still liable for downtime, still locked.
    await rejects(f.worker.requestUnstake({ amount: 1n }), "stake_locked", /1 open job \("j1"\)/);
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "downtime" });
    assert.deepEqual(f.ledger.stakeLockOf("w1"), {
      stake: 950n,
      unbonding: 0n,
      locked: 950n,
      openJobs: ["j1"],
    });
    await f.client.refund({ jobId: "j1", reason: "cancelled" });
    assert.equal(f.ledger.stakeLockOf("w1").locked, 0n);
    await f.worker.requestUnstake({ amount: 950n });
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger stake lock is the largest stake at assignment among the open jobs", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 100n });
    for (let i = 0; i < 7; i++) {
      const jobId = `j${i}`;
      await submit(f, jobId, 10n, 50n);
      await f.client.assignWorker({ jobId, worker: "w1", price: 10n, verifiers: [] });
      // Each job is assigned with 100 more stake than the one before: j6 at 700.
      await f.worker.stake({ amount: 100n });
    }
    // One stake backs all the jobs (assignment does not reserve it): the lock is not a sum.
    assert.deepEqual(f.ledger.stakeLockOf("w1"), {
      stake: 800n,
      unbonding: 0n,
      locked: 700n,
      openJobs: ["j0", "j1", "j2", "j3", "j4", "j5", "j6"],
    });
    await rejects(
      f.worker.requestUnstake({ amount: 101n }),
      "stake_locked",
      'Cannot unstake 101 for "w1": 700 of the bonded stake 800 is locked by 7 open jobs ("j0", "j1", "j2", "j3", "j4" and 2 more), at most 100 can be unstaked until they are settled',
    );
    await f.client.refund({ jobId: "j6", reason: "cancelled" });
    assert.equal(f.ledger.stakeLockOf("w1").locked, 600n);
    await f.worker.requestUnstake({ amount: 200n });
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.slash() collects the matrix share of the stake at assignment although the rest was withdrawn", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 100n });
    await submit(f, "j1", 100n, 10n);
    await f.client.assignWorker({ jobId: "j1", worker: "w1", price: 100n, verifiers: [] });
    await f.worker.stake({ amount: 900n });
    await f.worker.requestUnstake({ amount: 900n });
    await f.worker.withdraw();
    await rejects(
      f.worker.requestUnstake({ amount: 1n }),
      "stake_locked",
      /of the bonded stake 100 /,
    );
    await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
    await f.client.recordVerification({ jobId: "j1", accepted: false });
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
    const [slashed] = await lastEvents(f.client, 2);
    assert.equal(slashed?.name === "WorkerSlashed" && slashed.amount, 50n, "50 % of 100");
    await checkMoney(f.client);
  }, { unbondingMs: 0 });
});

Deno.test("LocalLedger.slash() reaches stake unbonding since the assignment, even after the refund", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 1_000n });
    // Requested before the assignment: the job never relied on it, a slash spares it.
    await f.worker.requestUnstake({ amount: 200n });
    await submit(f);
    await f.client.assignWorker({ jobId: "j1", worker: "w1", price: 1_000n, verifiers: [] });
    await f.worker.submitResult({ jobId: "j1", commitment: RESULT });
    await f.client.recordVerification({ jobId: "j1", accepted: false });
    // The refund lands before the slash: the lock is gone and the worker unstakes everything.
    await f.client.refund({ jobId: "j1", reason: "disputed" });
    await f.worker.requestUnstake({ amount: 800n });
    assert.equal(await f.client.stakeOf("w1"), 0n);
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
    assert.deepEqual(bodies(await lastEvents(f.client, 2)), [
      { name: "WorkerSlashed", jobId: "j1", worker: "w1", amount: 400n, reason: "invalid_compute" },
      { name: "ReputationUpdated", worker: "w1", score: 400 },
    ]);
    assert.deepEqual(f.ledger.stakeLockOf("w1"), {
      stake: 0n,
      unbonding: 600n,
      locked: 0n,
      openJobs: [],
    });
    await checkMoney(f.client);
    f.clock.now += 7 * DAY;
    await f.worker.withdraw();
    assert.deepEqual(bodies(await lastEvents(f.client, 1)), [
      { name: "StakeWithdrawn", worker: "w1", amount: 600n },
    ]);
    // Withdrawn stake is gone: the unbonding period is the window for late slashes.
    await f.client.slash({ jobId: "j1", worker: "w1", reason: "double_signing" });
    const [late] = await lastEvents(f.client, 2);
    assert.equal(late?.name === "WorkerSlashed" && late.amount, 0n);
    assert.equal(f.ledger.balanceOf("w1"), 600n);
    assert.equal(f.ledger.balanceOf("treasury"), 400n);
    const t = await f.client.totals();
    assert.deepEqual([t.staked, t.bonded, t.slashed, t.withdrawn], [1_000n, 0n, 400n, 600n]);
    await checkMoney(f.client);
  });
});

Deno.test("LocalLedger.open() upgrades a file created before stake locks", async () => {
  await withTempFile(async (path) => {
    const first = LocalLedger.open(path);
    try {
      const worker = first.as("w1");
      const client = first.as("c1");
      await worker.stake({ amount: 1_000n });
      await worker.requestUnstake({ amount: 100n });
      await client.submitJob({
        jobId: "j1",
        amount: 100n,
        minStake: 10n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      });
      await client.assignWorker({ jobId: "j1", worker: "w1", price: 100n, verifiers: [] });
    } finally {
      first.close();
    }
    const db = new DatabaseSync(path);
    try {
      db.exec("ALTER TABLE job_parties DROP COLUMN assigned_stake");
      db.exec("ALTER TABLE job_parties DROP COLUMN assigned_block");
      db.exec("ALTER TABLE unbonding DROP COLUMN requested_block");
    } finally {
      db.close();
    }
    const ledger = LocalLedger.open(path);
    try {
      // No snapshot of the assignment: the whole bonded stake stays locked.
      assert.deepEqual(ledger.stakeLockOf("w1"), {
        stake: 900n,
        unbonding: 100n,
        locked: 900n,
        openJobs: ["j1"],
      });
      const worker = ledger.as("w1");
      const client = ledger.as("c1");
      await rejects(worker.requestUnstake({ amount: 1n }), "stake_locked", /900 of/);
      await worker.submitResult({ jobId: "j1", commitment: RESULT });
      await client.recordVerification({ jobId: "j1", accepted: false });
      await client.slash({ jobId: "j1", worker: "w1", reason: "invalid_compute" });
      // The old request counts as made before the assignment.
      assert.deepEqual(ledger.stakeLockOf("w1"), {
        stake: 450n,
        unbonding: 100n,
        locked: 450n,
        openJobs: ["j1"],
      });
      await checkMoney(client);
    } finally {
      ledger.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Blocks, events, ports

Deno.test("LocalLedger makes each transaction one block chained by sha-256", async () => {
  await withLedger(async (f) => {
    const r1 = await f.worker.stake({ amount: 1_000n });
    await submit(f);
    const r3 = await f.client.assignWorker({
      jobId: "j1",
      worker: "w1",
      price: 10n,
      verifiers: [],
    });
    assert.deepEqual([r1.blockNumber, r3.blockNumber], [1, 3]);
    assert.match(r1.txHash, /^0x[0-9a-f]{64}$/);
    const events = await allEvents(f.client);
    let parent = `0x${"0".repeat(64)}`;
    for (const [i, event] of events.entries()) {
      assert.equal(event.blockNumber, i + 1);
      assert.equal(event.eventIndex, 0);
      assert.equal(event.blockHash, sha256(parent + event.txHash));
      parent = event.blockHash;
    }
    assert.deepEqual(f.ledger.head(), { blockNumber: 3, blockHash: parent });
    assert.equal(events[2]?.txHash, r3.txHash);
  });
});

Deno.test("LocalLedger.eventsSince() pages through events in order from a cursor", async () => {
  await withLedger(async (f) => {
    assert.deepEqual(await f.client.eventsSince(START), { events: [], next: START });
    await withResult(f);
    await f.client.recordVerification({ jobId: "j1", accepted: true });
    await f.client.releasePayment({ jobId: "j1" });
    const all = await allEvents(f.client);
    assert.deepEqual(all.map((e) => e.name), [
      "WorkerStaked",
      "JobSubmitted",
      "WorkerAssigned",
      "ResultSubmitted",
      "JobVerified",
      "PaymentReleased",
      "ReputationUpdated",
    ]);
    const page = await f.client.eventsSince(START, { limit: 3 });
    assert.deepEqual(page.events, all.slice(0, 3));
    assert.deepEqual(page.next, { blockNumber: 3, eventIndex: 1 });
    // A cursor inside a block (between PaymentReleased and ReputationUpdated).
    const inside = await f.client.eventsSince({ blockNumber: 6, eventIndex: 1 });
    assert.deepEqual(inside.events, all.slice(6));
    assert.deepEqual(inside.next, { blockNumber: 6, eventIndex: 2 });
    assert.deepEqual((await f.client.eventsSince(inside.next)).events, []);
    await assert.rejects(f.client.eventsSince(START, { limit: 0 }), { name: "RangeError" });
    await assert.rejects(f.client.eventsSince({ blockNumber: -1, eventIndex: 0 }), {
      name: "RangeError",
    });
  });
});

Deno.test("LocalLedger.subscribe() delivers every event in order, from a cursor, until unsubscribed", async () => {
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 1n });
    const seen: string[] = [];
    const fromTwo: string[] = [];
    const unsubscribe = f.client.subscribe((e) => seen.push(`${e.name}@${e.blockNumber}`), {
      pollMs: 5,
    });
    let throws = true;
    const unsubscribe2 = f.other.subscribe((e) => {
      if (throws) {
        throws = false;
        throw new Error("handler failure");
      }
      fromTwo.push(`${e.name}@${e.blockNumber}`);
    }, { from: { blockNumber: 2, eventIndex: 0 } });
    await submit(f);
    await f.worker.stake({ amount: 2n });
    await waitFor(() => seen.length === 3 && fromTwo.length === 1, "three events");
    assert.deepEqual(seen, ["WorkerStaked@1", "JobSubmitted@2", "WorkerStaked@3"]);
    // The first delivery (JobSubmitted@2) threw; delivery went on with the next event.
    assert.deepEqual(fromTwo, ["WorkerStaked@3"]);
    unsubscribe();
    unsubscribe();
    await f.worker.stake({ amount: 3n });
    await waitFor(() => fromTwo.length === 2, "the fourth event");
    assert.equal(seen.length, 3);
    unsubscribe2();
  });
});

Deno.test("LocalLedger ports refuse calls once closed or aborted", async () => {
  const f = open();
  const seen: ChainEvent[] = [];
  f.worker.subscribe((e) => seen.push(e));
  await assert.rejects(
    f.worker.stake({ amount: 1n }, { signal: AbortSignal.abort() }),
    { name: "AbortError" },
  );
  await f.worker.close();
  await rejects(
    f.worker.stake({ amount: 1n }),
    "rpc_error",
    'Cannot call stake as "w1": the ledger port is closed',
  );
  await f.client.stake({ amount: 1n });
  f.ledger.close();
  f.ledger.close();
  await rejects(
    f.client.totals(),
    "rpc_error",
    'Cannot call totals as "c1": the ledger is closed',
  );
  assert.throws(() => f.ledger.as("x"), { name: "ChainError", code: "rpc_error" });
  assert.throws(() => f.ledger.head(), { name: "ChainError", code: "rpc_error" });
  assert.deepEqual(seen, []);
});

Deno.test("LocalLedger.open() validates its options", () => {
  assert.throws(() => LocalLedger.open(":memory:", { protocolFeeBps: 10_001 }), {
    name: "RangeError",
    message: "Invalid protocolFeeBps: expected 0 to 10000, got 10001",
  });
  assert.throws(() => LocalLedger.open(":memory:", { unbondingMs: -1 }), { name: "RangeError" });
  assert.throws(() => LocalLedger.open(""), { name: "TypeError" });
  assert.throws(() => LocalLedger.open(":memory:", { treasury: "" }), { name: "RangeError" });
  const ledger = LocalLedger.open(":memory:");
  assert.throws(() => ledger.as(""), { name: "RangeError", message: /Invalid account/ });
  ledger.close();
});

Deno.test("LOCAL_LEDGER_ADDRESS is the from_address of every stored event", async () => {
  assert.match(LOCAL_LEDGER_ADDRESS, /^0x[0-9a-f]+$/);
  await withLedger(async (f) => {
    await f.worker.stake({ amount: 1n });
    assert.equal((await allEvents(f.client)).length, 1);
  });
});

// ---------------------------------------------------------------------------------------------
// A shared database file

async function withTempFile(body: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ciro-ledger-" });
  try {
    await body(`${dir}/ledger.db`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("LocalLedger shares one database file between two ledgers and survives a reopen", async () => {
  await withTempFile(async (path) => {
    const a = LocalLedger.open(path);
    const b = LocalLedger.open(path);
    try {
      const client = a.as("c1");
      const worker = b.as("w1");
      await worker.stake({ amount: 500n });
      await client.submitJob({
        jobId: "j1",
        amount: 100n,
        minStake: 500n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      });
      await client.assignWorker({ jobId: "j1", worker: "w1", price: 100n, verifiers: [] });
      await worker.submitResult({ jobId: "j1", commitment: RESULT });
      await client.recordVerification({ jobId: "j1", accepted: true });
      await worker.releasePayment({ jobId: "j1" });
      await rejects(client.releasePayment({ jobId: "j1" }), "invalid_state", /already settled/);
      assert.deepEqual(await client.totals(), await worker.totals());
      const fromA = await allEvents(client);
      assert.deepEqual(fromA, await allEvents(worker));
      assert.deepEqual(fromA.map((e) => e.blockNumber), [1, 2, 3, 4, 5, 6, 6]);
      assert.equal(a.balanceOf("w1"), 99n);
      assert.deepEqual(a.head(), b.head());
    } finally {
      a.close();
      b.close();
    }
    const reopened = LocalLedger.open(path);
    try {
      const port = reopened.as("c1");
      assert.equal(reopened.head().blockNumber, 6);
      assert.equal(await port.reputationOf("w1"), 510);
      await port.stake({ amount: 1n });
      assert.equal(reopened.head().blockNumber, 7);
      await checkMoney(port);
    } finally {
      reopened.close();
    }
    const journal = new TextDecoder().decode((await Deno.readFile(path)).subarray(18, 20));
    assert.equal(journal, "\u0002\u0002", "the file is in WAL mode");
  });
});

Deno.test("LocalLedger.subscribe() sees another OS process write to the same file", async () => {
  await withTempFile(async (path) => {
    const ledger = LocalLedger.open(path);
    const port = ledger.as("parent");
    const seen: ChainEvent[] = [];
    const unsubscribe = port.subscribe((e) => seen.push(e), { pollMs: 10 });
    const rounds = 20;
    const child = `
      import { LocalLedger } from ${JSON.stringify(import.meta.resolve("./local_ledger.ts"))};
      const ledger = LocalLedger.open(${JSON.stringify(path)});
      const port = ledger.as("child");
      for (let i = 0; i < ${rounds}; i++) {
        await port.stake({ amount: 1n });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      ledger.close();
    `;
    try {
      const process = new Deno.Command(Deno.execPath(), {
        args: ["eval", "--config", fileURLToPath(new URL("../deno.json", import.meta.url)), child],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // Write from this process at the same time.
      for (let i = 0; i < rounds; i++) {
        await port.stake({ amount: 1n });
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const output = await process.output();
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      await waitFor(() => seen.length === 2 * rounds, `${2 * rounds} events`);
      assert.deepEqual(
        seen.map((e) => e.blockNumber),
        Array.from({ length: 2 * rounds }, (_, i) => i + 1),
        "one block per transaction, delivered in order, none lost",
      );
      for (const who of ["parent", "child"]) {
        const totals = seen.flatMap((e) =>
          e.name === "WorkerStaked" && e.worker === who ? [e.total] : []
        );
        assert.deepEqual(totals, Array.from({ length: rounds }, (_, i) => BigInt(i + 1)));
      }
      let parent = `0x${"0".repeat(64)}`;
      for (const event of seen) {
        assert.equal(event.blockHash, sha256(parent + event.txHash));
        parent = event.blockHash;
      }
      assert.equal((await port.totals()).staked, BigInt(2 * rounds));
    } finally {
      unsubscribe();
      ledger.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Money identities under random operations

const CLIENTS = ["c0", "c1"];
const WORKERS = ["w0", "w1", "w2"];
const JOBS = ["j0", "j1", "j2", "j3", "j4", "j5"];

/**
 * A random call. With `honest` (most of the time) the caller is the one the rules expect (the
 * job's client, its assigned worker), so that sequences get far into the job lifecycle; the
 * rest of the time it is whoever the op names.
 */
type Op =
  | { op: "submit"; client: string; job: string; amount: bigint; minStake: bigint }
  | { op: "stake"; worker: string; amount: bigint }
  | { op: "unstake"; worker: string; amount: bigint }
  | {
    op: "unstake_assigned";
    /** Picks, among the workers ever assigned a job, the one at this index. */
    pick: number;
    /** All the bonded stake, just the free part, or one more than that. */
    share: "all" | "free" | "free+1";
  }
  | { op: "withdraw"; worker: string }
  /** Withdraws for the worker ever assigned a job at this index, like `unstake_assigned`. */
  | { op: "withdraw_assigned"; pick: number }
  | { op: "advance"; ms: number }
  | {
    op: "assign";
    honest: boolean;
    client: string;
    job: string;
    worker: string;
    pricePct: bigint;
    verifiers: string[];
  }
  | { op: "revoke"; honest: boolean; client: string; job: string; worker: string }
  | { op: "result"; honest: boolean; worker: string; job: string }
  | { op: "verify"; honest: boolean; client: string; job: string; accepted: boolean }
  | { op: "release"; honest: boolean; caller: string; job: string }
  | { op: "refund"; honest: boolean; client: string; job: string; reason: RefundReason }
  | {
    op: "slash";
    honest: boolean;
    client: string;
    job: string;
    worker: string;
    reason: SlashReason;
  };

const client = fc.constantFrom(...CLIENTS);
const worker = fc.constantFrom(...WORKERS);
const job = fc.constantFrom(...JOBS);
const honest = fc.oneof({ weight: 6, arbitrary: fc.constant(true) }, fc.constant(false));
const amount = (max: bigint) => fc.bigInt({ min: 1n, max });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("submit" as const),
      client,
      job,
      amount: amount(1_000n),
      minStake: fc.bigInt({ min: 0n, max: 300n }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant("stake" as const), worker, amount: amount(500n) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("unstake" as const), worker, amount: amount(300n) }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("unstake_assigned" as const),
      pick: fc.nat(5),
      share: fc.constantFrom("all", "free", "free+1" as const),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("withdraw" as const), worker }) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant("withdraw_assigned" as const), pick: fc.nat(5) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("advance" as const),
      ms: fc.integer({ min: 0, max: 4 * DAY }),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("assign" as const),
      honest,
      client,
      job,
      worker,
      // Percent of the escrow; above 100 breaks the price rule.
      pricePct: fc.bigInt({ min: 0n, max: 110n }),
      verifiers: fc.subarray(WORKERS),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("revoke" as const), honest, client, job, worker }),
  },
  { weight: 5, arbitrary: fc.record({ op: fc.constant("result" as const), honest, worker, job }) },
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("verify" as const),
      honest,
      client,
      job,
      accepted: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant("release" as const),
      honest,
      caller: fc.constantFrom(...CLIENTS, ...WORKERS),
      job,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("refund" as const),
      honest,
      client,
      job,
      reason: fc.constantFrom("expired", "cancelled", "disputed", "failed" as const),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("slash" as const),
      honest,
      client,
      job,
      worker,
      reason: fc.constantFrom(
        "invalid_compute",
        "downtime",
        "double_signing",
        "coordinated_attack" as const,
      ),
    }),
  },
);

/** What the random driver remembers, to pick honest callers and jobs in the right state. */
interface Model {
  readonly jobs: Map<string, { client: string; escrow: bigint; status: string; worker?: string }>;
  /** Per job, each worker ever assigned to it: what it had at its latest assignment. */
  readonly claims: Map<string, Map<string, Claim>>;
  /** Per worker, the sums of its WorkerSlashed and StakeWithdrawn amounts so far. */
  readonly slashed: Map<string, bigint>;
  readonly withdrawn: Map<string, bigint>;
}

interface Claim {
  readonly stake: bigint;
  readonly slashed: bigint;
  readonly withdrawn: bigint;
}

function emptyModel(): Model {
  return { jobs: new Map(), claims: new Map(), slashed: new Map(), withdrawn: new Map() };
}

const SETTLED = ["paid", "refunded"];

/** The rule, restated: the largest stake at assignment among open jobs, at most the stake. */
function expectedLock(model: Model, worker: string, stake: bigint): bigint {
  let lock = 0n;
  for (const [jobId, claims] of model.claims) {
    const claim = claims.get(worker);
    const status = model.jobs.get(jobId)?.status ?? "";
    if (claim !== undefined && !SETTLED.includes(status) && claim.stake > lock) lock = claim.stake;
  }
  return lock < stake ? lock : stake;
}

/** Workers ever assigned a job (its stake locked while the job is open), in a stable order. */
function assignedWorkers(model: Model): string[] {
  return WORKERS.filter((w) => [...model.claims.values()].some((claims) => claims.has(w)));
}

/** The one event of `name` that the transaction in `blockNumber` emitted. */
async function eventOf<N extends ChainEvent["name"]>(
  ledger: LocalLedger,
  blockNumber: number,
  name: N,
): Promise<Extract<ChainEvent, { name: N }>> {
  const { events } = await ledger.as("auditor").eventsSince({ blockNumber, eventIndex: 0 });
  const event = events.find((e) => e.blockNumber === blockNumber && e.name === name);
  assert.ok(event !== undefined, `block ${blockNumber} has no ${name}`);
  return event as Extract<ChainEvent, { name: N }>;
}

/**
 * Requests an unstake and checks the outcome against the rule: refused with
 * `insufficient_stake` above the bonded stake, with `stake_locked` above its free part, and a
 * refusal changes nothing.
 */
async function unstake(ledger: LocalLedger, model: Model, worker: string, amount: bigint) {
  const lock = ledger.stakeLockOf(worker);
  assert.equal(lock.locked, expectedLock(model, worker, lock.stake), `lock of ${worker}`);
  const refusal = amount > lock.stake
    ? "insufficient_stake"
    : amount > lock.stake - lock.locked
    ? "stake_locked"
    : undefined;
  const head = ledger.head();
  try {
    await ledger.as(worker).requestUnstake({ amount });
  } catch (error) {
    assert.equal((error as ChainError).code, refusal ?? "accepted", String(error));
    assert.deepEqual(ledger.stakeLockOf(worker), lock, "a refused unstake changes nothing");
    assert.deepEqual(ledger.head(), head);
    throw error;
  }
  assert.equal(
    refusal,
    undefined,
    `unstaking ${amount} of ${lock.stake} with ${lock.locked} locked was accepted`,
  );
}

const WANTED: Record<string, readonly string[]> = {
  assign: ["submitted", "revoked"],
  revoke: ["assigned"],
  result: ["assigned"],
  verify: ["result"],
  release: ["verified"],
  refund: ["submitted", "assigned", "revoked", "result", "verified", "disputed"],
  slash: ["revoked", "disputed", "assigned", "result", "verified", "paid", "refunded"],
};

async function apply(
  f: { ledger: LocalLedger; clock: { now: number } },
  model: Model,
  op: Op,
): Promise<void> {
  const as = (account: string) => f.ledger.as(account);
  let jobId = "job" in op ? op.job : "";
  if ("honest" in op && op.honest) {
    const wanted = WANTED[op.op] ?? [];
    const candidates = [...model.jobs].filter(([, j]) => wanted.includes(j.status));
    const pick = candidates[JOBS.indexOf(jobId) % Math.max(1, candidates.length)];
    if (pick !== undefined) jobId = pick[0];
  }
  const known = model.jobs.get(jobId);
  const honestly = (o: { honest: boolean }, fair: string | undefined, other: string) =>
    o.honest && fair !== undefined ? fair : other;
  const set = (status: string, worker?: string) => {
    if (known !== undefined) {
      model.jobs.set(jobId, { ...known, status, ...(worker === undefined ? {} : { worker }) });
    }
  };
  switch (op.op) {
    case "submit":
      await as(op.client).submitJob({
        jobId,
        amount: op.amount,
        minStake: op.minStake,
        modelHash: MODEL,
        inputCommitment: INPUT,
      });
      model.jobs.set(jobId, { client: op.client, escrow: op.amount, status: "submitted" });
      return;
    case "stake":
      await as(op.worker).stake({ amount: op.amount });
      return;
    case "unstake":
      await unstake(f.ledger, model, op.worker, op.amount);
      return;
    case "unstake_assigned": {
      const candidates = assignedWorkers(model);
      const w = candidates[op.pick % Math.max(1, candidates.length)] ?? WORKERS[0]!;
      const { stake, locked } = f.ledger.stakeLockOf(w);
      const free = stake - locked;
      const amount = op.share === "all" ? stake : op.share === "free" ? free : free + 1n;
      await unstake(f.ledger, model, w, amount > 0n ? amount : 1n);
      return;
    }
    case "withdraw":
    case "withdraw_assigned": {
      const candidates = assignedWorkers(model);
      const w = op.op === "withdraw"
        ? op.worker
        : candidates[op.pick % Math.max(1, candidates.length)] ?? WORKERS[0]!;
      const receipt = await as(w).withdraw();
      const { amount } = await eventOf(f.ledger, receipt.blockNumber, "StakeWithdrawn");
      model.withdrawn.set(w, (model.withdrawn.get(w) ?? 0n) + amount);
      return;
    }
    case "advance":
      f.clock.now += op.ms;
      return;
    case "assign": {
      await as(honestly(op, known?.client, op.client)).assignWorker({
        jobId,
        worker: op.worker,
        price: (known?.escrow ?? 100n) * op.pricePct / 100n,
        verifiers: op.verifiers,
      });
      set("assigned", op.worker);
      const claims = model.claims.get(jobId) ?? new Map<string, Claim>();
      claims.set(op.worker, {
        stake: f.ledger.stakeLockOf(op.worker).stake,
        slashed: model.slashed.get(op.worker) ?? 0n,
        withdrawn: model.withdrawn.get(op.worker) ?? 0n,
      });
      model.claims.set(jobId, claims);
      return;
    }
    case "revoke":
      await as(honestly(op, known?.client, op.client)).revokeAssignment({
        jobId,
        worker: honestly(op, known?.worker, op.worker),
      });
      set("revoked");
      return;
    case "result":
      await as(honestly(op, known?.worker, op.worker)).submitResult({
        jobId,
        commitment: RESULT,
      });
      set("result");
      return;
    case "verify":
      await as(honestly(op, known?.client, op.client)).recordVerification({
        jobId,
        accepted: op.accepted,
      });
      set(op.accepted ? "verified" : "disputed");
      return;
    case "release":
      await as(honestly(op, known?.client, op.caller)).releasePayment({ jobId });
      set("paid");
      return;
    case "refund":
      await as(honestly(op, known?.client, op.client)).refund({ jobId, reason: op.reason });
      set("refunded");
      return;
    case "slash": {
      const target = honestly(op, known?.worker, op.worker);
      const receipt = await as(honestly(op, known?.client, op.client)).slash({
        jobId,
        worker: target,
        reason: op.reason,
      });
      const { amount } = await eventOf(f.ledger, receipt.blockNumber, "WorkerSlashed");
      const slashed = model.slashed.get(target) ?? 0n;
      const claim = model.claims.get(jobId)?.get(target);
      if (claim !== undefined) {
        // A slash of a worker assigned to the job collects the matrix share of the stake it had
        // at (its latest) assignment, less what other slashes took since; once the job is
        // settled the lock is gone, and less what it withdrew since as well.
        const settled = SETTLED.includes(model.jobs.get(jobId)?.status ?? "");
        const lost = slashed - claim.slashed +
          (settled ? (model.withdrawn.get(target) ?? 0n) - claim.withdrawn : 0n);
        const floor = claim.stake > lost ? claim.stake - lost : 0n;
        const due = floor * BigInt(SLASH_BPS[op.reason]) / 10_000n;
        assert.ok(
          amount >= due,
          `slash of ${target} on ${jobId} for ${op.reason} took ${amount}, less than ${due} ` +
            `(stake at assignment ${claim.stake}, lost since ${lost}, settled ${settled})`,
        );
      }
      model.slashed.set(target, slashed + amount);
      return;
    }
  }
}

function sum(values: readonly bigint[]): bigint {
  return values.reduce((a, b) => a + b, 0n);
}

Deno.test("LocalLedger conserves money and keeps slashes collectable after any sequence of operations", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 80, size: "max" }),
      // Without an unbonding delay only the stake lock keeps a slash collectable.
      fc.constantFrom(2 * DAY, 0),
      async (ops, unbondingMs) => {
        const clock = { now: 0 };
        const ledger = LocalLedger.open(":memory:", { now: () => clock.now, unbondingMs });
        const f = { ledger, clock };
        const model = emptyModel();
        const reader = ledger.as("auditor");
        try {
          let accepted = 0;
          for (const op of ops) {
            try {
              await apply(f, model, op);
              if (op.op !== "advance") accepted++;
            } catch (error) {
              // Only contract rules may refuse a well-formed call.
              assert.equal((error as Error).name, "ChainError", String(error));
            }
            await checkMoney(reader);
            for (const w of WORKERS) {
              const lock = ledger.stakeLockOf(w);
              assert.equal(lock.locked, expectedLock(model, w, lock.stake), `lock of ${w}`);
            }
          }
          const events = await allEvents(reader);
          assert.equal(ledger.head().blockNumber, accepted);
          const t = await reader.totals();
          const of = <N extends ChainEvent["name"]>(name: N) =>
            events.filter((e): e is Extract<ChainEvent, { name: N }> => e.name === name);
          assert.equal(t.escrowed, sum(of("JobSubmitted").map((e) => e.amount)));
          assert.equal(t.paid, sum(of("PaymentReleased").map((e) => e.amount)));
          assert.equal(t.fees, sum(of("PaymentReleased").map((e) => e.fee)));
          assert.equal(
            t.refunded,
            sum([
              ...of("EscrowRefunded").map((e) => e.amount),
              ...of("PaymentReleased").map((e) => e.change),
            ]),
          );
          assert.equal(t.staked, sum(of("WorkerStaked").map((e) => e.amount)));
          assert.equal(t.slashed, sum(of("WorkerSlashed").map((e) => e.amount)));
          assert.equal(t.withdrawn, sum(of("StakeWithdrawn").map((e) => e.amount)));
          assert.equal(ledger.balanceOf("treasury"), t.fees + t.slashed);
          // No job settles twice.
          const settled = [...of("PaymentReleased"), ...of("EscrowRefunded")].map((e) => e.jobId);
          assert.equal(new Set(settled).size, settled.length);
          // Per worker: bonded = staked - requested unstakes - slashed.
          let unbonding = 0n;
          for (const w of WORKERS) {
            const staked = sum(
              of("WorkerStaked").filter((e) => e.worker === w).map((e) => e.amount),
            );
            const requested = sum(
              of("UnstakeRequested").filter((e) => e.worker === w).map((e) => e.amount),
            );
            const slashed = sum(
              of("WorkerSlashed").filter((e) => e.worker === w).map((e) => e.amount),
            );
            const withdrawn = sum(
              of("StakeWithdrawn").filter((e) => e.worker === w).map((e) => e.amount),
            );
            const lock = ledger.stakeLockOf(w);
            assert.equal(lock.stake, await reader.stakeOf(w));
            assert.equal(lock.stake + lock.unbonding, staked - slashed - withdrawn);
            // Slashes may take from unbonding requests, never more than was requested.
            assert.ok(lock.stake >= staked - requested - slashed);
            assert.ok(lock.unbonding <= requested - withdrawn);
            unbonding += lock.unbonding;
            const score = of("ReputationUpdated").filter((e) => e.worker === w).at(-1)?.score ??
              500;
            assert.equal(await reader.reputationOf(w), score);
          }
          assert.equal(
            t.bonded,
            sum(await Promise.all(WORKERS.map((w) => reader.stakeOf(w)))) + unbonding,
          );
        } finally {
          ledger.close();
        }
      },
    ),
    { numRuns: 150 },
  );
});
