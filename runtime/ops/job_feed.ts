/**
 * A node's jobs as a feed of what an operator follows: one {@link JobUpdate} per phase a job
 * enters on this node (with the reason where there is one: the refund reason, the failure, the
 * payment), per decline of this node's worker, and per slash. Built from `node.observe()` only
 * (the kernel is not touched): each delivery to a job actor is compared with the job's path as
 * last seen. The status server streams it (server-sent events), the logs print it, the metrics
 * count it, and the {@link OutputStore} keeps each settled job's output from it.
 *
 * ```ts ignore
 * import { JobFeed } from "./job_feed.ts";
 *
 * const feed = new JobFeed(node);
 * feed.subscribe((u) => console.log(u.jobId, u.type, u.state, u.reason));
 * ```
 *
 * @module
 */
import { JOB_FINAL_STATES, type JobContext, jobMachine } from "../../machines/job_machine.ts";
import type { NodeId } from "../../machines/types.ts";
import type { Envelope, NodeObservation } from "../kernel/mod.ts";

/**
 * States a job does not leave (the job machine's final states, `unescrowed`, `outbid` and
 * `heard_late`).
 */
export const FINAL_STATES: readonly string[] = [
  ...JOB_FINAL_STATES,
  "unescrowed",
  "outbid",
  "heard_late",
];

/**
 * Every state a job can be reported in, in lifecycle order: the job machine's states, read from
 * the machine itself, then `unescrowed` (an observed job dropped because the chain never showed
 * its escrow), `outbid` (a job this node bid on and the chain assigned to another worker) and
 * `heard_late` (a job heard of after the chain ended it): archive states, not machine states.
 */
export const JOB_STATES: readonly string[] = [
  ...Object.keys(jobMachine.config.states ?? {}),
  "unescrowed",
  "outbid",
  "heard_late",
];

/** How this node takes part in a job. */
export type JobRole = "client" | "worker" | "verifier" | "observer";

/** One thing that happened to a job on this node. */
export interface JobUpdate {
  /** `phase`: the job entered `state`; `declined`: this node's worker did not bid; `slashed`. */
  readonly type: "phase" | "declined" | "slashed";
  readonly jobId: string;
  /** The job's state after the update. */
  readonly state: string;
  /** The state it left (for `phase`), else null. */
  readonly from: string | null;
  /** Virtual time, ms (the node's clock). */
  readonly at: number;
  /** How long the job spent in `from`, ms (for `phase`), else null. */
  readonly spentMs: number | null;
  readonly role: JobRole;
  /** Why: a decline, refund or slash reason, `paid`, or a failure; null when nothing to say. */
  readonly reason: string | null;
  /** Amounts and parties as decimal strings (`amount`, `worker`, `bids`...). */
  readonly detail: Readonly<Record<string, string>>;
}

/** What the feed reads from a node (a `Node` satisfies it). */
export interface FeedSource {
  readonly id: NodeId;
  observe(observer: (observation: NodeObservation) => void): () => void;
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined;
}

/** Options of {@link JobFeed}. */
export interface JobFeedOptions {
  /** Jobs tracked at once; the oldest finished ones are forgotten first. @default 10_000 */
  readonly maxTracked?: number;
}

interface Seen {
  pathLength: number;
  declined: boolean;
  slashes: number;
  done: boolean;
}

/** The role of `self` in a job, from the job's context. */
export function roleIn(context: JobContext, self: NodeId): JobRole {
  if (context.owner === self) return "client";
  if (
    context.winner?.worker === self || Object.values(context.bids).some((b) => b.worker === self)
  ) {
    return "worker";
  }
  if (context.verifiers.includes(self)) return "verifier";
  // A worker that declined the job takes no part in it: its decline is one update, its phases none.
  return "observer";
}

/** Why a job is where it is, for an update entering `state`. */
function reasonFor(state: string, context: JobContext): {
  reason: string | null;
  detail: Record<string, string>;
} {
  const detail: Record<string, string> = {};
  if (state === "settled" && context.payment !== null) {
    detail.worker = context.payment.worker;
    detail.amount = context.payment.amount.toString();
    detail.fee = context.payment.fee.toString();
    return { reason: "paid", detail };
  }
  if (state === "assigned" && context.winner !== null) {
    detail.worker = context.winner.worker;
    detail.price = context.winner.price.toString();
    detail.bids = String(Object.keys(context.bids).length);
    return { reason: null, detail };
  }
  if (context.refundReason !== null && (state === "refunding" || FINAL_STATES.includes(state))) {
    if (context.refunded > 0n) detail.refunded = context.refunded.toString();
    return { reason: context.refundReason, detail };
  }
  if (state === "failed" && context.failure !== null) return { reason: context.failure, detail };
  return { reason: null, detail };
}

/** The feed of a node's job updates. */
export class JobFeed {
  readonly #source: FeedSource;
  readonly #maxTracked: number;
  readonly #seen = new Map<string, Seen>();
  readonly #subscribers = new Set<(update: JobUpdate) => void>();
  readonly #unobserve: () => void;

  constructor(source: FeedSource, options: JobFeedOptions = {}) {
    const maxTracked = options.maxTracked ?? 10_000;
    if (!Number.isInteger(maxTracked) || maxTracked < 1) {
      throw new RangeError(`Invalid maxTracked ${maxTracked}: must be a positive integer`);
    }
    this.#source = source;
    this.#maxTracked = maxTracked;
    this.#unobserve = source.observe((o) => this.#onObservation(o));
  }

  /** Calls `subscriber` with each update from now on. Returns an unsubscribe. */
  subscribe(subscriber: (update: JobUpdate) => void): () => void {
    this.#subscribers.add(subscriber);
    return () => this.#subscribers.delete(subscriber);
  }

  /** Stops observing the node. */
  close(): void {
    this.#unobserve();
    this.#subscribers.clear();
    this.#seen.clear();
  }

  /** The updates a job's context already holds (its path so far), for a late subscriber. */
  history(jobId: string): JobUpdate[] {
    const job = this.#source.job(jobId);
    if (job === undefined) return [];
    return this.#updatesOf(job.context, job.state, { pathLength: 0, declined: false, slashes: 0 });
  }

  #onObservation(observation: NodeObservation): void {
    if (observation.type !== "delivered" || !observation.actor.startsWith("job:")) return;
    const jobId = observation.actor.slice(4);
    const job = this.#source.job(jobId);
    if (job === undefined) {
      if (observation.state === "declined") this.#declined(jobId, observation.envelope);
      return;
    }
    let seen = this.#seen.get(jobId);
    if (seen === undefined) {
      seen = { pathLength: 0, declined: false, slashes: 0, done: false };
      this.#track(jobId, seen);
    }
    const updates = this.#updatesOf(job.context, job.state, seen);
    seen.pathLength = job.context.path.length;
    seen.declined = job.context.declined !== null;
    seen.slashes = job.context.slashes.length;
    seen.done = job.done;
    for (const update of updates) {
      for (const subscriber of this.#subscribers) {
        try {
          subscriber(update);
        } catch {
          // A subscriber's failure is its own; the others still hear.
        }
      }
    }
  }

  /**
   * A job this node's worker declined without an actor (a `job.declined` record): its one
   * update. A node that is not a worker (`no_role`) says nothing of the jobs it does not follow.
   */
  #declined(jobId: string, envelope: Envelope): void {
    const reason = envelope.event["reason"];
    if (typeof reason !== "string" || reason === "no_role") return;
    const update: JobUpdate = {
      type: "declined",
      jobId,
      state: "declined",
      from: null,
      at: envelope.at,
      spentMs: null,
      role: "worker",
      reason,
      detail: {},
    };
    for (const subscriber of this.#subscribers) {
      try {
        subscriber(update);
      } catch {
        // A subscriber's failure is its own; the others still hear.
      }
    }
  }

  #updatesOf(
    context: JobContext,
    state: string,
    seen: Pick<Seen, "pathLength" | "declined" | "slashes">,
  ): JobUpdate[] {
    const role = roleIn(context, this.#source.id);
    const updates: JobUpdate[] = [];
    const path = context.path;
    for (let i = seen.pathLength; i < path.length; i++) {
      const entry = path[i]!;
      const previous = i > 0 ? path[i - 1]! : undefined;
      const { reason, detail } = i === path.length - 1
        ? reasonFor(entry.state, context)
        : { reason: null, detail: {} };
      updates.push({
        type: "phase",
        jobId: context.jobId,
        state: entry.state,
        from: previous?.state ?? null,
        at: entry.at,
        spentMs: previous === undefined ? null : entry.at - previous.at,
        role,
        reason,
        detail,
      });
    }
    if (!seen.declined && context.declined !== null) {
      updates.push({
        type: "declined",
        jobId: context.jobId,
        state,
        from: null,
        at: context.declined.at,
        spentMs: null,
        role: "worker",
        reason: context.declined.reason,
        detail: {},
      });
    }
    for (let i = seen.slashes; i < context.slashes.length; i++) {
      const slash = context.slashes[i]!;
      updates.push({
        type: "slashed",
        jobId: context.jobId,
        state,
        from: null,
        at: path.at(-1)?.at ?? 0,
        spentMs: null,
        role,
        reason: slash.reason,
        detail: { worker: slash.worker, amount: slash.amount.toString() },
      });
    }
    return updates;
  }

  #track(jobId: string, seen: Seen): void {
    if (this.#seen.size >= this.#maxTracked) {
      // Forget the oldest finished job first, else the oldest: it is only a cursor.
      let victim: string | undefined;
      for (const [id, s] of this.#seen) {
        if (s.done) {
          victim = id;
          break;
        }
      }
      this.#seen.delete(victim ?? this.#seen.keys().next().value!);
    }
    this.#seen.set(jobId, seen);
  }
}
