/**
 * A verifier hears no announcements (issue 16 item 2): it learns a job when the job's owner
 * sends it the assignment with the spec (`job.assign` on `/ciro/assignments/3`, see
 * `protocols/messages.ts`). A direct message is a hint: the chain is the judge. Before a verifier
 * keeps the spec it checks it against the job's escrow on chain (`JobSubmitted`): the spec must
 * name the model hash and the input commitment the chain holds (and its input, if it carries one,
 * must hash to that commitment), so that the job a verifier re-runs is the one the client paid for
 * and the worker committed to; and where the job's client on chain is a node of the network (its
 * chain account is its node id, as on the local ledger), the sender must be that node. Where the
 * client's account is not a node id (an address on Starknet or an EVM, the demo's `client`
 * account over libp2p), nothing binds a peer to it: the spec's chain-checked content is all that
 * is checked.
 *
 * {@link AssignmentHints} remembers those escrow terms (bounded, oldest out) and holds an
 * assignment that outran the chain's escrow (bounded in count and time) until the escrow shows.
 *
 * @module
 */
import type { JobSpec, NodeId } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";
import { RecentMap } from "./recent_set.ts";

/** What the chain's `JobSubmitted` says of a job that a spec must match. */
export interface EscrowTerms {
  readonly client: NodeId;
  readonly modelHash: string;
  readonly inputCommitment: string;
}

/** An assignment with a spec, as the ingress heard it. */
export interface AssignmentHint {
  readonly jobId: string;
  /** The peer that sent it (the transport authenticated it). */
  readonly from: NodeId;
  readonly worker: NodeId;
  readonly verifiers: readonly NodeId[];
  readonly attempt: number;
  readonly spec: JobSpec;
}

/** Bounds of an {@link AssignmentHints}. */
export interface AssignmentHintLimits {
  /** Escrow terms remembered, oldest out first. @default 10_000 */
  readonly maxTerms?: number;
  /** Assignments held waiting for their escrow, oldest out first. @default 64 */
  readonly maxHeld?: number;
  /** How long an assignment is held for its escrow, ms. @default 30_000 */
  readonly heldMs?: number;
}

/** The default bounds of an {@link AssignmentHints}. */
export const ASSIGNMENT_HINT_DEFAULTS = {
  maxTerms: 10_000,
  maxHeld: 64,
  heldMs: 30_000,
} as const;

/** The model hash the chain records for a job that runs no model (the builtin). */
const NO_MODEL = "0".repeat(64);

/**
 * Why `hint` does not fit the job's escrow `terms`, or null when it does: the sender is not the
 * job's client on chain while the client is a node of the network (`clientIsNode`), or the spec
 * names another model or input than the escrow, or its input does not hash to its commitment.
 */
export function assignmentMismatch(
  hint: AssignmentHint,
  terms: EscrowTerms,
  clientIsNode: boolean,
): string | null {
  const { jobId, from, spec } = hint;
  if (clientIsNode && from !== terms.client) {
    return `Assignment of job "${jobId}" came from "${from}", not its client on chain "${terms.client}"`;
  }
  const model = spec.kind.type === "onnx" ? spec.kind.modelHash : NO_MODEL;
  if (model !== terms.modelHash) {
    return `Assignment of job "${jobId}" names model ${model}: the chain's escrow says ${terms.modelHash}`;
  }
  if (spec.inputCommitment !== terms.inputCommitment) {
    return `Assignment of job "${jobId}" names input commitment ${spec.inputCommitment}: the chain's escrow says ${terms.inputCommitment}`;
  }
  if (spec.input !== undefined && commitmentOf(spec.input) !== spec.inputCommitment) {
    return `Assignment of job "${jobId}" carries an input that does not hash to its commitment`;
  }
  return null;
}

/** The escrow terms the chain showed, and the assignments waiting for theirs. */
export class AssignmentHints {
  readonly #terms: RecentMap<EscrowTerms>;
  readonly #held = new Map<string, { readonly hint: AssignmentHint; readonly until: number }>();
  readonly #maxHeld: number;
  readonly #heldMs: number;

  constructor(limits: AssignmentHintLimits = {}) {
    const { maxTerms, maxHeld, heldMs } = { ...ASSIGNMENT_HINT_DEFAULTS, ...limits };
    for (const [name, value] of [["maxTerms", maxTerms], ["maxHeld", maxHeld]] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(
          `Invalid assignment hints ${name} ${value}: must be a non-negative integer`,
        );
      }
    }
    if (!Number.isSafeInteger(heldMs) || heldMs < 1) {
      throw new RangeError(`Invalid assignment hints heldMs ${heldMs}: must be a positive integer`);
    }
    this.#terms = new RecentMap(maxTerms);
    this.#maxHeld = maxHeld;
    this.#heldMs = heldMs;
  }

  /** The escrow terms of job `jobId` the chain showed, if remembered. */
  terms(jobId: string): EscrowTerms | undefined {
    return this.#terms.get(jobId);
  }

  /**
   * The chain showed job `jobId`'s escrow: its terms are remembered. Returns the assignment that
   * was held for it, if any (now to be checked against them).
   */
  escrowed(jobId: string, terms: EscrowTerms): AssignmentHint | undefined {
    // A ring, oldest out first: a full Map evicted from its front steps over every deleted entry.
    this.#terms.set(jobId, terms);
    const held = this.#held.get(jobId);
    this.#held.delete(jobId);
    return held?.hint;
  }

  /**
   * Holds `hint`, whose escrow the chain has not shown, until it does or `now + heldMs` (the
   * latest one per job; the oldest dropped past the count bound). Returns whether it is held.
   */
  hold(hint: AssignmentHint, now: number): boolean {
    for (const [jobId, held] of this.#held) {
      if (held.until > now) break;
      this.#held.delete(jobId);
    }
    if (this.#maxHeld === 0) return false;
    this.#held.delete(hint.jobId);
    this.#held.set(hint.jobId, { hint, until: now + this.#heldMs });
    while (this.#held.size > this.#maxHeld) this.#held.delete(this.#held.keys().next().value!);
    return true;
  }

  /** Assignments held now (expired ones not yet dropped included). */
  get held(): number {
    return this.#held.size;
  }
}
