/**
 * The trace of a run: one line per thing that happened (a message delivered or dropped, a chain
 * event handed to a node, a delivery into a node's inbox and its outcome), folded into a
 * SHA-256 as it goes. Same seed, same code: same hash, byte for byte.
 *
 * Lines are hashed in batches of {@link TRACE_BATCH} (the hash of the lines joined, each ending
 * in a newline, is the hash of the lines fed one by one): one call into the hash per batch
 * rather than two per line, which was a measurable share of a run.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** Lines buffered before they are fed to the hash. */
export const TRACE_BATCH = 512;

/** What a run did, hashed as it happens. */
export class Trace {
  #hash: Hash = createHash("sha256");
  #lines = 0;
  /** Lines not yet fed to the hash. */
  #pending: string[] = [];
  /** Most recent lines, kept for a failing seed's report (a ring: line n at n % keep). */
  readonly #tail: string[] = [];
  readonly #keep: number;

  constructor(options: { keepTail?: number } = {}) {
    this.#keep = options.keepTail ?? 64;
  }

  add(line: string): void {
    this.#pending.push(line);
    if (this.#pending.length >= TRACE_BATCH) this.#flush();
    if (this.#keep > 0) this.#tail[this.#lines % this.#keep] = line;
    this.#lines++;
  }

  get lines(): number {
    return this.#lines;
  }

  /** The last lines added. */
  tail(): readonly string[] {
    const start = this.#lines % Math.max(1, this.#keep);
    return this.#lines <= this.#keep
      ? [...this.#tail]
      : [...this.#tail.slice(start), ...this.#tail.slice(0, start)];
  }

  /** The hash so far (hex); the trace goes on. */
  digest(): string {
    this.#flush();
    return this.#hash.copy().digest("hex");
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    this.#hash.update(this.#pending.join("\n") + "\n");
    this.#pending = [];
  }
}
