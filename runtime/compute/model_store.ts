/**
 * Models by content hash. A job names its ONNX model by the hex sha-256 of the model file; a
 * {@link ModelStore} keeps model bytes under that hash and checks it again on every read, so a
 * file changed on disk is refused ({@link ModelIntegrityError}) instead of being run.
 *
 * Two implementations: {@link DirectoryModelStore} (`<dataDir>/models/<hash>.onnx`, written
 * atomically through a temporary file and a rename) and {@link MemoryModelStore}.
 *
 * ```ts
 * import { MemoryModelStore } from "./model_store.ts";
 *
 * const store = new MemoryModelStore();
 * const hash = await store.put(new Uint8Array([1, 2, 3]));
 * console.assert(await store.has(hash));
 * ```
 *
 * @module
 */
import { join } from "node:path";
import { sha256Hex } from "./executor.ts";

/** Options every store call takes. */
export interface ModelStoreOptions {
  readonly signal?: AbortSignal;
}

/** Model bytes by content hash (lowercase hex sha-256). */
export interface ModelStore {
  /** Stores `bytes` and returns their hash; storing the same bytes twice is a no-op. */
  put(bytes: Uint8Array, options?: ModelStoreOptions): Promise<string>;
  /**
   * The bytes stored under `hash`, verified. Rejects with {@link ModelNotFoundError} or
   * {@link ModelIntegrityError}.
   */
  get(hash: string, options?: ModelStoreOptions): Promise<Uint8Array>;
  /** Whether a model is stored under `hash` (without verifying its bytes). */
  has(hash: string, options?: ModelStoreOptions): Promise<boolean>;
  /** The hashes of every stored model, sorted. */
  list(options?: ModelStoreOptions): Promise<string[]>;
}

/** No model is stored under a hash. */
export class ModelNotFoundError extends Error {
  override readonly name = "ModelNotFoundError";
  readonly hash: string;

  constructor(hash: string, options?: ErrorOptions) {
    super(`Model not found: ${hash}`, options);
    this.hash = hash;
  }
}

/** The bytes stored under a hash do not hash to it (the file was changed or corrupted). */
export class ModelIntegrityError extends Error {
  override readonly name = "ModelIntegrityError";
  readonly hash: string;
  readonly actualHash: string;

  constructor(hash: string, actualHash: string) {
    super(`Model integrity check failed: ${hash} holds bytes hashing to ${actualHash}`);
    this.hash = hash;
    this.actualHash = actualHash;
  }
}

const HASH_PATTERN = /^[0-9a-f]{64}$/;

/** Whether `hash` is a lowercase hex sha-256, the only form a model hash takes. */
export function isModelHash(hash: unknown): hash is string {
  return typeof hash === "string" && HASH_PATTERN.test(hash);
}

function checkHash(hash: string): void {
  if (!isModelHash(hash)) {
    throw new TypeError(
      `Invalid model hash: expected 64 lowercase hex digits, got ${JSON.stringify(hash)}`,
    );
  }
}

function verified(hash: string, bytes: Uint8Array): Uint8Array {
  const actual = sha256Hex(bytes);
  if (actual !== hash) throw new ModelIntegrityError(hash, actual);
  return bytes;
}

/** A store in memory; copies bytes in and out, so callers cannot change what it holds. */
export class MemoryModelStore implements ModelStore {
  readonly #models = new Map<string, Uint8Array>();

  put(bytes: Uint8Array, options: ModelStoreOptions = {}): Promise<string> {
    options.signal?.throwIfAborted();
    const hash = sha256Hex(bytes);
    if (!this.#models.has(hash)) this.#models.set(hash, bytes.slice());
    return Promise.resolve(hash);
  }

  get(hash: string, options: ModelStoreOptions = {}): Promise<Uint8Array> {
    try {
      options.signal?.throwIfAborted();
      checkHash(hash);
      const bytes = this.#models.get(hash);
      if (bytes === undefined) throw new ModelNotFoundError(hash);
      return Promise.resolve(verified(hash, bytes.slice()));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  has(hash: string, options: ModelStoreOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted();
    return Promise.resolve(this.#models.has(hash));
  }

  list(options: ModelStoreOptions = {}): Promise<string[]> {
    options.signal?.throwIfAborted();
    return Promise.resolve([...this.#models.keys()].sort());
  }
}

/**
 * A store in a directory: each model is `<dataDir>/models/<hash>.onnx`. Writes go to a
 * temporary file in the same directory and are renamed into place, so a reader never sees a
 * half-written model.
 */
export class DirectoryModelStore implements ModelStore {
  /** The directory holding the model files: `<dataDir>/models`. */
  readonly directory: string;

  constructor(dataDir: string) {
    this.directory = join(dataDir, "models");
  }

  /** The path of the file holding the model `hash`. */
  pathOf(hash: string): string {
    checkHash(hash);
    return join(this.directory, `${hash}.onnx`);
  }

  async put(bytes: Uint8Array, options: ModelStoreOptions = {}): Promise<string> {
    options.signal?.throwIfAborted();
    const hash = sha256Hex(bytes);
    const path = this.pathOf(hash);
    if (await this.#intact(path, hash)) return hash;
    await Deno.mkdir(this.directory, { recursive: true });
    options.signal?.throwIfAborted();
    const temp = join(this.directory, `.${hash}.${crypto.randomUUID()}.tmp`);
    try {
      await Deno.writeFile(temp, bytes, options.signal ? { signal: options.signal } : {});
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw error;
    }
    return hash;
  }

  async get(hash: string, options: ModelStoreOptions = {}): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    const path = this.pathOf(hash);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path, options.signal ? { signal: options.signal } : {});
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        throw new ModelNotFoundError(hash, { cause: error });
      }
      throw error;
    }
    return verified(hash, bytes);
  }

  async has(hash: string, options: ModelStoreOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted();
    if (!isModelHash(hash)) return false;
    try {
      return (await Deno.stat(this.pathOf(hash))).isFile;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  async list(options: ModelStoreOptions = {}): Promise<string[]> {
    options.signal?.throwIfAborted();
    const hashes: string[] = [];
    try {
      for await (const entry of Deno.readDir(this.directory)) {
        const hash = entry.name.endsWith(".onnx") ? entry.name.slice(0, -".onnx".length) : "";
        if (entry.isFile && isModelHash(hash)) hashes.push(hash);
      }
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    return hashes.sort();
  }

  /** Whether `path` exists and holds the model `hash` (a damaged file gets rewritten by put). */
  async #intact(path: string, hash: string): Promise<boolean> {
    try {
      return sha256Hex(await Deno.readFile(path)) === hash;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }
}
