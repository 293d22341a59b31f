/**
 * The trace of a run: one line per thing that happened (a message delivered or dropped, a chain
 * event handed to a node, a delivery into a node's inbox and its outcome), folded into a
 * SHA-256 as it goes. Same seed, same code: same hash, byte for byte.
 *
 * @module
 */
import { createHash, type Hash } from "node:crypto";

/** What a run did, hashed as it happens. */
export class Trace {
  #hash: Hash = createHash("sha256");
  #lines = 0;
  /** Most recent lines, kept for a failing seed's report. */
  readonly #tail: string[] = [];
  readonly #keep: number;

  constructor(options: { keepTail?: number } = {}) {
    this.#keep = options.keepTail ?? 64;
  }

  add(line: string): void {
    this.#hash.update(line);
    this.#hash.update("\n");
    this.#lines++;
    if (this.#keep > 0) {
      this.#tail.push(line);
      if (this.#tail.length > this.#keep) this.#tail.shift();
    }
  }

  get lines(): number {
    return this.#lines;
  }

  /** The last lines added. */
  tail(): readonly string[] {
    return this.#tail;
  }

  /** The hash so far (hex); the trace goes on. */
  digest(): string {
    return this.#hash.copy().digest("hex");
  }
}
