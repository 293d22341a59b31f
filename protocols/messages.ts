/**
 * The wire: versioned topic names and one schema per message (zod). Amounts travel as decimal
 * strings and decode to `bigint`. {@link decodeMessage} is the only way bytes from a peer
 * become a typed message; anything else is a {@link WireError} naming what is wrong.
 *
 * @module
 */
import { z } from "zod";

/** Gossip topics, versioned: a breaking schema change gets a new topic. */
export const TOPICS = {
  jobs: "/ciro/jobs/1",
  bids: "/ciro/bids/1",
  assignments: "/ciro/assignments/1",
  results: "/ciro/results/1",
  // 2: an attestation names the worker and the commitment it judged.
  attestations: "/ciro/attestations/2",
  capabilities: "/ciro/capabilities/1",
  reputation: "/ciro/reputation/1",
  health: "/ciro/health/1",
} as const;

/** A topic name. */
export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

/** Largest message accepted on any topic, in bytes. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

const id = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:\-]+$/, "must be an identifier");
const hash = z.string().regex(/^[0-9a-f]{64}$/, "must be a hex sha-256");
const u256 = z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "must be a decimal u256").transform((s) =>
  BigInt(s)
).refine((n) => n < 2n ** 256n, "must fit in u256");
const ms = z.number().int().nonnegative().max(2 ** 52);
const hardware = z.enum(["cpu", "gpu"]);

const jobKind = z.discriminatedUnion("type", [
  z.object({ type: z.literal("builtin"), name: z.literal("matmul") }),
  z.object({ type: z.literal("onnx"), modelHash: hash }),
]);

const jobSpec = z.object({
  kind: jobKind,
  inputCommitment: hash,
  input: z.unknown().optional(),
  requirements: z.object({ hardware, minStake: u256 }),
  maxPrice: u256,
  bidWindowMs: ms.min(1),
  executionMs: ms.min(1),
  verificationMs: ms.min(1),
  maxAttempts: z.number().int().min(1).max(16),
  // 0: an unverified job (the client takes the result without a quorum).
  verifierCount: z.number().int().min(0).max(64),
});

/** Schemas of every message, by topic. */
export const SCHEMAS = {
  [TOPICS.jobs]: z.object({
    type: z.literal("job.announce"),
    jobId: id,
    owner: id,
    attempt: z.number().int().min(1).max(16),
    bidWindowEndsAt: ms,
    spec: jobSpec,
  }),
  [TOPICS.bids]: z.discriminatedUnion("type", [
    z.object({
      type: z.literal("bid.submit"),
      bidId: id,
      jobId: id,
      worker: id,
      price: u256,
      etaMs: ms,
      stake: u256,
      reputation: z.number().int().min(0).max(1000),
      hardware,
    }),
    z.object({ type: z.literal("bid.withdraw"), bidId: id, jobId: id, worker: id }),
  ]),
  [TOPICS.assignments]: z.object({
    type: z.literal("job.assign"),
    jobId: id,
    worker: id,
    bidId: id,
    price: u256,
    verifiers: z.array(id).max(64),
  }),
  [TOPICS.results]: z.object({
    type: z.literal("job.result"),
    jobId: id,
    worker: id,
    commitment: hash,
    output: z.unknown(),
  }),
  [TOPICS.attestations]: z.object({
    type: z.literal("job.attest"),
    jobId: id,
    verifier: id,
    verdict: z.enum(["valid", "invalid"]),
    commitment: hash,
    worker: id,
    claimed: hash,
  }),
  [TOPICS.capabilities]: z.object({
    type: z.literal("node.capabilities"),
    node: id,
    roles: z.array(z.enum(["client", "worker", "verifier", "bootstrap"])).max(4),
    hardware,
    models: z.array(hash).max(256),
  }),
  [TOPICS.reputation]: z.object({
    type: z.literal("node.reputation"),
    node: id,
    score: z.number().int().min(0).max(1000),
  }),
  [TOPICS.health]: z.object({
    type: z.literal("node.health"),
    node: id,
    at: ms,
    openJobs: z.number().int().nonnegative(),
  }),
} as const;

/** The decoded message of a topic. */
export type MessageOf<T extends Topic> = z.output<(typeof SCHEMAS)[T]>;
/** The encodable message of a topic (amounts as `bigint`). */
export type OutgoingOf<T extends Topic> = z.output<(typeof SCHEMAS)[T]>;

/** Bytes from the network that are not a valid message. */
export class WireError extends Error {
  override readonly name = "WireError";
  readonly topic: string;
  constructor(topic: string, message: string) {
    super(message);
    this.topic = topic;
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a message for `topic`: JSON with `bigint` as decimal strings. */
export function encodeMessage<T extends Topic>(topic: T, message: OutgoingOf<T>): Uint8Array {
  const bytes = encoder.encode(
    JSON.stringify(message, (_k, v) => typeof v === "bigint" ? v.toString() : v),
  );
  if (bytes.byteLength > MAX_MESSAGE_BYTES) {
    throw new RangeError(
      `Cannot encode message for "${topic}": ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`,
    );
  }
  return bytes;
}

/** Decodes and validates bytes received on `topic`; throws {@link WireError} naming the fault. */
export function decodeMessage<T extends Topic>(topic: T, bytes: Uint8Array): MessageOf<T> {
  const schema = (SCHEMAS as Record<string, z.ZodType | undefined>)[topic];
  if (schema === undefined) throw new WireError(topic, `Unknown topic "${topic}"`);
  if (bytes.byteLength > MAX_MESSAGE_BYTES) {
    throw new WireError(
      topic,
      `Message too large: ${bytes.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new WireError(topic, `Message is not UTF-8 JSON: ${(error as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join(".") : "(root)";
    throw new WireError(
      topic,
      `Invalid message on "${topic}": ${where}: ${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data as MessageOf<T>;
}
