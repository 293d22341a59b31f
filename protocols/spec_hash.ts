/**
 * The commitment to a whole job spec that a job's escrow holds (`specHash` in the chain's
 * `JobSubmitted`): sha-256 of the spec's canonical encoding (JSON with every object's keys sorted,
 * `bigint`s as decimal strings, absent fields left out). The client's node computes it when it
 * escrows the job; a chosen verifier recomputes it from the spec an owner's assignment carries and
 * keeps the spec only if it is the escrow's: with it, every field of the spec (kind, model, input,
 * attempts, hardware, priority, deadlines) is the one the client paid for.
 *
 * An own `__proto__` key (`JSON.parse` makes one as any other key) is encoded as any other key, so
 * two specs that differ only there hash apart, whatever the host's `__proto__` setter does (the
 * language's sets the prototype, so `out[key] = value` would drop the key; Deno's defines an own
 * key). Such a spec is kept rather than refused: in this runtime every layer a spec goes through
 * (`JSON.parse`, spreads, `structuredClone`, the journal's codec, Deno's setter) keeps the key as
 * data, so a worker and a verifier that check this hash run the same input; refusing it would
 * refuse valid JSON for a hazard of other hosts.
 *
 * @example
 * ```ts
 * import { specHashOf } from "./spec_hash.ts";
 * const a = specHashOf({ maxPrice: 5n, kind: { type: "builtin", name: "matmul" } } as never);
 * const b = specHashOf({ kind: { name: "matmul", type: "builtin" }, maxPrice: 5n } as never);
 * if (a !== b || !/^[0-9a-f]{64}$/.test(a)) throw new Error("not canonical");
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { JobSpec } from "../machines/types.ts";

/** The canonical encoding of `spec` that {@link specHashOf} hashes. */
export function canonicalSpec(spec: JobSpec): string {
  return JSON.stringify(sorted(spec));
}

/**
 * Hashes of canonical encodings lately computed, by the encoding (oldest out): a node checks one
 * spec more than once (an assignment at the boundary and again when kept), and the simulator's
 * nodes, which share one process, each check the same specs. Keyed by the whole encoding, so a
 * hit is the hash of exactly that text.
 */
const recent = new Map<string, string>();
/** Most encodings {@link recent} keeps. */
const RECENT_SPECS = 1_024;
/** Longest encoding {@link recent} keeps (so at most 4 Mi code units for all of them). */
const RECENT_MAX_LENGTH = 4_096;

/** The hex sha-256 of `spec`'s canonical encoding (64 lowercase hex digits). */
export function specHashOf(spec: JobSpec): string {
  const canonical = canonicalSpec(spec);
  let hash = recent.get(canonical);
  if (hash === undefined) {
    hash = createHash("sha256").update(canonical).digest("hex");
    if (canonical.length <= RECENT_MAX_LENGTH) {
      if (recent.size >= RECENT_SPECS) recent.delete(recent.keys().next().value!);
      recent.set(canonical, hash);
    }
  }
  return hash;
}

/** How many hashes {@link specHashOf} keeps now (at most 1,024, of encodings up to 4,096 long). */
export function specHashesKept(): number {
  return recent.size;
}

function sorted(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== "object") return value;
  // No prototype: an own `__proto__` key is set as a key, not as the copy's prototype.
  const out: Record<string, unknown> = Object.create(null);
  for (const key of Object.keys(value).sort()) {
    const field = (value as Record<string, unknown>)[key];
    if (field !== undefined) out[key] = sorted(field);
  }
  return out;
}
