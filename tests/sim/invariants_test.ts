/** The chain invariants of the simulator, on crafted chain events. */
import assert from "node:assert/strict";
import type { ChainEvent, LedgerTotals } from "../../chain/port.ts";
import { type Cast, ChainChecker } from "../../runtime/sim/mod.ts";

const cast: Cast = {
  honestWorkers: new Set(["w1"]),
  honestVerifiers: new Set(["v1"]),
  honestClients: new Set(["c1"]),
  wrongWorkers: new Set(["bad"]),
};
let index = 0;
const meta = () => ({ blockNumber: ++index, blockHash: "0x1", txHash: "0x1", eventIndex: 0 });
const submitted = (jobId: string): ChainEvent => ({
  ...meta(),
  name: "JobSubmitted",
  jobId,
  client: "c1",
  amount: 100n,
  modelHash: "0".repeat(64),
  inputCommitment: "0".repeat(64),
  minStake: 0n,
  verifierCount: 0,
  bidWindowMs: 60_000,
  executionMs: 600_000,
  verificationMs: 600_000,
});
const paid = (jobId: string, worker: string): ChainEvent => ({
  ...meta(),
  name: "PaymentReleased",
  jobId,
  worker,
  amount: 90n,
  fee: 1n,
  change: 9n,
});
const verified = (jobId: string): ChainEvent => ({ ...meta(), name: "JobVerified", jobId });

Deno.test("ChainChecker: a job paid then refunded breaks settled-once", () => {
  const c = new ChainChecker(cast, () => 0);
  c.event(submitted("j1"));
  c.event(verified("j1"));
  assert.equal(c.event(paid("j1", "w1")), null);
  const v = c.event({
    ...meta(),
    name: "EscrowRefunded",
    jobId: "j1",
    client: "c1",
    amount: 100n,
    reason: "expired",
  });
  assert.equal(v?.invariant, "settled-once");
  assert.equal(v?.job, "j1");
});

Deno.test("ChainChecker: an honest worker or verifier slashed breaks honest-not-slashed", () => {
  const c = new ChainChecker(cast, () => 0);
  c.event(submitted("j2"));
  for (const worker of ["w1", "v1"]) {
    const v = c.event({
      ...meta(),
      name: "WorkerSlashed",
      jobId: "j2",
      worker,
      amount: 5n,
      reason: "downtime",
    });
    assert.equal(v?.invariant, "honest-not-slashed");
    assert.equal(v?.node, worker);
  }
  const dishonest = c.event({
    ...meta(),
    name: "WorkerSlashed",
    jobId: "j2",
    worker: "bad",
    amount: 5n,
    reason: "invalid_compute",
  });
  assert.equal(dishonest, null);
});

Deno.test("ChainChecker: an honest client paying a wrong result breaks honest-client-pays-accepted", () => {
  const c = new ChainChecker(cast, () => 0);
  c.event(submitted("j3"));
  c.event(verified("j3"));
  assert.equal(c.event(paid("j3", "bad"))?.invariant, "honest-client-pays-accepted");
  c.event(submitted("j4"));
  assert.equal(c.event(paid("j4", "w1"))?.invariant, "honest-client-pays-accepted", "unverified");
});

Deno.test("ChainChecker: the ledger's identities", () => {
  const c = new ChainChecker(cast, () => 0);
  const ok: LedgerTotals = {
    escrowed: 100n,
    paid: 80n,
    fees: 1n,
    refunded: 9n,
    locked: 10n,
    staked: 50n,
    slashed: 5n,
    withdrawn: 5n,
    bonded: 40n,
  };
  assert.equal(c.totals(ok), null);
  assert.equal(c.totals({ ...ok, paid: 81n })?.invariant, "money-conserved");
  assert.equal(c.totals({ ...ok, slashed: 6n })?.invariant, "stake-conserved");
});
