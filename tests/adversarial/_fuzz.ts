/**
 * Fuzz cases for the boundary: a valid message of every topic (and of the direct protocols),
 * and mutations of it, each labelled with the rejection code it must get (`accept` for the
 * valid ones, `any` where several codes are right). Shared by the offline fuzz run and the
 * network test with key rotation.
 *
 * @module
 */
import fc from "fast-check";
import { TOPICS } from "../../protocols/messages.ts";

/** Where a case goes: a gossip topic, or a direct protocol's decoder. */
export type Target =
  | (typeof TOPICS)[keyof typeof TOPICS]
  | "snapshot"
  | "snapshot-request"
  | "payload-request";

/** One fuzz case: the bytes, where they go, and the code they must be refused with. */
export interface FuzzCase {
  readonly target: Target;
  readonly kind: string;
  readonly bytes: Uint8Array;
  /** `accept`, a reason code, or `any` (refused, with whichever code). */
  readonly expect: string;
}

const encoder = new TextEncoder();
const id = fc.stringMatching(/^[A-Za-z0-9._:-]{1,24}$/);
const hash = fc.stringMatching(/^[0-9a-f]{64}$/);
const u256 = fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }).map(String);
const ms = fc.integer({ min: 0, max: 2 ** 40 });
const hardware = fc.constantFrom("cpu", "gpu");

const spec = fc.record({
  kind: fc.oneof(
    fc.constant({ type: "builtin", name: "matmul" }),
    hash.map((modelHash) => ({ type: "onnx", modelHash })),
  ),
  inputCommitment: hash,
  input: fc.record({
    inputs: fc.record({
      x: fc.record({
        dims: fc.constant([1, 3]),
        dtype: fc.constant("float32"),
        data: fc.array(fc.integer({ min: -100, max: 100 }), { minLength: 3, maxLength: 3 }),
      }),
    }),
  }),
  requirements: fc.record({ hardware, minStake: u256 }),
  maxPrice: u256,
  bidWindowMs: fc.integer({ min: 1, max: 2 ** 40 }),
  executionMs: fc.integer({ min: 1, max: 2 ** 40 }),
  verificationMs: fc.integer({ min: 1, max: 2 ** 40 }),
  maxAttempts: fc.integer({ min: 1, max: 16 }),
  verifierCount: fc.integer({ min: 0, max: 64 }),
});

const job = fc.record({
  type: fc.constant("job.announce"),
  jobId: id,
  owner: id,
  attempt: fc.integer({ min: 1, max: 16 }),
  bidWindowEndsAt: ms,
  spec,
});
const bid = fc.oneof(
  fc.record({
    type: fc.constant("bid.submit"),
    bidId: id,
    jobId: id,
    worker: id,
    price: u256,
    etaMs: ms,
    stake: u256,
    reputation: fc.integer({ min: 0, max: 1000 }),
    hardware,
  }),
  fc.record({ type: fc.constant("bid.withdraw"), bidId: id, jobId: id, worker: id }),
);

/** A valid wire message (as plain JSON, amounts as strings) for each target. */
export const VALID: Record<Target, fc.Arbitrary<Record<string, unknown>>> = {
  [TOPICS.jobs]: job,
  [TOPICS.bids]: bid,
  [TOPICS.assignments]: fc.record({
    type: fc.constant("job.assign"),
    jobId: id,
    worker: id,
    bidId: id,
    price: u256,
    verifiers: fc.array(id, { maxLength: 4 }),
  }),
  [TOPICS.results]: fc.record({
    type: fc.constant("job.result"),
    jobId: id,
    worker: id,
    commitment: hash,
    output: fc.array(fc.array(fc.integer(), { maxLength: 4 }), { maxLength: 4 }),
  }),
  [TOPICS.attestations]: fc.record({
    type: fc.constant("job.attest"),
    jobId: id,
    verifier: id,
    verdict: fc.constantFrom("valid", "invalid"),
    commitment: hash,
    worker: id,
    claimed: hash,
  }),
  [TOPICS.capabilities]: fc.record({
    type: fc.constant("node.capabilities"),
    node: id,
    roles: fc.subarray(["client", "worker", "verifier", "bootstrap"]),
    hardware,
    models: fc.array(hash, { maxLength: 3 }),
  }),
  [TOPICS.reputation]: fc.record({
    type: fc.constant("node.reputation"),
    node: id,
    score: fc.integer({ min: 0, max: 1000 }),
  }),
  [TOPICS.health]: fc.record({
    type: fc.constant("node.health"),
    node: id,
    at: ms,
    openJobs: fc.integer({ min: 0, max: 1000 }),
  }),
  "snapshot": fc.record({
    jobs: fc.array(job, { maxLength: 3 }),
    bids: fc.array(bid, { maxLength: 3 }),
  }),
  "snapshot-request": fc.constant({}),
  // The payload request is not JSON: the hash is the whole frame (see `toBytes`).
  "payload-request": hash.map((h) => ({ hash: h })),
};

export const TARGETS = Object.keys(VALID) as Target[];

function toBytes(target: Target, value: unknown): Uint8Array {
  if (target === "payload-request") return encoder.encode((value as { hash: string }).hash);
  return encoder.encode(JSON.stringify(value));
}

/** Fields whose value is opaque JSON (any shape is valid inside), or optional. */
const OPAQUE = new Set(["input", "output"]);

/**
 * The objects of `value` (itself included) that a schema describes, to pick one to mutate;
 * not those inside an opaque field, where any key is allowed.
 */
function objects(value: unknown): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  const stack = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (v === null || typeof v !== "object") continue;
    if (!Array.isArray(v)) out.push(v as Record<string, unknown>);
    for (const [key, child] of Object.entries(v as object)) {
      if (!OPAQUE.has(key)) stack.push(child);
    }
  }
  return out;
}

function nest(depth: number): string {
  return "[".repeat(depth) + "]".repeat(depth);
}

/** A fuzz case for `target`: a valid message or one of the mutations. */
export function fuzzCase(target: Target): fc.Arbitrary<FuzzCase> {
  const base = VALID[target];
  const make = (kind: string, expect: string, bytes: Uint8Array): FuzzCase => ({
    target,
    kind,
    bytes,
    expect,
  });
  const json = target !== "payload-request";
  const mutations: fc.Arbitrary<FuzzCase>[] = [
    base.map((v) => make("valid", "accept", toBytes(target, v))),
    fc.tuple(base, fc.nat(), fc.constantFrom("extra", "__proto__", "constructor", "note")).map(
      ([v, pick, key]) => {
        if (!json) return make("unknown field", "bad_hash", encoder.encode(`${key}`));
        const copy = structuredClone(v);
        const all = objects(copy);
        const target = all[pick % all.length]!;
        // Written by hand so "__proto__" becomes a real key in the JSON text.
        const text = JSON.stringify(copy);
        const inner = JSON.stringify(target);
        const widened = inner === "{}" ? `{"${key}":1}` : `{"${key}":1,${inner.slice(1)}`;
        return make("unknown field", "unknown_field", encoder.encode(text.replace(inner, widened)));
      },
    ),
    base.map((v) => {
      if (!json) return make("deep", "bad_hash", encoder.encode(nest(32)));
      const text = JSON.stringify(v);
      // A snapshot request may be 64 bytes: its size is refused before its depth is looked at.
      const expect = target === "snapshot-request" ? "too_large" : "too_deep";
      return make("deep", expect, encoder.encode(`{"x":${nest(4_000)},${text.slice(1)}`));
    }),
    fc.tuple(base, fc.nat()).map(([v, cut]) => {
      const bytes = toBytes(target, v);
      const length = cut % Math.max(1, bytes.byteLength - 1);
      return make("truncated", json ? "malformed" : "bad_hash", bytes.subarray(0, length));
    }),
    fc.uint8Array({ minLength: 0, maxLength: 200 }).map((bytes) =>
      make("random bytes", "any", bytes)
    ),
    fc.jsonValue({ maxDepth: 4 }).map((v) => {
      const text = JSON.stringify(v) ?? "null";
      // The one random JSON that is a valid snapshot request.
      const expect = target === "snapshot-request" && text === "{}" ? "accept" : "any";
      return make("random json", expect, encoder.encode(text));
    }),
    base.map((v) => {
      if (!json) return make("oversized", "bad_hash", new Uint8Array(70_000).fill(0x61));
      // The size is checked before anything is decoded: a snapshot one byte over its limit is
      // refused whatever it holds; a message padded past 64 KiB likewise.
      if (target === "snapshot") {
        return make("oversized", "too_large", new Uint8Array(8 * 1024 * 1024 + 1).fill(0x20));
      }
      return make(
        "oversized",
        "too_large",
        encoder.encode(JSON.stringify({ ...v, pad: "x".repeat(64 * 1024) })),
      );
    }),
    fc.tuple(base, fc.nat()).map(([v, pick]) => {
      if (!json) return make("missing field", "bad_hash", encoder.encode(""));
      const copy = structuredClone(v);
      const all = objects(copy).filter((o) => Object.keys(o).length > 0);
      if (all.length === 0) return make("missing field", "any", encoder.encode("[]"));
      const target = all[pick % all.length]!;
      // "input" is optional: removing it leaves a valid message.
      const keys = Object.keys(target).filter((key) => key !== "input");
      if (keys.length === 0) return make("missing field", "accept", toBytes(targetOf(), copy));
      delete target[keys[pick % keys.length]!];
      return make("missing field", "invalid", toBytes(targetOf(), copy));
    }),
  ];
  function targetOf(): Target {
    return target;
  }
  return fc.oneof(...mutations);
}
