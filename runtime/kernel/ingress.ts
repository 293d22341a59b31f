/**
 * What comes in from the network: gossip (validated before gossipsub forwards it, then
 * translated into actor events), peer events, capabilities heard from other nodes, and the join
 * snapshot (served to peers that join, asked of peers when this node joins). A message that
 * fails decoding or an application rule is rejected with its reason and costs its sender score.
 *
 * A job heard announced (by gossip or a join snapshot) that has no actor here is triaged at
 * this boundary: the node follows it with an actor only if it will bid on it (it owns it, or the
 * chain names it later: see `actors/tree.ts`). Otherwise one `job.declined` event, with the
 * reason, is journaled in place of the announcement and the tree keeps a compact record of it
 * (`actors/declines.ts`); a repeat of an announcement already declined is not journaled again.
 *
 * A verifier hears no announcements: the owner's assignment brings it the spec of a job it was
 * chosen for, which it keeps (a `job.declined` record, `awaiting_chain`) once checked against the
 * chain's escrow and naming (`assignment_hints.ts`); a forged or mismatched one costs its sender
 * score. The attempt, worker and price its actor follows are the chain's.
 *
 * @module
 */
import type { ActorTree } from "../../actors/tree.ts";
import { jobContextOf, OUTBID_STATE } from "../../actors/tree.ts";
import { type AddressedEvent, jobAddress, jobIdOf, peerAddress } from "../../machines/address.ts";
import type { HardwareClass, JobSpec, NodeId, Role } from "../../machines/types.ts";
import { specHashOf } from "../../protocols/spec_hash.ts";
import { type ChainAssignment, type DeclineCause, DECLINED_EVENT } from "../../actors/declines.ts";
import {
  decodeMessage,
  isDirectTopic,
  type Topic,
  TOPICS,
  WireError,
} from "../../protocols/messages.ts";
import type { GossipMessage, NetworkPort, PeerEvent } from "../../protocols/network_port.ts";
import { requestSnapshots, type SnapshotData } from "../../protocols/snapshot_protocol.ts";
import { inSample } from "../../protocols/sampling.ts";
import { ASSIGNMENT_HEARD, RuleViolation, wireToActorEvents } from "../../protocols/translate.ts";
import {
  type AssignmentHint,
  AssignmentHints,
  assignmentMismatch,
  type EscrowTerms,
  namingMismatch,
} from "./assignment_hints.ts";
import type { Announcement } from "./worker_agent.ts";
import { Batcher } from "./batcher.ts";
import type { EscrowCommitment } from "./escrow_watch.ts";
import { logger as kernelLogger } from "./log.ts";
import { RecentSet } from "./recent_set.ts";

const logger = kernelLogger("ingress");

/** Node ids an ingress remembers having seen as peers (oldest out). */
const NODES_REMEMBERED = 10_000;

/** Penalty to a peer's score for a message that failed decoding or an application rule. */
export const WIRE_PENALTY = -10;

/**
 * Most models a node keeps from peers' capabilities: each is an announcement shard a node that
 * fetches models listens on, so a peer advertising made-up models cannot make it join without
 * bound.
 */
export const MAX_MODELS_HEARD = 256;

/** Announcements waiting for their job's escrow read, at most (more are let by, not charged). */
export const MAX_ESCROW_READS_HELD = 1_024;
/** Announcements from one peer waiting for their job's escrow read, at most. */
export const MAX_ESCROW_READS_PER_SENDER = 64;

/** What a node heard of another node's capabilities. */
export interface Capabilities {
  readonly roles: readonly Role[];
  readonly hardware: HardwareClass;
}

/** Options of an {@link Ingress}. */
export interface IngressOptions {
  readonly self: NodeId;
  readonly tree: ActorTree;
  readonly network: NetworkPort;
  /** Hands an event to the inbox (`network` or `system` source). */
  readonly submit: (source: "network" | "system", addressed: AddressedEvent) => void;
  /** Told each message rejected at the boundary, with its code and reason. */
  readonly onRejected: (message: GossipMessage, code: string, reason: string) => void;
  /** Whether the chain showed job `jobId`'s escrow (the join snapshot carries only those). */
  readonly escrowSeen: (jobId: string) => boolean;
  /**
   * What job `jobId`'s escrow commits to (its client, its spec hash), once the chain showed it: an
   * announcement of the job must match it. Absent: announcements are not checked so.
   */
  readonly escrowCommitment?: (jobId: string) => EscrowCommitment | undefined;
  /**
   * Whether the chain ended job `jobId` while this node had no part in it (its news was not
   * journaled): an announcement of it, come late (a client that restarts announces again), is
   * let by instead of making an actor that would wait for ever. Absent: never.
   */
  readonly endedOnChain?: (jobId: string) => boolean;
  /**
   * Reads job `jobId`'s escrow from the chain, so that {@link IngressOptions.escrowSeen},
   * `escrowCommitment` and `endedOnChain` answer from it (a node whose port reads escrows on
   * demand, `ChainPort.escrowOf`, and does not read every job's escrow as it comes). Given, an
   * announcement of a job whose escrow this node does not know waits for the read before it is
   * triaged: one that does not match the escrow is refused at its sender's cost, one of a job that
   * ended is let by, as they are where the escrow came first. Absent: announcements are triaged
   * on what the node knows.
   */
  readonly readEscrow?: (jobId: string) => Promise<unknown>;
  /**
   * Triages a job heard announced that has no actor here: `"bid"` (its actor is created), or why
   * this node declines it. Absent (a node that is not a worker): declined as `no_role`.
   */
  readonly triage?: (actorId: string, announcement: Announcement) => "bid" | DeclineCause;
  /** Whether this node is a worker (one outside a job's sample declines it as `not_sampled`). */
  readonly worker?: boolean;
  /**
   * Whether this node may be chosen as a verifier: a decline keeps the job's spec (the chain may
   * still name it), and it hears results of jobs it follows. @default false
   */
  readonly keepSpec?: boolean;
  /**
   * Whether the chain rates worker `worker` below this node's floor (its reputation, moved only
   * by chain-decided outcomes): its bids on this node's jobs are let by, not journaled, so a
   * worker disputed again and again stops winning them. Absent: every bid is weighed.
   */
  readonly shunned?: (worker: NodeId) => boolean;
  /** Told when a peer's capabilities name a model not heard of before (a new shard to hear). */
  readonly heardModels?: () => void;
  /**
   * How deep this node sampled the current auction of its job `jobId` (`sampling.ts`), and for
   * which attempt; undefined for a job it did not announce (or announced before a restart): a
   * bid from outside that sample is ignored. Absent: bids are not checked.
   */
  readonly sampleOf?: (
    jobId: string,
  ) => { readonly attempt: number; readonly bits: number } | undefined;
  /** Told each bid ignored because its worker was outside the job's sample. */
  readonly onSampledOut?: () => void;
  /**
   * The node's clock (virtual ms), for how long an assignment waits for its escrow.
   * @default Date.now
   */
  readonly now?: () => number;
  /** The verifier's memory of escrow terms and held assignments. @default its own, default bounds */
  readonly hints?: AssignmentHints;
}

/** The network side of one node. */
export class Ingress {
  readonly #o: IngressOptions;
  readonly #capabilities = new Map<NodeId, Capabilities>();
  /**
   * Node ids this node has seen as peers (connected, or heard announcing capabilities), not
   * forgotten when they leave: a job's client that is one must send its assignments itself.
   */
  readonly #nodes = new RecentSet(NODES_REMEMBERED);
  /** {@link Ingress.verifierPool}, kept until the capabilities change (read per job submitted). */
  #verifiers: NodeId[] | undefined;
  /** Models each peer advertised in its capabilities, to fetch missing models from. */
  readonly #peerModels = new Map<NodeId, ReadonlySet<string>>();
  /** What the validator decoded, keyed by the payload bytes (the same object reaches delivery). */
  readonly #decoded = new WeakMap<Uint8Array, AddressedEvent[]>();
  /** Every model a peer advertised (bounded): the shards a node that fetches models hears. */
  readonly #modelsHeard = new Set<string>();
  /** Connected peers without an actor here, with the protocols they identified with. */
  readonly #quiet = new Map<NodeId, { protocols?: readonly string[] }>();
  /** Escrow terms and assignments waiting for theirs (a verifier's: see the module doc). */
  readonly #hints: AssignmentHints;
  #ignored = 0;
  /** Escrow reads under way, by job: the announcements heard meanwhile wait on the same one. */
  readonly #reading = new Map<string, Promise<unknown>>();
  /** Announcements waiting for a read, in all and by sender. */
  #readsHeld = 0;
  readonly #readsBySender = new Map<NodeId, number>();
  #shunned = 0;
  /** Bids and attestations on this node's jobs that arrive in one turn enter as one event. */
  readonly #batcher: Batcher;

  constructor(options: IngressOptions) {
    this.#o = options;
    this.#hints = options.hints ?? new AssignmentHints();
    this.#batcher = new Batcher({ submit: (addressed) => options.submit("network", addressed) });
  }

  /**
   * Submits the bids and attestations gathered this turn now (a node that stops: they were
   * accepted at the boundary, and are journaled before the inbox closes).
   */
  flush(): void {
    this.#batcher.flush();
  }

  /** Batch events (of two or more bids or attestations) submitted so far. */
  get batches(): number {
    return this.#batcher.batches;
  }

  /** Bumped whenever a capability heard changes (what {@link Ingress.capableWorkers} counts). */
  #capabilitiesVersion = 0;

  /** Changes whenever the capabilities heard change: what {@link Ingress.capableWorkers} counts. */
  get capabilitiesVersion(): number {
    return this.#capabilitiesVersion;
  }

  /** Records this node's own capabilities. */
  setOwn(capabilities: Capabilities): void {
    this.#capabilities.set(this.#o.self, capabilities);
    this.#verifiers = undefined;
    this.#capabilitiesVersion++;
  }

  /** Verifier nodes this node knows of (from capability gossip), sorted. */
  verifierPool(): NodeId[] {
    this.#verifiers ??= [...this.#capabilities].filter(([, c]) => c.roles.includes("verifier"))
      .map(([id]) => id).sort();
    return [...this.#verifiers];
  }

  /** The nodes this node has heard capabilities from (itself included). */
  knownNodes(): { id: NodeId; roles: readonly Role[]; hardware: HardwareClass }[] {
    return [...this.#capabilities].map(([id, c]) => ({ id, ...c }));
  }

  /** Models peers advertised (at most {@link MAX_MODELS_HEARD}, first heard first kept). */
  modelsHeard(): ReadonlySet<string> {
    return this.#modelsHeard;
  }

  /** Peers that advertised the model `hash`. */
  advertisersOf(hash: string): NodeId[] {
    return [...this.#peerModels].filter(([, m]) => m.has(hash)).map(([id]) => id);
  }

  /**
   * Gossipsub's validator: decodes and checks `message`; `reject` costs the sender score (and
   * gossipsub stops the message), `accept` keeps what it decoded for {@link Ingress.receive}.
   */
  validate(message: GossipMessage): "accept" | "reject" | "ignore" {
    const { tree } = this.#o;
    try {
      const decoded = decodeMessage(message.topic as Topic, message.data);
      const addressed = wireToActorEvents(message.topic as Topic, decoded, message.from, {
        verifiersOf: (jobId) => {
          const cell = tree.get(jobAddress(jobId));
          const verifiers = cell === undefined ? undefined : jobContextOf(cell).verifiers;
          return verifiers && verifiers.length > 0 ? verifiers : undefined;
        },
      });
      if (decoded.type === "job.announce") {
        const why = this.announcementMismatch(decoded as typeof decoded & { spec: JobSpec });
        if (why !== null) throw new RuleViolation(why);
      }
      if (decoded.type === "job.assign" && decoded.spec !== undefined && this.#o.keepSpec) {
        const hint = this.#hintOf(addressed[0]!);
        const terms = this.escrowTerms(decoded.jobId);
        const naming = this.#o.tree.declined(decoded.jobId)?.assigned;
        const why = (terms && assignmentMismatch(hint, terms, this.#isNode(terms.client))) ||
          (naming && namingMismatch(hint, naming));
        if (why) throw new RuleViolation(why);
      }
      if (decoded.type === "bid.submit" && this.#outOfSample(decoded.jobId, decoded.worker)) {
        this.#o.onSampledOut?.();
        return "ignore";
      }
      if (decoded.type === "node.capabilities") {
        this.#capabilities.set(decoded.node, { roles: decoded.roles, hardware: decoded.hardware });
        this.#nodes.add(decoded.node);
        this.#verifiers = undefined;
        this.#capabilitiesVersion++;
        this.#peerModels.set(decoded.node, new Set(decoded.models));
        let fresh = false;
        for (const model of decoded.models) {
          if (this.#modelsHeard.has(model) || this.#modelsHeard.size >= MAX_MODELS_HEARD) continue;
          this.#modelsHeard.add(model);
          fresh = true;
        }
        if (fresh) this.#o.heardModels?.();
      }
      this.#decoded.set(message.data, addressed);
      return "accept";
    } catch (error) {
      if (!(error instanceof WireError) && !(error instanceof RuleViolation)) throw error;
      this.#refuse(
        message,
        error instanceof WireError ? error.code : "rule_violation",
        error.message,
      );
      return "reject";
    }
  }

  /** Refuses `message` at its sender's cost (counted, logged, and the peer's score). */
  #refuse(message: GossipMessage, code: string, reason: string): void {
    this.#o.onRejected(message, code, reason);
    this.engage(message.from);
    this.#o.submit("network", {
      target: peerAddress(message.from),
      event: { type: "peer.scored", delta: WIRE_PENALTY, reason },
    });
  }

  /**
   * Whether a bid on one of this node's sampled auctions comes from a worker outside the sample
   * (it heard the job on the watch topic, second hand, or from a join snapshot, which does not
   * carry the sample): it would bring back the load sampling takes off the owner, so it is
   * ignored (not journaled; the peer's rate limit still counts it). Not scored: an honest worker
   * that joined late and bid from a snapshot must not be banned for it.
   */
  #outOfSample(jobId: string, worker: NodeId): boolean {
    const sample = this.#o.sampleOf?.(jobId);
    return sample !== undefined && !inSample(worker, jobId, sample.attempt, sample.bits);
  }

  /**
   * How many workers this node knows of (from capability gossip, itself excluded) that could run
   * a job needing `hardware` and, for a model, holding `model`, and that `staked` says hold the
   * job's stake on chain (`capable`), of the workers it heard from at all (`heard`): what an owner
   * samples by. Capabilities alone are gossip: a made-up worker without stake does not count.
   */
  capableWorkers(
    hardware: HardwareClass,
    model: string | undefined,
    staked: (worker: NodeId) => boolean,
  ): { capable: number; heard: number } {
    let capable = 0;
    let heard = 0;
    for (const [id, c] of this.#capabilities) {
      if (id === this.#o.self || !c.roles.includes("worker")) continue;
      heard++;
      if (hardware === "gpu" && c.hardware !== "gpu") continue;
      if (model !== undefined && this.#peerModels.get(id)?.has(model) !== true) continue;
      if (staked(id)) capable++;
    }
    return { capable, heard };
  }

  /** Delivers what {@link Ingress.validate} decoded from an accepted message. */
  receive(message: GossipMessage): void {
    // A job's messages are dealings; what every node gossips to all (capabilities, health,
    // reputation) is not.
    if (isDirectTopic(message.topic) || message.topic.startsWith(`${TOPICS.jobs}/`)) {
      this.engage(message.from);
    }
    for (const addressed of this.#decoded.get(message.data) ?? []) {
      const type = addressed.event.type;
      if (type === ASSIGNMENT_HEARD) this.#consider(this.#hintOf(addressed));
      else if (type !== "job.announced" && !this.#concerns(addressed)) this.#ignored++;
      else if (Batcher.gathers(type)) this.#batcher.add(addressed);
      else {
        // Nothing pending is overtaken by what is not batched (a withdrawal by its bid's batch).
        this.#batcher.flush();
        if (type === "job.announced") this.#announced(addressed, message);
        else this.#o.submit("network", addressed);
      }
    }
  }

  /**
   * Messages about jobs this node has no actor for, which it let by without journaling them
   * (gossip about jobs it declined or never heard of: bids, results, attestations).
   */
  get ignored(): number {
    return this.#ignored;
  }

  /** Bids on this node's jobs let by because the chain rates their worker below the floor. */
  get shunned(): number {
    return this.#shunned;
  }

  /**
   * Whether a message's event concerns this node, which takes part in a job only where it has a
   * role. Its own jobs: everything. A job it has an actor for but does not own (it bid, or was
   * chosen): not the other workers' bids nor the attestations, which are the owner's to weigh
   * (or the chain's to count), and results only if it may verify. A job without an actor here:
   * only a result, if it may still be chosen to verify it (its decline kept the spec). The rest
   * would change nothing in the tree: it is not journaled at all, so a declined job costs one
   * delivery, its decline.
   */
  #concerns(addressed: AddressedEvent): boolean {
    const { tree, self } = this.#o;
    const jobId = jobIdOf(addressed.target);
    if (jobId === undefined) return true;
    const type = addressed.event.type;
    const cell = tree.get(addressed.target);
    if (cell === undefined) {
      const record = type === "job.result.received" ? tree.declined(jobId) : undefined;
      return record !== undefined && (record.spec !== undefined || record.assigned !== undefined);
    }
    if (jobContextOf(cell).owner === self) {
      if (type !== "bid.received") return true;
      const worker = (addressed.event as { bid?: { worker?: unknown } }).bid?.worker;
      if (typeof worker === "string" && this.#o.shunned?.(worker)) {
        this.#shunned++;
        return false;
      }
      return true;
    }
    if (type === "job.result.received") return this.#o.keepSpec === true;
    return type !== "bid.received" && type !== "bid.withdrawn" &&
      type !== "job.attestation.received";
  }

  /**
   * A job heard announced (`message`, unless a join snapshot relayed it): handed to its actor if
   * it has one here (or was retired, or is this node's own), else triaged (see the module doc),
   * once its escrow was read where this node reads escrows on demand (`read`: it was).
   */
  #announced(
    addressed: AddressedEvent,
    message?: GossipMessage,
    read = false,
  ): Promise<void> | void {
    const { tree, self } = this.#o;
    const e = addressed.event as unknown as Omit<Announcement, "jobId">;
    const jobId = jobIdOf(addressed.target)!;
    if (read) {
      // The escrow was read: the check the wire makes where the escrow came first.
      const why = this.announcementMismatch({ jobId, owner: e.owner, spec: e.spec });
      if (why !== null) {
        if (message !== undefined) this.#refuse(message, "rule_violation", why);
        else this.#ignored++;
        return;
      }
    }
    const retired = tree.retired(jobId);
    // Outbid on an earlier auction of the job, or dropped as a forgery announced by another
    // owner (which may have outrun the real one, review R3): triaged like any job heard of (the
    // escrow the drop read makes the wire refuse another forgery, `announcementMismatch`).
    const heardAgain = (retired?.state === OUTBID_STATE && e.attempt > retired.attempt) ||
      (retired?.state === "unescrowed" && retired.owner !== e.owner);
    if (
      e.owner === self || tree.get(addressed.target) !== undefined ||
      (retired !== undefined && !heardAgain)
    ) return this.#o.submit("network", addressed);
    const known = tree.declined(jobId);
    if (known !== undefined && known.attempt >= e.attempt) return;
    // What an owner's assignment or the chain's naming made (a chosen verifier's record) is the
    // chain's: an announcement (anyone's word, any attempt) does not replace it.
    if (known?.reason === "awaiting_chain" || known?.assigned !== undefined) {
      this.#ignored++;
      return;
    }
    const readEscrow = this.#o.readEscrow;
    if (readEscrow !== undefined && !read && (heardAgain || !this.#o.escrowSeen(jobId))) {
      // Read first (again, for a job heard of before: it may have ended since): a forger that
      // outran the owner with the job as its own must not get an actor before the owner does.
      return this.#readFirst(jobId, addressed, message, readEscrow);
    }
    if (this.#o.endedOnChain?.(jobId)) {
      this.#ignored++;
      return;
    }
    const announcement: Announcement = {
      jobId,
      owner: e.owner,
      spec: e.spec,
      attempt: e.attempt,
      bidWindowEndsAt: e.bidWindowEndsAt,
    };
    // Heard on the shard's watch topic, outside the sample: this worker is not asked to bid.
    const sample = (addressed.event as { sample?: number }).sample ?? 0;
    const decision = sample > 0 && !inSample(self, jobId, e.attempt, sample)
      ? (this.#o.worker ? "not_sampled" : "no_role")
      : this.#o.triage?.(addressed.target, announcement) ?? "no_role";
    if (decision === "bid") return this.#o.submit("network", addressed);
    this.#o.submit("network", {
      target: addressed.target,
      event: {
        type: DECLINED_EVENT,
        owner: e.owner,
        attempt: e.attempt,
        bidWindowEndsAt: e.bidWindowEndsAt,
        reason: decision,
        ...(this.#o.keepSpec ? { spec: e.spec } : {}),
      },
    });
  }

  /**
   * Holds an announcement until job `jobId`'s escrow is read (one read for all those heard
   * meanwhile), then takes it up again: at most {@link MAX_ESCROW_READS_HELD} wait, and
   * {@link MAX_ESCROW_READS_PER_SENDER} of one sender (more are let by, not charged: an honest
   * burst could be one).
   */
  #readFirst(
    jobId: string,
    addressed: AddressedEvent,
    message: GossipMessage | undefined,
    read: (jobId: string) => Promise<unknown>,
  ): Promise<void> | void {
    const sender = message?.from ?? "";
    const held = this.#readsBySender.get(sender) ?? 0;
    if (this.#readsHeld >= MAX_ESCROW_READS_HELD || held >= MAX_ESCROW_READS_PER_SENDER) {
      this.#ignored++;
      return;
    }
    this.#readsHeld++;
    this.#readsBySender.set(sender, held + 1);
    let pending = this.#reading.get(jobId);
    if (pending === undefined) {
      pending = read(jobId).finally(() => this.#reading.delete(jobId));
      this.#reading.set(jobId, pending);
    }
    return pending.then(() => {}, () => {}).then(() => {
      this.#readsHeld--;
      const left = (this.#readsBySender.get(sender) ?? 1) - 1;
      if (left === 0) this.#readsBySender.delete(sender);
      else this.#readsBySender.set(sender, left);
      this.#announced(addressed, message, true);
    }).catch((error) => {
      // Off the network's call stack now: a failure is logged here, not thrown at nobody.
      logger.error("Taking up an announcement of job {jobId} failed: {error}", { jobId, error });
    });
  }

  /** The assignment hint an `ASSIGNMENT_HEARD` event carries (see `protocols/translate.ts`). */
  #hintOf(addressed: AddressedEvent): AssignmentHint {
    const e = addressed.event as unknown as Omit<AssignmentHint, "jobId" | "from"> & {
      owner: NodeId;
    };
    return {
      jobId: jobIdOf(addressed.target)!,
      from: e.owner,
      worker: e.worker,
      verifiers: e.verifiers,
      attempt: e.attempt,
      spec: e.spec,
    };
  }

  /**
   * The chain showed job `jobId`'s escrow (`JobSubmitted`): a verifier remembers its terms, and
   * an assignment of the job held for them is judged now.
   */
  escrowShown(jobId: string, terms: EscrowTerms): void {
    if (!this.#o.keepSpec) return;
    for (const held of this.#hints.escrowed(jobId, terms)) this.#consider(held);
  }

  /**
   * The chain assigned job `jobId` (`WorkerAssigned`, as `naming`), before the node journals it:
   * a verifier it names judges the assignments held for it (one ahead of this node's chain) now,
   * against that naming.
   */
  assignedOnChain(jobId: string, naming: ChainAssignment): void {
    if (!this.#o.keepSpec || !naming.verifiers.includes(this.#o.self)) return;
    for (const held of this.#hints.release(jobId)) this.#consider(held, naming);
  }

  /**
   * The escrow terms of job `jobId` a verifier checks an owner's spec against: as this run's chain
   * follower showed them, else as journaled with the chain's naming of this node (a record
   * awaiting the spec, `ChainAssignment.escrow`: the escrow of a job named before a restart is
   * behind the restarted node's chain cursor).
   */
  escrowTerms(jobId: string): EscrowTerms | undefined {
    return this.#hints.terms(jobId) ?? this.#o.tree.declined(jobId)?.assigned?.escrow;
  }

  /**
   * Why an announcement does not match its job's escrow, once the chain showed it: an owner that
   * is not the escrow's client where the client is a node of the network, or a spec that is not
   * the one the escrow commits to (its hash). Null when it matches or the escrow is not known yet
   * (gossip can outrun the chain: the escrow check comes later, `escrow_watch.ts`). Without it,
   * a peer that read the escrow could announce the job as its own, or with another input, first:
   * the workers bid to it, or run the wrong input and, chosen as verifiers, slash the honest
   * worker (review R3).
   */
  announcementMismatch(
    a: { readonly jobId: string; readonly owner: NodeId; readonly spec: JobSpec },
  ): string | null {
    const escrow = this.#o.escrowCommitment?.(a.jobId);
    if (escrow === undefined) return null;
    const what = `Cannot accept the announcement of job "${a.jobId}" by "${a.owner}"`;
    if (a.owner !== escrow.client && this.#isNode(escrow.client)) {
      return `${what}: its escrow's client is "${escrow.client}"`;
    }
    if (escrow.specHash !== undefined && specHashOf(a.spec) !== escrow.specHash) {
      return `${what}: its spec is not the one its escrow commits to`;
    }
    return null;
  }

  /**
   * Whether `account` is a node of the network (this node saw it connect or heard its
   * capabilities, even if it has left since): a job's client on chain whose owner must then be
   * the sender of its assignment.
   */
  #isNode(account: NodeId): boolean {
    return this.#nodes.has(account);
  }

  /** Assignments held until the chain shows their escrow (see `assignment_hints.ts`). */
  get heldAssignments(): number {
    return this.#hints.held;
  }

  /**
   * An owner's assignment with the spec (see the module doc): kept as the job's record when it
   * names this node as a verifier of a job it has no part in yet and fits the chain's escrow and
   * its naming of the attempt (`shown`, or the one the record awaiting the spec keeps); held while
   * the chain has not shown the escrow, or shows an earlier attempt; refused, at the sender's
   * cost, when it does not fit; else let by (not journaled).
   */
  #consider(hint: AssignmentHint, shown?: ChainAssignment): void {
    const { tree, self } = this.#o;
    const target = jobAddress(hint.jobId);
    const known = tree.declined(hint.jobId);
    if (
      this.#o.keepSpec !== true || !hint.verifiers.includes(self) || hint.worker === self ||
      tree.get(target) !== undefined || tree.retired(hint.jobId) !== undefined ||
      this.#o.endedOnChain?.(hint.jobId) === true ||
      // A verifier re-runs the job on the input the spec carries (there is no fetch of it): one
      // without it is of no use (and what a forger that knows no input sends).
      hint.spec.input === undefined ||
      // A spec kept from an assignment stays: the attempt a later one claims is the sender's word
      // (the chain's naming brings the attempt), and its content is the chain-checked same. (One
      // kept from an announcement this node declined as a worker was not checked: this one is.)
      (known?.spec !== undefined && known.reason === "awaiting_chain")
    ) {
      this.#ignored++;
      return;
    }
    const now = this.#o.now?.() ?? Date.now();
    // The chain's naming of this node: the attempt is the chain's to say.
    const naming = shown ?? known?.assigned;
    if (naming?.attempt !== undefined && hint.attempt !== naming.attempt) {
      // An earlier auction's copy is stale; a later one's is ahead of this node's chain.
      if (hint.attempt < naming.attempt || !this.#hints.hold(hint, now)) this.#ignored++;
      return;
    }
    const terms = this.escrowTerms(hint.jobId);
    if (terms === undefined) {
      if (!this.#hints.hold(hint, now)) this.#ignored++;
      return;
    }
    const why = assignmentMismatch(hint, terms, this.#isNode(terms.client)) ??
      (naming === undefined ? null : namingMismatch(hint, naming));
    if (why !== null) {
      this.engage(hint.from);
      this.#o.submit("network", {
        target: peerAddress(hint.from),
        event: { type: "peer.scored", delta: WIRE_PENALTY, reason: why },
      });
      return;
    }
    this.#o.submit("network", {
      target,
      event: {
        type: DECLINED_EVENT,
        owner: hint.from,
        // Without the chain's naming yet, the sender's word: the naming's attempt replaces it.
        attempt: naming?.attempt ?? hint.attempt,
        bidWindowEndsAt: 0,
        reason: "awaiting_chain",
        spec: hint.spec,
      },
    });
  }

  /**
   * A peer connected, identified, answered a heartbeat or left. A peer this node has had no
   * dealings with (no message accepted from it, none refused) gets no actor: it is noted among
   * the quiet peers, and its heartbeats are not journaled, so that a node's work for its
   * connections grows with the peers it deals with, not with the network (1000 peers at one
   * heartbeat every 5 s would be 200 journaled events a second). Its first message gives it its
   * actor ({@link Ingress.engage}).
   */
  peerEvent(event: PeerEvent): void {
    const target = peerAddress(event.peer);
    const submit = (e: AddressedEvent["event"]) => this.#o.submit("network", { target, event: e });
    const known = this.#o.tree.get(target) !== undefined;
    switch (event.type) {
      case "connected":
        this.#nodes.add(event.peer);
        if (!known) return void this.#quiet.set(event.peer, {});
        return submit({ type: "peer.connected" });
      case "identified":
        if (!known) {
          return void this.#quiet.set(event.peer, { protocols: [...event.protocols] });
        }
        return submit({ type: "peer.identified", protocols: [...event.protocols] });
      case "heartbeat":
        if (!known) return;
        return submit({ type: "peer.heartbeat", rttMs: event.rttMs });
      case "disconnected":
        this.#capabilities.delete(event.peer);
        this.#verifiers = undefined;
        this.#capabilitiesVersion++;
        this.#peerModels.delete(event.peer);
        this.#quiet.delete(event.peer);
        if (!known) return;
        return submit({ type: "peer.disconnected" });
    }
  }

  /**
   * A connected peer this node had no dealings with deals with it now (a message accepted or
   * refused): its actor is made, connected (and identified) as the network said.
   */
  engage(peer: NodeId): void {
    const quiet = this.#quiet.get(peer);
    if (quiet === undefined) return;
    this.#quiet.delete(peer);
    const target = peerAddress(peer);
    this.#o.submit("network", { target, event: { type: "peer.connected" } });
    if (quiet.protocols !== undefined) {
      this.#o.submit("network", {
        target,
        event: { type: "peer.identified", protocols: [...quiet.protocols] },
      });
    }
  }

  /** Open jobs and bids, as a joining peer asks for them (`/ciro/snapshot/1.0.0`). */
  snapshot(): SnapshotData {
    const jobs: SnapshotData["jobs"][number][] = [];
    const bids: SnapshotData["bids"][number][] = [];
    for (const cell of this.#o.tree.jobs.cells()) {
      if (cell.state !== "bidding") continue;
      const c = jobContextOf(cell);
      // Gossip is a hint: a job the chain has not shown escrowed is not handed on.
      if (!this.#o.escrowSeen(c.jobId)) continue;
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
   * hold into the tree, as a node that joins late does. Snapshot answers are not signed by the
   * jobs' owners; the chain stays the source of truth (a job that is not escrowed on chain is
   * never assigned).
   */
  async requestSnapshot(
    options: { fraction?: number; signal?: AbortSignal } = {},
  ): Promise<{ jobs: number; bids: number; asked: number }> {
    const { tree, self } = this.#o;
    const result = await requestSnapshots(this.#o.network, options);
    // Each job once its escrow was read, where this node reads escrows on demand.
    const taken: Promise<void>[] = [];
    for (const job of result.jobs) {
      const target = jobAddress(job.jobId);
      if (job.owner === self || tree.get(target) !== undefined) continue;
      const announced = this.#announced({
        target,
        event: {
          type: "job.announced",
          owner: job.owner,
          spec: job.spec,
          attempt: job.attempt,
          bidWindowEndsAt: job.bidWindowEndsAt,
          // Relayed by a peer, not announced by its owner: the owner is not to blame for it.
          via: "snapshot",
        },
      });
      if (announced !== undefined) taken.push(announced);
    }
    await Promise.all(taken);
    for (const message of result.bids) {
      if (message.type !== "bid.submit") continue;
      const { type: _t, ...bid } = message;
      const target = jobAddress(bid.jobId);
      if (tree.get(target)?.state === "bidding") {
        this.#o.submit("network", { target, event: { type: "bid.received", bid } });
      }
    }
    return { jobs: result.jobs.length, bids: result.bids.length, asked: result.asked.length };
  }
}
