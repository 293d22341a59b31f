/**
 * The node's side of the chain subscription: every chain event becomes actor events submitted
 * to the inbox (journaled, then delivered), and the node knows how far it has read, so a node
 * that was away can catch up with the chain before it sends anything again.
 *
 * @module
 */
import type { ChainCursor, ChainEvent, ChainPort, EventIndex } from "../../chain/port.ts";
import { chainEventToActorEvents } from "../../chain/translate.ts";
import type { AddressedEvent } from "../../machines/address.ts";
import type { Clock } from "./clock.ts";

/** Orders two chain positions. */
export function compareCursors(a: ChainCursor, b: ChainCursor): number {
  return a.blockNumber - b.blockNumber || a.eventIndex - b.eventIndex;
}

/** Options of a {@link ChainSync}. */
export interface ChainSyncOptions {
  readonly chain: ChainPort;
  /** Hands one translated chain event to the inbox. */
  readonly submit: (addressed: AddressedEvent) => void;
  /** Told each chain event as it comes (before it is translated). */
  readonly onEvent?: (event: ChainEvent) => void;
  /**
   * The chain events this node needs (see `SubscribeOptions.interest`): the others are skipped,
   * by the port where it can filter, else here, before they cost anything. @default all
   */
  readonly interest?: (event: ChainEvent) => boolean;
  /** `interest` in a shape the port can index (see `SubscribeOptions.index`). */
  readonly index?: EventIndex;
  /** The clock `catchUp` rechecks with. @default the wall clock's timers */
  readonly clock?: Pick<Clock, "setTimeout" | "clearTimeout">;
}

/** Follows the chain for one node. */
export class ChainSync {
  readonly #chain: ChainPort;
  readonly #submit: (addressed: AddressedEvent) => void;
  readonly #onEvent: ((event: ChainEvent) => void) | undefined;
  readonly #clock: Pick<Clock, "setTimeout" | "clearTimeout"> | undefined;
  readonly #interest: ((event: ChainEvent) => boolean) | undefined;
  readonly #index: EventIndex | undefined;
  /** Where the subscription stands: after the last chain event it handed over. */
  #seen: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  /** Where the port says the subscription stands, if it tracks it (`SubscribeOptions.track`). */
  #position: (() => ChainCursor | undefined) | undefined;
  /** Woken after each chain event the subscription hands over. */
  readonly #waiters = new Set<() => void>();

  constructor(options: ChainSyncOptions) {
    this.#chain = options.chain;
    this.#submit = options.submit;
    this.#onEvent = options.onEvent;
    this.#clock = options.clock;
    this.#interest = options.interest;
    this.#index = options.index;
  }

  /** Where the subscription stands. */
  get seen(): ChainCursor {
    const tracked = this.#position?.();
    return tracked !== undefined && compareCursors(tracked, this.#seen) > 0 ? tracked : this.#seen;
  }

  /**
   * Subscribes from `from`; returns the unsubscribe. With `newsFrom` before `from`, the events
   * between them are read first and told to `onEvent` alone (news the node remembers without
   * journaling it), not submitted again.
   */
  subscribe(from: ChainCursor, newsFrom: ChainCursor = from): () => void {
    const start = compareCursors(newsFrom, from) < 0 ? newsFrom : from;
    this.#seen = start;
    this.#position = undefined;
    const interest = this.#interest;
    // Only a port that says it filters is given the filter: one that wraps another (a decorator
    // that delays or holds events) would let the inner port's `passed` overtake its events.
    const filtered = interest !== undefined && this.#chain.filtersEvents === true;
    return this.#chain.subscribe((event) => {
      if (interest === undefined || interest(event)) {
        this.#onEvent?.(event);
        if (compareCursors(event, from) >= 0) {
          for (const addressed of chainEventToActorEvents(event)) this.#submit(addressed);
        }
      }
      // Journaled and delivered (the inbox delivers at once outside a delivery): seen.
      this.#passed({ blockNumber: event.blockNumber, eventIndex: event.eventIndex + 1 });
    }, {
      from: start,
      ...(filtered ? { interest, passed: (next: ChainCursor) => this.#passed(next) } : {}),
      ...(filtered && this.#index !== undefined
        ? { index: this.#index, track: (position) => (this.#position = position) }
        : {}),
    });
  }

  /** The subscription stands at `next`: everything before it was handed over or skipped. */
  #passed(next: ChainCursor): void {
    this.#seen = next;
    if (this.#waiters.size === 0) return;
    for (const wake of [...this.#waiters]) wake();
  }

  /**
   * Resolves once every chain event the chain held when it was called was handed over: it reads
   * where the chain's events end, from where the subscription stands (`eventsSince`), then waits
   * until the subscription has handed that last event over. If the chain no longer holds that
   * event (a reorg), it is caught up as soon as nothing is left after the subscription's position
   * (checked every `recheckMs`). A port that tracks the position (`SubscribeOptions.track`)
   * wakes it only with an event it hands over; a position it moved silently is read at the next
   * recheck. Resolves with the position reached; rejects if `signal` aborts.
   */
  async catchUp(signal: AbortSignal, recheckMs = 250): Promise<ChainCursor> {
    const target = await this.#end(this.seen, signal);
    if (target === undefined) return this.seen;
    while (compareCursors(this.seen, target) < 0) {
      const moved = await this.#moved(recheckMs, signal);
      if (!moved && await this.#end(this.seen, signal) === undefined) break;
    }
    return this.seen;
  }

  /** The position after the last event the chain holds at or after `from`, if any. */
  async #end(from: ChainCursor, signal: AbortSignal): Promise<ChainCursor | undefined> {
    const limit = 1000;
    let end: ChainCursor | undefined;
    for (let cursor = from;;) {
      const { events, next } = await this.#chain.eventsSince(cursor, { signal, limit });
      const last = events.at(-1);
      if (last === undefined) return end;
      end = { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 };
      if (events.length < limit) return end;
      cursor = next;
    }
  }

  /** Whether the subscription hands over a chain event within `ms`. */
  #moved(ms: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const done = (moved: boolean) => {
        if (this.#clock) this.#clock.clearTimeout(timer);
        else clearTimeout(timer as number);
        this.#waiters.delete(wake);
        signal.removeEventListener("abort", abort);
        resolve(moved);
      };
      const wake = () => done(true);
      const abort = () => {
        done(false);
        reject(signal.reason);
      };
      const timer: unknown = this.#clock
        ? this.#clock.setTimeout(() => done(false), ms)
        : setTimeout(() => done(false), ms);
      this.#waiters.add(wake);
      if (signal.aborted) abort();
      else signal.addEventListener("abort", abort, { once: true });
    });
  }
}
