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
  readonly #handles = new Map<string, { handle: unknown; due: number }>();

  constructor(clock: Clock, fire: (actorId: string, key: string, due: number) => void) {
    this.#clock = clock;
    this.#fire = fire;
  }

  /** Number of armed timers. */
  get size(): number {
    return this.#handles.size;
  }

  /** Arms (or re-arms) the deadline `key` of `actorId` at virtual time `due`. */
  arm(actorId: string, key: string, due: number): void {
    const id = `${actorId}\u0000${key}`;
    const existing = this.#handles.get(id);
    if (existing !== undefined) {
      if (existing.due === due) return;
      this.#clock.clearTimeout(existing.handle);
    }
    const handle = this.#clock.setTimeout(() => {
      this.#handles.delete(id);
      this.#fire(actorId, key, due);
    }, Math.max(0, due - this.#clock.now()));
    this.#handles.set(id, { handle, due });
  }

  /** Cancels the deadline `key` of `actorId`, if armed. */
  cancel(actorId: string, key: string): void {
    const id = `${actorId}\u0000${key}`;
    const existing = this.#handles.get(id);
    if (existing === undefined) return;
    this.#clock.clearTimeout(existing.handle);
    this.#handles.delete(id);
  }

  /** Cancels every timer. */
  cancelAll(): void {
    for (const { handle } of this.#handles.values()) this.#clock.clearTimeout(handle);
    this.#handles.clear();
  }
}
