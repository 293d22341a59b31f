/**
 * The wire: versioned topic names and one schema per message (zod). Amounts travel as decimal
 * strings and decode to `bigint`. {@link decodeMessage} is the only way bytes from a peer
 * become a typed message; anything else is a {@link WireError} naming what is wrong, with a
 * {@link WireErrorCode}.
 *
 * Decoding is bounded before anything else happens ({@link WIRE_JSON_LIMITS}: size, depth,
 * string and array lengths, keys per object, checked by a scan of the text before
 * `JSON.parse`), and every schema is strict: a field the schema does not know is an error, not
 * silently stripped (a newer message gets a new topic version). A job's `input` and a result's
 * `output` travel as opaque JSON but are held to the tighter {@link PAYLOAD_VALUE_LIMITS}.
 *
 * @module
 */
import { z } from "zod";
import { MAX_VERIFIERS } from "../machines/types.ts";
import { jobSamplePrefix, MAX_SAMPLE_BITS, samplePrefix } from "./sampling.ts";
import {
  type BoundedJsonCode,
  BoundedJsonError,
  checkBounded,
  decodeBoundedJson,
  type JsonLimits,
} from "./bounded_json.ts";

/**
 * Topics, versioned: a breaking schema change gets a new topic. Protocol v2 (the `/2` and `/3`
 * names): announcements are gossiped on topics sharded by what a job needs
 * ({@link announcementTopic}: `/ciro/jobs/2/<hardware>/<kind>`; `TOPICS.jobs` names the family,
 * never a topic of its own); bids, assignments, results and attestations are
 * {@link DIRECT_TOPICS}: sent to the parties that need them (`NetworkPort.send`), never gossiped.
 * Capabilities, reputation and health stay gossip. A v1 node (`/ciro/jobs/1`, gossiped bids)
 * hears nothing of a v2 market and a v2 node nothing of a v1 one: they are separate markets.
 */
export const TOPICS = {
  jobs: "/ciro/jobs/2",
  bids: "/ciro/bids/2",
  // 3: an assignment to a chosen verifier carries the job's spec and attempt (v2: without).
  assignments: "/ciro/assignments/3",
  results: "/ciro/results/2",
  // 3: an attestation names the worker and the commitment it judged (v1 gossip: 2).
  attestations: "/ciro/attestations/3",
  capabilities: "/ciro/capabilities/1",
  reputation: "/ciro/reputation/1",
  health: "/ciro/health/1",
} as const;

/** A topic family: the name its schema is keyed by. */
export type TopicFamily = (typeof TOPICS)[keyof typeof TOPICS];

/** An announcement shard: `/ciro/jobs/2/<hardware>/<kind>` ({@link announcementTopic}). */
export type AnnouncementTopic = `${typeof TOPICS.jobs}/${string}`;

/** A topic name: a family, or an announcement shard. */
export type Topic = TopicFamily | AnnouncementTopic;

/** The family of `topic` (the announcement family for a shard). */
export type FamilyOf<T extends Topic> = T extends AnnouncementTopic ? typeof TOPICS.jobs : T;

/** Topics whose messages go to named peers over a direct protocol, never by gossip. */
export const DIRECT_TOPICS: ReadonlySet<string> = new Set<string>([
  TOPICS.bids,
  TOPICS.assignments,
  TOPICS.results,
  TOPICS.attestations,
]);

/** Whether `topic` is sent to named peers ({@link DIRECT_TOPICS}) rather than gossiped. */
export function isDirectTopic(topic: string): boolean {
  return DIRECT_TOPICS.has(topic);
}

/** The announcement shards' prefix. */
const JOBS_PREFIX = `${TOPICS.jobs}/`;

/** The family of a topic name: `TOPICS.jobs` for an announcement shard, else the name itself. */
export function topicFamily<T extends Topic>(topic: T): FamilyOf<T> {
  return (topic.startsWith(JOBS_PREFIX) ? TOPICS.jobs : topic) as FamilyOf<T>;
}

/** What a job needs, as its announcement shard says it: hardware class and kind. */
export interface ShardKey {
  readonly hardware: "cpu" | "gpu";
  /** `matmul` (the builtin) or an ONNX model's hash. */
  readonly kind: string;
}

/**
 * Where on a shard a job is announced: the whole shard (every capable worker), one sample of it
 * (a prefix of `0`s and `1`s: the workers whose identity hashes to it, `sampling.ts`), or the
 * shard's watch topic, where every sampled announcement is also published for the nodes that
 * follow all of a shard's jobs (verifiers, which may be chosen for any of them, and relays).
 */
export type ShardPart = { readonly sample: string } | "watch" | undefined;

/** The suffix of a shard's watch topic. */
const WATCH = "all";

/**
 * The topic a job is announced on: `/ciro/jobs/2/<hardware>/<kind>`, with `kind` the builtin's
 * name or the model's hash, so that a worker subscribes only to what it can run; a sampled job
 * goes to `/ciro/jobs/2/<hardware>/<kind>/<prefix>` and to the shard's watch topic
 * `/ciro/jobs/2/<hardware>/<kind>/all` ({@link ShardPart}).
 *
 * ```ts
 * import { announcementTopic } from "./messages.ts";
 *
 * announcementTopic({ hardware: "cpu", kind: "matmul" }); // "/ciro/jobs/2/cpu/matmul"
 * announcementTopic({ hardware: "cpu", kind: "matmul" }, { sample: "101" }); // ".../matmul/101"
 * ```
 */
export function announcementTopic(key: ShardKey, part?: ShardPart): AnnouncementTopic {
  const base = `${TOPICS.jobs}/${key.hardware}/${key.kind}` as const;
  if (part === undefined) return base;
  return `${base}/${part === "watch" ? WATCH : part.sample}`;
}

const SHARD_PATTERN = new RegExp(
  `^/ciro/jobs/2/(cpu|gpu)/(matmul|[0-9a-f]{64})(?:/([01]{1,${MAX_SAMPLE_BITS}}|${WATCH}))?$`,
);

/**
 * Whether `topic` is a well-formed announcement shard (`/ciro/jobs/2/<cpu|gpu>/<matmul|hash>`,
 * optionally `/<prefix>` or `/all`): the only topics a node accepts besides the fixed ones.
 */
export function isAnnouncementTopic(topic: string): topic is AnnouncementTopic {
  return SHARD_PATTERN.test(topic);
}

/** The part of a shard an announcement topic names (undefined: the whole shard). */
export function shardPartOf(topic: string): ShardPart {
  const suffix = SHARD_PATTERN.exec(topic)?.[3];
  if (suffix === undefined) return undefined;
  return suffix === WATCH ? "watch" : { sample: suffix };
}

/**
 * The topics a job's announcement goes on: the whole shard when `bits` is 0; else its sample
 * and the shard's watch topic.
 */
export function announcementTopicsOf(
  spec: Parameters<typeof shardOf>[0],
  jobId: string,
  attempt: number,
  bits: number,
): AnnouncementTopic[] {
  const key = shardOf(spec);
  if (bits <= 0) return [announcementTopic(key)];
  return [
    announcementTopic(key, { sample: jobSamplePrefix(jobId, attempt, bits) }),
    announcementTopic(key, "watch"),
  ];
}

/** The shard key of a job spec (its hardware requirement and kind). */
export function shardOf(
  spec: {
    readonly kind: { readonly type: string; readonly name?: string; readonly modelHash?: string };
    readonly requirements: { readonly hardware: "cpu" | "gpu" };
  },
): ShardKey {
  const kind = spec.kind.type === "onnx" ? spec.kind.modelHash! : spec.kind.name ?? "matmul";
  return { hardware: spec.requirements.hardware, kind };
}

/**
 * The announcement topics a node subscribes to: a GPU node runs CPU jobs too, so it hears both
 * classes; per kind it can run, the whole shard and then either its own samples (`sampleOf`: a
 * worker's identity, which hears the prefixes of its hash at every depth) or the watch topic
 * (`watch`: a verifier or relay, which follows every job of the shard), or both.
 */
export function shardsFor(
  hardware: "cpu" | "gpu",
  kinds: Iterable<string>,
  listen: { readonly sampleOf?: string; readonly watch?: boolean } = {},
): AnnouncementTopic[] {
  const classes: ("cpu" | "gpu")[] = hardware === "gpu" ? ["cpu", "gpu"] : ["cpu"];
  const own = listen.sampleOf === undefined ? "" : samplePrefix(listen.sampleOf, MAX_SAMPLE_BITS);
  const topics: AnnouncementTopic[] = [];
  for (const kind of kinds) {
    for (const h of classes) {
      const key = { hardware: h, kind };
      topics.push(announcementTopic(key));
      for (let bits = 1; bits <= own.length; bits++) {
        topics.push(announcementTopic(key, { sample: own.slice(0, bits) }));
      }
      if (listen.watch) topics.push(announcementTopic(key, "watch"));
    }
  }
  return topics;
}

/** Largest message accepted on any topic, in bytes. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

/**
 * Limits on the JSON of one gossip message: {@link MAX_MESSAGE_BYTES}, 16 levels deep,
 * strings up to 8,192 code units, arrays up to 8,192 elements, 64 keys per object.
 */
export const WIRE_JSON_LIMITS: JsonLimits = Object.freeze({
  maxBytes: MAX_MESSAGE_BYTES,
  maxDepth: 16,
  maxStringLength: 8 * 1024,
  maxArrayLength: 8 * 1024,
  maxKeys: 64,
});

/**
 * Limits on a job's `input` and a result's `output` (tensors, matrices) inside a message:
 * 8 levels deep (a tensor is `{inputs: {name: {dims, dtype, data}}}`, a matrix two), 16 keys
 * per object; size, strings and arrays as {@link WIRE_JSON_LIMITS}.
 */
export const PAYLOAD_VALUE_LIMITS: JsonLimits = Object.freeze({
  ...WIRE_JSON_LIMITS,
  maxDepth: 8,
  maxKeys: 16,
});

/** Opaque JSON (a job input, a result output) within {@link PAYLOAD_VALUE_LIMITS}. */
const payloadValue = z.unknown().superRefine((value, ctx) => {
  if (value === undefined) {
    ctx.addIssue({ code: "custom", message: "Required" });
    return;
  }
  try {
    checkBounded(value, PAYLOAD_VALUE_LIMITS);
  } catch (error) {
    if (!(error instanceof BoundedJsonError)) throw error;
    ctx.addIssue({ code: "custom", message: error.message, params: { bound: error.code } });
  }
});

// The rules of the wire's fields, used by the schemas and by the hot kinds' fast path below.
const ID_PATTERN = /^[A-Za-z0-9._:\-]+$/;
const MAX_ID_LENGTH = 128;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const U256_PATTERN = /^(0|[1-9][0-9]{0,77})$/;
const U256_LIMIT = 2n ** 256n;
const MAX_MS = 2 ** 52;
const MAX_REPUTATION = 1000;
const HARDWARE = ["cpu", "gpu"] as const;
const VERDICTS = ["valid", "invalid"] as const;
const PRIORITIES = ["low", "normal", "high"] as const;
const MAX_ATTEMPTS = 16;
const MAX_ASSIGNED_VERIFIERS = 64;
/** The chain's model hash of a builtin job: an ONNX job never names it. */
const ZERO_HASH = "0".repeat(64);

const id = z.string().min(1).max(MAX_ID_LENGTH).regex(ID_PATTERN, "must be an identifier");
const hash = z.string().regex(HASH_PATTERN, "must be a hex sha-256");
const u256 = z.string().regex(U256_PATTERN, "must be a decimal u256").transform((s) => BigInt(s))
  .refine((n) => n < U256_LIMIT, "must fit in u256");
const ms = z.number().int().nonnegative().max(MAX_MS);
const hardware = z.enum(HARDWARE);

const jobKind = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("builtin"), name: z.literal("matmul") }),
  // The zero hash is the chain's model hash of a builtin job: an ONNX job never names it.
  z.strictObject({
    type: z.literal("onnx"),
    modelHash: hash.refine((h) => h !== ZERO_HASH, "must not be the zero hash (a builtin's)"),
  }),
]);

const jobSpec = z.strictObject({
  kind: jobKind,
  inputCommitment: hash,
  input: payloadValue.optional(),
  requirements: z.strictObject({ hardware, minStake: u256 }),
  maxPrice: u256,
  bidWindowMs: ms.min(1),
  executionMs: ms.min(1),
  verificationMs: ms.min(1),
  maxAttempts: z.number().int().min(1).max(MAX_ATTEMPTS),
  // 0: an unverified job (the client takes the result without a quorum).
  verifierCount: z.number().int().min(0).max(MAX_VERIFIERS),
  priority: z.enum(PRIORITIES).optional(),
});

/** Schemas of every message, by topic. */
export const SCHEMAS = {
  [TOPICS.jobs]: z.strictObject({
    type: z.literal("job.announce"),
    jobId: id,
    owner: id,
    attempt: z.number().int().min(1).max(MAX_ATTEMPTS),
    bidWindowEndsAt: ms,
    spec: jobSpec,
    /** Sampled to 1 in 2^sample capable workers (`sampling.ts`); absent: every one. */
    sample: z.number().int().min(1).max(MAX_SAMPLE_BITS).optional(),
  }),
  [TOPICS.bids]: z.discriminatedUnion("type", [
    z.strictObject({
      type: z.literal("bid.submit"),
      bidId: id,
      jobId: id,
      worker: id,
      price: u256,
      etaMs: ms,
      stake: u256,
      reputation: z.number().int().min(0).max(MAX_REPUTATION),
      hardware,
    }),
    z.strictObject({ type: z.literal("bid.withdraw"), bidId: id, jobId: id, worker: id }),
  ]),
  [TOPICS.assignments]: z.strictObject({
    type: z.literal("job.assign"),
    jobId: id,
    worker: id,
    bidId: id,
    price: u256,
    verifiers: z.array(id).max(MAX_ASSIGNED_VERIFIERS),
    /**
     * To a chosen verifier (absent to the winner, which bid on it): the job's attempt and spec,
     * all it needs to re-run the job, checked against the chain's escrow before it is kept.
     */
    attempt: z.number().int().min(1).max(MAX_ATTEMPTS).optional(),
    spec: jobSpec.optional(),
  }),
  [TOPICS.results]: z.strictObject({
    type: z.literal("job.result"),
    jobId: id,
    worker: id,
    commitment: hash,
    output: payloadValue,
  }),
  [TOPICS.attestations]: z.strictObject({
    type: z.literal("job.attest"),
    jobId: id,
    verifier: id,
    verdict: z.enum(VERDICTS),
    commitment: hash,
    worker: id,
    claimed: hash,
  }),
  [TOPICS.capabilities]: z.strictObject({
    type: z.literal("node.capabilities"),
    node: id,
    roles: z.array(z.enum(["client", "worker", "verifier", "bootstrap"])).max(4),
    hardware,
    models: z.array(hash).max(256),
  }),
  [TOPICS.reputation]: z.strictObject({
    type: z.literal("node.reputation"),
    node: id,
    score: z.number().int().min(0).max(1000),
  }),
  [TOPICS.health]: z.strictObject({
    type: z.literal("node.health"),
    node: id,
    at: ms,
    openJobs: z.number().int().nonnegative(),
  }),
} as const;

/** The decoded message of a topic. */
export type MessageOf<T extends Topic> = z.output<(typeof SCHEMAS)[FamilyOf<T>]>;
/** The encodable message of a topic (amounts as `bigint`). */
export type OutgoingOf<T extends Topic> = z.output<(typeof SCHEMAS)[FamilyOf<T>]>;

/**
 * Why a message was refused at decode: a {@link BoundedJsonCode} (over a limit, or not JSON),
 * `unknown_topic`, `unknown_field` (a strict schema met a field it does not know),
 * `payload_bounds` (an input or output over {@link PAYLOAD_VALUE_LIMITS}), `wrong_shard` (an
 * announcement on a shard its job does not need) or `invalid` (any other schema violation).
 */
export type WireErrorCode =
  | BoundedJsonCode
  | "unknown_topic"
  | "unknown_field"
  | "payload_bounds"
  | "wrong_shard"
  | "invalid";

/** Bytes from the network that are not a valid message; `code` says why. */
export class WireError extends Error {
  override readonly name = "WireError";
  readonly topic: string;
  readonly code: WireErrorCode;
  constructor(topic: string, message: string, code: WireErrorCode = "invalid") {
    super(message);
    this.topic = topic;
    this.code = code;
  }
}

/** The code and a one-line description of the first issue of a failed zod parse. */
export function describeSchemaIssue(
  error: z.ZodError,
): { code: "unknown_field" | "payload_bounds" | "invalid"; detail: string } {
  const issue = error.issues[0];
  const where = issue?.path.length ? issue.path.join(".") : "(root)";
  if (issue?.code === "unrecognized_keys") {
    return {
      code: "unknown_field",
      detail: `${where}: unknown field ${issue.keys.map((k) => `"${k}"`).join(", ")}`,
    };
  }
  const bound = issue?.code === "custom" ? issue.params?.["bound"] : undefined;
  return {
    code: bound === undefined ? "invalid" : "payload_bounds",
    detail: `${where}: ${issue?.message ?? "invalid"}`,
  };
}

const encoder = new TextEncoder();

/** What {@link plainJson} returns for a value only `JSON.stringify`'s replacer path handles. */
const SLOW = Symbol("slow");

/** Nesting {@link plainJson} walks before it leaves a value to the replacer path. */
const PLAIN_JSON_DEPTH = 64;

/** `JSON.stringify`'s replacer of the wire: a `bigint` as its decimal string. */
function bigintAsString(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

/**
 * `value` with every `bigint` in it as its decimal string (copied where one is, shared where
 * none is), for a plain `JSON.stringify`: V8's fast path, where a replacer function takes its
 * slow one. {@link SLOW} for anything but plain objects, arrays and primitives (a `toJSON`, a
 * class instance, nesting past {@link PLAIN_JSON_DEPTH}, a cycle): those take the replacer, so
 * the bytes (and the errors) are the same as it gives in every case.
 */
function plainJson(value: unknown, depth: number): unknown {
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object" || value === null) return value;
  if (depth >= PLAIN_JSON_DEPTH) return SLOW;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return SLOW;
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const plain = plainJson(item, depth + 1);
      if (plain === SLOW) return SLOW;
      if (plain !== item) (copy ??= value.slice())[i] = plain;
    }
    return copy ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return SLOW;
  const record = value as Record<string, unknown>;
  if (typeof record["toJSON"] === "function") return SLOW;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    const item = record[key];
    const plain = plainJson(item, depth + 1);
    if (plain === SLOW) return SLOW;
    if (plain !== item) (copy ??= { ...record })[key] = plain;
  }
  return copy ?? value;
}

/**
 * Encodes a message for `topic`: JSON with `bigint` as decimal strings. The bytes are those of
 * `JSON.stringify(message, (k, v) => typeof v === "bigint" ? v.toString() : v)`, made without
 * the replacer where the message is plain data (`messages_test.ts` holds them equal).
 */
export function encodeMessage<T extends Topic>(topic: T, message: OutgoingOf<T>): Uint8Array {
  const plain = plainJson(message, 0);
  const bytes = encoder.encode(
    plain === SLOW ? JSON.stringify(message, bigintAsString) : JSON.stringify(plain),
  );
  if (bytes.byteLength > MAX_MESSAGE_BYTES) {
    throw new RangeError(
      `Cannot encode message for "${topic}": ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`,
    );
  }
  return bytes;
}

function isId(value: unknown): value is string {
  return typeof value === "string" && value.length >= 1 && value.length <= MAX_ID_LENGTH &&
    ID_PATTERN.test(value);
}

function isHash(value: unknown): value is string {
  return typeof value === "string" && HASH_PATTERN.test(value);
}

/** A u256 field's value, or undefined where the schema would refuse it. */
function u256Of(value: unknown): bigint | undefined {
  if (typeof value !== "string" || !U256_PATTERN.test(value)) return undefined;
  const n = BigInt(value);
  return n < U256_LIMIT ? n : undefined;
}

function isIntIn(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max;
}

/** Whether `value` is a job's input or a result's output within {@link PAYLOAD_VALUE_LIMITS}. */
function isPayloadValue(value: unknown): boolean {
  if (value === undefined) return false;
  try {
    checkBounded(value, PAYLOAD_VALUE_LIMITS);
    return true;
  } catch {
    return false;
  }
}

/** The number of keys of a parsed JSON object; -1 for anything else. */
function keyCount(json: unknown): number {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return -1;
  let n = 0;
  for (const _ in json) n++;
  return n;
}

/** `json` as an object (not an array) with exactly `keys` keys, or undefined. */
function objectWith(json: unknown, keys: number): Record<string, unknown> | undefined {
  return keyCount(json) === keys ? json as Record<string, unknown> : undefined;
}

/** What the job kind's schema gives for `json`, or undefined where the fast path leaves it. */
function fastKind(json: unknown): unknown {
  const m = objectWith(json, 2);
  if (m === undefined) return undefined;
  if (m["type"] === "builtin") {
    return m["name"] === "matmul" ? { type: "builtin", name: "matmul" } : undefined;
  }
  const modelHash = m["modelHash"];
  if (m["type"] !== "onnx" || !isHash(modelHash) || modelHash === ZERO_HASH) return undefined;
  return { type: "onnx", modelHash };
}

/**
 * What the job spec's schema gives for `json` (an announcement's spec, or an assignment's to a
 * chosen verifier), or undefined where the fast path leaves it to the schema.
 */
function fastSpec(json: unknown): unknown {
  if (typeof json !== "object" || json === null) return undefined;
  const m = json as Record<string, unknown>;
  const input = m["input"];
  const priority = m["priority"];
  const keys = 9 + (input === undefined ? 0 : 1) + (priority === undefined ? 0 : 1);
  const r = objectWith(m["requirements"], 2);
  const kind = fastKind(m["kind"]);
  const maxPrice = u256Of(m["maxPrice"]);
  const minStake = r === undefined ? undefined : u256Of(r["minStake"]);
  if (
    keyCount(json) !== keys || kind === undefined || minStake === undefined ||
    maxPrice === undefined || !isHash(m["inputCommitment"]) ||
    (r!["hardware"] !== HARDWARE[0] && r!["hardware"] !== HARDWARE[1]) ||
    !isIntIn(m["bidWindowMs"], 1, MAX_MS) || !isIntIn(m["executionMs"], 1, MAX_MS) ||
    !isIntIn(m["verificationMs"], 1, MAX_MS) || !isIntIn(m["maxAttempts"], 1, MAX_ATTEMPTS) ||
    !isIntIn(m["verifierCount"], 0, MAX_VERIFIERS) ||
    (input !== undefined && !isPayloadValue(input)) ||
    (priority !== undefined && priority !== PRIORITIES[0] && priority !== PRIORITIES[1] &&
      priority !== PRIORITIES[2])
  ) return undefined;
  // Built in the schema's key order, the optional fields only where they are given.
  const spec: Record<string, unknown> = { kind, inputCommitment: m["inputCommitment"] };
  if (input !== undefined) spec["input"] = input;
  spec["requirements"] = { hardware: r!["hardware"], minStake };
  spec["maxPrice"] = maxPrice;
  spec["bidWindowMs"] = m["bidWindowMs"];
  spec["executionMs"] = m["executionMs"];
  spec["verificationMs"] = m["verificationMs"];
  spec["maxAttempts"] = m["maxAttempts"];
  spec["verifierCount"] = m["verifierCount"];
  if (priority !== undefined) spec["priority"] = priority;
  return spec;
}

/**
 * The hot kinds' fast path (a client's bids, results and attestations: all 12 of a job's inbound
 * messages; a worker's announcements, a winner's and a chosen verifier's assignments): the output the topic's schema gives for a well-formed message, built without zod,
 * or undefined for anything it does not take at a glance, which the schema then decodes (or
 * refuses with its error): the same output and the same errors either way. Each check is the
 * schema's rule, from the same constants; `messages_test.ts` runs both on the same inputs.
 */
const FAST_DECODERS: { readonly [family: string]: (json: unknown) => unknown } = {
  [TOPICS.jobs]: (json) => {
    if (typeof json !== "object" || json === null) return undefined;
    const m = json as Record<string, unknown>;
    const sample = m["sample"];
    const spec = fastSpec(m["spec"]);
    if (
      m["type"] !== "job.announce" || keyCount(json) !== (sample === undefined ? 6 : 7) ||
      spec === undefined || !isId(m["jobId"]) || !isId(m["owner"]) ||
      !isIntIn(m["attempt"], 1, MAX_ATTEMPTS) || !isIntIn(m["bidWindowEndsAt"], 0, MAX_MS) ||
      (sample !== undefined && !isIntIn(sample, 1, MAX_SAMPLE_BITS))
    ) return undefined;
    const message: Record<string, unknown> = {
      type: "job.announce",
      jobId: m["jobId"],
      owner: m["owner"],
      attempt: m["attempt"],
      bidWindowEndsAt: m["bidWindowEndsAt"],
      spec,
    };
    if (sample !== undefined) message["sample"] = sample;
    return message;
  },
  [TOPICS.assignments]: (json) => {
    if (typeof json !== "object" || json === null) return undefined;
    const m = json as Record<string, unknown>;
    const attempt = m["attempt"];
    const given = m["spec"];
    const spec = given === undefined ? undefined : fastSpec(given);
    const verifiers = m["verifiers"];
    const price = u256Of(m["price"]);
    if (
      m["type"] !== "job.assign" ||
      keyCount(json) !== 6 + (attempt === undefined ? 0 : 1) + (given === undefined ? 0 : 1) ||
      price === undefined || (given !== undefined && spec === undefined) ||
      !isId(m["jobId"]) || !isId(m["worker"]) || !isId(m["bidId"]) ||
      (attempt !== undefined && !isIntIn(attempt, 1, MAX_ATTEMPTS)) ||
      !Array.isArray(verifiers) || verifiers.length > MAX_ASSIGNED_VERIFIERS
    ) return undefined;
    for (const verifier of verifiers) if (!isId(verifier)) return undefined;
    const message: Record<string, unknown> = {
      type: "job.assign",
      jobId: m["jobId"],
      worker: m["worker"],
      bidId: m["bidId"],
      price,
      verifiers: verifiers.slice(),
    };
    if (attempt !== undefined) message["attempt"] = attempt;
    if (spec !== undefined) message["spec"] = spec;
    return message;
  },
  [TOPICS.bids]: (json) => {
    if (typeof json !== "object" || json === null) return undefined;
    const m = json as Record<string, unknown>;
    if (m["type"] === "bid.submit") {
      if (keyCount(json) !== 9) return undefined;
      const price = u256Of(m["price"]);
      const stake = u256Of(m["stake"]);
      if (
        price === undefined || stake === undefined || !isId(m["bidId"]) || !isId(m["jobId"]) ||
        !isId(m["worker"]) || !isIntIn(m["etaMs"], 0, MAX_MS) ||
        !isIntIn(m["reputation"], 0, MAX_REPUTATION) ||
        (m["hardware"] !== HARDWARE[0] && m["hardware"] !== HARDWARE[1])
      ) return undefined;
      return {
        type: "bid.submit",
        bidId: m["bidId"],
        jobId: m["jobId"],
        worker: m["worker"],
        price,
        etaMs: m["etaMs"],
        stake,
        reputation: m["reputation"],
        hardware: m["hardware"],
      };
    }
    if (m["type"] === "bid.withdraw") {
      if (keyCount(json) !== 4 || !isId(m["bidId"]) || !isId(m["jobId"]) || !isId(m["worker"])) {
        return undefined;
      }
      return { type: "bid.withdraw", bidId: m["bidId"], jobId: m["jobId"], worker: m["worker"] };
    }
    return undefined;
  },
  [TOPICS.results]: (json) => {
    if (typeof json !== "object" || json === null) return undefined;
    const m = json as Record<string, unknown>;
    if (
      m["type"] !== "job.result" || keyCount(json) !== 5 || !isId(m["jobId"]) ||
      !isId(m["worker"]) || !isHash(m["commitment"]) || !isPayloadValue(m["output"])
    ) return undefined;
    return {
      type: "job.result",
      jobId: m["jobId"],
      worker: m["worker"],
      commitment: m["commitment"],
      output: m["output"],
    };
  },
  [TOPICS.attestations]: (json) => {
    if (typeof json !== "object" || json === null) return undefined;
    const m = json as Record<string, unknown>;
    if (
      m["type"] !== "job.attest" || keyCount(json) !== 7 || !isId(m["jobId"]) ||
      !isId(m["verifier"]) || (m["verdict"] !== VERDICTS[0] && m["verdict"] !== VERDICTS[1]) ||
      !isHash(m["commitment"]) || !isId(m["worker"]) || !isHash(m["claimed"])
    ) return undefined;
    return {
      type: "job.attest",
      jobId: m["jobId"],
      verifier: m["verifier"],
      verdict: m["verdict"],
      commitment: m["commitment"],
      worker: m["worker"],
      claimed: m["claimed"],
    };
  },
};

/**
 * Decodes and validates bytes received on `topic`: bounded JSON ({@link WIRE_JSON_LIMITS},
 * checked before parsing), then the topic's strict schema. Throws {@link WireError} with a
 * code naming the fault.
 */
export function decodeMessage<T extends Topic>(topic: T, bytes: Uint8Array): MessageOf<T> {
  const family = topicFamily(topic);
  const schema = (SCHEMAS as Record<string, z.ZodType | undefined>)[family];
  if (schema === undefined) throw new WireError(topic, `Unknown topic "${topic}"`, "unknown_topic");
  let json: unknown;
  try {
    json = decodeBoundedJson(bytes, WIRE_JSON_LIMITS);
  } catch (error) {
    if (!(error instanceof BoundedJsonError)) throw error;
    throw new WireError(topic, `Invalid message on "${topic}": ${error.message}`, error.code);
  }
  let decoded = FAST_DECODERS[family]?.(json);
  if (decoded === undefined) {
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const { code, detail } = describeSchemaIssue(parsed.error);
      throw new WireError(topic, `Invalid message on "${topic}": ${detail}`, code);
    }
    decoded = parsed.data;
  }
  if (topic !== TOPICS.jobs && family === TOPICS.jobs) {
    // A job announced on a shard (or a sample) it does not need reaches workers that cannot run
    // it, or that are not asked to bid on it.
    const message = decoded as MessageOf<typeof TOPICS.jobs>;
    const bits = message.sample ?? 0;
    const part = shardPartOf(topic);
    const expected = part === "watch" && bits > 0
      ? announcementTopic(shardOf(message.spec), "watch")
      : announcementTopicsOf(message.spec, message.jobId, message.attempt, bits)[0]!;
    if (expected !== topic) {
      throw new WireError(
        topic,
        `Invalid message on "${topic}": the job belongs on "${expected}"`,
        "wrong_shard",
      );
    }
  }
  return decoded as MessageOf<T>;
}
