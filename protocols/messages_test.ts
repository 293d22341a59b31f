import assert from "node:assert/strict";
import fc from "fast-check";
import {
  announcementTopic,
  announcementTopicsOf,
  decodeMessage,
  describeSchemaIssue,
  encodeMessage,
  isAnnouncementTopic,
  isDirectTopic,
  MAX_MESSAGE_BYTES,
  type OutgoingOf,
  SCHEMAS,
  shardOf,
  shardsFor,
  type Topic,
  TOPICS,
  WIRE_JSON_LIMITS,
  type WireError,
} from "./messages.ts";
import { type BoundedJsonError, decodeBoundedJson } from "./bounded_json.ts";

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

/** The wire's encoding before the fast path: `JSON.stringify` with a `bigint` replacer. */
function referenceEncode(message: unknown): Uint8Array {
  return encoder.encode(
    JSON.stringify(message, (_k, v) => typeof v === "bigint" ? v.toString() : v),
  );
}

const SPEC = {
  kind: { type: "builtin" as const, name: "matmul" as const },
  inputCommitment: HASH,
  input: { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]], note: "é ☃ \u2028", n: -0 },
  requirements: { hardware: "cpu" as const, minStake: 100n },
  maxPrice: 2n ** 255n,
  bidWindowMs: 2_000,
  executionMs: 30_000,
  verificationMs: 30_000,
  maxAttempts: 3,
  verifierCount: 4,
  priority: "high" as const,
};

/** One message of every kind the wire carries, optional fields with and without. */
const EVERY_KIND: [Topic, unknown][] = [
  [TOPICS.jobs, {
    type: "job.announce",
    jobId: "j1",
    owner: "c",
    attempt: 2,
    bidWindowEndsAt: 1_000,
    spec: SPEC,
    sample: 3,
  }],
  [TOPICS.jobs, {
    type: "job.announce",
    jobId: "j1",
    owner: "c",
    attempt: 1,
    bidWindowEndsAt: 1,
    spec: { ...SPEC, input: undefined, priority: undefined },
  }],
  [TOPICS.bids, {
    type: "bid.submit",
    bidId: "j1.1.w1",
    jobId: "j1",
    worker: "w1",
    price: 500n,
    etaMs: 100,
    stake: 0n,
    reputation: 500,
    hardware: "gpu",
  }],
  [TOPICS.bids, { type: "bid.withdraw", bidId: "j1.1.w1", jobId: "j1", worker: "w1" }],
  [TOPICS.assignments, {
    type: "job.assign",
    jobId: "j1",
    worker: "w1",
    bidId: "b",
    price: 7n,
    verifiers: ["v1", "v2"],
  }],
  [TOPICS.assignments, {
    type: "job.assign",
    jobId: "j1",
    worker: "w1",
    bidId: "b",
    price: 7n,
    verifiers: [],
    attempt: 1,
    spec: SPEC,
  }],
  [TOPICS.results, {
    type: "job.result",
    jobId: "j1",
    worker: "w1",
    commitment: HASH,
    output: { inputs: { y: { dims: [2, 2], dtype: "float32", data: [0.1, -2e-7, 1e21, NaN] } } },
  }],
  [TOPICS.attestations, {
    type: "job.attest",
    jobId: "j1",
    verifier: "v1",
    verdict: "invalid",
    commitment: HASH,
    worker: "w1",
    claimed: HASH,
  }],
  [TOPICS.capabilities, {
    type: "node.capabilities",
    node: "n",
    roles: ["worker", "verifier"],
    hardware: "cpu",
    models: [HASH],
  }],
  [TOPICS.reputation, { type: "node.reputation", node: "n", score: 1000 }],
  [TOPICS.health, { type: "node.health", node: "n", at: 5, openJobs: 0 }],
];

Deno.test("encodeMessage() gives the bytes of JSON.stringify with the bigint replacer, every kind", () => {
  for (const [topic, message] of EVERY_KIND) {
    const bytes = encodeMessage(topic, message as OutgoingOf<typeof topic>);
    assert.deepEqual(
      bytes,
      referenceEncode(message),
      `${topic} ${JSON.stringify(message, (_k, v) => typeof v === "bigint" ? `${v}n` : v)}`,
    );
    // And each decodes back (the announcement on its own shard).
    const on = topic === TOPICS.jobs ? announcementTopic(shardOf(SPEC)) : topic;
    const sample = (message as { sample?: number }).sample;
    if (sample === undefined) decodeMessage(on, bytes);
  }
});

/** A seeded generator of JSON-like values: bigints anywhere, undefined, odd numbers, unicode. */
function randomValue(next: () => number, depth: number): unknown {
  const pick = Math.floor(next() * (depth > 4 ? 7 : 10));
  switch (pick) {
    case 0:
      return BigInt(Math.floor(next() * 1e9)) * (next() < 0.5 ? -1n : 1n) * 10n ** 30n;
    case 1:
      return [0, -0, 1.5, -1e-300, 1e300, NaN, Infinity, 2 ** 53][Math.floor(next() * 8)];
    case 2:
      return ["", 'a"b', "\u0000\n", "ü€😀", "\ud800"][Math.floor(next() * 5)];
    case 3:
      return [null, true, false, undefined][Math.floor(next() * 4)];
    case 4:
      return `s${Math.floor(next() * 100)}`;
    case 5:
      return 42n;
    case 6:
      return Math.floor(next() * 1000);
    case 7:
    case 8: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(next() * 5);
      for (let i = 0; i < n; i++) {
        o[["k", "1", "__x", "z", "0"][Math.floor(next() * 5)]! + i] = randomValue(next, depth + 1);
      }
      return o;
    }
    default:
      return Array.from({ length: Math.floor(next() * 5) }, () => randomValue(next, depth + 1));
  }
}

Deno.test("encodeMessage() gives the replacer's bytes for any plain value, and its errors", () => {
  let state = 7;
  const next = () => ((state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
  for (let i = 0; i < 2_000; i++) {
    const value = { type: "x", value: randomValue(next, 0), tail: [randomValue(next, 0)] };
    assert.deepEqual(encodeMessage(TOPICS.health, value as never), referenceEncode(value));
  }
  // What only the replacer path handles: toJSON, class instances, maps, deep nesting.
  class Point {
    x = 1n;
    y = 2;
  }
  let deep: unknown = 5n;
  for (let i = 0; i < 100; i++) deep = i % 2 === 0 ? [deep] : { d: deep };
  for (
    const odd of [
      { at: new Date(0), n: 1n },
      { p: new Point() },
      { m: new Map([[1, 2]]), s: new Set([1]) },
      { j: { toJSON: () => ({ amount: 3n }) } },
      { deep },
      Object.assign(Object.create(null), { a: 1n }),
      Object.assign(Object.create({ inherited: 1n }), { own: 2n }),
      [1n, undefined, () => 1, Symbol("s")],
    ]
  ) {
    assert.deepEqual(encodeMessage(TOPICS.health, odd as never), referenceEncode(odd));
  }
  const cyclic: Record<string, unknown> = { a: 1n };
  cyclic["self"] = cyclic;
  const expected = (() => {
    try {
      referenceEncode(cyclic);
    } catch (error) {
      return error as Error;
    }
  })();
  assert.throws(() => encodeMessage(TOPICS.health, cyclic as never), {
    name: expected!.name,
    message: expected!.message,
  });
});

/** What decodeMessage gives for `json` on `topic`: the message, or the error's code and text. */
function decoded(topic: Topic, json: unknown): unknown {
  try {
    return { ok: decodeMessage(topic, encoder.encode(JSON.stringify(json))) };
  } catch (error) {
    return { code: (error as WireError).code, message: (error as Error).message };
  }
}

/** What the topic's zod schema alone gives for `json`, as decodeMessage words it. */
function bySchema(topic: Topic, json: unknown): unknown {
  const schemas = SCHEMAS as unknown as Record<string, (typeof SCHEMAS)[typeof TOPICS.bids]>;
  const parsed = schemas[topic]!.safeParse(JSON.parse(JSON.stringify(json)));
  if (parsed.success) return { ok: parsed.data };
  const { code, detail } = describeSchemaIssue(parsed.error);
  return { code, message: `Invalid message on "${topic}": ${detail}` };
}

/** Field values at and across every bound the hot kinds' schemas set. */
const PROBES: unknown[] = [
  undefined,
  null,
  true,
  [],
  {},
  "",
  "a",
  "a".repeat(128),
  "a".repeat(129),
  "w1 x",
  "w:1.a-b_c",
  "é",
  0,
  -0,
  -1,
  1.5,
  1000,
  1001,
  2 ** 52,
  2 ** 52 + 1,
  Infinity,
  "0",
  "00",
  "01",
  "-1",
  "1.0",
  " 1",
  "9".repeat(78),
  (2n ** 256n - 1n).toString(),
  (2n ** 256n).toString(),
  "cpu",
  "gpu",
  "CPU",
  "valid",
  "invalid",
  "bid.submit",
  "bid.withdraw",
  "job.attest",
  HASH,
  HASH.toUpperCase(),
  HASH.slice(2),
  `${HASH}0`,
  "job.result",
  // Past the payload limits (8 levels, 16 keys a level) and at them.
  JSON.parse("[".repeat(9) + "]".repeat(9)),
  JSON.parse("[".repeat(8) + "]".repeat(8)),
  Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])),
  Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
];

Deno.test("decodeMessage() of bids, attestations and results: the schema's output and errors, every probe", () => {
  const kinds: [Topic, Record<string, unknown>][] = [
    [TOPICS.bids, {
      type: "bid.submit",
      bidId: "j1.1.w1",
      jobId: "j1",
      worker: "w1",
      price: "500",
      etaMs: 100,
      stake: "100",
      reputation: 500,
      hardware: "cpu",
    }],
    [TOPICS.bids, { type: "bid.withdraw", bidId: "j1.1.w1", jobId: "j1", worker: "w1" }],
    [TOPICS.attestations, {
      type: "job.attest",
      jobId: "j1",
      verifier: "v1",
      verdict: "valid",
      commitment: HASH,
      worker: "w1",
      claimed: HASH,
    }],
    [TOPICS.results, {
      type: "job.result",
      jobId: "j1",
      worker: "w1",
      commitment: HASH,
      output: { dims: [2, 2], data: [1, 2.5, -3, 4e-9], name: "y" },
    }],
  ];
  let cases = 0;
  const same = (topic: Topic, json: unknown, what: string) => {
    const fast = decoded(topic, json);
    const slow = bySchema(topic, json);
    assert.deepEqual(fast, slow, what);
    // The same keys in the same order (journaled events are hashed as text).
    assert.equal(
      JSON.stringify(fast, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
      JSON.stringify(slow, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
      what,
    );
    cases++;
  };
  for (const [topic, valid] of kinds) {
    same(topic, valid, "valid");
    // Keys in another order decode to the schema's order.
    same(topic, Object.fromEntries(Object.entries(valid).reverse()), "reversed");
    for (const field of Object.keys(valid)) {
      for (const probe of PROBES) {
        same(topic, { ...valid, [field]: probe }, `${field} = ${JSON.stringify(probe)}`);
      }
      const { [field]: _, ...without } = valid;
      same(topic, without, `without ${field}`);
    }
    same(topic, { ...valid, extra: 1 }, "an unknown field");
    same(topic, JSON.parse(`{"__proto__": 1, ${JSON.stringify(valid).slice(1)}`), "__proto__");
    for (const root of [null, 1, "bid", [valid]]) same(topic, root, `root ${JSON.stringify(root)}`);
  }
  assert.ok(cases > 500, `${cases} cases`);
});

Deno.test("decodeMessage() decodes a well-formed bid, attestation and result without their schema", () => {
  const bid = encodeMessage(TOPICS.bids, EVERY_KIND[2]![1] as OutgoingOf<typeof TOPICS.bids>);
  const attest = encodeMessage(
    TOPICS.attestations,
    EVERY_KIND[7]![1] as OutgoingOf<typeof TOPICS.attestations>,
  );
  const result = encodeMessage(
    TOPICS.results,
    EVERY_KIND[6]![1] as OutgoingOf<typeof TOPICS.results>,
  );
  for (
    const [topic, bytes] of [
      [TOPICS.bids, bid],
      [TOPICS.attestations, attest],
      [TOPICS.results, result],
    ] as const
  ) {
    const schema = SCHEMAS[topic] as unknown as { safeParse: (v: unknown) => unknown };
    const original = schema.safeParse;
    let calls = 0;
    schema.safeParse = (v: unknown) => {
      calls++;
      return original.call(schema, v);
    };
    try {
      decodeMessage(topic, bytes);
      assert.equal(calls, 0, `${topic}: the schema ran`);
      // A malformed one goes to the schema for its error.
      assert.throws(() => decodeMessage(topic, encoder.encode('{"type":"bid.submit"}')));
      assert.equal(calls, 1);
    } finally {
      schema.safeParse = original;
    }
  }
});

/** A job spec on the wire (amounts as decimal strings), every optional field given. */
const WIRE_SPEC: Record<string, unknown> = {
  kind: { type: "builtin", name: "matmul" },
  inputCommitment: HASH,
  input: { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] },
  requirements: { hardware: "cpu", minStake: "100" },
  maxPrice: "1723",
  bidWindowMs: 200,
  executionMs: 3_750,
  verificationMs: 4_750,
  maxAttempts: 3,
  verifierCount: 4,
  priority: "normal",
};

const ANNOUNCEMENT: Record<string, unknown> = {
  type: "job.announce",
  jobId: "s1-job-000008",
  owner: "client-08",
  attempt: 1,
  bidWindowEndsAt: 1_300,
  spec: WIRE_SPEC,
  sample: 6,
};

const ASSIGNMENT: Record<string, unknown> = {
  type: "job.assign",
  jobId: "s1-job-000024",
  worker: "worker-0528",
  bidId: "s1-job-000024.1.worker-0528",
  price: "1099",
  verifiers: ["verifier-13", "verifier-10"],
  attempt: 1,
  spec: WIRE_SPEC,
};

/** `value` without the key `key`. */
function without(value: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _, ...rest } = value;
  return rest;
}

/** `message` with `spec` (and the objects in it) in place of its spec. */
function withSpec(message: Record<string, unknown>, spec: unknown): Record<string, unknown> {
  return { ...message, spec };
}

/** Asserts that decodeMessage and the schema alone give the same output, key order included. */
function assertSame(topic: Topic, json: unknown, what: string): void {
  const fast = decoded(topic, json);
  const slow = byReference(topic, json);
  assert.deepEqual(fast, slow, what);
  // The same keys in the same order (journaled events are hashed as text).
  assert.equal(
    JSON.stringify(fast, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
    JSON.stringify(slow, (_k, v) => typeof v === "bigint" ? `${v}n` : v),
    what,
  );
}

/** What the wire's bounded decode and then the topic's schema alone give for `json`. */
function byReference(topic: Topic, json: unknown): unknown {
  try {
    decodeBoundedJson(JSON.stringify(json), WIRE_JSON_LIMITS);
  } catch (error) {
    const { code, message } = error as BoundedJsonError;
    return { code, message: `Invalid message on "${topic}": ${message}` };
  }
  return bySchema(topic, json);
}

/** The onnx kinds, the zero hash (a builtin's) included, and odd ones. */
const KINDS: unknown[] = [
  { type: "onnx", modelHash: HASH },
  { type: "onnx", modelHash: "0".repeat(64) },
  { type: "onnx", modelHash: HASH, name: "matmul" },
  { type: "onnx", name: "matmul" },
  { type: "builtin", name: "other" },
  { type: "builtin", modelHash: HASH },
  { name: "matmul", type: "builtin" },
  { type: "builtin" },
  { type: "builtin", name: "matmul", extra: 1 },
  { type: "gpu", name: "matmul" },
];

Deno.test("decodeMessage() of announcements and assignments: the schema's output and errors, every probe", () => {
  const messages: [Topic, Record<string, unknown>][] = [
    [TOPICS.jobs, ANNOUNCEMENT],
    [TOPICS.jobs, without(withSpec(ANNOUNCEMENT, without(WIRE_SPEC, "priority")), "sample")],
    [TOPICS.jobs, withSpec(ANNOUNCEMENT, without(WIRE_SPEC, "input"))],
    [TOPICS.assignments, ASSIGNMENT],
    [TOPICS.assignments, without(without(ASSIGNMENT, "spec"), "attempt")],
    [TOPICS.assignments, without(ASSIGNMENT, "attempt")],
    [TOPICS.assignments, without(ASSIGNMENT, "spec")],
  ];
  let cases = 0;
  const same = (topic: Topic, json: unknown, what: string) => {
    assertSame(topic, json, what);
    cases++;
  };
  for (const [topic, valid] of messages) {
    same(topic, valid, "valid");
    same(topic, Object.fromEntries(Object.entries(valid).reverse()), "reversed");
    for (const field of Object.keys(valid)) {
      for (const probe of PROBES) {
        same(topic, { ...valid, [field]: probe }, `${field} = ${JSON.stringify(probe)}`);
      }
      same(topic, without(valid, field), `without ${field}`);
    }
    same(topic, { ...valid, extra: 1 }, "an unknown field");
    same(topic, JSON.parse(`{"__proto__": 1, ${JSON.stringify(valid).slice(1)}`), "__proto__");
    for (const root of [null, 1, "job", [valid]]) same(topic, root, `root ${JSON.stringify(root)}`);
    const spec = valid["spec"] as Record<string, unknown> | undefined;
    if (spec === undefined) continue;
    // Every field of the spec, of its requirements and of its kind.
    same(
      topic,
      withSpec(valid, Object.fromEntries(Object.entries(spec).reverse())),
      "spec reversed",
    );
    for (const field of Object.keys(spec)) {
      for (const probe of PROBES) {
        same(topic, withSpec(valid, { ...spec, [field]: probe }), `spec.${field} = ${probe}`);
      }
      same(topic, withSpec(valid, without(spec, field)), `spec without ${field}`);
    }
    for (const extra of ["extra", "__proto__", "sample"]) {
      same(topic, withSpec(valid, { ...spec, [extra]: 1 }), `spec.${extra}`);
    }
    const requirements = spec["requirements"] as Record<string, unknown>;
    for (const field of [...Object.keys(requirements), "extra"]) {
      for (const probe of PROBES) {
        const changed = { ...spec, requirements: { ...requirements, [field]: probe } };
        same(topic, withSpec(valid, changed), `spec.requirements.${field} = ${probe}`);
      }
      same(topic, withSpec(valid, { ...spec, requirements: without(requirements, field) }), field);
    }
    for (const kind of [...KINDS, ...PROBES]) {
      same(topic, withSpec(valid, { ...spec, kind }), `spec.kind = ${JSON.stringify(kind)}`);
    }
    for (const probe of [...PROBES, "normal", "low", "high", "urgent"]) {
      same(topic, withSpec(valid, { ...spec, priority: probe }), `spec.priority = ${probe}`);
    }
  }
  // An assignment's verifiers: each an identifier, at most 64.
  for (
    const verifiers of [
      [],
      ["v1"],
      Array.from({ length: 64 }, (_, i) => `v${i}`),
      Array.from({ length: 65 }, (_, i) => `v${i}`),
      ...PROBES.map((probe) => ["v1", probe]),
      "v1",
      { 0: "v1" },
    ]
  ) {
    same(
      TOPICS.assignments,
      { ...ASSIGNMENT, verifiers },
      `verifiers ${JSON.stringify(verifiers)}`,
    );
  }
  assert.ok(cases > 3_000, `${cases} cases`);
});

/** A JSON value anywhere in `json` (objects and arrays), by a path of keys and indices. */
function pathsOf(json: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const paths: (string | number)[][] = [prefix];
  if (Array.isArray(json)) json.forEach((v, i) => paths.push(...pathsOf(v, [...prefix, i])));
  else if (typeof json === "object" && json !== null) {
    for (const [k, v] of Object.entries(json)) paths.push(...pathsOf(v, [...prefix, k]));
  }
  return paths;
}

/** A copy of `json` with the value at `path` replaced (or deleted, where `value` is absent). */
function edited(json: unknown, path: (string | number)[], value?: { v: unknown }): unknown {
  if (path.length === 0) return value === undefined ? undefined : value.v;
  const copy = (Array.isArray(json) ? [...json] : { ...(json as object) }) as Record<
    string | number,
    unknown
  >;
  const [head, ...rest] = path;
  if (rest.length === 0 && value === undefined) {
    if (Array.isArray(copy)) (copy as unknown[]).splice(head as number, 1);
    else delete copy[head!];
  } else copy[head!] = edited(copy[head!], rest, value);
  return copy;
}

Deno.test("decodeMessage() of announcements and assignments: the schema's output and errors on random and mutated messages (fast-check)", () => {
  // Mostly well-formed values, now and then one across a bound.
  const mostly = <T, U>(valid: fc.Arbitrary<T>, invalid: fc.Arbitrary<U>) =>
    fc.oneof({ arbitrary: valid, weight: 30 }, { arbitrary: invalid, weight: 1 });
  const id = mostly(
    fc.stringMatching(/^[A-Za-z0-9._:\-]{1,128}$/),
    fc.constantFrom("", "a b", "é", "a".repeat(129)),
  );
  const hash = mostly(
    fc.stringMatching(/^[0-9a-f]{64}$/),
    fc.constantFrom("0".repeat(64), HASH.toUpperCase(), HASH.slice(1)),
  );
  const u256 = mostly(
    fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }).map(String),
    fc.constantFrom("01", "-1", "1.5", " 1", "", (2n ** 256n).toString()),
  );
  const int = (min: number, max: number) =>
    mostly(fc.integer({ min, max }), fc.constantFrom(min - 1, max + 1, 1.5, -0, 2 ** 53));
  const ms = (min: number) =>
    mostly(fc.integer({ min, max: 2 ** 52 }), fc.constantFrom(min - 1, 2 ** 52 + 1, 0.5));
  const kind = mostly(
    fc.oneof(
      fc.constant({ type: "builtin", name: "matmul" }),
      hash.map((modelHash) => ({ type: "onnx", modelHash })),
    ),
    fc.constantFrom(...KINDS),
  );
  const spec = fc.record({
    kind,
    inputCommitment: hash,
    input: mostly(fc.jsonValue({ maxDepth: 5 }), fc.jsonValue({ maxDepth: 10 })),
    requirements: fc.record({
      hardware: mostly(fc.constantFrom("cpu", "gpu"), fc.constant("tpu")),
      minStake: u256,
    }),
    maxPrice: u256,
    bidWindowMs: ms(1),
    executionMs: ms(1),
    verificationMs: ms(1),
    maxAttempts: int(1, 16),
    verifierCount: int(0, 64),
    priority: mostly(fc.constantFrom("low", "normal", "high"), fc.constant("none")),
  }, { requiredKeys: ["kind", "inputCommitment", "requirements", "maxPrice"] });
  const announcement = fc.record({
    type: mostly(fc.constant("job.announce"), fc.constant("job.assign")),
    jobId: id,
    owner: id,
    attempt: int(1, 16),
    bidWindowEndsAt: ms(0),
    spec,
    sample: int(1, 8),
  }, { requiredKeys: ["type", "jobId", "owner", "attempt", "bidWindowEndsAt", "spec"] });
  const assignment = fc.record({
    type: mostly(fc.constant("job.assign"), fc.constant("job.announce")),
    jobId: id,
    worker: id,
    bidId: id,
    price: u256,
    verifiers: mostly(fc.array(id, { maxLength: 64 }), fc.array(id, { maxLength: 66 })),
    attempt: int(1, 16),
    spec,
  }, { requiredKeys: ["type", "jobId", "worker", "bidId", "price", "verifiers"] });
  // Half unchanged; else a value anywhere replaced by any JSON, a key deleted, or one added.
  const mutated = (message: fc.Arbitrary<Record<string, unknown>>) =>
    fc.tuple(message, fc.nat(), fc.nat(5), fc.jsonValue({ maxDepth: 2 })).map(
      ([json, at, how, value]) => {
        const paths = pathsOf(json);
        const path = paths[at % paths.length]!;
        if (how === 0) return edited(json, path, { v: value });
        if (how === 1) return path.length === 0 ? json : edited(json, path);
        if (how === 2) return edited(json, [...path, "extra"], { v: value });
        return json;
      },
    );
  let accepted = 0;
  fc.assert(
    fc.property(
      fc.oneof(
        mutated(announcement).map((json) => [TOPICS.jobs, json] as const),
        mutated(assignment).map((json) => [TOPICS.assignments, json] as const),
      ),
      ([topic, json]) => {
        assertSame(topic, json, JSON.stringify(json));
        if ("ok" in (decoded(topic, json) as object)) accepted++;
      },
    ),
    { numRuns: 3_000, seed: 16 },
  );
  // Both sides of the fast path were exercised.
  assert.ok(accepted > 300 && accepted < 2_700, `${accepted} accepted`);
});

Deno.test("decodeMessage() decodes a well-formed announcement and assignment without their schema", () => {
  const text = (json: unknown) => encoder.encode(JSON.stringify(json));
  const shard = announcementTopicsOf(
    { kind: { type: "builtin" }, requirements: { hardware: "cpu" } },
    ANNOUNCEMENT["jobId"] as string,
    ANNOUNCEMENT["attempt"] as number,
    ANNOUNCEMENT["sample"] as number,
  )[0]!;
  for (
    const [family, topic, json] of [
      [TOPICS.jobs, shard, ANNOUNCEMENT],
      [TOPICS.jobs, announcementTopic(shardOf(SPEC)), without(ANNOUNCEMENT, "sample")],
      [TOPICS.assignments, TOPICS.assignments, ASSIGNMENT],
      [TOPICS.assignments, TOPICS.assignments, without(ASSIGNMENT, "spec")],
    ] as const
  ) {
    const schema = SCHEMAS[family] as unknown as { safeParse: (v: unknown) => unknown };
    const original = schema.safeParse;
    let calls = 0;
    schema.safeParse = (v: unknown) => {
      calls++;
      return original.call(schema, v);
    };
    try {
      const message = decodeMessage(topic, text(json)) as { spec?: { maxPrice: bigint } };
      assert.equal(calls, 0, `${topic}: the schema ran`);
      if (message.spec !== undefined) assert.equal(message.spec.maxPrice, 1723n);
      // A malformed one goes to the schema for its error.
      assert.throws(() => decodeMessage(topic, text({ ...json, spec: 1 })), { name: "WireError" });
      assert.equal(calls, 1);
    } finally {
      schema.safeParse = original;
    }
  }
  // A well-formed announcement on another sample's topic is still refused for it.
  const elsewhere = `${shard.slice(0, -1)}${shard.endsWith("0") ? "1" : "0"}` as Topic;
  assert.equal(codeOf(elsewhere, text(ANNOUNCEMENT)), "wrong_shard");
  assert.equal(codeOf(announcementTopic(shardOf(SPEC)), text(ANNOUNCEMENT)), "wrong_shard");
});
