/**
 * A bounded store of settled jobs' outputs, by commitment, so `GET /jobs/:id/output` still
 * answers after the job's actor was retired (the archive keeps the commitment only). Bounded
 * in entries and in bytes (the output's JSON with bigints as strings); the oldest go first.
 * It lives in memory: a restarted node answers for the outputs of jobs still live.
 *
 * ```ts
 * import { OutputStore } from "./output_store.ts";
 *
 * const store = new OutputStore({ maxEntries: 2 });
 * store.put("job-1", "c1", [[1, 2]]);
 * console.log(store.byJob("job-1")?.value); // [[1, 2]]
 * ```
 *
 * @module
 */

/** Options of {@link OutputStore}. */
export interface OutputStoreOptions {
  /** Outputs kept. @default 1_000 */
  readonly maxEntries?: number;
  /** Bytes kept, all outputs together (JSON text). @default 64 MiB */
  readonly maxBytes?: number;
}

/** A kept output. */
export interface StoredOutput {
  readonly jobId: string;
  readonly commitment: string;
  readonly value: unknown;
  readonly bytes: number;
}

function jsonLength(value: unknown): number {
  const text = JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v);
  return new TextEncoder().encode(text ?? "null").length;
}

/** Outputs by commitment, oldest out first. */
export class OutputStore {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly #byCommitment = new Map<string, StoredOutput>();
  readonly #byJob = new Map<string, string>();
  #bytes = 0;

  constructor(options: OutputStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? 1_000;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 0) {
      throw new RangeError(`Invalid maxEntries ${this.maxEntries}: must be a non-negative integer`);
    }
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 0) {
      throw new RangeError(`Invalid maxBytes ${this.maxBytes}: must be a non-negative integer`);
    }
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Outputs held now. */
  get size(): number {
    return this.#byCommitment.size;
  }

  /** Keeps `value` as the output of `jobId`; returns false when it alone exceeds the bound. */
  put(jobId: string, commitment: string, value: unknown): boolean {
    const bytes = jsonLength(value);
    if (bytes > this.maxBytes || this.maxEntries === 0) return false;
    const prior = this.#byCommitment.get(commitment);
    if (prior !== undefined) this.#remove(commitment);
    while (
      this.#byCommitment.size >= this.maxEntries || this.#bytes + bytes > this.maxBytes
    ) {
      const oldest = this.#byCommitment.keys().next().value;
      if (oldest === undefined) break;
      this.#remove(oldest);
    }
    this.#byCommitment.set(commitment, { jobId, commitment, value, bytes });
    this.#byJob.set(jobId, commitment);
    this.#bytes += bytes;
    return true;
  }

  /** The output with this commitment, if kept. */
  get(commitment: string): StoredOutput | undefined {
    return this.#byCommitment.get(commitment);
  }

  /** The output of this job, if kept. */
  byJob(jobId: string): StoredOutput | undefined {
    const commitment = this.#byJob.get(jobId);
    return commitment === undefined ? undefined : this.#byCommitment.get(commitment);
  }

  #remove(commitment: string): void {
    const entry = this.#byCommitment.get(commitment);
    if (entry === undefined) return;
    this.#byCommitment.delete(commitment);
    if (this.#byJob.get(entry.jobId) === commitment) this.#byJob.delete(entry.jobId);
    this.#bytes -= entry.bytes;
  }
}
