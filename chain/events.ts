/**
 * The codec between typed {@link ChainEvent}s and Starknet-shaped raw events, shared by both
 * settlement adapters: the local ledger stores exactly what a Starknet node would return, and
 * the Starknet adapter decodes what it polls with the same function.
 *
 * Layout of a raw event:
 *
 * - `keys[0]` is the selector of the event name (`starknet_keccak(name)`, see
 *   {@link EVENT_SELECTORS}); there are no other keys.
 * - `data` holds the fields in the order of the {@link ChainEvent} type, each as felts written
 *   as lowercase `0x` hex:
 *   - ids (job ids, node ids) as a Cairo `ByteArray` of their UTF-8 bytes:
 *     `data_len, ...31-byte words, pending_word, pending_word_len`;
 *   - amounts as a `u256`: two felts, `low` then `high` (128 bits each);
 *   - hex sha-256 commitments (`modelHash`, `inputCommitment`, `commitment`: 64 lowercase hex
 *     digits, no prefix, as on the wire) as a `u256`;
 *   - numbers (`unlockAt`, `score`, `attempt`, the escrow's `verifierCount` and durations in ms)
 *     as one felt;
 *   - reasons as a Cairo short string (one felt of ASCII bytes);
 *   - arrays (`verifiers`) as a length felt followed by the elements.
 *
 * ```ts
 * import { decodeChainEvent, encodeChainEvent } from "./events.ts";
 *
 * const raw = encodeChainEvent({
 *   name: "JobVerified",
 *   jobId: "j1",
 *   blockNumber: 7,
 *   blockHash: "0x1",
 *   txHash: "0x2",
 *   eventIndex: 0,
 * }, "0x123");
 * const event = decodeChainEvent(raw, { fromAddress: "0x123" });
 * if (event.name !== "JobVerified" || event.jobId !== "j1") throw new Error("round trip failed");
 * ```
 *
 * @module
 */
import { hash } from "starknet";
import { type ChainEvent, type ChainEventName, NO_SPEC_HASH } from "./port.ts";
import type { RefundReason, SlashReason, Verdict } from "../machines/types.ts";

/** An event as a Starknet node returns it (`starknet_getEvents`, `EMITTED_EVENT`). */
export interface RawStarknetEvent {
  /** The contract that emitted the event. */
  from_address: string;
  /** `[selector]`: see {@link EVENT_SELECTORS}. */
  keys: string[];
  /** The fields, as felts in `0x` hex. */
  data: string[];
  /** The block that includes the event. */
  block_number: number;
  /** The hash of that block. */
  block_hash: string;
  /** The transaction that emitted the event. */
  transaction_hash: string;
  /** The position of the event in its block (the local ledger: in its transaction). */
  event_index: number;
}

/** What is wrong with a raw event that failed to decode. */
export type ChainDecodeErrorCode =
  | "unknown_selector"
  | "wrong_contract"
  | "truncated"
  | "trailing_data"
  | "invalid_felt"
  | "invalid_value";

/**
 * A raw event that is not a valid {@link ChainEvent}; match on
 * `error.name === "ChainDecodeError"` and `code`.
 */
export class ChainDecodeError extends Error {
  /** Always `"ChainDecodeError"`. */
  override readonly name = "ChainDecodeError";
  /** What is wrong. */
  readonly code: ChainDecodeErrorCode;
  /** Makes an error with a message naming the event, the field and the problem. */
  constructor(code: ChainDecodeErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

const EVENT_NAMES: readonly ChainEventName[] = [
  "JobSubmitted",
  "WorkerAssigned",
  "AssignmentRevoked",
  "ResultSubmitted",
  "JobVerified",
  "JobDisputed",
  "PaymentReleased",
  "EscrowRefunded",
  "WorkerSlashed",
  "WorkerStaked",
  "UnstakeRequested",
  "StakeWithdrawn",
  "ReputationUpdated",
  "FailureReported",
  "AttestationRecorded",
  "KeyRegistered",
  "VerifierRegistered",
];

/** The selector (`keys[0]`) of each event name: `starknet_keccak(name)` as `0x` hex. */
export const EVENT_SELECTORS: Readonly<Record<ChainEventName, string>> = Object.freeze(
  Object.fromEntries(EVENT_NAMES.map((name) => [name, hash.getSelectorFromName(name)])) as Record<
    ChainEventName,
    string
  >,
);

const NAME_BY_SELECTOR: ReadonlyMap<bigint, ChainEventName> = new Map(
  EVENT_NAMES.map((name) => [BigInt(EVENT_SELECTORS[name]), name]),
);

const REFUND_REASONS: ReadonlySet<string> = new Set<RefundReason>([
  "expired",
  "cancelled",
  "disputed",
  "failed",
]);
const SLASH_REASONS: ReadonlySet<string> = new Set<SlashReason>([
  "invalid_compute",
  "downtime",
  "double_signing",
  "coordinated_attack",
]);

/** The Starknet field prime, `2^251 + 17 * 2^192 + 1`. */
const FIELD_PRIME = 2n ** 251n + 17n * 2n ** 192n + 1n;
const U128 = 2n ** 128n;
const U256 = 2n ** 256n;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const HEX_FELT_PATTERN = /^0x[0-9a-fA-F]{1,64}$/;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

function felt(value: bigint): string {
  return `0x${value.toString(16)}`;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let rest = value;
  for (let i = length - 1; i >= 0; i--) {
    bytes[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Encoding

class FeltWriter {
  readonly felts: string[] = [];

  byteArray(field: string, value: string): void {
    if (typeof value !== "string") {
      throw new TypeError(`Cannot encode field "${field}": expected a string, got ${typeof value}`);
    }
    const bytes = utf8Encoder.encode(value);
    const fullWords = Math.floor(bytes.length / 31);
    this.felts.push(felt(BigInt(fullWords)));
    for (let i = 0; i < fullWords; i++) {
      this.felts.push(felt(bytesToBigInt(bytes.subarray(i * 31, i * 31 + 31))));
    }
    const pending = bytes.subarray(fullWords * 31);
    this.felts.push(felt(bytesToBigInt(pending)), felt(BigInt(pending.length)));
  }

  u256(field: string, value: bigint): void {
    if (typeof value !== "bigint") {
      throw new TypeError(`Cannot encode field "${field}": expected a bigint, got ${typeof value}`);
    }
    if (value < 0n || value >= U256) {
      throw new RangeError(`Cannot encode field "${field}": ${value} is not a u256`);
    }
    this.felts.push(felt(value % U128), felt(value / U128));
  }

  hash(field: string, value: string): void {
    if (typeof value !== "string" || !HASH_PATTERN.test(value)) {
      throw new TypeError(
        `Cannot encode field "${field}": expected 64 lowercase hex digits, got ${
          JSON.stringify(value)
        }`,
      );
    }
    this.u256(field, BigInt(`0x${value}`));
  }

  number(field: string, value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new RangeError(
        `Cannot encode field "${field}": expected a non-negative safe integer, got ${value}`,
      );
    }
    this.felts.push(felt(BigInt(value)));
  }

  shortString(field: string, value: string): void {
    if (typeof value !== "string" || value.length > 31 || !/^[\x20-\x7e]*$/.test(value)) {
      throw new TypeError(
        `Cannot encode field "${field}": expected at most 31 printable ASCII characters, got ${
          JSON.stringify(value)
        }`,
      );
    }
    this.felts.push(felt(bytesToBigInt(utf8Encoder.encode(value))));
  }

  byteArrays(field: string, values: readonly string[]): void {
    if (!Array.isArray(values)) {
      throw new TypeError(`Cannot encode field "${field}": expected an array`);
    }
    this.felts.push(felt(BigInt(values.length)));
    values.forEach((value, i) => this.byteArray(`${field}[${i}]`, value));
  }
}

/**
 * How each event's data is laid out, field by field, in Cairo's serialization: the one list
 * that both the encoder and the decoder follow. `verdict`, `refundReason` and `slashReason` are
 * short strings checked against their values when decoded.
 */
type FieldKind =
  | "byteArray"
  | "byteArrays"
  | "u256"
  | "hash"
  | "specHash"
  | "number"
  | "verdict"
  | "refundReason"
  | "slashReason";

/** The data layout of every event, in order. */
export const EVENT_LAYOUTS: {
  readonly [N in ChainEventName]: readonly (readonly [string, FieldKind])[];
} = {
  JobSubmitted: [
    ["jobId", "byteArray"],
    ["client", "byteArray"],
    ["amount", "u256"],
    ["modelHash", "hash"],
    ["inputCommitment", "hash"],
    ["minStake", "u256"],
    ["verifierCount", "number"],
    ["bidWindowMs", "number"],
    ["executionMs", "number"],
    ["verificationMs", "number"],
    // A hash; the zero hash (a job submitted without one) decodes as absent.
    ["specHash", "specHash"],
  ],
  WorkerAssigned: [
    ["jobId", "byteArray"],
    ["worker", "byteArray"],
    ["price", "u256"],
    ["verifiers", "byteArrays"],
    ["attempt", "number"],
  ],
  AssignmentRevoked: [["jobId", "byteArray"], ["worker", "byteArray"]],
  ResultSubmitted: [["jobId", "byteArray"], ["worker", "byteArray"], ["commitment", "hash"]],
  JobVerified: [["jobId", "byteArray"]],
  JobDisputed: [["jobId", "byteArray"]],
  FailureReported: [["jobId", "byteArray"], ["worker", "byteArray"], ["reason", "byteArray"]],
  AttestationRecorded: [
    ["jobId", "byteArray"],
    ["verifier", "byteArray"],
    ["attempt", "number"],
    ["verdict", "verdict"],
  ],
  KeyRegistered: [["account", "byteArray"], ["publicKey", "hash"]],
  VerifierRegistered: [["verifier", "byteArray"]],
  PaymentReleased: [
    ["jobId", "byteArray"],
    ["worker", "byteArray"],
    ["amount", "u256"],
    ["fee", "u256"],
    ["change", "u256"],
  ],
  EscrowRefunded: [
    ["jobId", "byteArray"],
    ["client", "byteArray"],
    ["amount", "u256"],
    ["reason", "refundReason"],
  ],
  WorkerSlashed: [
    ["jobId", "byteArray"],
    ["worker", "byteArray"],
    ["amount", "u256"],
    ["reason", "slashReason"],
  ],
  WorkerStaked: [["worker", "byteArray"], ["amount", "u256"], ["total", "u256"]],
  UnstakeRequested: [["worker", "byteArray"], ["amount", "u256"], ["unlockAt", "number"]],
  StakeWithdrawn: [["worker", "byteArray"], ["amount", "u256"]],
  ReputationUpdated: [["worker", "byteArray"], ["score", "number"]],
};

/**
 * Fields added at the end of an event's layout after the first release: an event written before
 * (a local ledger file of an earlier release) lacks them. {@link completeLegacyEvent} adds them.
 */
export const ADDED_EVENT_FIELDS: { readonly [N in ChainEventName]?: readonly string[] } = {
  JobSubmitted: [
    "minStake",
    "verifierCount",
    "bidWindowMs",
    "executionMs",
    "verificationMs",
    "specHash",
  ],
  WorkerAssigned: ["attempt"],
};

/**
 * Raw event `raw`, written before its layout gained {@link ADDED_EVENT_FIELDS}, with `values` of
 * those fields encoded after its data (each as its layout says); `raw` itself if it has them
 * already or its event gained none. Throws a {@link ChainDecodeError} when `raw` decodes neither
 * way, and a `TypeError` or `RangeError` naming a value that does not fit its field.
 */
export function completeLegacyEvent(
  raw: RawStarknetEvent,
  values: Readonly<Record<string, unknown>>,
): RawStarknetEvent {
  let name: ChainEventName;
  try {
    name = decodeChainEvent(raw).name;
    return raw;
  } catch (error) {
    if (!(error instanceof ChainDecodeError) || error.code !== "truncated") throw error;
    name = NAME_BY_SELECTOR.get(BigInt(raw.keys[0]!))!;
  }
  const added = ADDED_EVENT_FIELDS[name];
  if (added === undefined) return raw;
  const layout = EVENT_LAYOUTS[name];
  // A file of a middle format lacks only the later fields: the fewest that make it decode (each
  // count of fields added is a different count of felts, so exactly one does).
  for (let from = added.length - 1;; from--) {
    const w = new FeltWriter();
    for (const field of added.slice(from)) {
      const kind = layout.find(([f]) => f === field)![1];
      if (kind === "u256") w.u256(field, values[field] as bigint);
      else if (kind === "specHash") w.hash(field, (values[field] as string) ?? NO_SPEC_HASH);
      else w.number(field, values[field] as number);
    }
    const completed = { ...raw, data: [...raw.data, ...w.felts] };
    try {
      decodeChainEvent(completed);
      return completed;
    } catch (error) {
      if (from === 0 || !(error instanceof ChainDecodeError)) throw error;
    }
  }
}

function encodeData(event: ChainEvent): string[] {
  const layout = EVENT_LAYOUTS[event.name];
  if (layout === undefined) {
    throw new TypeError(
      `Cannot encode event: unknown name ${JSON.stringify((event as { name: unknown }).name)}`,
    );
  }
  const w = new FeltWriter();
  const fields = event as unknown as Record<string, unknown>;
  for (const [field, kind] of layout) {
    const value = fields[field];
    switch (kind) {
      case "byteArray":
        w.byteArray(field, value as string);
        break;
      case "byteArrays":
        w.byteArrays(field, value as string[]);
        break;
      case "u256":
        w.u256(field, value as bigint);
        break;
      case "hash":
        w.hash(field, value as string);
        break;
      case "specHash":
        w.hash(field, (value as string | undefined) ?? NO_SPEC_HASH);
        break;
      case "number":
        w.number(field, value as number);
        break;
      default:
        w.shortString(field, value as string);
    }
  }
  return w.felts;
}

/**
 * Encodes a typed event as the raw event a Starknet node would return for it, emitted by the
 * contract at `fromAddress`. The event's meta (block, transaction, index) is copied as is.
 *
 * Throws a `TypeError` or `RangeError` naming the field when a value does not fit its Cairo type
 * (an amount outside u256, a commitment that is not 64 lowercase hex digits, ...).
 */
export function encodeChainEvent(event: ChainEvent, fromAddress: string): RawStarknetEvent {
  const selector = EVENT_SELECTORS[event.name];
  if (selector === undefined) {
    throw new TypeError(`Cannot encode event: unknown name ${JSON.stringify(event.name)}`);
  }
  return {
    from_address: fromAddress,
    keys: [selector],
    data: encodeData(event),
    block_number: event.blockNumber,
    block_hash: event.blockHash,
    transaction_hash: event.txHash,
    event_index: event.eventIndex,
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding

class FeltReader {
  #index = 0;
  constructor(readonly name: ChainEventName, readonly felts: readonly string[]) {}

  #fail(code: ChainDecodeErrorCode, field: string, detail: string): never {
    throw new ChainDecodeError(code, `Cannot decode ${this.name} field "${field}": ${detail}`);
  }

  felt(field: string): bigint {
    const text = this.felts[this.#index];
    if (text === undefined) {
      this.#fail("truncated", field, `data ends at felt ${this.#index}`);
    }
    if (typeof text !== "string" || !HEX_FELT_PATTERN.test(text)) {
      this.#fail(
        "invalid_felt",
        field,
        `felt ${this.#index} is not 0x hex: ${JSON.stringify(text)}`,
      );
    }
    const value = BigInt(text);
    if (value >= FIELD_PRIME) {
      this.#fail("invalid_felt", field, `felt ${this.#index} is not below the field prime`);
    }
    this.#index++;
    return value;
  }

  byteArray(field: string): string {
    const length = this.felt(field);
    const remaining = BigInt(this.felts.length - this.#index);
    if (length + 2n > remaining) {
      this.#fail("truncated", field, `byte array claims ${length} words, ${remaining} felts left`);
    }
    const words = Number(length);
    const bytes = new Uint8Array(words * 31 + 30);
    for (let i = 0; i < words; i++) {
      const word = this.felt(field);
      if (word >= 2n ** 248n) this.#fail("invalid_value", field, `word ${i} exceeds 31 bytes`);
      bytes.set(bigIntToBytes(word, 31), i * 31);
    }
    const pending = this.felt(field);
    const pendingLength = this.felt(field);
    if (pendingLength > 30n) {
      this.#fail("invalid_value", field, `pending word length ${pendingLength} exceeds 30`);
    }
    const pendingBytes = Number(pendingLength);
    if (pending >= 2n ** BigInt(8 * pendingBytes)) {
      this.#fail("invalid_value", field, `pending word exceeds ${pendingBytes} bytes`);
    }
    bytes.set(bigIntToBytes(pending, pendingBytes), words * 31);
    try {
      return utf8Decoder.decode(bytes.subarray(0, words * 31 + pendingBytes));
    } catch (cause) {
      throw new ChainDecodeError(
        "invalid_value",
        `Cannot decode ${this.name} field "${field}": not valid UTF-8`,
        { cause },
      );
    }
  }

  u256(field: string): bigint {
    const low = this.felt(field);
    const high = this.felt(field);
    if (low >= U128 || high >= U128) {
      this.#fail("invalid_value", field, "u256 limb exceeds 128 bits");
    }
    return high * U128 + low;
  }

  hash(field: string): string {
    return this.u256(field).toString(16).padStart(64, "0");
  }

  /** A hash, or undefined for the zero hash (none recorded). */
  specHash(field: string): string | undefined {
    const value = this.hash(field);
    return value === NO_SPEC_HASH ? undefined : value;
  }

  number(field: string): number {
    const value = this.felt(field);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.#fail("invalid_value", field, `${value} is not a safe integer`);
    }
    return Number(value);
  }

  shortString(field: string): string {
    const value = this.felt(field);
    const length = Math.ceil(value.toString(16).length / 2);
    const bytes = value === 0n ? new Uint8Array(0) : bigIntToBytes(value, length);
    const text = String.fromCharCode(...bytes);
    if (!/^[\x20-\x7e]*$/.test(text)) {
      this.#fail("invalid_value", field, "short string is not printable ASCII");
    }
    return text;
  }

  refundReason(field: string): RefundReason {
    const reason = this.shortString(field);
    if (!REFUND_REASONS.has(reason)) {
      this.#fail("invalid_value", field, `unknown refund reason ${JSON.stringify(reason)}`);
    }
    return reason as RefundReason;
  }

  slashReason(field: string): SlashReason {
    const reason = this.shortString(field);
    if (!SLASH_REASONS.has(reason)) {
      this.#fail("invalid_value", field, `unknown slash reason ${JSON.stringify(reason)}`);
    }
    return reason as SlashReason;
  }

  verdict(field: string): Verdict {
    const verdict = this.shortString(field);
    if (verdict !== "valid" && verdict !== "invalid") {
      this.#fail("invalid_value", field, `unknown verdict ${JSON.stringify(verdict)}`);
    }
    return verdict;
  }

  byteArrays(field: string): string[] {
    const length = this.felt(field);
    const remaining = BigInt(this.felts.length - this.#index);
    // Each byte array takes at least 3 felts.
    if (length * 3n > remaining) {
      this.#fail("truncated", field, `array claims ${length} elements, ${remaining} felts left`);
    }
    const values: string[] = [];
    for (let i = 0; i < Number(length); i++) values.push(this.byteArray(`${field}[${i}]`));
    return values;
  }

  end(): void {
    if (this.#index !== this.felts.length) {
      throw new ChainDecodeError(
        "trailing_data",
        `Cannot decode ${this.name}: ${
          this.felts.length - this.#index
        } felts left after the last field`,
      );
    }
  }
}

/** Options of {@link decodeChainEvent}. */
export interface DecodeChainEventOptions {
  /**
   * The contract the event must come from; compared as numbers, so `0x01` matches `0x1`.
   * @default {undefined} any contract
   */
  readonly fromAddress?: string;
}

function sameFelt(a: string, b: string): boolean {
  try {
    return BigInt(a) === BigInt(b);
  } catch {
    return a === b;
  }
}

/**
 * Decodes a raw Starknet event into a typed {@link ChainEvent}.
 *
 * Throws a {@link ChainDecodeError} naming what is wrong: an unknown selector, an event from
 * another contract (with `fromAddress`), truncated or trailing data, a felt that is not `0x` hex
 * below the field prime, or a value that does not fit its field.
 */
export function decodeChainEvent(
  raw: RawStarknetEvent,
  options: DecodeChainEventOptions = {},
): ChainEvent {
  if (options.fromAddress !== undefined && !sameFelt(raw.from_address, options.fromAddress)) {
    throw new ChainDecodeError(
      "wrong_contract",
      `Cannot decode event: it comes from ${raw.from_address}, expected ${options.fromAddress}`,
    );
  }
  const selectorText = raw.keys[0];
  if (selectorText === undefined) {
    throw new ChainDecodeError("unknown_selector", "Cannot decode event: it has no keys");
  }
  let selector: bigint | undefined;
  try {
    selector = HEX_FELT_PATTERN.test(selectorText) ? BigInt(selectorText) : undefined;
  } catch {
    selector = undefined;
  }
  const name = selector === undefined ? undefined : NAME_BY_SELECTOR.get(selector);
  if (name === undefined) {
    throw new ChainDecodeError(
      "unknown_selector",
      `Cannot decode event: unknown selector ${JSON.stringify(selectorText)}`,
    );
  }
  if (!Array.isArray(raw.data)) {
    throw new ChainDecodeError("truncated", `Cannot decode ${name}: data is not an array`);
  }
  const meta = {
    blockNumber: raw.block_number,
    blockHash: raw.block_hash,
    txHash: raw.transaction_hash,
    eventIndex: raw.event_index,
  };
  const r = new FeltReader(name, raw.data);
  const fields: Record<string, unknown> = { ...meta, name };
  for (const [field, kind] of EVENT_LAYOUTS[name]) {
    const value = r[kind](field);
    if (value !== undefined) fields[field] = value;
  }
  const event = fields as unknown as ChainEvent;
  r.end();
  return event;
}
