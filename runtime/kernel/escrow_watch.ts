/**
 * Gossip is a hint: a job a node heard of by gossip (or a join snapshot) holds nothing unless the
 * chain shows its escrow. The watch remembers the escrows the chain showed (bounded, oldest out),
 * checks each observed job a grace after its bid window closes, and has the node drop the ones
 * the chain never showed (`job.unescrowed`, journaled).
 *
 * @module
 */
import { jobIdOf } from "../../machines/address.ts";

/** The timer key of an observed job's escrow check (handled by the node, never journaled). */
export const ESCROW_CHECK_KEY = "escrow_check";
/** How long after an observed job's bid window its escrow may still show up, at least, ms. */
export const ESCROW_GRACE_MS = 1_000;
/** Escrows remembered. */
export const ESCROW_MEMORY = 10_000;

/** The escrows this node saw on chain, and the observed jobs waiting for their check. */
export class EscrowWatch {
  readonly #seen = new Set<string>();
  /** Observed jobs waiting for their check, with the peer that announced them (if it did). */
  readonly #pending = new Map<string, string | undefined>();

  /** The chain showed job `target`'s escrow. */
  saw(target: string): void {
    const jobId = jobIdOf(target);
    if (jobId === undefined) return;
    this.#seen.add(jobId);
    if (this.#seen.size > ESCROW_MEMORY) this.#seen.delete(this.#seen.values().next().value!);
  }

  /** Whether the chain showed job `jobId`'s escrow since this node started. */
  has(jobId: string): boolean {
    return this.#seen.has(jobId);
  }

  /**
   * When to check observed job `target` whose bid window closes at `closesAt` (a grace after,
   * at least its own window again); `announcer` is the peer that announced it itself, if one did
   * (not a snapshot relay): it is to blame if the escrow never shows.
   */
  expect(target: string, closesAt: number, bidWindowMs: number, announcer?: string): number {
    this.#pending.set(target, announcer);
    return closesAt + Math.max(ESCROW_GRACE_MS, bidWindowMs);
  }

  /**
   * The check of `target`, when it is due and finds no escrow (consumes the check): `{ blame }`
   * names the peer that announced it, if one did; undefined when the escrow showed.
   */
  unescrowed(target: string): { readonly blame: string | undefined } | undefined {
    if (!this.#pending.has(target)) return undefined;
    const blame = this.#pending.get(target);
    this.#pending.delete(target);
    return this.#seen.has(jobIdOf(target)!) ? undefined : { blame };
  }

  /** Forgets the check of `target` (retired). */
  drop(target: string): void {
    this.#pending.delete(target);
  }
}
