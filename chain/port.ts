/**
 * The settlement port: one interface, two adapters (the embedded local ledger, the default,
 * and Starknet). Both produce the same typed {@link ChainEvent}s; `chain/translate.ts` turns
 * them into actor events. Amounts are u256 `bigint`s, never floating point.
 *
 * @module
 */
import type { NodeId, RefundReason, SlashReason, Verdict } from "../machines/types.ts";
import type { SignedAttestation } from "./settlement.ts";

export type { SignedAttestation } from "./settlement.ts";

/** Where a chain event sits; `(blockHash, txHash, eventIndex)` identifies it uniquely. */
export interface ChainEventMeta {
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly txHash: string;
  readonly eventIndex: number;
}

/** Typed chain events, decoded from Starknet-shaped raw events. */
export type ChainEvent =
  & ChainEventMeta
  & (
    | {
      readonly name: "JobSubmitted";
      readonly jobId: string;
      readonly client: NodeId;
      readonly amount: bigint;
      readonly modelHash: string;
      readonly inputCommitment: string;
      /** The least stake a worker must hold to be assigned. */
      readonly minStake: bigint;
      /**
       * The escrow's terms ({@link JobTerms}) as the chain recorded them: a job submitted without
       * terms shows their defaults (0 verifiers).
       */
      readonly verifierCount: number;
      readonly bidWindowMs: number;
      readonly executionMs: number;
      readonly verificationMs: number;
      /**
       * The escrow's commitment to the whole job spec (`protocols/spec_hash.ts`), as submitted;
       * absent when the job was submitted without one (or before the chain recorded it).
       */
      readonly specHash?: string;
    }
    | {
      readonly name: "WorkerAssigned";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly price: bigint;
      readonly verifiers: readonly NodeId[];
      /** The auction this assignment closes: the chain counts a job's assignments from 1. */
      readonly attempt: number;
    }
    | { readonly name: "AssignmentRevoked"; readonly jobId: string; readonly worker: NodeId }
    | {
      readonly name: "ResultSubmitted";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly commitment: string;
    }
    | {
      readonly name: "FailureReported";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly reason: string;
    }
    | {
      readonly name: "AttestationRecorded";
      readonly jobId: string;
      readonly verifier: NodeId;
      readonly attempt: number;
      readonly verdict: Verdict;
    }
    | { readonly name: "KeyRegistered"; readonly account: NodeId; readonly publicKey: string }
    | { readonly name: "VerifierRegistered"; readonly verifier: NodeId }
    | { readonly name: "JobVerified"; readonly jobId: string }
    | { readonly name: "JobDisputed"; readonly jobId: string }
    | {
      readonly name: "PaymentReleased";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly amount: bigint;
      readonly fee: bigint;
      readonly change: bigint;
    }
    | {
      readonly name: "EscrowRefunded";
      readonly jobId: string;
      readonly client: NodeId;
      readonly amount: bigint;
      readonly reason: RefundReason;
    }
    | {
      readonly name: "WorkerSlashed";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly amount: bigint;
      readonly reason: SlashReason;
    }
    | {
      readonly name: "WorkerStaked";
      readonly worker: NodeId;
      readonly amount: bigint;
      readonly total: bigint;
    }
    | {
      readonly name: "UnstakeRequested";
      readonly worker: NodeId;
      readonly amount: bigint;
      readonly unlockAt: number;
    }
    | { readonly name: "StakeWithdrawn"; readonly worker: NodeId; readonly amount: bigint }
    | { readonly name: "ReputationUpdated"; readonly worker: NodeId; readonly score: number }
  );

/** The name of a {@link ChainEvent}. */
export type ChainEventName = ChainEvent["name"];

/** What a submitted transaction returns once it is included. */
export interface TxReceipt {
  readonly txHash: string;
  readonly blockNumber: number;
}

/** Options every chain call takes. */
export interface ChainCallOptions {
  readonly signal?: AbortSignal;
}

/** A position in the chain's event stream, owned by the consumer. */
export interface ChainCursor {
  readonly blockNumber: number;
  /** Index of the next event to read inside `blockNumber`. */
  readonly eventIndex: number;
}

/** Options of {@link ChainPort.subscribe}. */
export interface SubscribeOptions {
  /** The first position handed over. @default the chain's first event */
  readonly from?: ChainCursor;
  /** How often a polling port asks for new events, ms (the port's default otherwise). */
  readonly pollMs?: number;
  /**
   * The events the subscriber needs (a log filter, as a node asks a chain node for the events
   * of its own jobs and accounts): a port may skip the others, and then tells `passed` how far
   * it has read. A port may also hand over more (a filter it cannot apply): the subscriber
   * checks again. Called once per event and subscription, so it must be cheap.
   */
  readonly interest?: (event: ChainEvent) => boolean;
  /**
   * With `interest`: the position after the last event the port considered, skipped ones
   * included, told after each batch it read (so that the subscriber knows it is caught up). It
   * vouches that every accepted event before it was handed over: a decorator that delays,
   * holds or reorders the handler's events must not say `filtersEvents` nor pass these two on to
   * the port it wraps.
   */
  readonly passed?: (next: ChainCursor) => void;
  /**
   * With `index`: a port that knows how far an in-step subscriber has read without visiting it
   * (the simulated chain, whose index hands each event to the subscribers it concerns) may hand
   * it, once, a function that tells that position (undefined when it does not know it), and then
   * skip `passed` for the batches the subscriber had nothing in. The subscriber reads it when it
   * needs its position. A port that does not ignores it.
   */
  readonly track?: (position: () => ChainCursor | undefined) => void;
  /**
   * With `interest`: what `interest` can accept, in a shape a port can index (as a chain node
   * indexes log filters by topic). `interest` accepts no event outside it. A port that indexes
   * its subscriptions (the simulated chain) hands a subscriber only the events its index lets
   * through, so that its cost per event grows with the subscribers the event concerns, not with
   * all of them; a port that does not ignores it.
   */
  readonly index?: EventIndex;
}

/** A subscriber's log filter as a port can index it (see {@link SubscribeOptions.index}). */
export interface EventIndex {
  /** Events read whatever they concern. */
  readonly names: ReadonlySet<ChainEventName>;
  /** Accounts: an event that names one ({@link namesAccount}) is read. */
  readonly accounts: readonly NodeId[];
  /** Jobs whose every event is read. */
  readonly jobs: JobWatch;
}

/**
 * The jobs a subscriber reads every event of ({@link EventIndex.jobs}): the subscriber adds and
 * deletes them as it takes and leaves a part in them; a port that indexes follows the changes.
 */
export class JobWatch {
  readonly #jobs = new Set<string>();
  readonly #followers = new Set<(jobId: string, watched: boolean) => void>();

  /** Reads every event of job `jobId` from now on. */
  add(jobId: string): void {
    if (this.#jobs.has(jobId)) return;
    this.#jobs.add(jobId);
    for (const follower of this.#followers) follower(jobId, true);
  }

  /** Reads no more events of job `jobId` (but those its other filters let through). */
  delete(jobId: string): void {
    if (!this.#jobs.delete(jobId)) return;
    for (const follower of this.#followers) follower(jobId, false);
  }

  has(jobId: string): boolean {
    return this.#jobs.has(jobId);
  }

  get size(): number {
    return this.#jobs.size;
  }

  /** The jobs watched now. */
  values(): IterableIterator<string> {
    return this.#jobs.values();
  }

  /** Tells `follower` of every change from now on (a port's index); returns the unfollow. */
  follow(follower: (jobId: string, watched: boolean) => void): () => void {
    this.#followers.add(follower);
    return () => this.#followers.delete(follower);
  }
}

/** The job chain event `event` is about, if it is about one. */
export function jobOfEvent(event: ChainEvent): string | undefined {
  return (event as { jobId?: string }).jobId;
}

/**
 * Whether chain event `event` names `account` as its client, worker, verifier (one of the
 * chosen verifiers) or account.
 */
export function namesAccount(event: ChainEvent, account: NodeId): boolean {
  const e = event as {
    client?: NodeId;
    worker?: NodeId;
    verifier?: NodeId;
    verifiers?: readonly NodeId[];
    account?: NodeId;
  };
  return e.client === account || e.worker === account || e.verifier === account ||
    e.account === account || (e.verifiers !== undefined && e.verifiers.includes(account));
}

/**
 * A job's escrow as the chain holds it at its confirmed head ({@link ChainPort.escrowOf}): who
 * escrowed it, what spec it commits to, and whether it has ended.
 */
export interface EscrowRecord {
  readonly jobId: string;
  /** The client's account. */
  readonly client: NodeId;
  /** The spec hash it commits to (`protocols/spec_hash.ts`); absent where it was escrowed without. */
  readonly specHash?: string;
  /** Paid out or refunded: nothing is left to settle. */
  readonly ended: boolean;
}

/**
 * A job's status as a chain's escrow read answers it, in the order of the EVM JobManager's
 * `Status` enum (its values are these indices); the Starknet view answers the short strings.
 */
export const ESCROW_STATUSES = [
  "none",
  "submitted",
  "assigned",
  "revoked",
  "result",
  "verified",
  "disputed",
  "paid",
  "refunded",
] as const;

/** One of {@link ESCROW_STATUSES}. */
export type EscrowStatus = typeof ESCROW_STATUSES[number];

/**
 * The record of job `jobId`'s escrow from what a chain answered: undefined for `none` (no such
 * job); the zero spec hash ({@link NO_SPEC_HASH}) is none; paid or refunded is ended.
 */
export function escrowRecordOf(
  jobId: string,
  answer: { readonly client: NodeId; readonly specHash: string; readonly status: EscrowStatus },
): EscrowRecord | undefined {
  if (answer.status === "none") return undefined;
  return {
    jobId,
    client: answer.client,
    ...(answer.specHash === NO_SPEC_HASH ? {} : { specHash: answer.specHash }),
    ended: answer.status === "paid" || answer.status === "refunded",
  };
}

/** Balances of the accounting identity `escrowed = paid + fees + refunded + locked`. */
export interface LedgerTotals {
  readonly escrowed: bigint;
  readonly paid: bigint;
  readonly fees: bigint;
  readonly refunded: bigint;
  readonly locked: bigint;
  readonly staked: bigint;
  readonly slashed: bigint;
  readonly withdrawn: bigint;
  readonly bonded: bigint;
}

/**
 * The settlement port, bound to one account (the node's). Every call is a transaction that
 * either fails with a {@link ChainError} or is included and emits its events.
 */
export interface ChainPort {
  /** The account this port signs with. */
  readonly account: NodeId;
  /**
   * True when `subscribe` applies {@link SubscribeOptions.interest} and tells `passed` (the local
   * ledger): a subscriber passes its filter on only then. A decorator written as a new object
   * does not say so, and so gets every event, in its own order, and the subscriber filters.
   */
  readonly filtersEvents?: boolean;
  submitJob(
    job: {
      jobId: string;
      amount: bigint;
      minStake: bigint;
      modelHash: string;
      inputCommitment: string;
    } & JobTerms,
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  /**
   * The client assigns the job to a bidder; the chain chooses the job's verifiers (emitted in
   * `WorkerAssigned`). `verifiers`, if given, must be empty: nobody but the chain chooses them.
   */
  assignWorker(
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers?: readonly NodeId[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  revokeAssignment(
    revocation: { jobId: string; worker: NodeId },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  submitResult(
    result: { jobId: string; commitment: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  /**
   * Legacy: the client's verdict, accepted only for a job submitted without terms (no
   * `verifierCount`); a job with terms is decided by its verifiers' attestations
   * (`not_authorized`). Goes when the node bonds its verifiers and attests on chain.
   */
  recordVerification(
    outcome: { jobId: string; accepted: boolean },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  // Chain-decided settlement (optional: the local ledger, the EVM and the Starknet adapters have
  // it; a decorator that wraps a port forwards it only if it says so, see the README's trust model).

  /** The assigned worker reports that the job fails on its input, with why (at most 200 chars). */
  reportFailure?(
    failure: { jobId: string; reason: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  /** Registers the Ed25519 public key (64 hex digits) this account signs attestations with. */
  registerKey?(key: { publicKey: string }, options?: ChainCallOptions): Promise<TxReceipt>;
  /** The Ed25519 public key (64 hex digits) this port signs with. */
  accountPublicKey?(options?: ChainCallOptions): Promise<string>;
  /** Signs a statement with this port's account key (no transaction). */
  signAttestation?(
    statement: { jobId: string; attempt: number; subject: string; verdict: Verdict },
    options?: ChainCallOptions,
  ): Promise<SignedAttestation>;
  /**
   * Submits signed attestations (anyone may relay them, several at once); the chain counts them
   * and emits `JobVerified` or `JobDisputed` when a quorum of the chosen verifiers is reached.
   */
  submitAttestations?(
    batch: { attestations: readonly SignedAttestation[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  /** Evidence of double signing: two conflicting attestations by one key for one attempt. */
  reportDoubleSigning?(
    evidence: { first: SignedAttestation; second: SignedAttestation },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  releasePayment(release: { jobId: string }, options?: ChainCallOptions): Promise<TxReceipt>;
  refund(
    refund: { jobId: string; reason: RefundReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  slash(
    slash: { jobId: string; worker: NodeId; reason: SlashReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  /** Bonds stake; `role: "verifier"` also registers the account as a verifier (once). */
  stake(
    stake: { amount: bigint; role?: "worker" | "verifier" },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  requestUnstake(request: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt>;
  withdraw(options?: ChainCallOptions): Promise<TxReceipt>;
  stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint>;
  reputationOf(worker: NodeId, options?: ChainCallOptions): Promise<number>;
  /**
   * Job `jobId`'s escrow as the chain holds it now, or undefined if it holds none (a read, no
   * transaction), at the block the port's events are read up to (an adapter that reads events
   * some confirmations behind reads the escrow there too, so it shows no escrow or ending its
   * events have not). Optional: a node whose port has it reads the escrow of a job when it takes a
   * part in it, instead of reading every job's `JobSubmitted` and ending as they come (in a
   * market of N nodes, N deliveries a job; `runtime/kernel/node.ts`). Every adapter here has it
   * (the local ledger, the simulated and the remote chain, the EVM and the Starknet adapters).
   * `latest`: read at the chain's latest block instead, unconfirmed blocks included (a node asks so
   * before it blames an escrow's absence on anyone: one only unconfirmed blocks hold is no
   * forgery; review R6 M5); an adapter that reads at its head already ignores it.
   */
  escrowOf?(
    jobId: string,
    options?: ChainCallOptions & { readonly latest?: boolean },
  ): Promise<EscrowRecord | undefined>;
  /** Events at or after `from`, in chain order, and the cursor to continue from. */
  eventsSince(
    from: ChainCursor,
    options?: ChainCallOptions & { limit?: number },
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }>;
  /**
   * Calls `handler` with each new event in order, starting at `from` (with `interest`: each one
   * it accepts, at least). Returns an unsubscribe.
   */
  subscribe(handler: (event: ChainEvent) => void, options?: SubscribeOptions): () => void;
  /** Sums for the money check. */
  totals(options?: ChainCallOptions): Promise<LedgerTotals>;
  close(): Promise<void>;
}

/**
 * What a job's escrow commits to besides its money: how many verifiers the chain must choose
 * (0: the client takes the result unverified, paid once submitted) and the job's deadlines in
 * chain time (ms of the chain's clock, counted from the submission for the bid window and from
 * each assignment and each result for the others).
 */
export interface JobTerms {
  /** @default {0} */
  readonly verifierCount?: number;
  /** @default {60000} */
  readonly bidWindowMs?: number;
  /** @default {600000} */
  readonly executionMs?: number;
  /** @default {600000} */
  readonly verificationMs?: number;
  /**
   * The sha-256 of the job's whole spec (`protocols/spec_hash.ts`: 64 lowercase hex digits), shown
   * in `JobSubmitted` so that a chosen verifier can check an owner's spec against it. Absent: none
   * (the chain records the zero hash).
   */
  readonly specHash?: string;
}

/** The spec hash the chain records for a job submitted without one (shown as absent). */
export const NO_SPEC_HASH = "0".repeat(64);

/** Codes a chain call can fail with. */
export type ChainErrorCode =
  | "unknown_job"
  | "duplicate_job"
  | "invalid_state"
  | "not_authorized"
  | "insufficient_stake"
  | "insufficient_balance"
  | "invalid_amount"
  | "still_unbonding"
  | "stake_locked"
  | "rpc_error"
  | "reverted"
  | "not_enough_verifiers"
  | "bad_signature"
  | "no_key"
  | "not_chosen"
  | "duplicate_attestation"
  | "wrong_attempt"
  | "deadline_passed"
  | "deadline_not_passed"
  | "no_evidence"
  | "wrong_subject"
  | "unsupported_format";

/** A chain call that failed; match on `error.name === "ChainError"` and `code`. */
export class ChainError extends Error {
  override readonly name = "ChainError";
  readonly code: ChainErrorCode;
  constructor(code: ChainErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
