/**
 * A node: the supervisor tree behind one inbox, wired to its ports. `createNode()` composes
 * the network (gossip and peer events in: `ingress.ts`), the chain (settlement events in:
 * `chain_sync.ts`; transactions out), the executor and verifier (work out, outcomes in:
 * `effects.ts`), the worker's agent (`worker_agent.ts`) and the clock (deadlines in). Every input
 * enters through the inbox; every effect a machine asks for is recorded with the delivery that
 * emitted it, then goes out through a port, and its outcome comes back through the inbox.
 *
 * @module
 */
import type { ActorCell } from "../../actors/actor_cell.ts";
import type { DeclineRecord } from "../../actors/declines.ts";
import { ActorTree, jobContextOf, RETIRE_KEY, type RetiredJob } from "../../actors/tree.ts";
import {
  type ChainCursor,
  type ChainEvent,
  type ChainEventName,
  jobOfEvent,
  JobWatch,
  type LedgerTotals,
  namesAccount,
} from "../../chain/port.ts";
import {
  type AddressedEvent,
  jobAddress,
  jobIdOf,
  peerAddress,
  peerIdOf,
} from "../../machines/address.ts";
import { RejectionLog } from "../../protocols/rejection_log.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { JobPolicy } from "../../machines/policies.ts";
import type { EffectRequest, HardwareClass, JobSpec, NodeId, Role } from "../../machines/types.ts";
import {
  type AnnouncementTopic,
  announcementTopicsOf,
  encodeMessage,
  shardsFor,
  type Topic,
  TOPICS,
} from "../../protocols/messages.ts";
import { serveSnapshots, type SnapshotData } from "../../protocols/snapshot_protocol.ts";
import { DEFAULT_SAMPLE_BIDDERS, sampleBitsFor } from "../../protocols/sampling.ts";
import {
  BuiltinExecutor,
  commitmentOf,
  CompositeExecutor,
  type ExecutorPort,
  LazyOnnxExecutor,
  modelPayloadStore,
  ReexecutionVerifier,
  toleranceVerifier,
  WorkerPool,
} from "../compute/mod.ts";
import { BondDirectory } from "./bond_directory.ts";
import { ChainSync } from "./chain_sync.ts";
import { type Clock, systemClock } from "./clock.ts";
import { EffectDispatcher, isResumable, type ResendOutcome } from "./effects.ts";
import {
  type EffectRecord,
  type Envelope,
  type InboundEvent,
  Inbox,
  JournalAppendError,
  type Source,
} from "./inbox.ts";
import { Ingress, WIRE_PENALTY } from "./ingress.ts";
import { escrowTermsOf } from "./assignment_hints.ts";
import {
  DEFAULT_OUTPUT_FETCH_DELAY_MS,
  OUTPUT_FETCH_KEY,
  OutputFetcher,
  OutputStore,
} from "./output_fetch.ts";
import { firstHolding, servePayloadStore } from "../../protocols/payload_transfer.ts";
import { logger } from "./log.ts";
import {
  checkNodeOptions,
  completeSpec,
  DEFAULT_CAPABILITY_INTERVAL_MS,
  DEFAULT_MIN_BIDDER_REPUTATION,
  DEFAULT_RETAIN_FINISHED_MS,
  DEFAULT_VERIFIER_STAKE,
  type JobRequest,
  type JobSummary,
  type NodeObservation,
  type NodeOptions,
  nodePolicy,
  type NodeStats,
  summarizeJob,
  summarizeRetired,
} from "./options.ts";
import {
  ESCROW_CHECK_KEY,
  ESCROW_GRACE_MS,
  EscrowWatch,
  UNCONFIRMED_RECHECK_MS,
} from "./escrow_watch.ts";
import { OpenTransactions } from "./open_transactions.ts";
import { Timers } from "./timers.ts";
import { WorkerAgent } from "./worker_agent.ts";

export type { ResendOutcome } from "./effects.ts";

let jobCounter = 0;

/**
 * Chain events every node reads whatever job or account they concern: escrows and endings
 * (gossip is checked against them, `escrow_watch.ts`), stakes and registrations (the bond
 * directory).
 */
const FOLLOWED_BY_ALL: ReadonlySet<ChainEventName> = new Set<ChainEventName>([
  "JobSubmitted",
  "PaymentReleased",
  "EscrowRefunded",
  "WorkerStaked",
  "WorkerSlashed",
  "StakeWithdrawn",
  "VerifierRegistered",
  "KeyRegistered",
]);

/**
 * A job's escrow and ending: read by every node as they come where its chain port cannot read a
 * job's escrow (`ChainPort.escrowOf`), and by verifiers (which check owners' assignments against
 * escrows they may not have a record for yet, `ingress.ts`); else read on demand, for the jobs a
 * node takes a part in ({@link Node.#readEscrow}).
 */
const ESCROW_NEWS: ReadonlySet<ChainEventName> = new Set<ChainEventName>([
  "JobSubmitted",
  "PaymentReleased",
  "EscrowRefunded",
]);

/** Escrow reads in flight at once as a node reads again those of the jobs it restored. */
const RESTORED_READS_AT_ONCE = 16;

/**
 * Rounds of reads again of the restored jobs' escrows whose read failed, after the first, each
 * after a back off on the node's clock ({@link RESTORED_READ_RETRY_MS}, doubled each round): a
 * client's own open job is handed on in join snapshots only once its escrow was read (review R7
 * M-b), and nothing else reads it again.
 */
export const RESTORED_READ_RETRIES = 4;

/** The back off before the first round of reads again of failed restored reads, node clock ms. */
export const RESTORED_READ_RETRY_MS = 5_000;

/** What {@link Node.resume} did with the effects that were open at a crash. */
export interface ResumedEffects {
  /** Sent again (transactions, publishes, executions, verifications, bid decisions). */
  readonly sent: readonly EffectRecord[];
  /** Closed without sending: their actor finished or is gone. */
  readonly dropped: readonly EffectRecord[];
  /** How each resent transaction went, once it has. */
  readonly transactions: Promise<ResendOutcome[]>;
}

/**
 * The address of `event`'s job, or undefined when it names no job. (Not kept per event: a
 * `WeakMap` by event held an entry for every event a simulated chain keeps, more than half of what
 * its heap grew by, and its ephemerons cost every full collection; the chain's index now hands an
 * event only to the few nodes it concerns.)
 */
function jobAddressOf(event: ChainEvent): string | undefined {
  const jobId = (event as { jobId?: string }).jobId;
  return jobId === undefined ? undefined : jobAddress(jobId);
}

/** A node: the actor tree, its inbox, and its ports. */
export class Node {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  /** The policy of the jobs it submits and follows, settlement spelled out ({@link nodePolicy}). */
  readonly policy: JobPolicy;
  readonly inbox: Inbox;
  readonly tree: ActorTree;
  readonly stats: NodeStats = {
    delivered: 0,
    rejected: 0,
    wireRejected: 0,
    effects: 0,
    effectFailures: 0,
    chainIgnored: 0,
    escrowReads: 0,
    sampleFallbacks: 0,
    sampledOut: 0,
  };
  readonly #options: NodeOptions;
  /** A client: it ranks bids by the workers' reputations, so it reads every reputation. */
  readonly #ranksBids: boolean;
  /** A verifier: the chain may name it for a job it holds only a record of. */
  readonly #verifies: boolean;
  /**
   * The chain events this node reads whatever job or account they concern: {@link FOLLOWED_BY_ALL},
   * less every job's escrow and ending where it reads those on demand ({@link ESCROW_NEWS}).
   */
  readonly #followed: ReadonlySet<ChainEventName>;
  /** Whether it reads a job's escrow when it takes a part in it (`ChainPort.escrowOf`). */
  readonly #readsEscrows: boolean;
  /**
   * The jobs whose every chain event this node reads, as its chain port can index them: those
   * it has an actor for, and those the chain named it in (a verifier's record of a job whose spec
   * has not come). See {@link Node.#chainInterest}, which it over-approximates.
   */
  readonly #watched = new JobWatch();
  readonly #clock: Clock;
  /** The ONNX executor this node made from `options.models` (closed at stop). */
  readonly #onnx: LazyOnnxExecutor | undefined;
  readonly #executor: ExecutorPort;
  /** Models held, refreshed from `options.models` at each capability announcement. */
  #models: ReadonlySet<string> = new Set();
  readonly #timers: Timers;
  readonly #retainFinishedMs: number | null;
  readonly #log;
  readonly #observers = new Set<(o: NodeObservation) => void>();
  readonly #ingress: Ingress;
  readonly #chain: ChainSync;
  readonly #bonds: BondDirectory;
  readonly #agent: WorkerAgent | undefined;
  readonly #effects: EffectDispatcher;
  /** Outputs this node produced or heard, served by hash; and the fetch of missing ones. */
  readonly #outputs = new OutputStore();
  readonly #outputFetch: OutputFetcher;
  readonly #cleanup: (() => void)[] = [];
  /**
   * How deep this node sampled the current auction of each of its open jobs (`#sampleBits`),
   * to ignore bids from outside the sample; dropped when the job retires, not kept across a
   * restart (bids on a job announced before it are not checked).
   */
  readonly #samples = new Map<string, { attempt: number; bits: number }>();
  /**
   * The capable workers `#sampleBits` counted, by requirement, with the versions of the
   * capabilities and the stakes they were counted at (counting walks every known worker).
   */
  readonly #capableCounts = new Map<
    string,
    { readonly capabilities: number; readonly stakes: number; readonly capable: number }
  >();
  /** Bumped on each chain event that changes whom the bond directory calls a staked worker. */
  #stakesVersion = 0;
  /** Announcement shards this node listens on (protocol v2), with their unsubscribes. */
  readonly #shards = new Map<string, () => void>();
  /** Boundary rejections, logged rate-limited when the network port keeps no log of its own. */
  readonly #rejections = new RejectionLog();
  /** Escrows the chain showed, and the observed jobs whose escrow is checked at their window. */
  readonly #escrows: EscrowWatch;
  #started = false;
  /** Stopped: answers that come after it are not acted on. */
  #stopped = false;
  /** The background reads of the restored jobs' escrows ({@link Node.#readRestoredEscrows}). */
  #restoredReads: Promise<void> = Promise.resolve();
  /** Transactions asked for and not yet heard back from. */
  readonly #openTx = new OpenTransactions((id) => this.#options.journal?.effectClosed?.(id));
  /** The effects emitted by the delivery in progress, and its sequence number. */
  #emitted: EffectRecord[] | undefined;
  #emittingSeq = 0;

  constructor(options: NodeOptions) {
    checkNodeOptions(options);
    this.id = options.id;
    this.roles = options.roles;
    this.policy = nodePolicy(options);
    this.#options = options;
    this.#ranksBids = options.roles.includes("client");
    this.#verifies = options.roles.includes("verifier");
    this.#readsEscrows = typeof options.chain.escrowOf === "function" && !this.#verifies;
    this.#followed = this.#readsEscrows
      ? new Set([...FOLLOWED_BY_ALL].filter((name) => !ESCROW_NEWS.has(name)))
      : FOLLOWED_BY_ALL;
    this.#escrows = new EscrowWatch(options.escrowWaitMs, options.escrowMemory);
    this.#retainFinishedMs = options.retainFinishedMs === undefined
      ? DEFAULT_RETAIN_FINISHED_MS
      : options.retainFinishedMs;
    this.#clock = options.clock ?? systemClock;
    this.#log = logger("node", options.id);
    this.#onnx = options.executor === undefined && options.models !== undefined
      ? new LazyOnnxExecutor(options.models)
      : undefined;
    this.#executor = options.executor ??
      new CompositeExecutor(
        this.#onnx ? [new BuiltinExecutor(), this.#onnx] : [new BuiltinExecutor()],
      );
    const verifier = options.verifier ??
      (this.#onnx || options.tolerances
        ? toleranceVerifier(this.#executor, options.tolerances ?? {})
        : new ReexecutionVerifier(this.#executor));
    this.#timers = new Timers(this.#clock, (actorId, key, due) => {
      if (key === ESCROW_CHECK_KEY) return this.#escrowCheck(actorId);
      if (key === OUTPUT_FETCH_KEY) return this.#fetchOutput(actorId);
      this.#submit("timer", { target: actorId, event: { type: "timer.fired", key, due } });
    });
    this.tree = new ActorTree({
      self: options.id,
      account: options.chain.account,
      roles: options.roles,
      now: () => this.#clock.now(),
      policy: this.policy,
      ...(options.peer ? { peerConfig: options.peer } : {}),
      ...(options.intensity ? { intensity: options.intensity } : {}),
      ...(options.archiveSize !== undefined ? { archiveSize: options.archiveSize } : {}),
      onEffect: (actorId, effect) => this.#emit(actorId, effect),
      onRestored: (cell) => this.#rearm(cell),
      onRetired: (job) => {
        this.#watched.delete(job.jobId);
        this.#timers.cancelActor(jobAddress(job.jobId));
        this.#escrows.drop(jobAddress(job.jobId));
        this.#samples.delete(job.jobId);
        this.#openTx.drop(jobAddress(job.jobId));
        this.#options.journal?.retired?.(jobAddress(job.jobId), job);
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
      onJournalFailure: (error) => {
        this.#log.error("The journal refused an append; this node takes no more input: {error}", {
          error: error.message,
        });
        this.#notify({ type: "journal.failed", error });
      },
    });
    this.#ingress = new Ingress({
      self: options.id,
      tree: this.tree,
      network: options.network,
      submit: (source, addressed) => this.#submit(source, addressed),
      onRejected: (message, code, reason) => {
        this.stats.wireRejected++;
        // Counted toward the sender's (and its address's) budgets and logged rate-limited, so
        // a flood cannot flood the log.
        if (options.network.reject) {
          options.network.reject(message.from, message.topic, code, reason);
        } else this.#rejections.reject(message.from, message.topic, code, reason);
      },
      escrowSeen: (jobId) => this.#escrows.has(jobId),
      escrowCommitment: (jobId) => this.#escrows.commitment(jobId),
      endedOnChain: (jobId) => this.#escrows.ended(jobId),
      ...(this.#readsEscrows ? { readEscrow: (jobId: string) => this.#noteEscrow(jobId) } : {}),
      // A job this node will not bid on gets no actor here, only a record of why (ingress.ts).
      triage: (actorId, announcement) => this.#agent?.triage(actorId, announcement) ?? "no_role",
      keepSpec: options.roles.includes("verifier"),
      now: () => this.#clock.now(),
      worker: options.roles.includes("worker"),
      sampleOf: (jobId) => this.#samples.get(jobId),
      onSampledOut: () => this.stats.sampledOut++,
      heardModels: () => this.#listenToShards(),
      shunned: (worker) =>
        (this.#bonds.reputationOf(worker) ?? Infinity) <
          (options.minBidderReputation ?? DEFAULT_MIN_BIDDER_REPUTATION),
    });
    this.#bonds = new BondDirectory({ chain: options.chain, clock: this.#clock });
    this.#chain = new ChainSync({
      chain: options.chain,
      submit: (addressed) => {
        if (this.#chainConcerns(addressed)) {
          return this.#submit("chain", this.#withEscrowTerms(addressed));
        }
        this.stats.chainIgnored++;
      },
      onEvent: (event) => {
        this.#bonds.saw(event);
        if (
          event.name === "WorkerStaked" || event.name === "VerifierRegistered" ||
          event.name === "WorkerSlashed" || event.name === "StakeWithdrawn"
        ) {
          this.#stakesVersion++;
        }
        // Not journaled where the node has no part in the job, but news all the same: a job
        // heard of later is checked against its escrow, and a late announcement of a job that
        // ended must not make a zombie here (escrow_watch.ts).
        if (event.name === "JobSubmitted") {
          this.#escrows.saw(event.jobId, {
            client: event.client,
            ...(event.specHash === undefined ? {} : { specHash: event.specHash }),
          });
          this.#checkAnnounced(event.jobId);
        }
        if (event.name === "PaymentReleased" || event.name === "EscrowRefunded") {
          this.#escrows.sawEnd(event.jobId);
        }
        // A verifier checks an owner's assignment against the job's escrow and the chain's
        // naming of the attempt (ingress.ts).
        if (event.name === "JobSubmitted" && this.#verifies) {
          this.#ingress.escrowShown(event.jobId, escrowTermsOf(event));
        }
        if (event.name === "WorkerAssigned") this.#ingress.assignedOnChain(event.jobId, event);
        // A job the chain names this node in as a verifier is one it reads (its record, see
        // `#chainInterest`), until the job ends where it holds no actor for it. (Only the
        // naming: a slash that names a worker after the job's end would never be taken off.)
        const jobId = jobOfEvent(event);
        if (jobId !== undefined) {
          if (event.name === "PaymentReleased" || event.name === "EscrowRefunded") {
            if (this.tree.get(jobAddress(jobId)) === undefined) this.#watched.delete(jobId);
          } else if (event.name === "WorkerAssigned" && event.verifiers.includes(this.id)) {
            this.#watched.add(jobId);
          }
        }
      },
      interest: (event) => this.#chainInterest(event),
      index: {
        names: this.#ranksBids
          ? new Set([...this.#followed, "ReputationUpdated" as const])
          : this.#followed,
        accounts: [options.id],
        jobs: this.#watched,
      },
      ...(options.clock ? { clock: options.clock } : {}),
    });
    const profile = options.worker;
    const pool = new WorkerPool({
      concurrency: options.executions?.concurrency ?? profile?.capacity ?? 2,
      maxQueued: options.executions?.maxQueued ?? 16,
      ...(options.clock ? { clock: options.clock } : {}),
    });
    let dispatcher: EffectDispatcher | undefined;
    this.#agent = profile !== undefined && options.roles.includes("worker")
      ? new WorkerAgent({
        self: options.id,
        profile,
        tree: this.tree,
        clock: this.#clock,
        supports: (spec) =>
          this.#executor.supports(spec.kind) &&
          !(spec.kind.type === "onnx" && options.models !== undefined &&
            options.fetchModels !== true && !this.#models.has(spec.kind.modelHash)),
        answer: (actorId, event, effect) =>
          this.#submit("effect", { target: actorId, event }, effect),
        publishBid: (actorId, bid, effect) => dispatcher!.publishBid(actorId, bid, effect),
        announce: (actorId, { jobId: _, ...announcement }) =>
          this.#submit("system", {
            target: actorId,
            event: { type: "job.announced", ...announcement },
          }),
      })
      : undefined;
    this.#effects = dispatcher = new EffectDispatcher({
      self: options.id,
      options,
      tree: this.tree,
      timers: this.#timers,
      executor: this.#executor,
      verifier,
      pool,
      agent: this.#agent,
      advertisersOf: (hash) => this.#ingress.advertisersOf(hash),
      sampleBits: (jobId, attempt, spec) => this.#sampleBits(jobId, attempt, spec),
      onModelFetched: (hash) => {
        this.#models = new Set([...this.#models, hash]);
        this.#listenToShards();
      },
      submit: (source, target, event, effect) => {
        // An outcome event closes its effect in the journal as it is appended.
        if (effect !== undefined) this.#openTx.forget(effect, target);
        this.#submit(source, { target, event }, effect);
      },
      closed: (id, actor) => this.#openTx.close(id, actor),
      failed: (actor, effect, error) => {
        this.stats.effectFailures++;
        this.#log.warn("Effect {effect} of {actor} failed: {message}", {
          effect,
          actor,
          message: error,
        });
        this.#notify({ type: "effect.failed", actor, effect, error });
      },
      log: this.#log,
    });
    this.#outputFetch = new OutputFetcher({
      self: options.id,
      network: options.network,
      tree: this.tree,
      outputs: this.#outputs,
      submit: (source, addressed) => this.#submit(source, addressed),
      log: this.#log,
    });
  }

  /** Joins the network, subscribes to the chain, stakes if a worker, announces capabilities. */
  async start(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { network, chain } = this.#options;
    // Protocol v2: announcements on the shards this node can serve (`#listenToShards`, again
    // as it learns of models); the direct topics receive what peers send this node.
    for (const topic of Object.values(TOPICS)) {
      if (topic === TOPICS.jobs) continue;
      this.#cleanup.push(this.#subscribe(topic));
    }
    this.#listenToShards();
    this.#cleanup.push(network.onPeerEvent((event) => this.#ingress.peerEvent(event)));
    serveSnapshots(network, () => this.snapshot());
    // One payload protocol: the outputs held here, then the models.
    const models = this.#options.models;
    const payloads = this.#outputs.payloads(this.tree);
    this.#cleanup.push(servePayloadStore(
      network,
      models ? firstHolding([payloads, modelPayloadStore(models)]) : payloads,
    ));
    await network.start();
    options.signal?.throwIfAborted();
    const stake = this.#options.worker?.stake ?? 0n;
    if (this.roles.includes("worker") && stake > 0n) {
      const have = await chain.stakeOf(this.id, options);
      if (have < stake) await chain.stake({ amount: stake - have }, options);
    }
    // A verifier bonds as one, so that the chain may choose it (and slash it if it lies).
    const bond = this.#options.verifierStake ?? DEFAULT_VERIFIER_STAKE;
    if (this.roles.includes("verifier") && !this.roles.includes("worker")) {
      if (bond > 0n) {
        const have = await chain.stakeOf(this.id, options);
        if (have < bond) await chain.stake({ amount: bond - have, role: "verifier" }, options);
      } else {
        this.#log.warn(
          "Verifier {id} bonds nothing (verifierStake 0): the chain will not choose it to verify jobs",
          { id: this.id },
        );
      }
    }
    // What this node restored reads its jobs' chain events (its port's index, `#watched`).
    for (const cell of this.tree.jobs.cells()) this.#watched.add(jobIdOf(cell.id)!);
    for (const record of this.tree.declines()) {
      if (record.assigned !== undefined) this.#watched.add(record.jobId);
    }
    const cursor = this.#options.chainCursor ?? { blockNumber: 0, eventIndex: 0 };
    this.#cleanup.push(this.#chain.subscribe(cursor, this.#options.chainNewsFrom ?? cursor));
    // In the background: start waits for none of them (nor does the catch-up with the chain).
    if (this.#readsEscrows) this.#restoredReads = this.#readRestoredEscrows();
    await this.announceCapabilities();
    const every = this.#options.capabilityIntervalMs ?? DEFAULT_CAPABILITY_INTERVAL_MS;
    if (every > 0) {
      const timer = setInterval(() => void this.announceCapabilities().catch(() => {}), every);
      this.#cleanup.push(() => clearInterval(timer));
    }
  }

  /** Stops taking input, waits for effects in flight, stops the actors and leaves the network. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    this.#stopped = true;
    for (const undo of this.#cleanup.splice(0)) undo();
    for (const undo of this.#shards.values()) undo();
    this.#shards.clear();
    this.#timers.cancelAll();
    this.#ingress.flush();
    this.inbox.close();
    await this.#effects.stop(`Node "${this.id}" is stopping`);
    await this.#restoredReads;
    this.tree.stop();
    await this.#options.network.stop();
    await this.#onnx?.close();
  }

  #subscribe(topic: Topic): () => void {
    return this.#options.network.subscribe(
      topic,
      (m) => this.#ingress.validate(m),
      (m) => this.#ingress.receive(m),
    );
  }

  /**
   * The announcement shards this node hears (protocol v2): a worker, those of the kinds it can
   * run (the builtin; the models it holds, and, if it may fetch models, every model a peer
   * advertised) on its hardware class (a GPU node runs CPU jobs too); a bootstrap node, every
   * shard it knows of and their watch topics, so that it relays them (and serves them in join
   * snapshots). A client or a verifier alone hears none: a client announces, and bids come to it
   * directly; a verifier learns a job when its owner's assignment names it (issue 16 item 2).
   */
  shardTopics(): AnnouncementTopic[] {
    const roles = this.roles;
    const bootstrap = roles.includes("bootstrap");
    if (!bootstrap && !roles.includes("worker")) return [];
    const hardware = bootstrap ? "gpu" : this.#options.worker?.hardware ?? "cpu";
    const kinds = new Set<string>();
    if (bootstrap || this.#executor.supports({ type: "builtin", name: "matmul" })) {
      kinds.add("matmul");
    }
    for (const hash of this.#models) kinds.add(hash);
    // A worker fetches a model only if it may.
    const anyModel = bootstrap || this.#options.fetchModels === true ||
      this.#options.models === undefined;
    if (anyModel) {
      for (const hash of this.#ingress.modelsHeard()) {
        if (bootstrap || this.#executor.supports({ type: "onnx", modelHash: hash })) {
          kinds.add(hash);
        }
      }
    }
    // A worker hears the samples its identity falls in, for what it can run now (the builtin,
    // the models it holds: an owner samples by holders); a model it would fetch, on the whole
    // shard only (so that 256 advertised models do not make thousands of subscriptions). A
    // relay follows every job of its shards on their watch topics.
    const watch = bootstrap;
    const held = [...kinds].filter((k) => k === "matmul" || this.#models.has(k));
    const fetched = [...kinds].filter((k) => !held.includes(k));
    return [
      ...shardsFor(hardware, held, {
        ...(roles.includes("worker") ? { sampleOf: this.id } : {}),
        watch,
      }),
      ...shardsFor(hardware, fetched, { watch }),
    ];
  }

  /**
   * How deep to sample the auction `attempt` of this node's job (`protocols/sampling.ts`): the
   * fixed `sampling.bits`, else aimed at `sampling.bidders` of the workers that could run it. A
   * worker counts if this node heard its capabilities (hardware, model) and the chain showed it
   * staking the job's `minStake` (made-up capabilities cost nothing, a stake does); with no
   * capabilities heard at all, the staked workers count; with no stake seen (a node restarted
   * on its journal reads only new chain events), nobody does: the whole shard hears the job. A
   * sample no connected peer subscribes to (libp2p: the announcement would reach nobody) falls
   * back to the whole shard too.
   */
  #sampleBits(jobId: string, attempt: number, spec: JobSpec): number {
    const sampling = this.#options.sampling;
    let bits = sampling?.bits;
    if (bits === undefined) {
      const model = spec.kind.type === "onnx" ? spec.kind.modelHash : undefined;
      const minStake = spec.requirements.minStake;
      const key = `${spec.requirements.hardware}\n${model ?? ""}\n${minStake}`;
      const capabilities = this.#ingress.capabilitiesVersion;
      const stakes = this.#stakesVersion;
      let counted = this.#capableCounts.get(key);
      if (counted?.capabilities !== capabilities || counted.stakes !== stakes) {
        const staked = (worker: NodeId) => this.#bonds.stakedWorker(worker, minStake);
        const known = this.#ingress.capableWorkers(spec.requirements.hardware, model, staked);
        const capable = known.heard > 0 ? known.capable : this.#bonds.stakedWorkers(minStake);
        if (this.#capableCounts.size >= 64) this.#capableCounts.clear();
        this.#capableCounts.set(key, counted = { capabilities, stakes, capable });
      }
      bits = sampleBitsFor(counted.capable, sampling?.bidders ?? DEFAULT_SAMPLE_BIDDERS);
    }
    if (bits > 0 && this.#options.network.topicPeers !== undefined) {
      const [sampleTopic] = announcementTopicsOf(spec, jobId, attempt, bits);
      if (this.#options.network.topicPeers(sampleTopic!) === 0) {
        this.stats.sampleFallbacks++;
        bits = 0;
      }
    }
    this.#samples.set(jobId, { attempt, bits });
    return bits;
  }

  /** Subscribes to the shards of {@link Node.shardTopics} not yet listened on. */
  #listenToShards(): void {
    if (!this.#started) return;
    for (const topic of this.shardTopics()) {
      if (!this.#shards.has(topic)) this.#shards.set(topic, this.#subscribe(topic));
    }
  }

  /** Publishes this node's roles and hardware, so clients know their workers and verifiers. */
  async announceCapabilities(): Promise<void> {
    if (this.#options.models) {
      this.#models = new Set(await this.#options.models.list({ signal: this.#effects.signal }));
      this.#listenToShards();
    }
    const message = {
      type: "node.capabilities" as const,
      node: this.id,
      roles: [...this.roles],
      hardware: this.#options.worker?.hardware ?? "cpu",
      models: [...this.#models].slice(0, 256),
    };
    this.#ingress.setOwn({ roles: this.roles, hardware: message.hardware });
    await this.#options.network.publish(
      TOPICS.capabilities,
      encodeMessage(TOPICS.capabilities, message),
    );
  }

  /** Verifier nodes this node knows of (from capability gossip). */
  verifierPool(): NodeId[] {
    return this.#ingress.verifierPool();
  }

  /** The nodes this node has heard capabilities from (itself included). */
  knownNodes(): { id: NodeId; roles: readonly Role[]; hardware: HardwareClass }[] {
    return this.#ingress.knownNodes();
  }

  /** Open jobs and bids, as a joining peer asks for them (`/ciro/snapshot/1.0.0`). */
  snapshot(): SnapshotData {
    return this.#ingress.snapshot();
  }

  /**
   * Asks about a third of the known peers for their open jobs and bids and feeds what they
   * hold into the tree, as a node that joins late does. Returns how many jobs and bids came in.
   */
  requestSnapshot(
    options: { fraction?: number; signal?: AbortSignal } = {},
  ): Promise<{ jobs: number; bids: number; asked: number }> {
    return this.#ingress.requestSnapshot(options);
  }

  /** Watches what the node does. Returns an unsubscribe. */
  observe(observer: (observation: NodeObservation) => void): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  /**
   * Submits a job as its client. Returns the job id once the submission is journaled; throws
   * (a `JournalAppendError`) when it was not, so nothing unjournaled is acknowledged.
   */
  submitJob(request: JobRequest): string {
    if (!this.roles.includes("client")) {
      throw new RangeError(`Cannot submit a job on node "${this.id}": it is not a client`);
    }
    const jobId = request.jobId ??
      `${this.id.slice(-8)}-${(++jobCounter).toString(36)}-${
        Math.random().toString(36).slice(2, 8)
      }`;
    const spec = completeSpec(request.spec);
    if (spec.input !== undefined && commitmentOf(spec.input) !== spec.inputCommitment) {
      throw new RangeError(`Cannot submit job "${jobId}": the input does not match its commitment`);
    }
    this.inbox.submit("operator", jobAddress(jobId), {
      type: "job.submit",
      spec,
      verifierPool: this.verifierPool(),
      policy: request.policy === undefined
        ? this.policy
        : { settlement: this.policy.settlement, ...request.policy },
    });
    return jobId;
  }

  /** Asks to cancel a job (only its client can, and only before assignment). */
  cancelJob(jobId: string): void {
    this.inbox.submit("operator", jobAddress(jobId), { type: "job.cancel" });
  }

  /** Summaries of the jobs this node knows: retired ones (oldest first), then live ones. */
  jobs(): JobSummary[] {
    return [
      ...[...this.tree.archive()].map(summarizeRetired),
      ...[...this.tree.jobs.cells()].map((cell) =>
        summarizeJob(jobContextOf(cell), cell.state, cell.done)
      ),
    ];
  }

  /** A finished job whose actor was retired (see {@link NodeOptions.retainFinishedMs}). */
  retiredJob(jobId: string): RetiredJob | undefined {
    return this.tree.retired(jobId);
  }

  /** Why this node took no part in job `jobId`, if it declined it (kept bounded, expiring). */
  declined(jobId: string): DeclineRecord | undefined {
    return this.tree.declined(jobId);
  }

  /** One live job's full context and state, or undefined (see {@link Node.retiredJob}). */
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined {
    const cell = this.tree.get(jobAddress(jobId));
    if (cell === undefined) return undefined;
    return { state: cell.state, done: cell.done, context: jobContextOf(cell) };
  }

  /**
   * Whether `peer` holds something at stake on chain (stake, or an escrow seen since start): the
   * network port's ingress gives peers that do not a small separate budget (`isBonded`).
   */
  isBonded(peer: NodeId): boolean {
    return this.#bonds.isBonded(peer);
  }

  /** The peers this node tracks, with state and score. */
  peers(): { peer: NodeId; state: string; score: number }[] {
    return [...this.tree.peers.cells()].map((cell) => ({
      peer: peerIdOf(cell.id)!,
      state: cell.state,
      score: (cell.snapshot.context as { score: number }).score,
    }));
  }

  /** The chain's money totals, for the money check. */
  chainTotals(): Promise<LedgerTotals> {
    return this.#options.chain.totals({ signal: this.#effects.signal });
  }

  /** Resolves when no effect is in flight (tests, orderly shutdown). */
  settled(): Promise<void> {
    return this.#effects.settled();
  }

  /**
   * Resolves once this node has delivered every chain event the chain held when it was called
   * (see `ChainSync.catchUp`). A recovered node calls it before sending its open effects again,
   * so that a transaction that landed before a crash is seen as its chain event first. Rejects
   * if `signal` aborts or the node stops.
   */
  catchUpChain(options: { signal?: AbortSignal; recheckMs?: number } = {}): Promise<ChainCursor> {
    if (!this.#started) {
      return Promise.reject(
        new Error(`Cannot catch up with the chain: node "${this.id}" is not started`),
      );
    }
    const signal = options.signal
      ? AbortSignal.any([options.signal, this.#effects.signal])
      : this.#effects.signal;
    return this.#chain.catchUp(signal, options.recheckMs);
  }

  /**
   * Sends again the effects that were open at a crash, read from the journal (call it after
   * {@link Node.catchUpChain}): each keeps its id, so its outcome closes it. An effect whose
   * actor finished or is gone is dropped (the journal closes it). A transaction the chain
   * refuses as done already is closed quietly.
   */
  resume(open: readonly EffectRecord[]): ResumedEffects {
    const sent: EffectRecord[] = [];
    const dropped: EffectRecord[] = [];
    const transactions: Promise<ResendOutcome>[] = [];
    for (const record of open) {
      const cell = this.tree.get(record.actor);
      const confirmed = record.effect.type.startsWith("chain.") &&
        !this.#openTx.isOpen(record.actor, record.id);
      if (cell === undefined || cell.done || !isResumable(record.effect) || confirmed) {
        dropped.push(record);
        this.#openTx.close(record.id, record.actor);
        continue;
      }
      sent.push(record);
      this.stats.effects++;
      if (record.effect.type.startsWith("chain.")) {
        transactions.push(this.#effects.resend(record));
      } else {
        this.#effects.dispatch(record as EffectRecord & { effect: EffectRequest });
      }
    }
    return { sent, dropped, transactions: Promise.all(transactions) };
  }

  /**
   * Takes note of the transactions that were open at a crash, before the node catches up with
   * the chain: a chain event that confirms one closes it, so {@link Node.resume} does not send
   * it again.
   */
  expectOpen(open: readonly EffectRecord[]): void {
    for (const record of open) this.#openTx.note(record);
  }

  /** Hands an event to the inbox; a closed inbox (a stopping node) drops it quietly. */
  #submit(source: Source, addressed: AddressedEvent, effect?: string): void {
    // A quiet peer (no actor yet, ingress.ts) scored by this node is dealt with from now on.
    if (addressed.event.type === "peer.scored") {
      const peer = peerIdOf(addressed.target);
      if (peer !== undefined) this.#ingress.engage(peer);
    }
    try {
      this.inbox.submit(
        source,
        addressed.target,
        addressed.event as InboundEvent,
        effect === undefined ? {} : { effect },
      );
    } catch (error) {
      if (error instanceof JournalAppendError) return; // reported once by the inbox
      this.#log.debug("Dropped {type} for {target}: {error}", {
        type: addressed.event.type,
        target: addressed.target,
        error: (error as Error).message,
      });
    }
  }

  /**
   * Whether a chain event concerns this node, which takes part in a job only where it has a
   * role (protocol v2): a job it has an actor for, or an event that names it (the client, the
   * worker, a chosen verifier: a verifier that declined a job gets its actor when the chain
   * names it, see `actors/tree.ts`). The rest, news of other nodes' jobs and of jobs it
   * declined, is not journaled (the tree would remember an ending, and refuse the rest, of a job
   * it has no part in), so a node's chain work grows with its own jobs, not with the market's.
   */
  #chainConcerns(addressed: AddressedEvent): boolean {
    const jobId = jobIdOf(addressed.target);
    if (jobId === undefined || this.tree.get(addressed.target) !== undefined) return true;
    // A job the chain chose this node to verify, whose spec has not come yet (declines.ts; only
    // a verifier keeps such a record).
    if (this.#verifies && this.tree.declined(jobId)?.assigned !== undefined) return true;
    const e = addressed.event as { client?: unknown; worker?: unknown; verifiers?: unknown };
    return e.client === this.id || e.worker === this.id ||
      (Array.isArray(e.verifiers) && e.verifiers.includes(this.id));
  }

  /**
   * The chain's naming of this node as a verifier of a job it has no spec of yet, with the job's
   * escrow terms its chain follower showed (`escrow`, journaled with it; see
   * `ChainAssignment.escrow`): restarted on its journal, the node follows the chain from after the
   * naming and would not see the escrow again, so it could never check (and keep) the owner's
   * assignment with the spec. Any other event as it is.
   */
  #withEscrowTerms(addressed: AddressedEvent): AddressedEvent {
    const e = addressed.event as { type: string; verifiers?: unknown };
    const jobId = jobIdOf(addressed.target);
    if (
      e.type !== "chain.worker.assigned" || jobId === undefined ||
      !this.roles.includes("verifier") || !Array.isArray(e.verifiers) ||
      !e.verifiers.includes(this.id) || this.tree.get(addressed.target) !== undefined ||
      // A spec an owner's assignment brought was checked; one an announcement brought was not.
      this.tree.declined(jobId)?.reason === "awaiting_chain"
    ) return addressed;
    const escrow = this.#ingress.escrowTerms(jobId);
    if (escrow === undefined) return addressed;
    return { ...addressed, event: { ...addressed.event, escrow } };
  }

  /**
   * The chain events this node reads at all (its log filter; the port skips the rest where it
   * can): those {@link Node.#chainConcerns} keeps (its jobs, events naming it), and the news
   * every node keeps of every job and account ({@link FOLLOWED_BY_ALL}; reputations only on a
   * client, the one that ranks bids by them). Without it, every node of a market turned every
   * chain event into actor events, looked for their actors and dropped them: a simulated market
   * of 1,030 nodes spent about half its time there.
   */
  #chainInterest(event: ChainEvent): boolean {
    if (this.#followed.has(event.name)) return true;
    if (event.name === "ReputationUpdated") return this.#ranksBids || event.worker === this.id;
    if (namesAccount(event, this.id)) return true;
    const address = jobAddressOf(event);
    if (address === undefined) return false;
    // A job the chain chose this node to verify, whose spec has not come yet (declines.ts).
    return this.tree.get(address) !== undefined ||
      (this.#verifies &&
        this.tree.declined((event as { jobId: string }).jobId)?.assigned !== undefined);
  }

  #notify(observation: NodeObservation): void {
    for (const observer of this.#observers) observer(observation);
  }

  /** An effect request from an actor: recorded with the delivery that emitted it. */
  #emit(actorId: string, effect: EffectRequest): void {
    const emitted = this.#emitted;
    if (emitted === undefined) {
      // Outside a delivery (none in practice): done at once, not recorded.
      this.stats.effects++;
      this.#effects.dispatch({ actor: actorId, effect });
      return;
    }
    emitted.push({ id: `${this.#emittingSeq}.${emitted.length}`, actor: actorId, effect });
  }

  #deliver(envelope: Envelope): void {
    const before = this.tree.get(envelope.target);
    const wasDone = before?.done ?? false;
    const stateBefore = before?.state;
    const emitted: EffectRecord[] = [];
    this.#emitted = emitted;
    this.#emittingSeq = envelope.seq;
    let outcome;
    try {
      outcome = this.tree.deliver(envelope);
    } finally {
      this.#emitted = undefined;
    }
    const cell = this.tree.get(envelope.target);
    // Recorded first, then done: a crash in between leaves them open in the journal.
    this.#options.journal?.delivered?.(envelope, outcome, cell, emitted);
    if (envelope.source === "chain") {
      this.#openTx.confirmed(envelope.target, envelope.event);
      if (envelope.event.type === "chain.escrow.locked") {
        this.#escrows.saw(jobIdOf(envelope.target)!);
      }
    }
    for (const record of emitted) {
      this.stats.effects++;
      this.#openTx.note(record);
      this.#effects.dispatch(record as EffectRecord & { effect: EffectRequest });
    }
    if (outcome.status === "rejected") {
      this.stats.rejected++;
      // Stale timers and chain news about jobs we never heard of are expected; say so quietly.
      const quiet = envelope.source === "timer" || envelope.source === "chain" ||
        (envelope.source === "effect" && before?.done === true) ||
        (envelope.source === "network" &&
          (outcome.code === "unknown_job" || outcome.code === "retired"));
      const detail = {
        type: envelope.event.type,
        target: envelope.target,
        seq: envelope.seq,
        reason: outcome.reason,
      };
      if (quiet) this.#log.debug("Rejected {type} for {target} (#{seq}): {reason}", detail);
      else this.#log.info("Rejected {type} for {target} (#{seq}): {reason}", detail);
      this.#notify({ type: "rejected", envelope, code: outcome.code, reason: outcome.reason });
      return;
    }
    if (outcome.status === "crashed") return; // the supervisor restarted it and reported
    this.stats.delivered++;
    if (cell === undefined) {
      if (envelope.event.type === "job.declined") {
        this.#notify({ type: "delivered", envelope, actor: envelope.target, state: "declined" });
      }
      return;
    }
    this.#notify({ type: "delivered", envelope, actor: cell.id, state: cell.state });
    this.#outputSeen(cell, envelope);
    // An actor made with a result already on chain (a verifier that learned the job after it:
    // actors/declines.ts) checks that the output came, as the chain's news would have it do.
    if (before === undefined && cell.id.startsWith("job:")) {
      this.#watched.add(jobIdOf(cell.id)!);
      this.#armOutputFetch(cell);
    }
    if (this.#agent?.waiting && stateBefore !== cell.state) this.#agent.reconsider();
    if (
      before === undefined && envelope.event.type === "job.announced" && cell.id.startsWith("job:")
    ) this.#armEscrowCheck(cell, envelope.event["via"] === "snapshot");
    if (!wasDone && cell.done && cell.id.startsWith("job:")) {
      const context = jobContextOf(cell);
      this.#armRetirement(cell);
      this.#notify({
        type: "job.finished",
        jobId: context.jobId,
        state: cell.state,
        owner: context.owner,
      });
    }
  }

  /**
   * A job heard of by gossip (or a join snapshot) holds nothing here unless the chain shows its
   * escrow: its escrow is checked a grace period after its bid window closes. `restored`: a job
   * restored at start, whose escrow was read already ({@link Node.#readRestoredEscrows}).
   */
  #armEscrowCheck(cell: ActorCell, relayed: boolean, restored = false): void {
    const c = jobContextOf(cell);
    const closesAt = c.deadlines.bid_window;
    if (c.owner === this.id || closesAt === undefined) return;
    const announcer = relayed ? undefined : c.owner;
    const due = this.#escrows.expect(cell.id, {
      closesAt,
      bidWindowMs: c.spec.bidWindowMs,
      heardAt: this.#clock.now(),
      announcer,
    });
    this.#timers.arm(cell.id, ESCROW_CHECK_KEY, due);
    // Its escrow came before the announcement, as an owner's does: this node did not read it.
    if (this.#readsEscrows && !restored && !this.#escrows.has(c.jobId)) {
      void this.#readEscrow(c.jobId);
    }
  }

  /**
   * Reads job `jobId`'s escrow from the chain (a node that reads escrows on demand, not as they
   * come: {@link ESCROW_NEWS}) and notes it as its chain news would have: what it commits to, that
   * its client holds something at stake, whether it ended. Resolves with whether the chain holds
   * the escrow, or undefined when the read failed (logged). The ingress reads so before it
   * triages an announcement (`IngressOptions.readEscrow`).
   */
  #noteEscrow(jobId: string): Promise<boolean | undefined> {
    this.stats.escrowReads++;
    return this.#options.chain.escrowOf!(jobId, { signal: this.#effects.signal }).then(
      (escrow) => {
        if (escrow === undefined) return false;
        this.#escrows.saw(jobId, {
          client: escrow.client,
          ...(escrow.specHash === undefined ? {} : { specHash: escrow.specHash }),
        });
        this.#bonds.escrowed(escrow.client);
        if (escrow.ended) this.#escrows.sawEnd(jobId);
        return true;
      },
      (error) => {
        this.#log.debug("Could not read the escrow of job {jobId}: {error}", {
          jobId,
          error: (error as Error).message,
        });
        return undefined;
      },
    );
  }

  /**
   * Reads the escrow of job `jobId`, which this node follows ({@link Node.#noteEscrow}), and acts
   * on it as on its chain news: a job announced by a forger (its owner is not the escrow's client,
   * its spec not the one the escrow commits to) is dropped at the announcer's cost; one the chain
   * ended before this node heard of it is archived as `heard_late` (a stale relay). Resolves as
   * {@link Node.#noteEscrow}.
   */
  async #readEscrow(jobId: string): Promise<boolean | undefined> {
    const held = await this.#noteEscrow(jobId);
    if (held !== true || this.#stopped) return held;
    // A forger's announcement costs it, ended or not.
    this.#checkAnnounced(jobId);
    if (this.#escrows.ended(jobId)) {
      const target = jobAddress(jobId);
      const cell = this.tree.get(target);
      if (cell !== undefined && !cell.done && jobContextOf(cell).owner !== this.id) {
        this.#log.info("Dropping job {jobId}: the chain ended it before it was heard of", {
          jobId,
        });
        this.#submit("system", { target, event: { type: "job.unescrowed", ended: true } });
      }
    }
    return true;
  }

  /**
   * Reads again the escrow of each live job this node restored (from its journal, or given to its
   * tree before it started), in the background, {@link RESTORED_READS_AT_ONCE} reads in flight (a
   * sliding window): a node that reads escrows on demand keeps no record of them across a restart
   * (its chain news is read again only so far back), and its join snapshots hand on only jobs whose
   * escrow it saw (review R5 L4). The reads only note the escrows (and check a forger's
   * announcement): an ending the chain shows decides nothing here, as its own events (the catch-up)
   * say how the job ended, paid or refunded (review R6 M2). An observed job's escrow check is armed
   * again, as when it was heard of (blaming no one). The reads that failed are made again, in the
   * same window, {@link RESTORED_READ_RETRIES} rounds at most, each after a back off on the node's
   * clock (review R7 M-b); a job ended or an escrow seen meanwhile is not read again. Never rejects;
   * a stop ends the back off at once.
   */
  async #readRestoredEscrows(): Promise<void> {
    const signal = this.#effects.signal;
    let cells = [...this.tree.jobs.cells()].filter((cell) => !cell.done);
    for (let round = 0; cells.length > 0 && !this.#stopped; round++) {
      if (round > 0) {
        if (round > RESTORED_READ_RETRIES) return;
        await this.#pause(RESTORED_READ_RETRY_MS * 2 ** (round - 1), signal);
        cells = cells.filter((cell) =>
          this.tree.get(cell.id)?.done === false && !this.#escrows.has(jobIdOf(cell.id)!)
        );
      }
      const failed: ActorCell[] = [];
      const queue = cells.values();
      const first = round === 0;
      const reader = async () => {
        for (const cell of queue) {
          if (this.#stopped) return;
          const jobId = jobIdOf(cell.id)!;
          const held = this.#escrows.has(jobId) ? undefined : await this.#noteEscrow(jobId);
          if (this.#stopped) return;
          if (held === true) this.#checkAnnounced(jobId);
          else if (held === undefined && !this.#escrows.has(jobId)) failed.push(cell);
          const now = this.tree.get(cell.id);
          if (first && now?.done === false) this.#armEscrowCheck(now, true, true);
        }
      };
      await Promise.all(Array.from({ length: RESTORED_READS_AT_ONCE }, reader));
      cells = failed;
    }
  }

  /** Resolves after `ms` on the node's clock, or at once when `signal` aborts (the node stops). */
  #pause(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        this.#clock.clearTimeout(timer);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = this.#clock.setTimeout(done, ms);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * The escrow check of an observed job: if the chain never showed its escrow, the job is
   * dropped (`job.unescrowed`, journaled: the tree archives it, a worker's bid slot is free), and
   * the peer that announced it costs score (an owner that keeps announcing unescrowed jobs is
   * banned like any peer that sends what it should not).
   */
  #escrowCheck(actorId: string): void {
    const found = this.#escrows.unescrowed(actorId);
    if (found === undefined) return;
    // Read once more before blaming anyone: the chain's answer, not this node's memory of it.
    // A read that fails is no answer: the check comes again a grace later.
    if (this.#readsEscrows) {
      void this.#readEscrow(jobIdOf(actorId)!).then((held) => {
        if (held === true || this.#stopped) return;
        if (held === false) return this.#checkUnconfirmed(actorId, found.blame);
        if (this.tree.get(actorId)?.done !== false) return;
        this.#escrows.recheck(actorId, found.blame);
        this.#timers.arm(actorId, ESCROW_CHECK_KEY, this.#clock.now() + ESCROW_GRACE_MS);
      });
      return;
    }
    this.#dropUnescrowed(actorId, found.blame);
  }

  /**
   * The escrow check of observed job `actorId` found no escrow at the confirmed head its port reads
   * at: before blaming anyone, reads the chain's latest block (`escrowOf`'s `latest`). An escrow
   * there, only unconfirmed (this node waits for more confirmations than its client did), or no
   * answer, is checked again {@link UNCONFIRMED_RECHECK_MS} later, a few times at most
   * (`EscrowWatch.recheckUnconfirmed`), then dropped blaming no one; none there either: dropped,
   * `blame` blamed (review R6 M5).
   */
  #checkUnconfirmed(actorId: string, blame: string | undefined): void {
    this.stats.escrowReads++;
    void this.#options.chain.escrowOf!(jobIdOf(actorId)!, {
      signal: this.#effects.signal,
      latest: true,
    }).then((escrow) => escrow !== undefined, () => undefined).then((unconfirmed) => {
      if (this.#stopped || this.tree.get(actorId)?.done !== false) return;
      if (unconfirmed === false) return this.#dropUnescrowed(actorId, blame);
      if (this.#escrows.recheckUnconfirmed(actorId, blame)) {
        this.#timers.arm(actorId, ESCROW_CHECK_KEY, this.#clock.now() + UNCONFIRMED_RECHECK_MS);
      } else this.#dropUnescrowed(actorId, undefined);
    });
  }

  /** Drops observed job `actorId`, whose escrow the chain never showed, blaming `blame`. */
  #dropUnescrowed(actorId: string, blame: string | undefined): void {
    const found = { blame };
    const cell = this.tree.get(actorId);
    if (cell === undefined || cell.done) return;
    const jobId = jobIdOf(actorId);
    this.#log.info("Dropping job {jobId}: the chain never showed its escrow", { jobId });
    this.#submit("system", { target: actorId, event: { type: "job.unescrowed" } });
    if (found.blame !== undefined && found.blame !== this.id) {
      this.#submit("system", {
        target: peerAddress(found.blame),
        event: {
          type: "peer.scored",
          delta: WIRE_PENALTY,
          reason: `announced job "${jobId}", which the chain never escrowed`,
        },
      });
    }
  }

  /**
   * The escrow of a job this node follows from an announcement came after it: a job whose owner
   * is not the escrow's client (where the client is a node of the network) or whose spec is not
   * the one the escrow commits to was announced by a forger that outran the chain. It is dropped
   * (`job.unescrowed`, journaled: the tree archives it, a worker's bid slot is free, a verifier
   * never re-runs its input) and the announcer costs score, as the ingress charges one that comes
   * after the escrow (`Ingress`, review R3).
   */
  #checkAnnounced(jobId: string): void {
    const target = jobAddress(jobId);
    const cell = this.tree.get(target);
    if (cell === undefined || cell.done) return;
    const c = jobContextOf(cell);
    if (c.owner === this.id) return;
    const why = this.#ingress.announcementMismatch({ jobId, owner: c.owner, spec: c.spec });
    if (why === null) return;
    this.#log.info("Dropping job {jobId}: {why}", { jobId, why });
    this.#submit("system", { target, event: { type: "job.unescrowed" } });
    this.#submit("system", {
      target: peerAddress(c.owner),
      event: { type: "peer.scored", delta: WIRE_PENALTY, reason: why },
    });
  }

  /** Arms the retirement of a finished job actor, `retainFinishedMs` after it finished. */
  #armRetirement(cell: ActorCell): void {
    if (this.#retainFinishedMs === null) return;
    const finishedAt = jobContextOf(cell).path.at(-1)?.at ?? this.#clock.now();
    this.#timers.arm(cell.id, RETIRE_KEY, finishedAt + this.#retainFinishedMs);
  }

  /**
   * Keeps an output this node produced or heard, by hash; and when the chain shows a result for
   * a job this node verifies or owns, checks a little later that the output came (fetching it if
   * not).
   */
  #outputSeen(cell: ActorCell, envelope: Envelope): void {
    const event = envelope.event as { type: string; output?: unknown };
    if (event.type === "job.execution.completed" || event.type === "job.result.received") {
      this.#outputs.keep(event.output);
    } else if (event.type === "chain.result.submitted" && cell.id.startsWith("job:")) {
      this.#armOutputFetch(cell);
    }
  }

  #armOutputFetch(cell: ActorCell): void {
    const c = jobContextOf(cell);
    if (cell.done || c.result === null) return;
    if (!c.verifiers.includes(this.id) && c.owner !== this.id) return;
    if (c.outputs[c.result.worker]?.commitment === c.result.commitment) return;
    this.#timers.arm(cell.id, OUTPUT_FETCH_KEY, this.#clock.now() + DEFAULT_OUTPUT_FETCH_DELAY_MS);
  }

  #fetchOutput(actorId: string): void {
    const jobId = jobIdOf(actorId);
    if (jobId === undefined || !this.#started) return;
    this.#outputFetch.fetch(jobId, { signal: this.#effects.signal }).then((outcome) => {
      if (outcome.status === "failed") {
        this.#log.warn("No peer served the output of job {jobId}: {failures}", {
          jobId,
          failures: outcome.failures.join("; "),
        });
      }
    }, () => {});
  }

  #rearm(cell: ActorCell): void {
    if (cell.done) {
      if (cell.id.startsWith("job:")) this.#armRetirement(cell);
      return;
    }
    const deadlines = (cell.snapshot.context as { deadlines?: Record<string, number> }).deadlines ??
      {};
    for (const [key, due] of Object.entries(deadlines)) this.#timers.arm(cell.id, key, due);
    if (cell.id.startsWith("job:")) this.#armOutputFetch(cell);
  }
}

/** Creates a node (not started). */
export function createNode(options: NodeOptions): Node {
  return new Node(options);
}
