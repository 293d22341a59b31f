/**
 * The job machine: one actor per job on every node that has a role in the job. The node that
 * submitted it (the owner, a client) drives the auction and the settlement; a worker that bids
 * on it, and a verifier the chain chooses for it, follow it with the same machine from gossip and
 * chain events and do their part when the job names them (a node that declines a job keeps no
 * actor for it: see `actors/declines.ts`).
 *
 * States (final ones marked *):
 * - `announced`: the owner asked the chain to lock the escrow; an observer passes straight on.
 * - `bidding`: the bid window is open; each bid is a record in the context ({@link BidRecord}:
 *   its status and reason), not a child actor (since version 4: see `bid_machine.ts`).
 * - `assigned`: (owner) a winner was picked; waiting for the chain to record the assignment.
 * - `executing`: the chain recorded the assignment; the worker runs the job before the
 *   execution deadline.
 * - `reassigning`: (owner) the worker went silent; the assignment is being revoked for a
 *   re-auction (bounded by `spec.maxAttempts`).
 * - `verifying`: the chain recorded a result commitment; chosen verifiers re-run and attest.
 * - `settling`: a quorum accepted; the payment is being released.
 * - `disputed`: a quorum disputed the result; the worker is slashed and the client refunded.
 * - `refunding`: (owner) the escrow is going back to the client. A refund the chain refuses
 *   (`chain.tx.failed`) is recorded as the job's failure, and the job waits {@link REFUND_GRACE_MS}
 *   for the chain to show its ending (a refund that landed all the same, or another's), then sends
 *   the refund again, {@link MAX_REFUND_SENDS} sends in all (a chain whose clock lags refuses a
 *   refund as early); each send, the first included, waits a grace of its own, answered or not
 *   (a crash can lose its answer); after the last refused send's grace it ends `failed`, the
 *   escrow left on chain for its client to take back. A refund that fails transiently
 *   ({@link TRANSIENT_CHAIN_CODES}: the chain's node unreachable), or whose grace passes with no
 *   answer (a slow or silent endpoint), is no refusal: sent again after a back off
 *   ({@link REFUND_RETRY_MS}, doubled to {@link MAX_REFUND_RETRY_MS}), not counted. After
 *   {@link REFUND_LIMIT_MS} (24 h) in `refunding` the job ends `failed` all the same, the escrow
 *   left on chain, its failure saying why.
 * - `settled`*, `expired`* (no acceptable bid), `cancelled`* (by the client before
 *   assignment), `refunded`* (after a dispute), `failed`* (attempts exhausted, no quorum, or
 *   the escrow could not be locked).
 *
 * Deadlines (bid window, execution, verification) are absolute virtual times in
 * `context.deadlines`. The machine asks for them with a `timer.arm` request and hears of them
 * as `timer.fired` `{ key, due }` events through the inbox, like any other outside input; a
 * firing whose `due` is no longer the current deadline is ignored. A restored actor re-arms
 * every deadline in its context.
 *
 * The machine reads no clock: every event carries the virtual time `at` the inbox stamped it
 * with. Everything it wants done leaves as an {@link EffectRequest} through XState's `emit`.
 *
 * @module
 */
import { and, assign, enqueueActions, not, setup } from "xstate";
import { offerRejection } from "./bid_decision.ts";
import {
  DEFAULT_POLICY,
  type JobPolicy,
  quorumOutcome,
  rankBids,
  selectVerifiers,
} from "./policies.ts";
import type {
  BidOffer,
  BidRejectReason,
  DeadlineKey,
  DeclineReason,
  EffectRequest,
  NodeId,
  RefundReason,
  Role,
  SlashReason,
  Verdict,
} from "./types.ts";
import type { JobSpec } from "./types.ts";
import { FAILURE_SUBJECT, MAX_FAILURE_REASON } from "./types.ts";

/**
 * Version of the job machine's logic; bump when a recording could replay differently. 5: a node
 * outbid stops following the job when the chain assigns it to another worker (the tree archives
 * its actor as `outbid`, `actors/tree.ts`). 6: bids and attestations that arrive together can
 * enter the job as one event (`bids.received`, `job.attestations.received`), each judged alone.
 * 7: an owner's job whose refund the chain refused sends it again after {@link REFUND_GRACE_MS},
 * and ends `failed` after the last of {@link MAX_REFUND_SENDS} refused sends, instead of waiting in
 * `refunding` for ever; a refund that failed transiently or went unanswered is sent again after a
 * back off, uncounted, for {@link REFUND_LIMIT_MS} at most. (Changed in place while unreleased:
 * `tests/fixtures/recordings/refunds.job7-*.jsonl` holds these paths.)
 */
export const JOB_MACHINE_VERSION = 7;

/**
 * How long an owner's job whose refund the chain refused waits for the chain to show its ending
 * before it sends the refund again or, after the last send, ends `failed`, virtual ms: a refund
 * refused as already done (another's landed first) has its `EscrowRefunded` on the way, and that
 * ending is the chain's word.
 */
export const REFUND_GRACE_MS = 60_000;

/** Refund transactions an owner's job sends at most (the first and the resends after refusals). */
export const MAX_REFUND_SENDS = 3;

/**
 * Codes of a failed chain transaction that say nothing of the chain's judgement (its node could
 * not be reached, or answered nothing usable): a refund that fails so is sent again after a back
 * off, not counted toward {@link MAX_REFUND_SENDS} (review R6 M4).
 */
export const TRANSIENT_CHAIN_CODES: readonly string[] = ["rpc_error"];

/** The first back off of a refund that failed transiently, virtual ms; doubled at each in a row. */
export const REFUND_RETRY_MS = 5_000;

/** The longest back off of a refund that failed transiently, virtual ms. */
export const MAX_REFUND_RETRY_MS = 300_000;

/**
 * How long an owner's job stays in `refunding` at most, virtual ms (deadline key `refund_limit`,
 * armed on entry): a refund that can never land (the account has no gas funds, a revert without a
 * reason, a fault of the client's own) fails transiently for ever; when this passes the job ends
 * `failed`, the escrow left on chain, its failure saying so (review R7 L-a).
 */
export const REFUND_LIMIT_MS = 24 * 60 * 60 * 1000;

/** A bid as the job keeps it: its lifecycle is its `status` (no child actor since version 4). */
export interface BidRecord extends BidOffer {
  readonly attempt: number;
  readonly receivedAt: number;
  readonly status: "open" | "accepted" | "rejected" | "withdrawn" | "expired";
  readonly reason: BidRejectReason | null;
}

/** The winning bid. */
export interface Winner {
  readonly bidId: string;
  readonly worker: NodeId;
  readonly price: bigint;
}

/**
 * An attestation as the job keeps it: the verifier's verdict and its own commitment, and what
 * it judged (the worker and the worker's claimed commitment), with the attempt it was heard in.
 */
export interface AttestationRecord {
  readonly verdict: Verdict;
  readonly commitment: string;
  readonly worker: NodeId;
  readonly claimed: string;
  readonly attempt: number;
}

/** An attestation as a verifier sent it (the event's fields without its type and time). */
export interface AttestationHeard {
  readonly verifier: NodeId;
  readonly verdict: Verdict;
  /** The commitment the verifier computed itself. */
  readonly commitment: string;
  /** The worker whose result it judged. */
  readonly worker: NodeId;
  /** The worker's commitment it judged. */
  readonly claimed: string;
}

/**
 * Most bids or attestations one batch event carries (`bids.received`,
 * `job.attestations.received`): a node that batches what arrives together splits a larger burst.
 */
export const MAX_BATCH = 64;

/** One entry of a job's path through its machine. */
export interface PhaseEntry {
  readonly state: string;
  readonly at: number;
}

/** Context of a job actor. */
export interface JobContext {
  readonly jobId: string;
  readonly spec: JobSpec;
  readonly owner: NodeId;
  /**
   * The chain account the owner locks the escrow with (a node id and a chain account differ on
   * a real chain); null where unknown (an observer, which passes the escrow check).
   */
  readonly ownerAccount: NodeId | null;
  /** The node hosting this actor. */
  readonly self: NodeId;
  readonly roles: readonly Role[];
  readonly policy: JobPolicy;
  /** Verifiers the owner may choose from (known when the job was submitted). */
  readonly verifierPool: readonly NodeId[];
  readonly attempt: number;
  readonly escrowed: bigint;
  /** Where the chain recorded the escrow (`block:tx:index`); seeds the verifier choice. */
  readonly escrowRef: string | null;
  /** Why this node's worker did not bid on the job, if it did not. */
  readonly declined: { readonly reason: DeclineReason; readonly at: number } | null;
  readonly bids: Readonly<Record<string, BidRecord>>;
  /** Workers that went silent on this job; they may not win it again. */
  readonly excluded: readonly NodeId[];
  readonly winner: Winner | null;
  readonly verifiers: readonly NodeId[];
  readonly result: { readonly worker: NodeId; readonly commitment: string } | null;
  /**
   * Outputs heard, by worker (verifiers need the assigned worker's). Gossip can outrun the
   * chain, so an output is kept even before its worker's assignment is seen (at most 8).
   */
  readonly outputs: Readonly<
    Record<NodeId, { readonly commitment: string; readonly value: unknown }>
  >;
  /**
   * Attestations heard for the current attempt, by verifier. Gossip can outrun the chain too:
   * one heard before this node knows the assignment is kept (at most
   * {@link MAX_EARLY_ATTESTATIONS}, or the job's verifier count if larger) and checked when the
   * assignment and the result reach the chain; one that does not fit them is dropped with a
   * `log.reject`. Only those from a chosen verifier judging the assigned worker's result count.
   */
  readonly attestations: Readonly<Record<NodeId, AttestationRecord>>;
  /** Whether this node (as a verifier) has started its re-run. */
  readonly verifying: boolean;
  readonly deadlines: Readonly<Partial<Record<DeadlineKey, number>>>;
  /** The bid window's end announced by the owner (observers use it). */
  readonly announcedBidWindowEndsAt: number | null;
  readonly cancelRequested: boolean;
  readonly refundReason: RefundReason | null;
  /**
   * Refund sends that did not land: refused by the chain or unanswered, each counted when its grace
   * passed without the chain's ending (version 7; absent in contexts from before it: none).
   */
  readonly refundRefusals?: number;
  /**
   * Refund sends in a row that failed transiently ({@link TRANSIENT_CHAIN_CODES}), and whether the
   * refund deadline is their back off (version 7; absent: none).
   */
  readonly refundRetries?: number;
  readonly refundBackingOff?: boolean;
  /**
   * Whether the last answer to the refund sent last was the chain's refusal (version 7; absent:
   * no): only such a send counts toward {@link MAX_REFUND_SENDS} when its grace passes; a grace
   * that passes unanswered is transient (review R7 M-a).
   */
  readonly refundRefused?: boolean;
  readonly payment: {
    readonly worker: NodeId;
    readonly amount: bigint;
    readonly fee: bigint;
    readonly change: bigint;
  } | null;
  readonly refunded: bigint;
  readonly slashes: readonly {
    readonly worker: NodeId;
    readonly amount: bigint;
    readonly reason: SlashReason;
  }[];
  readonly failure: string | null;
  /** Every state the job entered, with when: the job's path. */
  readonly path: readonly PhaseEntry[];
}

/** What a job actor is created with. */
export interface JobInput {
  readonly jobId: string;
  readonly spec: JobSpec;
  readonly owner: NodeId;
  /** @default `owner` on the owner's node, else unknown */
  readonly ownerAccount?: NodeId;
  readonly self: NodeId;
  readonly roles: readonly Role[];
  readonly at: number;
  readonly policy?: JobPolicy;
  readonly verifierPool?: readonly NodeId[];
  /** For observers: the escrow is already locked (the owner announces only after it is). */
  readonly escrowLocked?: boolean;
  readonly attempt?: number;
  readonly bidWindowEndsAt?: number;
}

type At = { readonly at: number };

/** Events a job actor accepts. Every one carries the virtual time `at` it entered the node. */
export type JobEvent =
  | At & { readonly type: "job.cancel"; readonly reason?: string }
  | At & {
    readonly type: "job.announced";
    readonly attempt: number;
    readonly bidWindowEndsAt: number;
  }
  | At & { readonly type: "bid.received"; readonly bid: BidOffer }
  /**
   * Bids that arrived together (at most {@link MAX_BATCH}), taken in order, each as a
   * `bid.received` would be: one refused (and recorded with why) does not hold back the others.
   */
  | At & { readonly type: "bids.received"; readonly bids: readonly BidOffer[] }
  | At & { readonly type: "bid.withdrawn"; readonly bidId: string; readonly worker: NodeId }
  | At & {
    readonly type: "job.result.received";
    readonly worker: NodeId;
    readonly commitment: string;
    readonly output: unknown;
  }
  | At & {
    readonly type: "job.attestation.received";
    readonly verifier: NodeId;
    readonly verdict: Verdict;
    /** The commitment the verifier computed itself. */
    readonly commitment: string;
    /** The worker whose result it judged. */
    readonly worker: NodeId;
    /** The worker's commitment it judged. */
    readonly claimed: string;
  }
  /**
   * Attestations that arrived together (at most {@link MAX_BATCH}), taken in order, each as a
   * `job.attestation.received` would be; one not kept is logged with why (`log.reject`).
   */
  | At & {
    readonly type: "job.attestations.received";
    readonly attestations: readonly AttestationHeard[];
  }
  | At & {
    readonly type: "job.execution.completed";
    readonly commitment: string;
    readonly output: unknown;
  }
  | At & { readonly type: "job.execution.failed"; readonly error: string }
  | At & {
    readonly type: "job.verification.completed";
    readonly verdict: Verdict;
    readonly commitment: string;
  }
  | At & { readonly type: "timer.fired"; readonly key: string; readonly due: number }
  | At & {
    readonly type: "chain.escrow.locked";
    /** Who locked it: only an escrow the owner's account locked moves the job. */
    readonly client: NodeId;
    readonly amount: bigint;
    readonly ref?: string;
  }
  | At & { readonly type: "bid.declined"; readonly reason: DeclineReason }
  | At & {
    readonly type: "chain.worker.assigned";
    readonly worker: NodeId;
    readonly price: bigint;
    readonly verifiers: readonly NodeId[];
  }
  | At & { readonly type: "chain.assignment.revoked"; readonly worker: NodeId }
  | At & {
    readonly type: "chain.result.submitted";
    readonly worker: NodeId;
    readonly commitment: string;
  }
  | At & {
    readonly type: "chain.execution.failed";
    readonly worker: NodeId;
    readonly reason: string;
  }
  | At & { readonly type: "chain.job.verified" }
  | At & { readonly type: "chain.job.disputed" }
  | At & {
    readonly type: "chain.payment.released";
    readonly worker: NodeId;
    readonly amount: bigint;
    readonly fee: bigint;
    readonly change: bigint;
  }
  | At & {
    readonly type: "chain.escrow.refunded";
    readonly amount: bigint;
    readonly reason: RefundReason;
  }
  | At & {
    readonly type: "chain.worker.slashed";
    readonly worker: NodeId;
    readonly amount: bigint;
    readonly reason: SlashReason;
  }
  | At & {
    readonly type: "chain.tx.failed";
    readonly request: EffectRequest["type"];
    readonly code: string;
    readonly message: string;
  };

/** The final states of a job. */
export const JOB_FINAL_STATES = ["settled", "expired", "cancelled", "refunded", "failed"] as const;

const isOwner = (c: JobContext) => c.self === c.owner;
/** Whether the chain decides this job's verification (the policy's `settlement: "chain"`). */
const isChainDecided = (c: JobContext) => c.policy.settlement === "chain";

/** How many attestations a job keeps before it knows its assignment (at least). */
export const MAX_EARLY_ATTESTATIONS = 8;

function openBids(c: JobContext): BidRecord[] {
  return Object.values(c.bids).filter((b) => b.status === "open" && b.attempt === c.attempt);
}

/**
 * Why `bid` cannot take part in `context`'s current auction, or null if it can. `bids`: the
 * bids known so far (a batch's earlier bids included).
 */
export function bidRejection(
  context: JobContext,
  bid: BidOffer,
  bids: JobContext["bids"] = context.bids,
): BidRejectReason | null {
  if (bids[bid.bidId] !== undefined) return "duplicate";
  if (context.excluded.includes(bid.worker)) return "worker_excluded";
  return offerRejection(context.spec, bid);
}

function pickWinner(context: JobContext): BidRecord | undefined {
  return rankBids(openBids(context), context.policy.bidSelection, context.spec.maxPrice)[0];
}

/** Whether `a` may count towards the quorum on the current attempt's result. */
function counts(context: JobContext, a: AttestationRecord | undefined): a is AttestationRecord {
  return a !== undefined && a.attempt === context.attempt && context.result !== null &&
    a.worker === context.result.worker && a.claimed === context.result.commitment;
}

/**
 * Why the attestation in `event` cannot be kept now, or null if it can. Before this node knows
 * the assignment (no winner yet) it is kept for later checks if its verifier may be chosen;
 * after, it must come from a chosen verifier and judge the assigned worker's result.
 */
function attestationRejection(
  context: JobContext,
  event: AttestationHeard,
  attestations: JobContext["attestations"] = context.attestations,
): string | null {
  if (attestations[event.verifier] !== undefined) return "duplicate";
  if (context.winner === null) {
    const pool = context.verifierPool;
    if (pool.length > 0 && !pool.includes(event.verifier)) return "not in the verifier pool";
    const bound = Math.max(MAX_EARLY_ATTESTATIONS, context.spec.verifierCount);
    if (Object.keys(attestations).length >= bound) return "too many early attestations";
    return null;
  }
  return assignmentMismatch(context.verifiers, context.winner.worker, event) ??
    (context.result !== null && event.claimed !== context.result.commitment
      ? `judges commitment "${event.claimed}", not the result "${context.result.commitment}"`
      : null);
}

function assignmentMismatch(
  verifiers: readonly NodeId[],
  worker: NodeId,
  a: { readonly verifier: NodeId; readonly worker: NodeId },
): string | null {
  if (!verifiers.includes(a.verifier)) return "not a chosen verifier";
  if (a.worker !== worker) return `judges worker "${a.worker}", not the assigned "${worker}"`;
  return null;
}

function quorum(context: JobContext) {
  if (context.result === null) return "pending" as const;
  const verdicts = context.verifiers
    .map((v) => context.attestations[v])
    .filter((a) => counts(context, a))
    .map((a) => a.verdict);
  return quorumOutcome(context.policy.quorum, context.verifiers.length, verdicts);
}

function withDeadline(context: JobContext, key: DeadlineKey, due: number | undefined) {
  const next = { ...context.deadlines };
  if (due === undefined) delete next[key];
  else next[key] = due;
  return next;
}

/** The job machine. */
export const jobMachine = setup({
  types: {} as {
    context: JobContext;
    events: JobEvent;
    input: JobInput;
    emitted: EffectRequest;
  },
  guards: {
    isOwner: ({ context }) => isOwner(context),
    isChainDecided: ({ context }) => isChainDecided(context),
    escrowAlreadyLocked: ({ context }) => context.escrowed > 0n,
    escrowIsOwners: ({ context, event }) =>
      event.type === "chain.escrow.locked" &&
      (context.ownerAccount === null || event.client === context.ownerAccount),
    cancelRequested: ({ context }) => context.cancelRequested,
    othersBidHere: ({ context, event }) =>
      event.type === "bid.received" && !isOwner(context) && event.bid.worker !== context.self,
    bidIsAcceptable: ({ context, event }) =>
      event.type === "bid.received" && event.bid.jobId === context.jobId &&
      bidRejection(context, event.bid) === null,
    bidIsKnown: ({ context, event }) =>
      event.type === "bid.withdrawn" && context.bids[event.bidId]?.worker === event.worker &&
      context.bids[event.bidId]?.status === "open",
    bidWindowDue: ({ context, event }) => deadlineDue(context, event, "bid_window"),
    executionDue: ({ context, event }) => deadlineDue(context, event, "execution"),
    verificationDue: ({ context, event }) => deadlineDue(context, event, "verification"),
    refundGraceDue: ({ context, event }) => deadlineDue(context, event, "refund"),
    /** Whether the refund may be sent again: the refused send whose grace passed counts. */
    refundSendsLeft: ({ context }) => (context.refundRefusals ?? 0) + 1 < MAX_REFUND_SENDS,
    isOptimistic: ({ context }) => context.policy.verification === "optimistic",
    assignFailed: ({ event }) =>
      event.type === "chain.tx.failed" && event.request === "chain.assign",
    hasWinner: ({ context }) => pickWinner(context) !== undefined,
    hasWinnerAfterDrop: ({ context }) =>
      openBids(context).some((b) => b.bidId !== context.winner?.bidId),
    attemptsLeft: ({ context }) => context.attempt < context.spec.maxAttempts,
    isAssignedWorker: ({ context, event }) =>
      "worker" in event && context.winner !== null && event.worker === context.winner.worker,
    isFailureClaim: ({ context }) => context.result?.commitment === FAILURE_SUBJECT,
    isWinnerHere: ({ context }) =>
      context.winner !== null && context.winner.worker === context.self,
    attestationIsKept: ({ context, event }) =>
      event.type === "job.attestation.received" && attestationRejection(context, event) === null,
    quorumAccepted: ({ context }) =>
      isOwner(context) && !isChainDecided(context) && quorum(context) === "accepted",
    quorumRejected: ({ context }) =>
      isOwner(context) && !isChainDecided(context) && quorum(context) === "rejected",
    refundIs: ({ event }, params: { reason: RefundReason }) =>
      event.type === "chain.escrow.refunded" && event.reason === params.reason,
    /** The refund failed transiently: no judgement of the chain's (see TRANSIENT_CHAIN_CODES). */
    refundFailedTransiently: ({ event }) =>
      event.type === "chain.tx.failed" && event.request === "chain.refund" &&
      TRANSIENT_CHAIN_CODES.includes(event.code),
    refundBackingOff: ({ context }) => context.refundBackingOff === true,
    /** The refund sent last was refused by the chain (not unanswered, not failed transiently). */
    refundWasRefused: ({ context }) => context.refundRefused === true,
    refundLimitDue: ({ context, event }) => deadlineDue(context, event, "refund_limit"),
    failedRequestIs: ({ event }, params: { request: EffectRequest["type"] }) =>
      event.type === "chain.tx.failed" && event.request === params.request,
  },
  actions: {
    enterPhase: assign({
      path: ({ context, event }, params: { state: string }) => [
        ...context.path,
        { state: params.state, at: timeOf(context, event) },
      ],
    }),
    lockEscrow: enqueueActions(({ context, enqueue }) => {
      if (isOwner(context) && context.escrowed === 0n) {
        const spec = context.spec;
        enqueue.emit({
          type: "chain.escrow.lock",
          jobId: context.jobId,
          amount: spec.maxPrice,
          spec,
          ...(isChainDecided(context)
            ? {
              terms: {
                verifierCount: spec.verifierCount,
                bidWindowMs: spec.bidWindowMs,
                executionMs: spec.executionMs,
                verificationMs: spec.verificationMs,
              },
            }
            : {}),
        });
      }
    }),
    refuseEscrow: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "chain.escrow.locked") return;
      enqueue.emit({
        type: "log.reject",
        actor: `job:${context.jobId}`,
        event: event.type,
        reason: `Cannot accept escrow of job "${context.jobId}": locked by "${event.client}", ` +
          `not the owner's account "${context.ownerAccount}"`,
      });
    }),
    recordEscrow: assign(({ context, event }) =>
      event.type === "chain.escrow.locked"
        ? { escrowed: event.amount, escrowRef: event.ref ?? null }
        : { escrowed: context.escrowed }
    ),
    recordDecline: assign({
      declined: ({ context, event }) =>
        event.type === "bid.declined" ? { reason: event.reason, at: event.at } : context.declined,
    }),
    requestCancel: assign({ cancelRequested: true }),
    // Only the window is taken from gossip: the attempt moves with the chain's revocation, so a
    // re-announcement that outruns the chain does not count an attempt twice.
    recordAnnouncement: assign(({ context, event }) =>
      event.type === "job.announced" && event.attempt >= context.attempt
        ? { announcedBidWindowEndsAt: event.bidWindowEndsAt }
        : {}
    ),
    openBidding: enqueueActions(({ context, event, enqueue }) => {
      const now = timeOf(context, event);
      const announced = context.announcedBidWindowEndsAt;
      const due = !isOwner(context) && announced !== null && announced > now
        ? announced
        : now + context.spec.bidWindowMs;
      enqueue.assign({ deadlines: withDeadline(context, "bid_window", due) });
      enqueue.emit({ type: "timer.arm", key: "bid_window", at: due });
      if (isOwner(context)) {
        enqueue.emit({
          type: "net.announce",
          jobId: context.jobId,
          spec: context.spec,
          owner: context.owner,
          attempt: context.attempt,
          bidWindowEndsAt: due,
        });
      } else if (context.roles.includes("worker") && !context.excluded.includes(context.self)) {
        enqueue.emit({
          type: "worker.consider",
          jobId: context.jobId,
          spec: context.spec,
          attempt: context.attempt,
          excluded: context.excluded,
        });
      }
    }),
    // A plain assign (no enqueueActions): it runs for every bid the owner takes.
    acceptBid: assign(({ context, event }) => {
      if (event.type !== "bid.received") return {};
      const record: BidRecord = {
        ...event.bid,
        attempt: context.attempt,
        receivedAt: event.at,
        status: "open",
        reason: null,
      };
      return { bids: { ...context.bids, [record.bidId]: record } };
    }),
    refuseBid: enqueueActions(({ context, event, enqueue }, params: { late?: boolean }) => {
      if (event.type !== "bid.received") return;
      const reason: BidRejectReason = event.bid.jobId !== context.jobId
        ? "not_bidding"
        : params.late
        ? "not_bidding"
        : bidRejection(context, event.bid) ?? "not_bidding";
      enqueue.emit({
        type: "log.reject",
        actor: `job:${context.jobId}`,
        event: "bid.received",
        reason: `Cannot accept bid "${event.bid.bidId}" from "${event.bid.worker}": ${reason}`,
      });
      if (reason === "duplicate" || context.bids[event.bid.bidId] !== undefined) return;
      const record: BidRecord = {
        ...event.bid,
        attempt: context.attempt,
        receivedAt: event.at,
        status: "rejected",
        reason,
      };
      enqueue.assign({ bids: { ...context.bids, [record.bidId]: record } });
    }),
    // A batch of bids, each judged as `acceptBid` or `refuseBid` would judge it alone (the batch's
    // earlier bids count as known: a bid twice in one batch is a duplicate). `open`: the auction
    // takes bids (else each is refused as late). An observer keeps only its own bid. One copy of
    // the bids record for the whole batch.
    takeBids: enqueueActions(({ context, event, enqueue }, params: { open: boolean }) => {
      if (event.type !== "bids.received") return;
      const owner = isOwner(context);
      let bids: Record<string, BidRecord> | undefined;
      for (const bid of event.bids) {
        if (!owner && bid.worker !== context.self) continue;
        const known = bids ?? context.bids;
        const reason = bid.jobId !== context.jobId || !params.open
          ? "not_bidding"
          : bidRejection(context, bid, known);
        if (reason !== null) {
          enqueue.emit({
            type: "log.reject",
            actor: `job:${context.jobId}`,
            event: "bid.received",
            reason: `Cannot accept bid "${bid.bidId}" from "${bid.worker}": ${reason}`,
          });
        }
        if (known[bid.bidId] !== undefined) continue;
        bids ??= { ...context.bids };
        bids[bid.bidId] = {
          ...bid,
          attempt: context.attempt,
          receivedAt: event.at,
          status: reason === null ? "open" : "rejected",
          reason,
        };
      }
      if (bids !== undefined) enqueue.assign({ bids });
    }),
    withdrawBid: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "bid.withdrawn") return;
      const bid = context.bids[event.bidId];
      if (bid === undefined) return;
      enqueue.assign({ bids: { ...context.bids, [bid.bidId]: { ...bid, status: "withdrawn" } } });
    }),
    chooseWinner: enqueueActions(({ context, enqueue }) => {
      const best = pickWinner(context);
      if (best === undefined) return;
      // A chain-decided job's verifiers are chosen by the chain, at the assignment.
      const verifiers = isChainDecided(context) ? [] : selectVerifiers(
        context.verifierPool,
        context.spec.verifierCount,
        [best.worker, context.owner],
        // The worker cannot choose them: the seed mixes the job, the attempt and the chain's
        // record of the escrow, which exists before any bid.
        `${context.jobId}/${context.attempt}/${context.escrowRef ?? ""}`,
      );
      enqueue.assign({
        winner: { bidId: best.bidId, worker: best.worker, price: best.price },
        verifiers,
        deadlines: withDeadline(context, "bid_window", undefined),
      });
      enqueue.emit({
        type: "chain.assign",
        jobId: context.jobId,
        worker: best.worker,
        price: best.price,
        verifiers,
      });
    }),
    dropFailedWinner: enqueueActions(({ context, enqueue }) => {
      if (context.winner === null) return;
      const bid = context.bids[context.winner.bidId];
      if (bid === undefined) return;
      enqueue.assign({
        bids: {
          ...context.bids,
          [bid.bidId]: { ...bid, status: "rejected", reason: "assignment_failed" },
        },
        winner: null,
      });
    }),
    recordAssignment: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "chain.worker.assigned") return;
      const winnerBid = Object.values(context.bids).find((b) =>
        b.attempt === context.attempt && b.worker === event.worker && b.status === "open"
      );
      const bids = { ...context.bids };
      for (const bid of Object.values(context.bids)) {
        if (bid.status !== "open" || bid.attempt !== context.attempt) continue;
        const won = bid.bidId === winnerBid?.bidId;
        bids[bid.bidId] = {
          ...bid,
          status: won ? "accepted" : "rejected",
          reason: won ? null : "outbid",
        };
      }
      // Attestations heard before the assignment stay if they fit it; the rest go, with why.
      const attestations: Record<NodeId, AttestationRecord> = {};
      for (const [verifier, a] of Object.entries(context.attestations)) {
        const why = a.attempt !== context.attempt
          ? `heard on attempt ${a.attempt}, not ${context.attempt}`
          : assignmentMismatch(event.verifiers, event.worker, { verifier, worker: a.worker });
        if (why === null) attestations[verifier] = a;
        else enqueue.emit(dropAttestation(context, verifier, why));
      }
      const due = event.at + context.spec.executionMs;
      enqueue.assign({
        bids,
        winner: {
          bidId: winnerBid?.bidId ?? `chain:${event.worker}`,
          worker: event.worker,
          price: event.price,
        },
        verifiers: [...event.verifiers],
        result: null,
        attestations,
        deadlines: withDeadline(withDeadlineCtx(context, "bid_window"), "execution", due),
      });
      enqueue.emit({ type: "timer.arm", key: "execution", at: due });
      if (event.worker === context.self) {
        enqueue.emit({ type: "exec.run", jobId: context.jobId, spec: context.spec });
      }
      if (isOwner(context)) {
        enqueue.emit({
          type: "net.assignment",
          jobId: context.jobId,
          worker: event.worker,
          bidId: winnerBid?.bidId ?? "",
          price: event.price,
          verifiers: [...event.verifiers],
        });
      }
    }),
    submitResult: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "job.execution.completed" || context.winner?.worker !== context.self) {
        return;
      }
      enqueue.assign({
        outputs: keepOutput(context.outputs, context.self, event.commitment, event.output),
      });
      enqueue.emit({
        type: "chain.result.submit",
        jobId: context.jobId,
        worker: context.self,
        commitment: event.commitment,
      });
      enqueue.emit({
        type: "net.result",
        jobId: context.jobId,
        worker: context.self,
        commitment: event.commitment,
        output: event.output,
      });
    }),
    recordOutput: assign({
      outputs: ({ context, event }) =>
        event.type === "job.result.received"
          ? keepOutput(context.outputs, event.worker, event.commitment, event.output)
          : context.outputs,
    }),
    revokeSilentWorker: enqueueActions(({ context, enqueue }) => {
      if (context.winner === null) return;
      enqueue.assign({ deadlines: withDeadline(context, "execution", undefined) });
      enqueue.emit({
        type: "chain.assignment.revoke",
        jobId: context.jobId,
        worker: context.winner.worker,
      });
    }),
    recordRevocation: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "chain.assignment.revoked") return;
      enqueue.assign({
        excluded: context.excluded.includes(event.worker)
          ? context.excluded
          : [...context.excluded, event.worker],
        winner: null,
        verifiers: [],
        // Whatever was attested belonged to the revoked attempt.
        attestations: {},
        attempt: context.attempt + 1,
        deadlines: withDeadline(context, "execution", undefined),
      });
      if (isOwner(context)) {
        enqueue.emit({
          type: "chain.slash",
          jobId: context.jobId,
          worker: event.worker,
          reason: "downtime",
        });
      }
    }),
    reportFailure: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "job.execution.failed" || context.winner?.worker !== context.self) return;
      enqueue.emit({
        type: "chain.failure.report",
        jobId: context.jobId,
        worker: context.self,
        reason: (event.error || "execution failed").slice(0, MAX_FAILURE_REASON),
      });
    }),
    recordResult: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "chain.result.submitted" && event.type !== "chain.execution.failed") {
        return;
      }
      // A failure claim is judged as the subject "failed".
      const claim = event.type === "chain.result.submitted"
        ? { worker: event.worker, commitment: event.commitment }
        : { worker: event.worker, commitment: FAILURE_SUBJECT };
      if (event.type === "chain.execution.failed") {
        enqueue.assign({ failure: `execution failed: ${event.reason}` });
      }
      const due = event.at + context.spec.verificationMs;
      const attestations: Record<NodeId, AttestationRecord> = {};
      for (const [verifier, a] of Object.entries(context.attestations)) {
        if (a.worker === claim.worker && a.claimed === claim.commitment) {
          attestations[verifier] = a;
        } else {
          enqueue.emit(dropAttestation(
            context,
            verifier,
            `judges "${a.worker}"'s commitment "${a.claimed}", not the result "${claim.commitment}"`,
          ));
        }
      }
      enqueue.assign({
        result: claim,
        attestations,
        deadlines: withDeadline(withDeadlineCtx(context, "execution"), "verification", due),
      });
      enqueue.emit({ type: "timer.arm", key: "verification", at: due });
    }),
    startVerification: enqueueActions(({ context, enqueue }) => {
      if (
        context.verifying || !context.verifiers.includes(context.self) || context.result === null
      ) return;
      if (context.result.commitment === FAILURE_SUBJECT) {
        // A failure claim: re-run the job; failing too confirms it, succeeding refutes it.
        enqueue.assign({ verifying: true });
        enqueue.emit({ type: "exec.run", jobId: context.jobId, spec: context.spec });
        return;
      }
      if (context.outputs[context.result.worker] === undefined) return;
      enqueue.assign({ verifying: true });
      enqueue.emit({
        type: "verify.run",
        jobId: context.jobId,
        spec: context.spec,
        worker: context.result.worker,
        commitment: context.result.commitment,
        output: context.outputs[context.result.worker]!.value,
      });
    }),
    attest: enqueueActions(({ context, event, enqueue }) => {
      if (context.result === null) return;
      const { worker, commitment: claimed } = context.result;
      // A verifier's re-run of a failure claim: failing too confirms it.
      const verdict = event.type === "job.verification.completed"
        ? event.verdict
        : event.type === "job.execution.failed"
        ? "valid" as const
        : event.type === "job.execution.completed"
        ? "invalid" as const
        : null;
      if (verdict === null) return;
      const commitment = event.type === "job.verification.completed"
        ? event.commitment
        : event.type === "job.execution.completed"
        ? event.commitment
        : FAILURE_SUBJECT;
      enqueue.assign({
        attestations: {
          ...context.attestations,
          [context.self]: {
            verdict,
            commitment,
            worker,
            claimed,
            attempt: context.attempt,
          },
        },
      });
      enqueue.emit({
        type: "net.attestation",
        jobId: context.jobId,
        verifier: context.self,
        verdict,
        commitment,
        worker,
        claimed,
      });
      if (isChainDecided(context)) {
        enqueue.emit({
          type: "chain.attest",
          jobId: context.jobId,
          verifier: context.self,
          attempt: context.attempt,
          subject: claimed,
          verdict,
        });
      }
    }),
    recordAttestation: assign({
      attestations: ({ context, event }) =>
        event.type === "job.attestation.received"
          ? {
            ...context.attestations,
            [event.verifier]: {
              verdict: event.verdict,
              commitment: event.commitment,
              worker: event.worker,
              claimed: event.claimed,
              attempt: context.attempt,
            },
          }
          : context.attestations,
    }),
    // A batch of attestations, each kept or not as `recordAttestation` would (the batch's
    // earlier ones count as heard); the owner logs each one it does not keep, with why.
    recordAttestations: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== "job.attestations.received") return;
      let attestations: Record<NodeId, AttestationRecord> | undefined;
      for (const a of event.attestations) {
        const why = attestationRejection(context, a, attestations ?? context.attestations);
        if (why === null) {
          attestations ??= { ...context.attestations };
          attestations[a.verifier] = {
            verdict: a.verdict,
            commitment: a.commitment,
            worker: a.worker,
            claimed: a.claimed,
            attempt: context.attempt,
          };
        } else if (isOwner(context)) {
          enqueue.emit({
            type: "log.reject",
            actor: `job:${context.jobId}`,
            event: "job.attestation.received",
            reason: `Cannot accept attestation from "${a.verifier}": ${why}`,
          });
        }
      }
      if (attestations !== undefined) enqueue.assign({ attestations });
    }),
    recordVerdict: enqueueActions(({ context, enqueue }, params: { accepted: boolean }) => {
      enqueue.assign({ deadlines: withDeadline(context, "verification", undefined) });
      if (isOwner(context)) {
        enqueue.emit({
          type: "chain.verification.record",
          jobId: context.jobId,
          accepted: params.accepted,
        });
      }
    }),
    releasePayment: enqueueActions(({ context, enqueue }) => {
      if (isOwner(context)) enqueue.emit({ type: "chain.release", jobId: context.jobId });
    }),
    slashForInvalidCompute: enqueueActions(({ context, enqueue }) => {
      if (!isOwner(context) || context.result === null) return;
      enqueue.emit({
        type: "chain.slash",
        jobId: context.jobId,
        worker: context.result.worker,
        reason: "invalid_compute",
      });
    }),
    refund: enqueueActions(({ context, enqueue }, params: { reason: RefundReason }) => {
      enqueue.assign({ refundReason: params.reason, deadlines: {} });
      if (isOwner(context) && context.escrowed > 0n) {
        enqueue.emit({ type: "chain.refund", jobId: context.jobId, reason: params.reason });
      }
    }),
    recordPayment: assign(({ event }) =>
      event.type === "chain.payment.released"
        ? {
          payment: {
            worker: event.worker,
            amount: event.amount,
            fee: event.fee,
            change: event.change,
          },
        }
        : {}
    ),
    recordRefund: assign(({ context, event }) =>
      event.type === "chain.escrow.refunded"
        ? { refunded: context.refunded + event.amount, refundReason: event.reason }
        : {}
    ),
    recordSlash: assign({
      slashes: ({ context, event }) =>
        event.type === "chain.worker.slashed"
          ? [...context.slashes, {
            worker: event.worker,
            amount: event.amount,
            reason: event.reason,
          }]
          : context.slashes,
    }),
    /**
     * The first refund is sent (an owner's job with an escrow): a grace for its answer or the
     * chain's ending, as each resend has (a crash can lose its answer too: review R6 M3).
     */
    armRefundGrace: enqueueActions(({ context, event, enqueue }) => {
      if (!isOwner(context) || context.escrowed <= 0n) return;
      const now = timeOf(context, event);
      const due = now + REFUND_GRACE_MS;
      const limit = now + REFUND_LIMIT_MS;
      enqueue.assign({
        deadlines: { ...context.deadlines, refund: due, refund_limit: limit },
      });
      enqueue.emit({ type: "timer.arm", key: "refund", at: due });
      enqueue.emit({ type: "timer.arm", key: "refund_limit", at: limit });
    }),
    /** The chain refused the refund: wait a grace for the chain's ending. */
    awaitRefundEnding: enqueueActions(({ context, event, enqueue }) => {
      const due = timeOf(context, event) + REFUND_GRACE_MS;
      enqueue.assign({
        deadlines: withDeadline(context, "refund", due),
        refundRetries: 0,
        refundBackingOff: false,
        refundRefused: true,
      });
      enqueue.emit({ type: "timer.arm", key: "refund", at: due });
    }),
    /**
     * The refund failed transiently, or its grace passed unanswered (a slow or silent chain
     * endpoint, a crash that lost the answer: review R7 M-a): not counted; sent again after a back
     * off of {@link REFUND_RETRY_MS}, doubled at each such failure in a row up to
     * {@link MAX_REFUND_RETRY_MS}.
     */
    backOffRefund: enqueueActions(({ context, event, enqueue }) => {
      const retries = (context.refundRetries ?? 0) + 1;
      const wait = Math.min(REFUND_RETRY_MS * 2 ** Math.min(retries - 1, 30), MAX_REFUND_RETRY_MS);
      const due = timeOf(context, event) + wait;
      enqueue.assign({
        deadlines: withDeadline(context, "refund", due),
        refundRetries: retries,
        refundBackingOff: true,
      });
      enqueue.emit({ type: "timer.arm", key: "refund", at: due });
    }),
    /** The back off passed: the refund again, uncounted, with a grace of its own. */
    retryRefund: enqueueActions(({ context, event, enqueue }) => {
      const due = timeOf(context, event) + REFUND_GRACE_MS;
      enqueue.assign({
        deadlines: withDeadline(context, "refund", due),
        refundBackingOff: false,
        refundRefused: false,
      });
      enqueue.emit({ type: "timer.arm", key: "refund", at: due });
      enqueue.emit({
        type: "chain.refund",
        jobId: context.jobId,
        reason: context.refundReason ?? "failed",
      });
    }),
    /**
     * The grace after the chain's refusal passed without the chain's ending: that send did not
     * land, counted; the refund again, for the same reason, with a grace of its own (its answer
     * may never come: review R6 M3; then it is transient, review R7 M-a).
     */
    resendRefund: enqueueActions(({ context, event, enqueue }) => {
      const due = timeOf(context, event) + REFUND_GRACE_MS;
      enqueue.assign({
        refundRefusals: (context.refundRefusals ?? 0) + 1,
        deadlines: withDeadline(context, "refund", due),
        refundRefused: false,
      });
      enqueue.emit({ type: "timer.arm", key: "refund", at: due });
      enqueue.emit({
        type: "chain.refund",
        jobId: context.jobId,
        reason: context.refundReason ?? "failed",
      });
    }),
    /** The last send's grace passed after the chain's refusal: it did not land either. */
    countRefundSend: assign(({ context }) => ({
      refundRefusals: (context.refundRefusals ?? 0) + 1,
    })),
    /** {@link REFUND_LIMIT_MS} passed in `refunding`: the job gives up, the escrow stays on chain. */
    giveUpRefund: assign(({ context }) => ({
      failure: `Cannot refund within ${REFUND_LIMIT_MS / 3_600_000} h: the escrow stays on chain: ${
        context.failure ?? "no answer from the chain"
      }`,
    })),
    recordFailure: assign({
      failure: ({ context, event }) =>
        event.type === "chain.tx.failed"
          ? `${event.request} failed: ${event.code}: ${event.message}`
          : event.type === "timer.fired"
          ? `${event.key} deadline passed`
          : context.failure,
    }),
    finish: enqueueActions(({ context, enqueue }) => {
      const bids = { ...context.bids };
      for (const bid of Object.values(context.bids)) {
        if (bid.status !== "open") continue;
        bids[bid.bidId] = { ...bid, status: "expired" };
      }
      for (const key of Object.keys(context.deadlines)) enqueue.emit({ type: "timer.cancel", key });
      enqueue.assign({ bids, deadlines: {} });
    }),
  },
}).createMachine({
  id: "job",
  context: ({ input }) => ({
    jobId: input.jobId,
    spec: input.spec,
    owner: input.owner,
    ownerAccount: input.ownerAccount ?? (input.self === input.owner ? input.owner : null),
    self: input.self,
    roles: input.roles,
    policy: input.policy ?? DEFAULT_POLICY,
    verifierPool: input.verifierPool ?? [],
    attempt: input.attempt ?? 1,
    escrowed: input.escrowLocked ? input.spec.maxPrice : 0n,
    escrowRef: null,
    declined: null,
    bids: {},
    excluded: [],
    winner: null,
    verifiers: [],
    result: null,
    outputs: {},
    attestations: {},
    verifying: false,
    deadlines: {},
    announcedBidWindowEndsAt: input.bidWindowEndsAt ?? null,
    cancelRequested: false,
    refundReason: null,
    payment: null,
    refunded: 0n,
    slashes: [],
    failure: null,
    path: [{ state: "announced", at: input.at }],
  }),
  initial: "announced",
  on: {
    // Chain events are the source of truth on every node, whatever the local state.
    "chain.escrow.refunded": [
      {
        guard: { type: "refundIs", params: { reason: "expired" } },
        target: ".expired",
        actions: "recordRefund",
      },
      {
        guard: { type: "refundIs", params: { reason: "cancelled" } },
        target: ".cancelled",
        actions: "recordRefund",
      },
      {
        guard: { type: "refundIs", params: { reason: "disputed" } },
        target: ".refunded",
        actions: "recordRefund",
      },
      { target: ".failed", actions: "recordRefund" },
    ],
    "chain.worker.slashed": { actions: "recordSlash" },
    "bid.received": [
      // An observer hears another worker's bid: only the owner decides, so nothing to keep.
      { guard: "othersBidHere" },
      { actions: { type: "refuseBid", params: { late: true } } },
    ],
    "bids.received": { actions: { type: "takeBids", params: { open: false } } },
    "job.announced": { actions: "recordAnnouncement" },
    // This node's worker decided not to bid, and why (recorded for operators and replay).
    "bid.declined": { actions: "recordDecline" },
    // Gossip can outrun the chain: keep outputs and attestations whenever they come (an early
    // attestation is checked against the assignment and the result when they arrive).
    "job.result.received": { actions: ["recordOutput", "startVerification"] },
    "job.attestation.received": [
      { guard: "attestationIsKept", actions: "recordAttestation" },
      // Only the owner counts votes; an observer that has not seen the assignment yet lets them by.
      { guard: not("isOwner") },
    ],
    "job.attestations.received": { actions: "recordAttestations" },
  },
  states: {
    announced: {
      description: "The owner asked the chain to lock the escrow; an observer passes straight on.",
      entry: "lockEscrow",
      always: { guard: "escrowAlreadyLocked", target: "bidding" },
      on: {
        "chain.escrow.locked": [
          {
            guard: and(["escrowIsOwners", "cancelRequested"]),
            target: "refunding",
            actions: ["recordEscrow", { type: "refund", params: { reason: "cancelled" } }],
          },
          { guard: "escrowIsOwners", target: "bidding", actions: "recordEscrow" },
          // Someone else locked an escrow under this job's id: not the owner's job.
          { actions: "refuseEscrow" },
        ],
        "job.cancel": { guard: "isOwner", actions: "requestCancel" },
        "chain.tx.failed": {
          guard: { type: "failedRequestIs", params: { request: "chain.escrow.lock" } },
          target: "failed",
          actions: "recordFailure",
        },
      },
    },
    bidding: {
      description: "The bid window is open; each bid is kept as a record with its status.",
      entry: [{ type: "enterPhase", params: { state: "bidding" } }, "openBidding"],
      on: {
        "bid.received": [
          // Only the owner decides; an observer keeps its own bid and lets the others by.
          { guard: "othersBidHere" },
          { guard: "bidIsAcceptable", actions: "acceptBid" },
          { actions: { type: "refuseBid", params: {} } },
        ],
        "bids.received": { actions: { type: "takeBids", params: { open: true } } },
        "bid.withdrawn": { guard: "bidIsKnown", actions: "withdrawBid" },
        "timer.fired": [
          {
            guard: and(["bidWindowDue", "isOwner", "hasWinner"]),
            target: "assigned",
            actions: "chooseWinner",
          },
          {
            guard: and(["bidWindowDue", "isOwner"]),
            target: "refunding",
            actions: { type: "refund", params: { reason: "expired" } },
          },
        ],
        "job.cancel": {
          guard: "isOwner",
          target: "refunding",
          actions: { type: "refund", params: { reason: "cancelled" } },
        },
        // Observers learn of the assignment from the chain.
        "chain.worker.assigned": {
          guard: not("isOwner"),
          target: "executing",
          actions: "recordAssignment",
        },
      },
    },
    assigned: {
      description: "(Owner) A winner was picked; waiting for the chain to record the assignment.",
      entry: { type: "enterPhase", params: { state: "assigned" } },
      on: {
        "chain.worker.assigned": { target: "executing", actions: "recordAssignment" },
        "chain.tx.failed": [
          {
            guard: and(["assignFailed", "hasWinnerAfterDrop"]),
            target: "assigned",
            reenter: true,
            actions: ["dropFailedWinner", "chooseWinner"],
          },
          {
            guard: "assignFailed",
            target: "refunding",
            actions: ["dropFailedWinner", "recordFailure", {
              type: "refund",
              params: { reason: "expired" },
            }],
          },
        ],
        "bid.received": { actions: { type: "refuseBid", params: { late: true } } },
      },
    },
    executing: {
      description:
        "The chain recorded the assignment; the worker runs the job before the execution deadline.",
      entry: { type: "enterPhase", params: { state: "executing" } },
      on: {
        "job.execution.completed": { guard: "isWinnerHere", actions: "submitResult" },
        // The input fails: under chain settlement the worker reports it, with why.
        "job.execution.failed": {
          guard: and(["isWinnerHere", "isChainDecided"]),
          actions: "reportFailure",
        },
        "chain.result.submitted": {
          guard: "isAssignedWorker",
          target: "verifying",
          actions: "recordResult",
        },
        "chain.execution.failed": {
          guard: "isAssignedWorker",
          target: "verifying",
          actions: "recordResult",
        },
        "chain.assignment.revoked": [
          { guard: "attemptsLeft", target: "bidding", actions: "recordRevocation" },
          {
            target: "refunding",
            actions: ["recordRevocation", { type: "refund", params: { reason: "failed" } }],
          },
        ],
        "timer.fired": {
          guard: and(["executionDue", "isOwner"]),
          target: "reassigning",
          actions: "revokeSilentWorker",
        },
      },
    },
    reassigning: {
      description:
        "(Owner) The worker went silent; its assignment is being revoked for a re-auction.",
      entry: { type: "enterPhase", params: { state: "reassigning" } },
      on: {
        "chain.assignment.revoked": [
          { guard: "attemptsLeft", target: "bidding", actions: "recordRevocation" },
          {
            target: "refunding",
            actions: ["recordRevocation", "recordFailure", {
              type: "refund",
              params: { reason: "failed" },
            }],
          },
        ],
        // The result landed before the revocation: go on with it.
        "chain.result.submitted": {
          guard: "isAssignedWorker",
          target: "verifying",
          actions: "recordResult",
        },
      },
    },
    verifying: {
      description:
        "A result commitment is on chain; the chosen verifiers re-run the job and attest.",
      entry: [{ type: "enterPhase", params: { state: "verifying" } }, "startVerification"],
      always: [
        {
          guard: "quorumAccepted",
          target: "settling",
          actions: { type: "recordVerdict", params: { accepted: true } },
        },
        {
          guard: "quorumRejected",
          target: "disputed",
          actions: { type: "recordVerdict", params: { accepted: false } },
        },
      ],
      on: {
        "job.verification.completed": { actions: "attest" },
        // A verifier's re-run of a failure claim.
        "job.execution.completed": {
          guard: and(["isFailureClaim", "isChainDecided"]),
          actions: "attest",
        },
        "job.execution.failed": {
          guard: and(["isFailureClaim", "isChainDecided"]),
          actions: "attest",
        },
        // A chain-decided job moves on the chain's verdict alone, on every node.
        "chain.job.verified": [
          {
            // The quorum confirmed the failure: the escrow goes back (the verifiers' share less).
            guard: and(["isChainDecided", "isFailureClaim"]),
            target: "refunding",
            actions: { type: "refund", params: { reason: "failed" } },
          },
          { guard: "isChainDecided", target: "settling", actions: "releasePayment" },
          { guard: not("isOwner"), target: "settling" },
        ],
        "chain.job.disputed": [
          {
            guard: "isChainDecided",
            target: "disputed",
            actions: ["slashForInvalidCompute", { type: "refund", params: { reason: "disputed" } }],
          },
          { guard: not("isOwner"), target: "disputed" },
        ],
        "timer.fired": [
          {
            // Optimistic mode: the verification deadline is a challenge window; a result that
            // no quorum disputed by then is accepted.
            guard: and(["verificationDue", "isOwner", "isOptimistic"]),
            target: "settling",
            actions: { type: "recordVerdict", params: { accepted: true } },
          },
          {
            guard: and(["verificationDue", "isOwner"]),
            target: "refunding",
            actions: ["recordFailure", { type: "refund", params: { reason: "failed" } }],
          },
        ],
      },
    },
    settling: {
      description: "A quorum accepted the result; the payment is being released.",
      entry: { type: "enterPhase", params: { state: "settling" } },
      on: {
        "chain.job.verified": { actions: "releasePayment" },
        "chain.payment.released": { target: "settled", actions: "recordPayment" },
      },
    },
    disputed: {
      description: "A quorum disputed the result; the worker is slashed and the client refunded.",
      entry: { type: "enterPhase", params: { state: "disputed" } },
      on: {
        "chain.job.disputed": {
          actions: ["slashForInvalidCompute", { type: "refund", params: { reason: "disputed" } }],
        },
      },
    },
    refunding: {
      description: "(Owner) The escrow is going back to the client.",
      entry: [{ type: "enterPhase", params: { state: "refunding" } }, "armRefundGrace"],
      on: {
        "chain.tx.failed": [
          { guard: "refundFailedTransiently", actions: ["recordFailure", "backOffRefund"] },
          {
            guard: { type: "failedRequestIs", params: { request: "chain.refund" } },
            actions: ["recordFailure", "awaitRefundEnding"],
          },
        ],
        "timer.fired": [
          { guard: "refundLimitDue", target: "failed", actions: "giveUpRefund" },
          { guard: and(["refundGraceDue", "refundBackingOff"]), actions: "retryRefund" },
          {
            guard: and(["refundGraceDue", "refundWasRefused", "refundSendsLeft"]),
            actions: "resendRefund",
          },
          {
            guard: and(["refundGraceDue", "refundWasRefused"]),
            target: "failed",
            actions: "countRefundSend",
          },
          { guard: "refundGraceDue", actions: "backOffRefund" },
        ],
      },
    },
    settled: {
      description: "Final: the worker was paid.",
      type: "final",
      entry: [{ type: "enterPhase", params: { state: "settled" } }, "finish"],
    },
    expired: {
      description: "Final: no acceptable bid arrived in the window; the client was refunded.",
      type: "final",
      entry: [{ type: "enterPhase", params: { state: "expired" } }, "finish"],
    },
    cancelled: {
      description: "Final: the client cancelled before assignment and was refunded.",
      type: "final",
      entry: [{ type: "enterPhase", params: { state: "cancelled" } }, "finish"],
    },
    refunded: {
      description: "Final: after a dispute, the client was refunded and the worker slashed.",
      type: "final",
      entry: [{ type: "enterPhase", params: { state: "refunded" } }, "finish"],
    },
    failed: {
      description:
        "Final: attempts ran out, no quorum formed in time, or the escrow could not be locked.",
      type: "final",
      entry: [{ type: "enterPhase", params: { state: "failed" } }, "finish"],
    },
  },
});

/**
 * The virtual time of `event`. Eventless transitions taken right after creation see XState's
 * init event, which has no time: the job's last recorded time stands in for it.
 */
function timeOf(context: JobContext, event: { at?: number }): number {
  return typeof event.at === "number" ? event.at : context.path[context.path.length - 1]?.at ?? 0;
}

function deadlineDue(context: JobContext, event: JobEvent, key: DeadlineKey): boolean {
  return event.type === "timer.fired" && event.key === key && context.deadlines[key] === event.due;
}

function keepOutput(
  outputs: JobContext["outputs"],
  worker: NodeId,
  commitment: string,
  value: unknown,
): JobContext["outputs"] {
  const { [worker]: _replaced, ...rest } = outputs;
  const entries = Object.entries(rest).slice(-7);
  return { ...Object.fromEntries(entries), [worker]: { commitment, value } };
}

function dropAttestation(context: JobContext, verifier: NodeId, why: string): EffectRequest {
  return {
    type: "log.reject",
    actor: `job:${context.jobId}`,
    event: "job.attestation.received",
    reason: `Dropped attestation from "${verifier}": ${why}`,
  };
}

function withDeadlineCtx(context: JobContext, drop: DeadlineKey): JobContext {
  return { ...context, deadlines: withDeadline(context, drop, undefined) };
}
