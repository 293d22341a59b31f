/**
 * The local ledger's store and contract rules: one SQLite database, each transaction one block,
 * every rule of the settlement contracts (the pure parts in `chain/settlement.ts`). Private to
 * `chain/local_ledger.ts`, whose module doc states the rules.
 *
 * @module
 */
import {
  checkAttestation,
  checkBigint,
  checkHash,
  checkId,
  checkSubmission,
  MAX_FAILURE_REASON,
  MAX_VERIFIERS,
  q,
  U256,
} from "./_args.ts";
import { createHash } from "node:crypto";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { hash } from "starknet";
import { getLogger } from "@logtape/logtape";
import { SLASH_BPS } from "../machines/types.ts";
import type { NodeId, RefundReason, SlashReason } from "../machines/types.ts";
import {
  type ChainCursor,
  ChainError,
  type ChainEvent,
  type ChainEventMeta,
  type LedgerTotals,
  type TxReceipt,
} from "./port.ts";
import {
  completeLegacyEvent,
  decodeChainEvent,
  encodeChainEvent,
  EVENT_LAYOUTS,
  EVENT_SELECTORS,
  type RawStarknetEvent,
} from "./events.ts";
import {
  chooseVerifiers,
  FAILURE_SUBJECT,
  isPublicKey,
  quorumThresholds,
  type SignedAttestation,
  verifierWeight,
  verifyAttestation,
} from "./settlement.ts";
import {
  type EscrowRecord,
  escrowRecordOf,
  type EscrowStatus,
  type JobTerms,
  NO_SPEC_HASH,
} from "./port.ts";
import type { Verdict } from "../machines/types.ts";
import {
  ADDED_COLUMNS,
  INITIAL_REPUTATION,
  type JobStatus,
  LEDGER_FORMAT,
  SCHEMA,
  type TotalKey,
} from "./_ledger_schema.ts";

/** The address the local ledger's events come from: `starknet_keccak("ciro.local_ledger")`. */
export const LOCAL_LEDGER_ADDRESS: string = hash.getSelectorFromName("ciro.local_ledger");

/** Options of {@link LocalLedger.open}. */
export interface LocalLedgerOptions {
  /**
   * Protocol fee, in basis points of the price, taken from each released payment.
   * @default {100}
   */
  readonly protocolFeeBps?: number;
  /**
   * How long requested unstakes stay bonded before they can be withdrawn, ms.
   * @default {604800000} 7 days
   */
  readonly unbondingMs?: number;
  /**
   * The clock for unbonding, ms.
   * @default {Date.now}
   */
  readonly now?: () => number;
  /**
   * The account credited with fees and slashed stake.
   * @default {"treasury"}
   */
  readonly treasury?: string;
  /**
   * How long a transaction waits for another process's write lock, ms.
   * @default {5000}
   */
  readonly busyTimeoutMs?: number;
  /**
   * The least bonded stake a verifier needs to be chosen.
   * @default {1n}
   */
  readonly minVerifierBond?: bigint;
  /**
   * The verifiers' share of a released price, in basis points, split equally among the chosen
   * verifiers whose attestation agreed with the decided outcome (rounded down; the rest to the
   * worker). Also paid out of the escrow when a quorum confirms a reported failure.
   * @default {500}
   */
  readonly verifierRewardBps?: number;
}

/** A worker's stake and the part of it its open jobs lock, from {@link LocalLedger.stakeLockOf}. */
export interface StakeLock {
  /** The bonded stake excluding unbonding requests: `stakeOf()`. */
  readonly stake: bigint;
  /** Requested unstakes not yet withdrawn. */
  readonly unbonding: bigint;
  /**
   * The part of `stake` that `requestUnstake` refuses: the largest stake the worker had when it
   * was assigned one of its open jobs, at most `stake`.
   */
  readonly locked: bigint;
  /** Jobs neither paid nor refunded that the worker is or was assigned to, by id. */
  readonly openJobs: readonly string[];
}

const DEFAULT_FEE_BPS = 100;
const DEFAULT_VERIFIER_REWARD_BPS = 500;
// The most verifiers a job may ask for: one source, with the wire schema and the HTTP API.
export { MAX_VERIFIERS };
export { checkId, q };
const DEFAULT_UNBONDING_MS = 7 * 24 * 60 * 60 * 1000;
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
export const DEFAULT_POLL_MS = 25;
export const DEFAULT_EVENTS_LIMIT = 1000;
export const SUBSCRIBE_BATCH = 256;
/** Batches a subscription delivers per poll before yielding to the event loop. */
export const SUBSCRIBE_BATCHES_PER_POLL = 16;
/**
 * The latest blocks this store committed whose events it keeps decoded, so that `eventsSince`
 * (every subscription's poll) reads them without SQLite and the felt decoder. Older blocks, and
 * blocks other processes committed, are read from the database.
 */
export const RECENT_BLOCKS = 4096;
const MAX_REPUTATION = 1000;
const REPUTATION_REWARD = 10;
const REPUTATION_PENALTY = 100;
/** Open job ids a `stake_locked` message names before it only counts the rest. */
const MAX_JOBS_NAMED = 5;
const GENESIS_HASH = `0x${"0".repeat(64)}`;
const REFUND_REASONS: ReadonlySet<string> = new Set<RefundReason>([
  "expired",
  "cancelled",
  "disputed",
  "failed",
]);

export const logger = getLogger(["ciro", "chain", "local_ledger"]);

interface JobRow {
  readonly jobId: string;
  readonly client: string;
  readonly escrow: bigint;
  readonly minStake: bigint;
  readonly status: JobStatus;
  readonly worker: string | null;
  readonly price: bigint | null;
  readonly verifierCount: number;
  readonly bidWindowMs: number;
  readonly executionMs: number;
  readonly verificationMs: number;
  readonly bidDeadline: number;
  readonly executionDeadline: number;
  readonly verificationDeadline: number;
  readonly attempt: number;
  /** What the worker claimed: a result commitment, or that the job fails on its input. */
  readonly claim: "result" | "failure" | null;
  readonly commitment: string | null;
  readonly escrowBlockHash: string;
  /**
   * Submitted with terms (`verifierCount` given): the chain decides verification and deadlines.
   * Without (the node's flow until it bonds its verifiers): the legacy client-driven rules.
   */
  readonly chainDecided: boolean;
}

interface WorkerRow {
  readonly staked: bigint;
  readonly unbonding: bigint;
  readonly slashed: bigint;
  readonly withdrawn: bigint;
  readonly reputation: number;
}

type Row = Record<string, unknown>;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A chain event without its meta, as a transaction emits it. */
type EventBody = DistributiveOmit<ChainEvent, keyof ChainEventMeta>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

interface Tx {
  readonly caller: string;
  /** The block this transaction makes. */
  readonly blockNumber: number;
  readonly blockHash: string;
  /** The chain's time for this transaction (the ledger's `now`), ms. */
  readonly now: number;
  emit(event: EventBody): void;
}

/**
 * A group of transactions under way ({@link LedgerStore.group}): one SQLite transaction for all
 * of them, each in a savepoint; what every transaction writes at its end (the totals and
 * balances it moved, its events and its block) waits here and is written once, before the
 * group's COMMIT or before a read of those tables.
 */
interface Group {
  /** The last block of the group's transactions so far (the head they build on). */
  head: { blockNumber: number; blockHash: string };
  readonly totals: Map<TotalKey, bigint>;
  readonly credits: Map<string, bigint>;
  /** The events' rows to insert, {@link EVENT_COLUMNS} values each. */
  readonly events: SQLInputValue[];
  /** The blocks' rows to insert, {@link BLOCK_COLUMNS} values each. */
  readonly blocks: SQLInputValue[];
  /** Each committed transaction's block and events, kept in memory once the group commits. */
  readonly committed: [number, readonly ChainEvent[]][];
  /** Why the group's SQLite transaction is gone (a failure SQLite rolled it all back for). */
  lost: Error | undefined;
}

/** A statement that writes the jobs table (see `LedgerStore.#jobRows`). */
const WRITES_JOBS =
  /^\s*(?:UPDATE|INSERT\s+(?:OR\s+\w+\s+)?INTO|DELETE\s+FROM|REPLACE\s+INTO)\s+jobs\b/i;
/** A statement that writes the workers table (see `LedgerStore.#workerRows`). */
const WRITES_WORKERS =
  /^\s*(?:UPDATE|INSERT\s+(?:OR\s+\w+\s+)?INTO|DELETE\s+FROM|REPLACE\s+INTO)\s+workers\b/i;
/** Job rows a private store keeps at most (then it forgets them all and starts again). */
const MAX_JOB_ROWS = 10_000;
const EVENT_COLUMNS = 7;
const BLOCK_COLUMNS = 7;
/** Rows a group writes per INSERT statement (a fixed size, so few statements are prepared). */
const ROWS_PER_INSERT = 64;
const INSERT_EVENTS =
  "INSERT INTO events (block_number, event_index, from_address, keys, data, block_hash, tx_hash) VALUES ";
const INSERT_BLOCKS =
  "INSERT INTO blocks (number, hash, parent_hash, tx_hash, sender, method, timestamp) VALUES ";

function sha256Hex(text: string): string {
  return `0x${createHash("sha256").update(text).digest("hex")}`;
}

/** `count` rows of `width` parameters for a VALUES or IN clause: `(?, ?), (?, ?)`, or `?, ?`. */
function placeholders(count: number, width: number): string {
  const key = count * 16 + width;
  let text = PLACEHOLDERS.get(key);
  if (text === undefined) {
    const row = width === 1 ? "?" : `(${Array.from({ length: width }, () => "?").join(", ")})`;
    text = Array.from({ length: count }, () => row).join(", ");
    PLACEHOLDERS.set(key, text);
  }
  return text;
}
const PLACEHOLDERS = new Map<number, string>();

/**
 * `value` as JSON with every `bigint` as its decimal string (what a transaction's hash covers):
 * the bigints turned first and a plain `JSON.stringify` (V8's fast path, no replacer called per
 * value), or the replacer for a value with a `toJSON` or deeper than 64 levels (or a cycle).
 */
export function stringifyArgs(value: unknown): string {
  try {
    return JSON.stringify(withoutBigints(value, 0));
  } catch (error) {
    if (error !== NOT_PLAIN) throw error;
    return JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v);
  }
}

/** Thrown by {@link withoutBigints} at what it leaves to the replacer. */
const NOT_PLAIN = Symbol("not plain");
/** Levels {@link withoutBigints} walks before it leaves a value to the replacer (a cycle). */
const MAX_PLAIN_DEPTH = 64;

/** `value` with its bigints as strings, copying only what holds one; throws NOT_PLAIN. */
function withoutBigints(value: unknown, depth: number): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value === null || typeof value !== "object") return value;
  if (depth >= MAX_PLAIN_DEPTH || "toJSON" in value) throw NOT_PLAIN;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const plain = withoutBigints(item, depth + 1);
      if (plain !== item) (copy ??= value.slice())[i] = plain;
    }
    return copy ?? value;
  }
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const plain = withoutBigints(item, depth + 1);
    if (plain !== item) (copy ??= { ...record })[key] = plain;
  }
  return copy ?? value;
}

function text(row: Row, column: string): string {
  return textValue(column, row[column]);
}

function integer(row: Row, column: string): number {
  return integerValue(column, row[column]);
}

function textValue(column: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new ChainError("rpc_error", `Cannot read ledger column "${column}": not text`);
  }
  return value;
}

function integerValue(column: string, value: unknown): number {
  if (typeof value !== "number") {
    throw new ChainError("rpc_error", `Cannot read ledger column "${column}": not an integer`);
  }
  return value;
}

/** A felt as the events table stores it: hex with its `0x`. */
const STORED_FELT = /^0x[0-9a-fA-F]{1,64}$/;

/**
 * The felts column `column` of an events table row holds (`keys` or `data`: a JSON array of hex
 * felts); a {@link ChainError} naming the event (`where`, prefixed to the message) when it holds
 * anything else (a crafted or corrupted file).
 */
function feltsOf(row: Row, column: "keys" | "data", where: string): string[] {
  const event = `event ${row["block_number"]}:${row["event_index"]}`;
  let value: unknown;
  try {
    value = JSON.parse(text(row, column));
  } catch (cause) {
    throw new ChainError("rpc_error", `${where}: ${event} ${column} are not JSON`, { cause });
  }
  if (
    !Array.isArray(value) ||
    !value.every((felt) => typeof felt === "string" && STORED_FELT.test(felt))
  ) {
    throw new ChainError(
      "rpc_error",
      `${where}: ${event} ${column} are not an array of hex felts`,
    );
  }
  return value as string[];
}

/**
 * A row of the events table as the raw event it stores; a {@link ChainError} (its message led by
 * `where`) when its keys or data are not hex felts.
 */
function rawEventOf(row: Row, where = "Cannot read ledger"): RawStarknetEvent {
  return {
    from_address: text(row, "from_address"),
    keys: feltsOf(row, "keys", where),
    data: feltsOf(row, "data", where),
    block_number: integer(row, "block_number"),
    block_hash: text(row, "block_hash"),
    transaction_hash: text(row, "tx_hash"),
    event_index: integer(row, "event_index"),
  };
}

/** Decodes a stored event, or fails as an unreadable ledger. */
function decodeStored(raw: RawStarknetEvent): ChainEvent {
  try {
    return decodeChainEvent(raw, { fromAddress: LOCAL_LEDGER_ADDRESS });
  } catch (cause) {
    throw new ChainError(
      "rpc_error",
      `Cannot read event ${raw.block_number}:${raw.event_index}: it does not decode`,
      { cause },
    );
  }
}

/**
 * What `decodeChainEvent` gives for `event` once encoded (its meta, its name, then its fields in
 * the layout's order), frozen, built without decoding: every value the encoder accepted comes
 * back as it was, except a string that is not well-formed UTF-16 (null: decode that one). The
 * encoder has already checked each field against its Cairo type.
 */
function asDecoded(event: ChainEvent): ChainEvent | null {
  const source = event as unknown as Record<string, unknown>;
  const fields: Record<string, unknown> = {
    blockNumber: event.blockNumber,
    blockHash: event.blockHash,
    txHash: event.txHash,
    eventIndex: event.eventIndex,
    name: event.name,
  };
  for (const [field, kind] of EVENT_LAYOUTS[event.name]) {
    const value = source[field];
    if (kind === "byteArrays") {
      const values = value as readonly string[];
      if (!values.every((v) => v.isWellFormed())) return null;
      fields[field] = Object.freeze([...values]);
    } else if (value !== undefined) {
      if (typeof value === "string" && !value.isWellFormed()) return null;
      fields[field] = value;
    }
  }
  return Object.freeze(fields) as unknown as ChainEvent;
}

export function checkCursor(cursor: ChainCursor): ChainCursor {
  if (
    !Number.isSafeInteger(cursor.blockNumber) || cursor.blockNumber < 0 ||
    !Number.isSafeInteger(cursor.eventIndex) || cursor.eventIndex < 0
  ) {
    throw new RangeError(
      `Invalid cursor: expected non-negative integers, got ${JSON.stringify(cursor)}`,
    );
  }
  return cursor;
}

/** The shared state behind every port of one {@link LocalLedger}. */
export class LedgerStore {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  /** The multi-row inserts of events and blocks, by rows and statement. */
  readonly #inserts = new Map<number, StatementSync>();
  #jobStatement: StatementSync | undefined;
  /** A `":memory:"` database: no other connection can write to it. */
  readonly #private: boolean;
  /**
   * The block of this store's last commit, kept only for a private database, where it is the
   * head: a shared file's head is read in each transaction (another process may have written).
   */
  #lastCommit: { blockNumber: number; blockHash: string } | undefined;
  readonly #feeBps: number;
  readonly #unbondingMs: number;
  readonly #now: () => number;
  readonly #treasury: string;
  readonly #minVerifierBond: bigint;
  readonly #verifierRewardBps: number;
  readonly #commitListeners = new Set<() => void>();
  /** The open transaction's changes to the totals and to balances, by key and by account. */
  readonly #totalDeltas = new Map<TotalKey, bigint>();
  readonly #creditDeltas = new Map<string, bigint>();
  /** The events of the latest blocks this store committed, by block (see RECENT_BLOCKS). */
  readonly #recent = new Map<number, readonly ChainEvent[]>();
  /** The kept blocks' numbers, oldest first from `#oldest`: a ring of RECENT_BLOCKS. */
  readonly #kept: number[] = [];
  #oldest = 0;
  #closed = false;
  /**
   * A private store's job rows as last read or written, by id, so that a job's next transaction
   * does not read its row again (4 of a job's 5 transactions read it). Every write to the jobs
   * table goes through {@link #writeJob}, which writes the same into the kept row; one that does
   * not (a statement `#run` is given directly) forgets them all. A transaction that fails forgets
   * the rows it wrote, a group that does not commit all of them; a settled job's row is let go.
   */
  readonly #jobRows = new Map<string, JobRow>();
  /** The jobs the transaction under way wrote: forgotten if it fails. */
  readonly #jobsWritten: string[] = [];
  /** Inside {@link #writeJob} or {@link #setWorker}: the write is kept, not a reason to forget. */
  #writingJob = false;
  /**
   * A private store's workers' rows, as {@link #jobRows} (their one write is {@link #setWorker},
   * which writes the whole row: kept as written).
   */
  readonly #workerRows = new Map<string, WorkerRow>();
  readonly #workersWritten: string[] = [];
  /** The group of transactions under way, if any ({@link group}). */
  #group: Group | undefined;
  /** Inside a grouped transaction's body: whether it took its savepoint (at its first write). */
  #inGroupTx = false;
  #saved = false;

  constructor(path: string, options: LocalLedgerOptions) {
    const feeBps = options.protocolFeeBps ?? DEFAULT_FEE_BPS;
    if (!Number.isInteger(feeBps) || feeBps < 0 || feeBps > 10_000) {
      throw new RangeError(`Invalid protocolFeeBps: expected 0 to 10000, got ${feeBps}`);
    }
    const unbondingMs = options.unbondingMs ?? DEFAULT_UNBONDING_MS;
    if (!Number.isSafeInteger(unbondingMs) || unbondingMs < 0) {
      throw new RangeError(
        `Invalid unbondingMs: expected a non-negative integer, got ${unbondingMs}`,
      );
    }
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new RangeError(
        `Invalid busyTimeoutMs: expected a non-negative integer, got ${busyTimeoutMs}`,
      );
    }
    const minVerifierBond = options.minVerifierBond ?? 1n;
    if (typeof minVerifierBond !== "bigint" || minVerifierBond < 1n) {
      throw new RangeError(`Invalid minVerifierBond: expected at least 1n, got ${minVerifierBond}`);
    }
    const rewardBps = options.verifierRewardBps ?? DEFAULT_VERIFIER_REWARD_BPS;
    if (!Number.isInteger(rewardBps) || rewardBps < 0 || feeBps + rewardBps > 10_000) {
      throw new RangeError(
        `Invalid verifierRewardBps: expected 0 to ${10_000 - feeBps}, got ${rewardBps}`,
      );
    }
    this.#minVerifierBond = minVerifierBond;
    this.#verifierRewardBps = rewardBps;
    this.#feeBps = feeBps;
    this.#unbondingMs = unbondingMs;
    this.#now = options.now ?? Date.now;
    this.#treasury = checkId("treasury", options.treasury ?? "treasury");
    this.#private = path === ":memory:";
    this.#db = new DatabaseSync(path);
    try {
      this.#db.exec(`PRAGMA busy_timeout = ${busyTimeoutMs}`);
      this.#db.exec("PRAGMA journal_mode = WAL");
      this.#db.exec("PRAGMA synchronous = NORMAL");
      this.#db.exec("BEGIN IMMEDIATE");
      try {
        this.#db.exec(SCHEMA);
        for (const { table, column, definition } of ADDED_COLUMNS) {
          const columns = this.#db.prepare(`PRAGMA table_info(${table})`).all() as Row[];
          if (!columns.some((c) => c["name"] === column)) {
            this.#db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${definition}`);
          }
        }
        this.#upgradeFormat(path);
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    } catch (error) {
      this.#db.close();
      throw error;
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Brings a file of an earlier format up to {@link LEDGER_FORMAT} (in the opening transaction):
   * its stored `JobSubmitted` events get the escrow's terms from the jobs table (they never
   * change after the submission), its `WorkerAssigned` events the attempt, counted per job in
   * chain order as `assignWorker` counts it. Refuses a file of a later format.
   */
  #upgradeFormat(path: string): void {
    const version = integer(this.#db.prepare("PRAGMA user_version").get() as Row, "user_version");
    if (version === LEDGER_FORMAT) return;
    if (version > LEDGER_FORMAT) {
      throw new ChainError(
        "unsupported_format",
        `Cannot open ledger ${q(path)}: its format is ${version}, this release reads formats up ` +
          `to ${LEDGER_FORMAT}: open it with the release that wrote it or a later one, or start ` +
          "a new ledger file",
      );
    }
    const submitted = BigInt(EVENT_SELECTORS.JobSubmitted);
    const assigned = BigInt(EVENT_SELECTORS.WorkerAssigned);
    const attempts = new Map<string, number>();
    const rows = this.#db.prepare(
      `SELECT block_number, event_index, from_address, keys, data, block_hash, tx_hash
       FROM events ORDER BY block_number, event_index`,
    ).all() as Row[];
    const update = this.#db.prepare(
      "UPDATE events SET data = ? WHERE block_number = ? AND event_index = ?",
    );
    for (const row of rows) {
      const raw = rawEventOf(row, `Cannot upgrade ledger ${q(path)}`);
      const selector = BigInt(raw.keys[0] ?? "0x0");
      if (selector !== submitted && selector !== assigned) continue;
      // The job id leads both layouts: decode it with placeholder values for the rest.
      const placeholder = { minStake: 0n, verifierCount: 0, bidWindowMs: 0, executionMs: 0 };
      let jobId: string;
      try {
        const probe = completeLegacyEvent(raw, { ...placeholder, verificationMs: 0, attempt: 0 });
        if (probe === raw) continue;
        jobId = (decodeChainEvent(probe) as { jobId: string }).jobId;
      } catch (cause) {
        throw new ChainError(
          "rpc_error",
          `Cannot upgrade ledger ${q(path)}: event ${raw.block_number}:${raw.event_index} ` +
            "does not decode",
          { cause },
        );
      }
      let values: Record<string, unknown>;
      if (selector === assigned) {
        const attempt = (attempts.get(jobId) ?? 0) + 1;
        attempts.set(jobId, attempt);
        values = { attempt };
      } else {
        const job = this.#db.prepare(
          `SELECT min_stake, verifier_count, bid_window_ms, execution_ms, verification_ms
           FROM jobs WHERE job_id = ?`,
        ).get(jobId) as Row | undefined;
        if (job === undefined) {
          throw new ChainError(
            "rpc_error",
            `Cannot upgrade ledger ${q(path)}: event ${raw.block_number}:${raw.event_index} ` +
              `submits job ${q(jobId)}, which its jobs table does not hold`,
          );
        }
        values = {
          minStake: BigInt(text(job, "min_stake")),
          verifierCount: integer(job, "verifier_count"),
          bidWindowMs: integer(job, "bid_window_ms"),
          executionMs: integer(job, "execution_ms"),
          verificationMs: integer(job, "verification_ms"),
        };
      }
      const completed = completeLegacyEvent(raw, values);
      update.run(JSON.stringify(completed.data), raw.block_number, raw.event_index);
    }
    this.#db.exec(`PRAGMA user_version = ${LEDGER_FORMAT}`);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#commitListeners.clear();
    this.#recent.clear();
    this.#kept.length = 0;
    this.#statements.clear();
    this.#inserts.clear();
    this.#forgetKept();
    this.#jobStatement = undefined;
    this.#db.close();
  }

  onCommit(listener: () => void): () => void {
    this.#commitListeners.add(listener);
    return () => this.#commitListeners.delete(listener);
  }

  #sql(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      statement = this.#db.prepare(sql);
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  #get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.#sql(sql).get(...params) as Row | undefined;
  }

  #all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.#sql(sql).all(...params) as Row[];
  }

  #run(sql: string, ...params: SQLInputValue[]): void {
    // A grouped transaction takes its savepoint at its first write: one refused before it wrote
    // anything (most refusals) has nothing to undo.
    if (this.#inGroupTx && !this.#saved) {
      this.#sql("SAVEPOINT tx").run();
      this.#saved = true;
    }
    if (!this.#writingJob && (this.#jobRows.size > 0 || this.#workerRows.size > 0)) {
      if (WRITES_JOBS.test(sql)) this.#jobRows.clear();
      if (WRITES_WORKERS.test(sql)) this.#workerRows.clear();
    }
    this.#sql(sql).run(...params);
  }

  /**
   * Writes job `jobId`'s row with `sql`, and `patch` (the same columns, as {@link JobRow} holds
   * them) into the row kept of it.
   */
  #writeJob(jobId: string, patch: Partial<JobRow>, sql: string, ...params: SQLInputValue[]): void {
    this.#writingJob = true;
    try {
      this.#run(sql, ...params);
    } finally {
      this.#writingJob = false;
    }
    this.#jobsWritten.push(jobId);
    const kept = this.#jobRows.get(jobId);
    if (kept === undefined) return;
    if (patch.status === "paid" || patch.status === "refunded") this.#jobRows.delete(jobId);
    else this.#jobRows.set(jobId, { ...kept, ...patch });
  }

  /** Forgets the rows of the jobs and workers the failed transaction wrote (undone). */
  #forgetWritten(): void {
    for (const jobId of this.#jobsWritten) this.#jobRows.delete(jobId);
    this.#jobsWritten.length = 0;
    for (const worker of this.#workersWritten) this.#workerRows.delete(worker);
    this.#workersWritten.length = 0;
  }

  /** Forgets every row kept (what a group that did not commit wrote may be among them). */
  #forgetKept(): void {
    this.#jobRows.clear();
    this.#workerRows.clear();
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  /**
   * Runs `work` with every transaction it makes in one SQLite transaction (group commit), and
   * commits them together at its end: one `BEGIN IMMEDIATE` and one `COMMIT` for all, each
   * transaction in a savepoint, so that one refused undoes only its own writes. Receipts, blocks,
   * events, errors and reads inside are exactly those of running the transactions one by one in
   * order (each sees those before it); what others see (another process on the file, this store's
   * subscribers, `eventsSince`) changes only at the COMMIT, and a crash before it loses the whole
   * group. So a caller hands out nothing `work` got before this returns: if the COMMIT fails this
   * throws, and nothing of the group is kept. Inside a group (or on a closed store) it only runs
   * `work`. The file's write lock is held for the whole of `work`.
   */
  group<T>(work: () => T): T {
    if (this.#group !== undefined || this.#closed) return work();
    this.#sql("BEGIN IMMEDIATE").run();
    let head;
    try {
      // Read once the write lock is held: no other process writes until the COMMIT.
      head = this.#lastCommit ?? this.#readHead();
    } catch (error) {
      this.#sql("ROLLBACK").run();
      throw error;
    }
    const group: Group = {
      head,
      totals: new Map(),
      credits: new Map(),
      events: [],
      blocks: [],
      committed: [],
      lost: undefined,
    };
    this.#group = group;
    let result: T;
    try {
      result = work();
    } catch (error) {
      // What `work` did before it threw is committed: its answers may be out.
      this.#endGroup(group);
      throw error;
    }
    this.#endGroup(group);
    return result;
  }

  /** Commits a group, or rolls it back and throws why; then keeps its blocks and tells. */
  #endGroup(group: Group): void {
    this.#group = undefined;
    try {
      if (group.lost !== undefined) throw group.lost;
      this.#flush(group);
      this.#sql("COMMIT").run();
    } catch (error) {
      if (this.#db.isTransaction) this.#sql("ROLLBACK").run();
      // The rows kept may hold what the group wrote.
      this.#forgetKept();
      throw new ChainError(
        "rpc_error",
        `Cannot commit ${group.committed.length} transactions: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (group.committed.length > 0) {
      if (this.#private) this.#lastCommit = group.head;
      for (const [blockNumber, events] of group.committed) this.#remember(blockNumber, events);
      for (const listener of this.#commitListeners) listener();
    }
  }

  /** Writes what a group's transactions left to write at their end (see {@link Group}). */
  #flush(group: Group): void {
    this.#writeMoney(group.totals, group.credits);
    group.totals.clear();
    group.credits.clear();
    this.#insertRows(INSERT_EVENTS, EVENT_COLUMNS, group.events);
    this.#insertRows(INSERT_BLOCKS, BLOCK_COLUMNS, group.blocks);
    group.events.length = 0;
    group.blocks.length = 0;
  }

  /** Inserts `values` (rows of `width`) with `sql`, {@link ROWS_PER_INSERT} rows a statement. */
  #insertRows(sql: string, width: number, values: SQLInputValue[]): void {
    const rows = values.length / width;
    for (let row = 0; row < rows; row += ROWS_PER_INSERT) {
      const count = Math.min(ROWS_PER_INSERT, rows - row);
      const key = count * 2 + (sql === INSERT_EVENTS ? 0 : 1);
      let statement = this.#inserts.get(key);
      if (statement === undefined) {
        statement = this.#db.prepare(sql + placeholders(count, width));
        this.#inserts.set(key, statement);
      }
      statement.run(
        ...(count === rows ? values : values.slice(row * width, (row + count) * width)),
      );
    }
  }

  /** Writes a group's pending rows before a read of the tables they go to. */
  #flushPending(): void {
    const group = this.#group;
    if (group !== undefined && group.lost === undefined) this.#flush(group);
  }

  /** Runs `body` as one transaction, in one new block, and returns its receipt. */
  transact(
    caller: string,
    method: string,
    args: unknown,
    body: (tx: Tx) => void,
  ): TxReceipt {
    const group = this.#group;
    if (group !== undefined) return this.#transactInGroup(group, caller, method, args, body);
    this.#sql("BEGIN IMMEDIATE").run();
    let receipt: TxReceipt;
    const events: SQLInputValue[] = [];
    const blocks: SQLInputValue[] = [];
    try {
      const block = this.#execute(
        this.#lastCommit ?? this.#readHead(),
        caller,
        method,
        args,
        body,
        events,
        blocks,
      );
      // What the body moved and emitted, written once.
      this.#writeMoney(this.#totalDeltas, this.#creditDeltas);
      this.#insertRows(INSERT_EVENTS, EVENT_COLUMNS, events);
      this.#insertRows(INSERT_BLOCKS, BLOCK_COLUMNS, blocks);
      this.#sql("COMMIT").run();
      receipt = { txHash: block.txHash, blockNumber: block.blockNumber };
      if (this.#private) this.#lastCommit = block;
      this.#remember(block.blockNumber, block.emitted);
    } catch (error) {
      if (this.#db.isTransaction) this.#sql("ROLLBACK").run();
      this.#forgetWritten();
      throw error;
    } finally {
      // Committed or rolled back: what the body moved is written or gone.
      this.#totalDeltas.clear();
      this.#creditDeltas.clear();
      this.#jobsWritten.length = 0;
      this.#workersWritten.length = 0;
    }
    for (const listener of this.#commitListeners) listener();
    return receipt;
  }

  /** {@link transact} inside a group: in a savepoint, its end's writes left to the group. */
  #transactInGroup(
    group: Group,
    caller: string,
    method: string,
    args: unknown,
    body: (tx: Tx) => void,
  ): TxReceipt {
    if (group.lost !== undefined) throw group.lost;
    const events: SQLInputValue[] = [];
    const blocks: SQLInputValue[] = [];
    this.#inGroupTx = true;
    try {
      const block = this.#execute(group.head, caller, method, args, body, events, blocks);
      this.#inGroupTx = false;
      if (this.#saved) this.#sql("RELEASE tx").run();
      for (const [key, delta] of this.#totalDeltas) {
        group.totals.set(key, (group.totals.get(key) ?? 0n) + delta);
      }
      for (const [account, delta] of this.#creditDeltas) {
        group.credits.set(account, (group.credits.get(account) ?? 0n) + delta);
      }
      for (const value of events) group.events.push(value);
      for (const value of blocks) group.blocks.push(value);
      group.head = { blockNumber: block.blockNumber, blockHash: block.blockHash };
      group.committed.push([block.blockNumber, block.emitted]);
      return { txHash: block.txHash, blockNumber: block.blockNumber };
    } catch (error) {
      this.#inGroupTx = false;
      this.#forgetWritten();
      if (this.#saved) {
        if (this.#db.isTransaction) {
          this.#sql("ROLLBACK TO tx").run();
          this.#sql("RELEASE tx").run();
        } else {
          // SQLite rolled the whole transaction back (a full disk, an I/O error): the group's
          // earlier transactions are gone too, so none of them may be answered as done.
          this.#forgetKept();
          group.lost = new ChainError(
            "rpc_error",
            `The ledger rolled back a group of transactions: ${(error as Error).message}`,
            { cause: error },
          );
        }
      }
      throw error;
    } finally {
      this.#inGroupTx = false;
      this.#saved = false;
      this.#totalDeltas.clear();
      this.#creditDeltas.clear();
      this.#jobsWritten.length = 0;
      this.#workersWritten.length = 0;
    }
  }

  /**
   * Runs a transaction's body on top of `parent` and makes its block: the events' rows go to
   * `events`, the block's row to `blocks` (the caller writes them, with the money the body moved).
   */
  #execute(
    parent: { blockNumber: number; blockHash: string },
    caller: string,
    method: string,
    args: unknown,
    body: (tx: Tx) => void,
    events: SQLInputValue[],
    blocks: SQLInputValue[],
  ): { blockNumber: number; blockHash: string; txHash: string; emitted: ChainEvent[] } {
    const { blockNumber: parentNumber, blockHash: parentHash } = parent;
    const emitted: ChainEvent[] = [];
    const blockNumber = parentNumber + 1;
    const txHash = sha256Hex(
      stringifyArgs({ parentHash, blockNumber, sender: caller, method, args }),
    );
    const blockHash = sha256Hex(parentHash + txHash);
    const tx: Tx = {
      caller,
      blockNumber,
      blockHash,
      now: Math.trunc(this.#now()),
      emit: (body) => {
        const eventIndex = emitted.length;
        const event = { ...body, blockNumber, blockHash, txHash, eventIndex } as ChainEvent;
        const raw = encodeChainEvent(event, LOCAL_LEDGER_ADDRESS);
        events.push(
          blockNumber,
          eventIndex,
          raw.from_address,
          JSON.stringify(raw.keys),
          JSON.stringify(raw.data),
          blockHash,
          txHash,
        );
        emitted.push(asDecoded(event) ?? decodeStored(raw));
      },
    };
    body(tx);
    blocks.push(
      blockNumber,
      blockHash,
      parentHash,
      txHash,
      caller,
      method,
      Math.trunc(this.#now()),
    );
    return { blockNumber, blockHash, txHash, emitted };
  }

  /** Keeps a committed block's events for `eventsSince`; the oldest kept block goes. */
  #remember(blockNumber: number, events: readonly ChainEvent[]): void {
    // A ring, not the map's own order: a Map's first key after many deletions is found by
    // stepping over every deleted entry (V8), which made each commit cost O(RECENT_BLOCKS).
    if (this.#kept.length < RECENT_BLOCKS) {
      this.#kept.push(blockNumber);
    } else {
      this.#recent.delete(this.#kept[this.#oldest]!);
      this.#kept[this.#oldest] = blockNumber;
      this.#oldest = (this.#oldest + 1) % RECENT_BLOCKS;
    }
    this.#recent.set(blockNumber, events);
  }

  #job(action: string, jobId: string): JobRow {
    const kept = this.#jobRows.get(jobId);
    if (kept !== undefined) return kept;
    const row = this.#readJob(action, jobId);
    if (this.#private) {
      if (this.#jobRows.size >= MAX_JOB_ROWS) this.#jobRows.clear();
      this.#jobRows.set(jobId, row);
    }
    return row;
  }

  #readJob(action: string, jobId: string): JobRow {
    // Read as an array (setReturnArrays): 19 columns, on every transaction about a job.
    let statement = this.#jobStatement;
    if (statement === undefined) {
      statement = this.#jobStatement = this.#db.prepare(
        `SELECT client, escrow, min_stake, status, worker, price, verifier_count, bid_window_ms,
           execution_ms, verification_ms, bid_deadline, execution_deadline, verification_deadline,
           attempt, claim, commitment, escrow_block_hash, chain_decided
         FROM jobs WHERE job_id = ?`,
      );
      // In node:sqlite since Node 24 (Deno 2.4), not yet in its type declarations.
      (statement as StatementSync & { setReturnArrays(enabled: boolean): void })
        .setReturnArrays(true);
    }
    const row = statement.get(jobId) as unknown as unknown[] | undefined;
    if (row === undefined) {
      throw new ChainError("unknown_job", `Cannot ${action} job ${q(jobId)}: no such job`);
    }
    const [
      client,
      escrow,
      minStake,
      status,
      worker,
      price,
      verifierCount,
      bidWindowMs,
      executionMs,
      verificationMs,
      bidDeadline,
      executionDeadline,
      verificationDeadline,
      attempt,
      claim,
      commitment,
      escrowBlockHash,
      chainDecided,
    ] = row;
    return {
      jobId,
      client: textValue("client", client),
      escrow: BigInt(textValue("escrow", escrow)),
      minStake: BigInt(textValue("min_stake", minStake)),
      status: textValue("status", status) as JobStatus,
      worker: typeof worker === "string" ? worker : null,
      price: typeof price === "string" ? BigInt(price) : null,
      verifierCount: integerValue("verifier_count", verifierCount),
      bidWindowMs: integerValue("bid_window_ms", bidWindowMs),
      executionMs: integerValue("execution_ms", executionMs),
      verificationMs: integerValue("verification_ms", verificationMs),
      bidDeadline: integerValue("bid_deadline", bidDeadline),
      executionDeadline: integerValue("execution_deadline", executionDeadline),
      verificationDeadline: integerValue("verification_deadline", verificationDeadline),
      attempt: integerValue("attempt", attempt),
      claim: claim === "result" || claim === "failure" ? claim : null,
      commitment: typeof commitment === "string" ? commitment : null,
      escrowBlockHash: textValue("escrow_block_hash", escrowBlockHash),
      chainDecided: integerValue("chain_decided", chainDecided) === 1,
    };
  }

  #setJob(
    jobId: string,
    fields: {
      status: JobStatus;
      worker?: string | null;
      price?: string | null;
      commitment?: string;
    },
  ): void {
    const sets = ["status = ?"];
    const params: SQLInputValue[] = [fields.status];
    if (fields.worker !== undefined) {
      sets.push("worker = ?");
      params.push(fields.worker);
    }
    if (fields.price !== undefined) {
      sets.push("price = ?");
      params.push(fields.price);
    }
    if (fields.commitment !== undefined) {
      sets.push("commitment = ?");
      params.push(fields.commitment);
    }
    const patch: Partial<Mutable<JobRow>> = { status: fields.status };
    if (fields.worker !== undefined) patch.worker = fields.worker;
    if (fields.price !== undefined) {
      patch.price = fields.price === null ? null : BigInt(fields.price);
    }
    if (fields.commitment !== undefined) patch.commitment = fields.commitment;
    this.#writeJob(
      jobId,
      patch,
      `UPDATE jobs SET ${sets.join(", ")} WHERE job_id = ?`,
      ...params,
      jobId,
    );
  }

  #requireClient(action: string, job: JobRow, caller: string): void {
    if (job.client !== caller) {
      throw new ChainError(
        "not_authorized",
        `Cannot ${action} job ${q(job.jobId)}: ${q(caller)} is not its client ${q(job.client)}`,
      );
    }
  }

  #requireNotSettled(action: string, job: JobRow): void {
    if (job.status === "paid") {
      throw new ChainError(
        "invalid_state",
        `Cannot ${action} job ${q(job.jobId)}: it is already settled, payment was released`,
      );
    }
    if (job.status === "refunded") {
      throw new ChainError(
        "invalid_state",
        `Cannot ${action} job ${q(job.jobId)}: it is already settled, escrow was refunded`,
      );
    }
  }

  #worker(worker: string): WorkerRow {
    const kept = this.#workerRows.get(worker);
    if (kept !== undefined) return kept;
    const row = this.#readWorker(worker);
    if (this.#private) {
      if (this.#workerRows.size >= MAX_JOB_ROWS) this.#workerRows.clear();
      this.#workerRows.set(worker, row);
    }
    return row;
  }

  #readWorker(worker: string): WorkerRow {
    const row = this.#get(
      "SELECT staked, unbonding, slashed, withdrawn, reputation FROM workers WHERE worker = ?",
      worker,
    );
    if (row === undefined) {
      return {
        staked: 0n,
        unbonding: 0n,
        slashed: 0n,
        withdrawn: 0n,
        reputation: INITIAL_REPUTATION,
      };
    }
    return {
      staked: BigInt(text(row, "staked")),
      unbonding: BigInt(text(row, "unbonding")),
      slashed: BigInt(text(row, "slashed")),
      withdrawn: BigInt(text(row, "withdrawn")),
      reputation: integer(row, "reputation"),
    };
  }

  #setWorker(worker: string, row: WorkerRow): void {
    this.#writingJob = true;
    try {
      this.#writeWorker(worker, row);
    } finally {
      this.#writingJob = false;
    }
    this.#workersWritten.push(worker);
    if (this.#workerRows.has(worker)) this.#workerRows.set(worker, row);
  }

  #writeWorker(worker: string, row: WorkerRow): void {
    this.#run(
      `INSERT INTO workers (worker, staked, unbonding, slashed, withdrawn, reputation) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (worker) DO UPDATE SET staked = excluded.staked, unbonding = excluded.unbonding,
         slashed = excluded.slashed, withdrawn = excluded.withdrawn, reputation = excluded.reputation`,
      worker,
      row.staked.toString(),
      row.unbonding.toString(),
      row.slashed.toString(),
      row.withdrawn.toString(),
      row.reputation,
    );
  }

  /** Adds `delta` to a total, written at the end of the transaction ({@link #writeMoney}). */
  #addTotal(key: TotalKey, delta: bigint): void {
    if (delta === 0n) return;
    this.#totalDeltas.set(key, (this.#totalDeltas.get(key) ?? 0n) + delta);
  }

  /** Credits `account`, written at the end of the transaction ({@link #writeMoney}). */
  #credit(account: string, amount: bigint): void {
    if (amount === 0n) return;
    this.#creditDeltas.set(account, (this.#creditDeltas.get(account) ?? 0n) + amount);
  }

  /**
   * Writes the totals and balances the transaction changed: one read and one write for each
   * table, whatever the number of changes (nothing inside a transaction reads them).
   */
  #writeMoney(
    totals: ReadonlyMap<TotalKey, bigint>,
    credits: ReadonlyMap<string, bigint>,
  ): void {
    this.#addUp("totals", "key", totals);
    this.#addUp("balances", "account", credits);
  }

  #addUp(table: "totals" | "balances", column: string, deltas: ReadonlyMap<string, bigint>): void {
    if (deltas.size === 0) return;
    const keys = [...deltas.keys()];
    // One keyed read each: cheaper than one `IN (...)` read, for which SQLite builds a b-tree.
    const read = `SELECT amount FROM ${table} WHERE ${column} = ?`;
    const values: SQLInputValue[] = [];
    for (const key of keys) {
      const row = this.#get(read, key);
      const amount = (row === undefined ? 0n : BigInt(text(row, "amount"))) + deltas.get(key)!;
      values.push(key, amount.toString());
    }
    this.#run(
      `INSERT INTO ${table} (${column}, amount) VALUES ${placeholders(keys.length, 2)}
       ON CONFLICT (${column}) DO UPDATE SET amount = excluded.amount`,
      ...values,
    );
  }

  #markParty(
    jobId: string,
    worker: string,
    column: "assigned" | "verifier" | "revoked" | "disputed",
  ): void {
    this.#run(
      `INSERT INTO job_parties (job_id, worker, ${column}) VALUES (?, ?, 1)
       ON CONFLICT (job_id, worker) DO UPDATE SET ${column} = 1`,
      jobId,
      worker,
    );
  }

  #party(jobId: string, worker: string): Row | undefined {
    return this.#get(
      "SELECT assigned, verifier, revoked, disputed, overdue, assigned_block FROM job_parties WHERE job_id = ? AND worker = ?",
      jobId,
      worker,
    );
  }

  /**
   * The stake lock: each job neither paid nor refunded that `worker` is assigned to, or was
   * assigned to before a revocation (it can still be slashed for downtime there), locks the
   * bonded stake the worker had at that assignment; the lock is the largest of these, at most
   * the bonded stake. Stake beyond it (staked later) stays free to unstake.
   */
  #stakeLock(worker: string): StakeLock {
    const row = this.#worker(worker);
    const stake = LedgerStore.#bonded(row);
    const claims = this.#all(
      `SELECT p.job_id, p.assigned_stake FROM job_parties p JOIN jobs j ON j.job_id = p.job_id
       WHERE p.worker = ? AND (p.assigned = 1 OR (p.verifier = 1 AND p.assigned_stake IS NOT NULL))
         AND j.status NOT IN ('paid', 'refunded')
       ORDER BY p.job_id`,
      worker,
    );
    let backing = 0n;
    for (const claim of claims) {
      const at = claim["assigned_stake"];
      // A file from before stake locks has no snapshot: the whole stake backs the job.
      const amount = typeof at === "string" ? BigInt(at) : stake;
      if (amount > backing) backing = amount;
    }
    return {
      stake,
      unbonding: row.unbonding,
      locked: backing < stake ? backing : stake,
      openJobs: claims.map((claim) => text(claim, "job_id")),
    };
  }

  #setReputation(tx: Tx, worker: string, delta: number): void {
    const row = this.#worker(worker);
    const reputation = Math.min(MAX_REPUTATION, Math.max(0, row.reputation + delta));
    this.#setWorker(worker, { ...row, reputation });
    tx.emit({ name: "ReputationUpdated", worker, score: reputation });
  }

  static #bonded(row: WorkerRow): bigint {
    return row.staked - row.unbonding - row.slashed - row.withdrawn;
  }

  // -------------------------------------------------------------------------------------------
  // Contract methods

  submitJob(
    caller: string,
    job: {
      jobId: string;
      amount: bigint;
      minStake: bigint;
      modelHash: string;
      inputCommitment: string;
    } & JobTerms,
  ): TxReceipt {
    const {
      jobId,
      chainDecided,
      verifierCount,
      bidWindowMs,
      executionMs,
      verificationMs,
      amount,
      minStake,
      modelHash,
      inputCommitment,
      specHash,
    } = checkSubmission(job);
    return this.transact(caller, "submitJob", job, (tx) => {
      if (this.#get("SELECT 1 FROM jobs WHERE job_id = ?", jobId) !== undefined) {
        throw new ChainError(
          "duplicate_job",
          `Cannot submit job ${q(jobId)}: a job with this id already exists`,
        );
      }
      if (verifierCount > 0) {
        const eligible = this.#eligibleVerifiers([tx.caller]).length;
        if (eligible < verifierCount) {
          throw new ChainError(
            "not_enough_verifiers",
            `Cannot submit job ${
              q(jobId)
            }: it asks for ${verifierCount} verifiers but ${eligible} ` +
              `are bonded with at least ${this.#minVerifierBond} besides its client`,
          );
        }
      }
      this.#writeJob(
        jobId,
        {},
        `INSERT INTO jobs (job_id, client, escrow, min_stake, model_hash, input_commitment, status,
           verifier_count, bid_window_ms, execution_ms, verification_ms, bid_deadline,
           escrow_block_hash, chain_decided, spec_hash)
         VALUES (?, ?, ?, ?, ?, ?, 'submitted', ?, ?, ?, ?, ?, ?, ?, ?)`,
        jobId,
        tx.caller,
        amount.toString(),
        minStake.toString(),
        modelHash,
        inputCommitment,
        verifierCount,
        bidWindowMs,
        executionMs,
        verificationMs,
        tx.now + bidWindowMs,
        tx.blockHash,
        chainDecided ? 1 : 0,
        specHash ?? NO_SPEC_HASH,
      );
      this.#addTotal("escrowed", amount);
      this.#addTotal("locked", amount);
      tx.emit({
        name: "JobSubmitted",
        jobId,
        client: tx.caller,
        amount,
        modelHash,
        inputCommitment,
        minStake,
        verifierCount,
        bidWindowMs,
        executionMs,
        verificationMs,
        ...(specHash === undefined ? {} : { specHash }),
      });
    });
  }

  assignWorker(
    caller: string,
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers?: readonly NodeId[] },
  ): TxReceipt {
    const jobId = checkId("job id", assignment.jobId);
    const worker = checkId("worker", assignment.worker);
    const price = checkBigint("price", assignment.price);
    if (assignment.verifiers !== undefined && !Array.isArray(assignment.verifiers)) {
      throw new TypeError("Invalid verifiers: expected an array");
    }
    const named = (assignment.verifiers ?? []).map((v, i) => checkId(`verifiers[${i}]`, v));
    if (price < 0n) {
      throw new ChainError(
        "invalid_amount",
        `Cannot assign job ${q(jobId)}: price must not be negative, got ${price}`,
      );
    }
    return this.transact(caller, "assignWorker", assignment, (tx) => {
      const job = this.#job("assign", jobId);
      this.#requireClient("assign", job, tx.caller);
      if (job.status !== "submitted" && job.status !== "revoked") {
        throw new ChainError(
          "invalid_state",
          `Cannot assign job ${q(jobId)}: it is not open, it is ${job.status}` +
            (job.worker === null ? "" : ` (worker ${q(job.worker)})`),
        );
      }
      const stake = LedgerStore.#bonded(this.#worker(worker));
      if (stake < job.minStake) {
        throw new ChainError(
          "insufficient_stake",
          `Cannot assign job ${q(jobId)}: worker ${
            q(worker)
          } has stake ${stake} but the job needs ${job.minStake}`,
        );
      }
      if (price > job.escrow) {
        throw new ChainError(
          "insufficient_balance",
          `Cannot assign job ${q(jobId)}: price ${price} exceeds the escrow ${job.escrow}`,
        );
      }
      if (job.chainDecided && named.length > 0) {
        throw new ChainError(
          "not_authorized",
          `Cannot assign job ${q(jobId)}: the chain chooses its verifiers, ${
            q(tx.caller)
          } named ${named.length}`,
        );
      }
      const attempt = job.attempt + 1;
      const verifiers = !job.chainDecided ? named : job.verifierCount === 0 ? [] : chooseVerifiers(
        this.#eligibleVerifiers([job.client, worker]),
        job.verifierCount,
        `${job.escrowBlockHash}|${jobId}|${attempt}`,
      );
      if (verifiers.length < job.verifierCount) {
        throw new ChainError(
          "not_enough_verifiers",
          `Cannot assign job ${q(jobId)} to ${q(worker)}: it needs ${job.verifierCount} ` +
            `verifiers but ${verifiers.length} are bonded besides its client and this worker`,
        );
      }
      this.#writeJob(
        jobId,
        {
          status: "assigned",
          worker,
          price,
          attempt,
          executionDeadline: tx.now + job.executionMs,
          claim: null,
        },
        `UPDATE jobs SET status = 'assigned', worker = ?, price = ?, attempt = ?,
           execution_deadline = ?, claim = NULL WHERE job_id = ?`,
        worker,
        price.toString(),
        attempt,
        tx.now + job.executionMs,
        jobId,
      );
      // The stake this assignment relied on stays locked until the job settles; unbonding
      // requested after the first assignment stays slashable for this job until withdrawn.
      this.#run(
        `INSERT INTO job_parties (job_id, worker, assigned, assigned_stake, assigned_block)
         VALUES (?, ?, 1, ?, ?)
         ON CONFLICT (job_id, worker) DO UPDATE SET assigned = 1,
           assigned_stake = excluded.assigned_stake,
           assigned_block = COALESCE(job_parties.assigned_block, excluded.assigned_block)`,
        jobId,
        worker,
        stake.toString(),
        tx.blockNumber,
      );
      if (verifiers.length > 0) {
        this.#run(
          `INSERT INTO job_parties (job_id, worker, verifier) VALUES ${
            verifiers.map(() => "(?, ?, 1)").join(", ")
          } ON CONFLICT (job_id, worker) DO UPDATE SET verifier = 1`,
          ...verifiers.flatMap((verifier) => [jobId, verifier]),
        );
      }
      for (const verifier of verifiers) {
        if (!job.chainDecided) continue;
        this.#run(
          `UPDATE job_parties SET assigned_stake = ? WHERE job_id = ? AND worker = ?`,
          this.stakeOf(verifier).toString(),
          jobId,
          verifier,
        );
        this.#run(
          "INSERT INTO job_verifiers (job_id, attempt, verifier) VALUES (?, ?, ?)",
          jobId,
          attempt,
          verifier,
        );
        this.#run("UPDATE verifiers SET chosen = chosen + 1 WHERE account = ?", verifier);
      }
      tx.emit({ name: "WorkerAssigned", jobId, worker, price, verifiers, attempt });
    });
  }

  revokeAssignment(caller: string, revocation: { jobId: string; worker: NodeId }): TxReceipt {
    const jobId = checkId("job id", revocation.jobId);
    const worker = checkId("worker", revocation.worker);
    return this.transact(caller, "revokeAssignment", revocation, (tx) => {
      const job = this.#job("revoke the assignment of", jobId);
      if (job.status !== "assigned" || job.worker !== worker) {
        throw new ChainError(
          "invalid_state",
          `Cannot revoke the assignment of job ${q(jobId)}: worker ${
            q(worker)
          } is not assigned without a result, the job is ${job.status}`,
        );
      }
      // Before the execution deadline only the client may take the job back (nobody is slashed);
      // after it anyone may, and the worker is liable for downtime.
      const overdue = job.chainDecided && tx.now >= job.executionDeadline;
      if (!overdue) this.#requireClient("revoke the assignment of", job, tx.caller);
      this.#setJob(jobId, { status: "revoked", worker: null, price: null });
      this.#writeJob(
        jobId,
        { bidDeadline: tx.now + job.bidWindowMs },
        "UPDATE jobs SET bid_deadline = ? WHERE job_id = ?",
        tx.now + job.bidWindowMs,
        jobId,
      );
      this.#markParty(jobId, worker, "revoked");
      if (overdue) {
        this.#run(
          "UPDATE job_parties SET overdue = 1 WHERE job_id = ? AND worker = ?",
          jobId,
          worker,
        );
      }
      tx.emit({ name: "AssignmentRevoked", jobId, worker });
    });
  }

  submitResult(caller: string, result: { jobId: string; commitment: string }): TxReceipt {
    const jobId = checkId("job id", result.jobId);
    const commitment = checkHash("commitment", result.commitment);
    return this.transact(caller, "submitResult", result, (tx) => {
      const job = this.#job("submit a result for", jobId);
      if (job.worker !== tx.caller) {
        throw new ChainError(
          "not_authorized",
          `Cannot submit a result for job ${q(jobId)}: ${q(tx.caller)} is not its assigned worker`,
        );
      }
      if (job.status !== "assigned") {
        throw new ChainError(
          "invalid_state",
          `Cannot submit a result for job ${
            q(jobId)
          }: a result was already submitted, the job is ${job.status}`,
        );
      }
      if (job.chainDecided) this.#requireBefore("submit a result for", job, "execution", tx.now);
      this.#setJob(jobId, { status: "result", commitment });
      tx.emit({ name: "ResultSubmitted", jobId, worker: tx.caller, commitment });
      if (job.chainDecided) this.#openClaim(tx, job, "result");
    });
  }

  reportFailure(caller: string, failure: { jobId: string; reason: string }): TxReceipt {
    const jobId = checkId("job id", failure.jobId);
    const reason = failure.reason;
    if (typeof reason !== "string" || reason.length === 0 || reason.length > MAX_FAILURE_REASON) {
      throw new RangeError(
        `Invalid failure reason: expected 1 to ${MAX_FAILURE_REASON} characters`,
      );
    }
    return this.transact(caller, "reportFailure", failure, (tx) => {
      const job = this.#job("report a failure of", jobId);
      if (job.worker !== tx.caller) {
        throw new ChainError(
          "not_authorized",
          `Cannot report a failure of job ${q(jobId)}: ${q(tx.caller)} is not its assigned worker`,
        );
      }
      if (job.status !== "assigned" || !job.chainDecided) {
        throw new ChainError(
          "invalid_state",
          `Cannot report a failure of job ${q(jobId)}: the job is ${job.status}` +
            (job.chainDecided ? "" : ", under the legacy rules (submitted without terms)"),
        );
      }
      this.#requireBefore("report a failure of", job, "execution", tx.now);
      this.#setJob(jobId, { status: "result" });
      this.#writeJob(
        jobId,
        {},
        "UPDATE jobs SET failure_reason = ? WHERE job_id = ?",
        reason,
        jobId,
      );
      tx.emit({ name: "FailureReported", jobId, worker: tx.caller, reason });
      this.#openClaim(tx, job, "failure");
    });
  }

  /** A claim is on chain: verified at once for a job without verifiers, else counted. */
  #openClaim(tx: Tx, job: JobRow, claim: "result" | "failure"): void {
    this.#writeJob(
      job.jobId,
      { claim, verificationDeadline: tx.now + job.verificationMs },
      "UPDATE jobs SET claim = ?, verification_deadline = ? WHERE job_id = ?",
      claim,
      tx.now + job.verificationMs,
      job.jobId,
    );
    if (job.verifierCount === 0) {
      this.#setJob(job.jobId, { status: "verified" });
      tx.emit({ name: "JobVerified", jobId: job.jobId });
    }
  }

  #requireBefore(
    action: string,
    job: JobRow,
    which: "execution" | "verification",
    now: number,
  ): void {
    const deadline = which === "execution" ? job.executionDeadline : job.verificationDeadline;
    if (now >= deadline) {
      throw new ChainError(
        "deadline_passed",
        `Cannot ${action} job ${q(job.jobId)}: its ${which} deadline ${deadline} has passed, ` +
          `it is ${now}`,
      );
    }
  }

  /** Bonded verifiers with at least the minimum bond, not in `exclude`, with their weights. */
  #eligibleVerifiers(exclude: readonly string[]): { account: string; weight: bigint }[] {
    const rows = this.#all("SELECT account, chosen, answered FROM verifiers ORDER BY account");
    const candidates: { account: string; weight: bigint }[] = [];
    for (const row of rows) {
      const account = text(row, "account");
      if (exclude.includes(account)) continue;
      const worker = this.#worker(account);
      const stake = LedgerStore.#bonded(worker);
      if (stake < this.#minVerifierBond) continue;
      const weight = verifierWeight(stake, worker.reputation, {
        chosen: integer(row, "chosen"),
        answered: integer(row, "answered"),
      });
      if (weight > 0n) candidates.push({ account, weight });
    }
    return candidates;
  }

  registerKey(caller: string, key: { publicKey: string }): TxReceipt {
    if (!isPublicKey(key.publicKey)) {
      throw new TypeError(
        `Invalid public key: expected an Ed25519 key as 64 lowercase hex digits`,
      );
    }
    return this.transact(caller, "registerKey", key, (tx) => {
      const known = this.#get("SELECT public_key FROM account_keys WHERE account = ?", tx.caller);
      if (known !== undefined) {
        throw new ChainError(
          "invalid_state",
          `Cannot register a key for ${q(tx.caller)}: it has one already (${
            text(known, "public_key")
          })`,
        );
      }
      this.#run(
        "INSERT INTO account_keys (account, public_key) VALUES (?, ?)",
        tx.caller,
        key.publicKey,
      );
      tx.emit({ name: "KeyRegistered", account: tx.caller, publicKey: key.publicKey });
    });
  }

  publicKeyOf(account: string): string | null {
    const row = this.#get("SELECT public_key FROM account_keys WHERE account = ?", account);
    return row === undefined ? null : text(row, "public_key");
  }

  submitAttestations(
    caller: string,
    batch: { attestations: readonly SignedAttestation[] },
  ): TxReceipt {
    const list = batch.attestations;
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_VERIFIERS) {
      throw new RangeError(`Invalid attestations: expected 1 to ${MAX_VERIFIERS} of them`);
    }
    const attestations = list.map((a, i) => checkAttestation(`attestations[${i}]`, a));
    return this.transact(caller, "submitAttestations", batch, (tx) => {
      for (const a of attestations) this.#recordAttestation(tx, a);
    });
  }

  #recordAttestation(tx: Tx, a: SignedAttestation): void {
    const what = `Cannot count the attestation of ${q(a.verifier)} on job ${q(a.jobId)}`;
    const job = this.#job("attest", a.jobId);
    if (a.attempt !== job.attempt) {
      throw new ChainError(
        "wrong_attempt",
        `${what}: it is for attempt ${a.attempt}, the job is on attempt ${job.attempt}`,
      );
    }
    const chosen = this.#get(
      "SELECT verdict FROM job_verifiers WHERE job_id = ? AND attempt = ? AND verifier = ?",
      a.jobId,
      a.attempt,
      a.verifier,
    );
    if (chosen === undefined) {
      throw new ChainError("not_chosen", `${what}: the chain did not choose it for this attempt`);
    }
    const key = this.publicKeyOf(a.verifier);
    if (key === null) {
      throw new ChainError("no_key", `${what}: the verifier has registered no key`);
    }
    if (!verifyAttestation(a, key)) {
      throw new ChainError("bad_signature", `${what}: the signature does not verify`);
    }
    if (typeof chosen["verdict"] === "string") {
      throw new ChainError("duplicate_attestation", `${what}: it attested already`);
    }
    if (job.status !== "result" || job.claim === null) {
      throw new ChainError(
        "invalid_state",
        `${what}: the job has no claim waiting for verification, it is ${job.status}`,
      );
    }
    const subject = job.claim === "failure" ? FAILURE_SUBJECT : job.commitment;
    if (a.subject !== subject) {
      throw new ChainError(
        "wrong_subject",
        `${what}: it judges ${q(a.subject)}, the claim on chain is ${q(subject ?? "")}`,
      );
    }
    this.#requireBefore("attest", job, "verification", tx.now);
    this.#run(
      "UPDATE job_verifiers SET verdict = ? WHERE job_id = ? AND attempt = ? AND verifier = ?",
      a.verdict,
      a.jobId,
      a.attempt,
      a.verifier,
    );
    this.#run("UPDATE verifiers SET answered = answered + 1 WHERE account = ?", a.verifier);
    tx.emit({
      name: "AttestationRecorded",
      jobId: a.jobId,
      verifier: a.verifier,
      attempt: a.attempt,
      verdict: a.verdict,
    });
    const votes = this.#votes(a.jobId, a.attempt);
    const { accept, dispute } = quorumThresholds(job.verifierCount);
    const valid = votes.filter((v) => v.verdict === "valid").length;
    const invalid = votes.filter((v) => v.verdict === "invalid").length;
    let decided: Verdict | null = null;
    if (valid >= accept) {
      this.#setJob(a.jobId, { status: "verified" });
      tx.emit({ name: "JobVerified", jobId: a.jobId });
      decided = "valid";
    } else if (invalid >= dispute) {
      this.#setJob(a.jobId, { status: "disputed" });
      if (job.worker !== null) this.#markParty(a.jobId, job.worker, "disputed");
      tx.emit({ name: "JobDisputed", jobId: a.jobId });
      decided = "invalid";
    }
    if (decided === null) return;
    // Verifiers who attested against the decided outcome are slashed like invalid compute.
    for (const vote of votes) {
      if (vote.verdict !== decided) {
        this.#slashStake(tx, a.jobId, vote.verifier, "invalid_compute", false);
      }
    }
  }

  #votes(jobId: string, attempt: number): { verifier: string; verdict: Verdict }[] {
    return this.#all(
      `SELECT verifier, verdict FROM job_verifiers
       WHERE job_id = ? AND attempt = ? AND verdict IS NOT NULL ORDER BY verifier`,
      jobId,
      attempt,
    ).map((row) => ({ verifier: text(row, "verifier"), verdict: text(row, "verdict") as Verdict }));
  }

  reportDoubleSigning(
    caller: string,
    evidence: { first: SignedAttestation; second: SignedAttestation },
  ): TxReceipt {
    const first = checkAttestation("first", evidence.first);
    const second = checkAttestation("second", evidence.second);
    return this.transact(caller, "reportDoubleSigning", evidence, (tx) => {
      const what = `Cannot take the evidence against ${q(first.verifier)} on job ${q(first.jobId)}`;
      if (
        first.verifier !== second.verifier || first.jobId !== second.jobId ||
        first.attempt !== second.attempt
      ) {
        throw new ChainError(
          "no_evidence",
          `${what}: the statements are not by one key for one attempt of one job`,
        );
      }
      if (first.subject === second.subject && first.verdict === second.verdict) {
        throw new ChainError("no_evidence", `${what}: the statements do not conflict`);
      }
      this.#job("take evidence on", first.jobId);
      const chosen = this.#get(
        "SELECT 1 FROM job_verifiers WHERE job_id = ? AND attempt = ? AND verifier = ?",
        first.jobId,
        first.attempt,
        first.verifier,
      );
      if (chosen === undefined) {
        throw new ChainError("not_chosen", `${what}: it was not chosen for that attempt`);
      }
      const key = this.publicKeyOf(first.verifier);
      if (key === null) throw new ChainError("no_key", `${what}: it has registered no key`);
      if (!verifyAttestation(first, key) || !verifyAttestation(second, key)) {
        throw new ChainError("bad_signature", `${what}: a signature does not verify`);
      }
      this.#slashStake(tx, first.jobId, first.verifier, "double_signing", false);
    });
  }

  recordVerification(caller: string, outcome: { jobId: string; accepted: boolean }): TxReceipt {
    const jobId = checkId("job id", outcome.jobId);
    if (typeof outcome.accepted !== "boolean") {
      throw new TypeError(`Invalid accepted: expected a boolean, got ${typeof outcome.accepted}`);
    }
    return this.transact(caller, "recordVerification", outcome, (tx) => {
      const job = this.#job("record the verification of", jobId);
      if (job.chainDecided) {
        throw new ChainError(
          "not_authorized",
          `Cannot record the verification of job ${
            q(jobId)
          }: the chain counts its verifiers' attestations, nobody's word decides it`,
        );
      }
      this.#requireClient("record the verification of", job, tx.caller);
      if (job.status !== "result" || job.worker === null) {
        throw new ChainError(
          "invalid_state",
          `Cannot record the verification of job ${
            q(jobId)
          }: it has no unverified result, it is ${job.status}`,
        );
      }
      if (outcome.accepted) {
        this.#setJob(jobId, { status: "verified" });
        tx.emit({ name: "JobVerified", jobId });
      } else {
        this.#setJob(jobId, { status: "disputed" });
        this.#markParty(jobId, job.worker, "disputed");
        tx.emit({ name: "JobDisputed", jobId });
      }
    });
  }

  releasePayment(caller: string, release: { jobId: string }): TxReceipt {
    const jobId = checkId("job id", release.jobId);
    return this.transact(caller, "releasePayment", release, (tx) => {
      // Anyone may release a chain-decided job: nobody's word is needed.
      const job = this.#job("release payment for", jobId);
      if (!job.chainDecided && tx.caller !== job.client && tx.caller !== job.worker) {
        throw new ChainError(
          "not_authorized",
          `Cannot release payment for job ${q(jobId)}: ${
            q(tx.caller)
          } is neither its client nor its worker`,
        );
      }
      this.#requireNotSettled("release payment for", job);
      if (
        job.status !== "verified" || (job.chainDecided && job.claim !== "result") ||
        job.worker === null ||
        job.price === null
      ) {
        throw new ChainError(
          "invalid_state",
          job.chainDecided
            ? `Cannot release payment for job ${q(jobId)}: it has no verified result, it is ${
              job.claim === "failure" ? "a verified failure" : job.status
            }`
            : `Cannot release payment for job ${q(jobId)}: it is not verified, it is ${job.status}`,
        );
      }
      const fee = job.price * BigInt(this.#feeBps) / 10_000n;
      const rewarded = this.#payVerifiers(job, job.price, "valid");
      const amount = job.price - fee - rewarded;
      const change = job.escrow - job.price;
      this.#setJob(jobId, { status: "paid" });
      this.#addTotal("locked", -job.escrow);
      this.#addTotal("paid", amount + rewarded);
      this.#addTotal("fees", fee);
      this.#addTotal("refunded", change);
      this.#credit(job.worker, amount);
      this.#credit(this.#treasury, fee);
      this.#credit(job.client, change);
      tx.emit({ name: "PaymentReleased", jobId, worker: job.worker, amount, fee, change });
      this.#setReputation(tx, job.worker, REPUTATION_REWARD);
    });
  }

  /**
   * Pays the verifiers of the job's current attempt whose verdict was `agreed` an equal share of
   * `verifierRewardBps` of `base`, rounded down; returns the total paid.
   */
  #payVerifiers(job: JobRow, base: bigint, agreed: Verdict): bigint {
    // Only the chain records verdicts (job_verifiers), for the jobs it decides.
    if (!job.chainDecided) return 0n;
    const paid = this.#votes(job.jobId, job.attempt).filter((v) => v.verdict === agreed);
    if (paid.length === 0) return 0n;
    const each = base * BigInt(this.#verifierRewardBps) / 10_000n / BigInt(paid.length);
    for (const vote of paid) this.#credit(vote.verifier, each);
    return each * BigInt(paid.length);
  }

  /** Why `caller` may not refund `job` for `reason` at `now`, or null if it may. */
  #refundRefusal(
    job: JobRow,
    caller: string,
    reason: RefundReason,
    now: number,
  ): ChainError | null {
    const what = `Cannot refund job ${q(job.jobId)} as ${reason}`;
    const isClient = caller === job.client;
    if (!job.chainDecided) {
      if (!isClient) {
        return new ChainError(
          "not_authorized",
          `Cannot refund job ${q(job.jobId)}: ${q(caller)} is not its client ${q(job.client)}`,
        );
      }
      return reason === "disputed" && job.status !== "disputed"
        ? new ChainError("invalid_state", `${what}: it was not disputed, it is ${job.status}`)
        : null;
    }
    const open = job.status === "submitted" || job.status === "revoked";
    switch (reason) {
      case "cancelled":
        if (!isClient) {
          return new ChainError("not_authorized", `${what}: ${q(caller)} is not its client`);
        }
        return open ? null : new ChainError("invalid_state", `${what}: it is ${job.status}`);
      case "expired":
        if (!open) return new ChainError("invalid_state", `${what}: it is ${job.status}`);
        if (isClient || now >= job.bidDeadline) return null;
        return new ChainError(
          "deadline_not_passed",
          `${what}: its bid deadline ${job.bidDeadline} has not passed, it is ${now}`,
        );
      case "disputed":
        return job.status === "disputed"
          ? null
          : new ChainError("invalid_state", `${what}: it was not disputed, it is ${job.status}`);
      case "failed": {
        if (open) {
          if (isClient || now >= job.bidDeadline) return null;
          return new ChainError(
            "deadline_not_passed",
            `${what}: its bid deadline ${job.bidDeadline} has not passed, it is ${now}`,
          );
        }
        if (job.status === "verified" && job.claim === "failure") return null;
        const deadline = job.status === "assigned"
          ? job.executionDeadline
          : job.status === "result"
          ? job.verificationDeadline
          : null;
        if (deadline === null) {
          return new ChainError("invalid_state", `${what}: it is ${job.status}`);
        }
        if (now >= deadline) return null;
        return new ChainError(
          "deadline_not_passed",
          `${what}: its ${
            job.status === "assigned" ? "execution" : "verification"
          } deadline ${deadline} has not passed, it is ${now}`,
        );
      }
    }
  }

  refund(caller: string, refund: { jobId: string; reason: RefundReason }): TxReceipt {
    const jobId = checkId("job id", refund.jobId);
    const reason = refund.reason;
    if (typeof reason !== "string" || !REFUND_REASONS.has(reason)) {
      throw new TypeError(`Invalid refund reason: ${JSON.stringify(reason)}`);
    }
    return this.transact(caller, "refund", refund, (tx) => {
      const job = this.#job("refund", jobId);
      this.#requireNotSettled("refund", job);
      const refusal = this.#refundRefusal(job, tx.caller, reason, tx.now);
      if (refusal !== null) throw refusal;
      if (job.chainDecided && job.status === "assigned" && job.worker !== null) {
        // The worker let its execution deadline pass: liable for downtime.
        this.#run(
          "UPDATE job_parties SET overdue = 1 WHERE job_id = ? AND worker = ?",
          jobId,
          job.worker,
        );
      }
      // A confirmed failure: the verifiers who confirmed it are paid from the escrow.
      const rewarded = job.status === "verified" && job.claim === "failure" && job.price !== null
        ? this.#payVerifiers(job, job.price, "valid")
        : 0n;
      const amount = job.escrow - rewarded;
      this.#setJob(jobId, { status: "refunded" });
      this.#addTotal("locked", -job.escrow);
      this.#addTotal("paid", rewarded);
      this.#addTotal("refunded", amount);
      this.#credit(job.client, amount);
      tx.emit({ name: "EscrowRefunded", jobId, client: job.client, amount, reason });
    });
  }

  slash(caller: string, slash: { jobId: string; worker: NodeId; reason: SlashReason }): TxReceipt {
    const jobId = checkId("job id", slash.jobId);
    const worker = checkId("worker", slash.worker);
    const reason = slash.reason;
    const bps = Object.hasOwn(SLASH_BPS, reason) ? SLASH_BPS[reason] : undefined;
    if (bps === undefined) throw new TypeError(`Invalid slash reason: ${JSON.stringify(reason)}`);
    return this.transact(caller, "slash", slash, (tx) => {
      // Anyone may ask; the chain slashes only for what it established itself.
      const job = this.#job("slash for", jobId);
      const what = `Cannot slash worker ${q(worker)} for ${reason} on job ${q(jobId)}`;
      const party = this.#party(jobId, worker);
      if (!job.chainDecided) {
        // The legacy rules: the client's word, for jobs submitted without terms.
        if (job.client !== tx.caller) {
          throw new ChainError(
            "not_authorized",
            `${what}: ${q(tx.caller)} is not the job's client ${q(job.client)}`,
          );
        }
        if (reason === "invalid_compute" && party?.["disputed"] !== 1) {
          throw new ChainError("invalid_state", `${what}: no result of this worker was disputed`);
        }
        if (reason === "downtime" && party?.["revoked"] !== 1) {
          throw new ChainError(
            "invalid_state",
            `${what}: this worker's assignment was not revoked`,
          );
        }
        this.#slashStake(tx, jobId, worker, reason, true);
        return;
      }
      if (reason === "double_signing" || reason === "coordinated_attack") {
        throw new ChainError(
          "no_evidence",
          reason === "double_signing"
            ? `${what}: double signing is proven with two signed statements (reportDoubleSigning)`
            : `${what}: the chain cannot establish a coordinated attack`,
        );
      }
      if (reason === "invalid_compute" && party?.["disputed"] !== 1) {
        throw new ChainError("invalid_state", `${what}: no result of this worker was disputed`);
      }
      if (reason === "downtime" && party?.["overdue"] !== 1) {
        throw new ChainError(
          "invalid_state",
          `${what}: this worker did not let the job's execution deadline pass`,
        );
      }
      this.#slashStake(tx, jobId, worker, reason, true);
    });
  }

  /** Takes the matrix share of what `worker` has liable for the job; once per reason. */
  #slashStake(
    tx: Tx,
    jobId: string,
    worker: string,
    reason: SlashReason,
    refuseRepeat: boolean,
  ): void {
    const what = `Cannot slash worker ${q(worker)} for ${reason} on job ${q(jobId)}`;
    const bps = SLASH_BPS[reason];
    {
      const party = this.#party(jobId, worker);
      if (party === undefined) {
        throw new ChainError(
          "invalid_state",
          `${what}: the worker was neither assigned to the job nor one of its verifiers`,
        );
      }
      if (
        this.#get(
          "SELECT 1 FROM slashes WHERE job_id = ? AND worker = ? AND reason = ?",
          jobId,
          worker,
          reason,
        ) !== undefined
      ) {
        if (!refuseRepeat) return;
        throw new ChainError("invalid_state", `${what}: already slashed for this`);
      }
      const row = this.#worker(worker);
      // Stake the worker asked to unbond after it was assigned this job is still bonded until
      // withdrawn, and still answers for the job; earlier requests do not.
      const requests = party["assigned"] === 1
        ? this.#all(
          `SELECT id, amount FROM unbonding WHERE worker = ? AND requested_block > ?
           ORDER BY requested_block DESC, id DESC`,
          worker,
          typeof party["assigned_block"] === "number" ? party["assigned_block"] : 0,
        )
        : [];
      const liable = requests.reduce(
        (sum, r) => sum + BigInt(text(r, "amount")),
        LedgerStore.#bonded(row),
      );
      const amount = liable * BigInt(bps) / 10_000n;
      // Taken from those requests first, newest first, so that the stake still bonded keeps
      // backing the worker's other jobs; the rest from the bonded stake.
      let fromUnbonding = 0n;
      for (const request of requests) {
        const requested = BigInt(text(request, "amount"));
        const take = amount - fromUnbonding < requested ? amount - fromUnbonding : requested;
        if (take === 0n) break;
        fromUnbonding += take;
        if (take === requested) {
          this.#run("DELETE FROM unbonding WHERE id = ?", integer(request, "id"));
        } else {
          this.#run(
            "UPDATE unbonding SET amount = ? WHERE id = ?",
            (requested - take).toString(),
            integer(request, "id"),
          );
        }
      }
      this.#run(
        "INSERT INTO slashes (job_id, worker, reason, amount) VALUES (?, ?, ?, ?)",
        jobId,
        worker,
        reason,
        amount.toString(),
      );
      this.#setWorker(worker, {
        ...row,
        unbonding: row.unbonding - fromUnbonding,
        slashed: row.slashed + amount,
      });
      this.#addTotal("unbonding", -fromUnbonding);
      this.#addTotal("slashed", amount);
      this.#credit(this.#treasury, amount);
      tx.emit({ name: "WorkerSlashed", jobId, worker, amount, reason });
      this.#setReputation(tx, worker, -REPUTATION_PENALTY);
    }
  }

  stake(caller: string, stake: { amount: bigint; role?: "worker" | "verifier" }): TxReceipt {
    const amount = checkBigint("amount", stake.amount);
    const role = stake.role ?? "worker";
    if (role !== "worker" && role !== "verifier") {
      throw new TypeError(`Invalid role: expected "worker" or "verifier", got ${q(String(role))}`);
    }
    if (amount <= 0n) {
      throw new ChainError(
        "invalid_amount",
        `Cannot stake for ${q(caller)}: amount must be positive, got ${amount}`,
      );
    }
    return this.transact(caller, "stake", stake, (tx) => {
      const row = this.#worker(tx.caller);
      if (row.staked + amount >= U256) {
        throw new ChainError(
          "invalid_amount",
          `Cannot stake for ${q(tx.caller)}: the total would not fit in u256`,
        );
      }
      const next = { ...row, staked: row.staked + amount };
      this.#setWorker(tx.caller, next);
      this.#addTotal("staked", amount);
      tx.emit({
        name: "WorkerStaked",
        worker: tx.caller,
        amount,
        total: LedgerStore.#bonded(next),
      });
      if (
        role === "verifier" &&
        this.#get("SELECT 1 FROM verifiers WHERE account = ?", tx.caller) === undefined
      ) {
        this.#run("INSERT INTO verifiers (account) VALUES (?)", tx.caller);
        tx.emit({ name: "VerifierRegistered", verifier: tx.caller });
      }
    });
  }

  requestUnstake(caller: string, request: { amount: bigint }): TxReceipt {
    const amount = checkBigint("amount", request.amount);
    if (amount <= 0n) {
      throw new ChainError(
        "invalid_amount",
        `Cannot unstake for ${q(caller)}: amount must be positive, got ${amount}`,
      );
    }
    return this.transact(caller, "requestUnstake", request, (tx) => {
      const row = this.#worker(tx.caller);
      const bonded = LedgerStore.#bonded(row);
      if (amount > bonded) {
        throw new ChainError(
          "insufficient_stake",
          `Cannot unstake ${amount} for ${q(tx.caller)}: the bonded stake is ${bonded}`,
        );
      }
      const lock = this.#stakeLock(tx.caller);
      if (amount > bonded - lock.locked) {
        const jobs = lock.openJobs;
        const named = jobs.slice(0, MAX_JOBS_NAMED).map(q).join(", ") +
          (jobs.length > MAX_JOBS_NAMED ? ` and ${jobs.length - MAX_JOBS_NAMED} more` : "");
        throw new ChainError(
          "stake_locked",
          `Cannot unstake ${amount} for ${
            q(tx.caller)
          }: ${lock.locked} of the bonded stake ${bonded} is locked by ${jobs.length} open job${
            jobs.length === 1 ? "" : "s"
          } (${named}), at most ${bonded - lock.locked} can be unstaked until they are settled`,
        );
      }
      const unlockAt = Math.trunc(this.#now()) + this.#unbondingMs;
      this.#setWorker(tx.caller, { ...row, unbonding: row.unbonding + amount });
      this.#run(
        "INSERT INTO unbonding (worker, amount, unlock_at, requested_block) VALUES (?, ?, ?, ?)",
        tx.caller,
        amount.toString(),
        unlockAt,
        tx.blockNumber,
      );
      this.#addTotal("unbonding", amount);
      tx.emit({ name: "UnstakeRequested", worker: tx.caller, amount, unlockAt });
    });
  }

  withdraw(caller: string): TxReceipt {
    return this.transact(caller, "withdraw", {}, (tx) => {
      const now = Math.trunc(this.#now());
      const requests = this.#all(
        "SELECT id, amount, unlock_at FROM unbonding WHERE worker = ? ORDER BY unlock_at, id",
        tx.caller,
      );
      if (requests.length === 0) {
        throw new ChainError(
          "invalid_state",
          `Cannot withdraw stake for ${q(tx.caller)}: nothing is unbonding`,
        );
      }
      const matured = requests.filter((r) => integer(r, "unlock_at") <= now);
      if (matured.length === 0) {
        const first = requests[0] as Row;
        throw new ChainError(
          "still_unbonding",
          `Cannot withdraw stake for ${q(tx.caller)}: ${text(first, "amount")} is unbonding until ${
            integer(first, "unlock_at")
          }, it is now ${now}`,
        );
      }
      let amount = 0n;
      for (const request of matured) {
        amount += BigInt(text(request, "amount"));
        this.#run("DELETE FROM unbonding WHERE id = ?", integer(request, "id"));
      }
      const row = this.#worker(tx.caller);
      this.#setWorker(tx.caller, {
        ...row,
        unbonding: row.unbonding - amount,
        withdrawn: row.withdrawn + amount,
      });
      this.#addTotal("unbonding", -amount);
      this.#addTotal("withdrawn", amount);
      this.#credit(tx.caller, amount);
      tx.emit({ name: "StakeWithdrawn", worker: tx.caller, amount });
    });
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  stakeOf(worker: string): bigint {
    return LedgerStore.#bonded(this.#worker(checkId("worker", worker)));
  }

  stakeLockOf(worker: string): StakeLock {
    return this.#stakeLock(checkId("worker", worker));
  }

  escrowOf(jobId: string): EscrowRecord | undefined {
    const row = this.#get(
      "SELECT client, status, spec_hash FROM jobs WHERE job_id = ?",
      checkId("job id", jobId),
    );
    if (row === undefined) return undefined;
    return escrowRecordOf(jobId, {
      client: text(row, "client"),
      specHash: text(row, "spec_hash"),
      // The ledger's own statuses: only "paid" and "refunded" (ended) matter here.
      status: text(row, "status") as EscrowStatus,
    });
  }

  reputationOf(worker: string): number {
    return this.#worker(checkId("worker", worker)).reputation;
  }

  balanceOf(account: string): bigint {
    this.#flushPending();
    const row = this.#get(
      "SELECT amount FROM balances WHERE account = ?",
      checkId("account", account),
    );
    return row === undefined ? 0n : BigInt(text(row, "amount"));
  }

  totals(): LedgerTotals {
    const sums: Record<TotalKey, bigint> = {
      escrowed: 0n,
      paid: 0n,
      fees: 0n,
      refunded: 0n,
      locked: 0n,
      staked: 0n,
      unbonding: 0n,
      slashed: 0n,
      withdrawn: 0n,
    };
    this.#flushPending();
    for (const row of this.#all("SELECT key, amount FROM totals")) {
      sums[text(row, "key") as TotalKey] = BigInt(text(row, "amount"));
    }
    return {
      escrowed: sums.escrowed,
      paid: sums.paid,
      fees: sums.fees,
      refunded: sums.refunded,
      locked: sums.locked,
      staked: sums.staked,
      slashed: sums.slashed,
      withdrawn: sums.withdrawn,
      // Includes stake that is unbonding; see the module doc.
      bonded: sums.staked - sums.slashed - sums.withdrawn,
    };
  }

  head(): { blockNumber: number; blockHash: string } {
    const group = this.#group;
    return group === undefined ? this.#readHead() : { ...group.head };
  }

  #readHead(): { blockNumber: number; blockHash: string } {
    const row = this.#get("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1");
    return row === undefined
      ? { blockNumber: 0, blockHash: GENESIS_HASH }
      : { blockNumber: integer(row, "number"), blockHash: text(row, "hash") };
  }

  eventsSince(from: ChainCursor, limit: number): { events: ChainEvent[]; next: ChainCursor } {
    const events: ChainEvent[] = [];
    // Blocks this store committed come from memory, as long as they follow one another; then
    // the database, where an event of a block kept in memory is still taken from memory, and
    // the rest (older, or another process's) is decoded.
    // Blocks are numbered from 1: a cursor before block 1 reads from its start.
    let blockNumber = from.blockNumber < 1 ? 1 : from.blockNumber;
    let eventIndex = from.blockNumber < 1 ? 0 : from.eventIndex;
    for (let kept = this.#recent.get(blockNumber); kept !== undefined && events.length < limit;) {
      for (let i = eventIndex; i < kept.length && events.length < limit; i++) {
        events.push(kept[i]!);
      }
      if (events.length === limit) break;
      blockNumber++;
      eventIndex = 0;
      kept = this.#recent.get(blockNumber);
    }
    // A private database holds no block after this store's last commit (or, in a group, its
    // last transaction's): nothing to read there.
    const lastBlock = this.#group?.head.blockNumber ?? this.#lastCommit?.blockNumber ?? 0;
    const past = this.#private && blockNumber > lastBlock;
    if (events.length < limit && !past) {
      // A group's transactions are read from the database (their blocks are kept in memory only
      // once they commit): their rows are written first.
      this.#flushPending();
      const rows = this.#all(
        `SELECT block_number, event_index, from_address, keys, data, block_hash, tx_hash FROM events
         WHERE (block_number, event_index) >= (?, ?) ORDER BY block_number, event_index LIMIT ?`,
        blockNumber,
        eventIndex,
        limit - events.length,
      );
      for (const row of rows) {
        const kept = this.#recent.get(integer(row, "block_number"))?.[integer(row, "event_index")];
        if (kept !== undefined) {
          events.push(kept);
          continue;
        }
        events.push(decodeStored(rawEventOf(row)));
      }
    }
    const last = events.at(-1);
    const next = last === undefined
      ? from
      : { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 };
    return { events, next };
  }
}
