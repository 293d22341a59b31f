/**
 * Penalties that bite: the node's own ban (`host.ban`, what the peer actor's disconnect decision
 * calls) closes the connection and refuses the peer on every path until the ban's time is up,
 * then lets it back; authors that hold no bond draw on a small budget of their own.
 *
 * @module
 */
import assert from "node:assert/strict";
import { generateKeyPair, publicKeyToProtobuf } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import { encodeMessage, TOPICS } from "../../protocols/messages.ts";
import { forgeMessage } from "../../protocols/rogue_peer.ts";
import { serveSnapshots, SNAPSHOT_PROTOCOL } from "../../protocols/snapshot_protocol.ts";
import { encoder, startMarket, startRogue, waitFor } from "./_harness.ts";

Deno.test({
  name: "adversarial: a ban disconnects the peer, refuses it both ways until it expires, then not",
  fn: async () => {
    const market = await startMarket();
    const rogue = await startRogue(market.worker);
    try {
      const banMs = 3_000;
      const bannedAt = Date.now();
      market.worker.ban(rogue.host.self, "the node's peer actor decided to disconnect", banMs);
      await waitFor("the disconnect", () => !market.worker.peers().includes(rogue.host.self));
      // Refused both ways while the ban lasts (the attempts finish well inside 3 s).
      await assert.rejects(
        market.worker.dial(rogue.host.multiaddrs()[0]!, { signal: AbortSignal.timeout(1_000) }),
      );
      await rogue.host.dial(market.worker.multiaddrs()[0]!, { signal: AbortSignal.timeout(1_000) })
        .catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(market.worker.peers().includes(rogue.host.self), false);
      assert.ok(Date.now() - bannedAt < banMs, "the refusals were checked inside the ban");
      // After the ban, the peer may connect again.
      await new Promise((resolve) =>
        setTimeout(resolve, Math.max(0, bannedAt + banMs - Date.now()))
      );
      await market.worker.dial(rogue.host.multiaddrs()[0]!, { signal: AbortSignal.timeout(5_000) });
      await waitFor("the reconnect", () => market.worker.peers().includes(rogue.host.self));
      assert.equal(market.worker.isBanned(rogue.host.self), false);
      await market.announce("after-ban");
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});

Deno.test({
  name: "adversarial: authors without a bond get a small budget of their own, bonded ones do not",
  fn: async () => {
    let bonded = new Set<string>();
    const market = await startMarket({
      isBonded: (peer) => bonded.has(peer),
      unbondedRateLimit: { capacity: 3, refillPerSecond: 0 },
    });
    bonded = new Set([market.client.self, market.worker.self]);
    const rogue = await startRogue(market.worker);
    try {
      for (let n = 0; n < 10; n++) {
        const data = encodeMessage(TOPICS.health, {
          type: "node.health",
          node: rogue.host.self,
          at: n,
          openJobs: 0,
        });
        await rogue.inject(market.worker.self, TOPICS.health, data);
      }
      await waitFor("the rogue's messages", () => market.worker.stats().unbondedLimited === 7);
      const fromRogue = () =>
        market.workerSeen.filter((m) => m.type === "node.health" && m.node === rogue.host.self);
      await waitFor("three deliveries", () => fromRogue().length === 3);
      // A bonded client announces more than three jobs: none is held back.
      for (let i = 0; i < 6; i++) await market.announce(`bonded-${i}`);
      assert.equal(market.worker.stats().unbondedLimited, 7);
      assert.equal(market.worker.stats().rejected, 0, "over budget is ignored, not rejected");
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});

Deno.test({
  name:
    "adversarial: a malformed snapshot request is answered with an error and charged to its peer",
  fn: async () => {
    const market = await startMarket({ direct: { idleTimeoutMs: 300 } });
    serveSnapshots(market.worker, () => ({ jobs: [], bids: [] }));
    const rogue = await startRogue(market.worker);
    try {
      await assert.rejects(
        rogue.host.request(market.worker.self, SNAPSHOT_PROTOCOL, encoder.encode('{"since":0}')),
        { name: "ProtocolError", message: /unknown field "since"/ },
      );
      assert.equal(market.worker.stats().directRejected, 1);
      assert.equal(market.worker.rejections.stats().byCode["unknown_field"], 1);
      // A well-formed request from the same peer is still served.
      const answer = await rogue.host.request(
        market.worker.self,
        SNAPSHOT_PROTOCOL,
        encoder.encode("{}"),
      );
      assert.equal(new TextDecoder().decode(answer), '{"jobs":[],"bids":[]}');
      // A stalled request stream is cut at the idle timeout and charged.
      const stalled = await rogue.host.libp2p.dialProtocol(
        peerIdFromString(market.worker.self),
        SNAPSHOT_PROTOCOL,
      );
      await waitFor("the idle cut", () => market.worker.stats().directIdle === 1, 5_000);
      assert.equal(market.worker.rejections.stats().byCode["idle_timeout"], 1);
      assert.equal(market.worker.direct.stats().active, 0);
      stalled.abort(new Error("test over"));
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});

Deno.test({
  name: "adversarial: forged signatures cost gossipsub score until the peer is banned",
  fn: async () => {
    const market = await startMarket();
    const rogue = await startRogue(market.worker);
    try {
      const claimed = await generateKeyPair("Ed25519");
      const data = encodeMessage(TOPICS.health, {
        type: "node.health",
        node: rogue.host.self,
        at: 0,
        openJobs: 0,
      });
      for (let i = 0; i < 40 && !market.worker.isBanned(rogue.host.self); i++) {
        // Signed by the rogue's key, but claiming another author's key: the signature is forged.
        const message = await forgeMessage(TOPICS.health, data, rogue.key);
        rogue.injectForged(market.worker.self, [{
          ...message,
          from: peerIdFromPrivateKey(claimed).toMultihash().bytes,
          key: publicKeyToProtobuf(claimed.publicKey),
        }]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await waitFor("the ban", () => market.worker.isBanned(rogue.host.self), 10_000);
      assert.equal(market.worker.stats().rejected, 0, "gossipsub refused them, not the validator");
      assert.equal(market.worker.rejections.stats().byCode["graylisted"], 1);
      assert.equal(market.workerSeen.filter((m) => m.type === "node.health").length, 0);
      await waitFor("the disconnect", () => !market.worker.peers().includes(rogue.host.self));
      await market.announce("after-forgery");
    } finally {
      await Promise.all([market.stop(), rogue.host.stop()]);
    }
  },
});
