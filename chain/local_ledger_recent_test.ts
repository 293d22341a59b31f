/**
 * Tests of the local ledger's recent-block memory: the events of blocks a ledger committed itself
 * are served by `eventsSince` (and so by every subscription) from memory, not read back from
 * SQLite. What they must show: exactly what a reader of the database decodes (values, types,
 * field order), in order, with other processes' blocks in between, nothing of a rolled-back
 * transaction, and the database again beyond what is kept.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger, type LocalLedgerOptions } from "./local_ledger.ts";
import type { ChainEvent, ChainPort } from "./port.ts";
import { EVENT_LAYOUTS } from "./events.ts";
import { RECENT_BLOCKS } from "./_ledger_store.ts";
import { FAILURE_SUBJECT } from "./settlement.ts";
import { assignedJob } from "./_assigned_job.ts";

const HASH = "ab".repeat(32);
const START = { blockNumber: 0, eventIndex: 0 };

/** An event as text that tells a bigint from a number and keeps the order of its fields. */
function exact(event: ChainEvent): string {
  return JSON.stringify(
    event,
    (_key, v) => typeof v === "bigint" ? `${v}n` : v,
  );
}

async function all(port: ChainPort, limit = 100_000): Promise<ChainEvent[]> {
  return (await port.eventsSince(START, { limit })).events;
}

/** Two ledgers on one file: `writer` commits, `reader` only reads what the database holds. */
async function pair(
  options: LocalLedgerOptions = {},
): Promise<{ writer: LocalLedger; reader: LocalLedger; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "ledger-recent-" });
  const writer = LocalLedger.open(`${dir}/ledger.sqlite`, options);
  const reader = LocalLedger.open(`${dir}/ledger.sqlite`, options);
  return {
    writer,
    reader,
    async [Symbol.asyncDispose]() {
      writer.close();
      reader.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("LocalLedger serves its own blocks' events exactly as the database decodes them, every event type", async () => {
  const clock = { now: 1_000 };
  await using p = await pair({ now: () => clock.now, unbondingMs: 0 });
  const { writer, reader } = p;
  const client = writer.as("client");
  const worker = writer.as("worker");
  await worker.stake({ amount: 1_000n });
  const verifiers: ChainPort[] = [];
  for (const id of ["v1", "v2", "v3", "v4"]) {
    const v = writer.as(id);
    await v.stake({ amount: 100n, role: "verifier" });
    await v.registerKey!({ publicKey: await v.accountPublicKey!() });
    verifiers.push(v);
  }
  const job = { amount: 1_000n, minStake: 10n, modelHash: HASH, inputCommitment: HASH };
  // Legacy: revoked, assigned again, verified, paid.
  await client.submitJob({ jobId: "j1", ...job });
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 400n, verifiers: ["v1"] });
  await client.revokeAssignment!({ jobId: "j1", worker: "worker" });
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 400n, verifiers: ["v1"] });
  await worker.submitResult({ jobId: "j1", commitment: HASH });
  await client.recordVerification({ jobId: "j1", accepted: true });
  await client.releasePayment({ jobId: "j1" });
  // Legacy: disputed, refunded, slashed.
  await client.submitJob({ jobId: "j2", ...job });
  await client.assignWorker({ jobId: "j2", worker: "worker", price: 400n, verifiers: [] });
  await worker.submitResult({ jobId: "j2", commitment: HASH });
  await client.recordVerification({ jobId: "j2", accepted: false });
  await client.refund({ jobId: "j2", reason: "disputed" });
  await client.slash({ jobId: "j2", worker: "worker", reason: "invalid_compute" });
  // Chain-decided: a failure on the input, attested.
  await client.submitJob({ jobId: "j3", ...job, verifierCount: 4, executionMs: 5_000 });
  await client.assignWorker({ jobId: "j3", worker: "worker", price: 400n });
  await worker.reportFailure!({ jobId: "j3", reason: "input shape [2] does not match [4]" });
  const assigned = (await all(reader.as("x"))).findLast((e) => e.name === "WorkerAssigned");
  assert.ok(assigned?.name === "WorkerAssigned");
  const chosen = verifiers.find((v) =>
    assigned.verifiers.includes((v as { account?: string }).account!)
  )!;
  const attestation = await chosen.signAttestation!({
    jobId: "j3",
    attempt: 1,
    subject: FAILURE_SUBJECT,
    verdict: "valid",
  });
  await client.submitAttestations!({ attestations: [attestation] });
  // Stake leaves.
  const leaving = writer.as("leaving");
  await leaving.stake({ amount: 100n });
  await leaving.requestUnstake({ amount: 10n });
  await leaving.withdraw();

  const served = await all(client);
  const decoded = await all(reader.as("reader"));
  assert.equal(served.length, decoded.length);
  assert.deepEqual(served.map(exact), decoded.map(exact));
  assert.deepEqual(
    new Set(served.map((e) => e.name)),
    new Set(Object.keys(EVENT_LAYOUTS)),
    "the scenario emits every event type",
  );
  // Served from memory, and shared: frozen, so no reader can change what the next one reads.
  assert.ok(served.every((e) => Object.isFrozen(e)));
  assert.throws(() => (served[0] as { blockNumber: number }).blockNumber = 99, TypeError);
  // In pages of every size, the same sequence.
  for (const limit of [1, 2, 3, 7]) {
    const paged: ChainEvent[] = [];
    for (let from = START; paged.length < served.length;) {
      const { events, next } = await client.eventsSince(from, { limit });
      assert.ok(events.length > 0 && events.length <= limit);
      paged.push(...events);
      from = next;
    }
    assert.deepEqual(paged.map(exact), decoded.map(exact), `pages of ${limit}`);
  }
});

Deno.test("LocalLedger reads another process's blocks between its own from the database", async () => {
  await using p = await pair();
  const { writer, reader } = p;
  await writer.as("w1").stake({ amount: 1n });
  await reader.as("w2").stake({ amount: 2n }); // another process's block, not in the writer's memory
  await writer.as("w3").stake({ amount: 3n });
  await writer.as("w4").stake({ amount: 4n });
  const seen = await all(writer.as("x"));
  assert.deepEqual(
    seen.map((e) => e.name === "WorkerStaked" ? `${e.blockNumber}:${e.worker}` : e.name),
    ["1:w1", "2:w2", "3:w3", "4:w4"],
  );
  assert.deepEqual(seen.map(exact), (await all(reader.as("x"))).map(exact));
  // The writer's own from memory (frozen), the other's decoded from the database.
  assert.deepEqual(seen.map((e) => Object.isFrozen(e)), [true, false, true, true]);
  // From inside the other process's block, and from past the end.
  const from2 = await writer.as("x").eventsSince({ blockNumber: 2, eventIndex: 0 });
  assert.deepEqual(from2.events.map((e) => e.blockNumber), [2, 3, 4]);
  const after = await writer.as("x").eventsSince({ blockNumber: 5, eventIndex: 0 });
  assert.deepEqual(after, { events: [], next: { blockNumber: 5, eventIndex: 0 } });
});

Deno.test("LocalLedger keeps nothing of a transaction that failed after emitting", async () => {
  await using p = await pair();
  const { writer, reader } = p;
  const { verifiers, worker, client } = await assignedJob((id) => writer.as(id), {
    amount: 10n,
    price: 5n,
    hash: HASH,
  });
  await worker.submitResult({ jobId: "j1", commitment: HASH });
  const before = await all(client);
  const a = await verifiers[0]!.signAttestation!({
    jobId: "j1",
    attempt: 1,
    subject: HASH,
    verdict: "valid",
  });
  // The first attestation is counted (an event), the second is a duplicate: the block is undone.
  await assert.rejects(
    client.submitAttestations!({ attestations: [a, a] }),
    (e: Error) =>
      e.name === "ChainError" && (e as { code?: string }).code === "duplicate_attestation",
  );
  assert.deepEqual((await all(client)).map(exact), before.map(exact));
  await client.submitAttestations!({ attestations: [a] });
  const seen = await all(client);
  assert.equal(seen.length, before.length + 1);
  assert.equal(seen.at(-1)?.name, "AttestationRecorded");
  assert.deepEqual(seen.map(exact), (await all(reader.as("x"))).map(exact));
});

Deno.test("LocalLedger serves text that is not well-formed as the database decodes it", async () => {
  await using p = await pair();
  const { writer, reader } = p;
  const worker = writer.as("worker");
  await worker.stake({ amount: 100n });
  const client = writer.as("client");
  await client.submitJob({
    jobId: "j1",
    amount: 10n,
    minStake: 1n,
    modelHash: HASH,
    inputCommitment: HASH,
    verifierCount: 0,
  });
  await client.assignWorker({ jobId: "j1", worker: "worker", price: 5n });
  // A lone surrogate: UTF-8 cannot carry it, the chain stores U+FFFD.
  await worker.reportFailure!({ jobId: "j1", reason: "bad \uD800 input" });
  const served = (await all(client)).find((e) => e.name === "FailureReported");
  assert.ok(served?.name === "FailureReported");
  assert.equal(served.reason, "bad \uFFFD input");
  // The same in a list: a verifier named by a legacy client.
  await client.submitJob({
    jobId: "j2",
    amount: 10n,
    minStake: 1n,
    modelHash: HASH,
    inputCommitment: HASH,
  });
  await client.assignWorker({ jobId: "j2", worker: "worker", price: 5n, verifiers: ["v\uDC00"] });
  const assigned = (await all(client)).findLast((e) => e.name === "WorkerAssigned");
  assert.ok(assigned?.name === "WorkerAssigned");
  assert.deepEqual(assigned.verifiers, ["v\uFFFD"]);
  assert.deepEqual((await all(client)).map(exact), (await all(reader.as("x"))).map(exact));
});

Deno.test("LocalLedger reads blocks older than those it keeps from the database", async () => {
  await using p = await pair();
  const { writer, reader } = p;
  const port = writer.as("w1");
  for (let i = 0; i < RECENT_BLOCKS + 10; i++) await port.stake({ amount: 1n });
  const seen = await all(port);
  assert.equal(seen.length, RECENT_BLOCKS + 10);
  assert.deepEqual(seen.map((e) => e.blockNumber), seen.map((_, i) => i + 1));
  // The first 10 are no longer kept: decoded from the database, not the frozen ones in memory.
  assert.deepEqual(
    seen.map((e) => Object.isFrozen(e)),
    seen.map((_, i) => i >= 10),
  );
  assert.deepEqual(seen.map(exact), (await all(reader.as("x"))).map(exact));
});

Deno.test("LocalLedger in memory reads blocks older than those it keeps from its database", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    const port = ledger.as("w1");
    assert.deepEqual((await all(port)).length, 0);
    for (let i = 0; i < RECENT_BLOCKS + 10; i++) await port.stake({ amount: 1n });
    const seen = await all(port);
    assert.equal(seen.length, RECENT_BLOCKS + 10);
    assert.deepEqual(seen.map((e) => e.blockNumber), seen.map((_, i) => i + 1));
    assert.deepEqual(seen.map((e) => Object.isFrozen(e)), seen.map((_, i) => i >= 10));
    const after = await port.eventsSince({ blockNumber: RECENT_BLOCKS + 11, eventIndex: 0 });
    assert.deepEqual(after.events, []);
  } finally {
    ledger.close();
  }
});
