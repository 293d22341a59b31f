import assert from "node:assert/strict";
import {
  announcementTopic,
  decodeMessage,
  encodeMessage,
  isAnnouncementTopic,
  isDirectTopic,
  MAX_MESSAGE_BYTES,
  shardOf,
  shardsFor,
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

Deno.test("protocol v2: a job is announced on the shard of what it needs, and only there", () => {
  const spec = {
    kind: { type: "onnx" as const, modelHash: HASH },
    inputCommitment: HASH,
    requirements: { hardware: "gpu" as const, minStake: 0n },
    maxPrice: 1n,
    bidWindowMs: 1,
    executionMs: 1,
    verificationMs: 1,
    maxAttempts: 1,
    verifierCount: 0,
  };
  const shard = announcementTopic(shardOf(spec));
  assert.equal(shard, `/ciro/jobs/2/gpu/${HASH}`);
  assert.equal(announcementTopic({ hardware: "cpu", kind: "matmul" }), "/ciro/jobs/2/cpu/matmul");
  // A GPU node hears CPU jobs too; a CPU node only CPU jobs.
  assert.deepEqual(shardsFor("gpu", ["matmul"]), [
    "/ciro/jobs/2/cpu/matmul",
    "/ciro/jobs/2/gpu/matmul",
  ]);
  assert.deepEqual(shardsFor("cpu", ["matmul", HASH]), [
    "/ciro/jobs/2/cpu/matmul",
    `/ciro/jobs/2/cpu/${HASH}`,
  ]);
  const message = {
    type: "job.announce" as const,
    jobId: "j1",
    owner: "c",
    attempt: 1,
    bidWindowEndsAt: 1,
    spec,
  };
  const bytes = encodeMessage(shard, message);
  assert.equal(decodeMessage(shard, bytes).jobId, "j1");
  // On another shard it would reach workers that cannot run it: refused, with its code.
  assert.equal(codeOf("/ciro/jobs/2/cpu/matmul", bytes), "wrong_shard");
  assert.equal(codeOf(`/ciro/jobs/2/cpu/${HASH}`, bytes), "wrong_shard");
  // The shards a node accepts are well formed; the direct topics are never gossiped.
  assert.ok(isAnnouncementTopic(shard));
  for (
    const bad of ["/ciro/jobs/2", "/ciro/jobs/2/tpu/matmul", "/ciro/jobs/2/cpu/AB", "/ciro/jobs/1"]
  ) {
    assert.equal(isAnnouncementTopic(bad), false, bad);
  }
  assert.deepEqual(
    Object.values(TOPICS).filter(isDirectTopic),
    [TOPICS.bids, TOPICS.assignments, TOPICS.results, TOPICS.attestations],
  );
});
