/**
 * A node: the supervisor tree behind one inbox, wired to its ports. `createNode()` composes
 * the network (gossip and peer events in), the chain (settlement events in, transactions out),
 * the executor and verifier (work out, outcomes in) and the clock (deadlines in). Every input
 * enters through the inbox; every effect a machine asks for goes out through a port, and its
 * outcome comes back through the inbox.
 *
 * @module
 */
import type { ActorCell } from "../../actors/actor_cell.ts";
import type { RestartIntensity, SupervisionEvent } from "../../actors/supervisor.ts";
import { ActorTree, RETIRE_KEY, type RetiredJob } from "../../actors/tree.ts";
import type { ChainCursor, ChainError, ChainPort, LedgerTotals } from "../../chain/port.ts";
import { chainEventToActorEvents } from "../../chain/translate.ts";
import type { BidRecord, JobContext } from "../../machines/job_machine.ts";
import type { PeerConfig } from "../../machines/peer_machine.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../../machines/policies.ts";
import type {
  DeclineReason,
  EffectRequest,
  HardwareClass,
  JobSpec,
  NodeId,
  Role,
} from "../../machines/types.ts";
import {
  decodeMessage,
  encodeMessage,
  type Topic,
  TOPICS,
  WireError,
} from "../../protocols/messages.ts";
import type { GossipMessage, NetworkPort, PeerEvent } from "../../protocols/network_port.ts";
import {
  requestSnapshots,
  serveSnapshots,
  type SnapshotData,
} from "../../protocols/snapshot_protocol.ts";
import {
  type Addressed,
  effectToWire,
  RuleViolation,
  wireToActorEvents,
} from "../../protocols/translate.ts";
import { type Clock, systemClock } from "./clock.ts";
import { BuiltinExecutor, commitmentOf, type ExecutorPort } from "../compute/mod.ts";
import type { ModelStore } from "../compute/mod.ts";
import { fetchModel, serveModels } from "../compute/mod.ts";
import { PayloadHashMismatchError } from "../../protocols/payload_errors.ts";
// Types only: onnxruntime (a native library) loads on a node's first ONNX job, see onnx_lazy.ts.
import type { ToleranceOptions } from "../compute/mod.ts";
import { LazyOnnxExecutor, toleranceVerifier } from "../compute/mod.ts";
import { WorkerPool } from "../compute/mod.ts";
import { type Envelope, Inbox, type JournalSink, type Source } from "./inbox.ts";
import { logger } from "./log.ts";
import { Timers } from "./timers.ts";
import { ReexecutionVerifier, type VerifierPort } from "../compute/mod.ts";

/**
 * How a worker prices a bid: `ratio` asks a share of the job's maximum price; `cost` asks
 * `floor + perMs × etaMs` (rounded up) and declines (`price_below_floor`) jobs paying less.
 */
export type PricingPolicy =
  | { readonly kind: "ratio"; readonly ratio: number }
  | { readonly kind: "cost"; readonly perMs: number; readonly floor: bigint };

/** How a worker node bids. */
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
   * Fault injection for simulations and tests: `silent` never runs assigned jobs,
   * `wrong_result` returns a corrupted output. @default "none"
   */
  readonly fault?: "none" | "silent" | "wrong_result";
}

/** How long a finished job's actor stays live by default: one minute. */
export const DEFAULT_RETAIN_FINISHED_MS = 60_000;

/** Options of {@link createNode}. */
export interface NodeOptions {
  /** The node's id; must equal `network.self`. */
  readonly id: NodeId;
  readonly roles: readonly Role[];
  readonly network: NetworkPort;
  readonly chain: ChainPort;
  /** @default a {@link BuiltinExecutor} */
  readonly executor?: ExecutorPort;
  /** @default re-execution with `executor` */
  readonly verifier?: VerifierPort;
  /** @default the wall clock */
  readonly clock?: Clock;
  /** Where stamped events are appended before delivery. @default kept nowhere */
  readonly journal?: JournalSink;
  /** @default {@link DEFAULT_POLICY} */
  readonly policy?: JobPolicy;
  readonly peer?: PeerConfig;
  readonly intensity?: RestartIntensity;
  /**
   * How long a finished job's actor stays live before it is retired to the archive (a compact
   * summary), virtual ms; `null` keeps every finished actor. @default {@link DEFAULT_RETAIN_FINISHED_MS}
   */
  readonly retainFinishedMs?: number | null;
  /** Retired jobs remembered (status, late news refused). @default 10,000 */
  readonly archiveSize?: number;
  /** Required with the `worker` role. */
  readonly worker?: WorkerProfile;
  /** Where chain events are read from at start. @default the first block */
  readonly chainCursor?: ChainCursor;
  /** How often capabilities are re-announced, ms; 0 only at start. @default 30_000 */
  readonly capabilityIntervalMs?: number;
  /**
   * ONNX models this node serves (worker) or re-runs (verifier), by content hash. With it and
   * no `executor`, the node runs `builtin:matmul` and ONNX jobs (`OnnxExecutor`, loaded
   * on the first ONNX job); a worker advertises `models.list()` in its capabilities and
   * declines ONNX jobs whose model it does not hold (unless `fetchModels`). The node serves
   * these models by hash over the payload protocol (`/ciro/payload/1.0.0`), and a verifier
   * (or a worker with `fetchModels`) missing a job's model fetches it from a peer that
   * advertised it, else from the job's owner or its worker, checks its hash and stores it here
   * before running (see `model_fetch.ts`). @default none
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
}

/** What a client submits. */
export interface JobRequest {
  readonly spec: JobSpec;
  /** @default a fresh unique id */
  readonly jobId?: string;
  /** @default the node's policy */
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
  | { readonly type: "rejected"; readonly envelope: Envelope; readonly reason: string }
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
  | { readonly type: "supervision"; readonly event: SupervisionEvent };

/** Counters of a node. */
export interface NodeStats {
  delivered: number;
  rejected: number;
  wireRejected: number;
  effects: number;
  effectFailures: number;
}

/** Penalty to a peer's score for a message that failed decoding or an application rule. */
const WIRE_PENALTY = -10;

/** How a transaction sent again after a crash went ({@link Node.resendTransaction}). */
export type ResendOutcome = "sent" | "already_done" | "superseded" | "failed" | "aborted";

/** What makes two effects of one actor the same: the request, whom it is about, the attempt. */
function effectKey(effect: EffectRequest): string {
  const e = effect as { worker?: string; reason?: string; accepted?: boolean; attempt?: number };
  return `${effect.type}|${e.worker ?? ""}|${e.reason ?? ""}|${e.accepted ?? ""}|${
    e.attempt ?? ""
  }`;
}

/** Whether recovery may send `effect` again ({@link Node.resumeEffect}, {@link Node.resendTransaction}). */
function resumable(effect: EffectRequest): boolean {
  return effect.type.startsWith("chain.") || effect.type.startsWith("net.") ||
    effect.type === "exec.run" || effect.type === "verify.run" ||
    effect.type === "worker.consider";
}

/** Codes that, for a transaction sent again, mean the chain is already past it. */
const ALREADY_DONE: readonly string[] = ["duplicate_job", "invalid_state"];

function compareCursors(a: ChainCursor, b: ChainCursor): number {
  return a.blockNumber - b.blockNumber || a.eventIndex - b.eventIndex;
}

let jobCounter = 0;

/** A node: the actor tree, its inbox, and its ports. */
export class Node {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  readonly inbox: Inbox;
  readonly tree: ActorTree;
  readonly stats: NodeStats = {
    delivered: 0,
    rejected: 0,
    wireRejected: 0,
    effects: 0,
    effectFailures: 0,
  };
  readonly #options: NodeOptions;
  readonly #clock: Clock;
  readonly #executor: ExecutorPort;
  readonly #verifier: VerifierPort;
  readonly #pool: WorkerPool;
  /** The ONNX executor this node made from `options.models` (closed at stop). */
  readonly #onnx: LazyOnnxExecutor | undefined;
  /** Models held, refreshed from `options.models` at each capability announcement. */
  #models: ReadonlySet<string> = new Set();
  readonly #timers: Timers;
  readonly #retainFinishedMs: number | null;
  readonly #log;
  readonly #observers = new Set<(o: NodeObservation) => void>();
  readonly #capabilities = new Map<NodeId, { roles: readonly Role[]; hardware: HardwareClass }>();
  /** Models each peer advertised in its capabilities, to fetch missing models from. */
  readonly #peerModels = new Map<NodeId, ReadonlySet<string>>();
  /** Model fetches under way, by hash (concurrent jobs on one model fetch it once). */
  readonly #fetching = new Map<string, Promise<void>>();
  /** What the validator decoded, keyed by the payload bytes (the same object reaches delivery). */
  readonly #decoded = new WeakMap<Uint8Array, Addressed[]>();
  /** Jobs this worker declined as busy, to bid on when a slot frees up. */
  readonly #busy = new Map<string, Extract<EffectRequest, { type: "worker.consider" }>>();
  readonly #cleanup: (() => void)[] = [];
  readonly #inflight = new Set<Promise<unknown>>();
  #abort = new AbortController();
  #started = false;
  /** Where the chain subscription stands: after the last chain event it handed over. */
  #chainSeen: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  /** Woken after each chain event the subscription hands over ({@link Node.catchUpChain}). */
  readonly #chainWaiters = new Set<() => void>();
  /** Effects each live actor asked for since this node was created ({@link effectKey}). */
  readonly #sent = new Map<string, Set<string>>();

  constructor(options: NodeOptions) {
    if (options.network.self !== options.id) {
      throw new RangeError(
        `Cannot create node "${options.id}": its network identity is "${options.network.self}"`,
      );
    }
    if (options.roles.length === 0) {
      throw new RangeError(`Cannot create node "${options.id}": it has no roles`);
    }
    if (options.roles.includes("worker") && options.worker === undefined) {
      throw new RangeError(
        `Cannot create node "${options.id}": the worker role needs a worker profile`,
      );
    }
    const ratio = options.worker?.priceRatio;
    if (ratio !== undefined && !(ratio > 0 && ratio <= 1)) {
      throw new RangeError(`Invalid worker.priceRatio ${ratio}: must be in (0, 1]`);
    }
    this.id = options.id;
    this.roles = options.roles;
    this.#options = options;
    const retain = options.retainFinishedMs === undefined
      ? DEFAULT_RETAIN_FINISHED_MS
      : options.retainFinishedMs;
    if (retain !== null && (!Number.isSafeInteger(retain) || retain < 0)) {
      throw new RangeError(
        `Invalid retainFinishedMs ${retain}: must be a non-negative integer of ms, or null`,
      );
    }
    this.#retainFinishedMs = retain;
    this.#clock = options.clock ?? systemClock;
    const builtin = new BuiltinExecutor();
    const pricing = options.worker?.pricing;
    if (pricing?.kind === "ratio" && !(pricing.ratio > 0 && pricing.ratio <= 1)) {
      throw new RangeError(`Invalid worker.pricing.ratio ${pricing.ratio}: must be in (0, 1]`);
    }
    if (pricing?.kind === "cost" && (!(pricing.perMs >= 0) || pricing.floor < 0n)) {
      throw new RangeError(
        `Invalid worker.pricing: perMs and floor must be non-negative, got ${pricing.perMs} and ${pricing.floor}`,
      );
    }
    this.#onnx = options.executor === undefined && options.models !== undefined
      ? new LazyOnnxExecutor(options.models)
      : undefined;
    const onnx = this.#onnx;
    this.#executor = options.executor ??
      (onnx
        ? {
          // builtin:matmul here, ONNX through the lazy executor (a CompositeExecutor's routing).
          supports: (kind) => kind.type === "onnx" || builtin.supports(kind),
          execute: (spec, input, o) =>
            spec.kind.type === "onnx"
              ? onnx.execute(spec, input, o)
              : builtin.execute(spec, input, o),
        }
        : builtin);
    this.#verifier = options.verifier ??
      (onnx || options.tolerances
        ? toleranceVerifier(this.#executor, options.tolerances ?? {})
        : new ReexecutionVerifier(this.#executor));
    this.#pool = new WorkerPool({
      concurrency: options.executions?.concurrency ?? options.worker?.capacity ?? 2,
      maxQueued: options.executions?.maxQueued ?? 16,
    });
    this.#log = logger("node", options.id);
    this.#timers = new Timers(
      this.#clock,
      (actorId, key, due) => this.#submit("timer", actorId, { type: "timer.fired", key, due }),
    );
    this.tree = new ActorTree({
      self: options.id,
      account: options.chain.account,
      roles: options.roles,
      now: () => this.#clock.now(),
      policy: options.policy ?? DEFAULT_POLICY,
      ...(options.peer ? { peerConfig: options.peer } : {}),
      ...(options.intensity ? { intensity: options.intensity } : {}),
      ...(options.archiveSize !== undefined ? { archiveSize: options.archiveSize } : {}),
      onEffect: (actorId, effect) => this.#dispatch(actorId, effect),
      onRestored: (cell) => this.#rearm(cell),
      onRetired: (job) => {
        this.#timers.cancelActor(`job:${job.jobId}`);
        this.#options.journal?.retired?.(`job:${job.jobId}`, job);
      },
      onSupervision: (event) => {
        this.#log.warn("Supervision: {type} {detail}", {
          type: event.type,
          detail: JSON.stringify(event),
        });
        this.#notify({ type: "supervision", event });
      },
    });
    this.inbox = new Inbox({
      clock: this.#clock,
      ...(options.journal ? { journal: options.journal } : {}),
      deliver: (envelope) => this.#deliver(envelope),
    });
  }

  /** Joins the network, subscribes to the chain, stakes if a worker, announces capabilities. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { network, chain } = this.#options;
    for (const topic of Object.values(TOPICS)) {
      this.#cleanup.push(
        network.subscribe(topic, (m) => this.#validate(m), (m) => this.#receive(m)),
      );
    }
    this.#cleanup.push(network.onPeerEvent((event) => this.#peerEvent(event)));
    serveSnapshots(network, () => this.snapshot());
    if (this.#options.models) this.#cleanup.push(serveModels(network, this.#options.models));
    await network.start();
    options.signal?.throwIfAborted();
    const stake = this.#options.worker?.stake ?? 0n;
    if (this.roles.includes("worker") && stake > 0n) {
      const have = await chain.stakeOf(this.id, options);
      if (have < stake) await chain.stake({ amount: stake - have }, options);
    }
    const from = this.#options.chainCursor ?? { blockNumber: 0, eventIndex: 0 };
    this.#chainSeen = from;
    this.#cleanup.push(chain.subscribe((event) => {
      for (const { target, event: e } of chainEventToActorEvents(event)) {
        this.#submit("chain", target, e);
      }
      // Journaled and delivered (the inbox delivers at once outside a delivery): seen.
      this.#chainSeen = { blockNumber: event.blockNumber, eventIndex: event.eventIndex + 1 };
      for (const wake of [...this.#chainWaiters]) wake();
    }, { from }));
    await this.announceCapabilities();
    const every = this.#options.capabilityIntervalMs ?? 30_000;
    if (every > 0) {
      const timer = setInterval(() => void this.announceCapabilities().catch(() => {}), every);
      this.#cleanup.push(() => clearInterval(timer));
    }
  }

  /** Stops taking input, waits for effects in flight, stops the actors and leaves the network. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#abort.abort(new Error(`Node "${this.id}" is stopping`));
    for (const undo of this.#cleanup.splice(0)) undo();
    this.#timers.cancelAll();
    this.inbox.close();
    await Promise.allSettled([...this.#inflight]);
    this.tree.stop();
    await this.#options.network.stop();
    await this.#onnx?.close();
    this.#abort = new AbortController();
  }

  /** Publishes this node's roles and hardware, so clients know their workers and verifiers. */
  async announceCapabilities(): Promise<void> {
    if (this.#options.models) {
      this.#models = new Set(await this.#options.models.list({ signal: this.#abort.signal }));
    }
    const message = {
      type: "node.capabilities" as const,
      node: this.id,
      roles: [...this.roles],
      hardware: this.#options.worker?.hardware ?? "cpu",
      models: [...this.#models].slice(0, 256),
    };
    this.#capabilities.set(this.id, { roles: this.roles, hardware: message.hardware });
    await this.#options.network.publish(
      TOPICS.capabilities,
      encodeMessage(TOPICS.capabilities, message),
    );
  }

  /** Verifier nodes this node knows of (from capability gossip). */
  verifierPool(): NodeId[] {
    return [...this.#capabilities].filter(([, c]) => c.roles.includes("verifier")).map(([id]) => id)
      .sort();
  }

  /** The nodes this node has heard capabilities from (itself included). */
  knownNodes(): { id: NodeId; roles: readonly Role[]; hardware: HardwareClass }[] {
    return [...this.#capabilities].map(([id, c]) => ({ id, ...c }));
  }

  /** Open jobs and bids, as a joining peer asks for them (`/ciro/snapshot/1.0.0`). */
  snapshot(): SnapshotData {
    const jobs: SnapshotData["jobs"][number][] = [];
    const bids: SnapshotData["bids"][number][] = [];
    for (const cell of this.tree.jobs.cells()) {
      if (cell.state !== "bidding") continue;
      const c = cell.snapshot.context as JobContext;
      const closesAt = c.deadlines.bid_window;
      if (closesAt === undefined) continue;
      jobs.push({
        type: "job.announce",
        jobId: c.jobId,
        owner: c.owner,
        attempt: c.attempt,
        bidWindowEndsAt: closesAt,
        spec: c.spec as never,
      });
      for (const bid of Object.values(c.bids)) {
        if (bid.status !== "open") continue;
        const { attempt: _a, receivedAt: _r, status: _s, reason: _x, ...offer } = bid;
        bids.push({ type: "bid.submit", ...offer });
      }
    }
    return { jobs, bids };
  }

  /**
   * Asks about a third of the known peers for their open jobs and bids and feeds what they
   * hold into the tree, as a node that joins late does. Returns how many jobs and bids came in.
   * Snapshot answers are not signed by the jobs' owners; the chain stays the source of truth
   * (a job that is not escrowed on chain is never assigned).
   */
  async requestSnapshot(
    options: { fraction?: number; signal?: AbortSignal } = {},
  ): Promise<{ jobs: number; bids: number; asked: number }> {
    const result = await requestSnapshots(this.#options.network, options);
    for (const job of result.jobs) {
      if (job.owner === this.id || this.tree.get(`job:${job.jobId}`) !== undefined) continue;
      this.#submit("network", `job:${job.jobId}`, {
        type: "job.announced",
        owner: job.owner,
        spec: job.spec,
        attempt: job.attempt,
        bidWindowEndsAt: job.bidWindowEndsAt,
      });
    }
    for (const message of result.bids) {
      if (message.type !== "bid.submit") continue;
      const { type: _t, ...bid } = message;
      if (this.tree.get(`job:${bid.jobId}`)?.state === "bidding") {
        this.#submit("network", `job:${bid.jobId}`, { type: "bid.received", bid });
      }
    }
    return { jobs: result.jobs.length, bids: result.bids.length, asked: result.asked.length };
  }

  /** Watches what the node does. Returns an unsubscribe. */
  observe(observer: (observation: NodeObservation) => void): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /** Submits a job as its client. Returns the job id. */
  submitJob(request: JobRequest): string {
    if (!this.roles.includes("client")) {
      throw new RangeError(`Cannot submit a job on node "${this.id}": it is not a client`);
    }
    const jobId = request.jobId ??
      `${this.id.slice(-8)}-${(++jobCounter).toString(36)}-${
        Math.random().toString(36).slice(2, 8)
      }`;
    const spec = request.spec;
    if (spec.input !== undefined && commitmentOf(spec.input) !== spec.inputCommitment) {
      throw new RangeError(`Cannot submit job "${jobId}": the input does not match its commitment`);
    }
    this.#submit("operator", `job:${jobId}`, {
      type: "job.submit",
      spec,
      verifierPool: this.verifierPool(),
      policy: request.policy ?? this.#options.policy ?? DEFAULT_POLICY,
    });
    return jobId;
  }

  /** Asks to cancel a job (only its client can, and only before assignment). */
  cancelJob(jobId: string): void {
    this.#submit("operator", `job:${jobId}`, { type: "job.cancel" });
  }

  /** Summaries of the jobs this node knows: retired ones (oldest first), then live ones. */
  jobs(): JobSummary[] {
    return [
      ...[...this.tree.archive()].map(summarizeRetired),
      ...[...this.tree.jobs.cells()].map(summarize),
    ];
  }

  /** A finished job whose actor was retired (see {@link NodeOptions.retainFinishedMs}). */
  retiredJob(jobId: string): RetiredJob | undefined {
    return this.tree.retired(jobId);
  }

  /** One live job's full context and state, or undefined (see {@link Node.retiredJob}). */
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined {
    const cell = this.tree.get(`job:${jobId}`);
    if (cell === undefined) return undefined;
    return { state: cell.state, done: cell.done, context: cell.snapshot.context as JobContext };
  }

  /** The peers this node tracks, with state and score. */
  peers(): { peer: NodeId; state: string; score: number }[] {
    return [...this.tree.peers.cells()].map((cell) => ({
      peer: cell.id.slice(5),
      state: cell.state,
      score: (cell.snapshot.context as { score: number }).score,
    }));
  }

  /** The chain's money totals, for the money check. */
  chainTotals(): Promise<LedgerTotals> {
    return this.#options.chain.totals({ signal: this.#abort.signal });
  }

  /** Resolves when no effect is in flight (tests, orderly shutdown). */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /**
   * Sends again an effect an actor asked for before a crash (recovery resumes work in flight,
   * such as an execution, whose outcome never reached the journal). Returns false, sending
   * nothing, when the actor asked for the same effect itself since this node was created (after
   * news it heard while the node caught up, say).
   */
  resumeEffect(actorId: string, effect: EffectRequest): boolean {
    if (this.#sent.get(actorId)?.has(effectKey(effect))) return false;
    this.#dispatch(actorId, effect);
    return true;
  }

  /**
   * Resolves once this node has delivered every chain event the chain held when it was called:
   * it reads where the chain's events end, from where the subscription stands (`eventsSince`),
   * then waits until the subscription has handed that last event over (journaled and delivered,
   * like every chain event). If the chain no longer holds that event (a reorg), it is caught up
   * as soon as nothing is left after the subscription's position (checked every `recheckMs`).
   * A recovered node calls it before sending its transactions again, so that one which landed
   * before a crash is seen as its chain event first. Resolves with the position reached; rejects
   * if `signal` aborts or the node stops.
   */
  async catchUpChain(
    options: { signal?: AbortSignal; recheckMs?: number } = {},
  ): Promise<ChainCursor> {
    if (!this.#started) {
      throw new Error(`Cannot catch up with the chain: node "${this.id}" is not started`);
    }
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#abort.signal])
      : this.#abort.signal;
    const target = await this.#chainEnd(this.#chainSeen, signal);
    if (target === undefined) return this.#chainSeen;
    const recheckMs = options.recheckMs ?? 250;
    while (compareCursors(this.#chainSeen, target) < 0) {
      const moved = await this.#chainMoved(recheckMs, signal);
      if (!moved && await this.#chainEnd(this.#chainSeen, signal) === undefined) break;
    }
    return this.#chainSeen;
  }

  /**
   * Sends again a chain transaction an actor asked for before a crash; call it after
   * {@link Node.catchUpChain}. Resolves with what happened:
   *
   * - `"sent"`: included; its chain event follows, as for a first send;
   * - `"already_done"`: refused as done already (`duplicate_job`, or `invalid_state`: the job is
   *   past that step on chain, by a transaction of ours whose event is still on its way). Nothing
   *   is reported to the actor: a `chain.tx.failed` would fail a job whose transaction landed;
   *   the chain event brings it on;
   * - `"superseded"`: not sent: the actor sent the same transaction itself since this node was
   *   created (after news it heard while catching up, or a deadline that fired);
   * - `"failed"`: refused for another reason; the actor hears `chain.tx.failed`, as it would
   *   after a first send;
   * - `"aborted"`: the node stopped (or was not started).
   */
  resendTransaction(actorId: string, effect: EffectRequest): Promise<ResendOutcome> {
    if (!effect.type.startsWith("chain.")) {
      throw new TypeError(
        `Cannot resend "${effect.type}" of "${actorId}": it is not a transaction`,
      );
    }
    if (!this.#started) return Promise.resolve("aborted");
    if (this.#sent.get(actorId)?.has(effectKey(effect))) return Promise.resolve("superseded");
    this.#noteSent(actorId, effect);
    this.stats.effects++;
    const work = this.#chainCall(actorId, effect, this.#abort.signal, { resent: true });
    this.#track(actorId, effect.type, work);
    return work.catch(() => "failed" as const);
  }

  /** The position after the last event the chain holds at or after `from`, if any. */
  async #chainEnd(from: ChainCursor, signal: AbortSignal): Promise<ChainCursor | undefined> {
    const limit = 1000;
    let end: ChainCursor | undefined;
    for (let cursor = from;;) {
      const { events, next } = await this.#options.chain.eventsSince(cursor, { signal, limit });
      const last = events.at(-1);
      if (last === undefined) return end;
      end = { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 };
      if (events.length < limit) return end;
      cursor = next;
    }
  }

  /** Whether the subscription hands over a chain event within `ms`. */
  #chainMoved(ms: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const done = (moved: boolean) => {
        clearTimeout(timer);
        this.#chainWaiters.delete(wake);
        signal.removeEventListener("abort", abort);
        resolve(moved);
      };
      const wake = () => done(true);
      const abort = () => {
        done(false);
        reject(signal.reason);
      };
      const timer = setTimeout(() => done(false), ms);
      this.#chainWaiters.add(wake);
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    });
  }

  #submit(source: Source, target: string, event: Addressed["event"]): void {
    try {
      this.inbox.submit(source, target, event);
    } catch (error) {
      this.#log.debug("Dropped {type} for {target}: {error}", {
        type: event.type,
        target,
        error: (error as Error).message,
      });
    }
  }

  #notify(observation: NodeObservation): void {
    for (const observer of this.#observers) observer(observation);
  }

  #deliver(envelope: Envelope): void {
    const before = this.tree.get(envelope.target);
    const wasDone = before?.done ?? false;
    const stateBefore = before?.state;
    const outcome = this.tree.deliver(envelope);
    this.#options.journal?.delivered?.(envelope, outcome, this.tree.get(envelope.target));
    if (outcome.status === "rejected") {
      this.stats.rejected++;
      // Stale timers and chain news about jobs we never heard of are expected; say so quietly.
      const quiet = envelope.source === "timer" || envelope.source === "chain" ||
        (envelope.source === "effect" && before?.done === true) ||
        (envelope.source === "network" &&
          (outcome.reason.startsWith("unknown job") || outcome.reason.endsWith("was retired")));
      const detail = {
        type: envelope.event.type,
        target: envelope.target,
        seq: envelope.seq,
        reason: outcome.reason,
      };
      if (quiet) this.#log.debug("Rejected {type} for {target} (#{seq}): {reason}", detail);
      else this.#log.info("Rejected {type} for {target} (#{seq}): {reason}", detail);
      this.#notify({ type: "rejected", envelope, reason: outcome.reason });
      return;
    }
    if (outcome.status === "crashed") return; // the supervisor restarted it and reported
    this.stats.delivered++;
    const cell = this.tree.get(envelope.target);
    if (cell === undefined) return;
    this.#notify({ type: "delivered", envelope, actor: cell.id, state: cell.state });
    if (this.#busy.size > 0 && stateBefore !== cell.state) this.#reconsiderBusy();
    if (!wasDone && cell.done && cell.id.startsWith("job:")) {
      const context = cell.snapshot.context as JobContext;
      this.#armRetirement(cell);
      this.#notify({
        type: "job.finished",
        jobId: context.jobId,
        state: cell.state,
        owner: context.owner,
      });
    }
  }

  /** Arms the retirement of a finished job actor, `retainFinishedMs` after it finished. */
  #armRetirement(cell: ActorCell): void {
    if (this.#retainFinishedMs === null) return;
    const path = (cell.snapshot.context as JobContext).path;
    const finishedAt = path.at(-1)?.at ?? this.#clock.now();
    this.#timers.arm(cell.id, RETIRE_KEY, finishedAt + this.#retainFinishedMs);
  }

  #rearm(cell: ActorCell): void {
    if (cell.done) {
      if (cell.id.startsWith("job:")) this.#armRetirement(cell);
      return;
    }
    const deadlines = (cell.snapshot.context as { deadlines?: Record<string, number> }).deadlines ??
      {};
    for (const [key, due] of Object.entries(deadlines)) this.#timers.arm(cell.id, key, due);
  }

  #track<T>(actor: string, effect: string, work: Promise<T>): void {
    const p = work.catch((error: unknown) => {
      this.stats.effectFailures++;
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn("Effect {effect} of {actor} failed: {message}", { effect, actor, message });
      this.#notify({ type: "effect.failed", actor, effect, error: message });
    }).finally(() => this.#inflight.delete(p));
    this.#inflight.add(p);
  }

  #dispatch(actorId: string, effect: EffectRequest): void {
    this.stats.effects++;
    if (resumable(effect)) this.#noteSent(actorId, effect);
    const signal = this.#abort.signal;
    switch (effect.type) {
      case "timer.arm":
        return this.#timers.arm(actorId, effect.key, effect.at);
      case "timer.cancel":
        return this.#timers.cancel(actorId, effect.key);
      case "net.announce":
      case "net.assignment":
      case "net.result":
      case "net.attestation": {
        const out = effectToWire(effect);
        if (out === undefined) return;
        return this.#track(
          actorId,
          effect.type,
          this.#options.network.publish(out.topic, encodeMessage(out.topic, out.message as never), {
            signal,
          }),
        );
      }
      case "worker.consider":
        return this.#considerBid(actorId, effect);
      case "exec.run":
        return this.#track(actorId, effect.type, this.#execute(actorId, effect));
      case "verify.run":
        return this.#track(actorId, effect.type, this.#verify(actorId, effect));
      case "peer.withdraw_bids":
        return this.#withdrawBidsOf(effect.peer);
      case "peer.disconnect":
        this.#log.warn("Disconnecting peer {peer}: {reason}", {
          peer: effect.peer,
          reason: effect.reason,
        });
        return;
      case "log.reject":
        this.#log.info("{actor} rejected {event}: {reason}", {
          actor: effect.actor,
          event: effect.event,
          reason: effect.reason,
        });
        return;
      default:
        return this.#track(actorId, effect.type, this.#chainCall(actorId, effect, signal));
    }
  }

  /** Remembers that `actorId` asked for `effect`, forgetting finished actors now and then. */
  #noteSent(actorId: string, effect: EffectRequest): void {
    let sent = this.#sent.get(actorId);
    if (sent === undefined) {
      if (this.#sent.size >= 1024) {
        for (const id of [...this.#sent.keys()]) {
          if (this.tree.get(id)?.done !== false) this.#sent.delete(id);
        }
      }
      this.#sent.set(actorId, sent = new Set());
    }
    sent.add(effectKey(effect));
  }

  async #chainCall(
    actorId: string,
    effect: EffectRequest,
    signal: AbortSignal,
    options: { resent?: boolean } = {},
  ): Promise<ResendOutcome> {
    const chain = this.#options.chain;
    const o = { signal };
    try {
      switch (effect.type) {
        case "chain.escrow.lock": {
          const spec = effect.spec;
          await chain.submitJob({
            jobId: effect.jobId,
            amount: effect.amount,
            minStake: spec.requirements.minStake,
            modelHash: spec.kind.type === "onnx" ? spec.kind.modelHash : "0".repeat(64),
            inputCommitment: spec.inputCommitment,
          }, o);
          break;
        }
        case "chain.assign":
          await chain.assignWorker({
            jobId: effect.jobId,
            worker: effect.worker,
            price: effect.price,
            verifiers: effect.verifiers,
          }, o);
          break;
        case "chain.assignment.revoke":
          await chain.revokeAssignment({ jobId: effect.jobId, worker: effect.worker }, o);
          break;
        case "chain.result.submit":
          await chain.submitResult({ jobId: effect.jobId, commitment: effect.commitment }, o);
          break;
        case "chain.verification.record":
          await chain.recordVerification({ jobId: effect.jobId, accepted: effect.accepted }, o);
          break;
        case "chain.release":
          await chain.releasePayment({ jobId: effect.jobId }, o);
          break;
        case "chain.refund":
          await chain.refund({ jobId: effect.jobId, reason: effect.reason }, o);
          break;
        case "chain.slash":
          await chain.slash(
            { jobId: effect.jobId, worker: effect.worker, reason: effect.reason },
            o,
          );
          break;
        default:
          throw new TypeError(`Unknown effect "${effect.type}" from "${actorId}"`);
      }
      return "sent";
    } catch (error) {
      if (signal.aborted) return "aborted";
      const e = error as Partial<ChainError>;
      const code = e.name === "ChainError" && e.code ? e.code : "rpc_error";
      if (options.resent && ALREADY_DONE.includes(code)) {
        this.#log.info("Resent {effect} of {actor} was already done on chain: {message}", {
          effect: effect.type,
          actor: actorId,
          message: e.message ?? String(error),
        });
        return "already_done";
      }
      this.#submit("effect", actorId, {
        type: "chain.tx.failed",
        request: effect.type,
        code,
        message: e.message ?? String(error),
      });
      throw error;
    }
  }

  #considerBid(actorId: string, effect: Extract<EffectRequest, { type: "worker.consider" }>): void {
    const profile = this.#options.worker;
    if (profile === undefined || !this.roles.includes("worker")) return;
    const { spec } = effect;
    const stake = profile.stake ?? 0n;
    const etaMs = profile.etaMs ?? 500;
    const pricing = profile.pricing ?? { kind: "ratio", ratio: profile.priceRatio ?? 0.8 };
    const price = pricing.kind === "ratio"
      ? (spec.maxPrice * BigInt(Math.round(pricing.ratio * 10_000))) / 10_000n
      : pricing.floor + BigInt(Math.ceil(pricing.perMs * etaMs));
    const missingModel = spec.kind.type === "onnx" && this.#options.models !== undefined &&
      this.#options.fetchModels !== true &&
      !this.#models.has(spec.kind.modelHash);
    const decline: DeclineReason | null = !this.#executor.supports(spec.kind) || missingModel
      ? "unsupported_model"
      : spec.requirements.hardware === "gpu" && profile.hardware !== "gpu"
      ? "hardware_mismatch"
      : stake < spec.requirements.minStake
      ? "insufficient_stake"
      : price < (profile.minPrice ?? 0n) || price > spec.maxPrice
      ? "price_below_floor"
      : etaMs > spec.executionMs
      ? "deadline_too_short"
      : this.#busyNow(profile)
      ? "busy"
      : null;
    if (decline === "busy") this.#busy.set(actorId, effect);
    else this.#busy.delete(actorId);
    if (decline !== null) {
      this.#submit("effect", actorId, { type: "bid.declined", reason: decline });
      return;
    }
    const bid = {
      bidId: `${effect.jobId}.${effect.attempt}.${this.id.slice(-12)}`,
      jobId: effect.jobId,
      worker: this.id,
      price,
      etaMs,
      stake,
      reputation: 500,
      hardware: profile.hardware,
    };
    this.#submit("effect", actorId, { type: "bid.received", bid });
    this.#track(
      actorId,
      "bid.submit",
      this.#options.network.publish(
        TOPICS.bids,
        encodeMessage(TOPICS.bids, { type: "bid.submit", ...bid }),
      ),
    );
  }

  async #execute(
    actorId: string,
    effect: Extract<EffectRequest, { type: "exec.run" }>,
  ): Promise<void> {
    const fault = this.#options.worker?.fault ?? "none";
    if (fault === "silent") return;
    try {
      await this.#ensureModel(actorId, effect.spec);
      const result = await this.#pool.run(
        (signal) => this.#executor.execute(effect.spec, effect.spec.input, { signal }),
        { signal: this.#abort.signal, timeoutMs: effect.spec.executionMs },
      );
      let { output, commitment } = result;
      if (fault === "wrong_result") {
        output = { corrupted: output };
        commitment = commitmentOf(output);
      }
      this.#submit("effect", actorId, { type: "job.execution.completed", commitment, output });
    } catch (error) {
      this.#submit("effect", actorId, {
        type: "job.execution.failed",
        error: (error as Error).message,
      });
      throw error;
    }
  }

  async #verify(
    actorId: string,
    effect: Extract<EffectRequest, { type: "verify.run" }>,
  ): Promise<void> {
    const fault = this.#options.verifierFault ?? "none";
    const claimed = { commitment: effect.commitment, output: effect.output };
    if (fault === "none") await this.#ensureModel(actorId, effect.spec);
    const attestation = fault === "always_valid"
      ? { verdict: "valid" as const, commitment: effect.commitment }
      : fault === "always_invalid"
      ? { verdict: "invalid" as const, commitment: "0".repeat(64) }
      : await this.#pool.run(
        (signal) => this.#verifier.verify(effect.spec, effect.spec.input, claimed, { signal }),
        { signal: this.#abort.signal, timeoutMs: effect.spec.verificationMs },
      );
    this.#submit("effect", actorId, {
      type: "job.verification.completed",
      verdict: attestation.verdict,
      commitment: attestation.commitment,
    });
  }

  /**
   * Makes sure this node holds the model of an ONNX job, fetching it by hash when missing: from
   * peers that advertised it, then the job's owner, then its worker. A peer whose bytes do not
   * hash to the model is penalised and the next one is tried; nothing is stored from it.
   */
  async #ensureModel(actorId: string, spec: JobSpec): Promise<void> {
    const models = this.#options.models;
    if (spec.kind.type !== "onnx" || models === undefined) return;
    const hash = spec.kind.modelHash;
    const signal = this.#abort.signal;
    if (await models.has(hash, { signal })) return;
    const running = this.#fetching.get(hash);
    if (running) return await running;
    const context = this.tree.get(actorId)?.snapshot.context as JobContext | undefined;
    const advertised = [...this.#peerModels].filter(([, m]) => m.has(hash)).map(([id]) => id);
    const candidates = [
      ...new Set([...advertised, context?.owner, context?.winner?.worker]),
    ].filter((p): p is NodeId => p !== undefined && p !== this.id);
    const fetch = (async () => {
      const failures: string[] = [];
      for (const peer of candidates) {
        try {
          await fetchModel(this.#options.network, peer, hash, {
            models,
            signal: AbortSignal.any([signal, AbortSignal.timeout(60_000)]),
          });
          this.#models = new Set([...this.#models, hash]);
          this.#log.info("Fetched model {hash} from {peer}", { hash, peer });
          return;
        } catch (error) {
          signal.throwIfAborted();
          const message = (error as Error).message;
          failures.push(`${peer}: ${message}`);
          this.#log.warn("Cannot fetch model {hash} from {peer}: {message}", {
            hash,
            peer,
            message,
          });
          if (error instanceof PayloadHashMismatchError) {
            this.#submit("network", `peer:${peer}`, {
              type: "peer.scored",
              delta: WIRE_PENALTY,
              reason: message,
            });
          }
        }
      }
      throw new Error(
        `Model ${hash} is not held here and no peer served it (${
          failures.length === 0 ? "no peer to ask" : failures.join("; ")
        })`,
      );
    })();
    this.#fetching.set(hash, fetch);
    try {
      await fetch;
    } finally {
      this.#fetching.delete(hash);
    }
  }

  /**
   * A slot freed up: bid on jobs declined as busy whose bid window is still open, oldest first.
   * Without this, workers that all bid on the same burst of jobs would leave the next burst with
   * no bids at all.
   */
  #reconsiderBusy(): void {
    const profile = this.#options.worker;
    if (profile === undefined) return;
    for (const [actorId, effect] of [...this.#busy]) {
      const cell = this.tree.get(actorId);
      const closesAt = (cell?.snapshot.context as JobContext | undefined)?.deadlines.bid_window;
      if (
        cell === undefined || cell.state !== "bidding" || closesAt === undefined ||
        closesAt - this.#clock.now() < 10
      ) {
        this.#busy.delete(actorId);
        continue;
      }
      if (this.#busyNow(profile)) return;
      this.#considerBid(actorId, effect);
    }
  }

  /** Jobs this worker runs (assigned, not yet through execution) and its open bids. */
  #workload(): { running: number; bidding: number } {
    const load = { running: 0, bidding: 0 };
    for (const cell of this.tree.jobs.cells()) {
      if (cell.done) continue;
      const c = cell.snapshot.context as JobContext;
      if (
        c.winner?.worker === this.id && (cell.state === "executing" || cell.state === "reassigning")
      ) load.running++;
      else if (
        cell.state === "bidding" && c.bids[`${c.jobId}.${c.attempt}.${this.id.slice(-12)}`]
      ) load.bidding++;
    }
    return load;
  }

  /** Whether this worker is at its limits: jobs running (`capacity`) or open bids (`maxOpenBids`). */
  #busyNow(profile: WorkerProfile): boolean {
    const load = this.#workload();
    return load.running >= (profile.capacity ?? 2) || load.bidding >= (profile.maxOpenBids ?? 8);
  }

  #withdrawBidsOf(peer: NodeId): void {
    for (const cell of this.tree.jobs.cells()) {
      if (cell.done) continue;
      const context = cell.snapshot.context as JobContext;
      for (const bid of Object.values(context.bids) as BidRecord[]) {
        if (bid.worker === peer && bid.status === "open") {
          this.#submit("system", cell.id, {
            type: "bid.withdrawn",
            bidId: bid.bidId,
            worker: peer,
          });
        }
      }
    }
  }

  #validate(message: GossipMessage): "accept" | "reject" | "ignore" {
    try {
      const decoded = decodeMessage(message.topic as Topic, message.data);
      const addressed = wireToActorEvents(message.topic as Topic, decoded, message.from, {
        verifiersOf: (jobId) => {
          const cell = this.tree.get(`job:${jobId}`);
          const verifiers = (cell?.snapshot.context as JobContext | undefined)?.verifiers;
          return verifiers && verifiers.length > 0 ? verifiers : undefined;
        },
      });
      if (decoded.type === "node.capabilities") {
        this.#capabilities.set(decoded.node, { roles: decoded.roles, hardware: decoded.hardware });
        this.#peerModels.set(decoded.node, new Set(decoded.models));
      }
      this.#decoded.set(message.data, addressed);
      return "accept";
    } catch (error) {
      if (!(error instanceof WireError) && !(error instanceof RuleViolation)) throw error;
      this.stats.wireRejected++;
      this.#log.warn("Rejected message on {topic} from {from}: {reason}", {
        topic: message.topic,
        from: message.from,
        reason: error.message,
      });
      this.#submit("network", `peer:${message.from}`, {
        type: "peer.scored",
        delta: WIRE_PENALTY,
        reason: error.message,
      });
      return "reject";
    }
  }

  #receive(message: GossipMessage): void {
    const addressed = this.#decoded.get(message.data) ?? [];
    for (const { target, event } of addressed) this.#submit("network", target, event);
  }

  #peerEvent(event: PeerEvent): void {
    const target = `peer:${event.peer}`;
    switch (event.type) {
      case "connected":
        return this.#submit("network", target, { type: "peer.connected" });
      case "identified":
        return this.#submit("network", target, {
          type: "peer.identified",
          protocols: [...event.protocols],
        });
      case "heartbeat":
        return this.#submit("network", target, { type: "peer.heartbeat", rttMs: event.rttMs });
      case "disconnected":
        this.#capabilities.delete(event.peer);
        this.#peerModels.delete(event.peer);
        return this.#submit("network", target, { type: "peer.disconnected" });
    }
  }
}

function summarize(cell: ActorCell): JobSummary {
  const c = cell.snapshot.context as JobContext;
  return {
    jobId: c.jobId,
    state: cell.state,
    done: cell.done,
    owner: c.owner,
    attempt: c.attempt,
    bids: Object.keys(c.bids).length,
    winner: c.winner?.worker ?? null,
    path: c.path,
  };
}

function summarizeRetired(r: RetiredJob): JobSummary {
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

/** Creates a node (not started). */
export function createNode(options: NodeOptions): Node {
  return new Node(options);
}
