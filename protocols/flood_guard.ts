/**
 * The per-peer rate limit that also notices a flood. A message over the limit is ignored, as
 * with {@link RateLimiter} (an honest relay's burst costs it nothing), but it also takes a token
 * from the key's excess bucket: by default five times the limit's burst, refilled at twice its
 * rate. A key that empties that bucket too, sending more than three times its sustained rate
 * for long enough to use five bursts of excess, is flooding: `onFlood` is called, once, and the
 * key starts again with full buckets. A key at up to three times its rate is throttled, never
 * reported, and so is the backlog of an honest key after the receiver stalled for up to six
 * bursts' worth of its rate (12 s at the host's defaults): the buckets refill meanwhile.
 *
 * Why: ignoring is not free. Every gossip message costs the receiver its protobuf decoding, its
 * signature check and gossipsub's bookkeeping before the rate limiter sees it (about 0.2 to 0.5
 * ms here), so a peer at 100 times its limit kept a node's event loop busy however many of its
 * messages were ignored. The host bans a flooding peer: its connection is closed and refused.
 *
 * ```ts
 * import { FloodGuard } from "./flood_guard.ts";
 *
 * const flooders: string[] = [];
 * const limiter = new FloodGuard(
 *   { capacity: 2, refillPerSecond: 1, now: () => 0 },
 *   { onFlood: (key) => flooders.push(key) },
 * );
 * for (let i = 0; i < 13; i++) limiter.take("peer-a"); // 2 taken, 10 excess, then a flood
 * console.assert(flooders.length === 1);
 * ```
 *
 * @module
 */
import { RateLimiter, type RateLimitOptions } from "./rate_limit.ts";

/** Options of {@link FloodGuard}. */
export interface FloodGuardOptions {
  /**
   * The excess bucket: messages over the rate limit a key may send (`capacity`), and how fast
   * that allowance comes back (`refillPerSecond`), before it counts as flooding.
   * @default five times the rate limit's `capacity`, twice its `refillPerSecond`
   */
  readonly excess?: Omit<RateLimitOptions, "now" | "maxKeys">;
  /** Called when a key empties its excess bucket. */
  readonly onFlood?: (key: string) => void;
}

/** A {@link RateLimiter} that calls `onFlood` for a key far over its limit. */
export class FloodGuard extends RateLimiter {
  /** The excess bucket: what a key may send over the limit before it counts as flooding. */
  readonly excess: RateLimiter;
  readonly #onFlood: (key: string) => void;
  #floods = 0;

  constructor(limit: RateLimitOptions = {}, options: FloodGuardOptions = {}) {
    super(limit);
    this.excess = new RateLimiter({
      capacity: 5 * this.capacity,
      refillPerSecond: 2 * this.refillPerSecond,
      ...options.excess,
      ...(limit.maxKeys !== undefined ? { maxKeys: limit.maxKeys } : {}),
      ...(limit.now !== undefined ? { now: limit.now } : {}),
    });
    this.#onFlood = options.onFlood ?? (() => {});
  }

  /** Takes `cost` tokens; when refused, also charges the excess bucket, and reports a flood. */
  override take(key: string, cost = 1): boolean {
    if (super.take(key, cost)) return true;
    if (this.excess.take(key, cost)) return false;
    this.reset(key);
    this.#floods++;
    this.#onFlood(key);
    return false;
  }

  /** Forgets `key`'s buckets. */
  override reset(key: string): void {
    super.reset(key);
    this.excess.reset(key);
  }

  /** Floods reported since creation. */
  get floods(): number {
    return this.#floods;
  }
}
