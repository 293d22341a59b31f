/**
 * What a node keeps of a job it declined: a compact record, not a job actor. A node follows a
 * job with an actor only when it has a role in it (it owns it, it bids on it, or the chain names
 * it as the worker or a verifier); of every other job it heard announced it keeps why it did not
 * take part (`GET /jobs/:id` says so), in a store bounded in count and in time (oldest out first,
 * each record forgotten `ttlMs` after it was made).
 *
 * The decline enters the node as one journaled event, `job.declined`, addressed to the job (the
 * node's ingress decides, at the boundary, whether it takes part; see
 * `runtime/kernel/ingress.ts`), so replay and recovery rebuild the same store. A node that may be
 * chosen as a verifier keeps the job's spec in the record: when the chain's assignment names it,
 * the tree creates the job's actor from the record. A verifier hears no announcements (issue 16
 * item 2): it learns a job when its owner's assignment names it (`awaiting_chain`, the spec
 * checked against the chain's escrow at the boundary), or, when the chain named it first, it
 * keeps the chain's assignment until the spec comes (`awaiting_spec`,
 * {@link DeclineRecord.assigned}); whichever comes second creates the actor. Gossip can outrun the
 * chain, so such a record also keeps a result heard before the assignment (the output a verifier
 * needs), for a bounded number of jobs at once ({@link DeclineLimits.maxEarlyResults}). The
 * records an owner's assignments make (`awaiting_chain`, the sender its owner) are counted per
 * sender ({@link DeclineLimits.maxAwaitingPerSender}): past its share, a peer's own oldest goes.
 * The records announcements make cost their sender nothing on chain: they are counted per owner
 * too ({@link DeclineLimits.maxAnnouncedPerOwner}), and past the count bound they go first, so
 * that no number of announcements (from one peer or many) pushes out a record that the chain
 * backs (an escrow-checked assignment's, or one the chain's naming made).
 *
 * @module
 */
import type { DeclineReason, JobSpec, NodeId } from "../machines/types.ts";

/**
 * Why a node took no part in a job: its worker's reason, `no_role` (it is not a worker), or
 * `not_sampled` (the job was announced to a sample of the workers this one is not in; it heard
 * it on the shard's watch topic, as a relay). Or why it has no part yet: `awaiting_chain` (the
 * owner's assignment named it as a verifier, the chain has not yet) and `awaiting_spec` (the
 * chain named it, the owner's assignment with the spec has not come yet).
 */
export type DeclineCause =
  | DeclineReason
  | "no_role"
  | "not_sampled"
  | "awaiting_chain"
  | "awaiting_spec";

/**
 * What the chain's escrow (`JobSubmitted`) says of a job, that an owner's spec must match. The
 * amount, minimum stake and terms are absent in an escrow journaled before the chain's events
 * carried them (`ChainAssignment.escrow` of an older journal).
 */
export interface EscrowOfJob {
  readonly client: NodeId;
  readonly modelHash: string;
  readonly inputCommitment: string;
  /** The escrowed amount (a spec's `maxPrice`). */
  readonly amount?: bigint;
  readonly minStake?: bigint;
  readonly verifierCount?: number;
  readonly bidWindowMs?: number;
  readonly executionMs?: number;
  readonly verificationMs?: number;
  /**
   * The escrow's commitment to the whole spec (`protocols/spec_hash.ts`): absent for a job
   * submitted without one, or an escrow journaled before the chain's events carried it.
   */
  readonly specHash?: string;
}

/** The chain's assignment of a job (a `chain.worker.assigned` event's fields). */
export interface ChainAssignment {
  readonly worker: NodeId;
  readonly price: bigint;
  readonly verifiers: readonly NodeId[];
  /**
   * The auction the assignment closes, as the chain counts it (`WorkerAssigned`): a chosen
   * verifier's actor takes it, not the sender's word. Absent in a naming journaled before the
   * chain's events carried it (the record's attempt is taken then).
   */
  readonly attempt?: number;
  readonly ref?: string;
  /**
   * The job's escrow terms as the node's chain follower showed them before the naming, journaled
   * with it (a verifier awaiting the spec): a node restarted on its journal follows the chain from
   * after the naming and would not see the escrow again to check the owner's spec against.
   */
  readonly escrow?: EscrowOfJob;
}

/** The event that records a decline (journaled; see the module doc). */
export const DECLINED_EVENT = "job.declined";

/** The same chain event seen again (a reorg hands it over twice), not a new assignment. */
function sameNaming(a: ChainAssignment, b: ChainAssignment): boolean {
  return a.ref === b.ref && a.worker === b.worker;
}

/**
 * A record named again by the chain (a new auction's assignment): the chain's news and the
 * results kept were of the earlier assignment, and would walk the new actor past this one.
 */
function renamed(known: DeclineRecord, assigned: ChainAssignment, now: number): DeclineRecord {
  const { chain: _news, results: _results, ...rest } = known;
  return { ...rest, at: now, assigned };
}

/**
 * Whether `record` was made by an announcement alone: no owner's assignment checked against the
 * escrow (`awaiting_chain`), no chain's naming (`assigned`) behind it.
 */
function announcedOnly(record: DeclineRecord): boolean {
  return record.reason !== "awaiting_chain" && record.reason !== "awaiting_spec" &&
    record.assigned === undefined;
}

/** A job this node heard of and declined. */
export interface DeclineRecord {
  readonly jobId: string;
  readonly owner: NodeId;
  readonly attempt: number;
  readonly reason: DeclineCause;
  /** When it was declined (virtual ms). */
  readonly at: number;
  /** The bid window's end the owner announced (virtual ms). */
  readonly bidWindowEndsAt: number;
  /** Kept by a node that may be chosen as a verifier (see the module doc). */
  readonly spec?: JobSpec;
  /** Results heard before the chain named this node (with a spec or an assignment; at most 2). */
  readonly results?: readonly EarlyResult[];
  /**
   * The chain's assignment naming this node, heard before the spec (`awaiting_spec`: owner and
   * attempt are unknown, `""` and 0, until the owner's assignment brings them).
   */
  readonly assigned?: ChainAssignment;
  /**
   * Chain news of the job heard while awaiting the spec (a result on chain, a failure, a
   * revocation: {@link AWAITED_CHAIN_NEWS}), handed to its actor when the spec creates it; the
   * latest {@link CHAIN_NEWS_PER_RECORD}.
   */
  readonly chain?: readonly ChainNews[];
}

/** A chain event's actor event (`chain.*`), as the tree received it. */
export interface ChainNews {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** The chain news a record awaiting the spec keeps (what a chosen verifier's actor needs). */
export const AWAITED_CHAIN_NEWS: ReadonlySet<string> = new Set([
  "chain.result.submitted",
  "chain.execution.failed",
  "chain.assignment.revoked",
]);

/** Chain news kept per record awaiting the spec, the latest last. */
export const CHAIN_NEWS_PER_RECORD = 4;

/** A result heard for a declined job (a `job.result.received` event's fields). */
export interface EarlyResult {
  readonly worker: NodeId;
  readonly commitment: string;
  readonly output: unknown;
}

/** Bounds of a {@link Declines} store. */
export interface DeclineLimits {
  /** Records kept, oldest out first. @default 10_000 */
  readonly maxRecords?: number;
  /** How long a record is kept, virtual ms. @default 600_000 */
  readonly ttlMs?: number;
  /** Records holding early results at once, the oldest stripped first. @default 256 */
  readonly maxEarlyResults?: number;
  /**
   * Records one peer's assignments made (`awaiting_chain`, the sender as the record's owner), its
   * own oldest out first: one peer's assignments cannot push out another's records. @default 256
   */
  readonly maxAwaitingPerSender?: number;
  /**
   * Records one owner's announcements made (a decline with neither an assignment nor the chain's
   * naming behind it), its own oldest out first. @default 256
   */
  readonly maxAnnouncedPerOwner?: number;
}

/** The default bounds of a {@link Declines} store. */
export const DECLINE_DEFAULTS = {
  maxRecords: 10_000,
  ttlMs: 600_000,
  maxEarlyResults: 256,
  maxAwaitingPerSender: 256,
  maxAnnouncedPerOwner: 256,
} as const;

/** Results kept per record (one per worker, the latest last). */
const RESULTS_PER_RECORD = 2;

/** A bounded, expiring store of {@link DeclineRecord}s, by job id, in the order they were made. */
export class Declines {
  readonly #records = new Map<string, DeclineRecord>();
  readonly #max: number;
  readonly #ttl: number;
  readonly #maxEarly: number;
  /** The jobs whose records hold results, oldest first. */
  readonly #withResults = new Set<string>();
  readonly #maxAwaiting: number;
  /** The `awaiting_chain` records by the peer whose assignment made them, oldest first. */
  readonly #awaiting = new Map<NodeId, Set<string>>();
  readonly #maxAnnounced: number;
  /** The records announcements made ({@link announcedOnly}) by owner, oldest first. */
  readonly #announced = new Map<NodeId, Set<string>>();
  /** The same records, oldest first: the first to go past the count bound. */
  readonly #announcedOrder = new Set<string>();

  constructor(limits: DeclineLimits = {}) {
    const max = limits.maxRecords ?? DECLINE_DEFAULTS.maxRecords;
    const ttl = limits.ttlMs ?? DECLINE_DEFAULTS.ttlMs;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(`Invalid declines.maxRecords ${max}: must be a non-negative integer`);
    }
    if (!Number.isSafeInteger(ttl) || ttl < 1) {
      throw new RangeError(`Invalid declines.ttlMs ${ttl}: must be a positive integer`);
    }
    const early = limits.maxEarlyResults ?? DECLINE_DEFAULTS.maxEarlyResults;
    if (!Number.isSafeInteger(early) || early < 0) {
      throw new RangeError(
        `Invalid declines.maxEarlyResults ${early}: must be a non-negative integer`,
      );
    }
    const awaiting = limits.maxAwaitingPerSender ?? DECLINE_DEFAULTS.maxAwaitingPerSender;
    if (!Number.isSafeInteger(awaiting) || awaiting < 0) {
      throw new RangeError(
        `Invalid declines.maxAwaitingPerSender ${awaiting}: must be a non-negative integer`,
      );
    }
    const announced = limits.maxAnnouncedPerOwner ?? DECLINE_DEFAULTS.maxAnnouncedPerOwner;
    if (!Number.isSafeInteger(announced) || announced < 0) {
      throw new RangeError(
        `Invalid declines.maxAnnouncedPerOwner ${announced}: must be a non-negative integer`,
      );
    }
    this.#maxAnnounced = announced;
    this.#max = max;
    this.#ttl = ttl;
    this.#maxEarly = early;
    this.#maxAwaiting = awaiting;
  }

  /**
   * Keeps `result`, heard for job `jobId`, in its record if the record keeps a spec. Returns
   * whether it was kept.
   */
  keepResult(jobId: string, result: EarlyResult, now: number): boolean {
    const record = this.get(jobId, now);
    if (record === undefined || this.#maxEarly === 0) return false;
    if (record.spec === undefined && record.assigned === undefined) return false;
    const results = [
      ...(record.results ?? []).filter((r) => r.worker !== result.worker),
      { worker: result.worker, commitment: result.commitment, output: result.output },
    ].slice(-RESULTS_PER_RECORD);
    this.#records.set(jobId, { ...record, results });
    this.#withResults.delete(jobId);
    this.#withResults.add(jobId);
    for (const oldest of this.#withResults) {
      if (this.#withResults.size <= this.#maxEarly) break;
      this.#withResults.delete(oldest);
      const stripped = this.#records.get(oldest);
      if (stripped === undefined) continue;
      const { results: _dropped, ...rest } = stripped;
      this.#records.set(oldest, rest);
    }
    return true;
  }

  /**
   * Keeps the chain's assignment of job `jobId`, which names this node, in the job's record (made
   * `awaiting_spec` if there is none): the spec's arrival creates the actor. Returns the record.
   */
  awaitSpec(jobId: string, assigned: ChainAssignment, now: number): DeclineRecord {
    const known = this.get(jobId, now);
    const record: DeclineRecord = known === undefined
      ? {
        jobId,
        owner: "",
        attempt: 0,
        reason: "awaiting_spec",
        at: now,
        bidWindowEndsAt: 0,
        assigned,
      }
      : known.assigned === undefined || sameNaming(known.assigned, assigned)
      ? { ...known, at: now, assigned }
      : renamed(known, assigned, now);
    this.record(record);
    return record;
  }

  /**
   * Keeps chain news `event` of job `jobId` in its record if the record awaits the spec (the
   * chain named this node: {@link DeclineRecord.assigned}). Returns whether it was kept.
   */
  keepChain(jobId: string, event: ChainNews, now: number): boolean {
    const record = this.get(jobId, now);
    if (record?.assigned === undefined || !AWAITED_CHAIN_NEWS.has(event.type)) return false;
    const chain = [...(record.chain ?? []), event].slice(-CHAIN_NEWS_PER_RECORD);
    this.#records.set(jobId, { ...record, chain });
    return true;
  }

  /** Records counted now. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Records `record` (replacing an earlier one of the job), then drops expired and excess ones:
   * past its sender's share of `awaiting_chain` records, that sender's oldest.
   */
  record(record: DeclineRecord): void {
    this.#forget(record.jobId);
    if (this.#max > 0) this.#records.set(record.jobId, record);
    if (this.#max > 0 && record.results !== undefined) this.#withResults.add(record.jobId);
    if (this.#max > 0 && record.reason === "awaiting_chain") {
      let mine = this.#awaiting.get(record.owner);
      if (mine === undefined) this.#awaiting.set(record.owner, mine = new Set());
      mine.add(record.jobId);
      while (mine.size > this.#maxAwaiting) this.#forget(mine.values().next().value!);
    }
    if (this.#max > 0 && announcedOnly(record)) {
      let theirs = this.#announced.get(record.owner);
      if (theirs === undefined) this.#announced.set(record.owner, theirs = new Set());
      theirs.add(record.jobId);
      this.#announcedOrder.add(record.jobId);
      while (theirs.size > this.#maxAnnounced) this.#forget(theirs.values().next().value!);
    }
    this.expire(record.at);
  }

  /** Drops the record of `jobId` and what indexes it. */
  #forget(jobId: string): void {
    const known = this.#records.get(jobId);
    this.#records.delete(jobId);
    this.#withResults.delete(jobId);
    if (known === undefined) return;
    const index = known.reason === "awaiting_chain"
      ? this.#awaiting
      : this.#announcedOrder.delete(jobId)
      ? this.#announced
      : undefined;
    const theirs = index?.get(known.owner);
    theirs?.delete(jobId);
    if (theirs?.size === 0) index!.delete(known.owner);
  }

  /** The records announcements of `owner` made ({@link announcedOnly}), kept now. */
  announcedFrom(owner: NodeId): number {
    return this.#announced.get(owner)?.size ?? 0;
  }

  /** The `awaiting_chain` records the assignments of peer `sender` made, kept now. */
  awaitingFrom(sender: NodeId): number {
    return this.#awaiting.get(sender)?.size ?? 0;
  }

  /** The live record of `jobId` at virtual time `now`, if any. */
  get(jobId: string, now: number): DeclineRecord | undefined {
    const record = this.#records.get(jobId);
    return record === undefined || record.at + this.#ttl <= now ? undefined : record;
  }

  /** Removes and returns the live record of `jobId` (its actor is being created). */
  take(jobId: string, now: number): DeclineRecord | undefined {
    const record = this.get(jobId, now);
    this.#forget(jobId);
    return record;
  }

  /** Drops the records expired at `now`, and the oldest past the count bound. */
  expire(now: number): void {
    for (const [jobId, record] of this.#records) {
      if (record.at + this.#ttl > now) break;
      this.#forget(jobId);
    }
    // Past the count bound, announcements' records go first (see the module doc).
    while (this.#records.size > this.#max) {
      const victim = this.#announcedOrder.values().next().value ??
        this.#records.keys().next().value!;
      this.#forget(victim);
    }
  }

  /** Every record, oldest first (expired ones not yet dropped included). */
  values(): IterableIterator<DeclineRecord> {
    return this.#records.values();
  }
}
