/**
 * Private helpers shared by the journal, recordings, replay and recovery: a JSON codec that
 * keeps `bigint`s exact, the state hash of an actor's context, and the recorded outcome of a
 * delivery.
 *
 * @module
 */
import type { DeliveredActor, Envelope } from "./inbox.ts";

/** A `bigint` in JSON: `{ "$bigint": "123" }`. */
const BIGINT_TAG = "$bigint";

function replacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? { [BIGINT_TAG]: value.toString() } : value;
}

function reviver(_key: string, value: unknown): unknown {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const tagged = (value as Record<string, unknown>)[BIGINT_TAG];
    if (typeof tagged === "string" && Object.keys(value).length === 1 && /^-?\d+$/.test(tagged)) {
      return BigInt(tagged);
    }
  }
  return value;
}

/** JSON text of `value`, with every `bigint` as `{ "$bigint": "<decimal>" }`. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/** Parses JSON written by {@link encodeJson}, turning `{ "$bigint": "<decimal>" }` back. */
export function decodeJson(text: string): unknown {
  return text.includes(`"${BIGINT_TAG}"`) ? JSON.parse(text, reviver) : JSON.parse(text);
}

/** FNV-1a, 32 bit, as 8 hex digits: a row checksum. */
export function fnv1aHex(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** Two 32-bit multiplicative lanes (FNV-1a and a murmur-style one): 16 hex digits. */
function hash64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

const objectHashes = new WeakMap<object, string>();

function token(value: unknown): string {
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "number":
      return Object.is(value, -0) ? "0" : String(value);
    case "bigint":
      return `${value}n`;
    case "boolean":
      return value ? "t" : "f";
    case "undefined":
      return "u";
    case "object":
      return value === null ? "z" : objectHash(value);
    default:
      return `?${typeof value}`;
  }
}

function objectHash(value: object): string {
  const cached = objectHashes.get(value);
  if (cached !== undefined) return cached;
  let text: string;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    const items = value as unknown as ArrayLike<unknown>;
    text = "[";
    for (let i = 0; i < items.length; i++) text += `${token(items[i])},`;
  } else {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort();
    text = "{";
    for (const key of keys) {
      const child = record[key];
      if (child === undefined || typeof child === "function") continue;
      text += `${JSON.stringify(key)}:${token(child)},`;
    }
  }
  const hash = hash64(text);
  objectHashes.set(value, hash);
  return hash;
}

/**
 * The state hash of a value (an actor's context): 16 hex digits of a 64-bit non-cryptographic
 * Merkle hash over its canonical form (object keys sorted, `undefined` members dropped as in
 * JSON, `bigint`s exact). It depends only on the value, not on key order or sharing. Hashes of
 * nested objects are memoized by identity, which is sound because contexts are immutable: an
 * XState `assign` makes a new object and shares what did not change, so each step hashes only
 * what changed.
 */
export function stateHash(value: unknown): string {
  return value !== null && typeof value === "object" ? objectHash(value) : hash64(token(value));
}

/** How a delivery ended. */
export type DeliveryStatus = "accepted" | "rejected" | "crashed";

/** The recorded outcome of delivering one envelope: what replay checks at every step. */
export interface EnvelopeOutcome {
  readonly status: DeliveryStatus;
  /** The addressed actor after delivery, or null when there is none. */
  readonly actor: string | null;
  /** Its state value, rendered as text. */
  readonly state: string | null;
  /** {@link stateHash} of its context. */
  readonly hash: string | null;
  /** Why it was rejected (not compared in replay). */
  readonly reason?: string;
}

/** The outcome of a delivery, from the tree's answer and the addressed actor. */
export function outcomeOf(
  delivery: { readonly status: DeliveryStatus; readonly reason?: string },
  actor: DeliveredActor | undefined,
): EnvelopeOutcome {
  const base = {
    status: delivery.status,
    actor: actor?.id ?? null,
    state: actor?.state ?? null,
    hash: actor === undefined ? null : stateHash(actor.snapshot.context),
  };
  return delivery.status === "rejected" && delivery.reason !== undefined
    ? { ...base, reason: delivery.reason }
    : base;
}

/** Whether two outcomes agree on what replay checks (status, actor, state, hash). */
export function sameOutcome(a: EnvelopeOutcome, b: EnvelopeOutcome): boolean {
  return a.status === b.status && a.actor === b.actor && a.state === b.state && a.hash === b.hash;
}

/** An envelope with its recorded outcome (null when the node stopped before delivering it). */
export interface RecordedEnvelope extends Envelope {
  readonly outcome: EnvelopeOutcome | null;
}
