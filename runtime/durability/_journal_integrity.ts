/**
 * Private to the durability package: what makes a journal tamper-evident. The row checksums
 * (each covers the previous row's, so the rows form a hash chain), the outcome and effect
 * checksums, the check of every committed row on open (a mismatch is corruption, named with its
 * sequence number; nothing is deleted), the migration of version 1 journals, and the repair of
 * the one torn write SQLite can leave: a partial frame at the end of the write-ahead log.
 *
 * @module
 */
import { closeSync, openSync, readSync, statSync, truncateSync } from "node:fs";
import type { DatabaseSync } from "node:sqlite";
import { chainHash, fnv1aHex } from "./_codec.ts";
import { SnapshotStore } from "./snapshot_store.ts";

/**
 * Why a journal cannot be used: `"open_failed"` (SQLite could not open it), `"foreign"` (not a
 * CIRO journal, or another node's), `"version"` (a format this engine does not read),
 * `"corrupt"` (a committed row, effect or snapshot whose checksum does not match, or missing
 * rows), `"closed"`.
 */
export type JournalErrorCode = "open_failed" | "foreign" | "version" | "corrupt" | "closed";

/** A journal that cannot be opened or read; match on `error.name === "JournalError"`. */
export class JournalError extends Error {
  override readonly name = "JournalError";
  /** What is wrong. */
  readonly code: JournalErrorCode;
  /** The journal file. */
  readonly path: string;
  /** The sequence number at fault, when there is one. */
  readonly seq: number | null;
  constructor(
    path: string,
    code: JournalErrorCode,
    message: string,
    seq: number | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.path = path;
    this.seq = seq;
  }
}

export const JOURNAL_FORMAT = "ciro.journal";
/** Version 2: rows hash-chained, outcomes, effects and snapshots checksummed. */
export const JOURNAL_VERSION = 2;
const WAL_HEADER = 32;
const WAL_FRAME_HEADER = 24;

/** The checksum of a version 1 row (not chained); checked before such a journal is migrated. */
function v1Checksum(
  seq: number,
  at: number,
  source: string,
  target: string,
  event: string,
  effect: string | null,
) {
  // An entry that closes an effect has it covered too (entries without one keep their checksum).
  return fnv1aHex(
    `${seq}|${at}|${source}|${target}|${event}${effect === null ? "" : `|${effect}`}`,
  );
}

/** The chained checksum of a row's input fields (see the module doc). */
export function rowChecksum(
  prev: string,
  row: Pick<Row, "seq" | "at" | "source" | "target" | "event" | "effect">,
): string {
  return chainHash(prev, [row.seq, row.at, row.source, row.target, row.event, row.effect]);
}

/** The checksum of a row's outcome, bound to the row's own checksum. */
export function outcomeChecksum(
  crc: string,
  o: {
    status: string | null;
    actor: string | null;
    state: string | null;
    hash: string | null;
    reason: string | null;
    effects: string | null;
  },
): string {
  return chainHash(crc, [o.status, o.actor, o.state, o.hash, o.reason, o.effects]);
}

/** The checksum of an open effect's row. */
export function effectChecksum(id: string, seq: number, actor: string, effect: string): string {
  return chainHash("effect", [id, seq, actor, effect]);
}

/**
 * Drops a partial frame at the end of a write-ahead log (the only torn write SQLite leaves:
 * its recovery ignores such a frame); returns a message if it did.
 */
export function repairWal(path: string): string | undefined {
  const wal = `${path}-wal`;
  let size: number;
  try {
    size = statSync(wal).size;
  } catch {
    return undefined;
  }
  if (size === 0) return undefined;
  if (size < WAL_HEADER) {
    truncateSync(wal, 0);
    return `Journal "${path}": torn tail repaired: the write-ahead log held only ${size} bytes of its header; dropped them`;
  }
  const header = new Uint8Array(WAL_HEADER);
  const fd = openSync(wal, "r");
  try {
    readSync(fd, header, 0, WAL_HEADER, 0);
  } finally {
    closeSync(fd);
  }
  const view = new DataView(header.buffer);
  const magic = view.getUint32(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return undefined;
  const pageSize = view.getUint32(8);
  const frame = WAL_FRAME_HEADER + pageSize;
  const extra = (size - WAL_HEADER) % frame;
  if (extra === 0) return undefined;
  truncateSync(wal, size - extra);
  return `Journal "${path}": torn tail repaired: dropped a partial write-ahead log frame of ${extra} bytes (a write cut by a crash; SQLite discards its uncommitted transaction)`;
}

export interface Row {
  seq: number;
  at: number;
  source: string;
  target: string;
  event: string;
  crc: string;
  status: string | null;
  actor: string | null;
  state: string | null;
  hash: string | null;
  reason: string | null;
  effect: string | null;
  effects: string | null;
  ocrc: string | null;
}

/** The SQLite journal of one node. */
export function corruptAt(path: string, seq: number, why: string): JournalError {
  return new JournalError(
    path,
    "corrupt",
    `Journal "${path}" is corrupt at seq ${seq}: ${why}`,
    seq,
  );
}

/**
 * Verifies the chain, every outcome checksum and the sequence. Nothing is deleted: a row
 * that does not match was committed (SQLite never leaves a torn row), so it is corruption.
 */
export function checkRows(path: string, db: DatabaseSync): { next: number; lastCrc: string } {
  const rows = db.prepare(
    "SELECT seq, at, source, target, event, crc, status, actor, state, hash, reason, effect, effects, ocrc FROM entries ORDER BY seq",
  ).iterate() as Iterable<Row>;
  let expected: number | undefined;
  let prev = "";
  let last = 0;
  for (const row of rows) {
    if (expected !== undefined && row.seq !== expected) {
      throw new JournalError(
        path,
        "corrupt",
        `Journal "${path}" is corrupt: seq ${row.seq} follows seq ${
          expected - 1
        } (entries are missing)`,
        row.seq,
      );
    }
    if (rowChecksum(prev, row) !== row.crc) {
      throw corruptAt(
        path,
        row.seq,
        "its checksum does not match (the row, or the chain before it, was edited after it was committed)",
      );
    }
    if (row.status === null ? row.ocrc !== null : outcomeChecksum(row.crc, row) !== row.ocrc) {
      throw corruptAt(
        path,
        row.seq,
        "the checksum of its outcome does not match (the outcome was edited after it was committed)",
      );
    }
    prev = row.crc;
    expected = row.seq + 1;
    last = row.seq;
  }
  return { next: last + 1, lastCrc: prev };
}

/**
 * Checks a version 1 journal by its version 1 checksums (one per row, input fields only),
 * then, in one transaction, chains its rows from the first on, checksums their outcomes, open
 * effects and snapshots, and sets version 2. A row that fails its version 1 checksum is
 * corruption, as in version 2.
 */
export function migrateV1(path: string, db: DatabaseSync, repairs: string[]): void {
  const rows = db.prepare(
    "SELECT seq, at, source, target, event, crc, status, actor, state, hash, reason, effect, effects FROM entries ORDER BY seq",
  ).all() as unknown as Row[];
  for (const row of rows) {
    if (v1Checksum(row.seq, row.at, row.source, row.target, row.event, row.effect) !== row.crc) {
      throw corruptAt(
        path,
        row.seq,
        "its (version 1) checksum does not match (the row was edited after it was committed)",
      );
    }
  }
  const update = db.prepare("UPDATE entries SET crc = ?, ocrc = ? WHERE seq = ?");
  const effects = db.prepare("UPDATE effects SET crc = ? WHERE id = ?");
  db.exec("BEGIN");
  try {
    let prev = "";
    for (const row of rows) {
      const crc = rowChecksum(prev, row);
      update.run(crc, row.status === null ? null : outcomeChecksum(crc, row), row.seq);
      prev = crc;
    }
    for (
      const e of db.prepare("SELECT id, seq, actor, effect FROM effects").all() as {
        id: string;
        seq: number;
        actor: string;
        effect: string;
      }[]
    ) effects.run(effectChecksum(e.id, e.seq, e.actor, e.effect), e.id);
    SnapshotStore.checksumAll(db);
    db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)").run(
      "version",
      String(JOURNAL_VERSION),
    );
    db.exec("COMMIT");
  } catch (error) {
    db.exec("ROLLBACK");
    throw error;
  }
  repairs.push(
    `Journal "${path}": migrated from version 1 to ${JOURNAL_VERSION}: its ${rows.length} rows, checked by their version 1 checksums, are now hash-chained from seq 1`,
  );
}
