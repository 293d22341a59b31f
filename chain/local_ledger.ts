/**
 * The embedded local ledger: the default settlement adapter. It keeps the same contract rules
 * and emits the same Starknet-shaped events as the on-chain contract, in a SQLite file
 * (`node:sqlite`) that every node process on one machine can share.
 *
 * - Every transaction runs in `BEGIN IMMEDIATE ... COMMIT` on a database in WAL mode with a busy
 *   timeout, so several OS processes can write to one file safely. `":memory:"` gives a ledger
 *   private to one {@link LocalLedger}; all ports from one `LocalLedger` share it. A group of
 *   transactions ({@link LocalLedger.group}, what a chain server does with the calls of one read)
 *   commits as one: one `BEGIN IMMEDIATE ... COMMIT`, each transaction in a savepoint.
 * - Every successful transaction is one block: the block number increments, the transaction
 *   hash is the sha-256 of the parent block hash, block number, sender, method and arguments,
 *   and the block hash is the sha-256 of the parent block hash and the transaction hash. A call
 *   that breaks a rule fails with a {@link ChainError} and leaves no block behind.
 * - Events are stored as raw Starknet events (see `chain/events.ts`) emitted by
 *   {@link LOCAL_LEDGER_ADDRESS}; `eventsSince` and `subscribe` decode them back in order. The
 *   events of the last blocks a `LocalLedger` committed itself are kept, as the decoder returns
 *   them and frozen, and served without reading them back; other processes' blocks are read.
 *
 * Money. Amounts are `bigint`, stored as decimal text, never floating point.
 *
 * - Escrow: `escrowed = paid + fees + refunded + locked`. On release, the worker is paid the
 *   price minus the protocol fee (`protocolFeeBps` of the price, rounded down), the fee goes to
 *   the treasury, and the change (escrow minus price) goes back to the client and counts as
 *   `refunded`.
 * - Stake: `staked = bonded + slashed + withdrawn`, where `bonded` in {@link LedgerTotals}
 *   *includes* stake that is unbonding (requested but not yet withdrawn). `stakeOf()` returns a
 *   worker's bonded stake *excluding* unbonding: that is the stake assignment checks.
 * - Stake lock. A slash must find the stake the client relied on at assignment. Each job that
 *   is neither paid nor refunded locks, for its assigned worker (and for a worker whose
 *   assignment on it was revoked: still liable for downtime), the bonded stake that worker had
 *   at the assignment; a worker's lock is the largest of these, at most its bonded stake. The
 *   largest, not a sum: `assignWorker` checks the whole bonded stake against each job's
 *   `minStake` without reserving it, so one stake backs all of them. Not the largest `minStake`
 *   either: a worker could unstake down to it and shrink a 50 % slash to a fraction of what it
 *   risked. `requestUnstake` takes only stake above the lock (`stake_locked`); stake added later
 *   stays free. So while a job is open, its worker's bonded stake stays at least its stake at
 *   assignment minus what was slashed since, and a slash collects at least its matrix share.
 * - A slash takes `SLASH_BPS[reason]` (rounded down) of the worker's bonded stake plus, when the
 *   worker was assigned the job, what it asked to unbond after its first assignment to the job
 *   and has not withdrawn: that stake is still bonded, and it answers for the job after
 *   settlement too (a slash may come after the refund), until it is withdrawn. The slash takes
 *   from those requests first, newest first, then from the bonded stake, so `withdraw` pays
 *   what is left of a request; `slashed` counts both parts, and the identities above hold.
 * - Slashed stake goes to the treasury account (`treasury`, default `"treasury"`), as do fees.
 *   {@link LocalLedger.balanceOf} shows what each account has been credited: payments and change,
 *   refunds, withdrawn stake, and the treasury's fees and slashes.
 *
 * Chain-decided jobs. A job submitted with terms (`verifierCount`, deadlines) is settled by the
 * chain alone: the chain chooses its verifiers among those bonded (`stake({ role: "verifier" })`,
 * a key from `registerKey`), counts their signed attestations (`submitAttestations`, by anyone),
 * enforces its deadlines in chain time, takes failure reports (`reportFailure`) and double-signing
 * evidence (`reportDoubleSigning`), and lets anyone release, refund and slash on what it decided;
 * `recordVerification` is refused. The rules, who may call what and the codes are in the README's
 * trust model; the pure parts in `chain/settlement.ts`.
 *
 * Legacy rules, for a job submitted without terms (the node's default policy until it bonds its
 * verifiers), each broken one a {@link ChainError} with its code:
 *
 * - `submitJob`: the caller is the client; locks `amount` (> 0) in escrow; a known id is
 *   `duplicate_job`.
 * - `assignWorker`: only the client; the job must be open (submitted, or its assignment
 *   revoked); the worker's bonded stake must reach the job's `minStake` (`insufficient_stake`);
 *   the price must not exceed the escrow (`insufficient_balance`).
 * - `revokeAssignment`: only the client, only while that worker is assigned and has not
 *   submitted a result; the job is open again.
 * - `submitResult`: only the assigned worker, once.
 * - `recordVerification`: only the client, only after a result: `JobVerified` or `JobDisputed`.
 * - `releasePayment`: the client or the assigned worker, only after `JobVerified`; reputation
 *   +10 (at most 1000).
 * - `refund`: only the client, while the job is neither paid nor refunded; reason `"disputed"`
 *   only after `JobDisputed`. Returns the whole escrow.
 * - `slash`: only the job's client; `invalid_compute` only after `JobDisputed` for that worker's
 *   result; `downtime` only after that worker's assignment on that job was revoked;
 *   `double_signing` and `coordinated_attack` only for a worker that was assigned to the job or
 *   named as one of its verifiers. At most once per (job, worker, reason). Takes
 *   `SLASH_BPS[reason]` of the stake liable for the job (above); reputation -100 (at least 0).
 * - `stake` (> 0), `requestUnstake` (> 0, at most the bonded stake, `insufficient_stake`, and
 *   not from the locked part, `stake_locked`; unlocks after `unbondingMs`), `withdraw` (every
 *   request whose unlock time has passed; `still_unbonding` before that).
 *
 * Reputation starts at 500. A job settles at most once: a second release or refund is
 * `invalid_state`. Ids are 1 to 128 characters; commitments are 64 lowercase hex digits (use
 * `"0".repeat(64)` for a job without a model file); a malformed argument is a `TypeError` or
 * `RangeError`, not a `ChainError`.
 *
 * Every process that shares a file should open it with the same options: they are the
 * contract's parameters, applied by the process that sends a transaction.
 *
 * ```ts
 * import { LocalLedger } from "./local_ledger.ts";
 *
 * const ledger = LocalLedger.open(":memory:");
 * const client = ledger.as("client-1");
 * const worker = ledger.as("worker-1");
 * await worker.stake({ amount: 100n });
 * const hash = "ab".repeat(32);
 * await client.submitJob({
 *   jobId: "j1",
 *   amount: 50n,
 *   minStake: 10n,
 *   modelHash: hash,
 *   inputCommitment: hash,
 * });
 * await client.assignWorker({ jobId: "j1", worker: "worker-1", price: 40n, verifiers: [] });
 * await worker.submitResult({ jobId: "j1", commitment: hash });
 * await client.recordVerification({ jobId: "j1", accepted: true });
 * await client.releasePayment({ jobId: "j1" });
 * const totals = await client.totals();
 * if (totals.escrowed !== totals.paid + totals.fees + totals.refunded + totals.locked) {
 *   throw new Error("money is not conserved");
 * }
 * ledger.close();
 * ```
 *
 * @module
 */
import type { ChainPort } from "./port.ts";
import { ChainError } from "./port.ts";
import { AccountKey } from "./settlement.ts";
import {
  checkId,
  LedgerStore,
  LOCAL_LEDGER_ADDRESS,
  type LocalLedgerOptions,
  q,
  type StakeLock,
} from "./_ledger_store.ts";
import { LocalLedgerPort } from "./_ledger_port.ts";

export { LOCAL_LEDGER_ADDRESS, MAX_VERIFIERS } from "./_ledger_store.ts";
export type { LocalLedgerOptions, StakeLock } from "./_ledger_store.ts";

/**
 * The embedded ledger. Open it once per process, then take a port per signing account with
 * {@link LocalLedger.as}.
 */
export class LocalLedger {
  readonly #store: LedgerStore;
  readonly #ports = new Set<LocalLedgerPort>();

  /** The database file, or `":memory:"`. */
  readonly path: string;

  private constructor(path: string, store: LedgerStore) {
    this.path = path;
    this.#store = store;
  }

  /**
   * Opens (creating if needed) the ledger stored at `path`, or an in-process ledger for
   * `":memory:"`.
   */
  static open(path: string, options: LocalLedgerOptions = {}): LocalLedger {
    if (typeof path !== "string" || path.length === 0) {
      throw new TypeError(`Invalid ledger path: ${JSON.stringify(path)}`);
    }
    return new LocalLedger(path, new LedgerStore(path, options));
  }

  /**
   * A port that signs every transaction as `account`, and attestations with `options.key`
   * (default: the account's development key, {@link AccountKey.development}: derived from public
   * data, fit only where every party uses its own port).
   */
  as(account: string, options: { key?: AccountKey } = {}): ChainPort {
    checkId("account", account);
    this.#checkOpen(`take a port for ${q(account)}`);
    const key = options.key ?? AccountKey.development(LOCAL_LEDGER_ADDRESS, account);
    const port = new LocalLedgerPort(account, this.#store, (p) => this.#ports.delete(p), key);
    this.#ports.add(port);
    return port;
  }

  /**
   * Runs `work` with every transaction its ports' calls make meanwhile (synchronously: a port
   * runs a transaction when called) committed together, as one SQLite transaction (group commit):
   * each transaction in a savepoint, so one refused undoes only its own writes, and receipts,
   * blocks, events, errors and reads exactly as if run one by one in order. Others (another
   * process on the file, subscribers) see the group only once it commits; a crash before loses
   * the whole group. If the COMMIT fails this throws a {@link ChainError} (`rpc_error`) and keeps
   * nothing of the group, though the calls' promises resolved: a caller hands out nothing they
   * gave before this returns (`chain/remote.ts`'s server answers so). The file's write lock is
   * held while `work` runs. Inside a group it only runs `work`.
   */
  group<T>(work: () => T): T {
    this.#checkOpen("group transactions");
    return this.#store.group(work);
  }

  /** What `account` has been credited so far (payments, change, refunds, fees, slashes). */
  balanceOf(account: string): bigint {
    this.#checkOpen("read a balance");
    return this.#store.balanceOf(account);
  }

  /**
   * `worker`'s bonded stake, its unbonding requests, and how much of the stake its open jobs
   * lock (see the module doc: `requestUnstake` refuses the locked part with `stake_locked`).
   */
  stakeLockOf(worker: string): StakeLock {
    this.#checkOpen("read a stake lock");
    return this.#store.stakeLockOf(worker);
  }

  /** The Ed25519 key `account` registered on chain, or null. */
  publicKeyOf(account: string): string | null {
    this.#checkOpen("read a key");
    return this.#store.publicKeyOf(checkId("account", account));
  }

  /** The latest block; block 0 with a zero hash before the first transaction. */
  head(): { blockNumber: number; blockHash: string } {
    this.#checkOpen("read the head");
    return this.#store.head();
  }

  /** Stops every port's subscriptions and closes the database. Idempotent. */
  close(): void {
    for (const port of [...this.#ports]) port.stop();
    this.#ports.clear();
    this.#store.close();
  }

  #checkOpen(action: string): void {
    if (this.#store.closed) {
      throw new ChainError("rpc_error", `Cannot ${action}: the ledger is closed`);
    }
  }
}
