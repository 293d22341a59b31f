import assert from "node:assert/strict";
import {
  decodeMessage,
  encodeMessage,
  MAX_MESSAGE_BYTES,
  type Topic,
  TOPICS,
  type WireError,
} from "./messages.ts";

const encoder = new TextEncoder();
const HASH = "ab".repeat(32);

function codeOf(topic: Topic, text: string | Uint8Array): string {
  try {
    decodeMessage(topic, typeof text === "string" ? encoder.encode(text) : text);
  } catch (error) {
    assert.equal((error as Error).name, "WireError");
    return (error as WireError).code;
  }
  return "accepted";
}

const result = (output: unknown) =>
  JSON.stringify({ type: "job.result", jobId: "j1", worker: "w1", commitment: HASH, output });

Deno.test("decodeMessage() refuses a result nested 4,000 deep at decode, before the schema", () => {
  const deep = `{"type":"job.result","jobId":"j1","worker":"w1","commitment":"${HASH}","output":${
    "[".repeat(4000)
  }${"]".repeat(4000)}}`;
  assert.equal(codeOf(TOPICS.results, deep), "too_deep");
  assert.throws(() => decodeMessage(TOPICS.results, encoder.encode(deep)), {
    name: "WireError",
    message: /^Invalid message on "\/ciro\/results\/2": Nested too deep: more than 16 levels$/,
  });
});

Deno.test("decodeMessage() holds inputs and outputs to the payload limits", () => {
  let nested: unknown = 1;
  for (let i = 0; i < 8; i++) nested = [nested];
  assert.equal(codeOf(TOPICS.results, result(nested)), "accepted");
  assert.equal(codeOf(TOPICS.results, result([nested])), "payload_bounds");
  const manyKeys = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]));
  assert.equal(codeOf(TOPICS.results, result(manyKeys)), "payload_bounds");
  assert.equal(codeOf(TOPICS.results, result({ a: [[1, 2], [3, 4]] })), "accepted");
});

Deno.test("decodeMessage() refuses unknown fields, __proto__ included, instead of stripping them", () => {
  const reputation = { type: "node.reputation", node: "n1", score: 3 };
  assert.equal(codeOf(TOPICS.reputation, JSON.stringify(reputation)), "accepted");
  assert.equal(codeOf(TOPICS.reputation, JSON.stringify({ ...reputation, x: 1 })), "unknown_field");
  assert.equal(
    codeOf(TOPICS.reputation, '{"type":"node.reputation","node":"n1","score":3,"__proto__":{}}'),
    "unknown_field",
  );
  const bid = { type: "bid.withdraw", bidId: "b1", jobId: "j1", worker: "w1", extra: true };
  assert.equal(codeOf(TOPICS.bids, JSON.stringify(bid)), "unknown_field");
  // Nested objects are strict too.
  const job = {
    type: "job.announce",
    jobId: "j1",
    owner: "c1",
    attempt: 1,
    bidWindowEndsAt: 1,
    spec: {
      kind: { type: "builtin", name: "matmul", extra: 1 },
      inputCommitment: HASH,
      requirements: { hardware: "cpu", minStake: "0" },
      maxPrice: "10",
      bidWindowMs: 1,
      executionMs: 1,
      verificationMs: 1,
      maxAttempts: 1,
      verifierCount: 0,
    },
  };
  assert.equal(codeOf(TOPICS.jobs, JSON.stringify(job)), "unknown_field");
  job.spec.kind = { type: "builtin", name: "matmul" } as typeof job.spec.kind;
  assert.equal(codeOf(TOPICS.jobs, JSON.stringify(job)), "accepted");
});

Deno.test("decodeMessage() names size, encoding and topic faults with a code", () => {
  assert.equal(codeOf(TOPICS.health, new Uint8Array(MAX_MESSAGE_BYTES + 1)), "too_large");
  assert.equal(codeOf(TOPICS.health, new Uint8Array([0xc3, 0x28])), "malformed");
  assert.equal(codeOf(TOPICS.health, "{"), "malformed");
  assert.equal(codeOf("/ciro/nope/1" as Topic, "{}"), "unknown_topic");
  assert.equal(codeOf(TOPICS.health, '{"type":"node.health"}'), "invalid");
  const huge = JSON.stringify({ type: "node.reputation", node: "x".repeat(9000), score: 1 });
  assert.equal(codeOf(TOPICS.reputation, huge), "string_too_long");
  const bytes = encodeMessage(TOPICS.reputation, {
    type: "node.reputation",
    node: "n1",
    score: 1,
  });
  assert.deepEqual(decodeMessage(TOPICS.reputation, bytes), {
    type: "node.reputation",
    node: "n1",
    score: 1,
  });
});
