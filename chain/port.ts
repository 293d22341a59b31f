/**
 * The settlement port: one interface, two adapters (the embedded local ledger, the default,
 * and Starknet). Both produce the same typed {@link ChainEvent}s; `chain/translate.ts` turns
 * them into actor events. Amounts are u256 `bigint`s, never floating point.
 *
 * @module
 */
import type { NodeId, RefundReason, SlashReason } from "../machines/types.ts";

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
    }
    | {
      readonly name: "WorkerAssigned";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly price: bigint;
      readonly verifiers: readonly NodeId[];
    }
    | { readonly name: "AssignmentRevoked"; readonly jobId: string; readonly worker: NodeId }
    | {
      readonly name: "ResultSubmitted";
      readonly jobId: string;
      readonly worker: NodeId;
      readonly commitment: string;
    }
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
  submitJob(
    job: {
      jobId: string;
      amount: bigint;
      minStake: bigint;
      modelHash: string;
      inputCommitment: string;
    },
    options?: ChainCallOptions,
  ): Promise<TxReceipt>;
  assignWorker(
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers: readonly NodeId[] },
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
  recordVerification(
    outcome: { jobId: string; accepted: boolean },
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
  stake(stake: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt>;
  requestUnstake(request: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt>;
  withdraw(options?: ChainCallOptions): Promise<TxReceipt>;
  stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint>;
  reputationOf(worker: NodeId, options?: ChainCallOptions): Promise<number>;
  /** Events at or after `from`, in chain order, and the cursor to continue from. */
  eventsSince(
    from: ChainCursor,
    options?: ChainCallOptions & { limit?: number },
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }>;
  /** Calls `handler` with each new event in order, starting at `from`. Returns an unsubscribe. */
  subscribe(
    handler: (event: ChainEvent) => void,
    options?: { from?: ChainCursor; pollMs?: number },
  ): () => void;
  /** Sums for the money check. */
  totals(options?: ChainCallOptions): Promise<LedgerTotals>;
  close(): Promise<void>;
}

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
  | "reverted";

/** A chain call that failed; match on `error.name === "ChainError"` and `code`. */
export class ChainError extends Error {
  override readonly name = "ChainError";
  readonly code: ChainErrorCode;
  constructor(code: ChainErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
