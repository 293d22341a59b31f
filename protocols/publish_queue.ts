/**
 * Publishes waiting for topic peers: a bounded queue per topic, each message with an expiry. The
 * libp2p host puts a message here when gossipsub has no peer to send it to (a node that has just
 * started, or restarted, before its connections and subscriptions formed), and takes the topic's
 * messages back, in order, once a peer subscribes to it. What falls out (the oldest of a full
 * topic, a message past its expiry, what is still waiting when the host stops) is counted.
 *
 * ```ts
 * import { PublishQueue } from "./publish_queue.ts";
 *
 * let now = 0;
 * const queue = new PublishQueue({ perTopic: 2, expiryMs: 1_000, now: () => now });
 * queue.push("/ciro/results/1", new Uint8Array([1]));
 * now = 2_000;
 * console.log(queue.take("/ciro/results/1").length, queue.stats().expired); // 0 1
 * ```
 *
 * @module
 */

/** Options of a {@link PublishQueue}. */
export interface PublishQueueOptions {
  /** Messages one topic may have waiting; a full topic drops its oldest. @default 128 */
  readonly perTopic?: number;
  /** How long a message may wait for a topic peer. @default 60_000 */
  readonly expiryMs?: number;
  /** The clock (ms). @default Date.now */
  readonly now?: () => number;
}

/** Counters of a {@link PublishQueue}. */
export interface PublishQueueStats {
  /** Messages waiting now, every topic together. */
  readonly waiting: number;
  /** Messages that waited and were handed back for sending. */
  readonly flushed: number;
  /** Messages dropped because they waited past the expiry. */
  readonly expired: number;
  /** Messages dropped because their topic's queue was full (the oldest goes). */
  readonly overflowed: number;
  /** Messages dropped because the queue was closed with them in it. */
  readonly closed: number;
}

/** A message waiting for a topic peer. */
export interface Waiting {
  readonly data: Uint8Array;
  /** When it is dropped if still waiting (ms, the queue's clock). */
  readonly expiresAt: number;
}

/** A bounded, expiring queue of publishes per topic. */
export class PublishQueue {
  readonly perTopic: number;
  readonly expiryMs: number;
  readonly #now: () => number;
  readonly #topics = new Map<string, Waiting[]>();
  readonly #counters = { flushed: 0, expired: 0, overflowed: 0, closed: 0 };

  constructor(options: PublishQueueOptions = {}) {
    this.perTopic = options.perTopic ?? 128;
    this.expiryMs = options.expiryMs ?? 60_000;
    if (!Number.isInteger(this.perTopic) || this.perTopic < 1) {
      throw new RangeError(
        `Invalid publish queue perTopic ${this.perTopic}: must be an integer >= 1`,
      );
    }
    if (!Number.isFinite(this.expiryMs) || this.expiryMs <= 0) {
      throw new RangeError(`Invalid publish queue expiryMs ${this.expiryMs}: must be > 0`);
    }
    this.#now = options.now ?? Date.now;
  }

  /** Whether `topic` has messages waiting (expired ones included until the next take). */
  has(topic: string): boolean {
    return (this.#topics.get(topic)?.length ?? 0) > 0;
  }

  /** The topics with messages waiting. */
  topics(): string[] {
    return [...this.#topics.keys()];
  }

  /** Queues `data` behind what `topic` has waiting; a full topic drops its oldest first. */
  push(topic: string, data: Uint8Array): void {
    let list = this.#topics.get(topic);
    if (list === undefined) this.#topics.set(topic, list = []);
    this.#expire(list);
    while (list.length >= this.perTopic) {
      list.shift();
      this.#counters.overflowed++;
    }
    list.push({ data, expiresAt: this.#now() + this.expiryMs });
  }

  /**
   * Takes every message of `topic` that has not expired, oldest first (they count as flushed;
   * the expired ones as expired). {@link PublishQueue.putBack} returns those that could not go.
   */
  take(topic: string): Waiting[] {
    const list = this.#topics.get(topic);
    if (list === undefined) return [];
    this.#topics.delete(topic);
    this.#expire(list);
    this.#counters.flushed += list.length;
    return list;
  }

  /**
   * Puts back, ahead of anything queued since, messages taken from `topic` that still found no
   * peer: they keep waiting until their own expiry, bounded like any push.
   */
  putBack(topic: string, messages: readonly Waiting[]): void {
    if (messages.length === 0) return;
    this.#counters.flushed -= messages.length;
    const list = [...messages, ...this.#topics.get(topic) ?? []];
    this.#expire(list);
    while (list.length > this.perTopic) {
      list.shift();
      this.#counters.overflowed++;
    }
    if (list.length > 0) this.#topics.set(topic, list);
  }

  /** Drops expired messages of every topic. */
  expire(): void {
    for (const [topic, list] of this.#topics) {
      this.#expire(list);
      if (list.length === 0) this.#topics.delete(topic);
    }
  }

  /** Drops everything waiting (counted as closed). */
  close(): void {
    for (const list of this.#topics.values()) this.#counters.closed += list.length;
    this.#topics.clear();
  }

  stats(): PublishQueueStats {
    let waiting = 0;
    for (const list of this.#topics.values()) waiting += list.length;
    return { waiting, ...this.#counters };
  }

  #expire(list: Waiting[]): void {
    const now = this.#now();
    let n = 0;
    while (n < list.length && list[n]!.expiresAt <= now) n++;
    if (n > 0) {
      list.splice(0, n);
      this.#counters.expired += n;
    }
  }
}
