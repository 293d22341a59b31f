/**
 * Per-key token buckets: the gossip boundary takes one token per message from the peer that
 * forwarded it, before any validation runs. A peer over its budget gets its messages ignored
 * (not rejected: a burst from an honest relay should not cost it score), and the limiter
 * counts what it dropped.
 *
 * ```ts
 * import { RateLimiter } from "./rate_limit.ts";
 *
 * const limiter = new RateLimiter({ capacity: 2, refillPerSecond: 1, now: () => 0 });
 * limiter.take("peer-a"); // true
 * limiter.take("peer-a"); // true
 * limiter.take("peer-a"); // false: empty until a second has passed
 * ```
 *
 * @module
 */

/** Options of {@link RateLimiter}. */
export interface RateLimitOptions {
  /**
   * Tokens a bucket holds when full: the largest burst a key may send.
   * @default 500
   */
  readonly capacity?: number;
  /**
   * Tokens added to each bucket per second: the sustained rate a key may send.
   * @default 250
   */
  readonly refillPerSecond?: number;
  /**
   * Most buckets kept; beyond it the least recently used buckets are forgotten (a forgotten
   * key starts again with a full bucket).
   * @default 10_000
   */
  readonly maxKeys?: number;
  /**
   * The clock, in milliseconds.
   * @default Date.now
   */
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** A token bucket per key. */
export class RateLimiter {
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly #maxKeys: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #limited = 0;

  constructor(options: RateLimitOptions = {}) {
    const { capacity = 500, refillPerSecond = 250, maxKeys = 10_000, now = Date.now } = options;
    if (!(capacity >= 1) || !Number.isFinite(capacity)) {
      throw new RangeError(
        `Cannot create rate limiter: capacity must be at least 1, got ${capacity}`,
      );
    }
    if (!(refillPerSecond >= 0) || !Number.isFinite(refillPerSecond)) {
      throw new RangeError(
        `Cannot create rate limiter: refillPerSecond must be non-negative, got ${refillPerSecond}`,
      );
    }
    if (!Number.isInteger(maxKeys) || maxKeys < 1) {
      throw new RangeError(
        `Cannot create rate limiter: maxKeys must be a positive integer, got ${maxKeys}`,
      );
    }
    this.capacity = capacity;
    this.refillPerSecond = refillPerSecond;
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  /** Takes `cost` tokens from `key`'s bucket; `false` (and counted) when it has too few. */
  take(key: string, cost = 1): boolean {
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.capacity, updatedAt: now };
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next();
        if (!oldest.done) this.#buckets.delete(oldest.value);
      }
    } else {
      this.#buckets.delete(key); // re-insert below: the map's order is least recently used first
      const elapsed = Math.max(0, now - bucket.updatedAt);
      bucket.tokens = Math.min(
        this.capacity,
        bucket.tokens + (elapsed / 1000) * this.refillPerSecond,
      );
      bucket.updatedAt = now;
    }
    this.#buckets.set(key, bucket);
    if (bucket.tokens < cost) {
      this.#limited++;
      return false;
    }
    bucket.tokens -= cost;
    return true;
  }

  /** Tokens `key` has now (a full bucket for an unknown key). */
  available(key: string): number {
    const bucket = this.#buckets.get(key);
    if (bucket === undefined) return this.capacity;
    const elapsed = Math.max(0, this.#now() - bucket.updatedAt);
    return Math.min(this.capacity, bucket.tokens + (elapsed / 1000) * this.refillPerSecond);
  }

  /** Forgets `key`'s bucket. */
  reset(key: string): void {
    this.#buckets.delete(key);
  }

  /** How many takes were refused since creation. */
  get limited(): number {
    return this.#limited;
  }

  /** How many keys have a bucket. */
  get size(): number {
    return this.#buckets.size;
  }
}
