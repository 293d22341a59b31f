/**
 * Limits on the direct protocols (request/response, snapshot, payload), per peer: how many of
 * its streams are served at once and how many it may open per second, plus a bound on streams
 * served at once overall. {@link DirectLimiter.admit} answers before any byte of the request is
 * read; a refused stream is answered with an error at once, so a peer that opens streams in a
 * loop costs the server a counter, not a slot. Stalled streams are cut separately, by an idle
 * timeout ({@link idleSignal} in `stream_framing.ts`).
 *
 * ```ts
 * import { DirectLimiter } from "./direct_limits.ts";
 *
 * const limits = new DirectLimiter({ perPeerConcurrency: 1 });
 * const first = limits.admit("peer-a"); // { ok: true, release }
 * const second = limits.admit("peer-a"); // { ok: false, code: "busy", ... }
 * if (first.ok) first.release();
 * ```
 *
 * @module
 */
import { RateLimiter } from "./rate_limit.ts";

/** Options of {@link DirectLimiter}. */
export interface DirectLimitOptions {
  /** Streams of one peer served at once. @default 2 */
  readonly perPeerConcurrency?: number;
  /** Streams served at once, all peers together. @default 64 */
  readonly totalConcurrency?: number;
  /** Streams one peer may open in a burst. @default 10 */
  readonly perPeerBurst?: number;
  /** Streams per second one peer may open after its burst. @default 2 */
  readonly perPeerPerSecond?: number;
  /** Time a stream may go without progress (a byte read or written) before it is cut. @default 2_000 */
  readonly idleTimeoutMs?: number;
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** Why a stream was not served. */
export type DirectRefusalCode = "busy" | "server_busy" | "rate_limited";

/** The answer of {@link DirectLimiter.admit}. */
export type Admission =
  | { readonly ok: true; readonly release: () => void }
  | { readonly ok: false; readonly code: DirectRefusalCode; readonly reason: string };

/** Counters of a {@link DirectLimiter}. */
export interface DirectLimitStats {
  readonly admitted: number;
  readonly refused: Readonly<Record<DirectRefusalCode, number>>;
  readonly active: number;
}

/** Per-peer concurrency and rate limits for the direct protocols. */
export class DirectLimiter {
  readonly perPeerConcurrency: number;
  readonly totalConcurrency: number;
  readonly idleTimeoutMs: number;
  readonly #rate: RateLimiter;
  readonly #active = new Map<string, number>();
  #total = 0;
  #admitted = 0;
  readonly #refused: Record<DirectRefusalCode, number> = {
    busy: 0,
    server_busy: 0,
    rate_limited: 0,
  };

  constructor(options: DirectLimitOptions = {}) {
    const {
      perPeerConcurrency = 2,
      totalConcurrency = 64,
      idleTimeoutMs = 2_000,
    } = options;
    for (const [name, value] of Object.entries({ perPeerConcurrency, totalConcurrency })) {
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new RangeError(`Cannot create direct limiter: ${name} must be a positive integer`);
      }
    }
    if (!(idleTimeoutMs > 0)) {
      throw new RangeError(`Cannot create direct limiter: idleTimeoutMs must be positive`);
    }
    this.perPeerConcurrency = perPeerConcurrency;
    this.totalConcurrency = totalConcurrency;
    this.idleTimeoutMs = idleTimeoutMs;
    this.#rate = new RateLimiter({
      capacity: options.perPeerBurst ?? 10,
      refillPerSecond: options.perPeerPerSecond ?? 2,
      ...(options.now !== undefined ? { now: options.now } : {}),
    });
  }

  /** Admits a stream of `peer`, or says why not. Call `release` once it is done. */
  admit(peer: string): Admission {
    const active = this.#active.get(peer) ?? 0;
    if (active >= this.perPeerConcurrency) {
      return this.#refuse("busy", `${active} streams of this peer already open`);
    }
    if (this.#total >= this.totalConcurrency) {
      return this.#refuse("server_busy", `${this.#total} streams already open`);
    }
    if (!this.#rate.take(peer)) {
      return this.#refuse("rate_limited", "too many streams per second from this peer");
    }
    this.#active.set(peer, active + 1);
    this.#total++;
    this.#admitted++;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#total--;
        const left = (this.#active.get(peer) ?? 1) - 1;
        if (left === 0) this.#active.delete(peer);
        else this.#active.set(peer, left);
      },
    };
  }

  /** Counters since creation. */
  stats(): DirectLimitStats {
    return { admitted: this.#admitted, refused: { ...this.#refused }, active: this.#total };
  }

  #refuse(code: DirectRefusalCode, reason: string): Admission {
    this.#refused[code]++;
    return { ok: false, code, reason };
  }
}
