/**
 * Private to the Starknet adapter: reading the two contracts' events. {@link EventReader} pages
 * through `starknet_getEvents` as the node's spec version allows (an address list only from
 * 0.10.1; key filters split on error 34 and merged in chain order), skips pre-confirmed events,
 * numbers each event in its block and decodes it. See the adapter's module doc ("Events").
 *
 * @module
 */
import type { RpcProvider } from "starknet";
import { getLogger } from "@logtape/logtape";
import type { ChainCursor, ChainEvent, ChainEventName } from "../port.ts";
import { decodeChainEvent, EVENT_SELECTORS, type RawStarknetEvent } from "../events.ts";
import { compareCursors } from "../event_cursor.ts";
import {
  canonicalFelt,
  type Rpc,
  RPC_BLOCK_NOT_FOUND,
  RPC_INVALID_CONTINUATION_TOKEN,
  RPC_TOO_MANY_KEYS,
  rpcCode,
  sameFelt,
  type Settings,
  withRetries,
} from "./_rpc.ts";

const logger = getLogger(["ciro", "chain", "starknet"]);

const EVENT_NAMES = Object.keys(EVENT_SELECTORS) as ChainEventName[];
/** The event selectors as canonical felts, the key filter of every `starknet_getEvents`. */
const EVENT_KEYS = EVENT_NAMES.map((name) => canonicalFelt(EVENT_SELECTORS[name]));

/**
 * A raw event as `starknet_getEvents` returns it: block fields are absent when pre-confirmed,
 * `transaction_index` and `event_index` before spec 0.10.
 */
export type EmittedEvent =
  & Omit<RawStarknetEvent, "block_hash" | "block_number" | "event_index">
  & {
    block_hash?: string;
    block_number?: number;
    transaction_index?: number;
    event_index?: number;
  };

/** One page of `starknet_getEvents`. */
export interface EventsPage {
  readonly events: EmittedEvent[];
  readonly continuation_token?: string;
}

/** An event in a receipt. */
export interface RawEventBody {
  readonly from_address: string;
  readonly keys: readonly string[];
  readonly data: readonly string[];
}

/** A decoded event at its position, or a position whose event failed to decode. */
export interface Scanned {
  readonly cursor: ChainCursor;
  readonly raw: RawStarknetEvent;
  readonly event: ChainEvent | undefined;
}

/** A reorg noticed while reading: the read stops and the next poll rolls back. */
export class ReadReorg extends Error {
  override readonly name = "ReadReorg";
}

/** Reads the adapter's contracts' events from a node. */
export class EventReader {
  readonly #settings: Settings;
  readonly #provider: RpcProvider;
  readonly #rpc: Rpc;

  constructor(settings: Settings, provider: RpcProvider, rpc: Rpc) {
    this.#settings = settings;
    this.#provider = provider;
    this.#rpc = rpc;
  }

  /** The block number events are delivered up to. */
  async safeHead(signal: AbortSignal): Promise<number> {
    return await this.#safeHead(signal);
  }

  async #safeHead(signal: AbortSignal): Promise<number> {
    const head = await this.#rpc.call(
      "read the block number",
      () => this.#provider.getBlockNumber(),
      signal,
    );
    return head - this.#settings.confirmations;
  }

  /** The hash of block `number`, or `undefined` if the node has no such block. */
  async blockHash(number: number, signal: AbortSignal): Promise<string | undefined> {
    try {
      const block = await withRetries(
        `read block ${number}`,
        () => this.#provider.getBlockWithTxHashes(number),
        this.#settings.maxAttempts,
        this.#settings.backoffMs,
        signal,
      );
      return (block as { block_hash?: string }).block_hash;
    } catch (error) {
      if (rpcCode(error) === RPC_BLOCK_NOT_FOUND) return undefined;
      throw this.#rpc.asChainError(`read block ${number}`, error);
    }
  }

  /** Settings the subscription needs. */
  get settings(): Settings {
    return this.#settings;
  }

  /** Reads events from `from` to block `to`; stops when `visit` returns false. */
  scan(
    from: ChainCursor,
    to: number,
    signal: AbortSignal,
    visit: (item: Scanned) => boolean | Promise<boolean>,
  ): Promise<void> {
    return this.#scan(from, to, signal, visit);
  }

  async #scan(
    from: ChainCursor,
    to: number,
    signal: AbortSignal,
    visit: (item: Scanned) => boolean | Promise<boolean>,
  ): Promise<void> {
    const { jobManagerAddress, cdcPoolAddress } = this.#settings;
    const ours = (address: string) =>
      sameFelt(address, jobManagerAddress) || sameFelt(address, cdcPoolAddress);
    let position = from;
    let restarts = 0;
    for (;;) {
      // The filter stays the same for the whole pagination run, as the spec requires.
      const fromBlock = position.blockNumber;
      let block = -1;
      let ordinal = 0;
      let tx: string | undefined;
      let txOrdinal = 0;
      try {
        for await (const emitted of this.#events(fromBlock, to, signal)) {
          if (emitted.block_hash === undefined || emitted.block_number === undefined) {
            logger.debug("Skipping a pre-confirmed event of {txHash}", {
              txHash: emitted.transaction_hash,
            });
            continue;
          }
          if (!ours(emitted.from_address)) continue;
          if (emitted.block_number !== block) {
            block = emitted.block_number;
            ordinal = 0;
            tx = undefined;
          }
          if (tx === undefined || !sameFelt(tx, emitted.transaction_hash)) {
            tx = emitted.transaction_hash;
            txOrdinal = 0;
          }
          // The event's identity in its transaction: the spec's event_index from 0.10, else this
          // adapter's ordinal among the transaction's events of the filter (0.9 has no index).
          const eventIndex = emitted.event_index ?? txOrdinal;
          txOrdinal++;
          const cursor = { blockNumber: block, eventIndex: ordinal++ };
          if (compareCursors(cursor, position) < 0) continue;
          const raw = { ...emitted, event_index: eventIndex } as RawStarknetEvent;
          let event: ChainEvent | undefined;
          try {
            event = { ...decodeChainEvent(raw), eventIndex: cursor.eventIndex };
          } catch (error) {
            logger.error("Skipping event {block}:{index} of {txHash}: {error}", {
              block,
              index: cursor.eventIndex,
              txHash: raw.transaction_hash,
              error: (error as Error).message,
            });
          }
          if (!(await visit({ cursor, raw, event }))) return;
          position = { blockNumber: cursor.blockNumber, eventIndex: cursor.eventIndex + 1 };
        }
        return;
      } catch (error) {
        if (error instanceof ReadReorg) throw error;
        // A continuation token is only valid on the node that issued it: start the run again
        // (once) from the last position if a load balancer moved us.
        if (rpcCode(error) === RPC_INVALID_CONTINUATION_TOKEN && restarts++ < 1) continue;
        throw this.#rpc.asChainError("read events", error);
      }
    }
  }

  /**
   * The events of blocks `from..to` that the filters select, in chain order. From spec 0.10.1 one
   * filter names both contracts; before, the filter has no address (a list is not allowed, and
   * two filters would need merging, which 0.9's events carry no index for) and the caller checks
   * `from_address`. A node that answers error 34 (too many keys) gets the key list in halves,
   * one filter each, and the pages are merged by block, transaction and event position.
   */
  async *#events(from: number, to: number, signal: AbortSignal): AsyncGenerator<EmittedEvent> {
    const { addressList, jobManagerAddress, cdcPoolAddress } = this.#settings;
    const streams: EventStream[] = [];
    const open = async (keys: string[]): Promise<void> => {
      const stream = new EventStream(this, {
        from_block: { block_number: from },
        to_block: { block_number: to },
        ...(addressList && { address: [jobManagerAddress, cdcPoolAddress] }),
        keys: [keys],
      }, signal);
      try {
        await stream.fill();
        streams.push(stream);
      } catch (error) {
        if (rpcCode(error) !== RPC_TOO_MANY_KEYS || keys.length < 2) throw error;
        const half = Math.ceil(keys.length / 2);
        logger.info("The node allows fewer than {count} keys per filter; splitting it", {
          count: keys.length,
        });
        await open(keys.slice(0, half));
        await open(keys.slice(half));
      }
    };
    await open(EVENT_KEYS);
    if (streams.length === 1) {
      const stream = streams[0]!;
      for (;;) {
        const next = await stream.next();
        if (next === undefined) return;
        yield next;
      }
    }
    const order = new EventOrder(this, signal);
    for (;;) {
      let best: { stream: EventStream; key: readonly number[] } | undefined;
      for (const stream of streams) {
        const head = await stream.peek();
        if (head === undefined) continue;
        const key = await order.key(head);
        if (best === undefined || compareKeys(key, best.key) < 0) best = { stream, key };
      }
      if (best === undefined) return;
      yield (await best.stream.next())!;
    }
  }

  /** One `starknet_getEvents` page. */
  eventsPage(filter: Record<string, unknown>, signal: AbortSignal): Promise<EventsPage> {
    return withRetries(
      "read events",
      () => this.#provider.getEvents(filter as never),
      this.#settings.maxAttempts,
      this.#settings.backoffMs,
      signal,
    ) as Promise<EventsPage>;
  }

  /** The transaction hashes of block `number`, in order. */
  async blockTransactions(number: number, signal: AbortSignal): Promise<string[]> {
    const block = await this.#rpc.call(
      `read block ${number}`,
      () => this.#provider.getBlockWithTxHashes(number),
      signal,
    );
    return (block as { transactions?: string[] }).transactions ?? [];
  }

  /** The events of a transaction's receipt, in order. */
  async receiptEvents(txHash: string, signal: AbortSignal): Promise<RawEventBody[]> {
    const receipt = await this.#rpc.call(
      `read the receipt of ${txHash}`,
      () => this.#provider.getTransactionReceipt(txHash),
      signal,
    );
    return (receipt as unknown as { events?: RawEventBody[] }).events ?? [];
  }
}

/** One filter's pages, read lazily. */
class EventStream {
  readonly #reader: EventReader;
  readonly #filter: Record<string, unknown>;
  readonly #signal: AbortSignal;
  #buffer: EmittedEvent[] = [];
  #token: string | undefined;
  #started = false;

  constructor(reader: EventReader, filter: Record<string, unknown>, signal: AbortSignal) {
    this.#reader = reader;
    this.#filter = filter;
    this.#signal = signal;
  }

  /** Reads the next page when the buffer is empty and pages are left. */
  async fill(): Promise<void> {
    while (this.#buffer.length === 0 && (!this.#started || this.#token !== undefined)) {
      const page = await this.#reader.eventsPage({
        ...this.#filter,
        chunk_size: this.#reader.settings.chunkSize,
        ...(this.#token !== undefined && { continuation_token: this.#token }),
      }, this.#signal);
      this.#started = true;
      this.#buffer = [...page.events];
      this.#token = page.continuation_token;
    }
  }

  async peek(): Promise<EmittedEvent | undefined> {
    await this.fill();
    return this.#buffer[0];
  }

  async next(): Promise<EmittedEvent | undefined> {
    await this.fill();
    return this.#buffer.shift();
  }
}

/**
 * The chain position `[block, transaction, event]` of an event, to merge several filters' pages.
 * From 0.10 the event carries it; a 0.9 event does not, so it is looked up in the block's
 * transaction list and the transaction's receipt (once each).
 */
class EventOrder {
  readonly #reader: EventReader;
  readonly #signal: AbortSignal;
  readonly #blocks = new Map<number, string[]>();
  readonly #receipts = new Map<string, { events: RawEventBody[]; used: Set<number> }>();
  readonly #keys = new WeakMap<EmittedEvent, readonly number[]>();

  constructor(reader: EventReader, signal: AbortSignal) {
    this.#reader = reader;
    this.#signal = signal;
  }

  async key(event: EmittedEvent): Promise<readonly number[]> {
    const known = this.#keys.get(event);
    if (known !== undefined) return known;
    let key: readonly number[];
    if (event.block_number === undefined) {
      key = [Number.MAX_SAFE_INTEGER, 0, 0];
    } else if (event.transaction_index !== undefined && event.event_index !== undefined) {
      key = [event.block_number, event.transaction_index, event.event_index];
    } else {
      let txs = this.#blocks.get(event.block_number);
      if (txs === undefined) {
        txs = await this.#reader.blockTransactions(event.block_number, this.#signal);
        this.#blocks.set(event.block_number, txs);
      }
      const txIndex = txs.findIndex((t) => sameFelt(t, event.transaction_hash));
      let receipt = this.#receipts.get(event.transaction_hash);
      if (receipt === undefined) {
        receipt = {
          events: await this.#reader.receiptEvents(event.transaction_hash, this.#signal),
          used: new Set(),
        };
        this.#receipts.set(event.transaction_hash, receipt);
      }
      const index = receipt.events.findIndex((e, i) =>
        !receipt.used.has(i) && sameFelt(e.from_address, event.from_address) &&
        e.keys.length === event.keys.length && e.keys.every((k, j) => sameFelt(k, event.keys[j])) &&
        e.data.length === event.data.length && e.data.every((d, j) => sameFelt(d, event.data[j]))
      );
      receipt.used.add(index);
      key = [event.block_number, txIndex, index];
    }
    this.#keys.set(event, key);
    return key;
  }
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
