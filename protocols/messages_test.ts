import assert from "node:assert/strict";
import {
  announcementTopic,
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
