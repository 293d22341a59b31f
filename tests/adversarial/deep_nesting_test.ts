/**
 * Deep nesting: a rogue sends `job.result` messages whose `output` is JSON nested 4,000 deep
 * (8 KB, under the size limit) to the victim directly (results are direct messages in protocol
 * v2). The victim refuses every one at decode with `too_deep`, delivers none, bans the rogue,
 * and honest jobs keep getting bids.
 *
 * @module
 */
import assert from "node:assert/strict";
import { TOPICS } from "../../protocols/messages.ts";
import { encoder, HASH, rejectedWith, startMarket, startRogue, waitFor } from "./_harness.ts";

Deno.test({
  name: "adversarial: a result nested 4,000 deep is refused at decode, the rogue banned, bids flow",
  fn: async () => {
    const market = await startMarket({ maxRejections: 20 });
    const rogue = await startRogue(market.worker);
    try {
      await market.announce("before-attack");
      const deep = encoder.encode(
        `{"type":"job.result","jobId":"j1","worker":"w1","commitment":"${HASH}","output":${
          "[".repeat(4_000)
        }${"]".repeat(4_000)}}`,
      );
      assert.ok(deep.byteLength < 64 * 1024);
      let sent = 0;
      for (let i = 0; i < 30 && !market.worker.isBanned(rogue.host.self); i++) {
        // Each is refused to the sender's face, and counted against it.
        await assert.rejects(rogue.host.send(market.worker.self, TOPICS.results, deep));
        sent++;
      }
      await waitFor("the ban", () => market.worker.isBanned(rogue.host.self));
      assert.ok(sent >= 21, `${sent} sent`);
      assert.equal(rejectedWith(market.worker, "too_deep"), 21);
      assert.equal(
        market.workerSeen.filter((m) => m.type === "job.result").length,
        0,
        "no deep message is delivered",
      );
      await waitFor(
        "the rogue to be disconnected",
        () => !market.worker.peers().includes(rogue.host.self),
      );
      // Honest traffic is unaffected.
      for (let i = 0; i < 3; i++) await market.announce(`after-attack-${i}`);
      assert.equal(market.worker.isBanned(market.client.self), false);
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});
