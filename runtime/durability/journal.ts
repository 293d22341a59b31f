/**
 * The durable journal: every envelope a node's inbox stamps is appended to an embedded SQLite
 * database (`node:sqlite`, WAL mode) in its own transaction before it is delivered, so a
 * process killed at any moment (kill -9) loses no entry whose delivery had begun. After each
 * delivery the node hands the journal the outcome (status, actor, state value, context hash),
 * which is written with the next append; every `checkpointEvery` deliveries the snapshots of
 * the actors that changed are written in one transaction (see `snapshot_store.ts`), so a
 * restarted node restores them and replays only the tail.
 *
 * Durability: `synchronous: "normal"` (the default) loses nothing on a process crash and at
 * most the last transactions on a power loss; `"full"` fsyncs every append and loses nothing on
 * a power loss, at a cost measured by `runtime/replay_bench.ts`.
 *
 * The rows are hash-chained (format version 2): each row's `crc` is {@link chainHash} over
 * the previous row's `crc` and every input field of the row (seq, at, source, target, event,
 * the effect it closes); its `ocrc`, written with its outcome, covers the row's `crc` and every
 * outcome field (status, actor, state, hash, reason, effects). Open effects and stored
 * snapshots carry checksums too. On open every row is checked: a checksum that does not match
 * on a committed row is corruption, a {@link JournalError} (code `"corrupt"`) naming the
 * sequence number, and nothing is deleted. SQLite commits a transaction whole or not at all: a
 * write cut by a crash is a partial frame at the end of the write-ahead log, which SQLite's own
 * recovery ignores (it reads frames only while a whole frame with a valid checksum remains);
 * that partial frame, and nothing else, is the torn tail the journal drops and reports in
 * {@link SqliteJournal.repairs} and through `onRepair`. A version 1 journal (rows checksummed
 * one by one, not chained) is checked by its version 1 checksums, then migrated in one
 * transaction: the chain is computed from its first row on and the version set to 2.
 *
 * ```ts
 * import { SqliteJournal } from "./journal.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const journal = SqliteJournal.open(`${dir}/journal.sqlite`);
 * journal.append({ seq: journal.nextSeq(), at: 0, source: "operator", target: "job:j1", event: { type: "job.cancel" } });
 * if (journal.lastSeq !== 1) throw new Error("not appended");
 * journal.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import config from "../../deno.json" with { type: "json" };
import type { RestartIntensity } from "../../actors/supervisor.ts";
import { BID_MACHINE_VERSION } from "../../machines/bid_machine.ts";
import { JOB_MACHINE_VERSION } from "../../machines/job_machine.ts";
import { PEER_MACHINE_VERSION, type PeerConfig } from "../../machines/peer_machine.ts";
import type { JobPolicy } from "../../machines/policies.ts";
import type { NodeId, Role } from "../../machines/types.ts";
import {
  decodeJson,
  encodeJson,
  type EnvelopeOutcome,
  outcomeOf,
  type RecordedEnvelope,
} from "./_codec.ts";
import {
  checkRows,
  corruptAt,
  effectChecksum,
  JOURNAL_FORMAT,
  JOURNAL_VERSION,
  JournalError,
  migrateV1,
  outcomeChecksum,
  repairWal,
  type Row,
  rowChecksum,
} from "./_journal_integrity.ts";

export { effectChecksum, JournalError, type JournalErrorCode } from "./_journal_integrity.ts";
import {
  type DeliveredActor,
  type EffectRecord,
  type Envelope,
  isResumable,
  type JournalSink,
  logger,
  type NodeOptions,
  nodePolicy,
  type Source,
  SOURCES,
  type WorkerProfile,
} from "../kernel/mod.ts";
import { type Checkpoint, type SnapshotError, SnapshotStore } from "./snapshot_store.ts";

export type { EnvelopeOutcome, RecordedEnvelope } from "./_codec.ts";
export { outcomeOf, stateHash } from "./_codec.ts";

/** The engine's version (from deno.json). */
export const ENGINE_VERSION: string = `${config.name}@${config.version}`;

/** The version of each machine's logic; recordings carry them. */
export const MACHINE_VERSIONS: Readonly<Record<"job" | "bid" | "peer", number>> = {
  job: JOB_MACHINE_VERSION,
  bid: BID_MACHINE_VERSION,
  peer: PEER_MACHINE_VERSION,
};

/** What replay needs to rebuild a node's tree: its identity and the tree's configuration. */
export interface NodeDescriptor {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  readonly policy: JobPolicy;
  readonly peer?: PeerConfig;
  readonly intensity?: RestartIntensity;
  /** How the node bids (counterfactual replay re-simulates it). */
  readonly worker?: WorkerProfile;
  /** Retired jobs the tree remembers (absent: the default). */
  readonly archiveSize?: number;
  /**
   * The chain account the node signs with, when it is not its id (a libp2p peer id with a
   * ledger account, a Starknet address): jobs it submits record it as their owner's account, so
   * replay needs it to rebuild the same context. Absent in recordings made before: the id.
   */
  readonly account?: NodeId;
}

/** The descriptor of a node created with `options`. */
export function describeNode(options: NodeOptions): NodeDescriptor {
  return {
    id: options.id,
    roles: [...options.roles],
    policy: nodePolicy(options),
    ...(options.peer ? { peer: options.peer } : {}),
    ...(options.intensity ? { intensity: options.intensity } : {}),
    ...(options.worker ? { worker: options.worker } : {}),
    ...(options.archiveSize !== undefined ? { archiveSize: options.archiveSize } : {}),
    ...(options.chain.account !== options.id ? { account: options.chain.account } : {}),
  };
}

/** How hard each append is pushed to disk. */
export type JournalSynchronous = "normal" | "full";

/** Options of {@link SqliteJournal.open}. */
export interface SqliteJournalOptions {
  /**
   * `"normal"`: WAL with `synchronous=NORMAL`, nothing lost on a process crash, the last
   * transactions possibly lost on a power loss; `"full"`: every append fsynced, nothing lost
   * on a power loss.
   * @default "normal"
   */
  readonly synchronous?: JournalSynchronous;
  /** The node this journal belongs to: stored on first open, checked on every later one. */
  readonly node?: NodeDescriptor;
  /** Deliveries between snapshot checkpoints; 0 writes them only on close. @default 256 */
  readonly checkpointEvery?: number;
  /** Told each repair made on open. @default a warning in the log */
  readonly onRepair?: (message: string) => void;
}

export class SqliteJournal implements JournalSink {
  /** The database file. */
  readonly path: string;
  /** Repairs made on open, as messages (empty when the journal was clean). */
  readonly repairs: readonly string[];
  /** The sequence number of the last checkpoint when the journal was opened. */
  readonly openedAtCheckpoint: number;
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  readonly #outcome: StatementSync;
  readonly #snapshots: SnapshotStore;
  readonly #checkpointEvery: number;
  readonly #pending: (readonly [number, EnvelopeOutcome])[] = [];
  /** Effects emitted since the last write that recovery would send again, and closures. */
  readonly #pendingEffects: EffectRecord[] = [];
  readonly #pendingClosed: string[] = [];
  readonly #insertEffect: StatementSync;
  readonly #closeEffect: StatementSync;
  readonly #dirty = new Map<string, DeliveredActor>();
  /** The checksums of rows appended whose outcome is not written yet. */
  readonly #crcs = new Map<number, string>();
  /** The checksum of the last row (the next row's chain link); "" before the first. */
  #lastCrc: string;
  /** Actors retired since the last checkpoint, with their archive summaries. */
  readonly #retired = new Map<string, unknown>();
  #next: number;
  #lastDelivered = 0;
  #sinceCheckpoint = 0;
  #closed = false;

  private constructor(
    path: string,
    db: DatabaseSync,
    next: number,
    lastCrc: string,
    repairs: string[],
    checkpointEvery: number,
  ) {
    this.path = path;
    this.#db = db;
    this.#next = next;
    this.#lastCrc = lastCrc;
    this.repairs = repairs;
    this.#checkpointEvery = checkpointEvery;
    this.#insert = db.prepare(
      "INSERT INTO entries (seq, at, source, target, event, crc, effect) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#outcome = db.prepare(
      "UPDATE entries SET status = ?, actor = ?, state = ?, hash = ?, reason = ?, effects = ?, ocrc = ? WHERE seq = ?",
    );
    this.#insertEffect = db.prepare(
      "INSERT OR IGNORE INTO effects (id, seq, actor, effect, crc) VALUES (?, ?, ?, ?, ?)",
    );
    this.#closeEffect = db.prepare("UPDATE effects SET closed = 1 WHERE id = ?");
    this.#snapshots = new SnapshotStore(db);
    try {
      this.openedAtCheckpoint = this.#snapshots.load().seq;
    } catch (error) {
      throw SqliteJournal.#corruptSnapshot(path, error);
    }
  }

  static #corruptSnapshot(path: string, error: unknown): unknown {
    if ((error as Error).name !== "SnapshotError") return error;
    return new JournalError(
      path,
      "corrupt",
      `Journal "${path}" is corrupt: ${(error as Error).message}`,
      (error as SnapshotError).seq,
      { cause: error },
    );
  }

  /** Opens (creating if needed) the journal at `path`, dropping a torn write-ahead log tail. */
  static open(path: string, options: SqliteJournalOptions = {}): SqliteJournal {
    if (typeof path !== "string" || path.length === 0 || path === ":memory:") {
      throw new TypeError(`Invalid journal path: ${JSON.stringify(path)}`);
    }
    const every = options.checkpointEvery ?? 256;
    if (!Number.isInteger(every) || every < 0) {
      throw new RangeError(`Invalid checkpointEvery ${every}: must be a non-negative integer`);
    }
    const report = options.onRepair ??
      ((message: string) => logger("journal").warn("{message}", { message }));
    const repairs: string[] = [];
    const wal = repairWal(path);
    if (wal !== undefined) repairs.push(wal);
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
      db.exec("PRAGMA journal_mode = WAL");
      db.exec(`PRAGMA synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS entries (
          seq INTEGER PRIMARY KEY,
          at INTEGER NOT NULL,
          source TEXT NOT NULL,
          target TEXT NOT NULL,
          event TEXT NOT NULL,
          crc TEXT NOT NULL,
          status TEXT,
          actor TEXT,
          state TEXT,
          hash TEXT,
          reason TEXT
        );
        CREATE TABLE IF NOT EXISTS effects (
          id TEXT PRIMARY KEY,
          seq INTEGER NOT NULL,
          actor TEXT NOT NULL,
          effect TEXT NOT NULL,
          closed INTEGER NOT NULL DEFAULT 0
        );
      `);
      // Journals made before effects were journaled or rows chained: add their columns.
      const columnsOf = (table: string) =>
        new Set(
          (db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) =>
            c.name
          ),
        );
      const columns = columnsOf("entries");
      if (!columns.has("effect")) db.exec("ALTER TABLE entries ADD COLUMN effect TEXT");
      if (!columns.has("effects")) db.exec("ALTER TABLE entries ADD COLUMN effects TEXT");
      if (!columns.has("ocrc")) db.exec("ALTER TABLE entries ADD COLUMN ocrc TEXT");
      if (!columnsOf("effects").has("crc")) db.exec("ALTER TABLE effects ADD COLUMN crc TEXT");
    } catch (error) {
      throw new JournalError(
        path,
        "open_failed",
        `Cannot open journal "${path}": ${(error as Error).message}`,
        null,
        { cause: error },
      );
    }
    try {
      const version = SqliteJournal.#checkMeta(path, db, options.node);
      if (version === 1) migrateV1(path, db, repairs);
      const { next, lastCrc } = checkRows(path, db);
      for (const message of repairs) report(message);
      return new SqliteJournal(path, db, next, lastCrc, repairs, every);
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** Checks the format and node; returns the journal's version (1 or 2). */
  static #checkMeta(path: string, db: DatabaseSync, node: NodeDescriptor | undefined): number {
    const get = db.prepare("SELECT value FROM meta WHERE key = ?");
    const set = db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
    const format = (get.get("format") as { value: string } | undefined)?.value;
    if (format === undefined) {
      const count = (db.prepare("SELECT count(*) AS n FROM entries").get() as { n: number }).n;
      if (count > 0) {
        throw new JournalError(
          path,
          "foreign",
          `Not a CIRO journal: "${path}" has entries but no format`,
        );
      }
      set.run("format", JOURNAL_FORMAT);
      set.run("version", String(JOURNAL_VERSION));
      set.run("engine", ENGINE_VERSION);
      set.run("machines", JSON.stringify(MACHINE_VERSIONS));
      set.run("created", new Date().toISOString());
    } else if (format !== JOURNAL_FORMAT) {
      throw new JournalError(
        path,
        "foreign",
        `Not a CIRO journal: "${path}" has format "${format}"`,
      );
    }
    const version = Number((get.get("version") as { value: string } | undefined)?.value);
    if (version !== 1 && version !== JOURNAL_VERSION) {
      throw new JournalError(
        path,
        "version",
        `Unsupported journal version ${version} in "${path}": this engine reads versions 1 and ${JOURNAL_VERSION}`,
      );
    }
    if (node !== undefined) {
      const stored = (get.get("node") as { value: string } | undefined)?.value;
      if (stored === undefined) set.run("node", encodeJson(node));
      else {
        const id = (decodeJson(stored) as NodeDescriptor).id;
        if (id !== node.id) {
          throw new JournalError(
            path,
            "foreign",
            `Cannot open journal "${path}" for node "${node.id}": it belongs to node "${id}"`,
          );
        }
      }
    }
    return version;
  }

  /** The sequence number the next appended envelope gets. */
  nextSeq(): number {
    return this.#next;
  }

  /** The last appended sequence number (0 for none). */
  get lastSeq(): number {
    return this.#next - 1;
  }

  /** The node this journal belongs to, if it was opened with one. */
  get node(): NodeDescriptor | undefined {
    const row = this.#db.prepare("SELECT value FROM meta WHERE key = 'node'").get() as
      | { value: string }
      | undefined;
    return row === undefined ? undefined : decodeJson(row.value) as NodeDescriptor;
  }

  /** The journal's metadata: format, version, engine, machines, created. */
  get meta(): Readonly<Record<string, string>> {
    const rows = this.#db.prepare("SELECT key, value FROM meta").all() as {
      key: string;
      value: string;
    }[];
    return Object.fromEntries(rows.map((r) => [r.key, r.value]));
  }

  /** Appends `envelope` durably (its own transaction, with the outcomes still pending). */
  append(envelope: Envelope): void {
    this.#checkOpen();
    if (envelope.seq !== this.#next) {
      throw new RangeError(
        `Cannot append seq ${envelope.seq} to journal "${this.path}": expected seq ${this.#next}`,
      );
    }
    const event = encodeJson(envelope.event);
    const effect = envelope.effect ?? null;
    const crc = rowChecksum(this.#lastCrc, {
      seq: envelope.seq,
      at: envelope.at,
      source: envelope.source,
      target: envelope.target,
      event,
      effect,
    });
    const insert = () =>
      this.#insert.run(
        envelope.seq,
        envelope.at,
        envelope.source,
        envelope.target,
        event,
        crc,
        effect,
      );
    if (!this.#hasPending() && effect === null) {
      insert();
    } else {
      // The outcome event of an effect closes it in the same transaction that journals it.
      this.#db.exec("BEGIN");
      try {
        this.#writeOutcomes();
        insert();
        if (effect !== null) this.#closeEffect.run(effect);
        this.#db.exec("COMMIT");
      } catch (error) {
        this.#db.exec("ROLLBACK");
        throw error;
      }
    }
    this.#next = envelope.seq + 1;
    this.#lastCrc = crc;
    // Kept until the outcome is written; an entry never delivered falls back to a SELECT.
    if (this.#crcs.size >= 4_096) this.#crcs.clear();
    this.#crcs.set(envelope.seq, crc);
  }

  /** Records a delivery's outcome; checkpoints snapshots every `checkpointEvery` deliveries. */
  delivered(
    envelope: Envelope,
    outcome: { readonly status: "accepted" | "rejected" | "crashed"; readonly reason?: string },
    actor: DeliveredActor | undefined,
    effects?: readonly EffectRecord[],
  ): void {
    if (this.#closed) return;
    this.#pending.push([envelope.seq, outcomeOf(outcome, actor, effects)]);
    for (const record of effects ?? []) {
      if (isResumable(record.effect)) this.#pendingEffects.push(record);
    }
    this.#lastDelivered = envelope.seq;
    if (actor !== undefined && outcome.status !== "rejected") {
      this.#dirty.set(actor.id, actor);
      // Alive again after its retirement (a worker outbid, auctioned again): not retired.
      this.#retired.delete(actor.id);
    }
    if (this.#checkpointEvery > 0 && ++this.#sinceCheckpoint >= this.#checkpointEvery) {
      this.checkpoint();
    }
  }

  /** An effect ended without an outcome event (a publish, a transaction that went through). */
  effectClosed(id: string): void {
    if (this.#closed) return;
    this.#pendingClosed.push(id);
  }

  #hasPending(): boolean {
    return this.#pending.length > 0 || this.#pendingEffects.length > 0 ||
      this.#pendingClosed.length > 0;
  }

  #crcOf(seq: number): string {
    const known = this.#crcs.get(seq);
    if (known !== undefined) {
      this.#crcs.delete(seq);
      return known;
    }
    const row = this.#db.prepare("SELECT crc FROM entries WHERE seq = ?").get(seq) as
      | { crc: string }
      | undefined;
    if (row === undefined) {
      throw new RangeError(`Cannot record the outcome of seq ${seq}: it is not in the journal`);
    }
    return row.crc;
  }

  #writeOutcomes(): void {
    for (const [seq, o] of this.#pending.splice(0)) {
      const fields = {
        status: o.status,
        actor: o.actor,
        state: o.state,
        hash: o.hash,
        reason: o.reason ?? null,
        effects: o.effects ?? null,
      };
      this.#outcome.run(
        fields.status,
        fields.actor,
        fields.state,
        fields.hash,
        fields.reason,
        fields.effects,
        outcomeChecksum(this.#crcOf(seq), fields),
        seq,
      );
    }
    for (const r of this.#pendingEffects.splice(0)) {
      const seq = Number(r.id.split(".")[0]);
      const effect = encodeJson(r.effect);
      this.#insertEffect.run(
        r.id,
        seq,
        r.actor,
        effect,
        effectChecksum(r.id, seq, r.actor, effect),
      );
    }
    for (const id of this.#pendingClosed.splice(0)) this.#closeEffect.run(id);
  }

  /**
   * The effects still open, in the order they were emitted: recorded with the delivery that
   * emitted them, neither closed by an outcome event nor ended. Recovery sends them again.
   */
  openEffects(): EffectRecord[] {
    this.#checkOpen();
    if (this.#hasPending()) this.checkpoint();
    const rows = this.#db.prepare(
      "SELECT id, seq, actor, effect, crc FROM effects WHERE closed = 0 ORDER BY seq, rowid",
    ).all() as { id: string; seq: number; actor: string; effect: string; crc: string | null }[];
    for (const r of rows) {
      if (effectChecksum(r.id, r.seq, r.actor, r.effect) !== r.crc) {
        throw corruptAt(
          this.path,
          r.seq,
          `the checksum of its open effect "${r.id}" does not match (edited after it was committed)`,
        );
      }
    }
    return rows.map((r) => ({
      id: r.id,
      actor: r.actor,
      effect: decodeJson(r.effect) as EffectRecord["effect"],
    }));
  }

  /** Writes pending outcomes and the snapshots of changed actors, as of the last delivery. */
  checkpoint(): void {
    this.#checkOpen();
    this.#sinceCheckpoint = 0;
    this.#db.exec("BEGIN");
    try {
      this.#writeOutcomes();
      // Only a session that delivered (or recovered) knows the actors' state as of a seq.
      if (this.#lastDelivered > 0) {
        this.#snapshots.save(this.#lastDelivered, this.#dirty.values(), this.#retired);
      }
      // Closed effects are done with; a retired actor's open ones will never be sent again.
      this.#db.exec("DELETE FROM effects WHERE closed = 1");
      if (this.#retired.size > 0) {
        const drop = this.#db.prepare("DELETE FROM effects WHERE actor = ?");
        for (const actor of this.#retired.keys()) drop.run(actor);
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
    this.#dirty.clear();
    this.#retired.clear();
  }

  /** Records that a finished actor was retired: its snapshot gives way to `summary`. */
  retired(actorId: string, summary: unknown): void {
    if (this.#closed) return;
    this.#dirty.delete(actorId);
    this.#retired.set(actorId, summary);
  }

  /**
   * Called once a node's tree holds every journaled entry again (after recovery): records the
   * effects that replaying the entries whose outcome was lost emitted (`effects`: the crash cut
   * them off before they were written), and checkpoints `actors` as of the last entry.
   */
  recovered(actors: Iterable<DeliveredActor>, effects: readonly EffectRecord[] = []): void {
    this.#checkOpen();
    for (const record of effects) {
      if (isResumable(record.effect)) this.#pendingEffects.push(record);
    }
    for (const actor of actors) this.#dirty.set(actor.id, actor);
    this.#lastDelivered = this.lastSeq;
    if (this.#lastDelivered > 0) this.checkpoint();
  }

  /** The last checkpoint's snapshots. */
  loadCheckpoint(): Checkpoint {
    this.#checkOpen();
    try {
      return this.#snapshots.load();
    } catch (error) {
      throw SqliteJournal.#corruptSnapshot(this.path, error);
    }
  }

  /**
   * The last entry from `source`, if any; with `before`, the last one made at least `before` ms
   * before the journal's last entry.
   */
  lastOf(source: Source, options: { before?: number } = {}): RecordedEnvelope | undefined {
    this.#checkOpen();
    const last = options.before === undefined
      ? undefined
      : (this.#db.prepare("SELECT MAX(at) AS at FROM entries").get() as { at: number | null }).at;
    const row =
      (last === undefined
        ? this.#db.prepare("SELECT seq FROM entries WHERE source = ? ORDER BY seq DESC LIMIT 1")
          .get(source)
        : this.#db.prepare(
          "SELECT seq FROM entries WHERE source = ? AND at <= ? ORDER BY seq DESC LIMIT 1",
        ).get(source, (last ?? 0) - options.before!)) as { seq: number } | undefined;
    if (row === undefined) return undefined;
    for (const entry of this.entries({ from: row.seq })) return entry;
    return undefined;
  }

  /**
   * The entries up to seq `to` whose event is a decline or a result (`job.declined`,
   * `job.result.received`), or the chain's assignment and news a verifier's record awaiting the
   * spec keeps (`chain.worker.assigned`, `chain.result.submitted`, `chain.execution.failed`,
   * `chain.assignment.revoked`), made at most `ttlMs` before the journal's last entry, oldest
   * first. A checkpoint keeps actors, not the records of declined jobs: recovery puts these back
   * before it replays the tail.
   */
  *declinesUpTo(to: number, ttlMs: number): Generator<RecordedEnvelope> {
    this.#checkOpen();
    const last = this.#db.prepare("SELECT MAX(at) AS at FROM entries").get() as {
      at: number | null;
    };
    const rows = this.#db.prepare(
      `SELECT seq FROM entries WHERE seq <= ? AND at >= ?
         AND json_extract(event, '$.type') IN ('job.declined', 'job.result.received',
           'chain.worker.assigned', 'chain.result.submitted', 'chain.execution.failed',
           'chain.assignment.revoked')
       ORDER BY seq`,
    ).all(to, (last.at ?? 0) - ttlMs) as { seq: number }[];
    for (const { seq } of rows) {
      for (const entry of this.entries({ from: seq })) {
        yield entry;
        break;
      }
    }
  }

  /** Entries with their outcomes, in order, from seq `from`. */
  *entries(options: { from?: number } = {}): Generator<RecordedEnvelope> {
    this.#checkOpen();
    if (this.#hasPending()) this.checkpoint();
    const rows = this.#db.prepare(
      "SELECT seq, at, source, target, event, crc, status, actor, state, hash, reason, effect, effects FROM entries WHERE seq >= ? ORDER BY seq",
    ).iterate(options.from ?? 1) as Iterable<Row>;
    for (const row of rows) {
      if (!(SOURCES as readonly string[]).includes(row.source)) {
        throw corruptAt(this.path, row.seq, `unknown source "${row.source}"`);
      }
      yield {
        seq: row.seq,
        at: row.at,
        source: row.source as Source,
        target: row.target,
        event: decodeJson(row.event) as Envelope["event"],
        ...(row.effect === null ? {} : { effect: row.effect }),
        outcome: row.status === null ? null : {
          status: row.status as EnvelopeOutcome["status"],
          actor: row.actor,
          state: row.state,
          hash: row.hash,
          ...(row.reason === null ? {} : { reason: row.reason }),
          ...(row.effects === null ? {} : { effects: row.effects }),
        },
      };
    }
  }

  /** Writes what is pending, checkpoints, and closes the database. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.checkpoint();
    this.#closed = true;
    this.#db.close();
  }

  /** Closes without writing pending outcomes or snapshots (what a crash leaves; tests). */
  abandon(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #checkOpen(): void {
    if (this.#closed) {
      throw new JournalError(this.path, "closed", `Journal "${this.path}" is closed`);
    }
  }
}
