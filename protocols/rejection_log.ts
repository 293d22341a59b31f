/**
 * The rejection log: every message or request refused at the boundary is logged at warn with
 * its peer, where it came in (topic or protocol), a reason code and the detail, but rate-limited
 * per peer and overall, so a flood of bad messages cannot flood the log. What is not written is
 * counted and reported on the peer's next written line (`suppressed`), and in
 * {@link RejectionLog.stats}. The libp2p host logs through one; a node can log its own
 * rejections (rule violations found after decoding) through the same helper.
 *
 * ```ts
 * import { RejectionLog } from "./rejection_log.ts";
 *
 * const rejections = new RejectionLog();
 * rejections.reject("12D3KooW…", "/ciro/bids/1", "too_deep", "Nested too deep: more than 16 levels");
 * ```
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { RateLimiter } from "./rate_limit.ts";

/** Options of {@link RejectionLog}. */
export interface RejectionLogOptions {
  /** Lines one peer may cause in a burst. @default 5 */
  readonly perPeerBurst?: number;
  /** Lines per second one peer may cause after its burst. @default 0.2 (one per 5 s) */
  readonly perPeerPerSecond?: number;
  /** Lines all peers together may cause in a burst. @default 50 */
  readonly totalBurst?: number;
  /** Lines per second all peers together may cause after the burst. @default 5 */
  readonly totalPerSecond?: number;
  /** Where lines go. @default the `ciro.network` logger */
  readonly logger?: Logger;
  /** The clock, in milliseconds. @default Date.now */
  readonly now?: () => number;
}

/** Counters of a {@link RejectionLog}. */
export interface RejectionStats {
  /** Rejections seen, by reason code. */
  readonly byCode: Readonly<Record<string, number>>;
  /** Lines written. */
  readonly logged: number;
  /** Rejections not written because their peer, or everyone, was over the log budget. */
  readonly suppressed: number;
}

/** Logs boundary rejections at warn, rate-limited per peer and overall. */
export class RejectionLog {
  readonly #perPeer: RateLimiter;
  readonly #total: RateLimiter;
  readonly #logger: Logger;
  readonly #pending = new Map<string, number>();
  readonly #byCode: Record<string, number> = {};
  #logged = 0;
  #suppressed = 0;

  constructor(options: RejectionLogOptions = {}) {
    const now = options.now ?? Date.now;
    this.#perPeer = new RateLimiter({
      capacity: options.perPeerBurst ?? 5,
      refillPerSecond: options.perPeerPerSecond ?? 0.2,
      now,
    });
    this.#total = new RateLimiter({
      capacity: options.totalBurst ?? 50,
      refillPerSecond: options.totalPerSecond ?? 5,
      now,
    });
    this.#logger = options.logger ?? getLogger(["ciro", "network"]);
  }

  /**
   * Records that `peer`'s message on `where` (a topic or protocol) was refused for `code`;
   * writes a warning unless the peer or everyone is over the log budget.
   */
  reject(peer: string, where: string, code: string, detail: string): void {
    this.#byCode[code] = (this.#byCode[code] ?? 0) + 1;
    if (!this.#perPeer.take(peer) || !this.#total.take("*")) {
      this.#suppressed++;
      if (this.#pending.size >= 10_000 && !this.#pending.has(peer)) {
        const oldest = this.#pending.keys().next();
        if (!oldest.done) this.#pending.delete(oldest.value);
      }
      this.#pending.set(peer, (this.#pending.get(peer) ?? 0) + 1);
      return;
    }
    const suppressed = this.#pending.get(peer) ?? 0;
    this.#pending.delete(peer);
    this.#logged++;
    this.#logger.warn(
      "Rejected {code} on {where} from {peer}: {detail} ({suppressed} more not logged)",
      { peer, where, code, detail, suppressed },
    );
  }

  /** Counters since creation. */
  stats(): RejectionStats {
    return { byCode: { ...this.#byCode }, logged: this.#logged, suppressed: this.#suppressed };
  }
}
