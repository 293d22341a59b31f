/**
 * An owner samples its auctions by the workers it knows could run them (capabilities heard, stake
 * seen on chain), and keeps that count between announcements (counting walks every known worker):
 * a capability heard or a stake seen since makes it count again, on a real client node and a real
 * local ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { DEFAULT_POLICY } from "../machines/policies.ts";
import { TOPICS } from "../protocols/messages.ts";
import { sampleBitsFor } from "../protocols/sampling.ts";
import { lifecycleSpec, MarketPort, workerName } from "../runtime/bench/bench_lifecycle.ts";
import { createNode } from "../runtime/kernel/mod.ts";

Deno.test("an owner counts its sample's workers again when a capability or a stake has changed since", async () => {
  // No unbonding delay: a worker may withdraw its stake at once (the count's last step).
  const ledger = LocalLedger.open(":memory:", { unbondingMs: 0 });
  const port = new MarketPort("client");
  const samples = new Map<string, number>();
  const decoder = new TextDecoder();
  port.onPublish = (topic, data) => {
    if (!topic.startsWith(TOPICS.jobs) || topic.endsWith("/all")) return;
    const m = JSON.parse(decoder.decode(data)) as { jobId: string; sample?: number };
    samples.set(m.jobId, m.sample ?? 0);
  };
  const node = createNode({
    id: "client",
    roles: ["client"],
    network: port,
    chain: ledger.as("client"),
    capabilityIntervalMs: 0,
    retainFinishedMs: null,
    policy: { ...DEFAULT_POLICY, settlement: "legacy" },
  });
  const hear = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      port.inject(TOPICS.capabilities, workerName(i), {
        type: "node.capabilities",
        node: workerName(i),
        roles: ["worker"],
        hardware: "cpu",
        models: [],
      });
    }
  };
  const stake = async (from: number, to: number) => {
    for (let i = from; i < to; i++) await ledger.as(workerName(i)).stake({ amount: 100n });
  };
  /**
   * Submits `jobId` and waits (bounded, wide) for its announcement; its sample's depth. The job is
   * announced once the chain's event of its escrow reaches the node, so every stake committed
   * before it has been seen by then (a subscription hands events in order).
   */
  const announce = async (jobId: string) => {
    node.submitJob({ spec: { ...lifecycleSpec(), bidWindowMs: 600_000 }, jobId });
    for (let i = 0; i < 1_000 && !samples.has(jobId); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(samples.has(jobId), `${jobId} was announced`);
    return samples.get(jobId);
  };
  try {
    await stake(0, 8);
    await node.start();
    hear(0, 64);
    // 64 workers heard, 8 of them staked: 8 capable, no sampling.
    assert.equal(sampleBitsFor(8), 0);
    assert.equal(await announce("a"), 0);
    assert.equal(await announce("b"), 0, "counted once, the same");
    // The other 56 stake: the next auction counts 64.
    await stake(8, 64);
    assert.equal(await announce("c"), sampleBitsFor(64));
    assert.equal(sampleBitsFor(64), 3);
    // 64 more stake, not heard of: still 64 capable. Once heard, 128.
    await stake(64, 128);
    assert.equal(await announce("d"), 3);
    hear(64, 128);
    assert.equal(await announce("e"), sampleBitsFor(128));
    assert.equal(sampleBitsFor(128), 4);
    // 64 withdraw their stake: 64 capable again.
    for (let i = 64; i < 128; i++) {
      await ledger.as(workerName(i)).requestUnstake({ amount: 100n });
      await ledger.as(workerName(i)).withdraw();
    }
    assert.equal(await announce("f"), sampleBitsFor(64));
  } finally {
    await node.stop();
    ledger.close();
  }
});
