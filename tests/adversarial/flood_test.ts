/**
 * Flood: ten rogue peers (ten keys) send valid, signed `node.health` messages at 100 times the
 * victim's per-peer rate limit for two seconds. The victim delivers each rogue no more than its
 * budget (burst plus refill), ignores what is over it at the rate limiter without validating
 * it, bans each rogue for flooding once its excess is used (its connection is closed, so most
 * of its flood is never decoded), and honest announcements keep getting bids during the flood.
 *
 * @module
 */
import assert from "node:assert/strict";
import { encodeMessage, TOPICS } from "../../protocols/messages.ts";
import { forgeMessage, type RoguePeer } from "../../protocols/rogue_peer.ts";
import { startMarket, startRogue, waitFor } from "./_harness.ts";

const CAPACITY = 10;
const REFILL = 5;
const ROGUES = 10;
const FLOOD_MS = 2_000;
/** 100 times the sustained rate, per rogue. */
const RATE = 100 * REFILL;

Deno.test({
  name: "adversarial: ten keys flooding at 100x the rate limit are held to their budget, bids flow",
  fn: async () => {
    const market = await startMarket({
      rateLimit: { capacity: CAPACITY, refillPerSecond: REFILL },
    });
    const rogues: RoguePeer[] = [];
    try {
      for (let i = 0; i < ROGUES; i++) rogues.push(await startRogue(market.worker));
      // Forge the flood up front: valid health messages, each signed by its rogue.
      const perRogue = Math.ceil((RATE * FLOOD_MS) / 1_000);
      const batches = await Promise.all(rogues.map(async (rogue) => {
        const messages = [];
        for (let n = 0; n < perRogue; n++) {
          const data = encodeMessage(TOPICS.health, {
            type: "node.health",
            node: rogue.host.self,
            at: n,
            openJobs: 0,
          });
          messages.push(await forgeMessage(TOPICS.health, data, rogue.key));
        }
        return messages;
      }));
      const started = performance.now();
      const flood = (async () => {
        // Every 100 ms, each rogue sends its next 100 ms worth (50 messages) in one frame.
        const slices = FLOOD_MS / 100;
        const perSlice = Math.ceil(perRogue / slices);
        for (let s = 0; s < slices; s++) {
          rogues.forEach((rogue, i) => {
            rogue.injectForged(
              market.worker.self,
              batches[i]!.slice(s * perSlice, (s + 1) * perSlice),
            );
          });
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) latencies.push(await market.announce(`during-${i}`, 15_000));
      await flood;
      // Every rogue is banned for flooding, and only after it used its excess (five bursts).
      await waitFor(
        "every rogue to be banned for flooding",
        () => rogues.every((rogue) => market.worker.isBanned(rogue.host.self)),
        60_000, // 18 s at a load average of 38 on 2 cores
      );
      const bannedAfter = (performance.now() - started) / 1_000;
      // Give the last frames time to arrive, then count.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const elapsed = (performance.now() - started) / 1_000;
      const stats = market.worker.stats();
      const sent = ROGUES * perRogue;
      assert.equal(stats.floodBans, ROGUES);
      // The bans cut the rogues off: most of the flood never reached the rate limiter.
      assert.ok(stats.rateLimited < sent / 2, `${stats.rateLimited} of ${sent} processed`);
      assert.ok(
        stats.rateLimited >= ROGUES * 5 * CAPACITY,
        `${stats.rateLimited} rate limited: each rogue used its excess before its ban`,
      );
      for (const rogue of rogues) {
        const delivered = market.workerSeen.filter((m) =>
          m.type === "node.health" && m.node === rogue.host.self
        ).length;
        const budget = CAPACITY + REFILL * (elapsed + 1);
        assert.ok(delivered <= budget, `${delivered} delivered, budget ${budget}`);
        assert.ok(delivered >= CAPACITY, `${delivered} delivered: the burst is allowed`);
      }
      assert.equal(stats.rejected, 0, "valid messages over the limit are ignored, not rejected");
      console.log(
        `flood of ${sent} messages from ${ROGUES} keys: ${stats.rateLimited} rate limited, ` +
          `${stats.floodBans} keys banned for flooding within ${bannedAfter.toFixed(1)} s; ` +
          `announcement-to-bid during the flood ${
            latencies.map((l) => l.toFixed(0)).join(", ")
          } ms`,
      );
    } finally {
      await Promise.all([market.stop(), ...rogues.map((rogue) => rogue.host.stop())]);
    }
  },
});

Deno.test({
  name: "adversarial: a burst within the rate limit fills only its sender's ingress queue",
  fn: async () => {
    // A generous rate limit, a small ingress queue per peer, and a slow node: one delivery per
    // turn of the event loop, each taking 2 ms.
    const market = await startMarket({
      rateLimit: { capacity: 10_000, refillPerSecond: 10_000 },
      ingress: { perPeer: 5, batch: 1 },
    });
    const order: string[] = [];
    market.worker.subscribe(TOPICS.health, () => "accept", (message) => {
      order.push(`rogue:${message.from}`);
      const until = performance.now() + 2;
      while (performance.now() < until) { /* a slow subscriber */ }
    });
    market.worker.subscribe(TOPICS.jobs, () => "accept", () => order.push("honest"));
    const rogue = await startRogue(market.worker);
    try {
      const messages = [];
      for (let n = 0; n < 300; n++) {
        const data = encodeMessage(TOPICS.health, {
          type: "node.health",
          node: rogue.host.self,
          at: n,
          openJobs: 0,
        });
        messages.push(await forgeMessage(TOPICS.health, data, rogue.key));
      }
      // One frame: gossipsub validates all of it before the first message is queued, so the
      // rogue's queue (5) takes the first ones and the rest are dropped.
      rogue.injectForged(market.worker.self, messages);
      await market.announce("during-burst");
      const position = order.indexOf("honest");
      const rogueBefore = order.slice(0, position).length;
      assert.ok(rogueBefore <= 10, `${rogueBefore} rogue messages delivered before the honest one`);
      // Every rogue message is accounted for: delivered, or ignored because its queue was full.
      const fromRogue = () => order.filter((entry) => entry.startsWith("rogue:")).length;
      await waitFor(
        "the burst to be accounted for",
        () => fromRogue() + market.worker.stats().queueFull === 300,
      );
      assert.ok(market.worker.stats().queueFull > 0, "the rogue's queue overflowed");
      assert.ok(fromRogue() < 300, `${fromRogue()} of 300 delivered`);
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});
