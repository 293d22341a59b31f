/**
 * The worker's agent: answers a job machine's `worker.consider` with a bid or a decline. The
 * decision itself is the pure {@link decideBid} beside the machines (the same rules the job's
 * owner applies to bids); the agent adds what only the node knows: whether it can run the job's
 * kind, and whether it is at its limits (`capacity` jobs running, `maxOpenBids` bids open). A
 * job declined as busy gets a bid when a slot frees while its window is still open.
 *
 * A job heard announced is triaged first ({@link WorkerAgent.triage}), before it has an actor:
 * a job this worker will not bid on gets no actor at all (the node records the decline), and
 * one it will bid on gets its actor with the decision already taken, which the actor's
 * `worker.consider` then uses (decided once). A job triaged as busy waits without an actor and
 * is announced to the tree again when a slot frees while its window is open.
 *
 * @module
 */
import type { ActorTree } from "../../actors/tree.ts";
import { jobContextOf } from "../../actors/tree.ts";
import {
  bidIdOf,
  decideBid,
  DEFAULT_CLAIMED_REPUTATION,
  WORKER_DEFAULTS,
  type WorkerProfile,
} from "../../machines/bid_decision.ts";
import {
  type BidOffer,
  type DeclineReason,
  type EffectRequest,
  JOB_PRIORITIES,
  type JobSpec,
  type NodeId,
} from "../../machines/types.ts";
import type { Clock } from "./clock.ts";

/** The `worker.consider` effect. */
export type ConsiderEffect = Extract<EffectRequest, { type: "worker.consider" }>;

/** A job heard announced, as the agent triages it (before the job has an actor here). */
export interface Announcement {
  readonly jobId: string;
  readonly owner: NodeId;
  readonly spec: JobSpec;
  readonly attempt: number;
  readonly bidWindowEndsAt: number;
}

/** Jobs triaged as busy that wait for a slot without an actor, at most (oldest out first). */
export const MAX_WAITING_ANNOUNCEMENTS = 1_024;

/** Options of a {@link WorkerAgent}. */
export interface WorkerAgentOptions {
  readonly self: NodeId;
  readonly profile: WorkerProfile;
  readonly tree: ActorTree;
  readonly clock: Clock;
  /** Whether this node can run `spec` (an executor for its kind, its model held or fetchable). */
  readonly supports: (spec: JobSpec) => boolean;
  /**
   * Hands the decision to the job actor (`bid.received` or `bid.declined`), as the outcome of
   * effect `effectId` when there is one.
   */
  readonly answer: (
    actorId: string,
    event: { type: "bid.received"; bid: BidOffer } | { type: "bid.declined"; reason: string },
    effectId: string | undefined,
  ) => void;
  /** Publishes a bid; `effectId` closes when it went out. */
  readonly publishBid: (actorId: string, bid: BidOffer, effectId: string | undefined) => void;
  /**
   * Hands a job triaged as busy back to the tree once this worker bids on it after all (its
   * actor is created and asks `worker.consider`, which finds the decision taken).
   */
  readonly announce?: (actorId: string, announcement: Announcement) => void;
}

type Decision = ReturnType<typeof decideBid>;

/** Bids for one worker node. */
export class WorkerAgent {
  readonly #o: WorkerAgentOptions;
  /** Jobs declined as busy, to bid on when a slot frees up (with their announcement if no actor). */
  readonly #busy = new Map<string, ConsiderEffect & { announcement?: Announcement }>();
  /**
   * Bids decided at triage whose actor has not asked `worker.consider` yet, by actor: the
   * decision its `worker.consider` takes, counted as an open bid until then.
   */
  readonly #decided = new Map<string, { attempt: number; closesAt: number; decision: Decision }>();
  /**
   * Bids published whose `bid.received` the job actor has not applied yet (it goes through the
   * inbox), by actor: counted as open bids, or one `reconsider()` pass would bid past
   * `maxOpenBids`.
   */
  readonly #placed = new Map<string, string>();

  constructor(options: WorkerAgentOptions) {
    this.#o = options;
  }

  /** Whether some job waits for a free slot. */
  get waiting(): boolean {
    return this.#busy.size > 0;
  }

  /**
   * Triages job `actorId`, heard announced, before it has an actor here: `"bid"` (the decision is
   * kept for its actor's `worker.consider`) or why not. A job declined as busy waits for a slot.
   */
  triage(actorId: string, announcement: Announcement): "bid" | DeclineReason {
    const decision = this.#decide(announcement.spec);
    if (decision.bid) {
      this.#busy.delete(actorId);
      this.#decided.set(actorId, {
        attempt: announcement.attempt,
        closesAt: announcement.bidWindowEndsAt,
        decision,
      });
      return "bid";
    }
    if (decision.reason === "busy") {
      this.#busy.delete(actorId);
      this.#busy.set(actorId, {
        type: "worker.consider",
        jobId: announcement.jobId,
        spec: announcement.spec,
        attempt: announcement.attempt,
        excluded: [],
        announcement,
      });
      for (const [oldest] of this.#busy) {
        if (this.#busy.size <= MAX_WAITING_ANNOUNCEMENTS) break;
        this.#busy.delete(oldest);
      }
    }
    return decision.reason;
  }

  /** Answers a job's `worker.consider` (effect `effectId`) with a bid or a decline. */
  consider(actorId: string, effect: ConsiderEffect, effectId?: string): void {
    const { self } = this.#o;
    const taken = this.#decided.get(actorId);
    this.#decided.delete(actorId);
    const decision = taken !== undefined && taken.attempt === effect.attempt
      ? taken.decision
      : this.#decide(effect.spec);
    if (!decision.bid && decision.reason === "busy") this.#busy.set(actorId, effect);
    else this.#busy.delete(actorId);
    if (!decision.bid) {
      this.#o.answer(actorId, { type: "bid.declined", reason: decision.reason }, effectId);
      return;
    }
    const bid: BidOffer = {
      bidId: bidIdOf(effect.jobId, effect.attempt, self),
      jobId: effect.jobId,
      worker: self,
      price: decision.price,
      etaMs: decision.etaMs,
      stake: decision.stake,
      reputation: DEFAULT_CLAIMED_REPUTATION,
      hardware: this.#o.profile.hardware,
    };
    this.#placed.set(actorId, bid.bidId);
    this.#o.answer(actorId, { type: "bid.received", bid }, undefined);
    this.#o.publishBid(actorId, bid, effectId);
  }

  /**
   * A slot freed up: bid on jobs declined as busy whose bid window is still open, highest
   * priority first, then oldest first. Without this, workers that all bid on the same burst of
   * jobs would leave the next burst with no bids at all.
   */
  reconsider(): void {
    const rank = (e: ConsiderEffect) => JOB_PRIORITIES.indexOf(e.spec.priority ?? "normal");
    // A stable sort: within one priority, the Map's insertion order (arrival) stays.
    const queue = [...this.#busy].sort(([, a], [, b]) => rank(b) - rank(a));
    for (const [actorId, effect] of queue) {
      const cell = this.#o.tree.get(actorId);
      const waiting = cell === undefined ? effect.announcement : undefined;
      const closesAt = waiting !== undefined
        ? waiting.bidWindowEndsAt
        : cell === undefined
        ? undefined
        : jobContextOf(cell).deadlines.bid_window;
      if (
        (cell === undefined ? waiting === undefined : cell.state !== "bidding") ||
        closesAt === undefined || closesAt - this.#o.clock.now() < 10
      ) {
        this.#busy.delete(actorId);
        continue;
      }
      if (this.#busyNow()) return;
      if (waiting === undefined) this.consider(actorId, effect);
      else if (this.#o.announce === undefined) this.#busy.delete(actorId);
      else if (this.triage(actorId, waiting) === "bid") this.#o.announce(actorId, waiting);
    }
  }

  #decide(spec: JobSpec): Decision {
    return decideBid({
      spec,
      profile: this.#o.profile,
      supported: this.#o.supports(spec),
      busy: this.#busyNow(),
    });
  }

  /** Jobs this worker runs (assigned, not yet through execution) and its open bids. */
  workload(): { running: number; bidding: number } {
    const { self } = this.#o;
    const load = { running: 0, bidding: 0 };
    for (const cell of this.#o.tree.jobs.cells()) {
      if (cell.done) continue;
      const c = jobContextOf(cell);
      if (
        c.winner?.worker === self && (cell.state === "executing" || cell.state === "reassigning")
      ) load.running++;
      else if (cell.state === "bidding" && c.bids[bidIdOf(c.jobId, c.attempt, self)]) {
        load.bidding++;
      }
    }
    return load;
  }

  /** Whether this worker is at its limits: jobs running (`capacity`) or open bids (`maxOpenBids`). */
  #busyNow(): boolean {
    const { profile } = this.#o;
    const load = this.workload();
    let pending = 0;
    const now = this.#o.clock.now();
    for (const [actorId, taken] of [...this.#decided]) {
      // Its actor never asked (its announcement was refused, or the window closed): let it go.
      if (taken.closesAt <= now || this.#o.tree.get(actorId)?.done === true) {
        this.#decided.delete(actorId);
      } else if (this.#o.tree.get(actorId) === undefined) pending++;
    }
    for (const [actorId, bidId] of [...this.#placed]) {
      const cell = this.#o.tree.get(actorId);
      if (cell === undefined || cell.done || cell.state !== "bidding") this.#placed.delete(actorId);
      else if (jobContextOf(cell).bids[bidId]) this.#placed.delete(actorId); // in the workload
      else pending++;
    }
    const capacity = profile.capacity ?? WORKER_DEFAULTS.capacity;
    // Reserved slots: running jobs and open bids together within the capacity.
    if (profile.reserveSlots && load.running + load.bidding + pending >= capacity) return true;
    return load.running >= capacity ||
      load.bidding + pending >= (profile.maxOpenBids ?? WORKER_DEFAULTS.maxOpenBids);
  }
}
