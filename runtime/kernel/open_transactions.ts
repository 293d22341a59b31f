/**
 * The transactions a node asked for and has not heard back from, by actor. A transaction closes
 * when its send ends (it went through, or was refused), or when the chain event that confirms it
 * arrives (`confirmsTransaction`): a node that crashed, or lost the answer, sees the event instead
 * and does not send the transaction again. The journal is told of each closing.
 *
 * @module
 */
import { confirmsTransaction } from "../../chain/translate.ts";
import type { EffectRecord, InboundEvent } from "./inbox.ts";

/** Open transactions, by actor then effect id. */
export class OpenTransactions {
  readonly #open = new Map<string, Map<string, EffectRecord>>();
  readonly #closed: (id: string) => void;

  /** `closed` is told each transaction that closes (the journal records it). */
  constructor(closed: (id: string) => void) {
    this.#closed = closed;
  }

  /** Notes a transaction sent (or open in the journal at a crash). */
  note(record: EffectRecord): void {
    if (!record.effect.type.startsWith("chain.")) return;
    let mine = this.#open.get(record.actor);
    if (mine === undefined) this.#open.set(record.actor, mine = new Map());
    mine.set(record.id, record);
  }

  /** Whether effect `id` of `actor` is still open here. */
  isOpen(actor: string, id: string): boolean {
    return this.#open.get(actor)?.has(id) === true;
  }

  /** Forgets effect `id` (its outcome event closes it in the journal). */
  forget(id: string, actor: string): void {
    const mine = this.#open.get(actor);
    if (mine?.delete(id) && mine.size === 0) this.#open.delete(actor);
  }

  /** Closes effect `id` of `actor`, here and in the journal (open or not: any effect). */
  close(id: string, actor: string): void {
    this.forget(id, actor);
    this.#closed(id);
  }

  /** Closes the open transactions of `actor` that the chain event `event` confirms. */
  confirmed(actor: string, event: InboundEvent): void {
    const mine = this.#open.get(actor);
    if (mine === undefined) return;
    for (const record of [...mine.values()]) {
      if (confirmsTransaction(event, record.effect)) this.close(record.id, actor);
    }
  }

  /** Forgets everything of `actor` (retired). */
  drop(actor: string): void {
    this.#open.delete(actor);
  }
}
