/**
 * A flood on a topic the victim does not subscribe to (another announcement shard, a direct
 * topic gossiped) meets the same boundary as one on its own topics: the rate limit and its
 * flood ban. Without a validator for it, gossipsub would have taken every message as valid and
 * the flood would have cost the sender nothing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createLibp2pHost } from "../../protocols/libp2p_host.ts";
import { announcementTopic, TOPICS } from "../../protocols/messages.ts";
import { forgeMessage } from "../../protocols/rogue_peer.ts";
import { HONEST, startRogue, waitFor } from "./_harness.ts";

Deno.test({
  name: "adversarial: a flood on a shard the victim does not hear is rate-limited and banned",
  fn: async () => {
    const victim = await createLibp2pHost({
      listen: HONEST,
      heartbeatMs: 0,
      trustedRanges: ["127.0.0.1/32"],
      rateLimit: { capacity: 10, refillPerSecond: 5 },
    });
    // The victim hears CPU matmul jobs only; the rogue floods the GPU shard.
    victim.subscribe(
      announcementTopic({ hardware: "cpu", kind: "matmul" }),
      () => "accept",
      () => {},
    );
    victim.subscribe(TOPICS.health, () => "accept", () => {});
    const rogue = await startRogue(victim);
    try {
      const shard = announcementTopic({ hardware: "gpu", kind: "matmul" });
      const forged = [];
      for (let i = 0; i < 200; i++) {
        forged.push(await forgeMessage(shard, new TextEncoder().encode(`{"n":${i}}`), rogue.key));
      }
      for (let i = 0; i < forged.length && !victim.isBanned(rogue.host.self); i += 20) {
        rogue.injectForged(victim.self, forged.slice(i, i + 20));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      await waitFor("the flood ban", () => victim.isBanned(rogue.host.self));
      assert.ok(victim.stats().rateLimited > 0, JSON.stringify(victim.stats()));
    } finally {
      await Promise.all([victim.stop(), rogue.host.stop()]);
    }
  },
});
