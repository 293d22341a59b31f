/**
 * The fuzz run of the boundary: 11,000 cases (fast-check, fixed seed) across every gossip topic
 * and the direct protocols' decoders (snapshot answer, snapshot request, payload request): valid
 * messages and mutations of them (unknown fields, `__proto__`, 4,000-deep nesting, truncation,
 * random bytes, random JSON, oversized, missing fields). Every case is either accepted and
 * round-trips, or refused with the error class of its boundary and the reason code its mutation
 * calls for. Anything else (another exception, a crash, a hang) fails the run.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeMessage, encodeMessage, type Topic, WireError } from "../../protocols/messages.ts";
import {
  decodeSnapshot,
  decodeSnapshotRequest,
  encodeSnapshot,
  SnapshotError,
} from "../../protocols/snapshot_protocol.ts";
import { decodePayloadRequest, PayloadRequestError } from "../../protocols/payload_protocol.ts";
import { type FuzzCase, fuzzCase, type Target, TARGETS } from "./_fuzz.ts";

const CODES = new Set([
  "too_large",
  "too_deep",
  "string_too_long",
  "array_too_long",
  "too_many_keys",
  "malformed",
  "unknown_topic",
  "unknown_field",
  "payload_bounds",
  "invalid",
  "bad_hash",
]);

/** Runs one case through its boundary: `accept`, or the code it was refused with. */
export function verdict(target: Target, bytes: Uint8Array): string {
  try {
    if (target === "snapshot") {
      const decoded = decodeSnapshot(bytes);
      assert.deepEqual(decodeSnapshot(encodeSnapshot(decoded)), decoded, "round trip");
    } else if (target === "snapshot-request") {
      decodeSnapshotRequest(bytes);
    } else if (target === "payload-request") {
      decodePayloadRequest(bytes);
    } else {
      const decoded = decodeMessage(target as Topic, bytes);
      assert.deepEqual(
        decodeMessage(target, encodeMessage(target, decoded)),
        decoded,
        "round trip",
      );
    }
    return "accept";
  } catch (error) {
    const expected = target === "snapshot" || target === "snapshot-request"
      ? SnapshotError
      : target === "payload-request"
      ? PayloadRequestError
      : WireError;
    if (!(error instanceof expected)) throw error;
    assert.ok(error.message.length > 0);
    return error.code;
  }
}

Deno.test("fuzz: 11,000 cases across every topic and direct protocol, each accepted or refused with its code", () => {
  const counts = new Map<string, number>();
  let runs = 0;
  fc.assert(
    fc.property(fc.constantFrom(...TARGETS).chain(fuzzCase), (c: FuzzCase) => {
      runs++;
      const got = verdict(c.target, c.bytes);
      assert.ok(got === "accept" || CODES.has(got), `unknown code ${got}`);
      if (c.expect === "any") assert.notEqual(got, "accept", `${c.kind} on ${c.target} accepted`);
      else assert.equal(got, c.expect, `${c.kind} on ${c.target}`);
      const key = `${c.kind}:${got}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }),
    { seed: 13, numRuns: 11_000 },
  );
  assert.equal(runs, 11_000);
  // Every kind of case occurred, and valid messages were in fact accepted.
  const kinds = new Set([...counts.keys()].map((key) => key.split(":")[0]));
  assert.deepEqual(
    [...kinds].sort(),
    [
      "deep",
      "missing field",
      "oversized",
      "random bytes",
      "random json",
      "truncated",
      "unknown field",
      "valid",
    ],
  );
  assert.ok((counts.get("valid:accept") ?? 0) > 500, JSON.stringify([...counts]));
  assert.ok((counts.get("unknown field:unknown_field") ?? 0) > 500);
  assert.ok((counts.get("deep:too_deep") ?? 0) > 500);
});
