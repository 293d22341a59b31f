/**
 * One rejection, one count and one log line: the node's ingress reports a message it refuses
 * through `host.reject` with its own code (a wire error's, or `rule_violation`) and then tells
 * gossipsub `reject`. The host must not count that message a second time as `invalid`, or a peer
 * would be banned at half its budget and every rejection logged twice.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createLibp2pHost } from "../../protocols/libp2p_host.ts";
import { encodeMessage, TOPICS } from "../../protocols/messages.ts";
import { forgeMessage } from "../../protocols/rogue_peer.ts";
import { HONEST, startRogue, waitFor } from "./_harness.ts";

Deno.test({
  name: "adversarial: a rejection the validator reported through host.reject counts once",
  fn: async () => {
    const victim = await createLibp2pHost({
      listen: HONEST,
      heartbeatMs: 0,
      trustedRanges: ["127.0.0.1/32"],
      maxRejections: 3,
    });
    // As the node's ingress does: report the rule the message broke, then reject it.
    victim.subscribe(TOPICS.health, (message) => {
      victim.reject(message.from, message.topic, "rule_violation", "Health of another node");
      return "reject";
    }, () => {});
    const rogue = await startRogue(victim);
    try {
      const forged = [];
      for (let i = 0; i < 4; i++) {
        const data = encodeMessage(TOPICS.health, {
          type: "node.health",
          node: "someone-else",
          at: i,
          openJobs: 0,
        });
        forged.push(await forgeMessage(TOPICS.health, data, rogue.key));
      }
      rogue.injectForged(victim.self, forged.slice(0, 3));
      await waitFor(
        "three rejections",
        () => (victim.rejections.stats().byCode["rule_violation"] ?? 0) >= 3,
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(victim.rejections.stats().byCode, { rule_violation: 3 });
      assert.equal(victim.isBanned(rogue.host.self), false, "three rejections: within 3");
      rogue.injectForged(victim.self, forged.slice(3));
      await waitFor("the ban", () => victim.isBanned(rogue.host.self));
    } finally {
      await Promise.all([victim.stop(), rogue.host.stop()]);
    }
  },
});
