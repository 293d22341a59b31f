/**
 * Quiet peers: a node keeps a peer actor (and journals its heartbeats) only for the peers it
 * deals with: a job message accepted from it, or one refused. Connected peers it never dealt
 * with cost a map entry, not a journaled event per heartbeat, so a node's work for its
 * connections grows with its dealings, not with the network. Real nodes on the in-process
 * network (heartbeats on) and the local ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { announcementTopic, encodeMessage, shardOf, TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode, MemoryJournal } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";
import { until } from "./_poll.ts";

Deno.test("a node journals nothing for connected peers it never dealt with, and follows one once it does", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork({ heartbeatMs: 20 });
  const journal = new MemoryJournal();
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    journal,
    capabilityIntervalMs: 0,
    worker: { hardware: "cpu", stake: 100n },
  });
  const others = Array.from({ length: 5 }, (_, i) => network.join(`p${i}`));
  const peerEntries = () =>
    journal.entries.filter((e) => e.target.startsWith("peer:")).map((e) => e.target);
  try {
    await worker.start();
    for (const port of others) await port.start();
    // Many heartbeats later: five peers connected, none dealt with.
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(worker.peers(), []);
    assert.deepEqual(peerEntries(), []);
    // p0 announces a job: it deals with the worker now, and is followed from then on.
    const s = spec({ bidWindowMs: 10_000, verifierCount: 0 });
    await others[0]!.publish(
      announcementTopic(shardOf(s)),
      encodeMessage(TOPICS.jobs, {
        type: "job.announce",
        jobId: "j1",
        owner: "p0",
        attempt: 1,
        bidWindowEndsAt: Date.now() + 10_000,
        spec: s,
      } as never),
    );
    await until("p0's actor", 5_000, () => worker.peers().length > 0 ? true : undefined);
    assert.deepEqual(worker.peers().map((p) => p.peer), ["p0"]);
    assert.equal(
      worker.peers()[0]!.state,
      "active",
      "connected and identified as the network said",
    );
    await until(
      "p0's heartbeats",
      5_000,
      () =>
        journal.entries.some((e) => e.target === "peer:p0" && e.event.type === "peer.heartbeat")
          ? true
          : undefined,
    );
    assert.ok(peerEntries().every((t) => t === "peer:p0"), peerEntries().join());
  } finally {
    for (const port of others) await port.stop();
    await worker.stop();
    network.close();
    ledger.close();
  }
});
