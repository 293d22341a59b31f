/**
 * What a node is made of and reports: its options (ports, roles, the worker's profile, limits)
 * with their defaults and checks, and the shapes of what it tells its users.
 *
 * @module
 */
import type { RetiredJob } from "../../actors/tree.ts";
import type { RestartIntensity, SupervisionEvent } from "../../actors/supervisor.ts";
import type { ChainCursor, ChainPort } from "../../chain/port.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { PeerConfig } from "../../machines/peer_machine.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../../machines/policies.ts";
import type { JobSpec, NodeId, Role } from "../../machines/types.ts";
import type { WorkerProfile } from "../../machines/bid_decision.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { MAX_SAMPLE_BITS } from "../../protocols/sampling.ts";
import type { ExecutorPort, ModelStore, ToleranceOptions, VerifierPort } from "../compute/mod.ts";
import type { Clock } from "./clock.ts";
import type { Envelope, JournalAppendError, JournalSink } from "./inbox.ts";

export {
  type PricingPolicy,
  WORKER_DEFAULTS,
  type WorkerProfile,
} from "../../machines/bid_decision.ts";

/** How long a finished job's actor stays live by default: one minute. */
export const DEFAULT_RETAIN_FINISHED_MS = 60_000;

/** How often a node re-announces its capabilities by default, ms. */
export const DEFAULT_CAPABILITY_INTERVAL_MS = 30_000;

/**
 * What a verifier node bonds on chain at start when its options name no `verifierStake`: 1,000,
 * the order of a job's price in the examples and the demo (1,000 to 2,000). Attesting against
 * the decided outcome costs half of it (500), ten times the verifiers' 5 % share of such a
 * job's price that an honest attestation can earn, and the chain chooses verifiers in proportion
 * to stake, so a bond far below the market's prices would rarely be chosen.
 */
export const DEFAULT_VERIFIER_STAKE = 1_000n;

/** See {@link NodeOptions.minBidderReputation}. */
export const DEFAULT_MIN_BIDDER_REPUTATION = 200;

/**
 * The policy a node runs its jobs under unless its options say otherwise: the job machine's
 * {@link DEFAULT_POLICY} with chain-decided settlement (the chain chooses bonded verifiers,
 * counts their signed attestations and decides; see the README's trust model). `legacy`
 * settlement, where the client's node counts what it hears and records the verdict, is kept
 * only as an explicit opt-in for research and for replaying recordings made before.
 */
export const NODE_DEFAULT_POLICY: JobPolicy = { ...DEFAULT_POLICY, settlement: "chain" };

/**
 * The policy a node made with `options` runs its jobs under, with `settlement` always spelled
 * out (so its recording says which rules it followed): the options' policy, its settlement
 * defaulting to `chain`, or to `legacy` on a chain port that has no chain-decided calls
 * (`submitAttestations`). A policy that asks for `chain` on such a port is refused by
 * {@link checkNodeOptions}.
 */
export function nodePolicy(options: Pick<NodeOptions, "policy" | "chain">): JobPolicy {
  const policy = options.policy ?? DEFAULT_POLICY;
  if (policy.settlement !== undefined) return policy;
  return { ...policy, settlement: canDecide(options.chain) ? "chain" : "legacy" };
}

/** Whether `chain` has the calls chain-decided settlement needs. */
function canDecide(chain: ChainPort): boolean {
  return typeof chain.submitAttestations === "function" &&
    typeof chain.registerKey === "function";
}

/** Options of `createNode()`. */
export interface NodeOptions {
  /** The node's id; must equal `network.self`. */
  readonly id: NodeId;
  readonly roles: readonly Role[];
  readonly network: NetworkPort;
  readonly chain: ChainPort;
  /** @default a `BuiltinExecutor` */
  readonly executor?: ExecutorPort;
  /** @default re-execution with `executor` */
  readonly verifier?: VerifierPort;
  /** @default the wall clock */
  readonly clock?: Clock;
  /** Where stamped events are appended before delivery. @default kept nowhere */
  readonly journal?: JournalSink;
  /**
   * The policy of the jobs this node submits and follows; a policy without `settlement` takes
   * the default's (see {@link nodePolicy}). @default {@link NODE_DEFAULT_POLICY}
   */
  readonly policy?: JobPolicy;
  readonly peer?: PeerConfig;
  readonly intensity?: RestartIntensity;
  /**
   * How long a finished job's actor stays live before it is retired to the archive (a compact
   * summary), virtual ms; `null` keeps every finished actor. @default {@link DEFAULT_RETAIN_FINISHED_MS}
   */
  readonly retainFinishedMs?: number | null;
  /**
   * How long a job heard of by gossip waits for the chain to show its escrow before it is dropped,
   * at most, ms (it is also dropped a grace after its bid window closes, if that comes first): the
   * most this node's view of the chain may lag. @default 30,000
   */
  readonly escrowWaitMs?: number;
  /**
   * How many escrows (and as many endings) the node remembers seeing on chain, oldest out first.
   * A node that reads escrows on demand reads a forgotten one again when it hears the job; one
   * that follows every escrow (a verifier) needs room for every job in flight. @default 10,000
   */
  readonly escrowMemory?: number;
  /**
   * The chain reputation (0 to 1,000; 500 to start, -100 per slash, +10 per paid job) below which
   * this node's jobs do not weigh a worker's bids: a worker disputed again and again stops
   * winning them while its stake still covers a job's `minStake`. 0 weighs every bid.
   * @default 200
   */
  readonly minBidderReputation?: number;
  /** Retired jobs remembered (status, late news refused). @default 10,000 */
  readonly archiveSize?: number;
  /** Required with the `worker` role. */
  readonly worker?: WorkerProfile;
  /**
   * With the `verifier` role: stake the node keeps bonded on chain as a verifier, topped up at
   * start (the chain chooses a job's verifiers among bonded ones, see `policy.settlement`).
   * `0n` bonds nothing: the chain never chooses the node, and it says so in its log at start.
   * @default {@link DEFAULT_VERIFIER_STAKE}
   */
  readonly verifierStake?: bigint;
  /** Where chain events are read from at start. @default the first block */
  readonly chainCursor?: ChainCursor;
  /**
   * Where the chain's news (escrows, endings, stakes: what the node remembers without journaling
   * it) is read again from at start, before `chainCursor`; the events before `chainCursor` are
   * not journaled or delivered again. A restarted verifier checks an owner's assignment against
   * the job's escrow, which may be behind its cursor. @default `chainCursor`
   */
  readonly chainNewsFrom?: ChainCursor;
  /**
   * How often capabilities are re-announced, ms; 0 only at start.
   * @default {@link DEFAULT_CAPABILITY_INTERVAL_MS}
   */
  readonly capabilityIntervalMs?: number;
  /**
   * ONNX models this node serves (worker) or re-runs (verifier), by content hash. With it and
   * no `executor`, the node runs `builtin:matmul` and ONNX jobs (`OnnxExecutor`, loaded
   * on the first ONNX job); a worker advertises `models.list()` in its capabilities and
   * declines ONNX jobs whose model it does not hold (unless `fetchModels`). The node serves
   * these models by hash over the payload protocol (`/ciro/payload/1.0.0`), and a verifier
   * (or a worker with `fetchModels`) missing a job's model fetches it from a peer that
   * advertised it, else from the job's owner or its worker, checks its hash and stores it here
   * before running (see `runtime/compute/model_fetch.ts`). @default none
   */
  readonly models?: ModelStore;
  /**
   * With `models`: a worker also bids on ONNX jobs whose model it does not hold, and fetches
   * the model from peers by hash once assigned (a failed fetch fails the execution). Without
   * it, such jobs are declined as `unsupported_model`. Verifiers always fetch. @default false
   */
  readonly fetchModels?: boolean;
  /**
   * Float tolerance of the default verifier for ONNX outputs, by model hash
   * (`atol + rtol × |recomputed|` per element, see `toleranceComparator`); `"*"` applies to
   * every other model. @default `{ atol: 1e-5, rtol: 1e-4 }` for every model
   */
  readonly tolerances?: Readonly<Record<string, ToleranceOptions>>;
  /**
   * Executions and re-executions this node runs at once, and how many may wait; each is aborted
   * at its job's deadline (`executionMs`, or `verificationMs` for a re-run).
   * @default `{ concurrency: worker.capacity ?? 2, maxQueued: 16 }`
   */
  readonly executions?: { readonly concurrency?: number; readonly maxQueued?: number };
  /**
   * Fault injection for simulations and tests: a verifier that attests `invalid` (or `valid`)
   * whatever it is given, without re-running the job. @default "none"
   */
  readonly verifierFault?: "none" | "always_invalid" | "always_valid";
  /**
   * How this node, as a client, samples the workers it announces a job to (protocol v2,
   * `protocols/sampling.ts`): it aims at `bidders` of the capable workers it knows of (by their
   * capabilities, and at most as many as the chain shows staked), so a job in a large market
   * reaches 1 in 2^bits of them; `bits` fixes the depth instead (0: every capable worker).
   * @default `{ bidders: 8 }`
   */
  readonly sampling?: { readonly bidders?: number; readonly bits?: number };
}

/**
 * The defaults of a job spec: the one source for `Node.submitJob`, `POST /jobs` and the SDK.
 * Deadlines in ms.
 */
export const JOB_SPEC_DEFAULTS = {
  requirements: { hardware: "cpu", minStake: 0n },
  bidWindowMs: 500,
  executionMs: 10_000,
  verificationMs: 10_000,
  maxAttempts: 3,
  verifierCount: 4,
} as const satisfies Partial<JobSpec>;

/** A job spec as a client may write it: what has a default may be left out. */
export type JobSpecInput =
  & Omit<JobSpec, keyof typeof JOB_SPEC_DEFAULTS>
  & Partial<Pick<JobSpec, keyof typeof JOB_SPEC_DEFAULTS>>;

/** `spec` with {@link JOB_SPEC_DEFAULTS} filled in where it leaves a field out. */
export function completeSpec(spec: JobSpecInput): JobSpec {
  return {
    ...spec,
    requirements: spec.requirements ?? JOB_SPEC_DEFAULTS.requirements,
    bidWindowMs: spec.bidWindowMs ?? JOB_SPEC_DEFAULTS.bidWindowMs,
    executionMs: spec.executionMs ?? JOB_SPEC_DEFAULTS.executionMs,
    verificationMs: spec.verificationMs ?? JOB_SPEC_DEFAULTS.verificationMs,
    maxAttempts: spec.maxAttempts ?? JOB_SPEC_DEFAULTS.maxAttempts,
    verifierCount: spec.verifierCount ?? JOB_SPEC_DEFAULTS.verifierCount,
  } as JobSpec;
}

/** What a client submits. */
export interface JobRequest {
  /** The spec; fields with a default ({@link JOB_SPEC_DEFAULTS}) may be left out. */
  readonly spec: JobSpecInput;
  /** @default a fresh unique id */
  readonly jobId?: string;
  /** @default the node's policy; one without `settlement` takes the node's */
  readonly policy?: JobPolicy;
}

/** A job as the node reports it. */
export interface JobSummary {
  readonly jobId: string;
  readonly state: string;
  readonly done: boolean;
  readonly owner: NodeId;
  readonly attempt: number;
  readonly bids: number;
  readonly winner: NodeId | null;
  readonly path: JobContext["path"];
  /** Set when the job's actor was retired and this comes from the archive. */
  readonly retired?: true;
}

/** What a node tells observers. */
export type NodeObservation =
  | {
    readonly type: "delivered";
    readonly envelope: Envelope;
    readonly actor: string;
    readonly state: string;
  }
  | {
    readonly type: "rejected";
    readonly envelope: Envelope;
    /** What code matches on (`unknown_job`, `not_accepted`, ...: `RejectCode`). */
    readonly code: string;
    readonly reason: string;
  }
  | {
    readonly type: "job.finished";
    readonly jobId: string;
    readonly state: string;
    readonly owner: NodeId;
  }
  | {
    readonly type: "effect.failed";
    readonly actor: string;
    readonly effect: string;
    readonly error: string;
  }
  | { readonly type: "supervision"; readonly event: SupervisionEvent }
  /** The journal refused an append: the node takes no more input and must stop. */
  | { readonly type: "journal.failed"; readonly error: JournalAppendError };

/** Counters of a node. */
export interface NodeStats {
  delivered: number;
  rejected: number;
  wireRejected: number;
  effects: number;
  effectFailures: number;
  /** Chain events about other nodes' jobs, not journaled (see `Node`: a role in a job). */
  chainIgnored: number;
  /** Escrows read from the chain on demand (`ChainPort.escrowOf`: a job this node takes part in). */
  escrowReads: number;
  /** Sampled announcements sent to the whole shard instead: no connected peer heard the sample. */
  sampleFallbacks: number;
  /** Bids on this node's jobs ignored: their worker was outside the job's sample. */
  sampledOut: number;
}

/** Checks the options a node cannot run with; throws a `RangeError` naming the option. */
export function checkNodeOptions(options: NodeOptions): void {
  const who = `Cannot create node "${options.id}"`;
  if (options.network.self !== options.id) {
    throw new RangeError(`${who}: its network identity is "${options.network.self}"`);
  }
  if (options.roles.length === 0) throw new RangeError(`${who}: it has no roles`);
  if (options.roles.includes("worker") && options.worker === undefined) {
    throw new RangeError(`${who}: the worker role needs a worker profile`);
  }
  const ratio = options.worker?.priceRatio;
  if (ratio !== undefined && !(ratio > 0 && ratio <= 1)) {
    throw new RangeError(`Invalid worker.priceRatio ${ratio}: must be in (0, 1]`);
  }
  const pricing = options.worker?.pricing;
  if (pricing?.kind === "ratio" && !(pricing.ratio > 0 && pricing.ratio <= 1)) {
    throw new RangeError(`Invalid worker.pricing.ratio ${pricing.ratio}: must be in (0, 1]`);
  }
  if (pricing?.kind === "cost" && (!(pricing.perMs >= 0) || pricing.floor < 0n)) {
    throw new RangeError(
      `Invalid worker.pricing: perMs and floor must be non-negative, got ${pricing.perMs} and ${pricing.floor}`,
    );
  }
  if (options.policy?.settlement === "chain" && !canDecide(options.chain)) {
    throw new RangeError(
      `${who}: policy.settlement "chain" needs a chain port with chain-decided calls (submitAttestations, registerKey)`,
    );
  }
  const bond = options.verifierStake;
  if (bond !== undefined && (typeof bond !== "bigint" || bond < 0n)) {
    throw new RangeError(`Invalid verifierStake ${bond}: must be a non-negative bigint`);
  }
  const floor = options.minBidderReputation;
  if (floor !== undefined && (!Number.isSafeInteger(floor) || floor < 0)) {
    throw new RangeError(`Invalid minBidderReputation ${floor}: must be a non-negative integer`);
  }
  const wait = options.escrowWaitMs;
  if (wait !== undefined && (!Number.isSafeInteger(wait) || wait < 0)) {
    throw new RangeError(`Invalid escrowWaitMs ${wait}: must be a non-negative integer of ms`);
  }
  const memory = options.escrowMemory;
  if (memory !== undefined && (!Number.isSafeInteger(memory) || memory < 1)) {
    throw new RangeError(`Invalid escrowMemory ${memory}: must be a positive integer`);
  }
  const bidders = options.sampling?.bidders;
  if (bidders !== undefined && (!Number.isSafeInteger(bidders) || bidders < 1)) {
    throw new RangeError(`Invalid sampling.bidders ${bidders}: must be a positive integer`);
  }
  const bits = options.sampling?.bits;
  if (
    bits !== undefined && (!Number.isSafeInteger(bits) || bits < 0 || bits > MAX_SAMPLE_BITS)
  ) {
    throw new RangeError(
      `Invalid sampling.bits ${bits}: must be an integer from 0 to ${MAX_SAMPLE_BITS}`,
    );
  }
  const retain = options.retainFinishedMs;
  if (
    retain !== undefined && retain !== null && (!Number.isSafeInteger(retain) || retain < 0)
  ) {
    throw new RangeError(
      `Invalid retainFinishedMs ${retain}: must be a non-negative integer of ms, or null`,
    );
  }
}

/** Summaries of a retired job, as the node reports it. */
export function summarizeRetired(r: RetiredJob): JobSummary {
  return {
    jobId: r.jobId,
    state: r.state,
    done: true,
    owner: r.owner,
    attempt: r.attempt,
    bids: r.bids,
    winner: r.winner,
    path: r.path,
    retired: true,
  };
}

/** The summary of a live job's context and state. */
export function summarizeJob(context: JobContext, state: string, done: boolean): JobSummary {
  return {
    jobId: context.jobId,
    state,
    done,
    owner: context.owner,
    attempt: context.attempt,
    bids: Object.keys(context.bids).length,
    winner: context.winner?.worker ?? null,
    path: context.path,
  };
}
