/**
 * The settlement rules every adapter applies, as pure functions: what a verifier signs, how the
 * chain chooses a job's verifiers from the bonded set, when a quorum of attestations decides,
 * and how the fee is shared. The local ledger runs them inside its transactions; a contract on
 * another chain runs the same arithmetic (see `chain/CAIRO_INTERFACE.md`).
 *
 * ```ts
 * import { attestationStatement, chooseVerifiers, quorumThresholds } from "./settlement.ts";
 *
 * const chosen = chooseVerifiers(
 *   [
 *     { account: "v1", weight: 10n },
 *     { account: "v2", weight: 30n },
 *     { account: "v3", weight: 5n },
 *   ],
 *   2,
 *   "0xabc|job-1|1",
 * );
 * if (chosen.length !== 2 || new Set(chosen).size !== 2) throw new Error("two distinct");
 * const { accept, dispute } = quorumThresholds(4);
 * if (accept !== 3 || dispute !== 2) throw new Error("n = 4 tolerates f = 1");
 * const bytes = attestationStatement({
 *   jobId: "job-1",
 *   attempt: 1,
 *   subject: "ab".repeat(32),
 *   verdict: "valid",
 * });
 * if (bytes.length === 0) throw new Error("empty statement");
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import type { NodeId, Verdict } from "../machines/types.ts";

/** What an attestation judges: a result commitment, or the worker's claim that the input failed. */
export const FAILURE_SUBJECT = "failed";

/** A statement a verifier signs about one attempt of one job. */
export interface AttestationStatement {
  readonly jobId: string;
  /** The chain's attempt number (1 for the first assignment, +1 for each reassignment). */
  readonly attempt: number;
  /** The result commitment judged, or {@link FAILURE_SUBJECT} for a reported failure. */
  readonly subject: string;
  /** `valid`: the subject is what the job gives on its input; `invalid`: it is not. */
  readonly verdict: Verdict;
}

/** A statement and its Ed25519 signature by `verifier`'s registered chain key. */
export interface SignedAttestation extends AttestationStatement {
  readonly verifier: NodeId;
  /** 64-byte Ed25519 signature, 128 lowercase hex digits. */
  readonly signature: string;
}

/** The domain every statement is signed under, so a signature means nothing elsewhere. */
export const ATTESTATION_DOMAIN = "ciro.attestation.v1";

/** The bytes a verifier signs for `statement`: a domain tag and the fields, length-prefixed. */
export function attestationStatement(statement: AttestationStatement): Uint8Array {
  const fields = [
    ATTESTATION_DOMAIN,
    statement.jobId,
    String(statement.attempt),
    statement.subject,
    statement.verdict,
  ];
  return new TextEncoder().encode(fields.map((f) => `${f.length}:${f}`).join("|"));
}

const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";
const SPKI_ED25519_PREFIX = "302a300506032b6570032100";
const HEX_64 = /^[0-9a-f]{64}$/;
const HEX_128 = /^[0-9a-f]{128}$/;

function hexToBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** An Ed25519 signing key for a chain account (its 32-byte seed). */
export class AccountKey {
  readonly #key: KeyObject;
  /** The raw 32-byte public key, 64 lowercase hex digits: what the chain registers. */
  readonly publicKey: string;

  constructor(seed: Uint8Array) {
    if (!(seed instanceof Uint8Array) || seed.length !== 32) {
      throw new TypeError("Invalid account key: expected a 32-byte Ed25519 seed");
    }
    this.#key = createPrivateKey({
      key: Buffer.from([...hexToBytes(PKCS8_ED25519_PREFIX), ...seed]),
      format: "der",
      type: "pkcs8",
    });
    const spki = createPublicKey(this.#key).export({ format: "der", type: "spki" });
    this.publicKey = bytesToHex(new Uint8Array(spki).subarray(12));
  }

  /**
   * The development key of `account` on ledger `ledgerId`: derived from public data, like
   * Hardhat's well-known test accounts. Anyone can compute it: it stands for a wallet only where
   * every party is trusted to use its own port (one machine, tests); a deployment passes its own.
   */
  static development(ledgerId: string, account: string): AccountKey {
    const seed = createHash("sha256").update(`ciro.dev-key|${ledgerId}|${account}`).digest();
    return new AccountKey(new Uint8Array(seed));
  }

  /** Signs `statement` for `verifier`. */
  sign(verifier: NodeId, statement: AttestationStatement): SignedAttestation {
    const signature = sign(null, attestationStatement(statement), this.#key);
    return { ...statement, verifier, signature: bytesToHex(new Uint8Array(signature)) };
  }
}

/** Whether `publicKey` (64 hex digits) is a well-formed Ed25519 key. */
export function isPublicKey(publicKey: unknown): publicKey is string {
  if (typeof publicKey !== "string" || !HEX_64.test(publicKey)) return false;
  try {
    publicKeyObject(publicKey);
    return true;
  } catch {
    return false;
  }
}

/** Public keys already parsed, by hex (the chain checks the same verifiers' keys again and again). */
const PUBLIC_KEYS = new Map<string, KeyObject>();
/** Parsed public keys kept, at most (the oldest out). */
const PUBLIC_KEYS_KEPT = 4096;

function publicKeyObject(publicKey: string): KeyObject {
  const known = PUBLIC_KEYS.get(publicKey);
  if (known !== undefined) return known;
  const key = createPublicKey({
    key: Buffer.from([...hexToBytes(SPKI_ED25519_PREFIX), ...hexToBytes(publicKey)]),
    format: "der",
    type: "spki",
  });
  if (PUBLIC_KEYS.size >= PUBLIC_KEYS_KEPT) PUBLIC_KEYS.delete(PUBLIC_KEYS.keys().next().value!);
  PUBLIC_KEYS.set(publicKey, key);
  return key;
}

/** Whether `attestation.signature` is `publicKey`'s signature of its statement. */
export function verifyAttestation(attestation: SignedAttestation, publicKey: string): boolean {
  if (!HEX_128.test(attestation.signature) || !isPublicKey(publicKey)) return false;
  try {
    return verify(
      null,
      attestationStatement(attestation),
      publicKeyObject(publicKey),
      hexToBytes(attestation.signature),
    );
  } catch {
    return false;
  }
}

/** A bonded verifier and its selection weight (stake x reputation x uptime, integers). */
export interface VerifierCandidate {
  readonly account: NodeId;
  readonly weight: bigint;
}

/**
 * The selection weight of a bonded verifier: `stake x reputation x uptime`, where uptime is
 * approximated on chain as `(answered + 1) / (chosen + 1)` in basis points: of the attempts it
 * was chosen for, the share it attested before the deadline (a newcomer counts as fully up).
 */
export function verifierWeight(
  stake: bigint,
  reputation: number,
  record: { readonly chosen: number; readonly answered: number },
): bigint {
  const uptimeBps = BigInt(Math.floor((record.answered + 1) * 10_000 / (record.chosen + 1)));
  return stake * BigInt(Math.max(0, reputation)) * uptimeBps;
}

/**
 * Chooses `count` distinct verifiers from `candidates`, each draw with probability proportional
 * to its weight among those left, from `seed` alone (chain data: the escrow's block hash, the job
 * and the attempt). Deterministic: integer arithmetic over sha-256, candidates in id order.
 * Returns fewer than `count` only when fewer candidates have a positive weight.
 */
export function chooseVerifiers(
  candidates: readonly VerifierCandidate[],
  count: number,
  seed: string,
): NodeId[] {
  const left = [...candidates].filter((c) => c.weight > 0n).sort((a, b) =>
    a.account < b.account ? -1 : a.account > b.account ? 1 : 0
  );
  const chosen: NodeId[] = [];
  for (let round = 0; round < count && left.length > 0; round++) {
    const total = left.reduce((sum, c) => sum + c.weight, 0n);
    const digest = createHash("sha256").update(`${seed}|${round}`).digest("hex");
    let point = BigInt(`0x${digest}`) % total;
    let index = 0;
    for (; index < left.length - 1; index++) {
      const weight = left[index]!.weight;
      if (point < weight) break;
      point -= weight;
    }
    chosen.push(left[index]!.account);
    left.splice(index, 1);
  }
  return chosen;
}

/**
 * The BFT thresholds for `n` chosen verifiers (`f = floor((n - 1) / 3)`): a claim is accepted
 * with `2f + 1` valid attestations and disputed with `f + 1` invalid ones. `n` must be at least 1.
 */
export function quorumThresholds(n: number): { f: number; accept: number; dispute: number } {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`Invalid verifier count: expected at least 1, got ${n}`);
  }
  const f = Math.floor((n - 1) / 3);
  return { f, accept: 2 * f + 1, dispute: f + 1 };
}
