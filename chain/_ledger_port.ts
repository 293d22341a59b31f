/**
 * The local ledger's {@link ChainPort}: one account's view of a shared store. Private to
 * `chain/local_ledger.ts`.
 *
 * @module
 */
import type { NodeId, RefundReason, SlashReason, Verdict } from "../machines/types.ts";
import type {
  ChainCallOptions,
  ChainCursor,
  ChainEvent,
  ChainPort,
  EscrowRecord,
  JobTerms,
  LedgerTotals,
  SubscribeOptions,
  TxReceipt,
} from "./port.ts";
import { ChainError } from "./port.ts";
import type { AccountKey, SignedAttestation } from "./settlement.ts";
import {
  checkCursor,
  DEFAULT_EVENTS_LIMIT,
  DEFAULT_POLL_MS,
  type LedgerStore,
  logger,
  q,
  SUBSCRIBE_BATCH,
  SUBSCRIBE_BATCHES_PER_POLL,
} from "./_ledger_store.ts";

/** A {@link ChainPort} bound to one account of a {@link LocalLedger}. */
export class LocalLedgerPort implements ChainPort {
  readonly account: NodeId;
  /** Its subscriptions apply a subscriber's interest (see `ChainPort.filtersEvents`). */
  readonly filtersEvents = true;
  readonly #store: LedgerStore;
  readonly #onClose: (port: LocalLedgerPort) => void;
  readonly #subscriptions = new Set<() => void>();
  readonly #key: AccountKey;
  #closed = false;

  constructor(
    account: NodeId,
    store: LedgerStore,
    onClose: (port: LocalLedgerPort) => void,
    key: AccountKey,
  ) {
    this.account = account;
    this.#key = key;
    this.#store = store;
    this.#onClose = onClose;
  }

  // Every call is async so that a rule violation is a rejected promise, never a synchronous
  // throw, exactly as with the Starknet adapter.
  #call<T>(method: string, options: ChainCallOptions | undefined, body: () => T): Promise<T> {
    try {
      options?.signal?.throwIfAborted();
      if (this.#closed || this.#store.closed) {
        const what = this.#store.closed ? "ledger" : "ledger port";
        throw new ChainError(
          "rpc_error",
          `Cannot call ${method} as ${q(this.account)}: the ${what} is closed`,
        );
      }
      return Promise.resolve(body());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  submitJob(
    job: {
      jobId: string;
      amount: bigint;
      minStake: bigint;
      modelHash: string;
      inputCommitment: string;
    } & JobTerms,
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("submitJob", options, () => this.#store.submitJob(this.account, job));
  }

  assignWorker(
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers?: readonly NodeId[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "assignWorker",
      options,
      () => this.#store.assignWorker(this.account, assignment),
    );
  }

  revokeAssignment(
    revocation: { jobId: string; worker: NodeId },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "revokeAssignment",
      options,
      () => this.#store.revokeAssignment(this.account, revocation),
    );
  }

  submitResult(
    result: { jobId: string; commitment: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "submitResult",
      options,
      () => this.#store.submitResult(this.account, result),
    );
  }

  recordVerification(
    outcome: { jobId: string; accepted: boolean },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "recordVerification",
      options,
      () => this.#store.recordVerification(this.account, outcome),
    );
  }

  reportFailure(
    failure: { jobId: string; reason: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "reportFailure",
      options,
      () => this.#store.reportFailure(this.account, failure),
    );
  }

  registerKey(key: { publicKey: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call("registerKey", options, () => this.#store.registerKey(this.account, key));
  }

  accountPublicKey(options?: ChainCallOptions): Promise<string> {
    return this.#call("accountPublicKey", options, () => this.#key.publicKey);
  }

  signAttestation(
    statement: { jobId: string; attempt: number; subject: string; verdict: Verdict },
    options?: ChainCallOptions,
  ): Promise<SignedAttestation> {
    return this.#call("signAttestation", options, () => this.#key.sign(this.account, statement));
  }

  submitAttestations(
    batch: { attestations: readonly SignedAttestation[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "submitAttestations",
      options,
      () => this.#store.submitAttestations(this.account, batch),
    );
  }

  reportDoubleSigning(
    evidence: { first: SignedAttestation; second: SignedAttestation },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call(
      "reportDoubleSigning",
      options,
      () => this.#store.reportDoubleSigning(this.account, evidence),
    );
  }

  releasePayment(release: { jobId: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call(
      "releasePayment",
      options,
      () => this.#store.releasePayment(this.account, release),
    );
  }

  refund(
    refund: { jobId: string; reason: RefundReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("refund", options, () => this.#store.refund(this.account, refund));
  }

  slash(
    slash: { jobId: string; worker: NodeId; reason: SlashReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("slash", options, () => this.#store.slash(this.account, slash));
  }

  stake(
    stake: { amount: bigint; role?: "worker" | "verifier" },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("stake", options, () => this.#store.stake(this.account, stake));
  }

  requestUnstake(request: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call(
      "requestUnstake",
      options,
      () => this.#store.requestUnstake(this.account, request),
    );
  }

  withdraw(options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call("withdraw", options, () => this.#store.withdraw(this.account));
  }

  stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint> {
    return this.#call("stakeOf", options, () => this.#store.stakeOf(worker));
  }

  escrowOf(jobId: string, options?: ChainCallOptions): Promise<EscrowRecord | undefined> {
    return this.#call("escrowOf", options, () => this.#store.escrowOf(jobId));
  }

  reputationOf(worker: NodeId, options?: ChainCallOptions): Promise<number> {
    return this.#call("reputationOf", options, () => this.#store.reputationOf(worker));
  }

  eventsSince(
    from: ChainCursor,
    options?: ChainCallOptions & { limit?: number },
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }> {
    return this.#call("eventsSince", options, () => {
      const limit = options?.limit ?? DEFAULT_EVENTS_LIMIT;
      if (!Number.isSafeInteger(limit) || limit < 1) {
        throw new RangeError(`Invalid limit: expected a positive integer, got ${limit}`);
      }
      return this.#store.eventsSince(checkCursor(from), limit);
    });
  }

  /**
   * Polls for events at or after `from` (default: the first event of the ledger) every
   * `pollMs` (default 25 ms, and at once after a transaction through this `LocalLedger`), and
   * calls `handler` with each in order, across processes. A handler that throws is logged
   * and the next event is delivered; a failed poll is logged and retried.
   */
  subscribe(
    handler: (event: ChainEvent) => void,
    options: SubscribeOptions = {},
  ): () => void {
    const { interest, passed } = options;
    const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
    if (!Number.isFinite(pollMs) || pollMs < 0) {
      throw new RangeError(`Invalid pollMs: expected a non-negative number, got ${pollMs}`);
    }
    let cursor = checkCursor(options.from ?? { blockNumber: 0, eventIndex: 0 });
    if (this.#closed || this.#store.closed) {
      throw new ChainError(
        "rpc_error",
        `Cannot subscribe as ${q(this.account)}: the ledger is closed`,
      );
    }
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let polling = false;
    const schedule = (ms: number) => {
      if (stopped || polling) return;
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(poll, ms);
    };
    const poll = () => {
      timer = undefined;
      if (stopped || this.#store.closed) return;
      polling = true;
      try {
        for (let batch = 0; batch < SUBSCRIBE_BATCHES_PER_POLL && !stopped; batch++) {
          const { events } = this.#store.eventsSince(cursor, SUBSCRIBE_BATCH);
          for (const event of events) {
            if (stopped) break;
            cursor = { blockNumber: event.blockNumber, eventIndex: event.eventIndex + 1 };
            if (interest !== undefined && !interest(event)) continue;
            try {
              handler(event);
            } catch (error) {
              logger.error("Subscriber of {account} threw on {event}: {error}", {
                account: this.account,
                event: `${event.name}@${event.blockNumber}:${event.eventIndex}`,
                error,
              });
            }
          }
          if (interest !== undefined && events.length > 0 && !stopped) passed?.(cursor);
          if (events.length < SUBSCRIBE_BATCH) break;
        }
      } catch (error) {
        logger.warn("Polling the local ledger for {account} failed: {error}", {
          account: this.account,
          error,
        });
      } finally {
        polling = false;
      }
      schedule(pollMs);
    };
    const stopWaking = this.#store.onCommit(() => schedule(0));
    const unsubscribe = () => {
      if (stopped) return;
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      stopWaking();
      this.#subscriptions.delete(unsubscribe);
    };
    this.#subscriptions.add(unsubscribe);
    schedule(0);
    return unsubscribe;
  }

  totals(options?: ChainCallOptions): Promise<LedgerTotals> {
    return this.#call("totals", options, () => this.#store.totals());
  }

  /** Stops this port's subscriptions; the ledger stays open for other ports. */
  close(): Promise<void> {
    this.stop();
    return Promise.resolve();
  }

  /** Stops this port's subscriptions and refuses further calls. */
  stop(): void {
    this.#closed = true;
    for (const unsubscribe of [...this.#subscriptions]) unsubscribe();
    this.#onClose(this);
  }
}
