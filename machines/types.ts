/**
 * Domain types shared by the machines: jobs, bids, peers, and the effect requests the machines
 * emit. Everything here is plain data (amounts are `bigint`, times are milliseconds of virtual
 * time), so it can be journaled, hashed and replayed.
 *
 * @module
 */

/** A node's identity on the network (a libp2p peer id string, or a name in one process). */
export type NodeId = string;

/** The roles a node can host. */
export type Role = "client" | "worker" | "verifier" | "bootstrap";

/** Hardware classes a worker can advertise and a job can require. */
export type HardwareClass = "cpu" | "gpu";

/** What a job runs. `builtin:matmul` needs no model file; `onnx` names a model by content hash. */
export type JobKind =
  | { readonly type: "builtin"; readonly name: "matmul" }
  | { readonly type: "onnx"; readonly modelHash: string };

/** What a client announces. Durations are relative; the job machine turns them into deadlines. */
export interface JobSpec {
  readonly kind: JobKind;
  /** Content hash (hex sha-256) of the input; the input itself travels separately. */
  readonly inputCommitment: string;
  /** The input, when it is small enough to ride along with the announcement. */
  readonly input?: unknown;
  readonly requirements: {
    readonly hardware: HardwareClass;
    /** Minimum stake a worker must hold to be assigned. */
    readonly minStake: bigint;
  };
  /** Most the client pays; also the escrowed amount. */
  readonly maxPrice: bigint;
  readonly bidWindowMs: number;
  readonly executionMs: number;
  readonly verificationMs: number;
  /** How many auctions the job may run before it fails (re-auction after a silent worker). */
  readonly maxAttempts: number;
  /** How many verifiers re-run the result (n >= 3f + 1), 0 to {@link MAX_VERIFIERS}. */
  readonly verifierCount: number;
  /**
   * How urgent the job is: a worker at its limits serves the jobs it declined as busy in order
   * of priority, then arrival (the SDK also sets the bid window from it). @default "normal"
   */
  readonly priority?: JobPriority;
}

/** A job's priority, lowest first. */
export type JobPriority = "low" | "normal" | "high";

/** The priorities, lowest first. */
export const JOB_PRIORITIES: readonly JobPriority[] = ["low", "normal", "high"];

/** What a worker offers. */
export interface BidOffer {
  readonly bidId: string;
  readonly jobId: string;
  readonly worker: NodeId;
  readonly price: bigint;
  /** Time the worker promises to finish in, milliseconds. */
  readonly etaMs: number;
  /** Stake the worker claims to hold; the chain checks it at assignment. */
  readonly stake: bigint;
  /** Reputation score the worker claims, 0..1000. */
  readonly reputation: number;
  readonly hardware: HardwareClass;
}

/** Why a bid was not taken. */
export type BidRejectReason =
  | "price_above_max"
  | "hardware_mismatch"
  | "insufficient_stake"
  | "worker_excluded"
  | "eta_too_long"
  | "duplicate"
  | "not_bidding"
  | "outbid"
  | "assignment_failed";

/** Why a worker did not bid on a job it heard of. */
export type DeclineReason =
  | "unsupported_model"
  | "hardware_mismatch"
  | "insufficient_stake"
  | "busy"
  | "price_below_floor"
  | "eta_too_long"
  | "excluded";

/** A verifier's verdict on a result. */
export type Verdict = "valid" | "invalid";

/** The subject a verifier attests when the worker claimed the job fails on its input. */
export const FAILURE_SUBJECT = "failed";

/** The longest failure reason the chain takes. */
export const MAX_FAILURE_REASON = 200;

/** Offences in the slashing matrix. */
export type SlashReason = "invalid_compute" | "downtime" | "double_signing" | "coordinated_attack";

/** The slashing matrix from the seeds, in basis points of the worker's stake. */
export const SLASH_BPS: Readonly<Record<SlashReason, number>> = {
  invalid_compute: 5_000,
  downtime: 500,
  double_signing: 3_000,
  coordinated_attack: 10_000,
};

/** Why escrow went back to the client. */
export type RefundReason = "expired" | "cancelled" | "disputed" | "failed";

/**
 * Deadlines a job arms; each is stored in context as an absolute time. `refund`: how long an
 * owner whose refund the chain refused waits for the chain to show the job's ending before it
 * ends the job as failed (job machine version 7). `refund_limit`: how long an owner's job stays in
 * `refunding` at most before it ends failed, the escrow left on chain (version 7, review R7 L-a).
 */
export type DeadlineKey = "bid_window" | "execution" | "verification" | "refund" | "refund_limit";

/**
 * Requests the machines emit (XState `emit`). The runtime routes each to a port; the outcome
 * comes back through the inbox as an event. A machine never waits on a promise.
 */
export type EffectRequest =
  | { readonly type: "timer.arm"; readonly key: string; readonly at: number }
  | { readonly type: "timer.cancel"; readonly key: string }
  | {
    readonly type: "net.announce";
    readonly jobId: string;
    readonly spec: JobSpec;
    readonly owner: NodeId;
    readonly attempt: number;
    readonly bidWindowEndsAt: number;
  }
  | {
    readonly type: "net.assignment";
    readonly jobId: string;
    readonly worker: NodeId;
    readonly bidId: string;
    readonly price: bigint;
    readonly verifiers: readonly NodeId[];
  }
  | {
    readonly type: "net.result";
    readonly jobId: string;
    readonly worker: NodeId;
    readonly commitment: string;
    readonly output: unknown;
  }
  | {
    readonly type: "net.attestation";
    readonly jobId: string;
    readonly verifier: NodeId;
    readonly verdict: Verdict;
    /** The commitment the verifier computed itself. */
    readonly commitment: string;
    /** The worker whose result it judged. */
    readonly worker: NodeId;
    /** The worker's commitment it judged. */
    readonly claimed: string;
  }
  | {
    readonly type: "worker.consider";
    readonly jobId: string;
    readonly spec: JobSpec;
    readonly attempt: number;
    readonly excluded: readonly NodeId[];
  }
  | { readonly type: "exec.run"; readonly jobId: string; readonly spec: JobSpec }
  | {
    readonly type: "verify.run";
    readonly jobId: string;
    readonly spec: JobSpec;
    readonly worker: NodeId;
    readonly commitment: string;
    readonly output: unknown;
  }
  | {
    readonly type: "chain.escrow.lock";
    readonly jobId: string;
    readonly amount: bigint;
    readonly spec: JobSpec;
    /** For a chain-decided job: what the chain enforces (verifiers and deadlines). */
    readonly terms?: {
      readonly verifierCount: number;
      readonly bidWindowMs: number;
      readonly executionMs: number;
      readonly verificationMs: number;
    };
  }
  | {
    readonly type: "chain.failure.report";
    readonly jobId: string;
    readonly worker: NodeId;
    /** Why the job fails on its input (at most {@link MAX_FAILURE_REASON} characters). */
    readonly reason: string;
  }
  | {
    readonly type: "chain.attest";
    readonly jobId: string;
    readonly verifier: NodeId;
    /** The chain's attempt (1 for the first assignment, +1 for each reassignment). */
    readonly attempt: number;
    /** The result commitment judged. */
    readonly subject: string;
    readonly verdict: Verdict;
  }
  | {
    readonly type: "chain.assign";
    readonly jobId: string;
    readonly worker: NodeId;
    readonly price: bigint;
    readonly verifiers: readonly NodeId[];
  }
  | { readonly type: "chain.assignment.revoke"; readonly jobId: string; readonly worker: NodeId }
  | {
    readonly type: "chain.result.submit";
    readonly jobId: string;
    readonly worker: NodeId;
    readonly commitment: string;
  }
  | {
    readonly type: "chain.verification.record";
    readonly jobId: string;
    readonly accepted: boolean;
  }
  | { readonly type: "chain.release"; readonly jobId: string }
  | { readonly type: "chain.refund"; readonly jobId: string; readonly reason: RefundReason }
  | {
    readonly type: "chain.slash";
    readonly jobId: string;
    readonly worker: NodeId;
    readonly reason: SlashReason;
  }
  | { readonly type: "peer.disconnect"; readonly peer: NodeId; readonly reason: string }
  | { readonly type: "peer.withdraw_bids"; readonly peer: NodeId }
  | {
    readonly type: "log.reject";
    readonly actor: string;
    readonly event: string;
    readonly reason: string;
  };

/**
 * The most verifiers a job may ask for; 0 asks for none (an unverified job). The one source for
 * the wire schema and the HTTP API.
 */
export const MAX_VERIFIERS = 64;
