/**
 * Bids and attestations that arrive together enter their job as one event.
 *
 * Each bid and each attestation is its own wire message (protocol v2 is unchanged), but under
 * load many reach an owner in the same turn of the event loop: the 8 bids of one auction, the 3
 * attestations of one result. Every event the node journals and delivers costs the same fixed
 * work (stamping, the journal, the machine's step, the observers), so the ingress hands those of
 * one job to a {@link Batcher}, which submits them at the end of the turn (a microtask) as one
 * `bids.received` or `job.attestations.received` event (`machines/job_machine.ts`: each bid or
 * attestation in it is still judged, refused and logged alone). One that arrived alone is
 * submitted as it came (`bid.received`, `job.attestation.received`): a quiet network journals
 * what it did before. A batch holds at most {@link MAX_BATCH}; a larger burst is split.
 *
 * Order: what the node submits from the network otherwise goes through {@link Batcher.flush}
 * first, so a withdrawal never overtakes the bid it withdraws. What other sources submit in the
 * same turn (a chain event handed over in a microtask) may come before a batch; that order is
 * journaled, and replay follows the journal.
 *
 * @module
 */
import type { AddressedEvent } from "../../machines/address.ts";
import { MAX_BATCH } from "../../machines/job_machine.ts";

/** The single events a {@link Batcher} gathers, and the batch event each becomes. */
export const BATCHED: Readonly<Record<string, string>> = {
  "bid.received": "bids.received",
  "job.attestation.received": "job.attestations.received",
};

/** Options of a {@link Batcher}. */
export interface BatcherOptions {
  /** Hands an event to the inbox. */
  readonly submit: (addressed: AddressedEvent) => void;
  /**
   * Runs the flush at the end of the turn.
   * @default queueMicrotask
   */
  readonly schedule?: (flush: () => void) => void;
}

/** Gathers the bids and attestations of each job that arrive in one turn (see the module doc). */
export class Batcher {
  readonly #submit: (addressed: AddressedEvent) => void;
  readonly #schedule: (flush: () => void) => void;
  /** Pending events by target and type, in arrival order. */
  readonly #pending = new Map<string, AddressedEvent[]>();
  #scheduled = false;
  #batches = 0;

  constructor(options: BatcherOptions) {
    this.#submit = options.submit;
    this.#schedule = options.schedule ?? queueMicrotask;
  }

  /** Whether `type` is an event this batcher gathers. */
  static gathers(type: string): boolean {
    return BATCHED[type] !== undefined;
  }

  /** How many batch events (of two or more) were submitted. */
  get batches(): number {
    return this.#batches;
  }

  /** Takes `addressed` (a gathered type) to submit at the end of the turn. */
  add(addressed: AddressedEvent): void {
    if (!Batcher.gathers(addressed.event.type)) {
      throw new TypeError(`Cannot batch "${addressed.event.type}": not a bid or an attestation`);
    }
    const key = `${addressed.event.type}\n${addressed.target}`;
    const pending = this.#pending.get(key);
    if (pending === undefined) this.#pending.set(key, [addressed]);
    else pending.push(addressed);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#schedule(() => this.flush());
    }
  }

  /** Submits everything pending now: one event per target and type, split at MAX_BATCH. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.size === 0) return;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const events of pending) {
      for (let from = 0; from < events.length; from += MAX_BATCH) {
        this.#submitBatch(events.slice(from, from + MAX_BATCH));
      }
    }
  }

  #submitBatch(events: readonly AddressedEvent[]): void {
    const first = events[0]!;
    if (events.length === 1) return this.#submit(first);
    const event = first.event.type === "bid.received"
      ? { type: BATCHED["bid.received"]!, bids: events.map((e) => e.event["bid"]) }
      : {
        type: BATCHED["job.attestation.received"]!,
        attestations: events.map(({ event: { type: _type, ...attestation } }) => attestation),
      };
    this.#batches++;
    this.#submit({ target: first.target, event });
  }
}
