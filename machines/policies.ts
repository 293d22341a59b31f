/**
 * Pure policies the job machine consults: how a winner is picked from the bids, how verifiers
 * are chosen, and when a quorum of attestations accepts or disputes a result. A policy is named
 * in the job's context, so a recording can be replayed under another one (counterfactual
 * replay) without touching the machine.
 *
 * @module
 */
import type { BidOffer, NodeId, Verdict } from "./types.ts";

/** How the owner of a job picks the winning bid. */
export type BidSelectionPolicy = "lowest_price" | "fastest" | "best_value";

/** How attestations become a verdict. */
export type QuorumPolicy = "bft" | "majority" | "unanimous";

/** The policies a job runs under. */
export interface JobPolicy {
  readonly bidSelection: BidSelectionPolicy;
  readonly quorum: QuorumPolicy;
  /**
   * `quorum` (the default): a result is accepted only when a quorum attests it valid, and the job
   * fails if none forms before the verification deadline. `optimistic`: the verification
   * deadline is a challenge window; the result is accepted unless a quorum disputes it first.
   */
  readonly verification?: "quorum" | "optimistic";
  /**
   * `legacy` (the default): the owner counts the attestations it hears and records the verdict
   * on chain. `chain`: the escrow carries terms, the chain chooses the verifiers, each verifier
   * submits its signed attestation to the chain, and the chain's verdict moves the job (see the
   * README's trust model); the node's verifiers must be bonded on chain as verifiers.
   */
  readonly settlement?: "legacy" | "chain";
}

/** The policies a job runs under unless the node's config says otherwise. */
export const DEFAULT_POLICY: JobPolicy = { bidSelection: "lowest_price", quorum: "bft" };

/** Names of every bid-selection policy. */
export const BID_SELECTION_POLICIES: readonly BidSelectionPolicy[] = [
  "lowest_price",
  "fastest",
  "best_value",
];
/** Names of every quorum policy. */
export const QUORUM_POLICIES: readonly QuorumPolicy[] = ["bft", "majority", "unanimous"];

function compareBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Orders bids best first under `policy`; ties break on eta, reputation, then bid id. */
export function rankBids<B extends BidOffer>(
  bids: readonly B[],
  policy: BidSelectionPolicy,
  maxPrice: bigint,
): B[] {
  const tieBreak = (a: B, b: B) =>
    a.etaMs - b.etaMs || b.reputation - a.reputation ||
    (a.bidId < b.bidId ? -1 : a.bidId > b.bidId ? 1 : 0);
  const value = (bid: B): number => {
    // Lower is better: price share of the budget, time in seconds, reputation as a discount.
    const priceShare = maxPrice === 0n ? 0 : Number((bid.price * 10_000n) / maxPrice) / 10_000;
    return priceShare * 0.6 + (bid.etaMs / 60_000) * 0.3 - (bid.reputation / 1000) * 0.1;
  };
  const ordered = [...bids];
  switch (policy) {
    case "lowest_price":
      ordered.sort((a, b) => compareBigint(a.price, b.price) || tieBreak(a, b));
      break;
    case "fastest":
      ordered.sort((a, b) =>
        a.etaMs - b.etaMs || compareBigint(a.price, b.price) || tieBreak(a, b)
      );
      break;
    case "best_value":
      ordered.sort((a, b) => value(a) - value(b) || tieBreak(a, b));
      break;
  }
  return ordered;
}

/** FNV-1a, 32 bit: a pure, stable hash for deterministic choices. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/**
 * Picks `count` verifiers from `pool`, excluding `exclude`, ordered by a hash of the seed and
 * each id: deterministic for the same inputs, and not choosable by the worker.
 */
export function selectVerifiers(
  pool: readonly NodeId[],
  count: number,
  exclude: readonly NodeId[],
  seed: string,
): NodeId[] {
  return [...new Set(pool)]
    .filter((id) => !exclude.includes(id))
    .map((id) => ({ id, rank: fnv1a(`${seed}|${id}`) }))
    .sort((a, b) => a.rank - b.rank || (a.id < b.id ? -1 : 1))
    .slice(0, count)
    .map((v) => v.id);
}

/** The outcome of counting attestations so far. */
export type QuorumOutcome = "accepted" | "rejected" | "pending";

/**
 * Counts attestations from `n` chosen verifiers. Under `bft` (n >= 3f + 1) a result is accepted
 * with 2f + 1 valid votes and disputed with f + 1 invalid ones (at least one honest verifier
 * objects); `majority` needs more than n / 2 either way; `unanimous` accepts only when all n
 * agree it is valid and disputes on the first invalid vote.
 */
export function quorumOutcome(
  policy: QuorumPolicy,
  n: number,
  verdicts: readonly Verdict[],
): QuorumOutcome {
  const valid = verdicts.filter((v) => v === "valid").length;
  const invalid = verdicts.length - valid;
  switch (policy) {
    case "bft": {
      const f = Math.floor((n - 1) / 3);
      if (valid >= 2 * f + 1) return "accepted";
      if (invalid >= f + 1) return "rejected";
      return "pending";
    }
    case "majority": {
      if (valid > n / 2) return "accepted";
      if (invalid >= n / 2) return "rejected";
      return "pending";
    }
    case "unanimous": {
      if (invalid > 0) return "rejected";
      if (valid >= n) return "accepted";
      return "pending";
    }
  }
}
