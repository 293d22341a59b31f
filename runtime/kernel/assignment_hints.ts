/**
 * A verifier hears no announcements (issue 16 item 2): it learns a job when the job's owner
 * sends it the assignment with the spec (`job.assign` on `/ciro/assignments/3`, see
 * `protocols/messages.ts`). A direct message is a hint: the chain is the judge. Before a verifier
 * keeps the spec it checks it against the job's escrow on chain (`JobSubmitted`): where the escrow
 * commits to a spec hash (`protocols/spec_hash.ts`), the spec must hash to it, so every field is the
 * client's; and in any case the spec must
 * name the model hash and the input commitment the chain holds (and its input, if it carries one,
 * must hash to that commitment), so that the job a verifier re-runs is the one the client paid for
 * and the worker committed to; its price cap and minimum stake must be the escrow's amount and
 * minimum stake and, for a job whose escrow asks for verifiers, its verifier count and durations
 * the escrow's terms, so that a verifier's deadlines are the chain's; and where the job's client
 * on chain is a node of the network (its chain account is its node id, as on the local ledger),
 * the sender must be that node. Where the client's account is not a node id (an address on
 * Starknet or an EVM, the demo's `client` account over libp2p), nothing binds a peer to it: the
 * spec's chain-checked content is what is checked.
 *
 * The auction's attempt, the worker and the price are the chain's (`WorkerAssigned` carries the
 * attempt): the verifier's actor takes them from the chain's naming, never from the message. An
 * assignment that names another worker or other verifiers than the chain's naming of the same
 * attempt costs its sender; one of an earlier attempt than the chain's is stale (let by); one of
 * a later attempt than this node's chain follower has shown is held until the chain shows it.
 *
 * {@link AssignmentHints} remembers those escrow terms (bounded, oldest out) and holds an
 * assignment that outran the chain (its escrow, or its naming), bounded in count and time, and
 * per sender: a peer's held assignments push out its own first.
 *
 * @module
 */
import type { ChainAssignment, EscrowOfJob } from "../../actors/declines.ts";
import type { JobSpec, NodeId } from "../../machines/types.ts";
import { specHashOf } from "../../protocols/spec_hash.ts";
import { commitmentOf } from "../compute/mod.ts";
import { RecentMap } from "./recent_set.ts";

/** What the chain's `JobSubmitted` says of a job that a spec must match (see the module doc). */
export type EscrowTerms = EscrowOfJob;

/** The escrow terms a chain's `JobSubmitted` event shows. */
export function escrowTermsOf(event: {
  readonly client: NodeId;
  readonly amount: bigint;
  readonly modelHash: string;
  readonly inputCommitment: string;
  readonly minStake: bigint;
  readonly verifierCount: number;
  readonly bidWindowMs: number;
  readonly executionMs: number;
  readonly verificationMs: number;
  readonly specHash?: string;
}): EscrowTerms {
  const { client, amount, modelHash, inputCommitment, minStake } = event;
  const { verifierCount, bidWindowMs, executionMs, verificationMs, specHash } = event;
  return {
    ...(specHash === undefined ? {} : { specHash }),
    client,
    modelHash,
    inputCommitment,
    amount,
    minStake,
    verifierCount,
    bidWindowMs,
    executionMs,
    verificationMs,
  };
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
  /**
   * Assignments held waiting for the chain, the biggest sender's oldest out first. An honest
   * owner's held assignments are its jobs assigned within this node's chain lag (a verifier held
   * 20 to 31 at once from the demo's client, 25 jobs in flight, four runs): the bound is far
   * above that. @default 512
   */
  readonly maxHeld?: number;
  /**
   * Assignments held from one sender, its oldest out first: a share that one busy honest owner
   * does not reach (8 dropped an honest client's held assignments in the demo, whose jobs then
   * failed their quorum). @default 128
   */
  readonly maxHeldPerSender?: number;
  /** How long an assignment is held for its escrow, ms. @default 30_000 */
  readonly heldMs?: number;
}

/** The default bounds of an {@link AssignmentHints}. */
export const ASSIGNMENT_HINT_DEFAULTS = {
  maxTerms: 10_000,
  maxHeld: 512,
  maxHeldPerSender: 128,
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
  // The escrow's commitment to the whole spec: every field is the one the client paid for.
  if (terms.specHash !== undefined) {
    const hash = specHashOf(spec);
    if (hash !== terms.specHash) {
      return `Assignment of job "${jobId}" carries a spec whose hash is ${hash}: the chain's escrow commits to ${terms.specHash}`;
    }
  }
  const model = spec.kind.type === "onnx" ? spec.kind.modelHash : NO_MODEL;
  // The chain records a builtin job's model as the zero hash: an ONNX spec naming it is no job the
  // client escrowed (its verifier would fetch a model that is none, and never attest).
  if (spec.kind.type === "onnx" && model === NO_MODEL) {
    return `Assignment of job "${jobId}" names an ONNX model with the zero hash: the chain's escrow is of a builtin job`;
  }
  if (model !== terms.modelHash) {
    return `Assignment of job "${jobId}" names model ${model}: the chain's escrow says ${terms.modelHash}`;
  }
  if (spec.inputCommitment !== terms.inputCommitment) {
    return `Assignment of job "${jobId}" names input commitment ${spec.inputCommitment}: the chain's escrow says ${terms.inputCommitment}`;
  }
  if (spec.input !== undefined && commitmentOf(spec.input) !== spec.inputCommitment) {
    return `Assignment of job "${jobId}" carries an input that does not hash to its commitment`;
  }
  // Absent only in an escrow journaled before the chain's events carried the terms.
  if (terms.amount !== undefined && spec.maxPrice !== terms.amount) {
    return `Assignment of job "${jobId}" names max price ${spec.maxPrice}: the chain's escrow holds ${terms.amount}`;
  }
  if (terms.minStake !== undefined && spec.requirements.minStake !== terms.minStake) {
    return `Assignment of job "${jobId}" names minimum stake ${spec.requirements.minStake}: the chain's escrow says ${terms.minStake}`;
  }
  // A job escrowed without verifiers (the legacy client-driven rules) shows the terms' defaults.
  if ((terms.verifierCount ?? 0) > 0) {
    for (const field of TERM_FIELDS) {
      if (terms[field] !== undefined && spec[field] !== terms[field]) {
        return `Assignment of job "${jobId}" names ${field} ${
          spec[field]
        }: the chain's escrow says ${terms[field]}`;
      }
    }
  }
  return null;
}

/** The escrow's terms a spec names too, field by field. */
const TERM_FIELDS = ["verifierCount", "bidWindowMs", "executionMs", "verificationMs"] as const;

/**
 * Why `hint` contradicts the chain's naming of the same attempt (`naming`, a `WorkerAssigned`
 * this node's chain follower showed), or null: it names another worker, or other verifiers. An
 * assignment of another attempt is not judged here (see the module doc).
 */
export function namingMismatch(hint: AssignmentHint, naming: ChainAssignment): string | null {
  if (naming.attempt === undefined || hint.attempt !== naming.attempt) return null;
  const { jobId, attempt } = hint;
  if (hint.worker !== naming.worker) {
    return `Assignment of job "${jobId}" names worker "${hint.worker}" for attempt ${attempt}: the chain assigned "${naming.worker}"`;
  }
  const chosen = new Set(naming.verifiers);
  if (hint.verifiers.length !== chosen.size || !hint.verifiers.every((v) => chosen.has(v))) {
    return `Assignment of job "${jobId}" names verifiers ${
      JSON.stringify(hint.verifiers)
    } for attempt ${attempt}: the chain chose ${JSON.stringify(naming.verifiers)}`;
  }
  return null;
}

/** An assignment held, and until when. */
interface Held {
  readonly hint: AssignmentHint;
  readonly until: number;
}

/** The escrow terms the chain showed, and the assignments waiting for the chain. */
export class AssignmentHints {
  readonly #terms: RecentMap<EscrowTerms>;
  /** Held assignments by sender and job (`${from}\n${jobId}`), oldest first. */
  readonly #held = new Map<string, Held>();
  /** How many each sender has held. */
  readonly #bySender = new Map<NodeId, number>();
  readonly #maxHeld: number;
  readonly #maxPerSender: number;
  readonly #heldMs: number;

  constructor(limits: AssignmentHintLimits = {}) {
    const { maxTerms, maxHeld, maxHeldPerSender, heldMs } = {
      ...ASSIGNMENT_HINT_DEFAULTS,
      ...limits,
    };
    for (
      const [name, value] of [
        ["maxTerms", maxTerms],
        ["maxHeld", maxHeld],
        ["maxHeldPerSender", maxHeldPerSender],
      ] as const
    ) {
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
    this.#maxPerSender = maxHeldPerSender;
    this.#heldMs = heldMs;
  }

  /** The escrow terms of job `jobId` the chain showed, if remembered. */
  terms(jobId: string): EscrowTerms | undefined {
    return this.#terms.get(jobId);
  }

  /**
   * The chain showed job `jobId`'s escrow: its terms are remembered. Returns the assignments that
   * were held for the job (now to be judged again), oldest first.
   */
  escrowed(jobId: string, terms: EscrowTerms): AssignmentHint[] {
    // A ring, oldest out first: a full Map evicted from its front steps over every deleted entry.
    this.#terms.set(jobId, terms);
    return this.release(jobId);
  }

  /**
   * Removes and returns the assignments held for job `jobId` (the chain showed what they waited
   * for), oldest first. At most `maxHeld` are held: a scan of them.
   */
  release(jobId: string): AssignmentHint[] {
    const released: AssignmentHint[] = [];
    for (const [key, held] of this.#held) {
      if (held.hint.jobId !== jobId) continue;
      this.#drop(key, held);
      released.push(held.hint);
    }
    return released;
  }

  /**
   * Holds `hint`, which outran the chain, until the chain shows what it waits for or
   * `now + heldMs` (the latest per sender and job). Past a sender's share its own oldest goes;
   * past the count bound, the oldest of the sender holding most, so that one peer's assignments
   * do not push out another's. Returns whether it is held.
   */
  hold(hint: AssignmentHint, now: number): boolean {
    for (const [key, held] of this.#held) {
      if (held.until > now) break;
      this.#drop(key, held);
    }
    if (this.#maxHeld === 0 || this.#maxPerSender === 0) return false;
    const key = `${hint.from}\n${hint.jobId}`;
    const known = this.#held.get(key);
    if (known !== undefined) this.#drop(key, known);
    if (this.heldFrom(hint.from) >= this.#maxPerSender) this.#dropOldestOf(hint.from);
    if (this.#held.size >= this.#maxHeld) {
      let biggest: NodeId = hint.from;
      for (const [sender, count] of this.#bySender) {
        if (count > this.heldFrom(biggest)) biggest = sender;
      }
      this.#dropOldestOf(biggest);
    }
    this.#held.set(key, { hint, until: now + this.#heldMs });
    this.#bySender.set(hint.from, this.heldFrom(hint.from) + 1);
    return true;
  }

  #dropOldestOf(sender: NodeId): void {
    for (const [key, held] of this.#held) {
      if (held.hint.from === sender) return this.#drop(key, held);
    }
  }

  #drop(key: string, held: Held): void {
    this.#held.delete(key);
    const left = this.heldFrom(held.hint.from) - 1;
    if (left > 0) this.#bySender.set(held.hint.from, left);
    else this.#bySender.delete(held.hint.from);
  }

  /** Assignments held now (expired ones not yet dropped included). */
  get held(): number {
    return this.#held.size;
  }

  /** Assignments held now from `sender`. */
  heldFrom(sender: NodeId): number {
    return this.#bySender.get(sender) ?? 0;
  }
}
