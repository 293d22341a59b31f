/**
 * Deadline timers. A machine asks for a deadline with a `timer.arm` request; when the clock
 * reaches it, the firing enters the node through the inbox as `timer.fired` `{ key, due }`,
 * stamped and journaled like any other outside event. Arming a key again replaces the earlier
 * timer of that actor and key.
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/** Timers keyed by actor id and deadline key. */
export class Timers {
  readonly #clock: Clock;
  readonly #fire: (actorId: string, key: string, due: number) => void;
  /** Armed deadlines by actor, then by key. */
  readonly #byActor = new Map<string, Map<string, { handle: unknown; due: number }>>();
  #size = 0;

  constructor(clock: Clock, fire: (actorId: string, key: string, due: number) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Number of armed timers. */
  get size(): number {
    return this.#size;
  }

  /** Arms (or re-arms) the deadline `key` of `actorId` at virtual time `due`. */
  arm(actorId: string, key: string, due: number): void {
    let keys = this.#byActor.get(actorId);
    const existing = keys?.get(key);
    if (existing !== undefined) {
      if (existing.due === due) return;
      this.#clock.clearTimeout(existing.handle);
    } else {
      this.#size++;
    }
    if (keys === undefined) this.#byActor.set(actorId, keys = new Map());
    const handle = this.#clock.setTimeout(() => {
      this.#forget(actorId, key);
      this.#fire(actorId, key, due);
    }, Math.max(0, due - this.#clock.now()));
    keys.set(key, { handle, due });
  }

  #forget(actorId: string, key: string): void {
    const keys = this.#byActor.get(actorId);
    if (keys === undefined || !keys.delete(key)) return;
    this.#size--;
    if (keys.size === 0) this.#byActor.delete(actorId);
  }

  /** Cancels the deadline `key` of `actorId`, if armed. */
  cancel(actorId: string, key: string): void {
    const existing = this.#byActor.get(actorId)?.get(key);
    if (existing === undefined) return;
    this.#clock.clearTimeout(existing.handle);
    this.#forget(actorId, key);
  }

  /** Cancels every deadline of `actorId`. */
  cancelActor(actorId: string): void {
    const keys = this.#byActor.get(actorId);
    if (keys === undefined) return;
    for (const { handle } of keys.values()) this.#clock.clearTimeout(handle);
    this.#size -= keys.size;
    this.#byActor.delete(actorId);
  }

  /** Cancels every timer. */
  cancelAll(): void {
    for (const keys of this.#byActor.values()) {
      for (const { handle } of keys.values()) this.#clock.clearTimeout(handle);
    }
    this.#byActor.clear();
    this.#size = 0;
  }
}
