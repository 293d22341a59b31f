/**
 * The worker's agent: answers a job machine's `worker.consider` with a bid or a decline. The
 * decision itself is the pure {@link decideBid} beside the machines (the same rules the job's
 * owner applies to bids); the agent adds what only the node knows: whether it can run the job's
 * kind, and whether it is at its limits (`capacity` jobs running, `maxOpenBids` bids open). A
 * job declined as busy gets a bid when a slot frees while its window is still open.
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
  type EffectRequest,
  JOB_PRIORITIES,
  type JobSpec,
  type NodeId,
} from "../../machines/types.ts";
import type { Clock } from "./clock.ts";

/** The `worker.consider` effect. */
export type ConsiderEffect = Extract<EffectRequest, { type: "worker.consider" }>;

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
}

/** Bids for one worker node. */
export class WorkerAgent {
  readonly #o: WorkerAgentOptions;
  /** Jobs declined as busy, to bid on when a slot frees up. */
  readonly #busy = new Map<string, ConsiderEffect>();
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

  /** Answers a job's `worker.consider` (effect `effectId`) with a bid or a decline. */
  consider(actorId: string, effect: ConsiderEffect, effectId?: string): void {
    const { profile, self } = this.#o;
    const decision = decideBid({
      spec: effect.spec,
      profile,
      supported: this.#o.supports(effect.spec),
      busy: this.#busyNow(),
    });
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
      hardware: profile.hardware,
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
      const closesAt = cell === undefined ? undefined : jobContextOf(cell).deadlines.bid_window;
      if (
        cell === undefined || cell.state !== "bidding" || closesAt === undefined ||
        closesAt - this.#o.clock.now() < 10
      ) {
        this.#busy.delete(actorId);
        continue;
      }
      if (this.#busyNow()) return;
      this.consider(actorId, effect);
    }
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
    for (const [actorId, bidId] of [...this.#placed]) {
      const cell = this.#o.tree.get(actorId);
      if (cell === undefined || cell.done || cell.state !== "bidding") this.#placed.delete(actorId);
      else if (jobContextOf(cell).bids[bidId]) this.#placed.delete(actorId); // in the workload
      else pending++;
    }
    return load.running >= (profile.capacity ?? WORKER_DEFAULTS.capacity) ||
      load.bidding + pending >= (profile.maxOpenBids ?? WORKER_DEFAULTS.maxOpenBids);
  }
}
