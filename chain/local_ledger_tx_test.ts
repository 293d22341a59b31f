/**
 * Tests of how the local ledger writes a transaction: the totals and balances a transaction
 * changes are added up in memory and written once at its end, so two changes to one account or
 * one total in a transaction must both count, and a transaction that fails must leave none.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "./local_ledger.ts";
import { assignedJob } from "./_assigned_job.ts";

const HASH = "ab".repeat(32);

Deno.test("LocalLedger counts two credits to one account in one transaction", async () => {
  const ledger = LocalLedger.open(":memory:", { protocolFeeBps: 100 });
  try {
    // The client works its own job: the release credits it the payment and the change.
    const client = ledger.as("client");
    await client.stake({ amount: 100n });
    await client.submitJob({
      jobId: "j1",
      amount: 1_000n,
      minStake: 10n,
      modelHash: HASH,
      inputCommitment: HASH,
    });
    await client.assignWorker({ jobId: "j1", worker: "client", price: 600n, verifiers: [] });
    await client.submitResult({ jobId: "j1", commitment: HASH });
    await client.recordVerification({ jobId: "j1", accepted: true });
    await client.releasePayment({ jobId: "j1" });
    // 600 less the 1 % fee, and the change of 400.
    assert.equal(ledger.balanceOf("client"), 594n + 400n);
    assert.equal(ledger.balanceOf("treasury"), 6n);
    const t = await client.totals();
    assert.equal(t.escrowed, 1_000n);
    assert.equal(t.paid, 594n);
    assert.equal(t.fees, 6n);
    assert.equal(t.refunded, 400n);
    assert.equal(t.locked, 0n);
    assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
    // A second job adds to what the first left, in the same rows.
    await client.submitJob({
      jobId: "j2",
      amount: 500n,
      minStake: 10n,
      modelHash: HASH,
      inputCommitment: HASH,
    });
    await client.refund({ jobId: "j2", reason: "cancelled" });
    assert.equal(ledger.balanceOf("client"), 994n + 500n);
    const u = await client.totals();
    assert.equal(u.escrowed, 1_500n);
    assert.equal(u.refunded, 900n);
    assert.equal(u.locked, 0n);
  } finally {
    ledger.close();
  }
});

Deno.test("LocalLedger writes no money of a transaction that fails after moving it", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    const { verifiers, worker, client } = await assignedJob((id) => ledger.as(id), {
      amount: 1_000n,
      price: 500n,
      hash: HASH,
    });
    await worker.submitResult({ jobId: "j1", commitment: "cd".repeat(32) });
    const sign = (i: number, verdict: "valid" | "invalid") =>
      verifiers[i]!.signAttestation!({
        jobId: "j1",
        attempt: 1,
        subject: "cd".repeat(32),
        verdict,
      });
    await client.submitAttestations!({ attestations: [await sign(2, "valid")] });
    // Two invalid verdicts dispute the job (f + 1 of 4), which slashes the verifier that found
    // it valid (money to the treasury); then a repeated verdict is refused: the whole batch is
    // undone, and nothing it moved is written, now or with the next transaction.
    const before = { totals: await client.totals(), treasury: ledger.balanceOf("treasury") };
    assert.equal(before.treasury, 0n);
    assert.equal(await client.stakeOf("v3"), 100n);
    const a = await sign(0, "invalid");
    const b = await sign(1, "invalid");
    await assert.rejects(
      client.submitAttestations!({ attestations: [a, b, a] }),
      (e: Error) => e.name === "ChainError",
    );
    assert.deepEqual(await client.totals(), before.totals);
    assert.equal(ledger.balanceOf("treasury"), 0n);
    assert.equal(await client.stakeOf("v3"), 100n, "the slash of v3 is undone");
    assert.equal(await client.reputationOf("v3"), 500);
    // The same batch without the repeat is counted, and its money written.
    await client.submitAttestations!({ attestations: [a, b] });
    // Half of v3's bonded 100, once.
    assert.equal(ledger.balanceOf("treasury"), 50n);
    assert.equal(await client.stakeOf("v3"), 50n);
    assert.equal(await client.reputationOf("v3"), 400);
    assert.equal((await client.totals()).slashed, 50n);
    await client.refund({ jobId: "j1", reason: "disputed" });
    const t = await client.totals();
    assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
    assert.equal(t.locked, 0n);
    assert.equal(ledger.balanceOf("client"), t.refunded);
  } finally {
    ledger.close();
  }
});

Deno.test("LocalLedger in memory chains its blocks as a ledger in a file does, failures included", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ledger-tx-" });
  const run = async (ledger: LocalLedger) => {
    const client = ledger.as("client");
    const worker = ledger.as("worker");
    const receipts: { txHash: string; blockNumber: number }[] = [];
    const job = { amount: 100n, minStake: 1n, modelHash: HASH, inputCommitment: HASH };
    receipts.push(await worker.stake({ amount: 10n }));
    receipts.push(await client.submitJob({ jobId: "j1", ...job }));
    await assert.rejects(client.submitJob({ jobId: "j1", ...job }), { name: "ChainError" });
    await assert.rejects(worker.submitResult({ jobId: "j1", commitment: HASH }), {
      name: "ChainError",
    });
    receipts.push(await client.assignWorker({ jobId: "j1", worker: "worker", price: 50n }));
    receipts.push(await worker.submitResult({ jobId: "j1", commitment: HASH }));
    const events = (await client.eventsSince({ blockNumber: 0, eventIndex: 0 })).events;
    return {
      receipts,
      head: ledger.head(),
      hashes: events.map((e) => `${e.blockHash}/${e.txHash}`),
      totals: await client.totals(),
      stake: await client.stakeOf("worker"),
      lock: ledger.stakeLockOf("worker"),
    };
  };
  const memory = LocalLedger.open(":memory:", { now: () => 1_000 });
  const file = LocalLedger.open(`${dir}/ledger.sqlite`, { now: () => 1_000 });
  try {
    const m = await run(memory);
    assert.deepEqual(m.receipts.map((r) => r.blockNumber), [1, 2, 3, 4]);
    assert.equal(m.head.blockNumber, 4);
    assert.deepEqual(m, await run(file));
  } finally {
    memory.close();
    file.close();
    await Deno.remove(dir, { recursive: true });
  }
});
