/**
 * The local ledger's tables (SQLite), the columns added to files made by earlier releases, and the
 * names of its totals and job states. Private to `chain/local_ledger.ts`.
 *
 * @module
 */

/** The reputation an account starts with. */
export const INITIAL_REPUTATION = 500;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS blocks (
  number INTEGER PRIMARY KEY,
  hash TEXT NOT NULL,
  parent_hash TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  sender TEXT NOT NULL,
  method TEXT NOT NULL,
  timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
  block_number INTEGER NOT NULL,
  event_index INTEGER NOT NULL,
  from_address TEXT NOT NULL,
  keys TEXT NOT NULL,
  data TEXT NOT NULL,
  block_hash TEXT NOT NULL,
  tx_hash TEXT NOT NULL,
  PRIMARY KEY (block_number, event_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY,
  client TEXT NOT NULL,
  escrow TEXT NOT NULL,
  min_stake TEXT NOT NULL,
  model_hash TEXT NOT NULL,
  input_commitment TEXT NOT NULL,
  status TEXT NOT NULL,
  worker TEXT,
  price TEXT,
  commitment TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_parties (
  job_id TEXT NOT NULL,
  worker TEXT NOT NULL,
  assigned INTEGER NOT NULL DEFAULT 0,
  verifier INTEGER NOT NULL DEFAULT 0,
  revoked INTEGER NOT NULL DEFAULT 0,
  disputed INTEGER NOT NULL DEFAULT 0,
  assigned_stake TEXT,
  assigned_block INTEGER,
  PRIMARY KEY (job_id, worker)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS slashes (
  job_id TEXT NOT NULL,
  worker TEXT NOT NULL,
  reason TEXT NOT NULL,
  amount TEXT NOT NULL,
  PRIMARY KEY (job_id, worker, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS workers (
  worker TEXT PRIMARY KEY,
  staked TEXT NOT NULL DEFAULT '0',
  unbonding TEXT NOT NULL DEFAULT '0',
  slashed TEXT NOT NULL DEFAULT '0',
  withdrawn TEXT NOT NULL DEFAULT '0',
  reputation INTEGER NOT NULL DEFAULT ${INITIAL_REPUTATION}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unbonding (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  worker TEXT NOT NULL,
  amount TEXT NOT NULL,
  unlock_at INTEGER NOT NULL,
  requested_block INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS unbonding_worker ON unbonding (worker, unlock_at);
CREATE TABLE IF NOT EXISTS account_keys (
  account TEXT PRIMARY KEY,
  public_key TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS verifiers (
  account TEXT PRIMARY KEY,
  chosen INTEGER NOT NULL DEFAULT 0,
  answered INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_verifiers (
  job_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  verifier TEXT NOT NULL,
  verdict TEXT,
  PRIMARY KEY (job_id, attempt, verifier)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (
  key TEXT PRIMARY KEY,
  amount TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS balances (
  account TEXT PRIMARY KEY,
  amount TEXT NOT NULL
) WITHOUT ROWID;
`;

/**
 * Columns added after the first release, for files created before them. Defaults: a request
 * without `requested_block` predates every assignment (it is never slashed for a job); an
 * assignment without `assigned_stake` locks the worker's whole bonded stake until the job settles.
 */
export const ADDED_COLUMNS: readonly { table: string; column: string; definition: string }[] = [
  { table: "job_parties", column: "assigned_stake", definition: "TEXT" },
  { table: "job_parties", column: "assigned_block", definition: "INTEGER" },
  { table: "unbonding", column: "requested_block", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "job_parties", column: "overdue", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "verifier_count", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "bid_window_ms", definition: "INTEGER NOT NULL DEFAULT 60000" },
  { table: "jobs", column: "execution_ms", definition: "INTEGER NOT NULL DEFAULT 600000" },
  { table: "jobs", column: "verification_ms", definition: "INTEGER NOT NULL DEFAULT 600000" },
  { table: "jobs", column: "bid_deadline", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "execution_deadline", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "verification_deadline", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "attempt", definition: "INTEGER NOT NULL DEFAULT 0" },
  { table: "jobs", column: "claim", definition: "TEXT" },
  { table: "jobs", column: "failure_reason", definition: "TEXT" },
  { table: "jobs", column: "escrow_block_hash", definition: "TEXT NOT NULL DEFAULT ''" },
  { table: "jobs", column: "chain_decided", definition: "INTEGER NOT NULL DEFAULT 0" },
  // The zero hash: none (a job of an earlier format, or submitted without one).
  { table: "jobs", column: "spec_hash", definition: `TEXT NOT NULL DEFAULT '${"0".repeat(64)}'` },
];

/**
 * The format of a ledger file (SQLite's `user_version`): 0 (files of releases before it was
 * kept) and 1 store `JobSubmitted` without the escrow's terms and `WorkerAssigned` without the
 * attempt; 2 stores `JobSubmitted` without the spec hash. Opening such a file completes its stored
 * events (`chain/events.ts`, `completeLegacyEvent`) from its jobs table and the order of the
 * assignments, once; the spec hash of an earlier format's job is the zero hash (none: a verifier
 * falls back to checking the spec field by field). A file of a later format is refused
 * (`unsupported_format`).
 */
export const LEDGER_FORMAT = 3;

export type TotalKey =
  | "escrowed"
  | "paid"
  | "fees"
  | "refunded"
  | "locked"
  | "staked"
  | "unbonding"
  | "slashed"
  | "withdrawn";

export type JobStatus =
  | "submitted"
  | "assigned"
  | "revoked"
  | "result"
  | "verified"
  | "disputed"
  | "paid"
  | "refunded";
