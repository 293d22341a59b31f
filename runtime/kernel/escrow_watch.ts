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
  readonly #pending = new Set<string>();

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
   * at least its own window again).
   */
  expect(target: string, closesAt: number, bidWindowMs: number): number {
    this.#pending.add(target);
    return closesAt + Math.max(ESCROW_GRACE_MS, bidWindowMs);
  }

  /** Whether the check of `target` is due and finds no escrow (consumes the check). */
  unescrowed(target: string): boolean {
    if (!this.#pending.delete(target)) return false;
    return !this.#seen.has(jobIdOf(target)!);
  }

  /** Forgets the check of `target` (retired). */
  drop(target: string): void {
    this.#pending.delete(target);
  }
}
