/**
 * A Starknet JSON-RPC 2.0 test double on 127.0.0.1, for the Starknet adapter's tests. It speaks
 * one spec version (0.9.0, 0.10.0 or 0.10.3) as the official OpenRPC documents
 * (`tests/fixtures/starknet-specs/`) define it, checks every request against that version and
 * refuses an invalid one with -32602 as a strict node does, and checks every response it sends
 * against it too (see {@link StarknetRpcServer.problems}). Contract calls execute against a
 * {@link LocalLedger}, the embedded ledger with the Cairo contracts' rules
 * (`chain/CAIRO_INTERFACE.md`), the chain-decided ones included: terms with the escrow
 * (`submit_job_with_terms`), verifiers chosen by the chain among the bonded ones
 * (`stake_as_verifier`, `register_key`), signed attestations counted 2f+1 / f+1
 * (`submit_attestations`), deadlines on the block timestamps ({@link StarknetRpcServer.advanceTime}
 * moves them), failure reports and double-signing evidence; the rules themselves are
 * `chain/settlement.ts`'s, run by the ledger, not a copy. The views read the ledger too; the
 * ledger keeps no job status a port reads, so `escrow_of`'s status is folded from its events.
 *
 * What it does as a node does:
 *
 * - Accounts: each has a Stark public key, a fee balance (fri) and a nonce. An INVOKE v3 is
 *   checked in the order a sequencer does: version (61), known sender (58), duplicate hash (59),
 *   nonce below the account's (52), resource bounds under the gas price (53), maximal fee over
 *   the balance (54), the signature over the SNIP-8 hash computed here (55).
 * - A mempool: an accepted transaction is unknown (29) for `mempool.hiddenFor` requests, then
 *   `RECEIVED`, then `CANDIDATE`, and executes `mempool.executeAfter` requests after its
 *   submission once its nonce is the account's next one (a future nonce waits for the gap to be
 *   filled). Until then `starknet_getNonce` does not count it. {@link StarknetRpcServer.evictNext}
 *   makes transactions drop out of the mempool instead (unknown again, nonce unused).
 * - `starknet_estimateFee` simulates the calls on a copy of the state (error 41 with a nested
 *   `execution_error` naming the panic); a transaction whose simulation panics at execution is
 *   included `REVERTED` with no effect, nonce used and fee paid; a multicall is all or nothing.
 * - Events are encoded by `cairo.ts` (the double's own layout), with `transaction_index` and
 *   `event_index` only from 0.10; an address list in an event filter only from 0.10.1 (the
 *   schema check refuses it before); more than `maxKeysInFilter` keys is error 34.
 * - `l1_accepted` is `l1Lag` blocks behind `latest`; `failNext` injects JSON-RPC errors, HTTP
 *   503 before the request is processed (`"network"`), or after (`"lost"`: it executed, the
 *   answer is lost).
 *
 * What is not real: no state root, commitments or class hashes; views read the current state
 * whatever `block_id` says, except `escrow_of` at a block given by number, hash or `l1_accepted`:
 * that one answers what the double's own blocks up to it changed (an escrow written to a shared
 * `ledger` by another process is seen only at `latest`); fees are fixed amounts of gas at a fixed
 * price; the fee estimate's signature is not checked; the transaction hash and signature use
 * starknet.js's Poseidon and curve (the same library the adapter signs with); a reorg replaces
 * block hashes but does not roll back the ledger; the simulation replays this double's executed
 * transactions on a fresh ledger, so writes others make to a shared `ledger` are not seen by
 * `estimateFee`; no fee market (errors 64 and 65 are never answered). The verifiers of a job are
 * drawn from the ledger's own block hash of the escrow, not this double's Starknet block hash; an
 * Ed25519 check is what the ledger runs, where a Cairo contract would need a library for it (none
 * is native).
 *
 * @module
 */
import { ec, hash } from "starknet";
import { LocalLedger, type LocalLedgerOptions } from "../../chain/local_ledger.ts";
import type { ChainEvent, ChainPort, SignedAttestation } from "../../chain/port.ts";
import type { Verdict } from "../../machines/types.ts";
import {
  type Bounds,
  CONTRACT_FUNCTIONS,
  encodeEvent,
  encodeValue,
  EVENT_EMITTER,
  felt,
  FeltReader,
  FUNCTION_INPUTS,
  invokeV3Hash,
  selector,
} from "./cairo.ts";
import { type SpecVersion, StarknetSpec } from "./spec.ts";

/** An account the double knows. */
export interface AccountSetup {
  readonly address: string;
  /** The Stark public key (`ec.starkCurve.getStarkKey(privateKey)`). */
  readonly publicKey: string;
  /** Fee token balance, fri. @default {10n ** 20n} */
  readonly balance?: bigint;
}

/** Options of {@link StarknetRpcServer.start}. */
export interface StarknetRpcServerOptions {
  /** @default {LocalLedger.open(":memory:", ledgerOptions)} owned and closed by the server */
  readonly ledger?: LocalLedger;
  /** The ledger's rules, also used to simulate calls (give them with `ledger` too). @default {{}} */
  readonly ledgerOptions?: LocalLedgerOptions;
  /** @default {"0x10a0"} */
  readonly jobManagerAddress?: string;
  /** @default {"0x10b0"} */
  readonly cdcPoolAddress?: string;
  /** @default {"0x10c0"} */
  readonly tokenAddress?: string;
  /** @default {"0x534e5f5345504f4c4941"} SN_SEPOLIA */
  readonly chainId?: string;
  /** @default {"0.10.3"} */
  readonly specVersion?: SpecVersion;
  /** Refuse requests the spec does not allow (-32602). @default {true} */
  readonly strict?: boolean;
  /** The accounts that may send transactions. @default {[]} */
  readonly accounts?: readonly AccountSetup[];
  /** Every transaction in its own block at once; otherwise they wait for `mine()`. @default {true} */
  readonly autoMine?: boolean;
  /** Largest `chunk_size` accepted (`PAGE_SIZE_TOO_BIG` above). @default {1024} */
  readonly maxChunkSize?: number;
  /** Most keys (all positions together) in an event filter (error 34 above). @default {1024} */
  readonly maxKeysInFilter?: number;
  /**
   * Mempool lag, in requests served after the submission: unknown for `hiddenFor`, executed
   * (when its nonce is next) after `executeAfter`. `{ hiddenFor: 0, executeAfter: 0 }` executes
   * at submission.
   * @default {{ hiddenFor: 1, executeAfter: 2 }}
   */
  readonly mempool?: { readonly hiddenFor: number; readonly executeAfter: number };
  /**
   * After a transaction executes, this many `starknet_getNonce` reads of its sender still answer
   * the nonce before it, as a node behind a load balancer whose replicas lag does.
   * @default {0}
   */
  readonly staleNonceReads?: number;
  /** Blocks `l1_accepted` lags behind `latest`. @default {2} */
  readonly l1Lag?: number;
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

/** One request and its answer, as recorded. */
export interface TrafficEntry {
  readonly method: string;
  readonly params: unknown;
  readonly result?: unknown;
  readonly error?: RpcErrorObject;
}

/** How {@link StarknetRpcServer.reorg} rewrites the replaced blocks. */
export type ReorgMode = "rehash" | "drop" | "reverse";

interface RawEventBody {
  from_address: string;
  keys: string[];
  data: string[];
}

/** A decoded call of a multicall. */
interface Call {
  readonly to: string;
  readonly contract: "jobManager" | "cdcPool" | "token";
  readonly fn: string;
  readonly args: unknown[];
}

interface Tx {
  hash: string;
  sender: string;
  nonce: bigint;
  calls: Call[];
  events: RawEventBody[];
  /** What it changed of the escrows `escrow_of` reads at a past block ({@link EscrowChange}). */
  escrows?: EscrowChange[];
  fee: bigint;
  reverted?: string;
  time: number;
}

/**
 * What one of the ledger's events changed of job `jobId`'s escrow as `escrow_of` answers it: its
 * status after the event, and, from its `JobSubmitted`, the client and the spec hash.
 */
interface EscrowChange {
  readonly jobId: string;
  readonly status: string;
  readonly client?: string;
  readonly specHash?: string;
}

interface Pooled {
  readonly tx: Tx;
  age: number;
  readonly evict: boolean;
}

interface Block {
  number: number;
  hash: string;
  parentHash: string;
  timestamp: number;
  txs: Tx[];
}

interface Account {
  readonly publicKey: bigint;
  balance: bigint;
  nonce: bigint;
  /** Reads left that answer `nonce - 1` (see `staleNonceReads`). */
  stale: number;
}

/** A job's status after each event that changes it (what `escrow_of` answers). */
const STATUS_AFTER: Readonly<Record<string, string>> = {
  JobSubmitted: "submitted",
  WorkerAssigned: "assigned",
  AssignmentRevoked: "revoked",
  ResultSubmitted: "result",
  FailureReported: "result",
  JobVerified: "verified",
  JobDisputed: "disputed",
  PaymentReleased: "paid",
  EscrowRefunded: "refunded",
};

/** The state contract calls change: the ledger and the node id bindings. */
interface State {
  readonly ledger: LocalLedger;
  readonly nodeByAccount: Map<string, string>;
  readonly accountByNode: Map<string, string>;
}

class Panic extends Error {
  override readonly name = "Panic";
  constructor(readonly reason: string, readonly to: string, readonly fn: string) {
    super(`Panic ${reason} in ${fn}`);
  }
}

class RpcFailure extends Error {
  override readonly name = "RpcFailure";
  constructor(readonly error: RpcErrorObject) {
    super(error.message);
  }
}

const GAS_PRICE = 0x1n;
const L2_GAS = 0x100000n;
const L1_DATA_GAS = 0x80n;
const FEE = L2_GAS * GAS_PRICE + L1_DATA_GAS * GAS_PRICE;
const ACCOUNT_CLASS = "0xacc0";
const CONTRACT_CLASS = "0xc1a55";
const EXECUTE = selector("__execute__");
const TRAFFIC_LIMIT = 20_000;
const specs = new Map<SpecVersion, Promise<StarknetSpec>>();

const ERRORS = {
  blockNotFound: { code: 24, message: "Block not found" },
  txNotFound: { code: 29, message: "Transaction hash not found" },
  pageTooBig: { code: 31, message: "Requested page size is too big" },
  badToken: { code: 33, message: "The supplied continuation token is invalid or unknown" },
  tooManyKeys: { code: 34, message: "Too many keys provided in a filter" },
  contractNotFound: { code: 20, message: "Contract not found" },
  contractError: { code: 40, message: "Contract error" },
  executionError: { code: 41, message: "Transaction execution error" },
  nonce: { code: 52, message: "Invalid transaction nonce" },
  resources: {
    code: 53,
    message: "The transaction's resources don't cover validation or the minimal transaction fee",
  },
  balance: {
    code: 54,
    message:
      "Account balance is smaller than the transaction's maximal fee (calculated as the sum of each resource's limit x max price)",
  },
  validation: { code: 55, message: "Account validation failed" },
  nonAccount: { code: 58, message: "Sender address is not an account contract" },
  duplicate: {
    code: 59,
    message: "A transaction with the same hash already exists in the mempool",
  },
  version: { code: 61, message: "the transaction version is not supported" },
  unexpected: { code: 63, message: "An unexpected error occurred" },
} as const;

/**
 * A decoded Cairo `Attestation` as the ledger takes it: the Ed25519 signature is `signature_r`
 * then `signature_s`, 32 bytes each.
 */
function attestation(value: Record<string, unknown>): SignedAttestation {
  const half = (v: unknown) => (v as bigint).toString(16).padStart(64, "0");
  return {
    jobId: String(value.job_id),
    verifier: String(value.verifier),
    attempt: Number(value.attempt),
    subject: String(value.subject),
    verdict: value.verdict as Verdict,
    signature: half(value.signature_r) + half(value.signature_s),
  };
}

function fail(error: RpcErrorObject, data?: unknown): never {
  throw new RpcFailure(data === undefined ? error : { ...error, data });
}

function big(value: unknown): bigint {
  if (typeof value !== "string" && typeof value !== "number") throw new TypeError("Not a felt");
  return BigInt(value);
}

function sameFelt(a: unknown, b: string): boolean {
  try {
    return typeof a === "string" && BigInt(a) === BigInt(b);
  } catch {
    return false;
  }
}

/** Whether spec `version` is at least `major.minor.patch`. */
function atLeast(version: string, minimum: string): boolean {
  const a = version.split(".").map(Number);
  const b = minimum.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
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
  readonly specVersion: SpecVersion;
  /** How many times each RPC method was called. */
  readonly calls: Map<string, number> = new Map();
  /** The `chunk_size` of every `starknet_getEvents` request, in order. */
  readonly chunkSizes: number[] = [];
  /** The `filter` of every `starknet_getEvents` request, in order. */
  readonly eventFilters: Record<string, unknown>[] = [];
  /** Every request and answer, in order (at most 20 000). */
  readonly traffic: TrafficEntry[] = [];
  /** Requests the spec refuses (the adapter's fault). */
  readonly requestProblems: string[] = [];
  /** Answers the spec refuses (the double's fault). */
  readonly responseProblems: string[] = [];

  readonly #spec: StarknetSpec;
  readonly #strict: boolean;
  readonly #ledgerOptions: LocalLedgerOptions;
  readonly #state: State;
  readonly #ownsLedger: boolean;
  readonly #server: Deno.HttpServer;
  readonly #autoMine: boolean;
  readonly #maxChunkSize: number;
  readonly #maxKeys: number;
  readonly #hiddenFor: number;
  readonly #executeAfter: number;
  readonly #l1Lag: number;
  readonly #staleNonceReads: number;
  readonly #leakPreConfirmed: boolean;
  readonly #instance = crypto.randomUUID().slice(0, 8);
  readonly #blocks: Block[] = [];
  readonly #pending: Tx[] = [];
  readonly #mempool: Pooled[] = [];
  readonly #executed: Tx[] = [];
  readonly #accounts = new Map<string, Account>();
  readonly #faults = new Map<string, (RpcErrorObject | "network" | "lost")[]>();
  readonly #replacements = new Map<string, unknown[]>();
  #evictions = 0;
  #ledgerCursor = { blockNumber: 0, eventIndex: 0 };
  /** Each job's status as `escrow_of` answers it, folded from the ledger's events up to the cursor. */
  readonly #statuses = new Map<string, string>();
  #statusCursor = { blockNumber: 0, eventIndex: 0 };
  #queue: Promise<void> = Promise.resolve();
  #salt = 0;
  #foreign = 0;
  #time = 1_700_000_000;

  private constructor(options: StarknetRpcServerOptions, spec: StarknetSpec) {
    this.#spec = spec;
    this.specVersion = spec.version;
    this.#strict = options.strict ?? true;
    this.#ledgerOptions = options.ledgerOptions ?? {};
    this.#ownsLedger = options.ledger === undefined;
    this.#state = {
      ledger: options.ledger ??
        LocalLedger.open(":memory:", { now: () => this.#time * 1000, ...options.ledgerOptions }),
      nodeByAccount: new Map(),
      accountByNode: new Map(),
    };
    this.jobManagerAddress = felt(BigInt(options.jobManagerAddress ?? "0x10a0"));
    this.cdcPoolAddress = felt(BigInt(options.cdcPoolAddress ?? "0x10b0"));
    this.tokenAddress = felt(BigInt(options.tokenAddress ?? "0x10c0"));
    this.chainId = options.chainId ?? "0x534e5f5345504f4c4941";
    this.#autoMine = options.autoMine ?? true;
    this.#maxChunkSize = options.maxChunkSize ?? 1024;
    this.#maxKeys = options.maxKeysInFilter ?? 1024;
    this.#hiddenFor = options.mempool?.hiddenFor ?? 1;
    this.#executeAfter = Math.max(options.mempool?.executeAfter ?? 2, this.#hiddenFor);
    this.#l1Lag = options.l1Lag ?? 2;
    this.#staleNonceReads = options.staleNonceReads ?? 0;
    this.#leakPreConfirmed = options.leakPreConfirmedEvents ?? false;
    for (const account of options.accounts ?? []) this.addAccount(account);
    this.#blocks.push(this.#makeBlock(0, felt(0), []));
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (request) => this.#handle(request),
    );
    const address = this.#server.addr as Deno.NetAddr;
    this.url = `http://127.0.0.1:${address.port}/rpc/v${spec.version.replaceAll(".", "_")}`;
  }

  /** Starts a server on 127.0.0.1 on a free port. */
  static async start(options: StarknetRpcServerOptions = {}): Promise<StarknetRpcServer> {
    const version = options.specVersion ?? "0.10.3";
    let spec = specs.get(version);
    if (spec === undefined) {
      spec = StarknetSpec.load(version);
      specs.set(version, spec);
    }
    return new StarknetRpcServer(options, await spec);
  }

  /** The ledger behind the contracts (for money checks in tests). */
  get ledger(): LocalLedger {
    return this.#state.ledger;
  }

  /** The latest accepted block number. */
  get blockNumber(): number {
    return this.#blocks.length - 1;
  }

  /** The transactions waiting in the pre-confirmed block. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** The transactions waiting in the mempool. */
  get mempoolCount(): number {
    return this.#mempool.length;
  }

  /** Every spec violation seen, requests and answers. */
  get problems(): string[] {
    return [...this.requestProblems, ...this.responseProblems];
  }

  /** Deploys an account. */
  addAccount(account: AccountSetup): void {
    this.#accounts.set(felt(BigInt(account.address)), {
      publicKey: BigInt(account.publicKey),
      balance: account.balance ?? 10n ** 20n,
      nonce: 0n,
      stale: 0,
    });
  }

  /** An account's fee balance, fri. */
  balanceOf(address: string): bigint {
    return this.#accounts.get(felt(BigInt(address)))?.balance ?? 0n;
  }

  /** Executed transactions (successful or reverted) sent by `address`. */
  transactionsOf(address: string): number {
    const sender = felt(BigInt(address));
    return this.#executed.filter((tx) => tx.sender === sender).length;
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
   * Makes the next `count` requests for `method` fail with `error` (a JSON-RPC error), with an
   * HTTP 503 before processing (`"network"`), or with an HTTP 503 after processing (`"lost"`).
   */
  failNext(method: string, error: RpcErrorObject | "network" | "lost", count = 1): void {
    const list = this.#faults.get(method) ?? [];
    for (let i = 0; i < count; i++) list.push(error);
    this.#faults.set(method, list);
  }

  /**
   * Makes the next request for `method` answer `result` instead of its own, after processing it
   * (a node that lies or has another idea of the hash). The answer is still schema-checked.
   */
  answerNext(method: string, result: unknown): void {
    const list = this.#replacements.get(method) ?? [];
    list.push(result);
    this.#replacements.set(method, list);
  }

  /** The next `count` transactions accepted into the mempool are evicted instead of executed. */
  evictNext(count = 1): void {
    this.#evictions += count;
  }

  /**
   * Appends a block with one transaction of another contract emitting `keys` and `data` (as
   * anyone can deploy a contract that emits an event named like ours).
   */
  emitForeign(fromAddress: string, keys: string[], data: string[]): void {
    const txHash = felt(
      BigInt(hash.computePoseidonHashOnElements([fromAddress, felt(++this.#foreign)])),
    );
    this.#appendBlock([{
      hash: txHash,
      sender: felt(BigInt(fromAddress)),
      nonce: 0n,
      calls: [],
      fee: 0n,
      time: this.#time,
      events: [{ from_address: felt(BigInt(fromAddress)), keys, data }],
    }]);
  }

  /**
   * Appends a block with one transaction emitting `events` in this order, from whatever address
   * each names (to put events of one transaction in an order the contracts do not produce).
   */
  emitRaw(events: readonly { from_address: string; keys: string[]; data: string[] }[]): void {
    const txHash = felt(
      BigInt(hash.computePoseidonHashOnElements(["0x7261770a", felt(++this.#foreign)])),
    );
    this.#appendBlock([{
      hash: txHash,
      sender: felt(0x7261770an),
      nonce: 0n,
      calls: [],
      fee: 0n,
      time: this.#time,
      events: events.map((e) => ({ ...e, from_address: felt(BigInt(e.from_address)) })),
    }]);
  }

  /** Uses up one nonce of `account`, as a transaction sent by another process would. */
  bumpNonce(account: string): void {
    const entry = this.#accounts.get(felt(BigInt(account)));
    if (entry === undefined) throw new RangeError(`Unknown account ${account}`);
    entry.nonce++;
  }

  /**
   * Moves the chain's clock forward by `ms` (rounded up to whole seconds): the next block's
   * timestamp, and the time the contracts check deadlines and unbonding against.
   */
  advanceTime(ms: number): void {
    if (!Number.isSafeInteger(ms) || ms < 0) {
      throw new RangeError(`Cannot advance the clock: expected a non-negative integer, got ${ms}`);
    }
    this.#time += Math.ceil(ms / 1000);
  }

  /** Stops listening; closes the ledger if the server opened it. */
  async close(): Promise<void> {
    await this.#server.shutdown();
    if (this.#ownsLedger) this.#state.ledger.close();
  }

  // -------------------------------------------------------------------------------------------
  // Blocks

  #makeBlock(number: number, parentHash: string, txs: Tx[]): Block {
    const blockHash = felt(BigInt(hash.computePoseidonHashOnElements([
      parentHash,
      felt(number),
      felt(this.#salt),
      ...txs.map((t) => t.hash),
    ])));
    return { number, hash: blockHash, parentHash, timestamp: this.#time++, txs };
  }

  #appendBlock(txs: Tx[]): void {
    const parent = this.#blocks.at(-1)!;
    this.#blocks.push(this.#makeBlock(parent.number + 1, parent.hash, txs));
  }

  #resolveBlock(blockId: unknown): Block | "pre_confirmed" {
    if (blockId === "latest") return this.#blocks.at(-1)!;
    if (blockId === "l1_accepted") {
      return this.#blocks[Math.max(0, this.blockNumber - this.#l1Lag)]!;
    }
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
    fail(ERRORS.blockNotFound);
  }

  #findTx(txHash: unknown): { tx: Tx; block: Block | undefined } {
    for (const block of this.#blocks) {
      const tx = block.txs.find((t) => sameFelt(txHash, t.hash));
      if (tx !== undefined) return { tx, block };
    }
    const tx = this.#pending.find((t) => sameFelt(txHash, t.hash));
    if (tx !== undefined) return { tx, block: undefined };
    fail(ERRORS.txNotFound);
  }

  #finality(block: Block): string {
    return block.number <= this.blockNumber - this.#l1Lag ? "ACCEPTED_ON_L1" : "ACCEPTED_ON_L2";
  }

  #header(block: Block): Record<string, unknown> {
    const price = { price_in_fri: felt(GAS_PRICE), price_in_wei: felt(GAS_PRICE) };
    const v10 = atLeast(this.specVersion, "0.10.0");
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
      starknet_version: v10 ? "0.14.1" : "0.14.0",
      ...(v10 && {
        event_commitment: felt(0),
        transaction_commitment: felt(0),
        receipt_commitment: felt(0),
        state_diff_commitment: felt(0),
        event_count: block.txs.reduce((n, t) => n + t.events.length, 0),
        transaction_count: block.txs.length,
        state_diff_length: 0,
      }),
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
    const params = body.params ?? {};
    this.calls.set(method, (this.calls.get(method) ?? 0) + 1);
    const fault = this.#faults.get(method)?.shift();
    if (fault === "network") return new Response("Service unavailable", { status: 503 });
    // One request at a time, like a node's state machine: no interleaving across awaits.
    const run = this.#queue.then(() => this.#serve(method, params, fault));
    this.#queue = run.then(() => {}, () => {});
    const answer = await run;
    if (fault === "lost") return new Response("Service unavailable", { status: 503 });
    return Response.json({ jsonrpc: "2.0", id, ...answer });
  }

  async #serve(
    method: string,
    params: unknown,
    fault: RpcErrorObject | "lost" | undefined,
  ): Promise<{ result: unknown } | { error: RpcErrorObject }> {
    await this.#advanceMempool();
    let answer: { result: unknown } | { error: RpcErrorObject };
    const requestProblems = this.#spec.has(method)
      ? this.#spec.checkParams(method, params)
      : [`${method} is not a method of spec ${this.specVersion}`];
    for (const problem of requestProblems) this.requestProblems.push(problem);
    if (fault !== undefined && fault !== "lost") {
      answer = { error: fault };
    } else if (!this.#spec.has(method)) {
      answer = { error: { code: -32601, message: "Method not found" } };
    } else if (requestProblems.length > 0 && this.#strict) {
      answer = { error: { code: -32602, message: "Invalid params", data: requestProblems[0] } };
    } else {
      try {
        answer = { result: await this.#dispatch(method, params as Record<string, unknown>) };
        const replacements = this.#replacements.get(method);
        if (replacements !== undefined && replacements.length > 0) {
          answer = { result: replacements.shift() };
        }
      } catch (error) {
        answer = error instanceof RpcFailure
          ? { error: error.error }
          : { error: { ...ERRORS.unexpected, data: String(error) } };
      }
    }
    if ("error" in answer && answer.error.code === 63 && !method.startsWith("starknet_add")) {
      // 63 is a write API error; read methods answer an internal error as -32603.
      answer = { error: { code: -32603, message: "Internal error", data: answer.error.data } };
    }
    const problems = "result" in answer
      ? this.#spec.checkResult(method, answer.result)
      : this.#spec.checkError(method, answer.error);
    for (const problem of problems) this.responseProblems.push(problem);
    if (this.traffic.length < TRAFFIC_LIMIT) this.traffic.push({ method, params, ...answer });
    return answer;
  }

  #dispatch(method: string, params: Record<string, unknown>): unknown | Promise<unknown> {
    const param = (name: string, index: number) =>
      Array.isArray(params) ? params[index] : params[name];
    switch (method) {
      case "starknet_specVersion":
        return this.specVersion;
      case "starknet_chainId":
        return this.chainId;
      case "starknet_blockNumber":
        return this.blockNumber;
      case "starknet_blockHashAndNumber": {
        const head = this.#blocks.at(-1)!;
        return { block_hash: head.hash, block_number: head.number };
      }
      case "starknet_getBlockWithTxHashes":
        return this.#getBlock(param("block_id", 0));
      case "starknet_getNonce":
        return this.#getNonce(param("block_id", 0), param("contract_address", 1));
      case "starknet_estimateFee":
        return this.#estimateFee(param("request", 0) as unknown[]);
      case "starknet_addInvokeTransaction":
        return this.#addInvoke(param("invoke_transaction", 0) as Record<string, unknown>);
      case "starknet_getTransactionStatus":
        return this.#getTransactionStatus(param("transaction_hash", 0));
      case "starknet_getTransactionReceipt":
        return this.#getReceipt(param("transaction_hash", 0));
      case "starknet_getEvents":
        return this.#getEvents(param("filter", 0) as Record<string, unknown>);
      case "starknet_call":
        return this.#call(param("request", 0) as Record<string, unknown>, param("block_id", 1));
      default:
        throw new RpcFailure({ code: -32601, message: "Method not found" });
    }
  }

  #getBlock(blockId: unknown): unknown {
    const block = this.#resolveBlock(blockId);
    if (block === "pre_confirmed") {
      const head = this.#blocks.at(-1)!;
      const { block_hash: _h, parent_hash: _p, new_root: _r, ...header } = this.#header(
        this.#makeBlock(head.number + 1, head.hash, this.#pending),
      );
      this.#time--;
      return { ...header, transactions: this.#pending.map((t) => t.hash) };
    }
    return {
      status: this.#finality(block),
      ...this.#header(block),
      transactions: block.txs.map((t) => t.hash),
    };
  }

  #getNonce(blockId: unknown, address: unknown): string {
    const account = this.#accounts.get(felt(big(address)));
    if (account === undefined) fail(ERRORS.contractNotFound);
    if (account.stale > 0) {
      account.stale--;
      return felt(account.nonce - 1n);
    }
    if (blockId === "pre_confirmed") return felt(account.nonce);
    const block = this.#resolveBlock(blockId) as Block;
    const sender = felt(big(address));
    const later = this.#pending.filter((t) => t.sender === sender).length +
      this.#blocks.slice(block.number + 1).reduce(
        (n, b) => n + b.txs.filter((t) => t.sender === sender).length,
        0,
      );
    return felt(account.nonce - BigInt(later));
  }

  #getTransactionStatus(txHash: unknown): unknown {
    const pooled = this.#mempool.find((p) => sameFelt(txHash, p.tx.hash));
    if (pooled !== undefined) {
      if (pooled.age < this.#hiddenFor) fail(ERRORS.txNotFound);
      // CANDIDATE: picked for the next block (its nonce is the account's next); a transaction
      // waiting for a nonce gap, or just out of hiding, is RECEIVED.
      const next = this.#accounts.get(pooled.tx.sender)?.nonce === pooled.tx.nonce;
      return { finality_status: next && pooled.age > this.#hiddenFor ? "CANDIDATE" : "RECEIVED" };
    }
    const { tx, block } = this.#findTx(txHash);
    return {
      finality_status: block === undefined ? "PRE_CONFIRMED" : this.#finality(block),
      execution_status: tx.reverted === undefined ? "SUCCEEDED" : "REVERTED",
      ...(tx.reverted !== undefined && { failure_reason: tx.reverted }),
    };
  }

  #getReceipt(txHash: unknown): unknown {
    const { tx, block } = this.#findTx(txHash);
    return {
      type: "INVOKE",
      transaction_hash: tx.hash,
      actual_fee: { amount: felt(tx.fee), unit: "FRI" },
      finality_status: block === undefined ? "PRE_CONFIRMED" : this.#finality(block),
      messages_sent: [],
      events: tx.events,
      execution_resources: { l1_gas: 0, l1_data_gas: Number(L1_DATA_GAS), l2_gas: Number(L2_GAS) },
      ...(tx.reverted === undefined
        ? { execution_status: "SUCCEEDED" }
        : { execution_status: "REVERTED", revert_reason: tx.reverted }),
      ...(block === undefined
        ? { block_number: this.blockNumber + 1 }
        : { block_hash: block.hash, block_number: block.number }),
    };
  }

  // -------------------------------------------------------------------------------------------
  // Events

  #getEvents(filter: Record<string, unknown>): unknown {
    const chunkSize = filter.chunk_size as number;
    this.chunkSizes.push(chunkSize);
    this.eventFilters.push(filter);
    if (chunkSize > this.#maxChunkSize) fail(ERRORS.pageTooBig);
    const keys = (filter.keys ?? []) as string[][];
    if (keys.reduce((n, k) => n + k.length, 0) > this.#maxKeys) fail(ERRORS.tooManyKeys);
    const from = filter.from_block === undefined ? 0 : this.#blockNumberOf(filter.from_block);
    const toId = filter.to_block ?? "latest";
    const includePending = toId === "pre_confirmed" || this.#leakPreConfirmed;
    const to = toId === "pre_confirmed" ? this.blockNumber : this.#blockNumberOf(toId);
    const addresses = filter.address === undefined
      ? undefined
      : (Array.isArray(filter.address) ? filter.address : [filter.address]) as string[];
    const matches = (event: RawEventBody) =>
      (addresses === undefined || addresses.some((a) => sameFelt(a, event.from_address))) &&
      keys.every((allowed, i) =>
        allowed.length === 0 || allowed.some((k) => sameFelt(k, event.keys[i] ?? "0x-"))
      );
    const indexed = atLeast(this.specVersion, "0.10.0");
    const all: Record<string, unknown>[] = [];
    const add = (txs: Tx[], block: Block | undefined) => {
      txs.forEach((tx, txIndex) => {
        tx.events.forEach((event, eventIndex) => {
          if (!matches(event)) return;
          all.push({
            ...event,
            ...(block !== undefined && { block_hash: block.hash, block_number: block.number }),
            transaction_hash: tx.hash,
            ...(indexed && { transaction_index: txIndex, event_index: eventIndex }),
          });
        });
      });
    };
    for (let n = from; n <= to; n++) {
      const block = this.#blocks[n];
      if (block !== undefined) add(block.txs, block);
    }
    if (includePending) add(this.#pending, undefined);
    let offset = 0;
    if (filter.continuation_token !== undefined) {
      const match = /^([0-9a-f]{8})-(\d+)$/.exec(String(filter.continuation_token));
      if (match === null || match[1] !== this.#instance) fail(ERRORS.badToken);
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

  #decodeMulticall(calldata: bigint[]): Call[] {
    const reader = new FeltReader(calldata);
    const count = Number(reader.next());
    const calls: Call[] = [];
    for (let c = 0; c < count; c++) {
      const to = felt(reader.next());
      const sel = felt(reader.next());
      const length = Number(reader.next());
      const args = Array.from({ length }, () => reader.next());
      calls.push(this.#decodeCall(to, sel, args));
    }
    if (!reader.done) throw new RangeError("Calldata longer than its calls");
    return calls;
  }

  #decodeCall(to: string, sel: string, args: bigint[]): Call {
    if (to === this.tokenAddress) {
      if (sel !== selector("approve")) throw new Panic("ENTRYPOINT_NOT_FOUND", to, sel);
      const reader = new FeltReader(args);
      return {
        to,
        contract: "token",
        fn: "approve",
        args: [reader.read("ContractAddress"), reader.read("u256")],
      };
    }
    const contract = to === this.jobManagerAddress
      ? "jobManager"
      : to === this.cdcPoolAddress
      ? "cdcPool"
      : undefined;
    if (contract === undefined) throw new Panic("CONTRACT_NOT_DEPLOYED", to, sel);
    const fn = CONTRACT_FUNCTIONS[contract].find((name) => selector(name) === sel);
    if (fn === undefined) throw new Panic("ENTRYPOINT_NOT_FOUND", to, sel);
    const reader = new FeltReader(args);
    let decoded: unknown[];
    try {
      decoded = FUNCTION_INPUTS[fn]!.map((type) => reader.read(type));
      if (!reader.done) throw new RangeError("Too many arguments");
    } catch {
      throw new Panic("Failed to deserialize param", to, fn);
    }
    return { to, contract, fn, args: decoded };
  }

  /**
   * Runs `calls` as `sender` on `state`; returns the events, or throws a {@link Panic}. `escrows`
   * collects what they changed of escrows.
   */
  async #apply(
    state: State,
    sender: string,
    calls: Call[],
    escrows?: EscrowChange[],
  ): Promise<RawEventBody[]> {
    const events: RawEventBody[] = [];
    const reader = state.ledger.as("starknet-rpc-server");
    let cursor = state === this.#state
      ? this.#ledgerCursor
      : (await reader.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 100_000 })).next;
    try {
      for (const call of calls) {
        if (call.contract === "token") continue;
        if (call.fn === "register_node") {
          const nodeId = String(call.args[0]);
          const current = state.nodeByAccount.get(sender);
          const owner = state.accountByNode.get(nodeId);
          if (
            (current !== undefined && current !== nodeId) ||
            (owner !== undefined && owner !== sender)
          ) {
            throw new Panic("not_authorized", call.to, call.fn);
          }
          if (current === undefined) {
            state.nodeByAccount.set(sender, nodeId);
            state.accountByNode.set(nodeId, sender);
            events.push({
              from_address: this.cdcPoolAddress,
              ...encodeEvent("NodeRegistered", { nodeId, account: BigInt(sender) }),
            });
          }
          continue;
        }
        const nodeId = state.nodeByAccount.get(sender);
        if (nodeId === undefined) throw new Panic("not_authorized", call.to, call.fn);
        await this.#run(state.ledger.as(nodeId), call);
        const { events: emitted, next } = await reader.eventsSince(cursor, { limit: 1000 });
        cursor = next;
        for (const event of emitted) {
          events.push(this.#encode(event));
          const status = STATUS_AFTER[event.name];
          if (status === undefined || !("jobId" in event)) continue;
          escrows?.push({
            jobId: event.jobId,
            status,
            ...(event.name === "JobSubmitted" &&
              { client: event.client, specHash: event.specHash }),
          });
        }
      }
    } finally {
      await reader.close();
    }
    if (state === this.#state) this.#ledgerCursor = cursor;
    return events;
  }

  #encode(event: ChainEvent): RawEventBody {
    const emitter = EVENT_EMITTER[event.name] === "jobManager"
      ? this.jobManagerAddress
      : this.cdcPoolAddress;
    return { from_address: emitter, ...encodeEvent(event.name, { ...event }) };
  }

  async #run(port: ChainPort, call: Call): Promise<void> {
    const [a, b, c, d, e] = call.args as [never, never, never, never, never];
    try {
      switch (call.fn) {
        case "submit_job":
          await port.submitJob({
            jobId: a,
            amount: b,
            minStake: c,
            modelHash: d,
            inputCommitment: e,
          });
          break;
        case "submit_job_with_terms": {
          const terms = call.args[5] as Record<string, bigint>;
          await port.submitJob({
            jobId: a,
            amount: b,
            minStake: c,
            modelHash: d,
            inputCommitment: e,
            verifierCount: Number(terms.verifier_count),
            bidWindowMs: Number(terms.bid_window_ms),
            executionMs: Number(terms.execution_ms),
            verificationMs: Number(terms.verification_ms),
            specHash: String(terms.spec_hash),
          });
          break;
        }
        case "assign_worker":
          await port.assignWorker({ jobId: a, worker: b, price: c, verifiers: d });
          break;
        case "revoke_assignment":
          await port.revokeAssignment({ jobId: a, worker: b });
          break;
        case "submit_result":
          await port.submitResult({ jobId: a, commitment: b });
          break;
        case "record_verification":
          await port.recordVerification({ jobId: a, accepted: b });
          break;
        case "report_failure":
          await port.reportFailure!({ jobId: a, reason: b });
          break;
        case "submit_attestations":
          await port.submitAttestations!({
            attestations: (a as unknown as Record<string, unknown>[]).map(attestation),
          });
          break;
        case "report_double_signing":
          await port.reportDoubleSigning!({ first: attestation(a), second: attestation(b) });
          break;
        case "release_payment":
          await port.releasePayment({ jobId: a });
          break;
        case "refund":
          await port.refund({ jobId: a, reason: b });
          break;
        case "slash_worker":
          await port.slash({ jobId: a, worker: b, reason: c });
          break;
        case "stake":
          await port.stake({ amount: a });
          break;
        case "stake_as_verifier":
          await port.stake({ amount: a, role: "verifier" });
          break;
        case "register_key":
          await port.registerKey!({ publicKey: a });
          break;
        case "request_unstake":
          await port.requestUnstake({ amount: a });
          break;
        case "withdraw":
          await port.withdraw();
          break;
        default:
          throw new Panic("ENTRYPOINT_NOT_FOUND", call.to, call.fn);
      }
    } catch (cause) {
      if (cause instanceof Panic) throw cause;
      const error = cause as { name?: string; code?: string };
      const reason = error.name === "ChainError" && typeof error.code === "string"
        ? error.code
        : "invalid_argument";
      throw new Panic(reason, call.to, call.fn);
    } finally {
      await port.close();
    }
  }

  /** Runs `calls` as `sender` on a copy of the state (replaying every executed transaction). */
  async #simulate(sender: string, calls: Call[]): Promise<void> {
    let now = this.#time;
    const state: State = {
      ledger: LocalLedger.open(":memory:", { ...this.#ledgerOptions, now: () => now * 1000 }),
      nodeByAccount: new Map(),
      accountByNode: new Map(),
    };
    try {
      for (const tx of this.#executed) {
        if (tx.reverted !== undefined) continue;
        now = tx.time;
        await this.#apply(state, tx.sender, tx.calls);
      }
      now = this.#time;
      await this.#apply(state, sender, calls);
    } finally {
      state.ledger.close();
    }
  }

  #executionError(sender: string, panic: Panic): unknown {
    const sel = panic.fn.startsWith("0x") ? panic.fn : selector(panic.fn);
    const inner = `${felt(encodeValue("shortstring", panic.reason)[0]!)} ('${panic.reason}')`;
    return {
      contract_address: sender,
      class_hash: ACCOUNT_CLASS,
      selector: EXECUTE,
      error: {
        contract_address: panic.to,
        class_hash: CONTRACT_CLASS,
        selector: sel,
        error: inner,
      },
    };
  }

  #revertReason(sender: string, panic: Panic): string {
    const sel = panic.fn.startsWith("0x") ? panic.fn : selector(panic.fn);
    return `Transaction execution has failed:\n` +
      `0: Error in the called contract (contract address: ${sender}, class hash: ${ACCOUNT_CLASS}, selector: ${EXECUTE}):\n` +
      `1: Error in the called contract (contract address: ${panic.to}, class hash: ${CONTRACT_CLASS}, selector: ${sel}):\n` +
      `Execution failed. Failure reason:\n(${
        felt(encodeValue("shortstring", panic.reason)[0]!)
      } ('${panic.reason}')).\n`;
  }

  async #estimateFee(requests: unknown[]): Promise<unknown> {
    const out: unknown[] = [];
    for (const [index, request] of requests.entries()) {
      const tx = request as Record<string, unknown>;
      if (tx.type !== "INVOKE") fail(ERRORS.unexpected, "only INVOKE is simulated");
      const sender = felt(big(tx.sender_address));
      if (!this.#accounts.has(sender)) fail(ERRORS.contractNotFound);
      try {
        const calls = this.#decodeMulticall((tx.calldata as string[]).map(big));
        await this.#simulate(sender, calls);
      } catch (error) {
        if (!(error instanceof Panic)) throw error;
        fail(ERRORS.executionError, {
          transaction_index: index,
          execution_error: this.#executionError(sender, error),
        });
      }
      out.push({
        l1_gas_consumed: felt(0),
        l1_gas_price: felt(GAS_PRICE),
        l2_gas_consumed: felt(L2_GAS),
        l2_gas_price: felt(GAS_PRICE),
        l1_data_gas_consumed: felt(L1_DATA_GAS),
        l1_data_gas_price: felt(GAS_PRICE),
        overall_fee: felt(FEE),
        unit: "FRI",
      });
    }
    return out;
  }

  #addInvoke(tx: Record<string, unknown>): unknown {
    if (tx.type !== "INVOKE" || tx.version !== "0x3") fail(ERRORS.version);
    const sender = felt(big(tx.sender_address));
    const account = this.#accounts.get(sender);
    if (account === undefined) fail(ERRORS.nonAccount);
    const rb = tx.resource_bounds as Record<string, Record<string, string>>;
    const bound = (name: string) => ({
      max_amount: big(rb[name]!.max_amount),
      max_price_per_unit: big(rb[name]!.max_price_per_unit),
    });
    const bounds: Bounds = {
      l1_gas: bound("l1_gas"),
      l2_gas: bound("l2_gas"),
      l1_data_gas: bound("l1_data_gas"),
    };
    const calldata = (tx.calldata as string[]).map(big);
    const nonce = big(tx.nonce);
    const da = (mode: unknown) => (mode === "L2" ? 1n : 0n);
    const txHash = felt(invokeV3Hash({
      version: 3n,
      sender: BigInt(sender),
      tip: big(tx.tip),
      bounds,
      paymasterData: (tx.paymaster_data as string[]).map(big),
      chainId: BigInt(this.chainId),
      nonce,
      nonceDaMode: da(tx.nonce_data_availability_mode),
      feeDaMode: da(tx.fee_data_availability_mode),
      accountDeploymentData: (tx.account_deployment_data as string[]).map(big),
      calldata,
    }));
    // 59 is about the mempool; an executed copy is refused by its used nonce (52) below.
    if (this.#mempool.some((p) => p.tx.hash === txHash)) fail(ERRORS.duplicate);
    const queued = this.#mempool.filter((p) => p.tx.sender === sender).map((p) => p.tx.nonce);
    if (nonce < account.nonce || queued.includes(nonce)) {
      fail(
        ERRORS.nonce,
        `Invalid transaction nonce of contract at address ${sender}. Account nonce: ${
          felt(account.nonce)
        }; got: ${felt(nonce)}.`,
      );
    }
    if (bounds.l2_gas.max_price_per_unit < GAS_PRICE || bounds.l2_gas.max_amount < L2_GAS) {
      fail(ERRORS.resources);
    }
    const maxFee = bounds.l1_gas.max_amount * bounds.l1_gas.max_price_per_unit +
      bounds.l2_gas.max_amount * bounds.l2_gas.max_price_per_unit +
      bounds.l1_data_gas.max_amount * bounds.l1_data_gas.max_price_per_unit;
    if (maxFee > account.balance) fail(ERRORS.balance);
    const signature = (tx.signature as string[]).map(big);
    let valid = false;
    try {
      // The account stores the Stark key (the x coordinate): either y may be the key's.
      const x = account.publicKey.toString(16).padStart(64, "0");
      valid = signature.length === 2 &&
        ["02", "03"].some((prefix) =>
          ec.starkCurve.verify(
            new ec.starkCurve.Signature(signature[0]!, signature[1]!),
            felt(BigInt(txHash)),
            `${prefix}${x}`,
          )
        );
    } catch {
      valid = false;
    }
    if (!valid) fail(ERRORS.validation, `Invalid signature for transaction ${txHash}`);
    let calls: Call[];
    let decodeError: Panic | undefined;
    try {
      calls = this.#decodeMulticall(calldata);
    } catch (error) {
      calls = [];
      decodeError = error instanceof Panic
        ? error
        : new Panic("Failed to deserialize param", sender, EXECUTE);
    }
    const record: Tx = { hash: txHash, sender, nonce, calls, events: [], fee: FEE, time: 0 };
    if (decodeError !== undefined) record.reverted = this.#revertReason(sender, decodeError);
    const evict = this.#evictions > 0;
    if (evict) this.#evictions--;
    this.#mempool.push({ tx: record, age: 0, evict });
    return this.#advanceMempool(0).then(() => ({ transaction_hash: txHash }));
  }

  /** Ages the mempool by `step` requests and executes what is due, in nonce order. */
  async #advanceMempool(step = 1): Promise<void> {
    for (const pooled of this.#mempool) pooled.age += step;
    for (let progress = true; progress;) {
      progress = false;
      for (const pooled of [...this.#mempool]) {
        if (pooled.age < this.#executeAfter) continue;
        const account = this.#accounts.get(pooled.tx.sender)!;
        if (pooled.tx.nonce !== account.nonce) continue;
        this.#mempool.splice(this.#mempool.indexOf(pooled), 1);
        progress = true;
        if (pooled.evict) continue;
        await this.#execute(pooled.tx, account);
      }
    }
  }

  async #execute(record: Tx, account: Account): Promise<void> {
    account.nonce++;
    account.stale = this.#staleNonceReads;
    account.balance -= record.fee;
    record.time = this.#time;
    if (record.reverted === undefined) {
      try {
        await this.#simulate(record.sender, record.calls);
        const escrows: EscrowChange[] = [];
        record.events = await this.#apply(this.#state, record.sender, record.calls, escrows);
        record.escrows = escrows;
      } catch (error) {
        if (!(error instanceof Panic)) throw error;
        record.events = [];
        record.reverted = this.#revertReason(record.sender, error);
      }
    }
    this.#executed.push(record);
    if (this.#autoMine) this.#appendBlock([record]);
    else this.#pending.push(record);
  }

  // -------------------------------------------------------------------------------------------
  // Views

  /**
   * Job `jobId`'s status as the Cairo JobManager would store it (CAIRO_INTERFACE.md, `escrow_of`):
   * the ledger keeps no status a port can read, so the double folds the ledger's events, from
   * where it left off, into its own table.
   */
  async #statusOf(port: ChainPort, jobId: string): Promise<string> {
    for (let page = 0; page < 10_000; page++) {
      const { events, next } = await port.eventsSince(this.#statusCursor, { limit: 1000 });
      this.#statusCursor = next;
      if (events.length === 0) break;
      for (const event of events) {
        const status = STATUS_AFTER[event.name];
        if (status !== undefined && "jobId" in event) this.#statuses.set(event.jobId, status);
      }
    }
    return this.#statuses.get(jobId) ?? "none";
  }

  /**
   * Job `jobId`'s escrow as `escrow_of` answers it at `block`: what the transactions of the blocks
   * up to it changed, in order (not the ledger's current state, which later blocks, the
   * pre-confirmed one and a reorg that dropped blocks have changed).
   */
  #escrowAt(block: Block, jobId: string): EscrowChange | undefined {
    let escrow: EscrowChange | undefined;
    for (const { txs } of this.#blocks.slice(0, block.number + 1)) {
      for (const tx of txs) {
        for (const change of tx.escrows ?? []) {
          if (change.jobId !== jobId) continue;
          escrow = change.status === "submitted" || escrow === undefined
            ? change
            : { ...escrow, status: change.status };
        }
      }
    }
    return escrow;
  }

  async #call(request: Record<string, unknown>, blockId: unknown): Promise<string[]> {
    const to = felt(big(request.contract_address));
    const contract = to === this.jobManagerAddress
      ? "jobManager"
      : to === this.cdcPoolAddress
      ? "cdcPool"
      : undefined;
    if (contract === undefined) fail(ERRORS.contractNotFound);
    const sel = felt(big(request.entry_point_selector));
    const fn = CONTRACT_FUNCTIONS[contract].find((name) => selector(name) === sel);
    const contractError = (error: string) =>
      fail(ERRORS.contractError, {
        revert_error: { contract_address: to, class_hash: CONTRACT_CLASS, selector: sel, error },
      });
    if (fn === undefined) return contractError("ENTRYPOINT_NOT_FOUND");
    const reader = new FeltReader(((request.calldata as string[] | undefined) ?? []).map(big));
    let args: unknown[];
    try {
      args = FUNCTION_INPUTS[fn]!.map((type) => reader.read(type));
    } catch {
      return contractError("Failed to deserialize param");
    }
    const ledger = this.#state.ledger;
    const out = (type: Parameters<typeof encodeValue>[0], value: unknown) =>
      encodeValue(type, value).map(felt);
    switch (fn) {
      case "node_id_of":
        return out("ByteArray", this.#state.nodeByAccount.get(felt(args[0] as bigint)) ?? "");
      case "account_of":
        return [this.#state.accountByNode.get(String(args[0])) ?? felt(0)];
      case "stake_of":
        return out("u256", ledger.stakeLockOf(String(args[0])).stake);
      case "reputation_of": {
        const port = ledger.as("starknet-rpc-server");
        try {
          return out("u32", await port.reputationOf(String(args[0])));
        } finally {
          await port.close();
        }
      }
      case "escrow_totals":
      case "stake_totals": {
        const port = ledger.as("starknet-rpc-server");
        try {
          const t = await port.totals();
          const values = fn === "escrow_totals"
            ? [t.escrowed, t.paid, t.fees, t.refunded, t.locked]
            : [t.staked, t.slashed, t.withdrawn, t.bonded];
          return values.flatMap((v) => out("u256", v));
        } finally {
          await port.close();
        }
      }
      case "escrow_of": {
        const jobId = String(args[0]);
        if (blockId !== "latest" && blockId !== "pre_confirmed") {
          // A past block (by number, hash or `l1_accepted`): the escrow as that block left it.
          const escrow = this.#escrowAt(this.#resolveBlock(blockId) as Block, jobId);
          return [
            ...out("ByteArray", escrow?.client ?? ""),
            ...out("hash256", escrow?.specHash),
            ...out("shortstring", escrow?.status ?? "none"),
          ];
        }
        const port = ledger.as("starknet-rpc-server");
        try {
          const escrow = await port.escrowOf!(jobId);
          const status = await this.#statusOf(port, jobId);
          const ended = status === "paid" || status === "refunded";
          if (
            (escrow === undefined) !== (status === "none") || (escrow?.ended ?? false) !== ended
          ) {
            throw new Error(`The double's status ${status} of ${jobId} is not the ledger's`);
          }
          return [
            ...out("ByteArray", escrow?.client ?? ""),
            ...out("hash256", escrow?.specHash),
            ...out("shortstring", status),
          ];
        } finally {
          await port.close();
        }
      }
      case "cdc_pool":
        return [this.cdcPoolAddress];
      case "payment_token":
        return [this.tokenAddress];
      default:
        return contractError(`Cannot call ${fn} as a view`);
    }
  }
}
