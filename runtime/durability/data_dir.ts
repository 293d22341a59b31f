/**
 * A node's data directory: who may use it, and when it may be made anew.
 *
 * - {@link lockDataDir} takes an exclusive lock on `<dataDir>/lock` (an advisory `flock(2)`
 *   through `Deno.FsFile.tryLockSync`) and writes the holder's pid in it. A second process on the
 *   same directory refuses to start with a {@link DataDirError} (code `"locked"`) naming the
 *   holder's pid. The kernel drops a `flock` when its holder exits, however it exits (SIGKILL
 *   included), so a lock file left behind by a dead process is not held by anyone: the next
 *   node takes it, overwrites the pid and reports whose it was ({@link DataDirLock.tookOverFrom}).
 *   No pid is ever probed, so a reused pid cannot keep a directory locked. (`flock` is not
 *   reliable on some network file systems: keep data directories on a local disk.)
 * - {@link checkDataDir} refuses to make a new identity where one is expected: a directory that
 *   does not exist, or one that holds a journal but no identity key, is an error (code
 *   `"missing"` or `"no_identity"`) unless the operator asks for a new node with `init`
 *   (`deno task node --init`). An existing empty directory is taken as made for the node.
 *
 * ```ts
 * import { checkDataDir, lockDataDir } from "./data_dir.ts";
 *
 * const dir = await Deno.makeTempDir();
 * checkDataDir(`${dir}/node`, { init: true }); // creates it
 * const lock = lockDataDir(`${dir}/node`);
 * try {
 *   lockDataDir(`${dir}/node`);
 * } catch (error) {
 *   console.log((error as Error).name); // "DataDirError": locked by this process
 * }
 * lock.release();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

/** The lock file inside a data directory. */
export const LOCK_FILE = "lock";
/** The identity key file inside a data directory (as `protocols/identity.ts` names it). */
export const IDENTITY_KEY_FILE = "identity.key";
/** The journal file inside a data directory. */
export const JOURNAL_FILE = "journal.sqlite";

/** Why a data directory cannot be used. */
export type DataDirErrorCode = "locked" | "missing" | "no_identity" | "not_a_directory";

/** A data directory that cannot be used; match on `error.name === "DataDirError"`. */
export class DataDirError extends Error {
  override readonly name = "DataDirError";
  readonly code: DataDirErrorCode;
  /** The data directory. */
  readonly path: string;
  /** The pid that holds the lock (code `"locked"`), when its file names one. */
  readonly holder: number | null;
  constructor(code: DataDirErrorCode, path: string, message: string, holder: number | null = null) {
    super(message);
    this.code = code;
    this.path = path;
    this.holder = holder;
  }
}

/** What {@link checkDataDir} found. */
export interface DataDirCheck {
  /** Whether the directory was created (only with `init`). */
  readonly created: boolean;
  /** Whether it holds an identity key. */
  readonly hasIdentity: boolean;
  /** Whether it holds a journal. */
  readonly hasJournal: boolean;
}

function exists(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * Checks that `dataDir` may be used by a node, creating it (mode 0700) only when `init` asks for
 * a new node. Throws a {@link DataDirError}: `"missing"` for a directory that does not exist,
 * `"no_identity"` for one with a journal but no identity key (the node that wrote the journal is
 * gone; a new identity would orphan its stake and jobs), `"not_a_directory"` for a file.
 */
export function checkDataDir(
  dataDir: string,
  options: {
    /** Create the directory, or let a new identity be made in it. @default false */
    readonly init?: boolean;
  } = {},
): DataDirCheck {
  if (typeof dataDir !== "string" || dataDir.length === 0) {
    throw new TypeError(`Invalid data directory: ${JSON.stringify(dataDir)}`);
  }
  const init = options.init ?? false;
  const info = exists(dataDir);
  if (info === undefined) {
    if (!init) {
      throw new DataDirError(
        "missing",
        dataDir,
        `Data directory "${dataDir}" does not exist: start with --init to make a new node there (a new identity), or correct the path if the directory was moved or lost`,
      );
    }
    Deno.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return { created: true, hasIdentity: false, hasJournal: false };
  }
  if (!info.isDirectory) {
    throw new DataDirError(
      "not_a_directory",
      dataDir,
      `Data directory "${dataDir}" is not a directory`,
    );
  }
  const hasIdentity = exists(`${dataDir}/${IDENTITY_KEY_FILE}`) !== undefined;
  const hasJournal = exists(`${dataDir}/${JOURNAL_FILE}`) !== undefined;
  if (hasJournal && !hasIdentity && !init) {
    throw new DataDirError(
      "no_identity",
      dataDir,
      `Data directory "${dataDir}" has a journal but no identity key (${IDENTITY_KEY_FILE}): restore the key, or start with --init to make a new identity (its journal will not open for it)`,
    );
  }
  return { created: false, hasIdentity, hasJournal };
}

/** An exclusive lock on a data directory, held until {@link DataDirLock.release} or exit. */
export class DataDirLock {
  /** The data directory. */
  readonly path: string;
  /** The pid a lock file left behind named (its process gone), or null. */
  readonly tookOverFrom: number | null;
  readonly #file: Deno.FsFile;
  #released = false;

  private constructor(path: string, file: Deno.FsFile, tookOverFrom: number | null) {
    this.path = path;
    this.#file = file;
    this.tookOverFrom = tookOverFrom;
  }

  /** @internal See {@link lockDataDir}. */
  static acquire(dataDir: string): DataDirLock {
    const path = `${dataDir}/${LOCK_FILE}`;
    const file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
    let locked: boolean;
    try {
      locked = file.tryLockSync(true);
    } catch (error) {
      file.close();
      throw error;
    }
    const named = readPid(path);
    if (!locked) {
      file.close();
      throw new DataDirError(
        "locked",
        dataDir,
        `Data directory "${dataDir}" is in use by process ${
          named ?? "(unknown pid)"
        } (lock file ${path}): stop that node first, or give this one another data directory`,
        named,
      );
    }
    file.truncateSync(0);
    const bytes = new TextEncoder().encode(`${Deno.pid}\n`);
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    return new DataDirLock(dataDir, file, named !== null && named !== Deno.pid ? named : null);
  }

  /** Releases the lock (the file stays, naming no one). Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      this.#file.truncateSync(0);
      this.#file.unlockSync();
    } finally {
      this.#file.close();
    }
  }
}

function readPid(path: string): number | null {
  try {
    const text = Deno.readTextFileSync(path).trim();
    return /^\d+$/.test(text) ? Number(text) : null;
  } catch {
    return null;
  }
}

/**
 * Takes the exclusive lock of `dataDir` (which must exist), or throws a {@link DataDirError}
 * with code `"locked"` naming the pid that holds it.
 */
export function lockDataDir(dataDir: string): DataDirLock {
  return DataDirLock.acquire(dataDir);
}
