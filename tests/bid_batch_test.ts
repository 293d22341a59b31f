/**
 * Bids and attestations that reach an owner in one turn enter the job as one journaled event
 * (`runtime/kernel/batcher.ts`, job machine version 6), on a real client node and a real local
 * ledger: the wire stays one message per bid, a bid bad on the wire is rejected and scored alone,
 * a bid the machine refuses is refused and recorded alone, the others go on; one that arrives
 * alone is journaled as before; a withdrawal never overtakes its bid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { DEFAULT_POLICY } from "../machines/policies.ts";
import type { BidOffer } from "../machines/types.ts";
import { TOPICS } from "../protocols/messages.ts";
import { lifecycleSpec, MarketPort } from "../runtime/bench/bench_lifecycle.ts";
import { createNode, MemoryJournal } from "../runtime/kernel/mod.ts";

const WORKERS = ["w1", "w2", "w3", "w4", "w5", "w6"];

function offer(worker: string, price: bigint, extra: Partial<BidOffer> = {}) {
  return {
    type: "bid.submit" as const,
    bidId: `job-1.1.${worker}`,
    jobId: "job-1",
    worker,
    price,
    etaMs: 100,
    stake: 100n,
    reputation: 500,
    hardware: "cpu" as const,
    ...extra,
  };
}

/** A client node on a market port and a local ledger, journaling to memory. */
function clientNode() {
  const ledger = LocalLedger.open(":memory:");
  const port = new MarketPort("client");
  const journal = new MemoryJournal();
  const node = createNode({
    id: "client",
    roles: ["client"],
    network: port,
    chain: ledger.as("client"),
    journal,
    capabilityIntervalMs: 0,
    retainFinishedMs: null,
    // The owner weighs bids the same under either settlement; legacy needs no bonded verifiers.
    policy: { ...DEFAULT_POLICY, settlement: "legacy" },
  });
  return { ledger, port, journal, node };
}

/** Lets the microtasks and a macrotask run: what was injected is delivered. */
const turn = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("a client node journals the bids that arrive together as one event, and judges each alone", async () => {
  const { ledger, port, journal, node } = clientNode();
  let announced = false;
  port.onPublish = (topic) => {
    if (topic.startsWith(TOPICS.jobs)) announced = true;
  };
  try {
    for (const w of WORKERS) await ledger.as(w).stake({ amount: 100n });
    await node.start();
    for (const w of WORKERS) port.connect(w);
    // The window never closes during the test: the bids are all in well before (wide margin).
    node.submitJob({ spec: { ...lifecycleSpec(), bidWindowMs: 600_000 }, jobId: "job-1" });
    for (let i = 0; i < 500 && !(announced && node.job("job-1")?.state === "bidding"); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(node.job("job-1")?.state, "bidding", node.job("job-1")?.context.failure ?? "");
    const from = journal.entries.length;

    // One turn: five bids on the wire, one of them forged (w3 sends a bid naming w4).
    port.inject(TOPICS.bids, "w1", offer("w1", 600n));
    port.inject(TOPICS.bids, "w2", offer("w2", 5_000n)); // above the maximum price
    port.inject(TOPICS.bids, "w3", offer("w4", 500n, { bidId: "job-1.1.forged" }));
    port.inject(TOPICS.bids, "w4", offer("w4", 700n));
    port.inject(TOPICS.bids, "w1", offer("w1", 400n)); // the same bid again
    await turn();
    const entries = journal.entries.slice(from);
    const batches = entries.filter((e) => e.event.type === "bids.received");
    assert.equal(batches.length, 1, JSON.stringify(entries.map((e) => e.event.type)));
    assert.equal(entries.filter((e) => e.event.type === "bid.received").length, 0);
    const carried = (batches[0]!.event["bids"] as BidOffer[]).map((b) => [b.worker, b.price]);
    assert.deepEqual(carried, [["w1", 600n], ["w2", 5_000n], ["w4", 700n], ["w1", 400n]]);
    // The forged one never reached the job: rejected at the wire, its sender alone scored.
    const scored = entries.filter((e) => e.event.type === "peer.scored");
    assert.deepEqual(scored.map((e) => e.target), ["peer:w3"]);
    const bids = node.job("job-1")!.context.bids;
    assert.deepEqual(
      Object.values(bids).map((b) => [b.worker, b.price, b.status, b.reason]),
      [["w1", 600n, "open", null], ["w2", 5_000n, "rejected", "price_above_max"], [
        "w4",
        700n,
        "open",
        null,
      ]],
    );

    // A bid that arrives alone is journaled as it came.
    const quiet = journal.entries.length;
    port.inject(TOPICS.bids, "w5", offer("w5", 650n));
    await turn();
    assert.deepEqual(
      journal.entries.slice(quiet).filter((e) => e.target === "job:job-1").map((e) => e.event.type),
      ["bid.received"],
    );

    // A bid and its withdrawal in one turn: the withdrawal comes after the bid.
    port.inject(TOPICS.bids, "w6", offer("w6", 650n));
    port.inject(TOPICS.bids, "w6", {
      type: "bid.withdraw",
      bidId: "job-1.1.w6",
      jobId: "job-1",
      worker: "w6",
    });
    await turn();
    assert.equal(node.job("job-1")!.context.bids["job-1.1.w6"]?.status, "withdrawn");
  } finally {
    await node.stop();
    ledger.close();
  }
});

Deno.test("bids that arrived in the turn a client node stops in are journaled before it closes", async () => {
  const { ledger, port, journal, node } = clientNode();
  let stopped: Promise<void> | undefined;
  try {
    for (const w of WORKERS) await ledger.as(w).stake({ amount: 100n });
    await node.start();
    for (const w of WORKERS) port.connect(w);
    node.submitJob({ spec: { ...lifecycleSpec(), bidWindowMs: 600_000 }, jobId: "job-1" });
    for (let i = 0; i < 500 && node.job("job-1")?.state !== "bidding"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(node.job("job-1")?.state, "bidding");
    port.inject(TOPICS.bids, "w1", offer("w1", 600n));
    port.inject(TOPICS.bids, "w2", offer("w2", 700n));
    // The stop comes after both bids are received and before the batch's end of turn.
    queueMicrotask(() => stopped = node.stop());
    await turn();
    await stopped;
    const batch = journal.entries.find((e) => e.event.type === "bids.received");
    assert.ok(batch, JSON.stringify(journal.entries.map((e) => e.event.type)));
    assert.equal((batch.event["bids"] as BidOffer[]).length, 2);
  } finally {
    await (stopped ?? node.stop());
    ledger.close();
  }
});
