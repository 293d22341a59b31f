/**
 * The Starknet settlement adapter: {@link StarknetChain} implements the {@link ChainPort} against
 * the JobManager and CDC Pool Cairo contracts (interface: `chain/CAIRO_INTERFACE.md`, ABIs:
 * `chain/abi/*.json`) through starknet.js 10.8 (`RpcProvider`, `Account`, `Contract`; JSON-RPC
 * spec 0.9 or 0.10).
 *
 * Transactions. Calls from one adapter are sent one at a time: the adapter keeps the account's
 * next nonce (read from the pre-confirmed block at first), estimates the fee
 * (`starknet_estimateFee`; a refusal, error 41, fails with the Cairo panic and sends nothing),
 * signs once and computes the transaction hash itself, sends it
 * (`starknet_addInvokeTransaction`) and follows the hash (`starknet_getTransactionStatus`, then
 * the receipt). A send whose outcome is unknown (the answer was lost, the node does not know the
 * hash, the transaction was evicted from the mempool) is never signed again with another nonce:
 * the identical signed transaction is sent again (same hash, so it executes at most once), error
 * 59 means the node has it, and error 52 after a send that may have arrived means "possibly
 * executed": the hash is looked up until the node knows it or `maxAttempts` reads say it does
 * not, and the call fails with `rpc_error` rather than guess. Only a 52 for a transaction no copy
 * of which can have reached the node is re-signed with the nonce read again. The cached nonce is
 * dropped at the first send and set only after a receipt, so a failure leaves no gap. A transient
 * failure (network, HTTP 5xx, `UNEXPECTED_ERROR`) of a read is retried with exponential backoff,
 * at most `maxAttempts` times. A call the contract refuses fails with a {@link ChainError} whose
 * code is the Cairo panic string (`duplicate_job`, `invalid_state`, ...); one that reverts for
 * another reason is `reverted`; an RPC failure is `rpc_error`. Felts go out canonical (`0x`
 * without leading zeros, the spec's FELT pattern), `ByteArray` arguments as UTF-8 bytes.
 *
 * Identity. Events and calls name nodes by their {@link NodeId} (a libp2p peer id), as a Cairo
 * `ByteArray`; the CDC Pool binds each account to one node id (`register_node`), and
 * {@link StarknetChain.connect} registers the account's node id if it is not yet.
 *
 * Events. {@link StarknetChain.eventsSince} and {@link StarknetChain.subscribe} read the two
 * contracts' events with `starknet_getEvents` (the event selectors as `keys`, `chunk_size` and
 * `continuation_token` pagination), only up to `latest - confirmations`. The request follows the
 * node's `starknet_specVersion`: both contract addresses as a list from 0.10.1; before, no address
 * (one is all 0.9 and 0.10.0 allow) and `from_address` checked here. A node that answers error 34
 * (too many keys in a filter) gets the selectors split into several filters, merged in chain order
 * (by `transaction_index` and `event_index` from 0.10; on 0.9 by the block's transaction list and
 * the transaction's receipt). A {@link ChainEvent}'s `eventIndex` is its position among the two
 * contracts' events in its block, so `{ blockNumber, eventIndex + 1 }` is the cursor after it, as
 * with the local ledger; an event's identity is `(block hash, transaction hash, event_index)`,
 * with, on 0.9 (no `event_index`), this adapter's ordinal of the event in its transaction. A
 * subscription:
 *
 * - starts at `from`, else where the `cursorStore` option left off (so a restarted node resumes),
 *   else at block 0, and saves its cursor after every delivered event;
 * - remembers `(block number, block hash)` of the blocks it processed (those with events and the
 *   confirmed head of each poll, within `reorgWindow` blocks) and re-checks them every poll with
 *   `starknet_getBlockWithTxHashes`: the newest first (a block hash commits to its parent's, so
 *   if it still matches the older ones do), and on a mismatch all of them, oldest first; then it
 *   rolls its cursor back to the last block that still matches, reports the revoked events to
 *   `onReorg`, and reads the new chain again. The confirmed head is only remembered if its hash
 *   is the same before and after the events up to it were read;
 * - delivers each event identity at most once;
 * - skips events of the pre-confirmed block (no `block_hash`/`block_number`) until they are in
 *   a confirmed block.
 *
 * Keys. The account key comes from `privateKey`, `privateKeyFile`, or the
 * `CIRO_STARKNET_PRIVATE_KEY` environment variable; it lives only inside the starknet.js signer
 * held in a private field, and no message, log line or `JSON.stringify` of the adapter shows it.
 *
 * ```ts ignore
 * import { StarknetChain } from "./starknet_adapter.ts";
 *
 * const chain = await StarknetChain.connect({
 *   rpcUrl: "https://starknet-sepolia.example/rpc/v0_10",
 *   accountAddress: "0x0123...",
 *   privateKeyFile: "/etc/ciro/starknet.key",
 *   jobManagerAddress: "0x0456...",
 *   cdcPoolAddress: "0x0789...",
 * });
 * const stop = chain.subscribe((event) => console.log(event.name));
 * await chain.stake({ amount: 1_000n });
 * stop();
 * await chain.close();
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Account, type Call, Contract, hash, RpcProvider, validateAndParseAddress } from "starknet";
import { getLogger } from "@logtape/logtape";
import type { NodeId, RefundReason, SlashReason, Verdict } from "../machines/types.ts";
import {
  type ChainCallOptions,
  type ChainCursor,
  ChainError,
  type ChainErrorCode,
  type ChainEvent,
  type ChainEventName,
  type ChainPort,
  type LedgerTotals,
  type SignedAttestation,
  type TxReceipt,
} from "./port.ts";
import {
  checkAttestation,
  checkCount as checkBounded,
  checkSubmission,
  type JobSubmission,
  MAX_FAILURE_REASON,
  MAX_ID_LENGTH,
  MAX_VERIFIERS,
} from "./_args.ts";
import { AccountKey, isPublicKey } from "./settlement.ts";
import { decodeChainEvent, EVENT_SELECTORS, type RawStarknetEvent } from "./events.ts";
import {
  type BlockRef,
  checkCursor,
  compareCursors,
  type CursorStore,
  MemoryCursorStore,
} from "./event_cursor.ts";
import jobManagerAbi from "./abi/job_manager.json" with { type: "json" };
import cdcPoolAbi from "./abi/cdc_pool.json" with { type: "json" };

/** The environment variable {@link StarknetChain.connect} reads the account key from. */
export const PRIVATE_KEY_ENV = "CIRO_STARKNET_PRIVATE_KEY";

/** Options of {@link StarknetChain.connect}. */
export interface StarknetChainOptions {
  /** The JSON-RPC endpoint (spec 0.9 or 0.10). */
  readonly rpcUrl: string;
  /** The account contract that signs (an OpenZeppelin or Argent account, Cairo 1). */
  readonly accountAddress: string;
  /**
   * The account's Stark private key, `0x` hex.
   * @default {undefined} read from `privateKeyFile`, else from `CIRO_STARKNET_PRIVATE_KEY`
   */
  readonly privateKey?: string;
  /** A file holding the private key (`0x` hex, surrounding whitespace ignored). */
  readonly privateKeyFile?: string;
  readonly jobManagerAddress: string;
  readonly cdcPoolAddress: string;
  /**
   * The ERC-20 the contracts pull escrow and stake in. When set, `submitJob` and `stake` send
   * `approve(spender, amount)` in the same multicall.
   * @default {undefined} no approval (the token is approved out of band)
   */
  readonly tokenAddress?: string;
  /**
   * The node id this account stands for in events and calls.
   * @default {the account address, 0x + 64 lowercase hex digits}
   */
  readonly nodeId?: NodeId;
  /**
   * Register `nodeId` in the CDC Pool on connect if the account has none.
   * @default {true}
   */
  readonly register?: boolean;
  /** Blocks below the latest before an event is delivered. @default {2} */
  readonly confirmations?: number;
  /** `chunk_size` of each `starknet_getEvents` page. @default {100} */
  readonly chunkSize?: number;
  /** Poll interval of subscriptions and of transaction receipts, ms. @default {2000} */
  readonly pollMs?: number;
  /** How long to wait for a transaction's receipt, ms. @default {300000} */
  readonly txTimeoutMs?: number;
  /** Attempts per RPC call or transaction before giving up. @default {5} */
  readonly maxAttempts?: number;
  /** First retry delay, doubled each attempt (capped at 30 s), ms. @default {250} */
  readonly backoffMs?: number;
  /** Transaction tip, in fri. @default {0n} */
  readonly tip?: bigint;
  /** How many blocks below the confirmed head a subscription re-checks for reorgs. @default {16} */
  readonly reorgWindow?: number;
  /**
   * Where subscriptions keep their cursor and resume from. Give each concurrent subscription its
   * own store.
   * @default {undefined} each subscription keeps its cursor in memory and starts at `from`
   */
  readonly cursorStore?: CursorStore;
  /**
   * The Ed25519 key this account signs attestations with (registered with `registerKey`).
   * @default {a key derived from the account's private key (sha-256 of a domain tag and it)}
   */
  readonly attestationKey?: AccountKey;
  /** Aborts `connect` itself. */
  readonly signal?: AbortSignal;
}

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

const logger = getLogger(["ciro", "chain", "starknet"]);

const EVENT_NAMES = Object.keys(EVENT_SELECTORS) as ChainEventName[];
/** The event selectors as canonical felts, the key filter of every `starknet_getEvents`. */
const EVENT_KEYS = EVENT_NAMES.map((name) => canonicalFelt(EVENT_SELECTORS[name]));
/** The codes a contract panics with (every {@link ChainErrorCode} but the adapter's own). */
const CHAIN_ERROR_CODES: ReadonlySet<string> = new Set<ChainErrorCode>([
  "unknown_job",
  "duplicate_job",
  "invalid_state",
  "not_authorized",
  "insufficient_stake",
  "insufficient_balance",
  "invalid_amount",
  "still_unbonding",
  "stake_locked",
  "not_enough_verifiers",
  "bad_signature",
  "no_key",
  "not_chosen",
  "duplicate_attestation",
  "wrong_attempt",
  "deadline_passed",
  "deadline_not_passed",
  "no_evidence",
  "wrong_subject",
]);
const SIGNATURE_PATTERN = /^[0-9a-f]{128}$/;
/** The Stark curve order; a private key is in `1..order-1`. */
const CURVE_ORDER = 0x0800000000000010ffffffffffffffffb781126dcae7b2321e66a241adc64d2fn;
const U256 = 2n ** 256n;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const SHORT_STRING_PATTERN = /^[\x20-\x7e]{1,31}$/;
const MAX_BACKOFF_MS = 30_000;
const RPC_NONCE_ERROR = 52;
const RPC_DUPLICATE_TX = 59;
const RPC_BLOCK_NOT_FOUND = 24;
const RPC_TX_NOT_FOUND = 29;
const RPC_TOO_MANY_KEYS = 34;
/** Status reads that find no trace of a sent transaction before it is sent again, identical. */
const UNKNOWN_POLLS_BEFORE_RESEND = 3;
const RPC_INVALID_CONTINUATION_TOKEN = 33;
const RPC_TRANSIENT = new Set([63, -32603, -32000, -32005]);
const RPC_EXECUTION = new Set([40, 41]);

type Abi = ConstructorParameters<typeof Contract>[0]["abi"];

/** How a failed RPC attempt should be handled. */
type Failure =
  | { kind: "nonce"; detail: string }
  | { kind: "execution"; detail: string; code: ChainErrorCode | undefined }
  | { kind: "transient"; detail: string }
  | { kind: "duplicate"; detail: string }
  | { kind: "fatal"; detail: string };

function firstLine(text: string, max = 240): string {
  const line = text.split("\n").find((l) => l.trim().length > 0)?.trim() ?? "";
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

function rpcCode(error: unknown): number | undefined {
  const base = (error as { baseError?: { code?: unknown } })?.baseError;
  return typeof base?.code === "number" ? base.code : undefined;
}

function rpcText(error: unknown): string {
  const base = (error as { baseError?: { message?: unknown; data?: unknown } })?.baseError;
  if (base !== undefined) {
    const data = typeof base.data === "string" ? base.data : JSON.stringify(base.data ?? "");
    return `${String(base.message)} ${data}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The Cairo panic string naming a {@link ChainErrorCode}, if the error text has one. */
function panicCode(text: string): ChainErrorCode | undefined {
  let found: ChainErrorCode | undefined;
  for (const match of text.matchAll(/'([a-z_]{3,31})'|"([a-z_]{3,31})"/g)) {
    const code = match[1] ?? match[2];
    if (code !== undefined && CHAIN_ERROR_CODES.has(code)) found = code as ChainErrorCode;
  }
  return found;
}

function classify(error: unknown): Failure {
  const code = rpcCode(error);
  const text = rpcText(error);
  if (code !== undefined) {
    const detail = `RPC error ${code}: ${firstLine(text)}`;
    if (code === RPC_NONCE_ERROR || /invalid transaction nonce/i.test(text)) {
      return { kind: "nonce", detail };
    }
    if (code === RPC_DUPLICATE_TX) return { kind: "duplicate", detail };
    if (RPC_EXECUTION.has(code)) return { kind: "execution", detail, code: panicCode(text) };
    if (RPC_TRANSIENT.has(code)) return { kind: "transient", detail };
    return { kind: "fatal", detail };
  }
  // No JSON-RPC error object: the request or the response failed on the way (connection
  // refused, HTTP 5xx without a JSON body, a body that is not JSON).
  const name = (error as { name?: unknown })?.name;
  if (name === "AbortError") return { kind: "fatal", detail: "aborted" };
  return { kind: "transient", detail: firstLine(text) };
}

/** A felt as the spec's FELT pattern wants it: `0x` and hex digits without leading zeros. */
function canonicalFelt(value: string | bigint): string {
  return `0x${BigInt(value).toString(16)}`;
}

/** `[major, minor, patch]` of a spec version string such as `0.10.1`, or undefined. */
function parseVersion(spec: string): [number, number, number] | undefined {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(spec);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

function sameFelt(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  try {
    return BigInt(a) === BigInt(b);
  } catch {
    return a === b;
  }
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function checkAddress(field: string, value: string): string {
  try {
    return validateAndParseAddress(value).toLowerCase();
  } catch {
    throw new TypeError(
      `Invalid ${field}: expected a Starknet address, got ${JSON.stringify(value)}`,
    );
  }
}

function checkCount(field: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Invalid ${field}: expected an integer of at least ${min}, got ${value}`);
  }
  return value;
}

function checkAmount(field: string, value: bigint): bigint {
  if (typeof value !== "bigint" || value < 0n || value >= U256) {
    throw new RangeError(`Invalid ${field}: expected a u256 bigint, got ${String(value)}`);
  }
  return value;
}

function checkHash(field: string, value: string): bigint {
  if (typeof value !== "string" || !HASH_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${field}: expected 64 lowercase hex digits, got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(`0x${value}`);
}

function checkId(field: string, value: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(
      `Invalid ${field}: expected a non-empty string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * A `ByteArray` argument as its UTF-8 bytes: starknet.js reads a string that looks like a hex
 * number (a node id such as the account address) as that number's bytes.
 */
function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

/**
 * A signed attestation as the Cairo `Attestation` struct takes it: the Ed25519 signature split
 * into `signature_r` and `signature_s` (32 bytes each, big-endian). A signature that is not 128
 * lowercase hex digits goes as zeros, which no key signs: the contract refuses it
 * (`bad_signature`), as the local ledger and the EVM do.
 */
function cairoAttestation(a: SignedAttestation): Record<string, unknown> {
  const wellFormed = SIGNATURE_PATTERN.test(a.signature);
  return {
    job_id: text(a.jobId),
    verifier: text(a.verifier),
    attempt: BigInt(a.attempt),
    subject: text(a.subject),
    verdict: a.verdict,
    signature_r: wellFormed ? BigInt(`0x${a.signature.slice(0, 64)}`) : 0n,
    signature_s: wellFormed ? BigInt(`0x${a.signature.slice(64)}`) : 0n,
  };
}

/** The attestation key an account has by default: derived from its Stark private key. */
function derivedAttestationKey(privateKey: string): AccountKey {
  const seed = createHash("sha256")
    .update(`ciro.starknet.attestation-key|${BigInt(privateKey).toString(16)}`)
    .digest();
  return new AccountKey(new Uint8Array(seed));
}

function checkReason(field: string, value: string): string {
  if (typeof value !== "string" || !SHORT_STRING_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${field}: expected a Cairo short string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Reads the account key: `privateKey`, else the file `privateKeyFile`, else the
 * `CIRO_STARKNET_PRIVATE_KEY` environment variable. Throws a `TypeError` that never quotes the
 * key when it is missing or not a valid Stark key.
 */
export async function resolvePrivateKey(
  options: { privateKey?: string; privateKeyFile?: string; signal?: AbortSignal },
): Promise<string> {
  let key = options.privateKey;
  let source = "privateKey";
  if (key === undefined && options.privateKeyFile !== undefined) {
    source = `key file ${options.privateKeyFile}`;
    try {
      key = (await Deno.readTextFile(
        options.privateKeyFile,
        options.signal ? { signal: options.signal } : {},
      )).trim();
    } catch (cause) {
      throw new TypeError(`Cannot read the Starknet private key: ${source} is not readable`, {
        cause,
      });
    }
  }
  if (key === undefined) {
    source = `environment variable ${PRIVATE_KEY_ENV}`;
    key = Deno.env.get(PRIVATE_KEY_ENV)?.trim();
  }
  if (key === undefined || key.length === 0) {
    throw new TypeError(
      `Missing Starknet private key: pass privateKey or privateKeyFile, or set ${PRIVATE_KEY_ENV}`,
    );
  }
  let value: bigint | undefined;
  if (/^0x[0-9a-fA-F]{1,64}$/.test(key)) value = BigInt(key);
  if (value === undefined || value <= 0n || value >= CURVE_ORDER) {
    throw new TypeError(
      `Invalid Starknet private key from ${source}: expected 0x hex between 1 and the curve order`,
    );
  }
  return key;
}

interface Settings {
  readonly rpcOrigin: string;
  readonly accountAddress: string;
  readonly jobManagerAddress: string;
  readonly cdcPoolAddress: string;
  readonly tokenAddress: string | undefined;
  /** The node's spec version allows a list of addresses in an event filter (from 0.10.1). */
  readonly addressList: boolean;
  /** The chain id, to compute transaction hashes. */
  readonly chainId: string;
  /** The spec version the node reported. */
  readonly specVersion: string;
  readonly confirmations: number;
  readonly chunkSize: number;
  readonly pollMs: number;
  readonly txTimeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly tip: bigint;
  readonly reorgWindow: number;
}

/**
 * A raw event as `starknet_getEvents` returns it: block fields are absent when pre-confirmed,
 * `transaction_index` and `event_index` before spec 0.10.
 */
type EmittedEvent =
  & Omit<RawStarknetEvent, "block_hash" | "block_number" | "event_index">
  & {
    block_hash?: string;
    block_number?: number;
    transaction_index?: number;
    event_index?: number;
  };

/** One page of `starknet_getEvents`. */
interface EventsPage {
  readonly events: EmittedEvent[];
  readonly continuation_token?: string;
}

/** An event in a receipt. */
interface RawEventBody {
  readonly from_address: string;
  readonly keys: readonly string[];
  readonly data: readonly string[];
}

/** A signed INVOKE v3 transaction as the spec writes it (`INVOKE_TXN_V3`). */
interface SignedInvoke {
  readonly sender_address: string;
  readonly calldata: string[];
  readonly version: string;
  readonly signature: string[];
  readonly nonce: string;
  readonly resource_bounds: Record<
    "l1_gas" | "l2_gas" | "l1_data_gas",
    { max_amount: string; max_price_per_unit: string }
  >;
  readonly tip: string;
  readonly paymaster_data: string[];
  readonly account_deployment_data: string[];
  readonly nonce_data_availability_mode: string;
  readonly fee_data_availability_mode: string;
}

/** A decoded event at its position, or a position whose event failed to decode. */
interface Scanned {
  readonly cursor: ChainCursor;
  readonly raw: RawStarknetEvent;
  readonly event: ChainEvent | undefined;
}

/** A reorg noticed while reading: the read stops and the next poll rolls back. */
class ReadReorg extends Error {
  override readonly name = "ReadReorg";
}

/** The {@link ChainPort} on Starknet. Create it with {@link StarknetChain.connect}. */
export class StarknetChain implements ChainPort {
  /** The node id this adapter signs as. */
  readonly account: NodeId;
  /** The account contract's address, 0x + 64 lowercase hex digits. */
  readonly address: string;

  readonly #settings: Settings;
  readonly #provider: RpcProvider;
  readonly #signer: Account;
  readonly #jobManager: Contract;
  readonly #cdcPool: Contract;
  readonly #cursorStore: CursorStore | undefined;
  readonly #attestationKey: AccountKey;
  readonly #closing = new AbortController();
  readonly #subscriptions = new Set<() => void>();
  readonly #loops = new Set<Promise<void>>();
  #queue: Promise<unknown> = Promise.resolve();
  #nonce: bigint | undefined;
  #closed = false;

  private constructor(
    nodeId: NodeId,
    settings: Settings,
    provider: RpcProvider,
    signer: Account,
    cursorStore: CursorStore | undefined,
    attestationKey: AccountKey,
  ) {
    this.account = nodeId;
    this.#attestationKey = attestationKey;
    this.address = `0x${BigInt(settings.accountAddress).toString(16).padStart(64, "0")}`;
    this.#settings = settings;
    this.#provider = provider;
    this.#signer = signer;
    this.#cursorStore = cursorStore;
    this.#jobManager = new Contract({
      abi: jobManagerAbi as Abi,
      address: settings.jobManagerAddress,
      providerOrAccount: provider,
    });
    this.#cdcPool = new Contract({
      abi: cdcPoolAbi as Abi,
      address: settings.cdcPoolAddress,
      providerOrAccount: provider,
    });
  }

  /**
   * Connects to the node, checks its spec version and chain, and registers the account's node
   * id in the CDC Pool if needed. Fails with a `TypeError`/`RangeError` for bad options and a
   * {@link ChainError} (`rpc_error`, or `not_authorized` when the account is bound to another
   * node id) otherwise.
   */
  static async connect(options: StarknetChainOptions): Promise<StarknetChain> {
    const signal = options.signal;
    let origin: string;
    try {
      origin = new URL(options.rpcUrl).origin;
    } catch {
      throw new TypeError("Invalid rpcUrl: expected an absolute URL");
    }
    const accountAddress = checkAddress("accountAddress", options.accountAddress);
    const jobManagerAddress = checkAddress("jobManagerAddress", options.jobManagerAddress);
    const cdcPoolAddress = checkAddress("cdcPoolAddress", options.cdcPoolAddress);
    const tokenAddress = options.tokenAddress === undefined
      ? undefined
      : checkAddress("tokenAddress", options.tokenAddress);
    const nodeId = checkId("nodeId", options.nodeId ?? accountAddress);
    const tip = checkAmount("tip", options.tip ?? 0n);
    // Addresses travel as canonical felts (the spec's FELT pattern refuses leading zeros).
    const base = {
      rpcOrigin: origin,
      accountAddress: canonicalFelt(accountAddress),
      jobManagerAddress: canonicalFelt(jobManagerAddress),
      cdcPoolAddress: canonicalFelt(cdcPoolAddress),
      tokenAddress: tokenAddress === undefined ? undefined : canonicalFelt(tokenAddress),
      confirmations: checkCount("confirmations", options.confirmations ?? 2, 0),
      chunkSize: checkCount("chunkSize", options.chunkSize ?? 100, 1),
      pollMs: checkCount("pollMs", options.pollMs ?? 2000, 0),
      txTimeoutMs: checkCount("txTimeoutMs", options.txTimeoutMs ?? 300_000, 1),
      maxAttempts: checkCount("maxAttempts", options.maxAttempts ?? 5, 1),
      backoffMs: checkCount("backoffMs", options.backoffMs ?? 250, 0),
      tip,
      reorgWindow: checkCount("reorgWindow", options.reorgWindow ?? 16, 1),
    };
    const privateKey = await resolvePrivateKey({
      ...(options.privateKey !== undefined && { privateKey: options.privateKey }),
      ...(options.privateKeyFile !== undefined && { privateKeyFile: options.privateKeyFile }),
      ...(signal !== undefined && { signal }),
    });
    const retry = <T>(action: string, body: () => Promise<T>) =>
      withRetries(action, body, base.maxAttempts, base.backoffMs, signal);
    const probe = new RpcProvider({ nodeUrl: options.rpcUrl });
    const spec = String(
      await retry(`read the spec version of ${origin}`, () => probe.getSpecVersion()),
    );
    const version = parseVersion(spec);
    if (version === undefined || version[0] !== 0 || (version[1] !== 9 && version[1] !== 10)) {
      throw new ChainError(
        "rpc_error",
        `Cannot connect to ${origin}: it speaks JSON-RPC spec ${spec}, expected 0.9 or 0.10`,
      );
    }
    const addressList = version[1] > 10 || (version[1] === 10 && version[2] >= 1);
    const provider = new RpcProvider({
      nodeUrl: options.rpcUrl,
      specVersion: version[1] === 9 ? "0.9.0" : "0.10.0",
    });
    const chainId = String(
      await retry(`read the chain id of ${origin}`, () => provider.getChainId()),
    );
    const signer = new Account({
      provider,
      address: base.accountAddress,
      signer: privateKey,
      cairoVersion: "1",
    });
    const chain = new StarknetChain(
      nodeId,
      { ...base, addressList, chainId, specVersion: spec },
      provider,
      signer,
      options.cursorStore,
      options.attestationKey ?? derivedAttestationKey(privateKey),
    );
    const registered = await chain.#view(
      "read the account's node id",
      chain.#cdcPool,
      "node_id_of",
      [accountAddress],
      signal,
    );
    const current = String(registered);
    if (current === "") {
      if (options.register ?? true) {
        await chain.#send(
          `register node ${JSON.stringify(nodeId)}`,
          [chain.#cdcPool.populate("register_node", [text(nodeId)])],
          signal,
        );
      }
    } else if (current !== nodeId) {
      throw new ChainError(
        "not_authorized",
        `Cannot connect as node ${
          JSON.stringify(nodeId)
        }: account ${accountAddress} is registered as ${JSON.stringify(current)}`,
      );
    }
    logger.info("Connected to Starknet at {origin} (spec {spec}) as {nodeId}", {
      origin,
      spec,
      nodeId,
    });
    return chain;
  }

  /** Only public, non-secret facts: what `JSON.stringify` shows. */
  toJSON(): Record<string, unknown> {
    return {
      account: this.account,
      address: this.address,
      rpc: this.#settings.rpcOrigin,
      jobManagerAddress: this.#settings.jobManagerAddress,
      cdcPoolAddress: this.#settings.cdcPoolAddress,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  /**
   * Escrows a job: `submit_job` for a job without terms (legacy, the client's verdict), or
   * `submit_job_with_terms` for one with a `verifierCount` (the chain decides its outcome).
   */
  submitJob(job: JobSubmission, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(`submit job ${JSON.stringify(job.jobId)}`, options, () => {
      const checked = checkSubmission(job);
      const calls: Call[] = [];
      if (this.#settings.tokenAddress !== undefined) {
        calls.push(this.#approve(this.#settings.jobManagerAddress, checked.amount));
      }
      const args = [
        text(checked.jobId),
        checked.amount,
        checked.minStake,
        BigInt(`0x${checked.modelHash}`),
        BigInt(`0x${checked.inputCommitment}`),
      ];
      calls.push(
        checked.chainDecided
          ? this.#jobManager.populate("submit_job_with_terms", [...args, {
            verifier_count: checked.verifierCount,
            bid_window_ms: checked.bidWindowMs,
            execution_ms: checked.executionMs,
            verification_ms: checked.verificationMs,
          }])
          : this.#jobManager.populate("submit_job", args),
      );
      return calls;
    });
  }

  /**
   * Assigns the job to `worker`. For a job with terms the chain chooses the verifiers
   * (`verifiers` must be absent or empty); a legacy job takes the client's list.
   */
  assignWorker(
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers?: readonly NodeId[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `assign job ${JSON.stringify(assignment.jobId)} to ${JSON.stringify(assignment.worker)}`,
      options,
      () => [
        this.#jobManager.populate("assign_worker", [
          text(checkId("jobId", assignment.jobId)),
          text(checkId("worker", assignment.worker)),
          checkAmount("price", assignment.price),
          // Positional arguments: starknet.js 10.8 refuses `Array<ByteArray>` in object form.
          (assignment.verifiers ?? []).map((v, i) => text(checkId(`verifiers[${i}]`, v))),
        ]),
      ],
    );
  }

  revokeAssignment(
    revocation: { jobId: string; worker: NodeId },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `revoke ${JSON.stringify(revocation.worker)} from job ${JSON.stringify(revocation.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("revoke_assignment", [
          text(checkId("jobId", revocation.jobId)),
          text(checkId("worker", revocation.worker)),
        ]),
      ],
    );
  }

  submitResult(
    result: { jobId: string; commitment: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `submit the result of job ${JSON.stringify(result.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("submit_result", [
          text(checkId("jobId", result.jobId)),
          checkHash("commitment", result.commitment),
        ]),
      ],
    );
  }

  recordVerification(
    outcome: { jobId: string; accepted: boolean },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `record the verification of job ${JSON.stringify(outcome.jobId)}`,
      options,
      () => {
        if (typeof outcome.accepted !== "boolean") {
          throw new TypeError(
            `Invalid accepted: expected a boolean, got ${typeof outcome.accepted}`,
          );
        }
        return [
          this.#jobManager.populate("record_verification", [
            text(checkId("jobId", outcome.jobId)),
            outcome.accepted,
          ]),
        ];
      },
    );
  }

  /** The assigned worker reports that the job fails on its input (`report_failure`). */
  reportFailure(
    failure: { jobId: string; reason: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `report the failure of job ${JSON.stringify(failure.jobId)}`,
      options,
      () => {
        const reason = failure.reason;
        if (
          typeof reason !== "string" || reason.length === 0 || reason.length > MAX_FAILURE_REASON
        ) {
          throw new RangeError(
            `Invalid failure reason: expected 1 to ${MAX_FAILURE_REASON} characters`,
          );
        }
        return [
          this.#jobManager.populate("report_failure", [
            text(checkId("jobId", failure.jobId)),
            text(reason),
          ]),
        ];
      },
    );
  }

  /** Registers this account's Ed25519 attestation key in the CDC Pool (`register_key`, once). */
  registerKey(key: { publicKey: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact("register the attestation key", options, () => {
      if (!isPublicKey(key.publicKey)) {
        throw new TypeError(
          "Invalid public key: expected an Ed25519 key as 64 lowercase hex digits",
        );
      }
      return [this.#cdcPool.populate("register_key", [BigInt(`0x${key.publicKey}`)])];
    });
  }

  /** The Ed25519 public key (64 hex digits) this adapter signs attestations with. */
  accountPublicKey(options?: ChainCallOptions): Promise<string> {
    options?.signal?.throwIfAborted();
    return Promise.resolve(this.#attestationKey.publicKey);
  }

  /** Signs a statement with the attestation key (no transaction). */
  signAttestation(
    statement: { jobId: string; attempt: number; subject: string; verdict: Verdict },
    options?: ChainCallOptions,
  ): Promise<SignedAttestation> {
    try {
      options?.signal?.throwIfAborted();
      this.#checkOpen("sign an attestation");
      const jobId = checkId("job id", statement.jobId);
      const attempt = checkBounded("attempt", statement.attempt, 1);
      if (typeof statement.subject !== "string" || statement.subject.length > MAX_ID_LENGTH) {
        throw new TypeError(`Invalid subject: expected at most ${MAX_ID_LENGTH} characters`);
      }
      if (statement.verdict !== "valid" && statement.verdict !== "invalid") {
        throw new TypeError(`Invalid verdict: expected "valid" or "invalid"`);
      }
      return Promise.resolve(
        this.#attestationKey.sign(this.account, {
          jobId,
          attempt,
          subject: statement.subject,
          verdict: statement.verdict,
        }),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Relays signed attestations (`submit_attestations`, anyone may); the contract checks each
   * signature against the verifier's registered key and counts them.
   */
  submitAttestations(
    batch: { attestations: readonly SignedAttestation[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    const first = batch?.attestations?.[0]?.jobId;
    return this.#transact(`submit attestations of job ${JSON.stringify(first)}`, options, () => {
      const list = batch.attestations;
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_VERIFIERS) {
        throw new RangeError(`Invalid attestations: expected 1 to ${MAX_VERIFIERS} of them`);
      }
      const checked = list.map((a, i) => checkAttestation(`attestations[${i}]`, a));
      return [this.#jobManager.populate("submit_attestations", [checked.map(cairoAttestation)])];
    });
  }

  /** Evidence of double signing (`report_double_signing`): two conflicting statements. */
  reportDoubleSigning(
    evidence: { first: SignedAttestation; second: SignedAttestation },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `report double signing on job ${JSON.stringify(evidence?.first?.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("report_double_signing", [
          cairoAttestation(checkAttestation("first", evidence.first)),
          cairoAttestation(checkAttestation("second", evidence.second)),
        ]),
      ],
    );
  }

  releasePayment(release: { jobId: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(
      `release the payment of job ${JSON.stringify(release.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("release_payment", [text(checkId("jobId", release.jobId))]),
      ],
    );
  }

  refund(
    refund: { jobId: string; reason: RefundReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(`refund job ${JSON.stringify(refund.jobId)}`, options, () => [
      this.#jobManager.populate("refund", [
        text(checkId("jobId", refund.jobId)),
        checkReason("reason", refund.reason),
      ]),
    ]);
  }

  slash(
    slash: { jobId: string; worker: NodeId; reason: SlashReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `slash ${JSON.stringify(slash.worker)} on job ${JSON.stringify(slash.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("slash_worker", [
          text(checkId("jobId", slash.jobId)),
          text(checkId("worker", slash.worker)),
          checkReason("reason", slash.reason),
        ]),
      ],
    );
  }

  /** Bonds stake (`stake`); `role: "verifier"` also registers a verifier (`stake_as_verifier`). */
  stake(
    stake: { amount: bigint; role?: "worker" | "verifier" },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(`stake ${stake.amount}`, options, () => {
      const amount = checkAmount("amount", stake.amount);
      const role = stake.role ?? "worker";
      if (role !== "worker" && role !== "verifier") {
        throw new TypeError(
          `Invalid role: expected "worker" or "verifier", got ${JSON.stringify(String(role))}`,
        );
      }
      const calls: Call[] = [];
      if (this.#settings.tokenAddress !== undefined) {
        calls.push(this.#approve(this.#settings.cdcPoolAddress, amount));
      }
      calls.push(
        this.#cdcPool.populate(role === "verifier" ? "stake_as_verifier" : "stake", [amount]),
      );
      return calls;
    });
  }

  requestUnstake(request: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(`request to unstake ${request.amount}`, options, () => [
      this.#cdcPool.populate("request_unstake", [checkAmount("amount", request.amount)]),
    ]);
  }

  withdraw(options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact("withdraw unbonded stake", options, () => [
      this.#cdcPool.populate("withdraw", []),
    ]);
  }

  #approve(spender: string, amount: bigint): Call {
    // The ERC-20 `approve(spender: ContractAddress, amount: u256)`, without an ABI.
    return {
      contractAddress: this.#settings.tokenAddress!,
      entrypoint: "approve",
      calldata: [
        spender,
        `0x${(amount % 2n ** 128n).toString(16)}`,
        `0x${(amount >> 128n).toString(16)}`,
      ],
    };
  }

  #transact(
    action: string,
    options: ChainCallOptions | undefined,
    build: () => Call[],
  ): Promise<TxReceipt> {
    try {
      this.#checkOpen(action);
      const calls = build();
      return this.#send(action, calls, options?.signal);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Sends one transaction at a time per adapter, so nonces stay in order. */
  #send(action: string, calls: Call[], signal: AbortSignal | undefined): Promise<TxReceipt> {
    const run = this.#queue.then(() => this.#sendNow(action, calls, this.#signal(signal)));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #sendNow(action: string, calls: Call[], signal: AbortSignal): Promise<TxReceipt> {
    const { maxAttempts, tip } = this.#settings;
    for (let attempt = 1;; attempt++) {
      signal.throwIfAborted();
      const nonce = this.#nonce ?? await this.#readNonce(signal);
      let estimate: Awaited<ReturnType<Account["estimateInvokeFee"]>>;
      let signed: SignedInvoke;
      try {
        estimate = await withRetries(
          `estimate the fee to ${action}`,
          () => this.#signer.estimateInvokeFee(calls, { nonce, tip }),
          maxAttempts,
          this.#settings.backoffMs,
          signal,
        );
        signed = await this.#signer.getSignedTransaction(calls, {
          nonce,
          tip,
          resourceBounds: estimate.resourceBounds,
        }) as SignedInvoke;
      } catch (error) {
        const failure = (error as { name?: unknown })?.name === "ChainError"
          ? undefined
          : classify(error);
        if (failure?.kind === "nonce" && attempt < maxAttempts) {
          this.#nonce = undefined;
          continue;
        }
        if (failure?.kind === "execution") {
          throw new ChainError(
            failure.code ?? "reverted",
            `Cannot ${action}: the contract refused it${
              failure.code === undefined ? "" : ` with ${JSON.stringify(failure.code)}`
            }`,
            { cause: error },
          );
        }
        throw this.#asChainError(action, error);
      }
      const txHash = this.#txHash(signed);
      // From the first send on, the cached nonce is unknown until this transaction's receipt:
      // a failure (eviction, lost answer, timeout) leaves it unset, so the next call reads it.
      this.#nonce = undefined;
      let outcome: TxReceipt | "stale_nonce";
      try {
        outcome = await this.#deliver(action, signed, txHash, signal);
      } catch (error) {
        throw this.#asChainError(action, error);
      }
      if (outcome !== "stale_nonce") {
        this.#nonce = nonce + 1n;
        return outcome;
      }
      // The node refused the nonce and no copy of this transaction ever reached it: safe to sign
      // again with the account's current nonce.
      this.#nonce = undefined;
      logger.warn("Nonce {nonce} refused for {action}; reading it again", {
        nonce: nonce.toString(),
        action,
      });
      if (attempt >= maxAttempts) {
        throw new ChainError(
          "rpc_error",
          `Cannot ${action}: gave up after ${maxAttempts} attempts: nonce ${nonce} refused`,
        );
      }
    }
  }

  /** The transaction hash of `signed`, computed here (SNIP-8), before it is sent. */
  #txHash(signed: SignedInvoke): string {
    const bounds = (name: "l1_gas" | "l2_gas" | "l1_data_gas") => ({
      max_amount: BigInt(signed.resource_bounds[name].max_amount),
      max_price_per_unit: BigInt(signed.resource_bounds[name].max_price_per_unit),
    });
    const da = (mode: string) => (mode === "L2" ? 1 : 0);
    return canonicalFelt(hash.calculateInvokeTransactionHash({
      senderAddress: signed.sender_address,
      version: signed.version,
      compiledCalldata: signed.calldata,
      chainId: this.#settings.chainId as never,
      nonce: signed.nonce,
      accountDeploymentData: signed.account_deployment_data,
      nonceDataAvailabilityMode: da(signed.nonce_data_availability_mode) as never,
      feeDataAvailabilityMode: da(signed.fee_data_availability_mode) as never,
      resourceBounds: {
        l1_gas: bounds("l1_gas"),
        l2_gas: bounds("l2_gas"),
        l1_data_gas: bounds("l1_data_gas"),
      },
      tip: signed.tip,
      paymasterData: signed.paymaster_data,
    } as never));
  }

  /**
   * Sends `signed` and follows its hash until it has a receipt. Never signs anything: a send
   * whose outcome is unknown (the response was lost) is followed by looking the hash up, and, if
   * the node does not know it, by sending the identical transaction again (same hash, same
   * nonce: it can execute at most once). Error 59 (duplicate) means the node has it; error 52
   * (nonce) after a send that may have arrived means it possibly executed: look it up. Only a
   * 52 on a transaction no copy of which can have reached the node returns `"stale_nonce"`.
   */
  async #deliver(
    action: string,
    signed: SignedInvoke,
    txHash: string,
    signal: AbortSignal,
  ): Promise<TxReceipt | "stale_nonce"> {
    const { maxAttempts, pollMs, txTimeoutMs, backoffMs } = this.#settings;
    const deadline = Date.now() + txTimeoutMs;
    let mayHaveArrived = false;
    let seen = false;
    let nonceTaken = false;
    let send = true;
    let sends = 0;
    let unknown = 0;
    for (;;) {
      signal.throwIfAborted();
      if (send) {
        send = false;
        if (sends >= maxAttempts) {
          throw new ChainError(
            "rpc_error",
            `Cannot ${action}: transaction ${txHash} was sent ${sends} times and the node does not know it`,
          );
        }
        if (sends > 0) await delay(backoff(backoffMs, sends + 1), signal);
        sends++;
        try {
          const { transaction_hash: answered } = await abortable(
            this.#provider.invokeSignedTx(signed as never),
            signal,
          );
          if (!sameFelt(answered, txHash)) {
            throw new ChainError(
              "rpc_error",
              `Cannot ${action}: the node answered transaction hash ${answered}, computed ${txHash}`,
            );
          }
          mayHaveArrived = true;
          logger.debug("Sent {action} as {txHash} (nonce {nonce})", {
            action,
            txHash,
            nonce: signed.nonce,
          });
        } catch (error) {
          if ((error as { name?: unknown })?.name === "ChainError") throw error;
          signal.throwIfAborted();
          const failure = classify(error);
          switch (failure.kind) {
            case "nonce":
              if (!mayHaveArrived) return "stale_nonce";
              nonceTaken = true;
              logger.warn(
                "Nonce refused after a send of {txHash} that may have arrived: {detail}",
                {
                  txHash,
                  detail: failure.detail,
                },
              );
              break;
            case "duplicate":
              mayHaveArrived = true;
              seen = true;
              break;
            case "transient":
              mayHaveArrived = true;
              logger.warn("The send of {txHash} may have failed; looking it up: {detail}", {
                txHash,
                detail: failure.detail,
              });
              break;
            case "execution":
              throw new ChainError(
                failure.code ?? "reverted",
                `Cannot ${action}: ${failure.detail}`,
                {
                  cause: error,
                },
              );
            case "fatal":
              if (!mayHaveArrived) {
                throw new ChainError("rpc_error", `Cannot ${action}: ${failure.detail}`, {
                  cause: error,
                });
              }
              nonceTaken = true;
          }
        }
      }
      const status = await this.#status(txHash, signal);
      if (status === undefined) {
        unknown++;
        if (nonceTaken && unknown > maxAttempts) {
          throw new ChainError(
            "rpc_error",
            `Cannot ${action}: the outcome of transaction ${txHash} is unknown: its nonce ${signed.nonce} is used and the node does not know the transaction; not signing again`,
          );
        }
        // Unknown after it was seen: evicted from the mempool. Unknown for a while after a send:
        // lost. Either way the identical transaction may be sent again.
        if (!nonceTaken && (seen || unknown >= UNKNOWN_POLLS_BEFORE_RESEND)) {
          send = true;
          seen = false;
          unknown = 0;
          continue;
        }
      } else if (status === "RECEIVED" || status === "CANDIDATE") {
        seen = true;
        unknown = 0;
      } else {
        return await this.#receipt(action, txHash, signal);
      }
      if (Date.now() > deadline) {
        throw new ChainError(
          "rpc_error",
          `Cannot ${action}: no receipt for transaction ${txHash} after ${txTimeoutMs} ms`,
        );
      }
      await delay(Math.max(pollMs, 1), signal);
    }
  }

  /** The finality status of `txHash`, or `undefined` when the node does not know it. */
  async #status(txHash: string, signal: AbortSignal): Promise<string | undefined> {
    try {
      const status = await withRetries(
        `read the status of ${txHash}`,
        () => this.#provider.getTransactionStatus(txHash),
        this.#settings.maxAttempts,
        this.#settings.backoffMs,
        signal,
      );
      return (status as { finality_status?: string }).finality_status;
    } catch (error) {
      if (rpcCode(error) === RPC_TX_NOT_FOUND) return undefined;
      throw error;
    }
  }

  async #readNonce(signal: AbortSignal): Promise<bigint> {
    const nonce = await this.#rpc(
      "read the account nonce",
      () => this.#provider.getNonceForAddress(this.#settings.accountAddress, "pre_confirmed"),
      signal,
    );
    return BigInt(nonce);
  }

  async #receipt(action: string, txHash: string, signal: AbortSignal): Promise<TxReceipt> {
    const receipt = await this.#rpc(
      `read the receipt of ${txHash}`,
      () => this.#provider.getTransactionReceipt(txHash),
      signal,
    );
    const value = receipt as unknown as {
      execution_status?: string;
      revert_reason?: string;
      block_number?: number;
    };
    if (value.execution_status === "REVERTED") {
      const code = panicCode(value.revert_reason ?? "");
      throw new ChainError(
        code ?? "reverted",
        `Cannot ${action}: transaction ${txHash} reverted${
          code === undefined
            ? `: ${firstLine(value.revert_reason ?? "no reason")}`
            : ` with ${JSON.stringify(code)}`
        }`,
      );
    }
    if (typeof value.block_number !== "number") {
      throw new ChainError(
        "rpc_error",
        `Cannot ${action}: the receipt of ${txHash} has no block number`,
      );
    }
    return { txHash, blockNumber: value.block_number };
  }

  // -------------------------------------------------------------------------------------------
  // Views

  async stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint> {
    this.#checkOpen("read a stake");
    const value = await this.#view(
      `read the stake of ${JSON.stringify(worker)}`,
      this.#cdcPool,
      "stake_of",
      [text(checkId("worker", worker))],
      options?.signal,
    );
    return BigInt(value as bigint);
  }

  async reputationOf(worker: NodeId, options?: ChainCallOptions): Promise<number> {
    this.#checkOpen("read a reputation");
    const value = await this.#view(
      `read the reputation of ${JSON.stringify(worker)}`,
      this.#cdcPool,
      "reputation_of",
      [text(checkId("worker", worker))],
      options?.signal,
    );
    return Number(value as bigint);
  }

  async totals(options?: ChainCallOptions): Promise<LedgerTotals> {
    this.#checkOpen("read the totals");
    const escrow = await this.#view(
      "read the escrow totals",
      this.#jobManager,
      "escrow_totals",
      [],
      options?.signal,
    ) as Record<string, bigint>;
    const stake = await this.#view(
      "read the stake totals",
      this.#cdcPool,
      "stake_totals",
      [],
      options?.signal,
    ) as Record<string, bigint>;
    const big = (record: Record<string, bigint>, key: string) => BigInt(record[key] ?? 0n);
    return {
      escrowed: big(escrow, "escrowed"),
      paid: big(escrow, "paid"),
      fees: big(escrow, "fees"),
      refunded: big(escrow, "refunded"),
      locked: big(escrow, "locked"),
      staked: big(stake, "staked"),
      slashed: big(stake, "slashed"),
      withdrawn: big(stake, "withdrawn"),
      bonded: big(stake, "bonded"),
    };
  }

  #view(
    action: string,
    contract: Contract,
    method: string,
    args: unknown[],
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    return this.#rpc(
      action,
      () => contract.call(method, args as never, { blockIdentifier: "latest" }),
      this.#signal(signal),
    );
  }

  /** One RPC call with bounded retries of transient failures; any other failure is a ChainError. */
  async #rpc<T>(action: string, body: () => Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await withRetries(
        action,
        body,
        this.#settings.maxAttempts,
        this.#settings.backoffMs,
        signal,
      );
    } catch (error) {
      throw this.#asChainError(action, error);
    }
  }

  #asChainError(action: string, error: unknown): Error {
    if ((error as { name?: unknown })?.name === "ChainError") return error as Error;
    if (this.#closing.signal.aborted && error === this.#closing.signal.reason) {
      return new ChainError("rpc_error", `Cannot ${action}: the adapter is closed`, {
        cause: error,
      });
    }
    if ((error as { name?: unknown })?.name === "AbortError") return error as Error;
    const failure = classify(error);
    if (failure.kind === "execution") {
      return new ChainError(failure.code ?? "reverted", `Cannot ${action}: ${failure.detail}`, {
        cause: error,
      });
    }
    return new ChainError("rpc_error", `Cannot ${action}: ${failure.detail}`, { cause: error });
  }

  // -------------------------------------------------------------------------------------------
  // Events

  /**
   * Confirmed events at or after `from` (at most `limit`, default 1000) and the cursor to
   * continue from: after the last event returned, or past the confirmed head when the read
   * reached it.
   */
  async eventsSince(
    from: ChainCursor,
    options?: ChainCallOptions & { limit?: number },
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }> {
    this.#checkOpen("read events");
    checkCursor(from);
    const limit = checkCount("limit", options?.limit ?? 1000, 1);
    const signal = this.#signal(options?.signal);
    const safe = await this.#safeHead(signal);
    const events: ChainEvent[] = [];
    let next = from;
    if (safe < from.blockNumber) return { events, next };
    let complete = true;
    await this.#scan(from, safe, signal, (item) => {
      if (events.length >= limit) {
        complete = false;
        return false;
      }
      if (item.event !== undefined) events.push(item.event);
      next = { blockNumber: item.cursor.blockNumber, eventIndex: item.cursor.eventIndex + 1 };
      return true;
    });
    if (complete) next = { blockNumber: safe + 1, eventIndex: 0 };
    return { events, next };
  }

  /**
   * Polls every `pollMs` and calls `handler` with each confirmed event in order, exactly once
   * per event identity (see the module doc), from `from` or the cursor store. After a
   * reorg it calls `onReorg`, then delivers the new chain's events. A handler that throws is
   * logged and the next event delivered; a failed poll is logged and retried. Returns the
   * unsubscribe.
   */
  subscribe(
    handler: (event: ChainEvent) => void,
    options: StarknetSubscribeOptions = {},
  ): () => void {
    this.#checkOpen("subscribe");
    const pollMs = checkCount("pollMs", options.pollMs ?? this.#settings.pollMs, 0);
    if (options.from !== undefined) checkCursor(options.from);
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.#closing.signal]);
    const unsubscribe = () => {
      stop.abort(new DOMException("The subscription was stopped", "AbortError"));
      this.#subscriptions.delete(unsubscribe);
    };
    this.#subscriptions.add(unsubscribe);
    const subscription = new Subscription(this, handler, options, signal);
    const loop = (async () => {
      try {
        await subscription.start();
        while (!signal.aborted) {
          try {
            await subscription.poll();
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
    })();
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
    return unsubscribe;
  }

  /** Stops every subscription and pending wait. The adapter refuses calls afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of [...this.#subscriptions]) unsubscribe();
    this.#closing.abort(new DOMException("The adapter is closed", "AbortError"));
    await this.#queue.catch(() => {});
    // Wait for the poll loops, so their last cursor save is done when close() resolves.
    await Promise.allSettled([...this.#loops]);
  }

  /** @internal The block number events are delivered up to. */
  async safeHead(signal: AbortSignal): Promise<number> {
    return await this.#safeHead(signal);
  }

  async #safeHead(signal: AbortSignal): Promise<number> {
    const head = await this.#rpc(
      "read the block number",
      () => this.#provider.getBlockNumber(),
      signal,
    );
    return head - this.#settings.confirmations;
  }

  /** @internal The hash of block `number`, or `undefined` if the node has no such block. */
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
      throw this.#asChainError(`read block ${number}`, error);
    }
  }

  /** @internal Settings the subscription needs. */
  get settings(): Settings {
    return this.#settings;
  }

  /** @internal */
  get cursorStore(): CursorStore | undefined {
    return this.#cursorStore;
  }

  /** @internal Reads events from `from` to block `to`; stops when `visit` returns false. */
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
        throw this.#asChainError("read events", error);
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

  /** @internal One `starknet_getEvents` page. */
  eventsPage(filter: Record<string, unknown>, signal: AbortSignal): Promise<EventsPage> {
    return withRetries(
      "read events",
      () => this.#provider.getEvents(filter as never),
      this.#settings.maxAttempts,
      this.#settings.backoffMs,
      signal,
    ) as Promise<EventsPage>;
  }

  /** @internal The transaction hashes of block `number`, in order. */
  async blockTransactions(number: number, signal: AbortSignal): Promise<string[]> {
    const block = await this.#rpc(
      `read block ${number}`,
      () => this.#provider.getBlockWithTxHashes(number),
      signal,
    );
    return (block as { transactions?: string[] }).transactions ?? [];
  }

  /** @internal The events of a transaction's receipt, in order. */
  async receiptEvents(txHash: string, signal: AbortSignal): Promise<RawEventBody[]> {
    const receipt = await this.#rpc(
      `read the receipt of ${txHash}`,
      () => this.#provider.getTransactionReceipt(txHash),
      signal,
    );
    return (receipt as unknown as { events?: RawEventBody[] }).events ?? [];
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined
      ? this.#closing.signal
      : AbortSignal.any([signal, this.#closing.signal]);
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw new ChainError("rpc_error", `Cannot ${action}: the adapter is closed`);
  }
}

/** One filter's pages, read lazily. */
class EventStream {
  readonly #chain: StarknetChain;
  readonly #filter: Record<string, unknown>;
  readonly #signal: AbortSignal;
  #buffer: EmittedEvent[] = [];
  #token: string | undefined;
  #started = false;

  constructor(chain: StarknetChain, filter: Record<string, unknown>, signal: AbortSignal) {
    this.#chain = chain;
    this.#filter = filter;
    this.#signal = signal;
  }

  /** Reads the next page when the buffer is empty and pages are left. */
  async fill(): Promise<void> {
    while (this.#buffer.length === 0 && (!this.#started || this.#token !== undefined)) {
      const page = await this.#chain.eventsPage({
        ...this.#filter,
        chunk_size: this.#chain.settings.chunkSize,
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
  readonly #chain: StarknetChain;
  readonly #signal: AbortSignal;
  readonly #blocks = new Map<number, string[]>();
  readonly #receipts = new Map<string, { events: RawEventBody[]; used: Set<number> }>();
  readonly #keys = new WeakMap<EmittedEvent, readonly number[]>();

  constructor(chain: StarknetChain, signal: AbortSignal) {
    this.#chain = chain;
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
        txs = await this.#chain.blockTransactions(event.block_number, this.#signal);
        this.#blocks.set(event.block_number, txs);
      }
      const txIndex = txs.findIndex((t) => sameFelt(t, event.transaction_hash));
      let receipt = this.#receipts.get(event.transaction_hash);
      if (receipt === undefined) {
        receipt = {
          events: await this.#chain.receiptEvents(event.transaction_hash, this.#signal),
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

/** The poll loop of one subscription. */
class Subscription {
  readonly #chain: StarknetChain;
  readonly #handler: (event: ChainEvent) => void;
  readonly #options: StarknetSubscribeOptions;
  readonly #signal: AbortSignal;
  readonly #store: CursorStore;
  #cursor: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  #recent: BlockRef[] = [];
  /** Delivered events by `(block hash, tx hash, event_index or ordinal)`, within the reorg window. */
  readonly #delivered = new Map<string, ChainEvent>();

  constructor(
    chain: StarknetChain,
    handler: (event: ChainEvent) => void,
    options: StarknetSubscribeOptions,
    signal: AbortSignal,
  ) {
    this.#chain = chain;
    this.#handler = handler;
    this.#options = options;
    this.#signal = signal;
    this.#store = chain.cursorStore ?? new MemoryCursorStore();
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
    const safe = await this.#chain.safeHead(signal);
    await this.#checkReorg(signal);
    if (safe < this.#cursor.blockNumber) return;
    const safeHash = await this.#chain.blockHash(safe, signal);
    if (safeHash === undefined) return;
    try {
      await this.#chain.scan(this.#cursor, safe, signal, async (item) => {
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
    const again = await this.#chain.blockHash(safe, signal);
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
    if (sameFelt(await this.#chain.blockHash(newest.blockNumber, signal), newest.blockHash)) return;
    let mismatch = -1;
    for (let i = 0; i < this.#recent.length; i++) {
      const ref = this.#recent[i]!;
      const actual = await this.#chain.blockHash(ref.blockNumber, signal);
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
    const floor = safe - this.#chain.settings.reorgWindow;
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

function backoff(baseMs: number, attempt: number): number {
  return Math.min(baseMs * 2 ** (attempt - 2), MAX_BACKOFF_MS);
}

/** Runs `body`, retrying transient failures with exponential backoff; rethrows the rest. */
async function withRetries<T>(
  action: string,
  body: () => Promise<T>,
  maxAttempts: number,
  backoffMs: number,
  signal: AbortSignal | undefined,
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    signal?.throwIfAborted();
    if (attempt > 1) await delay(backoff(backoffMs, attempt), signal);
    try {
      return await abortable(body(), signal);
    } catch (error) {
      signal?.throwIfAborted();
      if (classify(error).kind !== "transient") throw error;
      lastError = error;
      logger.debug("Attempt {attempt} to {action} failed: {detail}", {
        attempt,
        action,
        detail: classify(error).detail,
      });
    }
  }
  throw new ChainError(
    "rpc_error",
    `Cannot ${action}: gave up after ${maxAttempts} attempts: ${classify(lastError).detail}`,
    { cause: lastError },
  );
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      promise.catch(() => {});
      return reject(signal.reason);
    }
    const onAbort = () => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
