/**
 * Private helpers shared by the journal, recordings, replay and recovery: a JSON codec that
 * keeps `bigint`s exact, the state hash of an actor's context, and the recorded outcome of a
 * delivery.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { DeliveredActor, Envelope } from "../kernel/mod.ts";

/**
 * The codec's one reserved key. A `bigint` is `{ "$bigint": "<decimal>" }`; a literal object that
 * has an own `"$bigint"` key (a job's input may hold anything) is escaped as
 * `{ "$bigint": { ...that object } }`, so no value this codec writes decodes as another.
 *
 * Files written before the escape (868c197) read as they did but for one case: their bigints are
 * tags, and a literal object with any other own `"$bigint"` value reads as itself, except a
 * literal `{ "$bigint": {...} }` whose single key holds an object. The codec before the escape
 * wrote such a value as it was and read it back as itself; this one reads it as the inner object
 * (`{"$bigint":{"a":1}}` as `{ a: 1 }`: review R6 L1). Only a job input or output holding that
 * literal could have written one; the recording fixtures hold none (`_codec_test.ts`). No format
 * marker tells the two apart: a journal written before the escape with such a value replays that
 * value changed (its state hash then differs at that step, and replay names it).
 */
const BIGINT_TAG = "$bigint";
const DECIMAL = /^-?\d+$/;

/** The wrappers {@link replacer} made: their object is data, not escaped again. */
const escaped = new WeakSet<object>();

function replacer(this: unknown, _key: string, value: unknown): unknown {
  if (typeof value === "bigint") return { [BIGINT_TAG]: value.toString() };
  if (
    typeof value === "object" && value !== null && !Array.isArray(value) &&
    Object.hasOwn(value, BIGINT_TAG) && !escaped.has(this as object)
  ) {
    const wrapper = { [BIGINT_TAG]: { ...value } };
    escaped.add(wrapper);
    return wrapper;
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Turns tagged bigints and escaped objects back, in place (faster than a reviver). */
function revive(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = revive(value[i]);
    return value;
  }
  const record = value as Record<string, unknown>;
  if (Object.hasOwn(record, BIGINT_TAG)) {
    let only = true;
    for (const key in record) if (key !== BIGINT_TAG) only = false;
    const tagged = record[BIGINT_TAG];
    if (only && typeof tagged === "string" && DECIMAL.test(tagged)) return BigInt(tagged);
    // An escaped literal: its object is the value, its own "$bigint" key data.
    if (only && isPlainObject(tagged)) return reviveFields(tagged);
  }
  return reviveFields(record);
}

/**
 * Revives `record`'s fields in place (an own `__proto__` is written as the own key it is: an
 * assignment sets an own property before any setter).
 */
function reviveFields(record: Record<string, unknown>): Record<string, unknown> {
  for (const key in record) record[key] = revive(record[key]);
  return record;
}

/**
 * JSON text of `value`, with every `bigint` as `{ "$bigint": "<decimal>" }` and every object that
 * has an own `"$bigint"` key escaped as `{ "$bigint": { ... } }`: {@link decodeJson} gives back an
 * equal value.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/** Parses JSON written by {@link encodeJson}, turning tagged bigints and escaped objects back. */
export function decodeJson(text: string): unknown {
  const value = JSON.parse(text);
  return text.includes(`"${BIGINT_TAG}"`) ? revive(value) : value;
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

/**
 * The link of a hash chain: the first 32 hex digits (128 bits) of SHA-256 over `prev` and the
 * `fields`, each framed by a type tag and its length (`|s12:` then the text), so that no two field
 * lists hash the same bytes; `null` and `undefined` are the empty field `|n0:`. Each journal row,
 * recording line and stored snapshot carries one; a row's covers the previous row's, so an edit
 * anywhere breaks the chain at that row.
 */
export function chainHash(prev: string, fields: readonly unknown[]): string {
  const hash = createHash("sha256");
  hash.update(`|s${prev.length}:`).update(prev);
  for (const field of fields) {
    if (field === null || field === undefined) {
      hash.update("|n0:");
      continue;
    }
    const text = String(field);
    hash.update(`|${typeof field === "string" ? "s" : "d"}${text.length}:`).update(text);
  }
  return hash.digest("hex").slice(0, 32);
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const TWO32 = 4294967296;
/** Packs two 32-bit lanes into one exact number (53 bits: all of `lo`, 21 bits of `hi`). */
const pack = (lo: number, hi: number) => (lo >>> 0) + (hi & 0x1fffff) * TWO32;

/** FNV-1a and a murmur-style lane over a string, with `seed` mixed in. */
function hashText(text: string, seed: number): number {
  let a = 0x811c9dc5 ^ seed;
  let b = 0x9747b28c;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return pack(fmix(a ^ text.length), fmix(b ^ seed));
}

const textHashes = new Map<string, number>();

function stringHash(text: string): number {
  let h = textHashes.get(text);
  if (h === undefined) {
    h = hashText(text, 1);
    if (textHashes.size >= 65_536) textHashes.clear();
    if (text.length <= 256) textHashes.set(text, h);
  }
  return h;
}

const objectHashes = new WeakMap<object, number>();

function valueHash(value: unknown): number {
  switch (typeof value) {
    case "string":
      return stringHash(value);
    case "number":
      return hashText(Object.is(value, -0) ? "0" : String(value), 2);
    case "bigint":
      return hashText(value.toString(), 3);
    case "boolean":
      return value ? 0x7a11 : 0xfa15e;
    case "undefined":
      return 0x5eed;
    case "object":
      return value === null ? 0x0a11 : objectHash(value);
    default:
      return hashText(typeof value, 4);
  }
}

function objectHash(value: object): number {
  const cached = objectHashes.get(value);
  if (cached !== undefined) return cached;
  let lo: number;
  let hi: number;
  if (Array.isArray(value) || ArrayBuffer.isView(value)) {
    // Ordered: a running mix over the items.
    const items = value as unknown as ArrayLike<unknown>;
    lo = 0x41;
    hi = 0x5b;
    for (let i = 0; i < items.length; i++) {
      const h = valueHash(items[i]);
      lo = fmix(Math.imul(lo, 31) + (h >>> 0));
      hi = fmix(Math.imul(hi, 37) + Math.floor(h / TWO32) + i);
    }
    lo ^= items.length;
  } else {
    // Unordered: a sum of mixed (key, value) pairs, so key order does not matter and no
    // sorting is needed; members that are undefined are skipped, as JSON does.
    const record = value as Record<string, unknown>;
    lo = 0x7b;
    hi = 0x7d;
    let n = 0;
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue;
      const child = record[key];
      if (child === undefined || typeof child === "function") continue;
      const k = stringHash(key);
      const v = valueHash(child);
      const kLo = k >>> 0;
      const kHi = Math.floor(k / TWO32);
      lo = (lo + fmix(kLo ^ fmix((v >>> 0) + 0x9e3779b9))) >>> 0;
      hi = (hi + fmix(kHi ^ fmix(Math.floor(v / TWO32) ^ kLo ^ 0x85ebca6b))) >>> 0;
      n++;
    }
    lo = fmix(lo ^ n);
    hi = fmix(hi + n);
  }
  const hash = pack(lo, hi);
  objectHashes.set(value, hash);
  return hash;
}

/**
 * The state hash of a value (an actor's context): 14 hex digits of a 53-bit non-cryptographic
 * Merkle hash over its canonical form: object members hashed as an unordered set of (key,
 * value) pairs (so key order does not matter and nothing is sorted), `undefined` members
 * dropped as in JSON, arrays in order, `bigint`s exact and distinct from numbers and strings.
 * It depends only on the value. Hashes of nested objects are memoized by identity, which is
 * sound because contexts are immutable: an XState `assign` makes a new object and shares what
 * did not change, so each step hashes only what changed.
 */
export function stateHash(value: unknown): string {
  return valueHash(value).toString(16).padStart(14, "0");
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
  /**
   * The effects the delivery emitted ({@link effectsDigest}): their types in order and a hash
   * of them all. Absent in journals and recordings made before effects were recorded (then not
   * compared).
   */
  readonly effects?: string;
}

/** What {@link effectsDigest} reads of an emitted effect. */
export interface EmittedEffect {
  readonly actor: string;
  readonly effect: { readonly type: string };
}

/**
 * The digest of the effects one delivery emitted: `type,type,...#<hash>` (the hash covers each
 * effect whole and the actor that emitted it), or `""` when it emitted none. Replay compares it,
 * as Temporal's replayer compares commands; the types name the effect that differs.
 */
export function effectsDigest(effects: readonly EmittedEffect[]): string {
  if (effects.length === 0) return "";
  const types = effects.map((e) => e.effect.type).join(",");
  return `${types}#${stateHash(effects.map((e) => [e.actor, e.effect]))}`;
}

/** The outcome of a delivery, from the tree's answer and the addressed actor. */
export function outcomeOf(
  delivery: { readonly status: DeliveryStatus; readonly reason?: string },
  actor: DeliveredActor | undefined,
  effects?: readonly EmittedEffect[],
): EnvelopeOutcome {
  const base: EnvelopeOutcome = {
    status: delivery.status,
    actor: actor?.id ?? null,
    state: actor?.state ?? null,
    hash: actor === undefined ? null : stateHash(actor.snapshot.context),
    ...(delivery.status === "rejected" && delivery.reason !== undefined
      ? { reason: delivery.reason }
      : {}),
    ...(effects === undefined ? {} : { effects: effectsDigest(effects) }),
  };
  return base;
}

/**
 * Whether two outcomes agree on what replay checks: status, actor, state, hash, and the emitted
 * effects when both record them.
 */
export function sameOutcome(a: EnvelopeOutcome, b: EnvelopeOutcome): boolean {
  return a.status === b.status && a.actor === b.actor && a.state === b.state &&
    a.hash === b.hash &&
    (a.effects === undefined || b.effects === undefined || a.effects === b.effects);
}

/**
 * An outcome as text: `accepted, job:j1 in state bidding, context 00c0ffee…, effects
 * [timer.arm, net.announce]` (for reports).
 */
export function describeOutcome(o: EnvelopeOutcome): string {
  const where = o.actor === null ? "no actor" : `${o.actor} in state ${o.state}`;
  const effects = o.effects === undefined
    ? ""
    : `, effects [${o.effects.split("#")[0]!.split(",").filter((t) => t).join(", ")}]${
      o.effects ? ` #${o.effects.split("#")[1]}` : ""
    }`;
  return `${o.status}, ${where}${o.hash ? `, context ${o.hash}` : ""}${effects}${
    o.reason ? ` (${o.reason})` : ""
  }`;
}

/** An envelope with its recorded outcome (null when the node stopped before delivering it). */
export interface RecordedEnvelope extends Envelope {
  readonly outcome: EnvelopeOutcome | null;
}
