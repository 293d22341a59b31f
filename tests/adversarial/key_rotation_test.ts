/**
 * Fuzz with key rotation: a rogue on 127.0.0.2 sends fuzzed gossip (fast-check, fixed seed)
 * signed by a fresh key every few messages, and comes back under a fresh peer id every 10
 * rejected messages, below the per-peer ban threshold (20). The rejections of all its peer ids
 * count against its IP address, which is banned after 20: its connection is closed and the
 * victim refuses to dial the address again. Honest jobs get bids between and after the rounds.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLibp2pHost } from "../../protocols/libp2p_host.ts";
import { isDirectTopic, TOPICS } from "../../protocols/messages.ts";
import { KeyRing } from "../../protocols/rogue_peer.ts";
import { fuzzCase, type Target } from "./_fuzz.ts";
import { JOBS, startMarket, startRogue, waitFor } from "./_harness.ts";

// What is gossiped in protocol v2 (announcements go on a shard; the rest is sent directly).
const GOSSIP = Object.values(TOPICS).filter((t) => !isDirectTopic(t)) as Target[];
const topicOf = (target: Target) => target === TOPICS.jobs ? JOBS : target;

Deno.test({
  name:
    "adversarial: fuzz from fresh keys and fresh peer ids on one IP gets the IP banned, bids flow",
  fn: async () => {
    const market = await startMarket({ maxRejections: 20, maxRejectionsPerIp: 20 });
    // Invalid cases only: each one is a rejection the victim must count.
    const cases = fc.sample(
      fc.constantFrom(...GOSSIP).chain(fuzzCase).filter((c) => c.expect !== "accept"),
      { seed: 1313, numRuns: 200 },
    );
    const keys = await KeyRing.create(20, 3);
    const rogues: string[] = [];
    let next = 0;
    try {
      await market.announce("before");
      for (let round = 0; round < 10; round++) {
        if (market.worker.isIpBanned("127.0.0.2")) break;
        const rogue = await startRogue(market.worker);
        rogues.push(rogue.host.self);
        try {
          const before = market.worker.stats().rejected;
          for (let i = 0; i < 10; i++) {
            const c = cases[next++ % cases.length]!;
            await rogue.inject(market.worker.self, topicOf(c.target), c.bytes, keys.next());
          }
          await waitFor(
            `round ${round}'s rejections`,
            () =>
              market.worker.stats().rejected >= before + 10 ||
              market.worker.isIpBanned("127.0.0.2"),
          );
        } finally {
          await rogue.host.stop();
        }
        await market.announce(`between-${round}`);
      }
      assert.equal(market.worker.isIpBanned("127.0.0.2"), true, "the rogue's address is banned");
      assert.equal(market.worker.stats().ipBans, 1);
      // Three peer ids were needed (10 + 10 + 1 rejections), none of them over its own budget.
      assert.equal(rogues.length, 3);
      assert.equal(market.worker.stats().bans, 0, "no single peer id crossed its own threshold");
      // The ban falls on the 21st; what was already in flight on the closing stream may follow.
      const rejected = market.worker.stats().rejected;
      assert.ok(rejected >= 21 && rejected <= 30, `${rejected} rejected`);
      assert.ok(market.workerSeen.every((m) => m.type !== "node.health" || m.node !== rogues[0]));
      // A fourth identity from the same address is refused: the victim will not dial it.
      const fourth = await startRogueRefused(market.worker);
      assert.equal(fourth, "refused");
      for (let i = 0; i < 3; i++) await market.announce(`after-${i}`);
      assert.equal(market.worker.isBanned(market.client.self), false);
      assert.equal(
        market.worker.isIpBanned("127.0.0.1"),
        false,
        "the trusted range is never banned",
      );
    } finally {
      await market.stop();
    }
  },
});

/** Dials a fresh rogue on 127.0.0.2: "refused" when the victim's gater denies the dial itself. */
async function startRogueRefused(
  victim: Awaited<ReturnType<typeof startMarket>>["worker"],
): Promise<string> {
  const host = await createLibp2pHost({ listen: ["/ip4/127.0.0.2/tcp/0"], heartbeatMs: 0 });
  try {
    await victim.dial(host.multiaddrs()[0]!, { signal: AbortSignal.timeout(5_000) });
    return "connected";
  } catch (error) {
    // Denied by the gater before any byte is sent (not connected and then hung up on).
    return (error as Error).name === "DialDeniedError" ? "refused" : (error as Error).name;
  } finally {
    await host.stop();
  }
}
