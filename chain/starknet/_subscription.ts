/**
 * Private to the Starknet adapter: the poll loop of one subscription (cursor store, reorg checks
 * against remembered block hashes, delivery once per event identity). See the adapter's module doc
 * ("Events").
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ChainCursor, ChainEvent } from "../port.ts";
import {
  type BlockRef,
  compareCursors,
  type CursorStore,
  MemoryCursorStore,
} from "../event_cursor.ts";
import { type EventReader, ReadReorg, type Scanned } from "./_events.ts";
import { delay, firstLine, rpcText, sameFelt } from "./_rpc.ts";

const logger = getLogger(["ciro", "chain", "starknet"]);

/** What a subscription reports when a reorg revoked events it had delivered. */
export interface ReorgNotice {
  /** The last block that is still on the chain; everything after it was revoked. */
  readonly forkBlock: number;
  /** The delivered events that are no longer on the chain (those this process remembers). */
  readonly revoked: readonly ChainEvent[];
}

/** Options of {@link StarknetChain.subscribe}. */
export interface StarknetSubscribeOptions {
  /** @default {the cursor store's cursor, else block 0} */
  readonly from?: ChainCursor;
  /** @default {the adapter's pollMs} */
  readonly pollMs?: number;
  /** Called after a reorg, before the events of the new chain are delivered. */
  readonly onReorg?: (notice: ReorgNotice) => void;
}

/** The poll loop of one subscription. */
export class Subscription {
  readonly #reader: EventReader;
  readonly #handler: (event: ChainEvent) => void;
  readonly #options: StarknetSubscribeOptions;
  readonly #signal: AbortSignal;
  readonly #store: CursorStore;
  #cursor: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  #recent: BlockRef[] = [];
  /** Delivered events by `(block hash, tx hash, event_index or ordinal)`, within the reorg window. */
  readonly #delivered = new Map<string, ChainEvent>();

  constructor(
    reader: EventReader,
    store: CursorStore | undefined,
    handler: (event: ChainEvent) => void,
    options: StarknetSubscribeOptions,
    signal: AbortSignal,
  ) {
    this.#reader = reader;
    this.#handler = handler;
    this.#options = options;
    this.#signal = signal;
    this.#store = store ?? new MemoryCursorStore();
  }

  /**
   * Starts at the stored or given cursor, then polls every `pollMs` until the signal aborts; a
   * failed poll is logged and retried.
   */
  async run(pollMs: number): Promise<void> {
    const signal = this.#signal;
    try {
      await this.start();
      while (!signal.aborted) {
        try {
          await this.poll();
        } catch (error) {
          if (signal.aborted) break;
          logger.warn("Polling Starknet events failed; retrying in {pollMs} ms: {error}", {
            pollMs,
            error: firstLine(rpcText(error)),
          });
        }
        await delay(pollMs, signal).catch(() => {});
      }
    } catch (error) {
      if (!signal.aborted) {
        logger.error("The Starknet event subscription stopped: {error}", {
          error: firstLine(rpcText(error)),
        });
      }
    }
  }

  async start(): Promise<void> {
    const stored = await this.#store.load({ signal: this.#signal });
    const from = this.#options.from;
    if (from !== undefined) {
      this.#cursor = from;
      this.#recent = stored !== undefined && compareCursors(stored.cursor, from) === 0
        ? [...stored.recentBlocks]
        : [];
    } else if (stored !== undefined) {
      this.#cursor = stored.cursor;
      this.#recent = [...stored.recentBlocks];
    }
  }

  async poll(): Promise<void> {
    const signal = this.#signal;
    const safe = await this.#reader.safeHead(signal);
    await this.#checkReorg(signal);
    if (safe < this.#cursor.blockNumber) return;
    const safeHash = await this.#reader.blockHash(safe, signal);
    if (safeHash === undefined) return;
    try {
      await this.#reader.scan(this.#cursor, safe, signal, async (item) => {
        if (signal.aborted) return false;
        await this.#deliver(item);
        return true;
      });
    } catch (error) {
      if (error instanceof ReadReorg) {
        logger.warn("Blocks changed while reading events: {detail}", { detail: error.message });
        return;
      }
      throw error;
    }
    if (signal.aborted) return;
    // The confirmed head must not have changed while we read up to it.
    const again = await this.#reader.blockHash(safe, signal);
    if (!sameFelt(again, safeHash)) return;
    this.#remember({ blockNumber: safe, blockHash: safeHash });
    if (compareCursors(this.#cursor, { blockNumber: safe + 1, eventIndex: 0 }) < 0) {
      this.#cursor = { blockNumber: safe + 1, eventIndex: 0 };
    }
    this.#prune(safe);
    await this.#save();
  }

  async #deliver(item: Scanned): Promise<void> {
    const { raw, cursor, event } = item;
    const last = this.#recent.at(-1);
    if (last !== undefined && last.blockNumber === raw.block_number) {
      if (!sameFelt(last.blockHash, raw.block_hash)) {
        throw new ReadReorg(
          `block ${raw.block_number} was ${last.blockHash}, now ${raw.block_hash}`,
        );
      }
    } else if (last !== undefined && last.blockNumber > raw.block_number) {
      throw new ReadReorg(`event of block ${raw.block_number} after block ${last.blockNumber}`);
    } else {
      this.#remember({ blockNumber: raw.block_number, blockHash: raw.block_hash });
    }
    this.#cursor = { blockNumber: cursor.blockNumber, eventIndex: cursor.eventIndex + 1 };
    const key = `${BigInt(raw.block_hash)}:${BigInt(raw.transaction_hash)}:${raw.event_index}`;
    if (event !== undefined && !this.#delivered.has(key)) {
      this.#delivered.set(key, event);
      try {
        this.#handler(event);
      } catch (error) {
        logger.error("Subscriber threw on {event}: {error}", {
          event: `${event.name}@${event.blockNumber}:${event.eventIndex}`,
          error,
        });
      }
    }
    await this.#save();
  }

  async #checkReorg(signal: AbortSignal): Promise<void> {
    // A block hash commits to its parent's, so when the newest remembered block is still there,
    // so are the older ones: one request per poll. Only on a mismatch walk them all, oldest
    // first, to find the first block that changed.
    const newest = this.#recent.at(-1);
    if (newest === undefined) return;
    if (sameFelt(await this.#reader.blockHash(newest.blockNumber, signal), newest.blockHash)) {
      return;
    }
    let mismatch = -1;
    for (let i = 0; i < this.#recent.length; i++) {
      const ref = this.#recent[i]!;
      const actual = await this.#reader.blockHash(ref.blockNumber, signal);
      if (!sameFelt(actual, ref.blockHash)) {
        mismatch = i;
        break;
      }
    }
    if (mismatch < 0) return;
    const first = this.#recent[mismatch]!;
    const forkBlock = mismatch > 0
      ? this.#recent[mismatch - 1]!.blockNumber
      : first.blockNumber - 1;
    if (mismatch === 0) {
      logger.error(
        "Reorg reaches block {block}, the oldest remembered; blocks before it are assumed final",
        { block: first.blockNumber },
      );
    }
    const revoked: ChainEvent[] = [];
    for (const [key, event] of this.#delivered) {
      if (event.blockNumber > forkBlock) {
        revoked.push(event);
        this.#delivered.delete(key);
      }
    }
    revoked.sort((a, b) => a.blockNumber - b.blockNumber || a.eventIndex - b.eventIndex);
    this.#recent = this.#recent.slice(0, mismatch);
    const rewind = { blockNumber: forkBlock + 1, eventIndex: 0 };
    if (compareCursors(rewind, this.#cursor) < 0) this.#cursor = rewind;
    logger.warn("Reorg after block {forkBlock}: {count} delivered events revoked", {
      forkBlock,
      count: revoked.length,
    });
    await this.#save();
    try {
      this.#options.onReorg?.({ forkBlock, revoked });
    } catch (error) {
      logger.error("onReorg threw: {error}", { error });
    }
  }

  #remember(ref: BlockRef): void {
    const last = this.#recent.at(-1);
    if (last !== undefined && last.blockNumber === ref.blockNumber) return;
    this.#recent.push(ref);
  }

  #prune(safe: number): void {
    const floor = safe - this.#reader.settings.reorgWindow;
    while (this.#recent.length > 1 && this.#recent[0]!.blockNumber <= floor) this.#recent.shift();
    const oldest = this.#recent[0]?.blockNumber ?? 0;
    for (const [key, event] of this.#delivered) {
      if (event.blockNumber < oldest) this.#delivered.delete(key);
    }
  }

  #save(): Promise<void> {
    // Not aborted by unsubscribe: the cursor of a delivered event must be saved.
    return this.#store.save({ cursor: this.#cursor, recentBlocks: this.#recent });
  }
}
