import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { BondDirectory } from "./bond_directory.ts";
import { simulatedClock } from "./clock.ts";

Deno.test("BondDirectory: stake or an escrow seen counts as bonded; a fresh key is looked up once, then throttled", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    await ledger.as("worker").stake({ amount: 100n });
    const clock = simulatedClock(0);
    const bonds = new BondDirectory({ chain: ledger.as("reader"), clock, ttlMs: 1_000 });
    // Unknown yet: given the benefit of the doubt while the stake is looked up.
    assert.equal(bonds.isBonded("worker"), true);
    assert.equal(bonds.isBonded("fresh-key"), true);
    assert.equal(bonds.isBonded("client"), true);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(bonds.isBonded("worker"), true, "staked");
    assert.equal(bonds.isBonded("fresh-key"), false, "nothing at stake");
    assert.equal(bonds.isBonded("client"), false, "no stake, no escrow seen yet");
    // The client escrows a job: it has something at stake.
    bonds.saw({
      name: "JobSubmitted",
      jobId: "j1",
      client: "client",
      amount: 10n,
      modelHash: "0".repeat(64),
      inputCommitment: "0".repeat(64),
      minStake: 0n,
      verifierCount: 0,
      bidWindowMs: 60_000,
      executionMs: 600_000,
      verificationMs: 600_000,
      blockNumber: 1,
      blockHash: "0x1",
      txHash: "0x2",
      eventIndex: 0,
    });
    assert.equal(bonds.isBonded("client"), true);
    // Answers expire: a key that stakes later is bonded after its next lookup.
    await ledger.as("fresh-key").stake({ amount: 5n });
    assert.equal(bonds.isBonded("fresh-key"), false, "cached");
    clock.increment(1_001);
    bonds.isBonded("fresh-key");
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(bonds.isBonded("fresh-key"), true);
  } finally {
    ledger.close();
  }
});

Deno.test("BondDirectory: a worker's reputation is the chain's latest ReputationUpdated", () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    const bonds = new BondDirectory({ chain: ledger.as("reader"), clock: simulatedClock(0) });
    assert.equal(bonds.reputationOf("w1"), undefined, "not reported yet");
    const update = (score: number) => ({
      name: "ReputationUpdated" as const,
      worker: "w1",
      score,
      blockNumber: 1,
      blockHash: "0x1",
      txHash: "0x2",
      eventIndex: 0,
    });
    bonds.saw(update(400));
    bonds.saw(update(300));
    assert.equal(bonds.reputationOf("w1"), 300);
  } finally {
    ledger.close();
  }
});

Deno.test("BondDirectory: a slash or a withdrawal takes a worker's stake below a job's minimum", () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    const bonds = new BondDirectory({ chain: ledger.as("reader"), clock: simulatedClock(0) });
    const at = { blockNumber: 1, blockHash: "0x1", txHash: "0x2", eventIndex: 0 };
    bonds.saw({ name: "WorkerStaked", worker: "w1", amount: 100n, total: 100n, ...at });
    bonds.saw({ name: "WorkerStaked", worker: "w2", amount: 100n, total: 100n, ...at });
    assert.equal(bonds.stakedWorkers(60n), 2);
    bonds.saw({
      name: "WorkerSlashed",
      jobId: "j1",
      worker: "w1",
      amount: 50n,
      reason: "invalid_compute",
      ...at,
    });
    assert.equal(bonds.stakedWorker("w1", 60n), false, "50 left of 100");
    assert.equal(bonds.stakedWorker("w1", 50n), true);
    bonds.saw({ name: "StakeWithdrawn", worker: "w2", amount: 100n, ...at });
    assert.equal(bonds.stakedWorker("w2", 1n), false, "nothing left");
    assert.equal(bonds.stakedWorkers(60n), 0);
  } finally {
    ledger.close();
  }
});
