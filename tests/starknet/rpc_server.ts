/**
 * A Starknet JSON-RPC 2.0 test double on 127.0.0.1, for the Starknet adapter's tests: it
 * answers the methods starknet.js 10.8 calls (spec 0.10) with the spec's request and response
 * shapes, and executes invoke transactions against a {@link LocalLedger}, the embedded ledger
 * with the same contract rules and events as the Cairo contracts (`chain/CAIRO_INTERFACE.md`).
 *
 * Methods: `starknet_specVersion`, `starknet_chainId`, `starknet_blockNumber`,
 * `starknet_blockHashAndNumber`, `starknet_getBlockWithTxHashes`, `starknet_getNonce`,
 * `starknet_estimateFee`, `starknet_addInvokeTransaction`, `starknet_getTransactionStatus`,
 * `starknet_getTransactionReceipt`, `starknet_getEvents` (with `chunk_size` and
 * `continuation_token`), `starknet_call`. Anything else is JSON-RPC error -32601.
 *
 * How it works:
 *
 * - An invoke's calldata is the account's `__execute__` multicall (Cairo 1 layout:
 *   `n, (to, selector, calldata_len, ...calldata) * n`). Each call is decoded with the checked-in
 *   ABIs (`chain/abi/*.json`) and run as the ledger account bound to the sender by
 *   `CDCPool.register_node`. The ledger's events are re-encoded with `chain/events.ts`, from the
 *   JobManager or CDC Pool address according to the event (see {@link EVENT_CONTRACT}).
 *   `approve` on the payment token address is accepted and does nothing.
 * - A call the ledger refuses makes the transaction `REVERTED`, with a revert reason that names
 *   the Cairo panic short string (`'duplicate_job'`, the {@link ChainError} code); the nonce is
 *   still used, as on Starknet.
 * - With `autoMine` (the default) every transaction gets its own block at once; without it,
 *   transactions wait in the pre-confirmed block (no hash; its events have no `block_hash` nor
 *   `block_number`) until {@link StarknetRpcServer.mine}.
 * - {@link StarknetRpcServer.reorg} replaces the last blocks with blocks of new hashes, keeping,
 *   dropping or reordering their transactions. Only the block stream changes: the ledger's
 *   state is not rolled back.
 *
 * What is not real: signatures are not verified (any signature is accepted), fees are a fixed
 * estimate and nobody pays them, `estimateFee` does not simulate (a refused call shows up as a
 * reverted receipt, not as an estimate error), views (`starknet_call`) read the ledger's
 * current state whatever `block_id` says, a multicall whose second call is refused keeps the
 * first call's effects (the ledger commits per call), and there is no state root.
 *
 * @module
 */
import { CallData, hash } from "starknet";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { encodeChainEvent } from "../../chain/events.ts";
import type { ChainEvent, ChainEventName, ChainPort } from "../../chain/port.ts";
import jobManagerAbi from "../../chain/abi/job_manager.json" with { type: "json" };
import cdcPoolAbi from "../../chain/abi/cdc_pool.json" with { type: "json" };

/** Which contract emits each event on Starknet. */
export const EVENT_CONTRACT: Readonly<Record<ChainEventName, "jobManager" | "cdcPool">> = {
  JobSubmitted: "jobManager",
  WorkerAssigned: "jobManager",
  AssignmentRevoked: "jobManager",
  ResultSubmitted: "jobManager",
  JobVerified: "jobManager",
  JobDisputed: "jobManager",
  PaymentReleased: "jobManager",
  EscrowRefunded: "jobManager",
  WorkerSlashed: "cdcPool",
  WorkerStaked: "cdcPool",
  UnstakeRequested: "cdcPool",
  StakeWithdrawn: "cdcPool",
  ReputationUpdated: "cdcPool",
};

/** Options of {@link StarknetRpcServer.start}. */
export interface StarknetRpcServerOptions {
  /** @default {LocalLedger.open(":memory:")} owned and closed by the server */
  readonly ledger?: LocalLedger;
  /** @default {"0x10a0"} */
  readonly jobManagerAddress?: string;
  /** @default {"0x10b0"} */
  readonly cdcPoolAddress?: string;
  /** @default {"0x10c0"} */
  readonly tokenAddress?: string;
  /** @default {"0x534e5f5345504f4c4941"} SN_SEPOLIA */
  readonly chainId?: string;
  /** @default {"0.10.0"} */
  readonly specVersion?: string;
  /** Every transaction in its own block at once; otherwise they wait for `mine()`. @default {true} */
  readonly autoMine?: boolean;
  /** Largest `chunk_size` accepted (`PAGE_SIZE_TOO_BIG` above). @default {1024} */
  readonly maxChunkSize?: number;
  /**
   * Return the pre-confirmed block's events (no hash, no number) from `starknet_getEvents`
   * whatever `to_block` says, as some nodes do.
   * @default {false}
   */
  readonly leakPreConfirmedEvents?: boolean;
}

/** A JSON-RPC error object. */
export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** How {@link StarknetRpcServer.reorg} rewrites the replaced blocks. */
export type ReorgMode = "rehash" | "drop" | "reverse";

interface RawEventBody {
  from_address: string;
  keys: string[];
  data: string[];
}

interface Tx {
  hash: string;
  sender: string;
  nonce: bigint;
  events: RawEventBody[];
  reverted?: string;
}

interface Block {
  number: number;
  hash: string;
  parentHash: string;
  timestamp: number;
  txs: Tx[];
}

type Abi = typeof jobManagerAbi;
interface AbiFunction {
  name: string;
  inputs: { name: string; type: string }[];
  outputs: { type: string }[];
}

class Revert extends Error {
  override readonly name = "Revert";
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

class RpcFailure extends Error {
  override readonly name = "RpcFailure";
  constructor(readonly error: RpcErrorObject) {
    super(error.message);
  }
}

const GAS_PRICE = "0x1";
const FEE_UNIT = "FRI";

function felt(value: bigint | number): string {
  return `0x${BigInt(value).toString(16)}`;
}

function shortString(text: string): string {
  let value = 0n;
  for (const byte of new TextEncoder().encode(text)) value = (value << 8n) | BigInt(byte);
  return felt(value);
}

function encodeByteArray(text: string): string[] {
  const bytes = new TextEncoder().encode(text);
  const words = Math.floor(bytes.length / 31);
  const out = [felt(words)];
  const word = (slice: Uint8Array) => {
    let value = 0n;
    for (const byte of slice) value = (value << 8n) | BigInt(byte);
    return felt(value);
  };
  for (let i = 0; i < words; i++) out.push(word(bytes.subarray(i * 31, i * 31 + 31)));
  const pending = bytes.subarray(words * 31);
  out.push(word(pending), felt(pending.length));
  return out;
}

function u256(value: bigint): string[] {
  return [felt(value & ((1n << 128n) - 1n)), felt(value >> 128n)];
}

function sameFelt(a: unknown, b: string): boolean {
  try {
    return typeof a === "string" && BigInt(a) === BigInt(b);
  } catch {
    return false;
  }
}

function functionsOf(abi: Abi): Map<string, AbiFunction> {
  const map = new Map<string, AbiFunction>();
  for (const item of abi) {
    if (item.type !== "interface" || !("items" in item)) continue;
    for (const fn of item.items as AbiFunction[]) {
      map.set(BigInt(hash.getSelectorFromName(fn.name)).toString(), fn);
    }
  }
  return map;
}

/**
 * The test double. Start it with {@link StarknetRpcServer.start}, point starknet.js at
 * {@link StarknetRpcServer.url}, and close it in a `finally`.
 */
export class StarknetRpcServer {
  readonly url: string;
  readonly jobManagerAddress: string;
  readonly cdcPoolAddress: string;
  readonly tokenAddress: string;
  readonly chainId: string;
  /** How many times each RPC method was called. */
  readonly calls: Map<string, number> = new Map();
  /** The `chunk_size` of every `starknet_getEvents` request, in order. */
  readonly chunkSizes: number[] = [];
  /** The `filter` of every `starknet_getEvents` request, in order. */
  readonly eventFilters: Record<string, unknown>[] = [];

  readonly #ledger: LocalLedger;
  readonly #ownsLedger: boolean;
  readonly #reader: ChainPort;
  readonly #server: Deno.HttpServer;
  readonly #specVersion: string;
  readonly #autoMine: boolean;
  readonly #maxChunkSize: number;
  readonly #leakPreConfirmed: boolean;
  readonly #instance = crypto.randomUUID().slice(0, 8);
  readonly #blocks: Block[] = [];
  readonly #pending: Tx[] = [];
  readonly #nonces = new Map<string, bigint>();
  readonly #accountByNode = new Map<string, string>();
  readonly #nodeByAccount = new Map<string, string>();
  readonly #faults = new Map<string, (RpcErrorObject | "network")[]>();
  readonly #functions = {
    jobManager: functionsOf(jobManagerAbi),
    cdcPool: functionsOf(cdcPoolAbi as Abi),
  };
  readonly #callData = {
    jobManager: new CallData(jobManagerAbi as never),
    cdcPool: new CallData(cdcPoolAbi as never),
  };
  #ledgerCursor = { blockNumber: 0, eventIndex: 0 };
  #queue: Promise<void> = Promise.resolve();
  #salt = 0;
  #txCounter = 0;
  #time = 1_700_000_000;

  private constructor(options: StarknetRpcServerOptions) {
    this.#ownsLedger = options.ledger === undefined;
    this.#ledger = options.ledger ?? LocalLedger.open(":memory:");
    this.#reader = this.#ledger.as("starknet-rpc-server");
    this.jobManagerAddress = options.jobManagerAddress ?? "0x10a0";
    this.cdcPoolAddress = options.cdcPoolAddress ?? "0x10b0";
    this.tokenAddress = options.tokenAddress ?? "0x10c0";
    this.chainId = options.chainId ?? "0x534e5f5345504f4c4941";
    this.#specVersion = options.specVersion ?? "0.10.0";
    this.#autoMine = options.autoMine ?? true;
    this.#maxChunkSize = options.maxChunkSize ?? 1024;
    this.#leakPreConfirmed = options.leakPreConfirmedEvents ?? false;
    this.#blocks.push(this.#makeBlock(0, felt(0), []));
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
    const address = this.#server.addr as Deno.NetAddr;
    this.url = `http://127.0.0.1:${address.port}/rpc/v0_10`;
  }

  /** Starts a server on 127.0.0.1 on a free port. */
  static start(options: StarknetRpcServerOptions = {}): StarknetRpcServer {
    return new StarknetRpcServer(options);
  }

  /** The ledger behind the contracts (for money checks in tests). */
  get ledger(): LocalLedger {
    return this.#ledger;
  }

  /** The latest accepted block number. */
  get blockNumber(): number {
    return this.#blocks.length - 1;
  }

  /** The transactions waiting in the pre-confirmed block. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /**
   * Closes the pre-confirmed block (if it has transactions) and appends empty blocks until
   * `count` blocks were added.
   */
  mine(count = 1): void {
    for (let i = 0; i < count; i++) {
      const txs = i === 0 ? this.#pending.splice(0) : [];
      this.#appendBlock(txs);
    }
  }

  /**
   * Replaces the last `depth` blocks with blocks of different hashes (a fork), keeping their
   * transactions (`"rehash"`), dropping them (`"drop"`: their receipts disappear), or putting
   * them in reverse order (`"reverse"`). The chain keeps its height.
   */
  reorg(depth: number, mode: ReorgMode = "rehash"): void {
    if (!Number.isSafeInteger(depth) || depth < 1 || depth > this.blockNumber) {
      throw new RangeError(`Cannot reorg: depth ${depth} is not within 1..${this.blockNumber}`);
    }
    const replaced = this.#blocks.splice(this.#blocks.length - depth, depth);
    let txLists = replaced.map((b) => b.txs);
    if (mode === "drop") txLists = txLists.map(() => []);
    if (mode === "reverse") txLists = txLists.reverse();
    this.#salt++;
    for (const txs of txLists) this.#appendBlock(txs);
  }

  /**
   * Makes the next `count` requests for `method` fail with `error` (a JSON-RPC error) or, with
   * `"network"`, with an HTTP 503 and no JSON body.
   */
  failNext(method: string, error: RpcErrorObject | "network", count = 1): void {
    const list = this.#faults.get(method) ?? [];
    for (let i = 0; i < count; i++) list.push(error);
    this.#faults.set(method, list);
  }

  /**
   * Appends a block with one transaction of another contract emitting `keys` and `data` (as
   * anyone can deploy a contract that emits an event named like ours).
   */
  emitForeign(fromAddress: string, keys: string[], data: string[]): void {
    const txHash = hash.computePoseidonHashOnElements([fromAddress, felt(++this.#txCounter)]);
    this.#appendBlock([{
      hash: txHash,
      sender: fromAddress,
      nonce: 0n,
      events: [{ from_address: fromAddress, keys, data }],
    }]);
  }

  /** Uses up one nonce of `account`, as a transaction sent by another process would. */
  bumpNonce(account: string): void {
    const key = felt(BigInt(account));
    this.#nonces.set(key, (this.#nonces.get(key) ?? 0n) + 1n);
  }

  /** Stops listening; closes the ledger if the server opened it. */
  async close(): Promise<void> {
    await this.#server.shutdown();
    await this.#reader.close();
    if (this.#ownsLedger) this.#ledger.close();
  }

  // -------------------------------------------------------------------------------------------
  // Blocks

  #makeBlock(number: number, parentHash: string, txs: Tx[]): Block {
    const blockHash = hash.computePoseidonHashOnElements([
      parentHash,
      felt(number),
      felt(this.#salt),
      ...txs.map((t) => t.hash),
    ]);
    return { number, hash: blockHash, parentHash, timestamp: this.#time++, txs };
  }

  #appendBlock(txs: Tx[]): void {
    const parent = this.#blocks.at(-1)!;
    this.#blocks.push(this.#makeBlock(parent.number + 1, parent.hash, txs));
  }

  #resolveBlock(blockId: unknown): Block | "pre_confirmed" {
    if (blockId === "latest" || blockId === "l1_accepted") return this.#blocks.at(-1)!;
    if (blockId === "pre_confirmed") return "pre_confirmed";
    if (typeof blockId === "object" && blockId !== null) {
      const id = blockId as { block_number?: unknown; block_hash?: unknown };
      if (typeof id.block_number === "number") {
        const block = this.#blocks[id.block_number];
        if (block !== undefined) return block;
      } else if (typeof id.block_hash === "string") {
        const block = this.#blocks.find((b) => sameFelt(id.block_hash, b.hash));
        if (block !== undefined) return block;
      }
    }
    throw new RpcFailure({ code: 24, message: "Block not found" });
  }

  #findTx(txHash: unknown): { tx: Tx; block: Block | undefined; index: number } {
    for (const block of this.#blocks) {
      const index = block.txs.findIndex((t) => sameFelt(txHash, t.hash));
      if (index >= 0) return { tx: block.txs[index]!, block, index };
    }
    const index = this.#pending.findIndex((t) => sameFelt(txHash, t.hash));
    if (index >= 0) return { tx: this.#pending[index]!, block: undefined, index };
    throw new RpcFailure({ code: 29, message: "Transaction hash not found" });
  }

  #header(block: Block): Record<string, unknown> {
    const price = { price_in_fri: GAS_PRICE, price_in_wei: GAS_PRICE };
    return {
      block_hash: block.hash,
      parent_hash: block.parentHash,
      block_number: block.number,
      new_root: felt(0),
      timestamp: block.timestamp,
      sequencer_address: felt(1),
      l1_gas_price: price,
      l2_gas_price: price,
      l1_data_gas_price: price,
      l1_da_mode: "BLOB",
      starknet_version: "0.14.0",
      event_commitment: felt(0),
      transaction_commitment: felt(0),
      receipt_commitment: felt(0),
      state_diff_commitment: felt(0),
      event_count: block.txs.reduce((n, t) => n + t.events.length, 0),
      transaction_count: block.txs.length,
      state_diff_length: 0,
    };
  }

  // -------------------------------------------------------------------------------------------
  // HTTP and JSON-RPC

  async #handle(request: Request): Promise<Response> {
    if (request.method !== "POST") return new Response("Method not allowed", { status: 405 });
    let body: { id?: unknown; method?: unknown; params?: unknown };
    try {
      body = await request.json();
    } catch {
      return Response.json({
        jsonrpc: "2.0",
        id: null,
        error: { code: -32700, message: "Parse error" },
      });
    }
    const id = body.id ?? null;
    const method = typeof body.method === "string" ? body.method : "";
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const fault = this.#faults.get(method)?.shift();
    if (fault === "network") return new Response("Service unavailable", { status: 503 });
    if (fault !== undefined) return Response.json({ jsonrpc: "2.0", id, error: fault });
    try {
      // One request at a time, like a node's state machine: no interleaving across awaits.
      const run = this.#queue.then(() =>
        this.#dispatch(method, (body.params ?? {}) as Record<string, unknown>)
      );
      this.#queue = run.then(() => {}, () => {});
      const result = await run;
      return Response.json({ jsonrpc: "2.0", id, result });
    } catch (error) {
      if (error instanceof RpcFailure) {
        return Response.json({ jsonrpc: "2.0", id, error: error.error });
      }
      return Response.json({
        jsonrpc: "2.0",
        id,
        error: { code: 63, message: "An unexpected error occurred", data: String(error) },
      });
    }
  }

  #dispatch(method: string, params: Record<string, unknown>): unknown | Promise<unknown> {
    switch (method) {
      case "starknet_specVersion":
        return this.#specVersion;
      case "starknet_chainId":
        return this.chainId;
      case "starknet_blockNumber":
        return this.blockNumber;
      case "starknet_blockHashAndNumber": {
        const head = this.#blocks.at(-1)!;
        return { block_hash: head.hash, block_number: head.number };
      }
      case "starknet_getBlockWithTxHashes":
        return this.#getBlock(params.block_id);
      case "starknet_getNonce":
        return this.#getNonce(params.contract_address, params.block_id);
      case "starknet_estimateFee":
        return this.#estimateFee(params.request);
      case "starknet_addInvokeTransaction":
        return this.#addInvoke(params.invoke_transaction as Record<string, unknown>);
      case "starknet_getTransactionStatus":
        return this.#getTransactionStatus(params.transaction_hash);
      case "starknet_getTransactionReceipt":
        return this.#getReceipt(params.transaction_hash);
      case "starknet_getEvents":
        return this.#getEvents(params.filter as Record<string, unknown>);
      case "starknet_call":
        return this.#call(params.request as Record<string, unknown>);
      default:
        throw new RpcFailure({ code: -32601, message: `Method not found: ${method}` });
    }
  }

  #getBlock(blockId: unknown): unknown {
    const block = this.#resolveBlock(blockId);
    if (block === "pre_confirmed") {
      const head = this.#blocks.at(-1)!;
      const { block_hash: _h, parent_hash: _p, ...header } = this.#header(
        this.#makeBlock(head.number + 1, head.hash, this.#pending),
      );
      return { ...header, transactions: this.#pending.map((t) => t.hash) };
    }
    return {
      status: "ACCEPTED_ON_L2",
      ...this.#header(block),
      transactions: block.txs.map((t) => t.hash),
    };
  }

  #getNonce(address: unknown, blockId: unknown): string {
    if (typeof address !== "string") {
      throw new RpcFailure({ code: -32602, message: "Invalid params" });
    }
    const key = felt(BigInt(address));
    const total = this.#nonces.get(key) ?? 0n;
    if (blockId === "pre_confirmed") return felt(total);
    const pending = this.#pending.filter((t) => t.sender === key).length;
    return felt(total - BigInt(pending));
  }

  #estimateFee(request: unknown): unknown {
    if (!Array.isArray(request)) throw new RpcFailure({ code: -32602, message: "Invalid params" });
    return request.map(() => ({
      l1_gas_consumed: "0x0",
      l1_gas_price: GAS_PRICE,
      l2_gas_consumed: "0x100000",
      l2_gas_price: GAS_PRICE,
      l1_data_gas_consumed: "0x80",
      l1_data_gas_price: GAS_PRICE,
      overall_fee: felt(0x100080),
      unit: FEE_UNIT,
    }));
  }

  #getTransactionStatus(txHash: unknown): unknown {
    const { tx, block } = this.#findTx(txHash);
    return {
      finality_status: block === undefined ? "PRE_CONFIRMED" : "ACCEPTED_ON_L2",
      execution_status: tx.reverted === undefined ? "SUCCEEDED" : "REVERTED",
      ...(tx.reverted !== undefined && { failure_reason: tx.reverted }),
    };
  }

  #getReceipt(txHash: unknown): unknown {
    const { tx, block } = this.#findTx(txHash);
    return {
      type: "INVOKE",
      transaction_hash: tx.hash,
      actual_fee: { amount: felt(0x100080), unit: FEE_UNIT },
      finality_status: block === undefined ? "PRE_CONFIRMED" : "ACCEPTED_ON_L2",
      messages_sent: [],
      events: tx.events,
      execution_resources: { l1_gas: 0, l1_data_gas: 128, l2_gas: 0x100000 },
      ...(tx.reverted === undefined
        ? { execution_status: "SUCCEEDED" }
        : { execution_status: "REVERTED", revert_reason: tx.reverted }),
      ...(block === undefined
        ? { block_number: this.blockNumber + 1 }
        : { block_hash: block.hash, block_number: block.number }),
    };
  }

  #getEvents(filter: Record<string, unknown>): unknown {
    if (typeof filter !== "object" || filter === null) {
      throw new RpcFailure({ code: -32602, message: "Invalid params" });
    }
    const chunkSize = filter.chunk_size;
    if (typeof chunkSize !== "number" || !Number.isSafeInteger(chunkSize) || chunkSize < 1) {
      throw new RpcFailure({ code: -32602, message: "Invalid params: chunk_size" });
    }
    this.chunkSizes.push(chunkSize);
    this.eventFilters.push(filter);
    if (chunkSize > this.#maxChunkSize) {
      throw new RpcFailure({ code: 31, message: "Requested page size is too big" });
    }
    const from = filter.from_block === undefined ? 0 : this.#blockNumberOf(filter.from_block);
    const toId = filter.to_block ?? "latest";
    const includePending = toId === "pre_confirmed" || this.#leakPreConfirmed;
    const to = toId === "pre_confirmed" ? this.blockNumber : this.#blockNumberOf(toId);
    const addresses = filter.address === undefined
      ? undefined
      : (Array.isArray(filter.address) ? filter.address : [filter.address]) as string[];
    const keys = (filter.keys ?? []) as string[][];
    const matches = (event: RawEventBody) =>
      (addresses === undefined || addresses.some((a) => sameFelt(a, event.from_address))) &&
      keys.every((allowed, i) =>
        allowed.length === 0 || allowed.some((k) => sameFelt(k, event.keys[i] ?? "0x-"))
      );
    const all: Record<string, unknown>[] = [];
    for (let n = from; n <= to; n++) {
      const block = this.#blocks[n];
      if (block === undefined) continue;
      block.txs.forEach((tx, txIndex) => {
        tx.events.forEach((event, eventIndex) => {
          if (!matches(event)) return;
          all.push({
            ...event,
            block_hash: block.hash,
            block_number: block.number,
            transaction_hash: tx.hash,
            transaction_index: txIndex,
            event_index: eventIndex,
          });
        });
      });
    }
    if (includePending) {
      this.#pending.forEach((tx, txIndex) => {
        tx.events.forEach((event, eventIndex) => {
          if (!matches(event)) return;
          all.push({
            ...event,
            transaction_hash: tx.hash,
            transaction_index: txIndex,
            event_index: eventIndex,
          });
        });
      });
    }
    let offset = 0;
    if (filter.continuation_token !== undefined) {
      const token = String(filter.continuation_token);
      const match = /^([0-9a-f]{8})-(\d+)$/.exec(token);
      if (match === null || match[1] !== this.#instance) {
        throw new RpcFailure({
          code: 33,
          message: "The supplied continuation token is invalid or unknown",
        });
      }
      offset = Number(match[2]);
    }
    const events = all.slice(offset, offset + chunkSize);
    const nextOffset = offset + events.length;
    return nextOffset < all.length
      ? { events, continuation_token: `${this.#instance}-${nextOffset}` }
      : { events };
  }

  #blockNumberOf(blockId: unknown): number {
    const block = this.#resolveBlock(blockId);
    return block === "pre_confirmed" ? this.blockNumber + 1 : block.number;
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  async #addInvoke(tx: Record<string, unknown>): Promise<unknown> {
    if (typeof tx !== "object" || tx === null || tx.type !== "INVOKE" || tx.version !== "0x3") {
      throw new RpcFailure({ code: 61, message: "The transaction version is not supported" });
    }
    const sender = felt(BigInt(String(tx.sender_address)));
    const expected = this.#nonces.get(sender) ?? 0n;
    const nonce = BigInt(String(tx.nonce));
    if (nonce !== expected) {
      throw new RpcFailure({
        code: 52,
        message: "Invalid transaction nonce",
        data: `Invalid transaction nonce of contract at address ${sender}. Account nonce: ${
          felt(expected)
        }; got: ${felt(nonce)}.`,
      });
    }
    const calldata = (tx.calldata as string[]).map((c) => BigInt(c));
    const txHash = hash.computePoseidonHashOnElements([
      sender,
      felt(nonce),
      felt(++this.#txCounter),
      ...calldata.map(felt),
    ]);
    this.#nonces.set(sender, expected + 1n);
    const record: Tx = { hash: txHash, sender, nonce, events: [] };
    try {
      await this.#execute(sender, calldata, record);
    } catch (error) {
      if (!(error instanceof Revert)) throw error;
      record.events = [];
      record.reverted = error.message;
    }
    if (this.#autoMine) this.#appendBlock([record]);
    else this.#pending.push(record);
    return { transaction_hash: txHash };
  }

  async #execute(sender: string, calldata: bigint[], record: Tx): Promise<void> {
    let i = 0;
    const next = () => {
      const value = calldata[i++];
      if (value === undefined) throw new Revert("calldata_too_short", "Calldata is too short");
      return value;
    };
    const count = Number(next());
    for (let c = 0; c < count; c++) {
      const to = felt(next());
      const selector = next();
      const length = Number(next());
      const args = calldata.slice(i, i + length).map(felt);
      i += length;
      await this.#executeCall(sender, to, selector, args, record);
    }
  }

  async #executeCall(
    sender: string,
    to: string,
    selector: bigint,
    args: string[],
    record: Tx,
  ): Promise<void> {
    if (sameFelt(to, this.tokenAddress)) {
      if (selector !== BigInt(hash.getSelectorFromName("approve"))) {
        throw this.#revert(to, selector, "ENTRYPOINT_NOT_FOUND");
      }
      return;
    }
    const contract = sameFelt(to, this.jobManagerAddress)
      ? "jobManager"
      : sameFelt(to, this.cdcPoolAddress)
      ? "cdcPool"
      : undefined;
    if (contract === undefined) throw this.#revert(to, selector, "CONTRACT_NOT_DEPLOYED");
    const fn = this.#functions[contract].get(selector.toString());
    if (fn === undefined || (fn as { state_mutability?: string }).state_mutability === "view") {
      throw this.#revert(to, selector, "ENTRYPOINT_NOT_FOUND");
    }
    let decoded: unknown[];
    try {
      decoded = this.#decode(contract, fn, args);
    } catch {
      throw this.#revert(to, selector, "Failed to deserialize param");
    }
    const arg = (index: number) => decoded[index];
    const text = (index: number) => String(arg(index));
    const amount = (index: number) => BigInt(arg(index) as bigint);
    const hex64 = (index: number) => amount(index).toString(16).padStart(64, "0");
    const reason = (index: number) => {
      const value = amount(index);
      const bytes: number[] = [];
      for (let v = value; v > 0n; v >>= 8n) bytes.unshift(Number(v & 0xffn));
      return String.fromCharCode(...bytes);
    };
    if (fn.name === "register_node") {
      const nodeId = text(0);
      const current = this.#nodeByAccount.get(sender);
      const owner = this.#accountByNode.get(nodeId);
      if (
        (current !== undefined && current !== nodeId) || (owner !== undefined && owner !== sender)
      ) {
        throw this.#revert(to, selector, "not_authorized");
      }
      if (current === undefined) {
        this.#nodeByAccount.set(sender, nodeId);
        this.#accountByNode.set(nodeId, sender);
        record.events.push({
          from_address: this.cdcPoolAddress,
          keys: [hash.getSelectorFromName("NodeRegistered")],
          data: [...encodeByteArray(nodeId), sender],
        });
      }
      return;
    }
    const nodeId = this.#nodeByAccount.get(sender);
    if (nodeId === undefined) throw this.#revert(to, selector, "not_authorized");
    const port = this.#ledger.as(nodeId);
    const run = async () => {
      switch (fn.name) {
        case "submit_job":
          return await port.submitJob({
            jobId: text(0),
            amount: amount(1),
            minStake: amount(2),
            modelHash: hex64(3),
            inputCommitment: hex64(4),
          });
        case "assign_worker":
          return await port.assignWorker({
            jobId: text(0),
            worker: text(1),
            price: amount(2),
            verifiers: (arg(3) as unknown[]).map(String),
          });
        case "revoke_assignment":
          return await port.revokeAssignment({ jobId: text(0), worker: text(1) });
        case "submit_result":
          return await port.submitResult({ jobId: text(0), commitment: hex64(1) });
        case "record_verification":
          return await port.recordVerification({ jobId: text(0), accepted: arg(1) === true });
        case "release_payment":
          return await port.releasePayment({ jobId: text(0) });
        case "refund":
          return await port.refund({ jobId: text(0), reason: reason(1) as never });
        case "slash_worker":
          return await port.slash({ jobId: text(0), worker: text(1), reason: reason(2) as never });
        case "stake":
          return await port.stake({ amount: amount(0) });
        case "request_unstake":
          return await port.requestUnstake({ amount: amount(0) });
        case "withdraw":
          return await port.withdraw();
        default:
          // slash, reward, lock_stake and unlock_stake on the pool are only callable by the
          // JobManager contract (here the ledger does their work inside the JobManager calls).
          throw new Revert("not_authorized", "only the job manager");
      }
    };
    try {
      await run();
    } catch (cause) {
      const error = cause as { name?: string; code?: string };
      if (error.name === "ChainError" && typeof error.code === "string") {
        throw this.#revert(to, selector, error.code);
      }
      if (cause instanceof Revert) throw this.#revert(to, selector, cause.reason);
      throw this.#revert(to, selector, "invalid_argument");
    } finally {
      await port.close();
    }
    const { events, next } = await this.#reader.eventsSince(this.#ledgerCursor, { limit: 1000 });
    this.#ledgerCursor = next;
    for (const event of events) {
      const address = EVENT_CONTRACT[event.name] === "jobManager"
        ? this.jobManagerAddress
        : this.cdcPoolAddress;
      const raw = encodeChainEvent(event as ChainEvent, address);
      record.events.push({ from_address: raw.from_address, keys: raw.keys, data: raw.data });
    }
  }

  #decode(contract: "jobManager" | "cdcPool", fn: AbiFunction, calldata: string[]): unknown[] {
    if (fn.inputs.length === 0) return [];
    const decoded = this.#callData[contract].decodeParameters(
      fn.inputs.map((input) => input.type),
      calldata,
    );
    // starknet.js returns a lone value, not a one-element array, for one type.
    return fn.inputs.length === 1 ? [decoded] : decoded as unknown[];
  }

  #revert(to: string, selector: bigint, reason: string): Revert {
    const message = `Transaction execution has failed:\n0: Error in the called contract ` +
      `(contract address: ${to}, class hash: ${felt(0xc1a55)}, selector: ${felt(selector)}):\n` +
      `Execution failed. Failure reason:\n(${shortString(reason)} ('${reason}')).\n`;
    return new Revert(reason, message);
  }

  // -------------------------------------------------------------------------------------------
  // Views

  async #call(request: Record<string, unknown>): Promise<string[]> {
    const to = String(request?.contract_address);
    const contract = sameFelt(to, this.jobManagerAddress)
      ? "jobManager"
      : sameFelt(to, this.cdcPoolAddress)
      ? "cdcPool"
      : undefined;
    if (contract === undefined) throw new RpcFailure({ code: 20, message: "Contract not found" });
    const selector = BigInt(String(request.entry_point_selector));
    const fn = this.#functions[contract].get(selector.toString());
    if (fn === undefined) {
      throw new RpcFailure({
        code: 40,
        message: "Contract error",
        data: { revert_error: "ENTRYPOINT_NOT_FOUND" },
      });
    }
    const calldata = (request.calldata as string[] | undefined) ?? [];
    const args = fn.name === "node_id_of"
      ? [BigInt(calldata[0] ?? "0x0")]
      : this.#decode(contract, fn, calldata);
    const sync = async <T>(body: () => Promise<T>): Promise<T> => {
      try {
        return await body();
      } catch (error) {
        throw new RpcFailure({
          code: 40,
          message: "Contract error",
          data: { revert_error: String(error) },
        });
      }
    };
    switch (fn.name) {
      case "node_id_of": {
        const node = this.#nodeByAccount.get(felt(args[0] as bigint)) ?? "";
        return encodeByteArray(node);
      }
      case "account_of":
        return [this.#accountByNode.get(String(args[0])) ?? felt(0)];
      case "stake_of":
        return u256(await sync(() => this.#reader.stakeOf(String(args[0]))));
      case "reputation_of":
        return [felt(await sync(() => this.#reader.reputationOf(String(args[0]))))];
      case "escrow_totals": {
        const t = await sync(() => this.#reader.totals());
        return [t.escrowed, t.paid, t.fees, t.refunded, t.locked].flatMap(u256);
      }
      case "stake_totals": {
        const t = await sync(() => this.#reader.totals());
        return [t.staked, t.slashed, t.withdrawn, t.bonded].flatMap(u256);
      }
      case "cdc_pool":
        return [this.cdcPoolAddress];
      case "payment_token":
        return [this.tokenAddress];
      default:
        throw new RpcFailure({
          code: 40,
          message: "Contract error",
          data: { revert_error: `Cannot call ${fn.name} as a view` },
        });
    }
  }
}
