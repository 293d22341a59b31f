/**
 * A node that joins late converges through the snapshot protocol: it hears of a job announced
 * before it subscribed, and bids on it in time.
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";

const until = async (check: () => boolean, what: string, ms = 5_000) => {
  for (const end = Date.now() + ms; !check();) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

Deno.test("a late joiner learns open jobs from a snapshot and bids on them", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const worker = (id: string) =>
    createNode({
      id,
      roles: ["worker"],
      network: network.join(id),
      chain: ledger.as(id),
      worker: { hardware: "cpu", stake: 100n },
      capabilityIntervalMs: 0,
    });
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    chain: ledger.as("client"),
    capabilityIntervalMs: 0,
  });
  const early = worker("early");
  const late = worker("late");
  try {
    await client.start();
    await early.start();
    // No verifier here: an unverified job, which the chain escrows without any.
    const jobId = client.submitJob({
      spec: spec({ bidWindowMs: 3_000, maxPrice: 100n, verifierCount: 0 }),
    });
    await until(
      () => Object.keys(client.job(jobId)?.context.bids ?? {}).length === 1,
      "the early bid",
    );
    assert.equal(client.snapshot().jobs.length, 1, "the owner serves its open job");
    assert.equal(client.snapshot().bids.length, 1);

    await late.start();
    assert.equal(late.job(jobId), undefined, "gossip before it subscribed never reached it");
    const got = await late.requestSnapshot({ fraction: 1 });
    assert.equal(got.jobs, 1);
    assert.equal(late.job(jobId)?.state, "bidding");
    assert.equal(
      late.job(jobId)?.context.deadlines.bid_window,
      client.job(jobId)?.context.deadlines.bid_window,
      "the owner's window",
    );
    await until(
      () => Object.keys(client.job(jobId)?.context.bids ?? {}).length === 2,
      "the late bid",
    );
    assert.deepEqual(Object.values(client.job(jobId)!.context.bids).map((b) => b.worker).sort(), [
      "early",
      "late",
    ]);
  } finally {
    for (const n of [client, early, late]) await n.stop();
    ledger.close();
  }
});
