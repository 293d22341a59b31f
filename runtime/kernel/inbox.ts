/**
 * The inbox: the one way into a node. Every event from outside (a network message, a chain
 * event, a deadline firing, an operator command, the outcome of an effect) is stamped with a
 * sequence number, the virtual time, its source and its target actor, appended to the journal,
 * and only then delivered. Delivery is in stamp order; an event submitted while another is
 * being delivered waits its turn, so a node's history is one sequence.
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/** Where an event came from. */
export type Source = "network" | "chain" | "timer" | "operator" | "effect" | "system";

/** Every source, in a fixed order. */
export const SOURCES: readonly Source[] = [
  "network",
  "chain",
  "timer",
  "operator",
  "effect",
  "system",
];

/** An event as it crosses the boundary, before it is stamped. */
export interface InboundEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** A stamped event: what the journal records and the tree delivers. */
export interface Envelope {
  readonly seq: number;
  /** Virtual time, ms. */
  readonly at: number;
  readonly source: Source;
  /** The addressed actor: `job:<id>`, `peer:<id>`, or `node`. */
  readonly target: string;
  readonly event: InboundEvent;
  /**
   * The effect this event is the outcome of (its {@link EffectRecord.id}), if any: journaling
   * the event closes the effect, so recovery does not send it again.
   */
  readonly effect?: string;
}

/**
 * An effect request an actor emitted, as the journal keeps it: `id` is `<seq>.<n>`, the n-th
 * effect emitted while delivering the envelope `seq` (so ids are the same in every replay).
 */
export interface EffectRecord {
  readonly id: string;
  readonly actor: string;
  readonly effect: { readonly type: string; readonly [key: string]: unknown };
}

/**
 * Thrown by {@link Inbox.submit} when the journal did not take the event: nothing was
 * delivered or acknowledged, and the inbox takes nothing more (the node must stop).
 * Match on `error.name === "JournalAppendError"`.
 */
export class JournalAppendError extends Error {
  override readonly name = "JournalAppendError";
  readonly code = "journal_append_failed";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** Where stamped events are appended before delivery. */
export interface JournalSink {
  /** The sequence number the next appended envelope gets. */
  nextSeq(): number;
  append(envelope: Envelope): void;
  /**
   * Called by the node after each delivery with what it did and the addressed actor (absent
   * when there is none), so a journal can record the outcome and persist snapshots.
   */
  delivered?(
    envelope: Envelope,
    outcome: { readonly status: "accepted" | "rejected" | "crashed"; readonly reason?: string },
    actor: DeliveredActor | undefined,
    effects?: readonly EffectRecord[],
  ): void;
  /**
   * Called when an effect finished without an outcome event of its own (a publish, a
   * transaction that went through; its chain event follows): it is no longer open.
   */
  effectClosed?(id: string): void;
  /**
   * Called when a finished job's actor is retired (during the delivery that retired it): a
   * journal keeps `summary` in place of the actor's snapshot.
   */
  retired?(actorId: string, summary: unknown): void;
}

/** What a journal sees of the actor an envelope was delivered to (an `ActorCell`). */
export interface DeliveredActor {
  readonly id: string;
  /** The state value rendered as text. */
  readonly state: string;
  readonly done: boolean;
  readonly snapshot: { readonly context: unknown };
  /** The snapshot persisted after the last accepted event. */
  readonly persisted: unknown;
}

/** A journal kept in memory (tests, and nodes that do not record). */
export class MemoryJournal implements JournalSink {
  readonly entries: Envelope[] = [];
  #limit: number;

  /** Keeps at most `limit` entries (oldest dropped); `Infinity` keeps all. */
  constructor(options: { limit?: number } = {}) {
    this.#limit = options.limit ?? Infinity;
  }

  #next = 1;
  nextSeq(): number {
    return this.#next;
  }

  append(envelope: Envelope): void {
    this.#next = envelope.seq + 1;
    // Keeping nothing (an inbox's default) pushes nothing: a push and a shift each event made
    // V8 trim and grow the array's store again and again.
    if (this.#limit === 0) return;
    this.entries.push(envelope);
    if (this.entries.length > this.#limit) this.entries.shift();
  }
}

/** Options of an {@link Inbox}. */
export interface InboxOptions {
  readonly clock: Clock;
  /** @default a {@link MemoryJournal} keeping nothing */
  readonly journal?: JournalSink;
  /** Delivers one stamped event; must not throw (the tree reports failures itself). */
  readonly deliver: (envelope: Envelope) => void;
  /** Told once when the journal refuses an append: the inbox has stopped for good. */
  readonly onJournalFailure?: (error: JournalAppendError) => void;
}

/** The single inbox of a node. */
export class Inbox {
  readonly #clock: Clock;
  readonly #journal: JournalSink;
  readonly #deliver: (envelope: Envelope) => void;
  readonly #onJournalFailure: ((error: JournalAppendError) => void) | undefined;
  readonly #queue: Envelope[] = [];
  #draining = false;
  #seq: number;
  #closed = false;
  #failure: JournalAppendError | undefined;
  #submitted = 0;

  constructor(options: InboxOptions) {
    this.#clock = options.clock;
    this.#journal = options.journal ?? new MemoryJournal({ limit: 0 });
    this.#deliver = options.deliver;
    this.#onJournalFailure = options.onJournalFailure;
    this.#seq = this.#journal.nextSeq();
  }

  /** How many events were submitted since this inbox was created. */
  get submitted(): number {
    return this.#submitted;
  }

  /** Why the inbox stopped taking events: the journal refused an append. */
  get failure(): JournalAppendError | undefined {
    return this.#failure;
  }

  /** Stops accepting events (a stopping node). */
  close(): void {
    this.#closed = true;
  }

  /**
   * Stamps `event`, appends it to the journal, and delivers it (now, or after the delivery in
   * progress). Returns the envelope. The sequence number is taken only once the journal took
   * the event: if the append fails, nothing is delivered, a {@link JournalAppendError} is
   * thrown, and the inbox takes nothing more. `options.effect` names the effect this event is
   * the outcome of (see {@link Envelope.effect}).
   */
  submit(
    source: Source,
    target: string,
    event: InboundEvent,
    options: { readonly effect?: string } = {},
  ): Envelope {
    if (this.#failure !== undefined) {
      throw new JournalAppendError(
        `Cannot submit "${event?.type}" to "${target}": the journal failed earlier: ${this.#failure.message}`,
        { cause: this.#failure },
      );
    }
    if (this.#closed) {
      throw new Error(`Cannot submit "${event.type}" to "${target}": the inbox is closed`);
    }
    if (typeof event?.type !== "string" || event.type.length === 0) {
      throw new TypeError(`Cannot submit an event without a type to "${target}"`);
    }
    const seq = this.#seq;
    const at = this.#clock.now();
    const envelope: Envelope = options.effect === undefined
      ? { seq, at, source, target, event }
      : { seq, at, source, target, event, effect: options.effect };
    try {
      this.#journal.append(envelope);
    } catch (error) {
      this.#failure = new JournalAppendError(
        `Cannot journal "${event.type}" for "${target}" (seq ${envelope.seq}): ${
          (error as Error)?.message ?? error
        }`,
        { cause: error },
      );
      this.#closed = true;
      this.#onJournalFailure?.(this.#failure);
      throw this.#failure;
    }
    this.#seq++;
    this.#submitted++;
    this.#queue.push(envelope);
    this.#drain();
    return envelope;
  }

  /**
   * Delivers an envelope that is already stamped and journaled (replay and recovery): it is
   * not appended again.
   */
  redeliver(envelope: Envelope): void {
    if (envelope.seq >= this.#seq) this.#seq = envelope.seq + 1;
    this.#queue.push(envelope);
    this.#drain();
  }

  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    // Walked by index and emptied at the end (not shifted: see MemoryJournal.append); what a
    // delivery submits is pushed behind and delivered in this loop, in order.
    const queue = this.#queue;
    let delivered = 0;
    try {
      while (delivered < queue.length) this.#deliver(queue[delivered++]!);
    } finally {
      // A delivery that threw is dropped with those before it; the rest wait for the next drain.
      if (delivered >= queue.length) queue.length = 0;
      else queue.splice(0, delivered);
      this.#draining = false;
    }
  }
}
