/**
 * Fair ingress: accepted gossip waits in a bounded queue per forwarding peer and is delivered
 * round robin, a few at a time (at most `batch`, and only until `sliceMs` have passed), with a
 * macrotask between batches. A flood from one peer fills
 * only that peer's queue (what does not fit is dropped and counted); another peer's message
 * waits behind at most one message of each busy peer, never behind the flood, and timers and
 * I/O (the status endpoint, pings) run between batches. A global bound caps what all queues hold
 * together: when it is reached, the longest queue loses its newest message to make room, so a
 * newcomer is never the one refused.
 *
 * ```ts
 * import { FairQueue } from "./fair_queue.ts";
 *
 * const delivered: string[] = [];
 * const queue = new FairQueue<string>((item) => delivered.push(item), {
 *   perKey: 2,
 *   schedule: (run) => run(),
 * });
 * queue.offer("flooder", "f1");
 * queue.offer("flooder", "f2");
 * queue.offer("flooder", "f3"); // false: the flooder's queue is full
 * ```
 *
 * @module
 */

/** Options of {@link FairQueue}. */
export interface FairQueueOptions {
  /** Items one key may have waiting. @default 256 */
  readonly perKey?: number;
  /** Items all keys together may have waiting. @default 4_096 */
  readonly total?: number;
  /** Items delivered per turn before yielding to the event loop. @default 32 */
  readonly batch?: number;
  /**
   * Time a turn may spend delivering, in milliseconds: once used, the turn ends after the
   * current item, however few were delivered (a slow subscriber cannot hold the event loop for
   * `batch` items). The libp2p host passes its `ingress.sliceMs`, 5.
   * @default Infinity (turns end on `batch` alone)
   */
  readonly sliceMs?: number;
  /** The clock of `sliceMs`, in milliseconds. @default performance.now */
  readonly now?: () => number;
  /** Runs the next turn. @default a `setTimeout(run, 0)` (a macrotask, so I/O runs between turns) */
  readonly schedule?: (run: () => void) => void;
  /** Called when `deliver` throws. @default ignore */
  readonly onError?: (error: unknown) => void;
}

/** Counters of a {@link FairQueue}. */
export interface FairQueueStats {
  readonly queued: number;
  readonly delivered: number;
  /** Refused because the key's queue was full. */
  readonly droppedPerKey: number;
  /** Evicted from the longest queue to make room under the global bound. */
  readonly droppedGlobal: number;
}

/** Bounded per-key FIFO queues delivered round robin. */
export class FairQueue<T> {
  readonly #deliver: (item: T) => void;
  readonly #perKey: number;
  readonly #total: number;
  readonly #batch: number;
  readonly #sliceMs: number;
  readonly #now: () => number;
  readonly #schedule: (run: () => void) => void;
  readonly #onError: (error: unknown) => void;
  /** Insertion order is the round-robin order; a key is re-inserted after its turn. */
  readonly #queues = new Map<string, T[]>();
  #size = 0;
  #scheduled = false;
  #closed = false;
  #delivered = 0;
  #droppedPerKey = 0;
  #droppedGlobal = 0;

  constructor(deliver: (item: T) => void, options: FairQueueOptions = {}) {
    const { perKey = 256, total = 4_096, batch = 32 } = options;
    for (const [name, value] of Object.entries({ perKey, total, batch })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`Cannot create fair queue: ${name} must be a positive integer`);
      }
    }
    this.#deliver = deliver;
    this.#perKey = perKey;
    this.#total = total;
    this.#batch = batch;
    const { sliceMs = Infinity } = options;
    if (!(sliceMs > 0)) {
      throw new RangeError(`Cannot create fair queue: sliceMs must be positive, got ${sliceMs}`);
    }
    this.#sliceMs = sliceMs;
    this.#now = options.now ?? (() => performance.now());
    this.#schedule = options.schedule ?? ((run) => setTimeout(run, 0));
    this.#onError = options.onError ?? (() => {});
  }

  /** Whether `key` may queue one more item now. */
  hasRoom(key: string): boolean {
    return !this.#closed && (this.#queues.get(key)?.length ?? 0) < this.#perKey;
  }

  /** Items waiting for `key` (all keys without one). */
  size(key?: string): number {
    return key === undefined ? this.#size : this.#queues.get(key)?.length ?? 0;
  }

  /** Queues `item` for `key`; `false` (and counted) when `key`'s queue is full. */
  offer(key: string, item: T): boolean {
    if (this.#closed) return false;
    let queue = this.#queues.get(key);
    if ((queue?.length ?? 0) >= this.#perKey) {
      this.#droppedPerKey++;
      return false;
    }
    if (this.#size >= this.#total) this.#evictFromLongest();
    if (queue === undefined) {
      queue = [];
      this.#queues.set(key, queue);
    }
    queue.push(item);
    this.#size++;
    this.#wake();
    return true;
  }

  /** Drops everything waiting and refuses new items. */
  close(): void {
    this.#closed = true;
    this.#queues.clear();
    this.#size = 0;
  }

  /** Counters since creation. */
  stats(): FairQueueStats {
    return {
      queued: this.#size,
      delivered: this.#delivered,
      droppedPerKey: this.#droppedPerKey,
      droppedGlobal: this.#droppedGlobal,
    };
  }

  #evictFromLongest(): void {
    let longestKey: string | undefined;
    let longest = 0;
    for (const [key, queue] of this.#queues) {
      if (queue.length > longest) {
        longest = queue.length;
        longestKey = key;
      }
    }
    if (longestKey === undefined) return;
    const queue = this.#queues.get(longestKey)!;
    queue.pop();
    this.#size--;
    this.#droppedGlobal++;
    if (queue.length === 0) this.#queues.delete(longestKey);
  }

  #wake(): void {
    if (this.#scheduled || this.#closed) return;
    this.#scheduled = true;
    this.#schedule(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    let budget = this.#batch;
    const timed = this.#sliceMs !== Infinity;
    const started = timed ? this.#now() : 0;
    const timeLeft = () => !timed || this.#now() - started < this.#sliceMs;
    while (budget > 0 && this.#size > 0 && !this.#closed && timeLeft()) {
      // One item per key per round, in round-robin order.
      for (const [key, queue] of [...this.#queues]) {
        if (budget === 0 || !timeLeft()) break;
        const item = queue.shift()!;
        this.#size--;
        this.#queues.delete(key);
        if (queue.length > 0) this.#queues.set(key, queue);
        budget--;
        this.#delivered++;
        try {
          this.#deliver(item);
        } catch (error) {
          this.#onError(error);
        }
      }
    }
    if (this.#size > 0) this.#wake();
  }
}
