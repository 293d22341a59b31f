/**
 * Private to `chain/`: the limits and argument checks every adapter applies before a call
 * reaches its contract (the local ledger's rules, the EVM adapter's client-side checks), so that a
 * bad argument gets the same error from every chain. One source for each limit.
 *
 * @module
 */
import { MAX_VERIFIERS } from "../machines/types.ts";
import { ChainError, type JobTerms, NO_SPEC_HASH, type SignedAttestation } from "./port.ts";

export { MAX_VERIFIERS };

/** Ids (jobs, accounts, node ids) are 1 to this many characters. */
export const MAX_ID_LENGTH = 128;
/** A reported failure's reason, at most this many characters. */
export const MAX_FAILURE_REASON = 200;
/** Deadlines of a job submitted with terms but without them, ms (chain time). */
export const DEFAULT_BID_WINDOW_MS = 60_000;
export const DEFAULT_EXECUTION_MS = 600_000;
export const DEFAULT_VERIFICATION_MS = 600_000;
/** Amounts are u256. */
export const U256 = 2n ** 256n;
/** A content hash: 64 lowercase hex digits. */
export const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** `value` as quoted text, for messages. */
export function q(value: string): string {
  return JSON.stringify(value);
}

/** An id of 1 to {@link MAX_ID_LENGTH} characters, or a `TypeError`/`RangeError` naming `what`. */
export function checkId(what: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new TypeError(`Invalid ${what}: expected a string, got ${typeof value}`);
  }
  if (value.length === 0 || value.length > MAX_ID_LENGTH) {
    throw new RangeError(
      `Invalid ${what}: expected 1 to ${MAX_ID_LENGTH} characters, got ${value.length}`,
    );
  }
  return value;
}

/** A `bigint`, or a `TypeError` naming `what`. */
export function checkBigint(what: string, value: unknown): bigint {
  if (typeof value !== "bigint") {
    throw new TypeError(`Invalid ${what}: expected a bigint, got ${typeof value}`);
  }
  return value;
}

/** 64 lowercase hex digits, or a `TypeError` naming `what`. */
export function checkHash(what: string, value: unknown): string {
  if (typeof value !== "string" || !HASH_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${what}: expected 64 lowercase hex digits, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** A safe integer in `[min, max]`, or a `RangeError` naming `what`. */
export function checkCount(what: string, value: unknown, min: number, max = 2 ** 40): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`Invalid ${what}: expected an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/** A well-formed signed attestation (its signature is checked by the chain, not here). */
export function checkAttestation(what: string, value: unknown): SignedAttestation {
  const a = value as Partial<SignedAttestation> | null;
  if (typeof a !== "object" || a === null) {
    throw new TypeError(`Invalid ${what}: expected a signed attestation`);
  }
  const jobId = checkId(`${what}.jobId`, a.jobId);
  const verifier = checkId(`${what}.verifier`, a.verifier);
  const attempt = checkCount(`${what}.attempt`, a.attempt, 1);
  if (typeof a.subject !== "string" || a.subject.length > MAX_ID_LENGTH) {
    throw new TypeError(`Invalid ${what}.subject: expected at most ${MAX_ID_LENGTH} characters`);
  }
  if (a.verdict !== "valid" && a.verdict !== "invalid") {
    throw new TypeError(`Invalid ${what}.verdict: expected "valid" or "invalid"`);
  }
  if (typeof a.signature !== "string") {
    throw new TypeError(`Invalid ${what}.signature: expected hex text`);
  }
  return {
    jobId,
    attempt,
    subject: a.subject,
    verdict: a.verdict,
    verifier,
    signature: a.signature,
  };
}

/** A job submission as a caller hands it to the chain. */
export type JobSubmission = {
  jobId: string;
  amount: bigint;
  minStake: bigint;
  modelHash: string;
  inputCommitment: string;
} & JobTerms;

/**
 * A submission's arguments checked, its terms' defaults filled: a job with a `verifierCount` is
 * settled by the chain's rules (`chainDecided`), one without by the legacy client-driven rules.
 * Bad shapes throw `TypeError`/`RangeError` naming the field; amounts outside u256 throw a
 * `ChainError` coded `invalid_amount`.
 */
export function checkSubmission(job: JobSubmission) {
  const jobId = checkId("job id", job.jobId);
  const checked = {
    jobId,
    chainDecided: job.verifierCount !== undefined,
    verifierCount: checkCount("verifierCount", job.verifierCount ?? 0, 0, MAX_VERIFIERS),
    bidWindowMs: checkCount("bidWindowMs", job.bidWindowMs ?? DEFAULT_BID_WINDOW_MS, 1),
    executionMs: checkCount("executionMs", job.executionMs ?? DEFAULT_EXECUTION_MS, 1),
    verificationMs: checkCount(
      "verificationMs",
      job.verificationMs ?? DEFAULT_VERIFICATION_MS,
      1,
    ),
    amount: checkBigint("amount", job.amount),
    minStake: checkBigint("minStake", job.minStake),
    modelHash: checkHash("modelHash", job.modelHash),
    inputCommitment: checkHash("inputCommitment", job.inputCommitment),
    // The zero hash is none (what the chain records without one).
    specHash: job.specHash === undefined || job.specHash === NO_SPEC_HASH
      ? undefined
      : checkHash("specHash", job.specHash),
  };
  if (checked.specHash !== undefined && !checked.chainDecided) {
    throw new TypeError(
      `Invalid specHash of job ${q(jobId)}: a job without terms (verifierCount) has no verifier ` +
        "to check its spec against it",
    );
  }
  if (checked.amount <= 0n || checked.amount >= U256) {
    throw new ChainError(
      "invalid_amount",
      `Cannot submit job ${q(jobId)}: escrow must be a positive u256, got ${checked.amount}`,
    );
  }
  if (checked.minStake < 0n || checked.minStake >= U256) {
    throw new ChainError(
      "invalid_amount",
      `Cannot submit job ${q(jobId)}: minimum stake must be a u256, got ${checked.minStake}`,
    );
  }
  return checked;
}
