import assert from "node:assert/strict";
import fc from "fast-check";
import {
  AccountKey,
  chooseVerifiers,
  quorumThresholds,
  verifierWeight,
  verifyAttestation,
} from "./settlement.ts";

const STATEMENT = { jobId: "j1", attempt: 1, subject: "ab".repeat(32), verdict: "valid" as const };

Deno.test("AccountKey signs statements that verify only under its own key and as signed", () => {
  const key = AccountKey.development("ledger", "v1");
  const other = AccountKey.development("ledger", "v2");
  const signed = key.sign("v1", STATEMENT);
  assert.equal(signed.signature.length, 128);
  assert.ok(verifyAttestation(signed, key.publicKey));
  assert.ok(!verifyAttestation(signed, other.publicKey));
  assert.ok(!verifyAttestation({ ...signed, verdict: "invalid" }, key.publicKey));
  assert.ok(!verifyAttestation({ ...signed, attempt: 2 }, key.publicKey));
  assert.ok(!verifyAttestation({ ...signed, jobId: "j2" }, key.publicKey));
  assert.ok(!verifyAttestation({ ...signed, signature: "00".repeat(64) }, key.publicKey));
  assert.ok(!verifyAttestation({ ...signed, signature: "zz" }, key.publicKey));
  assert.ok(!verifyAttestation(signed, "not a key"));
  // The development key is a function of the ledger and the account only.
  assert.equal(AccountKey.development("ledger", "v1").publicKey, key.publicKey);
  assert.notEqual(AccountKey.development("other", "v1").publicKey, key.publicKey);
});

Deno.test("quorumThresholds() is 2f+1 to accept and f+1 to dispute, refusing n = 0", () => {
  assert.deepEqual(quorumThresholds(1), { f: 0, accept: 1, dispute: 1 });
  assert.deepEqual(quorumThresholds(4), { f: 1, accept: 3, dispute: 2 });
  assert.deepEqual(quorumThresholds(7), { f: 2, accept: 5, dispute: 3 });
  assert.throws(() => quorumThresholds(0), RangeError);
  assert.throws(() => quorumThresholds(-1), RangeError);
});

Deno.test("verifierWeight() is stake x reputation x uptime, uptime from answers", () => {
  assert.equal(verifierWeight(10n, 500, { chosen: 0, answered: 0 }), 10n * 500n * 10_000n);
  assert.equal(verifierWeight(10n, 500, { chosen: 3, answered: 1 }), 10n * 500n * 5_000n);
  assert.equal(verifierWeight(10n, 0, { chosen: 0, answered: 0 }), 0n);
});

Deno.test("chooseVerifiers() is deterministic, distinct, and follows the weights", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.string({ minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 12 }),
      fc.integer({ min: 0, max: 14 }),
      fc.string(),
      (ids, count, seed) => {
        const candidates = ids.map((account, i) => ({ account, weight: BigInt(i + 1) }));
        const a = chooseVerifiers(candidates, count, seed);
        const b = chooseVerifiers([...candidates].reverse(), count, seed);
        assert.deepEqual(a, b);
        assert.equal(a.length, Math.min(count, ids.length));
        assert.equal(new Set(a).size, a.length);
      },
    ),
  );
  // A zero weight is never chosen; a heavy candidate is chosen far more often than a light one.
  const counts = { heavy: 0, light: 0 };
  for (let i = 0; i < 400; i++) {
    const [pick] = chooseVerifiers(
      [
        { account: "heavy", weight: 99n },
        { account: "light", weight: 1n },
        { account: "zero", weight: 0n },
      ],
      1,
      `seed-${i}`,
    );
    counts[pick as "heavy" | "light"]++;
  }
  assert.ok(counts.heavy > 350, `heavy chosen ${counts.heavy} of 400`);
  assert.ok(counts.light > 0, "light chosen at least once in 400");
});
