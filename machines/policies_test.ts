import assert from "node:assert/strict";
import fc from "fast-check";
import { bid } from "../tests/_drive.ts";
import { quorumOutcome, rankBids, selectVerifiers } from "./policies.ts";

Deno.test("rankBids() orders by each policy with stable tie-breaks", () => {
  const bids = [
    bid("a", 50n, { bidId: "a", etaMs: 900, reputation: 100 }),
    bid("b", 40n, { bidId: "b", etaMs: 500, reputation: 900 }),
    bid("c", 60n, { bidId: "c", etaMs: 100, reputation: 500 }),
  ];
  assert.deepEqual(rankBids(bids, "lowest_price", 100n).map((b) => b.bidId), ["b", "a", "c"]);
  assert.deepEqual(rankBids(bids, "fastest", 100n).map((b) => b.bidId), ["c", "b", "a"]);
  assert.equal(rankBids(bids, "best_value", 100n)[0]!.bidId, "b");
});

Deno.test("quorumOutcome() under bft accepts at 2f + 1 valid and disputes at f + 1 invalid", () => {
  assert.equal(quorumOutcome("bft", 4, ["valid", "valid"]), "pending");
  assert.equal(quorumOutcome("bft", 4, ["valid", "valid", "valid"]), "accepted");
  assert.equal(quorumOutcome("bft", 4, ["invalid"]), "pending");
  assert.equal(quorumOutcome("bft", 4, ["invalid", "valid", "invalid"]), "rejected");
  assert.equal(quorumOutcome("bft", 1, ["valid"]), "accepted");
  assert.equal(quorumOutcome("unanimous", 4, ["valid", "valid", "valid"]), "pending");
  assert.equal(quorumOutcome("unanimous", 4, ["invalid"]), "rejected");
  assert.equal(quorumOutcome("majority", 4, ["valid", "valid", "valid"]), "accepted");
});

Deno.test("quorumOutcome() never both accepts and disputes the same votes (bft, n >= 3f + 1)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 13 }),
      fc.array(fc.boolean(), { maxLength: 13 }),
      (n, votes) => {
        const verdicts = votes.slice(0, n).map((
          v,
        ): "valid" | "invalid" => (v ? "valid" : "invalid"));
        const outcome = quorumOutcome("bft", n, verdicts);
        const f = Math.floor((n - 1) / 3);
        const valid = verdicts.filter((v) => v === "valid").length;
        if (outcome === "accepted") return valid >= 2 * f + 1;
        if (outcome === "rejected") return verdicts.length - valid >= f + 1 && valid < 2 * f + 1;
        return true;
      },
    ),
  );
});

Deno.test("selectVerifiers() is deterministic, excludes the worker, and spreads over the pool", () => {
  const pool = ["v1", "v2", "v3", "v4", "v5", "v6", "w1"];
  const a = selectVerifiers(pool, 4, ["w1"], "j1/1");
  assert.deepEqual(a, selectVerifiers([...pool].reverse(), 4, ["w1"], "j1/1"));
  assert.equal(a.length, 4);
  assert.ok(!a.includes("w1"));
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    selectVerifiers(pool, 1, ["w1"], `j${i}/1`).forEach((v) => seen.add(v));
  }
  assert.equal(seen.size, 6, "every verifier gets chosen for some job");
});
