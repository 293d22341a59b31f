/**
 * Persisted actor snapshots, kept in the journal's database so that a checkpoint (the
 * snapshots of every actor changed since the last one, and the sequence number they are
 * consistent with) commits in one transaction with the journal. A node restarted on its data
 * directory restores every actor from the last checkpoint and replays the journal entries after
 * it (see `runtime/recovery.ts`).
 *
 * Every stored snapshot, retired summary and the checkpoint's sequence number carry a checksum
 * ({@link chainHash} over every field of the row); {@link SnapshotStore.load} checks them all and
 * throws a {@link SnapshotError} naming the row that does not match, so an edited snapshot is
 * never served.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { chainHash, decodeJson, encodeJson } from "./_codec.ts";
import type { DeliveredActor } from "../kernel/mod.ts";

/** One actor's persisted snapshot, as stored. */
export interface StoredSnapshot {
  readonly actor: string;
  /** Sequence number of the checkpoint that wrote it. */
  readonly seq: number;
  readonly state: string;
  readonly done: boolean;
  /** The XState persisted snapshot (`bigint`s restored). */
  readonly snapshot: unknown;
}

/** The last checkpoint: every actor's snapshot, consistent as of `seq`. */
export interface Checkpoint {
  /** Every entry up to this sequence number is reflected in `actors`; 0 for none. */
  readonly seq: number;
  readonly actors: readonly StoredSnapshot[];
  /** Summaries of retired jobs (`bigint`s restored), oldest first, at most `retiredLimit`. */
  readonly retired: readonly unknown[];
}

/**
 * A stored snapshot, retired summary or checkpoint whose checksum does not match; match on
 * `error.name === "SnapshotError"`.
 */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
  readonly code = "corrupt";
  /** The actor whose row is at fault (null for the checkpoint row). */
  readonly actor: string | null;
  /** The sequence number of the checkpoint that wrote the row. */
  readonly seq: number;
  constructor(message: string, actor: string | null, seq: number) {
    super(message);
    this.actor = actor;
    this.seq = seq;
  }
}

const snapshotChecksum = (
  actor: string,
  seq: number,
  state: string,
  done: number,
  snapshot: string,
) => chainHash("snapshot", [actor, seq, state, done, snapshot]);
const retiredChecksum = (actor: string, seq: number, summary: string) =>
  chainHash("retired", [actor, seq, summary]);
const checkpointChecksum = (seq: number) => chainHash("checkpoint", [seq]);

/** Snapshots in a journal database (`DatabaseSync` from `node:sqlite`). */
export class SnapshotStore {
  readonly #db: DatabaseSync;
  readonly #upsert: StatementSync;
  readonly #setSeq: StatementSync;
  readonly #retire: StatementSync;
  readonly #drop: StatementSync;
  readonly #unretire: StatementSync;

  /** Creates the tables if needed; the caller owns the database and its transactions. */
  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(`
      CREATE TABLE IF NOT EXISTS snapshots (
        actor TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        done INTEGER NOT NULL,
        snapshot TEXT NOT NULL
      );
      CREATE TABLE IF NOT EXISTS checkpoint (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS retired (
        n INTEGER PRIMARY KEY AUTOINCREMENT,
        actor TEXT NOT NULL UNIQUE,
        seq INTEGER NOT NULL,
        summary TEXT NOT NULL
      );
    `);
    // Stores made before snapshots were checksummed: the journal's migration fills these in.
    for (const table of ["snapshots", "checkpoint", "retired"]) {
      const columns = (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[])
        .map((c) => c.name);
      if (!columns.includes("crc")) db.exec(`ALTER TABLE ${table} ADD COLUMN crc TEXT`);
    }
    this.#retire = db.prepare(
      "INSERT OR REPLACE INTO retired (actor, seq, summary, crc) VALUES (?, ?, ?, ?)",
    );
    this.#drop = db.prepare("DELETE FROM snapshots WHERE actor = ?");
    this.#unretire = db.prepare("DELETE FROM retired WHERE actor = ?");
    this.#upsert = db.prepare(
      "INSERT OR REPLACE INTO snapshots (actor, seq, state, done, snapshot, crc) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#setSeq = db.prepare(
      "INSERT OR REPLACE INTO checkpoint (id, seq, crc) VALUES (1, ?, ?)",
    );
  }

  /**
   * Checksums every row as it stands (inside the caller's transaction): the migration of a
   * store written before rows were checksummed.
   */
  static checksumAll(db: DatabaseSync): void {
    new SnapshotStore(db);
    const snap = db.prepare("UPDATE snapshots SET crc = ? WHERE actor = ?");
    for (
      const r of db.prepare("SELECT actor, seq, state, done, snapshot FROM snapshots").all() as {
        actor: string;
        seq: number;
        state: string;
        done: number;
        snapshot: string;
      }[]
    ) snap.run(snapshotChecksum(r.actor, r.seq, r.state, r.done, r.snapshot), r.actor);
    const ret = db.prepare("UPDATE retired SET crc = ? WHERE actor = ?");
    for (
      const r of db.prepare("SELECT actor, seq, summary FROM retired").all() as {
        actor: string;
        seq: number;
        summary: string;
      }[]
    ) ret.run(retiredChecksum(r.actor, r.seq, r.summary), r.actor);
    const cp = db.prepare("SELECT seq FROM checkpoint WHERE id = 1").get() as
      | { seq: number }
      | undefined;
    if (cp !== undefined) {
      db.prepare("UPDATE checkpoint SET crc = ? WHERE id = 1").run(checkpointChecksum(cp.seq));
    }
  }

  /**
   * Writes `actors`' persisted snapshots as of `seq`, and replaces the snapshots of `retired`
   * actors with their summaries (inside the caller's transaction).
   */
  save(
    seq: number,
    actors: Iterable<DeliveredActor>,
    retired: ReadonlyMap<string, unknown> = new Map(),
  ): number {
    let n = 0;
    for (const actor of actors) {
      const done = actor.done ? 1 : 0;
      const snapshot = encodeJson(actor.persisted);
      this.#upsert.run(
        actor.id,
        seq,
        actor.state,
        done,
        snapshot,
        snapshotChecksum(actor.id, seq, actor.state, done, snapshot),
      );
      // An actor retired at an earlier checkpoint and alive again (a worker outbid on a job,
      // then drawn for its next auction) is no longer retired.
      this.#unretire.run(actor.id);
      n++;
    }
    for (const [actor, summary] of retired) {
      this.#drop.run(actor);
      const text = encodeJson(summary);
      this.#retire.run(actor, seq, text, retiredChecksum(actor, seq, text));
    }
    this.#setSeq.run(seq, checkpointChecksum(seq));
    return n;
  }

  /**
   * The last checkpoint, with at most `retiredLimit` of the latest retired jobs. Throws a
   * {@link SnapshotError} for a row whose checksum does not match.
   */
  load(retiredLimit = 100_000): Checkpoint {
    const row = this.#db.prepare("SELECT seq, crc FROM checkpoint WHERE id = 1").get() as
      | { seq: number; crc: string | null }
      | undefined;
    if (row !== undefined && checkpointChecksum(row.seq) !== row.crc) {
      throw new SnapshotError(
        `the checksum of the checkpoint (seq ${row.seq}) does not match (edited after it was committed)`,
        null,
        row.seq,
      );
    }
    const actors = (this.#db.prepare(
      "SELECT actor, seq, state, done, snapshot, crc FROM snapshots ORDER BY actor",
    ).all() as {
      actor: string;
      seq: number;
      state: string;
      done: number;
      snapshot: string;
      crc: string | null;
    }[])
      .map((r) => {
        if (snapshotChecksum(r.actor, r.seq, r.state, r.done, r.snapshot) !== r.crc) {
          throw new SnapshotError(
            `the checksum of the snapshot of "${r.actor}" (written at seq ${r.seq}) does not match (edited after it was committed)`,
            r.actor,
            r.seq,
          );
        }
        return {
          actor: r.actor,
          seq: r.seq,
          state: r.state,
          done: r.done === 1,
          snapshot: decodeJson(r.snapshot),
        };
      });
    const retired = (this.#db.prepare(
      "SELECT actor, seq, summary, crc FROM (SELECT n, actor, seq, summary, crc FROM retired ORDER BY n DESC LIMIT ?) ORDER BY n",
    ).all(retiredLimit) as { actor: string; seq: number; summary: string; crc: string | null }[])
      .map((r) => {
        if (retiredChecksum(r.actor, r.seq, r.summary) !== r.crc) {
          throw new SnapshotError(
            `the checksum of the retired summary of "${r.actor}" (written at seq ${r.seq}) does not match (edited after it was committed)`,
            r.actor,
            r.seq,
          );
        }
        return decodeJson(r.summary);
      });
    return { seq: row?.seq ?? 0, actors, retired };
  }

  /** Forgets every snapshot (after the journal was truncated below the checkpoint). */
  clear(): void {
    this.#db.exec("DELETE FROM snapshots; DELETE FROM checkpoint; DELETE FROM retired;");
  }
}
