/**
 * `deno task node` wires `isBonded: (p) => node.isBonded(p)` into its libp2p host
 * (`startNode()`, `bondedBy()`): gossip authored by a peer that holds nothing at stake on chain
 * draws on the small unbonded budget (`network.unbondedRateLimit`), while an author that is
 * bonded on the ledger is not held to it. A real node from a config, a real ledger file, a real
 * libp2p rogue peer on loopback that signs with keys of its choosing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { LocalLedger } from "../chain/local_ledger.ts";
import { encodeMessage, TOPICS } from "../protocols/messages.ts";
import { parseConfig } from "../runtime/ops/mod.ts";
import { bondedBy, startNode } from "../runtime/ops/node/main.ts";
import { startRogue, waitFor } from "./adversarial/_harness.ts";

Deno.test("bondedBy() asks the node once it exists, and counts everyone bonded before", () => {
  let node: { isBonded(peer: string): boolean } | undefined = undefined;
  const isBonded = bondedBy(() => node);
  assert.equal(isBonded("p"), true);
  node = { isBonded: (peer) => peer === "staked" };
  assert.equal(isBonded("staked"), true);
  assert.equal(isBonded("p"), false);
});

Deno.test({
  name: "deno task node holds unbonded authors to their small budget, and bonded ones not",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "ciro-bonded-budget-" });
    const config = parseConfig({
      dataDir: `${dir}/node`,
      roles: ["worker"],
      chain: { kind: "local", path: `${dir}/ledger.sqlite` },
      worker: { stake: 100 },
      http: { enabled: false },
      capabilityIntervalMs: 0,
      network: { unbondedRateLimit: { capacity: 3, refillPerSecond: 0 } },
    });
    const running = await startNode(config, { init: true });
    const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
    const rogue = await startRogue(running.host);
    try {
      // Two authors behind one rogue host: its own key, staked on the ledger, and a fresh one.
      const bonded = rogue.host.self;
      await ledger.as(bonded).stake({ amount: 100n });
      const freshKey = await generateKeyPair("Ed25519");
      const unbonded = peerIdFromPrivateKey(freshKey).toString();
      // The node looks each author up once (counted bonded meanwhile): let both lookups land.
      await waitFor(
        "the node's view of both authors",
        () => running.node.isBonded(bonded) && !running.node.isBonded(unbonded),
      );
      const health = (node: string, at: number) =>
        encodeMessage(TOPICS.health, { type: "node.health", node, at, openJobs: 0 });
      for (let n = 0; n < 10; n++) {
        await rogue.inject(running.host.self, TOPICS.health, health(unbonded, n), freshKey);
      }
      await waitFor(
        "the unbonded author's messages",
        () => running.host.stats().unbondedLimited >= 7,
      );
      // The bonded author's ten each name another node: all reach the validator and are
      // rejected there (none is held back at the budget).
      const rejected = running.host.stats().rejected;
      for (let n = 0; n < 10; n++) {
        await rogue.inject(running.host.self, TOPICS.health, health("someone-else", n));
      }
      await waitFor(
        "the bonded author's messages",
        () => running.host.stats().rejected === rejected + 10,
      );
      assert.equal(running.host.stats().unbondedLimited, 7, "3 passed, 7 held back");
    } finally {
      await rogue.host.stop();
      await running.stop();
      ledger.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
