/**
 * Direct-protocol abuse: a rogue opens 20 payload streams and stalls them, floods snapshot
 * requests, and sends malformed payload requests. The victim serves at most two of its streams
 * at once, refuses the rest at once (no slot held), cuts the stalled ones at the idle timeout,
 * rate-limits the snapshot flood, and bans the rogue once its malformed or stalled streams
 * cross the rejection threshold. Meanwhile an honest client's snapshot request and payload
 * fetch succeed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Stream } from "@libp2p/interface";
import {
  fetchPayload,
  MemoryPayloadStore,
  PAYLOAD_PROTOCOL,
  payloadHash,
  servePayloads,
} from "../../protocols/payload_protocol.ts";
import {
  requestSnapshots,
  serveSnapshots,
  SNAPSHOT_PROTOCOL,
} from "../../protocols/snapshot_protocol.ts";
import { frame, sendAll } from "../../protocols/stream_framing.ts";
import { announcement, encoder, startMarket, startRogue, waitFor } from "./_harness.ts";

function refusals(refused: Readonly<Record<string, number>>): number {
  return Object.values(refused).reduce((sum, n) => sum + n, 0);
}

Deno.test({
  name: "adversarial: stalled, flooding and malformed direct streams are refused, cut and banned",
  fn: async () => {
    const market = await startMarket({
      maxRejections: 4,
      // Room for a loaded machine: an honest stream must not look idle while its reader waits.
      direct: { perPeerConcurrency: 2, perPeerBurst: 5, perPeerPerSecond: 1, idleTimeoutMs: 2_000 },
    });
    const { worker, client } = market;
    const store = new MemoryPayloadStore();
    const blob = encoder.encode("model bytes ".repeat(10_000));
    const blobHash = payloadHash(blob);
    await store.put(blobHash, blob);
    servePayloads(worker, store);
    serveSnapshots(worker, () => ({ jobs: [announcement("open-1", client.self)], bids: [] }));
    const rogue = await startRogue(worker);
    const stalled: Stream[] = [];
    try {
      const workerId = peerIdFromString(worker.self);
      // 20 payload streams that never send their request.
      for (let i = 0; i < 20; i++) {
        stalled.push(
          await rogue.host.libp2p.dialProtocol(workerId, PAYLOAD_PROTOCOL, {
            signal: AbortSignal.timeout(5_000),
          }),
        );
      }
      await waitFor("the refusals", () => (worker.direct.stats().refused.busy ?? 0) >= 18);
      // While the rogue holds its two slots, an honest client is served.
      const snapshot = await requestSnapshots(client, {
        fraction: 1,
        signal: AbortSignal.timeout(5_000),
      });
      // The client may also know the rogue (which serves no snapshots): the worker answered.
      assert.ok(snapshot.asked.includes(worker.self) && !snapshot.failed.includes(worker.self));
      assert.deepEqual(snapshot.jobs.map((job) => job.jobId), ["open-1"]);
      const fetched = await fetchPayload(client, worker.self, blobHash, { timeoutMs: 5_000 });
      assert.equal(fetched.byteLength, blob.byteLength);
      // The two admitted stalled streams are cut at the idle timeout.
      await waitFor(
        "the idle cuts",
        () => (worker.rejections.stats().byCode["idle_timeout"] ?? 0) >= 2,
        15_000,
      );
      assert.equal(worker.direct.stats().active, 0, "no slot is held after the cut");
      // A snapshot flood: two at a time, five in a burst, then one per second.
      const refusedBefore = refusals(worker.direct.stats().refused);
      const answers = await Promise.allSettled(
        Array.from(
          { length: 15 },
          () =>
            rogue.host.request(worker.self, SNAPSHOT_PROTOCOL, encoder.encode("{}"), {
              signal: AbortSignal.timeout(5_000),
            }),
        ),
      );
      const served = answers.filter((answer) => answer.status === "fulfilled").length;
      assert.ok(served <= 5, `${served} snapshot requests served`);
      assert.equal(refusals(worker.direct.stats().refused) - refusedBefore, 15 - served);
      // Malformed payload requests are charged until the rogue is banned.
      for (let i = 0; i < 10 && !worker.isBanned(rogue.host.self); i++) {
        await new Promise((resolve) => setTimeout(resolve, 1_050)); // a token for the next stream
        const stream = await rogue.host.libp2p.dialProtocol(workerId, PAYLOAD_PROTOCOL, {
          signal: AbortSignal.timeout(5_000),
        }).catch(() => undefined);
        if (stream === undefined) break;
        await sendAll(stream, frame(encoder.encode("not a hash")), AbortSignal.timeout(5_000))
          .catch(() => {});
        await stream.close().catch(() => {});
      }
      await waitFor("the ban", () => worker.isBanned(rogue.host.self), 5_000);
      assert.ok((worker.rejections.stats().byCode["bad_hash"] ?? 0) >= 1);
      await waitFor("the disconnect", () => !worker.peers().includes(rogue.host.self));
      // Honest traffic still flows.
      await market.announce("after-abuse");
      const again = await requestSnapshots(client, { fraction: 1 });
      assert.ok(again.asked.includes(worker.self) && !again.failed.includes(worker.self));
    } finally {
      for (const stream of stalled) stream.abort(new Error("test over"));
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});
