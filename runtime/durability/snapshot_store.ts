/**
 * Persisted actor snapshots, kept in the journal's database so that a checkpoint (the
 * snapshots of every actor changed since the last one, and the sequence number they are
 * consistent with) commits in one transaction with the journal. A node restarted on its data
 * directory restores every actor from the last checkpoint and replays the journal entries after
 * it (see `runtime/recovery.ts`).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { decodeJson, encodeJson } from "./_codec.ts";
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

/** Snapshots in a journal database (`DatabaseSync` from `node:sqlite`). */
export class SnapshotStore {
  readonly #db: DatabaseSync;
  readonly #upsert: StatementSync;
  readonly #setSeq: StatementSync;
  readonly #retire: StatementSync;
  readonly #drop: StatementSync;

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
    this.#retire = db.prepare(
      "INSERT OR REPLACE INTO retired (actor, seq, summary) VALUES (?, ?, ?)",
    );
    this.#drop = db.prepare("DELETE FROM snapshots WHERE actor = ?");
    this.#upsert = db.prepare(
      "INSERT OR REPLACE INTO snapshots (actor, seq, state, done, snapshot) VALUES (?, ?, ?, ?, ?)",
    );
    this.#setSeq = db.prepare("INSERT OR REPLACE INTO checkpoint (id, seq) VALUES (1, ?)");
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
      this.#upsert.run(actor.id, seq, actor.state, actor.done ? 1 : 0, encodeJson(actor.persisted));
      n++;
    }
    for (const [actor, summary] of retired) {
      this.#drop.run(actor);
      this.#retire.run(actor, seq, encodeJson(summary));
    }
    this.#setSeq.run(seq);
    return n;
  }

  /** The last checkpoint, with at most `retiredLimit` of the latest retired jobs. */
  load(retiredLimit = 100_000): Checkpoint {
    const row = this.#db.prepare("SELECT seq FROM checkpoint WHERE id = 1").get() as
      | { seq: number }
      | undefined;
    const actors = (this.#db.prepare(
      "SELECT actor, seq, state, done, snapshot FROM snapshots ORDER BY actor",
    ).all() as { actor: string; seq: number; state: string; done: number; snapshot: string }[])
      .map((r) => ({
        actor: r.actor,
        seq: r.seq,
        state: r.state,
        done: r.done === 1,
        snapshot: decodeJson(r.snapshot),
      }));
    const retired = (this.#db.prepare(
      "SELECT summary FROM (SELECT n, summary FROM retired ORDER BY n DESC LIMIT ?) ORDER BY n",
    ).all(retiredLimit) as { summary: string }[]).map((r) => decodeJson(r.summary));
    return { seq: row?.seq ?? 0, actors, retired };
  }

  /** Forgets every snapshot (after the journal was truncated below the checkpoint). */
  clear(): void {
    this.#db.exec("DELETE FROM snapshots; DELETE FROM checkpoint; DELETE FROM retired;");
  }
}
