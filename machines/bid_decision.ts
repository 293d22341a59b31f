/**
 * A worker's bid decision, as a pure function beside the machines: whether a worker with a given
 * profile bids on a job, at what price, or why not. The checks a job's owner makes of a bid
 * ({@link offerRejection}) are the same rules the job machine applies (`bidRejection`), so a
 * worker never offers a bid that its owner must refuse.
 *
 * ```ts
 * import { decideBid } from "./bid_decision.ts";
 *
 * const decision = decideBid({
 *   spec: {
 *     kind: { type: "builtin", name: "matmul" },
 *     inputCommitment: "0".repeat(64),
 *     requirements: { hardware: "cpu", minStake: 10n },
 *     maxPrice: 100n,
 *     bidWindowMs: 100,
 *     executionMs: 1_000,
 *     verificationMs: 1_000,
 *     maxAttempts: 2,
 *     verifierCount: 1,
 *   },
 *   profile: { hardware: "cpu", stake: 50n },
 *   supported: true,
 *   busy: false,
 * });
 * console.log(decision); // { bid: true, price: 80n, etaMs: 500, stake: 50n }
 * ```
 *
 * @module
 */
import type {
  BidOffer,
  BidRejectReason,
  DeclineReason,
  HardwareClass,
  JobSpec,
  NodeId,
} from "./types.ts";

/**
 * How a worker prices a bid: `ratio` asks a share of the job's maximum price; `cost` asks
 * `floor + perMs × etaMs` (rounded up) and declines (`price_below_floor`) jobs paying less.
 */
export type PricingPolicy =
  | { readonly kind: "ratio"; readonly ratio: number }
  | { readonly kind: "cost"; readonly perMs: number; readonly floor: bigint };

/** How a worker bids (the node's `worker` option). */
export interface WorkerProfile {
  readonly hardware: HardwareClass;
  /** Stake the node keeps bonded on chain; topped up at start. @default 0n */
  readonly stake?: bigint;
  /** Price asked, as a share of the job's maximum price. @default 0.8 */
  readonly priceRatio?: number;
  /** How the bid price is set; overrides `priceRatio`. @default `{ kind: "ratio", ratio: priceRatio }` */
  readonly pricing?: PricingPolicy;
  /** Time promised to finish in, ms. @default 500 */
  readonly etaMs?: number;
  /** Lowest price the worker accepts; it declines jobs that pay less. @default 0n */
  readonly minPrice?: bigint;
  /** Jobs the worker runs at once; it declines new jobs as `busy` while this many run. @default 2 */
  readonly capacity?: number;
  /** Open bids the worker keeps at once; it declines new jobs as `busy` past it. @default 8 */
  readonly maxOpenBids?: number;
  /**
   * Whether each open bid holds one of the `capacity` slots, so that the worker never wins more
   * jobs than it can run at once (with open bids beyond its free slots, a worker that wins them
   * all queues the extra ones, and long work then misses its execution deadline). @default false
   */
  readonly reserveSlots?: boolean;
  /**
   * Fault injection for simulations and tests: `silent` never runs assigned jobs,
   * `wrong_result` returns a corrupted output. @default "none"
   */
  readonly fault?: "none" | "silent" | "wrong_result";
}

/** The defaults of a {@link WorkerProfile}: the one source for the node and its config. */
export const WORKER_DEFAULTS = {
  stake: 0n,
  priceRatio: 0.8,
  etaMs: 500,
  minPrice: 0n,
  capacity: 2,
  maxOpenBids: 8,
  fault: "none",
} as const;

/** The reputation a worker claims in its bids until the chain reports one. */
export const DEFAULT_CLAIMED_REPUTATION = 500;

/** What a worker offers in a bid, spec-side: checked by the owner against the job's spec. */
export type OfferTerms = Pick<BidOffer, "price" | "etaMs" | "stake" | "hardware">;

/**
 * Why an offer on `spec` breaks the job's own terms, or null: a price above the maximum, CPU
 * hardware for a GPU job, less stake than required, or an eta longer than the execution
 * deadline. The job machine refuses such bids; a worker declines instead of offering them.
 */
export function offerRejection(spec: JobSpec, offer: OfferTerms): BidRejectReason | null {
  if (offer.price > spec.maxPrice) return "price_above_max";
  if (spec.requirements.hardware === "gpu" && offer.hardware !== "gpu") {
    return "hardware_mismatch";
  }
  if (offer.stake < spec.requirements.minStake) return "insufficient_stake";
  if (offer.etaMs > spec.executionMs) return "eta_too_long";
  return null;
}

/** The price a worker asks for `spec`, by its pricing policy. */
export function bidPrice(spec: JobSpec, profile: WorkerProfile): bigint {
  const etaMs = profile.etaMs ?? WORKER_DEFAULTS.etaMs;
  const pricing = profile.pricing ??
    { kind: "ratio", ratio: profile.priceRatio ?? WORKER_DEFAULTS.priceRatio };
  return pricing.kind === "ratio"
    ? (spec.maxPrice * BigInt(Math.round(pricing.ratio * 10_000))) / 10_000n
    : pricing.floor + BigInt(Math.ceil(pricing.perMs * etaMs));
}

/** What a worker decides about a job it heard of. */
export type BidDecision =
  | {
    readonly bid: true;
    readonly price: bigint;
    readonly etaMs: number;
    readonly stake: bigint;
  }
  | { readonly bid: false; readonly reason: DeclineReason };

/** What {@link decideBid} weighs. */
export interface BidQuestion {
  readonly spec: JobSpec;
  readonly profile: WorkerProfile;
  /** Whether this worker can run the job's kind (an executor for it, the model held or fetchable). */
  readonly supported: boolean;
  /** Whether the worker is at its limits (running `capacity` jobs or `maxOpenBids` bids). */
  readonly busy: boolean;
}

/**
 * Whether to bid, in a fixed order of reasons: an unsupported model, then the job's own terms
 * ({@link offerRejection}: hardware, stake, price, eta), then the worker's floor, then being busy.
 */
export function decideBid(question: BidQuestion): BidDecision {
  const { spec, profile } = question;
  if (!question.supported) return { bid: false, reason: "unsupported_model" };
  const stake = profile.stake ?? WORKER_DEFAULTS.stake;
  const etaMs = profile.etaMs ?? WORKER_DEFAULTS.etaMs;
  const price = bidPrice(spec, profile);
  const rejection = offerRejection(spec, { price, etaMs, stake, hardware: profile.hardware });
  if (rejection === "hardware_mismatch") return { bid: false, reason: "hardware_mismatch" };
  if (rejection === "insufficient_stake") return { bid: false, reason: "insufficient_stake" };
  if (rejection === "price_above_max" || price < (profile.minPrice ?? WORKER_DEFAULTS.minPrice)) {
    return { bid: false, reason: "price_below_floor" };
  }
  if (rejection === "eta_too_long") return { bid: false, reason: "eta_too_long" };
  if (question.busy) return { bid: false, reason: "busy" };
  return { bid: true, price, etaMs, stake };
}

/** The id of `worker`'s bid on attempt `attempt` of `jobId`: one bid per worker and auction. */
export function bidIdOf(jobId: string, attempt: number, worker: NodeId): string {
  return `${jobId}.${attempt}.${worker.slice(-12)}`;
}
