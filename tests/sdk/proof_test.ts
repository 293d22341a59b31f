/**
 * Through the SDK on a small market: the proof of a result fetched and checked against the
 * chain, a tampered one refused; `confidence` and `onChainVerified` of an accepted and a
 * disputed result; what the proof is under legacy settlement (none).
 *
 * @module
 */
import assert from "node:assert/strict";
import { commitmentOf } from "../../runtime/compute/mod.ts";
import { fetchProof, InferenceError, ProofError, verifyProof } from "../../runtime/sdk/mod.ts";
import { INPUT, market, MLP_HASH } from "./_market.ts";

const request = {
  modelId: MLP_HASH,
  input: INPUT,
  maxPrice: 1_000n,
  maxLatency: 10_000,
  deadlines: { bidWindowMs: 150, executionMs: 4_000, verificationMs: 4_000 },
  maxAttempts: 1,
  generateProof: true,
} as const;

Deno.test("chain settlement: an accepted result carries a proof the chain confirms, and a tampered one is refused", async () => {
  const m = await market({ settlement: "chain" });
  try {
    const result = await m.sdk.infer(request);
    assert.equal(result.confidence.outcome, "accepted");
    assert.equal(result.error, null);
    // The chain chose 4 verifiers (n = 4 tolerates f = 1); at least 2f + 1 attested valid.
    assert.equal(result.confidence.n, 4);
    assert.equal(result.confidence.f, 1);
    assert.ok(result.confidence.valid >= 3, `${result.confidence.valid} valid`);
    assert.equal(result.confidence.share, result.confidence.valid / 4);
    assert.ok(result.cost > 0n);

    // onChainVerified names the block of the chain's JobVerified event.
    const events = await m.events();
    const verified = events.find((e) => e.name === "JobVerified" && e.jobId === result.jobId);
    assert.ok(verified !== undefined);
    assert.deepEqual(result.onChainVerified, {
      verdict: "verified",
      blockNumber: verified.blockNumber,
      ref: `${verified.blockNumber}:${verified.txHash}:${verified.eventIndex}`,
    });

    // An outsider re-reads the chain and checks the hash; the proof lists the counted attestations.
    assert.ok(result.proofHash !== null);
    const proof = await verifyProof(m.reader, result.jobId, result.proofHash);
    assert.equal(proof.decision.name, "JobVerified");
    const recorded = events.filter((e) =>
      e.name === "AttestationRecorded" && e.jobId === result.jobId &&
      e.blockNumber <= verified.blockNumber
    );
    assert.deepEqual(
      proof.attestations.map((a) => a.verifier),
      recorded.map((e) => e.name === "AttestationRecorded" ? e.verifier : ""),
    );
    assert.ok(proof.attestations.every((a) => a.verdict === "valid"));
    // The hash is over the record, not a constant: recomputed here from the proof's fields.
    const { proofHash: _, ...body } = proof;
    assert.equal(commitmentOf(body), result.proofHash);

    // Tampered: one hex digit changed.
    const last = result.proofHash.at(-1) === "0" ? "1" : "0";
    const tampered = result.proofHash.slice(0, -1) + last;
    await assert.rejects(verifyProof(m.reader, result.jobId, tampered), (e: unknown) => {
      assert.ok(e instanceof ProofError);
      assert.equal(e.code, "mismatch");
      assert.match(e.message, /^Proof of job ".+" refused: the chain's record hashes to /);
      return true;
    });
    // A genuine hash presented for another job (a second run of the same input) is refused.
    const other = await m.sdk.infer(request);
    assert.notEqual(other.proofHash, result.proofHash);
    await assert.rejects(verifyProof(m.reader, other.jobId, result.proofHash), {
      name: "ProofError",
      code: "mismatch",
    });
    await assert.rejects(verifyProof(m.reader, "no-such-job", result.proofHash), {
      code: "no_decision",
    });
    await assert.rejects(verifyProof(m.reader, result.jobId, "not-a-hash"), {
      code: "malformed_hash",
    });
    await assert.rejects(fetchProof(m.reader, result.jobId, { maxEvents: 1 }), {
      code: "scan_limit",
    });
  } finally {
    await m.close();
  }
});

Deno.test("chain settlement: a disputed result says so (confidence 0 of 4, the error's reason, the chain's JobDisputed and its proof)", async () => {
  const m = await market({ settlement: "chain", workers: { w1: { fault: "wrong_result" } } });
  try {
    const result = await m.sdk.infer(request);
    assert.equal(result.confidence.outcome, "disputed");
    assert.equal(result.confidence.n, 4);
    assert.equal(result.confidence.valid, 0);
    assert.equal(result.confidence.share, 0);
    assert.equal(result.cost, 0n);
    assert.ok(result.error instanceof InferenceError);
    assert.equal(result.error.reason, "disputed");
    assert.match(result.error.message, /attested the result invalid$/);
    assert.equal(result.onChainVerified?.verdict, "disputed");
    const events = await m.events();
    const disputed = events.find((e) => e.name === "JobDisputed" && e.jobId === result.jobId);
    assert.equal(result.onChainVerified?.blockNumber, disputed?.blockNumber);
    assert.ok(result.proofHash !== null);
    const proof = await verifyProof(m.reader, result.jobId, result.proofHash);
    assert.equal(proof.decision.name, "JobDisputed");
    // The chain disputes once valid can no longer reach 2f + 1: at f + 1 = 2 invalid verdicts.
    assert.ok(proof.attestations.length >= 2, `${proof.attestations.length} attestations`);
    assert.ok(proof.attestations.every((a) => a.verdict === "invalid"));
  } finally {
    await m.close();
  }
});

Deno.test("legacy settlement: no proof (the client counted the attestations), but the chain's record of the verdict", async () => {
  const m = await market({ settlement: "legacy", verifiers: 4 });
  try {
    const result = await m.sdk.infer(request);
    assert.equal(result.confidence.outcome, "accepted");
    assert.equal(result.proofHash, null);
    assert.equal(result.onChainVerified?.verdict, "verified");
    assert.equal(result.confidence.n, 4);
    assert.ok(result.confidence.valid >= 3);
    // The old names keep working.
    assert.equal(result.verification, "accepted");
    assert.equal(result.state, "settled");
  } finally {
    await m.close();
  }
});

Deno.test("generateProof without the client's chain port is refused before anything is submitted", async () => {
  const m = await market({ settlement: "chain", verifiers: 0, workers: {} });
  try {
    const { createClient } = await import("../../runtime/sdk/mod.ts");
    const sdk = createClient(m.client);
    await assert.rejects(sdk.infer(request), {
      name: "RangeError",
      message:
        "Cannot generate a proof: the client has no chain port (createClient(node, { chain }))",
    });
    assert.equal(m.client.jobs().length, 0);
  } finally {
    await m.close();
  }
});
