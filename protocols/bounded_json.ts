/**
 * JSON from an untrusted sender, decoded within stated limits. {@link decodeBoundedJson} checks
 * the size before anything else, then scans the text once without recursion (depth, string
 * lengths, array lengths, keys per object) and only then hands it to `JSON.parse`, so a message
 * nested 4,000 deep or a 10 MB string costs a linear scan and a {@link BoundedJsonError}, never a
 * stack overflow or an allocation the size of the attack. {@link checkBounded} applies the same
 * limits to a value that is already parsed, iteratively.
 *
 * @example
 * ```ts
 * import { BoundedJsonError, decodeBoundedJson } from "./bounded_json.ts";
 *
 * const deep = "[".repeat(4000) + "]".repeat(4000);
 * try {
 *   decodeBoundedJson(deep);
 * } catch (error) {
 *   if ((error as BoundedJsonError).code !== "too_deep") throw error;
 * }
 * ```
 *
 * @module
 */

/** Limits on one JSON document. */
export interface JsonLimits {
  /** Largest document, in UTF-8 bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of arrays and objects; `[]` is depth 1, a scalar depth 0. */
  readonly maxDepth: number;
  /** Longest string (keys included), in UTF-16 code units after unescaping. */
  readonly maxStringLength: number;
  /** Most elements in one array. */
  readonly maxArrayLength: number;
  /** Most keys in one object (duplicates counted). */
  readonly maxKeys: number;
}

/**
 * The defaults, sized for one gossip message: 64 KiB, 32 levels deep, strings up to 16,384
 * code units, arrays up to 16,384 elements, 256 keys per object.
 */
export const DEFAULT_JSON_LIMITS: JsonLimits = Object.freeze({
  maxBytes: 64 * 1024,
  maxDepth: 32,
  maxStringLength: 16 * 1024,
  maxArrayLength: 16 * 1024,
  maxKeys: 256,
});

/** Why a document was refused. */
export type BoundedJsonCode =
  | "too_large"
  | "too_deep"
  | "string_too_long"
  | "array_too_long"
  | "too_many_keys"
  | "malformed";

/** A document over a limit, or not JSON at all; `code` says which. */
export class BoundedJsonError extends Error {
  override readonly name = "BoundedJsonError";
  readonly code: BoundedJsonCode;
  constructor(code: BoundedJsonCode, message: string) {
    super(message);
    this.code = code;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Frozen limits already resolved (the wire's constants, resolved once: the merge and checks cost
 * 1 % of a client's CPU when done for every inbound message).
 */
const resolved = new WeakMap<object, JsonLimits>();

/** `limits` over the defaults, each a positive integer (else `RangeError`). */
export function resolveJsonLimits(limits?: Partial<JsonLimits>): JsonLimits {
  if (limits === undefined) return DEFAULT_JSON_LIMITS;
  const known = resolved.get(limits);
  if (known !== undefined) return known;
  const merged = { ...DEFAULT_JSON_LIMITS, ...limits };
  for (const [key, value] of Object.entries(merged)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Invalid JSON limit "${key}": ${value} is not a positive integer`);
    }
  }
  // Only a frozen object stays what it was checked to be.
  if (Object.isFrozen(limits)) resolved.set(limits, Object.freeze(merged));
  return merged;
}

/** UTF-8 length of `text`, counted without encoding it. */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const COMMA = 0x2c; // ,

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/**
 * One pass over the text: nesting, element and key counts, string lengths. Structure errors it
 * happens to see (an unclosed string, a stray bracket) are `malformed`; the rest of JSON's
 * grammar is left to `JSON.parse`.
 */
function scan(text: string, limits: JsonLimits): void {
  // Per open container: its bracket and how many members it has so far.
  const kinds: number[] = [];
  const counts: number[] = [];
  // Whether a member has started since the last comma or the opening bracket.
  let pending = false;
  const member = () => {
    if (pending || kinds.length === 0) return;
    pending = true;
    const top = kinds.length - 1;
    const count = counts[top]! + 1;
    counts[top] = count;
    if (kinds[top] === OPEN_ARRAY && count > limits.maxArrayLength) {
      throw new BoundedJsonError(
        "array_too_long",
        `Array too long: more than ${limits.maxArrayLength} elements`,
      );
    }
    if (kinds[top] === OPEN_OBJECT && count > limits.maxKeys) {
      throw new BoundedJsonError(
        "too_many_keys",
        `Too many keys: more than ${limits.maxKeys} in one object`,
      );
    }
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) continue;
    if (c === QUOTE) {
      // In an object a string opens a member only as its key; a value string follows a colon
      // and the member is already pending then, so member() is a no-op.
      member();
      let length = 0;
      i++;
      for (;; i++) {
        if (i >= text.length) {
          throw new BoundedJsonError("malformed", "Malformed JSON: unterminated string");
        }
        const s = text.charCodeAt(i);
        if (s === QUOTE) break;
        if (s === BACKSLASH) i += text.charCodeAt(i + 1) === 0x75 /* u */ ? 5 : 1;
        length++;
        if (length > limits.maxStringLength) {
          throw new BoundedJsonError(
            "string_too_long",
            `String too long: more than ${limits.maxStringLength} characters`,
          );
        }
      }
      continue;
    }
    if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      member();
      if (kinds.length >= limits.maxDepth) {
        throw new BoundedJsonError(
          "too_deep",
          `Nested too deep: more than ${limits.maxDepth} levels`,
        );
      }
      kinds.push(c);
      counts.push(0);
      pending = false;
      continue;
    }
    if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      const open = kinds.pop();
      counts.pop();
      if (open === undefined || (open === OPEN_ARRAY) !== (c === CLOSE_ARRAY)) {
        throw new BoundedJsonError("malformed", `Malformed JSON: unexpected "${text[i]}" at ${i}`);
      }
      pending = true;
      continue;
    }
    if (c === COMMA) {
      pending = false;
      continue;
    }
    // A number, literal or colon: a colon leaves the member pending; a scalar starts one.
    member();
  }
  if (kinds.length > 0) throw new BoundedJsonError("malformed", "Malformed JSON: unclosed bracket");
}

/** How many times `char` occurs in `text` (native `indexOf` jumps, no allocation). */
function occurrences(text: string, char: string): number {
  let count = 0;
  for (let i = text.indexOf(char); i !== -1; i = text.indexOf(char, i + 1)) count++;
  return count;
}

/**
 * Whether `text` is within every structural limit whatever it holds, so that {@link scan} can be
 * skipped (most wire messages: a bid is 250 characters, 1 object, 9 colons): no string and no
 * array can be longer than the text itself, nesting no deeper than its brackets and braces, and
 * no object has more keys than the text has colons.
 */
function triviallyBounded(text: string, limits: JsonLimits): boolean {
  return text.length <= limits.maxStringLength && text.length <= limits.maxArrayLength &&
    occurrences(text, "[") + occurrences(text, "{") <= limits.maxDepth &&
    occurrences(text, ":") <= limits.maxKeys;
}

/**
 * Decodes `input` (UTF-8 bytes or text) within `limits` (over {@link DEFAULT_JSON_LIMITS}).
 * The size is checked before anything is decoded, the structure before anything is parsed.
 * Throws {@link BoundedJsonError} naming the first limit crossed, or `malformed`.
 */
export function decodeBoundedJson(
  input: string | Uint8Array,
  limits?: Partial<JsonLimits>,
): unknown {
  const bound = resolveJsonLimits(limits);
  let text: string;
  if (typeof input === "string") {
    // A code unit is at least one byte: the cheap test first, the exact count only near the limit.
    if (input.length > bound.maxBytes || utf8Length(input) > bound.maxBytes) {
      throw new BoundedJsonError(
        "too_large",
        `Document too large: more than ${bound.maxBytes} bytes`,
      );
    }
    text = input;
  } else {
    if (input.byteLength > bound.maxBytes) {
      throw new BoundedJsonError(
        "too_large",
        `Document too large: ${input.byteLength} bytes exceeds ${bound.maxBytes}`,
      );
    }
    try {
      text = utf8.decode(input);
    } catch {
      throw new BoundedJsonError("malformed", "Malformed JSON: not UTF-8");
    }
  }
  if (!triviallyBounded(text, bound)) scan(text, bound);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new BoundedJsonError("malformed", `Malformed JSON: ${(error as Error).message}`);
  }
}

/**
 * Checks a value that is already parsed against `limits`, iteratively (no recursion, so no
 * stack overflow however deep). `maxBytes` bounds the JSON text the value would at least take,
 * so a shared or cyclic structure cannot make the walk run long. Non-JSON values (functions,
 * symbols) are `malformed`; `bigint` is allowed, since amounts travel as decimal strings.
 */
export function checkBounded(value: unknown, limits?: Partial<JsonLimits>): void {
  const bound = resolveJsonLimits(limits);
  const stack: { value: unknown; depth: number }[] = [{ value, depth: 0 }];
  let bytes = 0;
  const spend = (n: number) => {
    bytes += n;
    if (bytes > bound.maxBytes) {
      throw new BoundedJsonError(
        "too_large",
        `Document too large: more than ${bound.maxBytes} bytes`,
      );
    }
  };
  const checkString = (s: string) => {
    if (s.length > bound.maxStringLength) {
      throw new BoundedJsonError(
        "string_too_long",
        `String too long: ${s.length} characters exceeds ${bound.maxStringLength}`,
      );
    }
    spend(s.length + 2);
  };
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "bigint") {
      spend(1);
      continue;
    }
    if (typeof v === "string") {
      checkString(v);
      continue;
    }
    if (typeof v !== "object") {
      throw new BoundedJsonError("malformed", `Not JSON: a ${typeof v}`);
    }
    if (depth >= bound.maxDepth) {
      throw new BoundedJsonError("too_deep", `Nested too deep: more than ${bound.maxDepth} levels`);
    }
    spend(2);
    if (Array.isArray(v)) {
      if (v.length > bound.maxArrayLength) {
        throw new BoundedJsonError(
          "array_too_long",
          `Array too long: ${v.length} elements exceeds ${bound.maxArrayLength}`,
        );
      }
      for (const item of v) stack.push({ value: item, depth: depth + 1 });
      continue;
    }
    if (ArrayBuffer.isView(v)) {
      if (v.byteLength > bound.maxArrayLength) {
        throw new BoundedJsonError(
          "array_too_long",
          `Array too long: ${v.byteLength} bytes exceeds ${bound.maxArrayLength}`,
        );
      }
      spend(v.byteLength);
      continue;
    }
    const keys = Object.keys(v);
    if (keys.length > bound.maxKeys) {
      throw new BoundedJsonError(
        "too_many_keys",
        `Too many keys: ${keys.length} exceeds ${bound.maxKeys}`,
      );
    }
    for (const key of keys) {
      checkString(key);
      stack.push({ value: (v as Record<string, unknown>)[key], depth: depth + 1 });
    }
  }
}
