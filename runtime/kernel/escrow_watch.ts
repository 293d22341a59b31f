/**
 * Gossip is a hint: a job a node heard of by gossip (or a join snapshot) holds nothing unless the
 * chain shows its escrow. The watch remembers the escrows the chain showed (bounded, oldest out),
 * checks each observed job a grace after its bid window closes, and has the node drop the ones
 * the chain never showed (`job.unescrowed`, journaled).
 *
 * @module
 */
import { jobIdOf } from "../../machines/address.ts";
import { RecentMap, RecentSet } from "./recent_set.ts";

/** The timer key of an observed job's escrow check (handled by the node, never journaled). */
export const ESCROW_CHECK_KEY = "escrow_check";
/**
 * How long after an observed job's bid window its escrow may still show up, at least, ms. The
 * announcer is blamed when it does not: this is room for the node's own chain follower to lag (a
 * loaded node saw honest escrows a second late and banned honest clients at 1 s).
 */
export const ESCROW_GRACE_MS = 5_000;
/**
 * How long after an escrow check that found the escrow only at the chain's latest block (not yet
 * at the confirmed head the node reads at) the check comes again, ms; at most
 * {@link MAX_UNCONFIRMED_RECHECKS} times. A worker that reads more confirmations behind than the
 * client waited for sees an honest escrow late (12 s blocks and 3 confirmations: 36 s, more than
 * the escrow wait): it is no forgery (review R6 M5).
 */
export const UNCONFIRMED_RECHECK_MS = 15_000;
/** Checks again of an escrow seen only unconfirmed, at most; then the job is dropped, no blame. */
export const MAX_UNCONFIRMED_RECHECKS = 4;
/** Escrows remembered (and as many endings), by default. */
export const ESCROW_MEMORY = 10_000;
/**
 * How long after a node heard of a job the chain may take to show it that job's escrow, at most,
 * ms: the owner announces only once the chain locked the escrow, so the announced bid window is
 * no reason to wait longer (an owner that never escrows would otherwise hold a job on every node
 * for as long a window as it likes to announce).
 */
export const DEFAULT_ESCROW_WAIT_MS = 30_000;

/** What a job's escrow commits to that an announcement of it must match. */
export interface EscrowCommitment {
  /** The client's chain account. */
  readonly client: string;
  /** The spec hash (`protocols/spec_hash.ts`), where the escrow has one. */
  readonly specHash?: string;
}

/** The escrows this node saw on chain, and the observed jobs waiting for their check. */
export class EscrowWatch {
  /** The escrows seen, with what they commit to where the chain showed it (else null). */
  readonly #seen: RecentMap<EscrowCommitment | null>;
  readonly #ended: RecentSet;
  /** Observed jobs waiting for their check, with the peer that announced them (if it did). */
  readonly #pending = new Map<string, string | undefined>();
  /** Checks again of observed jobs whose escrow showed only unconfirmed, by job actor. */
  readonly #unconfirmed = new Map<string, number>();
  readonly #waitMs: number;

  /** `waitMs`: see {@link DEFAULT_ESCROW_WAIT_MS}; `memory`: see {@link ESCROW_MEMORY}. */
  constructor(waitMs: number = DEFAULT_ESCROW_WAIT_MS, memory: number = ESCROW_MEMORY) {
    this.#waitMs = waitMs;
    this.#seen = new RecentMap(memory);
    this.#ended = new RecentSet(memory);
  }

  /** The chain showed job `jobId`'s escrow (with what it commits to, from its `JobSubmitted`). */
  saw(jobId: string, commitment?: EscrowCommitment): void {
    if (commitment !== undefined || this.#seen.get(jobId) === undefined) {
      this.#seen.set(jobId, commitment ?? null);
    }
  }

  /** What job `jobId`'s escrow commits to, if the chain showed it with its `JobSubmitted`. */
  commitment(jobId: string): EscrowCommitment | undefined {
    return this.#seen.get(jobId) ?? undefined;
  }

  /**
   * The chain ended job `jobId` (paid or refunded): a late announcement of it is let by (see
   * `Node`'s chain news and `Ingress`).
   */
  sawEnd(jobId: string): void {
    this.#ended.add(jobId);
  }

  /** Whether the chain showed job `jobId` ended (see {@link EscrowWatch.sawEnd}). */
  ended(jobId: string): boolean {
    return this.#ended.has(jobId);
  }

  /** Whether the chain showed job `jobId`'s escrow since this node started. */
  has(jobId: string): boolean {
    return this.#seen.get(jobId) !== undefined;
  }

  /**
   * When to check observed job `target`, heard of at `heardAt`, whose bid window closes at
   * `closesAt`: a grace after the window (at least the window again), but never later than the
   * escrow wait after it was heard of; `announcer` is the peer that announced it itself, if one
   * did (not a snapshot relay): it is to blame if the escrow never shows.
   */
  expect(
    target: string,
    at: { closesAt: number; bidWindowMs: number; heardAt: number; announcer?: string | undefined },
  ): number {
    this.#pending.set(target, at.announcer);
    return Math.min(
      at.closesAt + Math.max(ESCROW_GRACE_MS, at.bidWindowMs),
      at.heardAt + this.#waitMs,
    );
  }

  /**
   * The check of `target`, when it is due and finds no escrow (consumes the check): `{ blame }`
   * names the peer that announced it, if one did; undefined when the escrow showed.
   */
  unescrowed(target: string): { readonly blame: string | undefined } | undefined {
    if (!this.#pending.has(target)) return undefined;
    const blame = this.#pending.get(target);
    this.#pending.delete(target);
    return this.has(jobIdOf(target)!) ? undefined : { blame };
  }

  /** Checks `target` again (the chain could not be asked when it was due), blaming `blame`. */
  recheck(target: string, blame: string | undefined): void {
    this.#pending.set(target, blame);
  }

  /**
   * The check of `target` found its escrow only unconfirmed: checks it again (blaming `blame` if it
   * then finds none), and says whether it may ({@link MAX_UNCONFIRMED_RECHECKS} at most).
   */
  recheckUnconfirmed(target: string, blame: string | undefined): boolean {
    const done = this.#unconfirmed.get(target) ?? 0;
    if (done >= MAX_UNCONFIRMED_RECHECKS) return false;
    this.#unconfirmed.set(target, done + 1);
    this.#pending.set(target, blame);
    return true;
  }

  /** Forgets the check of `target` (retired). */
  drop(target: string): void {
    this.#pending.delete(target);
    this.#unconfirmed.delete(target);
  }
}
