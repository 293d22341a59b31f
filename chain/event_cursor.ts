/**
 * Where a chain event subscription stands, kept across restarts: the {@link ChainCursor} of the
 * next event to deliver and the `(block number, block hash)` of the recently processed blocks,
 * which the Starknet adapter re-checks to notice a reorg that happened while it was down.
 *
 * Three stores: {@link MemoryCursorStore} (tests, one process), {@link FileCursorStore} (a JSON
 * file replaced atomically: write a temporary file, then rename) and {@link SqliteCursorStore}
 * (a row in a `node:sqlite` database, several subscriptions per file by key).
 *
 * ```ts
 * import { MemoryCursorStore } from "./event_cursor.ts";
 *
 * const store = new MemoryCursorStore();
 * await store.save({
 *   cursor: { blockNumber: 12, eventIndex: 3 },
 *   recentBlocks: [{ blockNumber: 11, blockHash: "0xab" }],
 * });
 * const state = await store.load();
 * if (state?.cursor.eventIndex !== 3) throw new Error("cursor was not kept");
 * await store.close();
 * ```
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { ChainCursor } from "./port.ts";

/** A block the subscription has processed, by number and hash. */
export interface BlockRef {
  readonly blockNumber: number;
  readonly blockHash: string;
}

/** What a {@link CursorStore} keeps. */
export interface CursorState {
  /** The next event to deliver (`eventIndex` counts the subscription's events in that block). */
  readonly cursor: ChainCursor;
  /** Recently processed blocks, ascending by number, to re-check for reorgs. */
  readonly recentBlocks: readonly BlockRef[];
}

/** Options every store call takes. */
export interface CursorStoreCallOptions {
  readonly signal?: AbortSignal;
}

/** Persists a subscription's {@link CursorState}. */
export interface CursorStore {
  /** The last saved state, or `undefined` before the first save. */
  load(options?: CursorStoreCallOptions): Promise<CursorState | undefined>;
  /** Replaces the saved state; durable when the promise resolves. */
  save(state: CursorState, options?: CursorStoreCallOptions): Promise<void>;
  close(): Promise<void>;
}

/**
 * A stored cursor that cannot be read back (a damaged file or row); match on
 * `error.name === "CursorStoreError"`.
 */
export class CursorStoreError extends Error {
  override readonly name = "CursorStoreError";
}

/** Orders two cursors: negative when `a` comes first, 0 when equal. */
export function compareCursors(a: ChainCursor, b: ChainCursor): number {
  return a.blockNumber !== b.blockNumber
    ? a.blockNumber - b.blockNumber
    : a.eventIndex - b.eventIndex;
}

/** Throws a `TypeError` unless `cursor` has non-negative safe integer fields. */
export function checkCursor(cursor: ChainCursor): ChainCursor {
  if (
    typeof cursor !== "object" || cursor === null ||
    !Number.isSafeInteger(cursor.blockNumber) || cursor.blockNumber < 0 ||
    !Number.isSafeInteger(cursor.eventIndex) || cursor.eventIndex < 0
  ) {
    throw new TypeError(
      `Invalid cursor: expected non-negative integers, got ${JSON.stringify(cursor)}`,
    );
  }
  return cursor;
}

function parseState(text: string, where: string): CursorState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CursorStoreError(`Cannot read the cursor in ${where}: not JSON`, { cause });
  }
  const state = value as CursorState;
  try {
    checkCursor(state.cursor);
    if (!Array.isArray(state.recentBlocks)) throw new TypeError("recentBlocks is not an array");
    for (const block of state.recentBlocks) {
      if (
        !Number.isSafeInteger(block?.blockNumber) || typeof block?.blockHash !== "string"
      ) {
        throw new TypeError(`invalid block ${JSON.stringify(block)}`);
      }
    }
  } catch (cause) {
    throw new CursorStoreError(
      `Cannot read the cursor in ${where}: ${(cause as Error).message}`,
      { cause },
    );
  }
  return {
    cursor: { blockNumber: state.cursor.blockNumber, eventIndex: state.cursor.eventIndex },
    recentBlocks: state.recentBlocks.map((b) => ({
      blockNumber: b.blockNumber,
      blockHash: b.blockHash,
    })),
  };
}

function copy(state: CursorState): CursorState {
  checkCursor(state.cursor);
  return {
    cursor: { blockNumber: state.cursor.blockNumber, eventIndex: state.cursor.eventIndex },
    recentBlocks: state.recentBlocks.map((b) => ({
      blockNumber: b.blockNumber,
      blockHash: b.blockHash,
    })),
  };
}

/** Keeps the state in memory: survives a re-subscribe, not a restart. */
export class MemoryCursorStore implements CursorStore {
  #state: CursorState | undefined;

  load(options?: CursorStoreCallOptions): Promise<CursorState | undefined> {
    options?.signal?.throwIfAborted();
    return Promise.resolve(this.#state === undefined ? undefined : copy(this.#state));
  }

  save(state: CursorState, options?: CursorStoreCallOptions): Promise<void> {
    options?.signal?.throwIfAborted();
    this.#state = copy(state);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Keeps the state in a JSON file. Each save writes `<path>.tmp` and renames it over `path`, so a
 * crash leaves either the old or the new state, never a torn file.
 */
export class FileCursorStore implements CursorStore {
  readonly path: string;

  constructor(path: string) {
    if (typeof path !== "string" || path.length === 0) {
      throw new TypeError(`Invalid cursor file path: ${JSON.stringify(path)}`);
    }
    this.path = path;
  }

  async load(options?: CursorStoreCallOptions): Promise<CursorState | undefined> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path, options?.signal ? { signal: options.signal } : {});
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    return parseState(text, this.path);
  }

  async save(state: CursorState, options?: CursorStoreCallOptions): Promise<void> {
    options?.signal?.throwIfAborted();
    const tmp = `${this.path}.tmp`;
    const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    try {
      await file.write(new TextEncoder().encode(JSON.stringify(copy(state))));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, this.path);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Options of {@link SqliteCursorStore}. */
export interface SqliteCursorStoreOptions {
  /**
   * Which subscription's row to use; one database can hold several.
   * @default {"default"}
   */
  readonly key?: string;
}

/** Keeps the state as a row of the `event_cursors` table of a SQLite database (WAL mode). */
export class SqliteCursorStore implements CursorStore {
  readonly key: string;
  readonly #db: DatabaseSync;
  readonly #where: string;

  constructor(path: string, options: SqliteCursorStoreOptions = {}) {
    if (typeof path !== "string" || path.length === 0) {
      throw new TypeError(`Invalid cursor database path: ${JSON.stringify(path)}`);
    }
    this.key = options.key ?? "default";
    this.#where = `${path} (key ${JSON.stringify(this.key)})`;
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000;");
    this.#db.exec(
      `CREATE TABLE IF NOT EXISTS event_cursors (
        key TEXT PRIMARY KEY,
        state TEXT NOT NULL
      ) WITHOUT ROWID`,
    );
  }

  load(options?: CursorStoreCallOptions): Promise<CursorState | undefined> {
    try {
      options?.signal?.throwIfAborted();
      const row = this.#db.prepare("SELECT state FROM event_cursors WHERE key = ?").get(
        this.key,
      ) as { state?: unknown } | undefined;
      if (row === undefined) return Promise.resolve(undefined);
      if (typeof row.state !== "string") {
        throw new CursorStoreError(`Cannot read the cursor in ${this.#where}: not text`);
      }
      return Promise.resolve(parseState(row.state, this.#where));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  save(state: CursorState, options?: CursorStoreCallOptions): Promise<void> {
    try {
      options?.signal?.throwIfAborted();
      this.#db.prepare(
        `INSERT INTO event_cursors (key, state) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET state = excluded.state`,
      ).run(this.key, JSON.stringify(copy(state)));
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }
}
