/**
 * The proof behind a result, read back from the chain. With the verification the project has
 * (chosen verifiers' signed attestations counted on chain, `policy.settlement: "chain"`), the
 * proof of a job is the chain's own record of its check: the `AttestationRecorded` events that
 * decided it and the `JobVerified` or `JobDisputed` event that closed it. `proofHash` is the
 * sha-256 of that record's canonical JSON, so anyone holding a chain port can re-read the
 * events ({@link fetchProof}) and check a hash they were given ({@link verifyProof}).
 *
 * What it is not: not a STARK, not a succinct proof of the computation, not a dispute game. It
 * proves what the chain counted, and it is as strong as the verifiers' bonds (n >= 3f + 1, at
 * most f of them lying). `ChainProof.system` is the slot for other proof systems later.
 *
 * @module
 */
import type { ChainCursor, ChainEvent, ChainPort } from "../../chain/port.ts";
import type { NodeId, Verdict } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";

/** Why a proof could not be fetched or was refused. */
export type ProofErrorCode = "malformed_hash" | "no_decision" | "mismatch" | "scan_limit";

/** A proof that cannot be fetched, or does not match the chain. */
export class ProofError extends Error {
  override readonly name = "ProofError";
  readonly code: ProofErrorCode;
  readonly jobId: string;

  constructor(code: ProofErrorCode, jobId: string, detail: string) {
    super(`Proof of job "${jobId}" refused: ${detail}`);
    this.code = code;
    this.jobId = jobId;
  }
}

/** Where an event sits on the chain: `block:tx:index`, as `escrowRef` spells it. */
export function eventRef(e: ChainEvent): string {
  return `${e.blockNumber}:${e.txHash}:${e.eventIndex}`;
}

/** One attestation the chain counted for the deciding attempt. */
export interface ProvenAttestation {
  readonly verifier: NodeId;
  readonly attempt: number;
  readonly verdict: Verdict;
  readonly ref: string;
}

/** The chain's record of a job's check. */
export interface ChainProof {
  /**
   * The proof system: today only `"attestations"` (the chain counted chosen verifiers' signed
   * attestations). A STARK or a dispute game would get their own value under the same fields.
   */
  readonly system: "attestations";
  readonly jobId: string;
  /** The event that closed the check. */
  readonly decision: {
    readonly name: "JobVerified" | "JobDisputed";
    readonly ref: string;
    readonly blockNumber: number;
  };
  /** The attestations of the deciding attempt counted before the decision, in chain order. */
  readonly attestations: readonly ProvenAttestation[];
  /** sha-256 of the canonical JSON of every field above. */
  readonly proofHash: string;
}

/** Options of {@link fetchProof} and {@link verifyProof}. */
export interface FetchProofOptions {
  /** Where to start reading. @default the first block */
  readonly from?: ChainCursor;
  /** Most events read before giving up. @default 1,000,000 */
  readonly maxEvents?: number;
  readonly signal?: AbortSignal;
}

const PAGE = 1_000;

/** Reads the chain's record of `jobId`'s check and hashes it; throws {@link ProofError}. */
export async function fetchProof(
  chain: ChainPort,
  jobId: string,
  options: FetchProofOptions = {},
): Promise<ChainProof> {
  const maxEvents = options.maxEvents ?? 1_000_000;
  let cursor: ChainCursor = options.from ?? { blockNumber: 0, eventIndex: 0 };
  const recorded: Extract<ChainEvent, { name: "AttestationRecorded" }>[] = [];
  let read = 0;
  for (;;) {
    if (read >= maxEvents) {
      throw new ProofError("scan_limit", jobId, `no verdict in the first ${read} events read`);
    }
    const { events, next } = await chain.eventsSince(cursor, {
      limit: Math.min(PAGE, maxEvents - read),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    for (const e of events) {
      if (!("jobId" in e) || e.jobId !== jobId) continue;
      if (e.name === "AttestationRecorded") recorded.push(e);
      if (e.name === "JobVerified" || e.name === "JobDisputed") {
        // The deciding attempt is the last one attested before the decision.
        const attempt = recorded.at(-1)?.attempt;
        const attestations = recorded.filter((a) => a.attempt === attempt).map((a) => ({
          verifier: a.verifier,
          attempt: a.attempt,
          verdict: a.verdict,
          ref: eventRef(a),
        }));
        const decision = { name: e.name, ref: eventRef(e), blockNumber: e.blockNumber };
        const body = { system: "attestations" as const, jobId, decision, attestations };
        return { ...body, proofHash: commitmentOf(body) };
      }
    }
    read += events.length;
    if (events.length === 0) {
      throw new ProofError("no_decision", jobId, "the chain recorded no verdict for it");
    }
    cursor = next;
  }
}

/**
 * Re-reads `jobId`'s record from the chain and checks that it hashes to `proofHash`. Resolves
 * to the proof; throws {@link ProofError} (`mismatch`, `no_decision`, `malformed_hash`).
 */
export async function verifyProof(
  chain: ChainPort,
  jobId: string,
  proofHash: string,
  options: FetchProofOptions = {},
): Promise<ChainProof> {
  if (typeof proofHash !== "string" || !/^[0-9a-f]{64}$/.test(proofHash)) {
    throw new ProofError(
      "malformed_hash",
      jobId,
      `expected 64 lowercase hex digits, got ${JSON.stringify(proofHash)}`,
    );
  }
  const proof = await fetchProof(chain, jobId, options);
  if (proof.proofHash !== proofHash) {
    throw new ProofError(
      "mismatch",
      jobId,
      `the chain's record hashes to ${proof.proofHash}, not ${proofHash}`,
    );
  }
  return proof;
}
