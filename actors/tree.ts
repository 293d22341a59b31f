/**
 * The supervisor tree of a node: a root supervisor with three children, `jobs` (one actor per
 * job this node has a role in, its bids as records in its context) and `peers` (one actor per
 * peer). The tree routes each stamped envelope to the actor it addresses (`job:<id>`,
 * `peer:<id>`), creating job actors when a job is submitted here, when an announcement reaches it
 * (the node's ingress passes on only those of jobs it bids on), or when the chain names this node
 * in a job it declined (see `declines.ts`), and peer actors when a peer is first seen. A
 * `job.declined` event records a decline without an actor. Anything else addressed to an unknown actor is rejected with a
 * reason, never thrown.
 *
 * Finished jobs do not stay in memory for ever: a `timer.fired` event with the key
 * {@link RETIRE_KEY} (the node arms it when a job finishes; see `NodeOptions.retainFinishedMs`)
 * retires a finished job actor. The tree keeps a compact {@link RetiredJob} in a bounded archive
 * (`archiveSize`, oldest out first), so late news about the job is refused as "finished and
 * retired" instead of creating a new actor for it. Retirement enters through the inbox like any
 * deadline, so it is journaled and replays identically.
 *
 * @module
 */
import type { Snapshot } from "xstate";
import { type JobInput, jobMachine } from "../machines/job_machine.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../machines/policies.ts";
import { DEFAULT_PEER_CONFIG, type PeerConfig, peerMachine } from "../machines/peer_machine.ts";
import type { EffectRequest, JobSpec, NodeId, Role } from "../machines/types.ts";
import type { JobContext, PhaseEntry } from "../machines/job_machine.ts";
import { jobAddress, jobIdOf, peerAddress, peerIdOf } from "../machines/address.ts";
import { type ActorCell, type DeliveryOutcome, rejected } from "./actor_cell.ts";
import {
  type ChainAssignment,
  DECLINED_EVENT,
  type DeclineLimits,
  type DeclineRecord,
  Declines,
  type EarlyResult,
  type EscrowOfJob,
} from "./declines.ts";
import { type RestartIntensity, type SupervisionEvent, Supervisor } from "./supervisor.ts";

/** The context of a job actor, typed (a job cell's snapshot holds a {@link JobContext}). */
export function jobContextOf(cell: ActorCell): JobContext {
  return cell.snapshot.context as JobContext;
}

/** A stamped event as the tree receives it (see `runtime/kernel/inbox.ts`). */
export interface TreeEnvelope {
  readonly seq: number;
  readonly at: number;
  readonly source: string;
  readonly target: string;
  readonly event: { readonly type: string; readonly [key: string]: unknown };
}

/** Options of an {@link ActorTree}. */
export interface ActorTreeOptions {
  readonly self: NodeId;
  /**
   * The chain account this node signs with: a job it owns moves only on an escrow this account
   * locked.
   * @default {@link self}
   */
  readonly account?: NodeId;
  readonly roles: readonly Role[];
  readonly now: () => number;
  /** @default {@link DEFAULT_POLICY} */
  readonly policy?: JobPolicy;
  /** @default {@link DEFAULT_PEER_CONFIG} */
  readonly peerConfig?: PeerConfig;
  readonly intensity?: RestartIntensity;
  /** Receives each effect an actor emits, with the actor's id. */
  readonly onEffect: (actorId: string, effect: EffectRequest) => void;
  /** Called when an actor comes back from a snapshot (restart, restore): re-arm its deadlines. */
  readonly onRestored?: (cell: ActorCell) => void;
  readonly onSupervision?: (event: SupervisionEvent) => void;
  /** Retired jobs kept in the archive, oldest out first. @default {@link DEFAULT_ARCHIVE_SIZE} */
  readonly archiveSize?: number;
  /** Told each job retired (the journal persists the summary in place of the snapshot). */
  readonly onRetired?: (job: RetiredJob) => void;
  /** Bounds of the declined jobs' records (see `declines.ts`). */
  readonly declines?: DeclineLimits;
}

/** The deadline key that retires a finished job actor. */
export const RETIRE_KEY = "retire";

/** How many retired jobs a tree remembers by default. */
export const DEFAULT_ARCHIVE_SIZE = 10_000;

/** What is left of a finished job once its actor is retired: enough for status and SDK. */
export interface RetiredJob {
  readonly jobId: string;
  readonly owner: NodeId;
  /** Its final state. */
  readonly state: string;
  /** When it reached its final state (virtual ms). */
  readonly finishedAt: number;
  /** When its actor was retired (virtual ms). */
  readonly retiredAt: number;
  readonly attempt: number;
  readonly bids: number;
  readonly winner: NodeId | null;
  readonly commitment: string | null;
  readonly paid: bigint;
  readonly fee: bigint;
  readonly refunded: bigint;
  readonly slashes: JobContext["slashes"];
  readonly failure: string | null;
  readonly path: readonly PhaseEntry[];
}

/** The archive entry of a finished job. */
export function retiredJobOf(context: JobContext, state: string, retiredAt: number): RetiredJob {
  return {
    jobId: context.jobId,
    owner: context.owner,
    state,
    finishedAt: context.path.at(-1)?.at ?? retiredAt,
    retiredAt,
    attempt: context.attempt,
    bids: Object.keys(context.bids).length,
    winner: context.winner?.worker ?? null,
    commitment: context.result?.commitment ?? null,
    paid: context.payment?.amount ?? 0n,
    fee: context.payment?.fee ?? 0n,
    refunded: context.refunded,
    slashes: context.slashes,
    failure: context.failure,
    path: context.path,
  };
}

/** What the archive keeps of a job this node never followed, from the chain's news of its end. */
function chainEnded(jobId: string, state: string, at: number): RetiredJob {
  return {
    jobId,
    owner: "",
    state,
    finishedAt: at,
    retiredAt: at,
    attempt: 0,
    bids: 0,
    winner: null,
    commitment: null,
    paid: 0n,
    fee: 0n,
    refunded: 0n,
    slashes: [],
    failure: null,
    path: [],
  };
}

/** Events that create a job actor when it does not exist yet. */
/** Whether `value` has the shape of a job's escrow terms (`ChainAssignment.escrow`). */
function isEscrowOfJob(value: unknown): value is EscrowOfJob {
  const v = value as Partial<Record<keyof EscrowOfJob, unknown>> | null;
  return typeof v === "object" && v !== null && typeof v.client === "string" &&
    typeof v.modelHash === "string" && typeof v.inputCommitment === "string";
}

const JOB_CREATORS = new Set(["job.submit", "job.announced"]);
/** What every job's and every peer's address starts with. */
const JOB_PREFIX = jobAddress("");
const PEER_PREFIX = peerAddress("");

/**
 * Chain events that end a job on chain, and the final state they mean. The chain is the source
 * of truth for a job's fate: such news about a job this node does not know is remembered in
 * the archive (so a late announcement of it is refused), and a job this node only follows that
 * cannot take it (it missed the steps before) is archived in that state instead of lingering.
 */
const CHAIN_ENDINGS: Readonly<Record<string, string>> = {
  "chain.payment.released": "settled",
  "chain.escrow.refunded": "refunded",
};

/**
 * The state a job is archived in on a node that bid on it and lost: once the chain assigns it to
 * another worker, a node that is neither its owner nor a verifier has no role left in it, so it
 * stops following it (its actor is retired at once, its bid slot freed). A later auction of the
 * job (a re-announcement, next attempt) may still draw it.
 */
export const OUTBID_STATE = "outbid";

/**
 * The event by which a node drops a job it follows whose escrow the chain never showed; with
 * `ended: true`, one the chain had ended before this node heard of it (archived as
 * {@link HEARD_LATE_STATE}).
 */
export const UNESCROWED_EVENT = "job.unescrowed";

/**
 * The archive state of a job this node heard of (an announcement, a join snapshot) after the
 * chain had ended it: it stopped following it, and claims nothing of the job's fate.
 */
export const HEARD_LATE_STATE = "heard_late";

/** The supervisor tree. */
export class ActorTree {
  readonly root: Supervisor;
  readonly jobs: Supervisor;
  readonly peers: Supervisor;
  readonly #options: ActorTreeOptions;
  /** Retired jobs by actor id (`job:<id>`), in retirement order. */
  readonly #archive = new Map<string, RetiredJob>();
  readonly #archiveSize: number;
  /** Jobs heard of and declined: records, not actors (see `declines.ts`). */
  readonly #declines: Declines;

  constructor(options: ActorTreeOptions) {
    this.#options = options;
    const archiveSize = options.archiveSize ?? DEFAULT_ARCHIVE_SIZE;
    if (!Number.isSafeInteger(archiveSize) || archiveSize < 0) {
      throw new RangeError(`Invalid archiveSize ${archiveSize}: must be a non-negative integer`);
    }
    this.#archiveSize = archiveSize;
    this.#declines = new Declines(options.declines);
    const common = {
      now: options.now,
      ...(options.intensity ? { intensity: options.intensity } : {}),
      onEffect: (cell: ActorCell, effect: EffectRequest) => options.onEffect(cell.id, effect),
      ...(options.onRestored ? { onRestored: options.onRestored } : {}),
      ...(options.onSupervision ? { onSupervision: options.onSupervision } : {}),
    };
    this.root = new Supervisor({ name: "root", ...common });
    this.jobs = new Supervisor({ name: "jobs", parent: this.root, ...common });
    this.peers = new Supervisor({ name: "peers", parent: this.root, ...common });
  }

  /** The supervisor that owns actors addressed like `target`. */
  supervisorOf(target: string): Supervisor | undefined {
    // On every delivery and lookup: the address's kind without parsing it into parts, nor
    // slicing its id out as `jobIdOf` would (a string a lookup).
    if (target.startsWith(JOB_PREFIX)) return this.jobs;
    if (target.startsWith(PEER_PREFIX)) return this.peers;
    return undefined;
  }

  /** The live actor addressed by `target`. */
  get(target: string): ActorCell | undefined {
    return this.supervisorOf(target)?.get(target);
  }

  /** Delivers a stamped envelope; creates the addressed actor where the event calls for it. */
  deliver(envelope: TreeEnvelope): DeliveryOutcome {
    const { target, event, at } = envelope;
    const supervisor = this.supervisorOf(target);
    if (supervisor === undefined) {
      return rejected("unknown_target", `unknown target "${target}"`);
    }
    const delivered = { ...event, at };
    const existing = supervisor.get(target);
    if (supervisor === this.jobs) {
      if (event.type === "timer.fired" && event["key"] === RETIRE_KEY) {
        return this.#retire(target, existing, at);
      }
      const ending = CHAIN_ENDINGS[event.type];
      if (existing === undefined && ending !== undefined && !this.#archive.has(target)) {
        const summary = chainEnded(jobIdOf(target)!, ending, at);
        this.#remember(target, summary);
        this.#options.onRetired?.(summary);
        return rejected(
          "unknown_job",
          `unknown job "${jobIdOf(target)}": remembered as ${ending} on chain`,
        );
      }
      if (event.type === UNESCROWED_EVENT) {
        return this.#dropUnescrowed(target, existing, at, event["ended"] === true);
      }
      if (
        event.type === "chain.worker.assigned" && existing !== undefined && !existing.done &&
        this.#outbid(existing, event)
      ) {
        this.#archiveNow(target, existing, OUTBID_STATE, at);
        return { status: "accepted" };
      }
      if (existing === undefined) {
        const retired = this.#archive.get(target);
        if (
          retired?.state === OUTBID_STATE && event.type === "job.announced" &&
          Number(event["attempt"]) > retired.attempt
        ) {
          // Auctioned again: this node may bid on the new attempt.
          this.#archive.delete(target);
        } else if (
          retired?.state === "unescrowed" &&
          (event.type === "job.announced" || event.type === DECLINED_EVENT) &&
          event["owner"] !== retired.owner
        ) {
          // Dropped as another owner's forgery: the job's own owner may announce it still (and
          // this node take it or decline it, as any job it hears of).
          this.#archive.delete(target);
        } else if (retired !== undefined) {
          return rejected(
            "retired",
            `job "${retired.jobId}" finished (${retired.state}) and was retired`,
          );
        }
      }
      if (event.type === DECLINED_EVENT) return this.#decline(target, existing, envelope);
      if (event.type === "job.submit") {
        if (existing !== undefined) {
          return rejected("duplicate_job", `job "${jobIdOf(target)}" already exists`);
        }
        return this.#createJob(target, envelope, true);
      }
      if (existing === undefined) {
        if (JOB_CREATORS.has(event.type)) {
          if (event["owner"] === this.#options.self) {
            return rejected(
              "own_job_unknown",
              `announcement of our own job "${jobIdOf(target)}" that we do not know`,
            );
          }
          // This node takes part now (it bids): the decline it may have recorded gives way.
          this.#declines.take(jobIdOf(target)!, at);
          return this.#createJob(target, envelope, false);
        }
        if (event.type === "chain.worker.assigned") {
          const chosen = this.#createChosen(target, envelope);
          if (chosen !== undefined) return chosen;
        }
        if (
          event.type === "job.result.received" &&
          this.#declines.keepResult(jobIdOf(target)!, event as unknown as EarlyResult, at)
        ) return { status: "accepted" };
        // Chain news of a job the chain chose this node for, before the spec came.
        if (envelope.source === "chain" && this.#declines.keepChain(jobIdOf(target)!, event, at)) {
          return { status: "accepted" };
        }
        return rejected("unknown_job", `unknown job "${jobIdOf(target)}"`);
      }
      const outcome = supervisor.deliver(target, delivered);
      if (
        ending !== undefined && outcome.status === "rejected" && !existing.done &&
        jobContextOf(existing).owner !== this.#options.self
      ) {
        // A job we only follow ended on chain in a way it cannot take (it missed steps): the
        // chain's word ends it here too, instead of leaving a zombie.
        this.#archiveNow(target, existing, ending, at);
        return { status: "accepted" };
      }
      return outcome;
    }
    if (supervisor === this.peers && existing === undefined) {
      const peerId = peerIdOf(target)!;
      if (peerId === this.#options.self) {
        return rejected("self_peer", "a peer event about this node itself");
      }
      supervisor.spawn(target, peerMachine, {
        input: { peerId, at, config: this.#options.peerConfig ?? DEFAULT_PEER_CONFIG },
      });
    }
    return supervisor.deliver(target, delivered);
  }

  #retire(target: string, cell: ActorCell | undefined, at: number): DeliveryOutcome {
    if (cell === undefined) {
      return rejected("no_actor", `no job actor "${target}" to retire`);
    }
    if (!cell.done) {
      return rejected("not_finished", `job "${jobIdOf(target)}" is not finished (${cell.state})`);
    }
    const retired = retiredJobOf(jobContextOf(cell), cell.state, at);
    this.jobs.retire(target);
    this.#remember(target, retired);
    this.#options.onRetired?.(retired);
    return { status: "accepted" };
  }

  #dropUnescrowed(
    target: string,
    cell: ActorCell | undefined,
    at: number,
    ended: boolean,
  ): DeliveryOutcome {
    if (cell === undefined) return rejected("no_actor", `no job actor "${target}" to drop`);
    const c = jobContextOf(cell);
    if (c.owner === this.#options.self) {
      return rejected("not_accepted", `job "${c.jobId}" is ours: its escrow is ours to lock`);
    }
    if (cell.done) return rejected("not_active", `job "${c.jobId}" is finished (${cell.state})`);
    this.#archiveNow(target, cell, ended ? HEARD_LATE_STATE : "unescrowed", at);
    return { status: "accepted" };
  }

  /**
   * Records that this node declined job `target` (a `job.declined` event: see `declines.ts`).
   * Refused for a job it follows or owns: those have their actor.
   */
  #decline(target: string, cell: ActorCell | undefined, envelope: TreeEnvelope): DeliveryOutcome {
    const jobId = jobIdOf(target)!;
    const e = envelope.event as {
      owner?: unknown;
      attempt?: unknown;
      bidWindowEndsAt?: unknown;
      reason?: unknown;
      spec?: JobSpec;
    };
    if (cell !== undefined) {
      return rejected("not_accepted", `job "${jobId}" has its actor here: nothing to decline`);
    }
    const awaiting = this.#declines.get(jobId, envelope.at);
    if (e.owner === this.#options.self) {
      return rejected("own_job_unknown", `a decline of our own job "${jobId}"`);
    }
    if (
      typeof e.owner !== "string" || typeof e.reason !== "string" ||
      !Number.isSafeInteger(e.attempt) || typeof e.bidWindowEndsAt !== "number"
    ) {
      return rejected("no_spec", `a decline of job "${jobId}" without owner, attempt or reason`);
    }
    const record: DeclineRecord = {
      jobId,
      owner: e.owner,
      attempt: e.attempt as number,
      reason: e.reason as DeclineRecord["reason"],
      at: envelope.at,
      bidWindowEndsAt: e.bidWindowEndsAt,
      ...(e.spec !== undefined ? { spec: e.spec } : {}),
      // What a record awaiting the spec kept stays with it.
      ...(awaiting?.results !== undefined ? { results: awaiting.results } : {}),
      ...(awaiting?.assigned !== undefined ? { assigned: awaiting.assigned } : {}),
      ...(awaiting?.chain !== undefined ? { chain: awaiting.chain } : {}),
    };
    if (awaiting?.assigned !== undefined && record.reason !== "awaiting_chain") {
      // The chain chose this node to verify: only an owner's assignment checked against the
      // escrow brings the spec its actor runs, not an announcement (anyone's word).
      return { status: "accepted" };
    }
    if (awaiting?.assigned !== undefined && record.spec !== undefined) {
      // The chain named this node before the spec came: the spec creates its actor now.
      this.#declines.take(jobId, envelope.at);
      return this.#spawnChosen(target, record, awaiting.assigned, envelope.at);
    }
    this.#declines.record(record);
    return { status: "accepted" };
  }

  /**
   * The chain assigned job `target`, which this node has no actor for, naming this node (as a
   * verifier): its actor is created from the job's record, then hears the assignment. A verifier
   * without the spec yet keeps the assignment in the record (`awaiting_spec`) until the owner's
   * assignment brings it. Undefined when the chain does not name this node, or names it as the
   * worker and it kept no spec.
   */
  #createChosen(target: string, envelope: TreeEnvelope): DeliveryOutcome | undefined {
    const { self, roles } = this.#options;
    const e = envelope.event as {
      worker?: unknown;
      verifiers?: unknown;
      price?: unknown;
      attempt?: unknown;
      ref?: unknown;
      escrow?: unknown;
    };
    const verifier = Array.isArray(e.verifiers) && e.verifiers.includes(self);
    const named = e.worker === self || verifier;
    const jobId = jobIdOf(target)!;
    const record = named ? this.#declines.get(jobId, envelope.at) : undefined;
    const assigned: ChainAssignment = {
      worker: String(e.worker),
      price: e.price as bigint,
      verifiers: Array.isArray(e.verifiers) ? e.verifiers.map(String) : [],
      ...(Number.isSafeInteger(e.attempt) ? { attempt: e.attempt as number } : {}),
      ...(typeof e.ref === "string" ? { ref: e.ref } : {}),
      ...(isEscrowOfJob(e.escrow) ? { escrow: e.escrow } : {}),
    };
    // A verifier's actor runs only a spec checked against the escrow (an owner's assignment,
    // `awaiting_chain`), never one an announcement brought (a worker's decline keeps it unchecked).
    const checked = e.worker === self || record?.reason === "awaiting_chain";
    if (record?.spec === undefined || !checked) {
      if (!verifier || !roles.includes("verifier")) return undefined;
      this.#declines.awaitSpec(jobId, assigned, envelope.at);
      return { status: "accepted" };
    }
    this.#declines.take(record.jobId, envelope.at);
    return this.#spawnChosen(target, record, assigned, envelope.at);
  }

  /**
   * Creates the actor of job `target` this node was chosen for, from its record (which holds the
   * spec), and hands it the chain's assignment, then the results heard before it.
   */
  #spawnChosen(
    target: string,
    record: DeclineRecord,
    assigned: ChainAssignment,
    at: number,
  ): DeliveryOutcome {
    const { self, roles } = this.#options;
    if (record.spec === undefined) {
      return rejected("no_spec", `job "${record.jobId}" has no spec to create its actor from`);
    }
    const e = assigned;
    const input: JobInput = {
      jobId: record.jobId,
      spec: record.spec,
      owner: record.owner,
      self,
      // It declined to bid: its part in this job is the one the chain gave it.
      roles: e.worker === self ? roles : roles.filter((r) => r !== "worker"),
      at,
      policy: this.#options.policy ?? DEFAULT_POLICY,
      escrowLocked: true,
      // The chain's count of the job's auctions, not the sender's word (older journals: its word).
      attempt: e.attempt ?? record.attempt,
      bidWindowEndsAt: record.bidWindowEndsAt,
    };
    try {
      this.jobs.spawn(target, jobMachine, { input });
    } catch (error) {
      return rejected("create_failed", `cannot create job: ${(error as Error).message}`);
    }
    const delivered = {
      type: "chain.worker.assigned",
      worker: e.worker,
      price: e.price,
      verifiers: [...e.verifiers],
      ...(e.ref !== undefined ? { ref: e.ref } : {}),
      at,
    };
    const outcome = this.jobs.deliver(target, delivered);
    // The chain's news of the job heard while the spec had not come (a result on chain).
    for (const news of record.chain ?? []) {
      const heard = { ...news, at };
      this.jobs.deliver(target, heard);
    }
    // The results heard before the chain named this node: the output it is to verify.
    for (const result of record.results ?? []) {
      const early = { type: "job.result.received", ...result, at };
      this.jobs.deliver(target, early);
    }
    return outcome;
  }

  /** The live record of a job this node declined, if any. */
  declined(jobId: string): DeclineRecord | undefined {
    return this.#declines.get(jobId, this.#options.now());
  }

  /** The records of declined jobs, oldest first (some may have expired). */
  declines(): IterableIterator<DeclineRecord> {
    return this.#declines.values();
  }

  /** Puts a decline record back (node restart). */
  restoreDecline(record: DeclineRecord): void {
    this.#declines.record(record);
  }

  /**
   * Whether the chain's assignment of a job (`event`) leaves this node without a role in it: it
   * is not the job's owner, not the worker assigned, and not a verifier (a verifier may be
   * chosen, or learn it was, from the assignment on).
   */
  #outbid(cell: ActorCell, event: { readonly [key: string]: unknown }): boolean {
    const { self, roles } = this.#options;
    if (roles.includes("verifier") || jobContextOf(cell).owner === self) return false;
    if (event["worker"] === self) return false;
    const verifiers = event["verifiers"];
    return !(Array.isArray(verifiers) && verifiers.includes(self));
  }

  /** Archives a live job actor as `state` now (it is not finished by its machine). */
  #archiveNow(target: string, cell: ActorCell, state: string, at: number): void {
    const retired = { ...retiredJobOf(jobContextOf(cell), state, at), finishedAt: at };
    this.jobs.retire(target);
    this.#remember(target, retired);
    this.#options.onRetired?.(retired);
  }

  #remember(target: string, retired: RetiredJob): void {
    this.#archive.delete(target);
    if (this.#archiveSize === 0) return;
    this.#archive.set(target, retired);
    while (this.#archive.size > this.#archiveSize) {
      this.#archive.delete(this.#archive.keys().next().value!);
    }
  }

  /** A retired job from the archive, by job id. */
  retired(jobId: string): RetiredJob | undefined {
    return this.#archive.get(jobAddress(jobId));
  }

  /** The archive of retired jobs, oldest first. */
  archive(): IterableIterator<RetiredJob> {
    return this.#archive.values();
  }

  /** Puts a retired job back in the archive (node restart). */
  restoreRetired(retired: RetiredJob): void {
    this.#remember(jobAddress(retired.jobId), retired);
  }

  #createJob(target: string, envelope: TreeEnvelope, owned: boolean): DeliveryOutcome {
    const e = envelope.event as {
      spec?: JobSpec;
      owner?: NodeId;
      attempt?: number;
      bidWindowEndsAt?: number;
      verifierPool?: readonly NodeId[];
      policy?: JobPolicy;
    };
    if (e.spec === undefined) {
      return rejected("no_spec", `"${envelope.event.type}" carries no job spec`);
    }
    const input: JobInput = {
      jobId: jobIdOf(target)!,
      spec: e.spec,
      owner: owned ? this.#options.self : e.owner ?? "",
      ...(owned ? { ownerAccount: this.#options.account ?? this.#options.self } : {}),
      self: this.#options.self,
      roles: this.#options.roles,
      at: envelope.at,
      policy: e.policy ?? this.#options.policy ?? DEFAULT_POLICY,
      verifierPool: e.verifierPool ?? [],
      ...(owned ? {} : { escrowLocked: true, attempt: e.attempt ?? 1 }),
      ...(!owned && e.bidWindowEndsAt !== undefined ? { bidWindowEndsAt: e.bidWindowEndsAt } : {}),
    };
    try {
      this.jobs.spawn(target, jobMachine, { input });
    } catch (error) {
      return rejected("create_failed", `cannot create job: ${(error as Error).message}`);
    }
    return { status: "accepted" };
  }

  /** Restores an actor from a persisted snapshot (node restart). */
  restore(target: string, snapshot: Snapshot<unknown>): ActorCell {
    const supervisor = this.supervisorOf(target);
    if (supervisor === undefined) {
      throw new RangeError(`Cannot restore "${target}": unknown target kind`);
    }
    const logic = supervisor === this.jobs ? jobMachine : peerMachine;
    return supervisor.spawn(target, logic, { snapshot });
  }

  /** Stops every actor. */
  stop(): void {
    this.root.stopAll();
  }
}
