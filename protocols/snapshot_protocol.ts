/**
 * Snapshot on join: `/ciro/snapshot/1.0.0`. Gossip only carries what is published after a
 * node subscribes, so a joining node asks about a third of the peers it knows (at least one)
 * for the open jobs and bids they hold, and merges the answers. Successive requests go round
 * robin through the peers, so a node that asks again hears from others. Answers are validated
 * with the same zod schemas as gossip (amounts as decimal strings on the wire); a peer whose
 * answer does not validate counts as failed and its answer is dropped whole.
 *
 * Works over any {@link NetworkPort} (the libp2p host or the in-process network).
 *
 * ```ts ignore
 * serveSnapshots(host, () => ({ jobs: openJobs(), bids: openBids() }));
 * const snapshot = await requestSnapshots(host, { signal: AbortSignal.timeout(5_000) });
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { NodeId } from "../machines/types.ts";
import { BoundedJsonError, decodeBoundedJson, type JsonLimits } from "./bounded_json.ts";
import {
  describeSchemaIssue,
  type MessageOf,
  SCHEMAS,
  TOPICS,
  WIRE_JSON_LIMITS,
} from "./messages.ts";
import type { NetworkPort } from "./network_port.ts";

/** The protocol id. */
export const SNAPSHOT_PROTOCOL = "/ciro/snapshot/1.0.0";

/** Most jobs and bids one snapshot may carry. */
export const MAX_SNAPSHOT_JOBS = 10_000;
export const MAX_SNAPSHOT_BIDS = 50_000;

/** What a snapshot holds: open job announcements and bids, as they travel on gossip. */
export interface SnapshotData {
  readonly jobs: readonly MessageOf<typeof TOPICS.jobs>[];
  readonly bids: readonly MessageOf<typeof TOPICS.bids>[];
}

/** The merged answer of {@link requestSnapshots}, with who was asked and who failed. */
export interface SnapshotResult extends SnapshotData {
  readonly asked: readonly NodeId[];
  readonly failed: readonly NodeId[];
}

/**
 * Limits on the JSON of a snapshot answer: 8 MiB (the libp2p host's largest response), arrays
 * up to {@link MAX_SNAPSHOT_BIDS}, two levels deeper than a gossip message (the answer object
 * and its array); strings and keys as {@link WIRE_JSON_LIMITS}.
 */
export const SNAPSHOT_JSON_LIMITS: JsonLimits = Object.freeze({
  ...WIRE_JSON_LIMITS,
  maxBytes: 8 * 1024 * 1024,
  maxDepth: WIRE_JSON_LIMITS.maxDepth + 2,
  maxArrayLength: MAX_SNAPSHOT_BIDS,
});

/** The schema of a snapshot answer (the gossip schemas of `/ciro/jobs/1` and `/ciro/bids/1`). */
export const snapshotSchema = z.strictObject({
  jobs: z.array(SCHEMAS[TOPICS.jobs]).max(MAX_SNAPSHOT_JOBS),
  bids: z.array(SCHEMAS[TOPICS.bids]).max(MAX_SNAPSHOT_BIDS),
});

/** Why a snapshot answer or request was refused. */
export type SnapshotErrorCode =
  | BoundedJsonError["code"]
  | "unknown_field"
  | "payload_bounds"
  | "invalid";

/** A snapshot answer (or request) that is not valid; `code` says why. */
export class SnapshotError extends Error {
  override readonly name = "SnapshotError";
  readonly code: SnapshotErrorCode;
  constructor(message: string, code: SnapshotErrorCode = "invalid") {
    super(message);
    this.code = code;
  }
}

const encoder = new TextEncoder();

/** Encodes a snapshot for the wire: JSON, `bigint` as decimal strings. */
export function encodeSnapshot(data: SnapshotData): Uint8Array {
  return encoder.encode(
    JSON.stringify(
      { jobs: data.jobs, bids: data.bids },
      (_key, value) => typeof value === "bigint" ? value.toString() : value,
    ),
  );
}

/**
 * Decodes and validates a snapshot: bounded JSON ({@link SNAPSHOT_JSON_LIMITS}, checked before
 * parsing), then the strict schema; throws {@link SnapshotError} with a code naming the fault.
 */
export function decodeSnapshot(bytes: Uint8Array): SnapshotData {
  let json: unknown;
  try {
    json = decodeBoundedJson(bytes, SNAPSHOT_JSON_LIMITS);
  } catch (error) {
    if (!(error instanceof BoundedJsonError)) throw error;
    throw new SnapshotError(`Invalid snapshot: ${error.message}`, error.code);
  }
  const parsed = snapshotSchema.safeParse(json);
  if (!parsed.success) {
    const { code, detail } = describeSchemaIssue(parsed.error);
    throw new SnapshotError(`Invalid snapshot: ${detail}`, code);
  }
  return parsed.data as SnapshotData;
}

const REQUEST_LIMITS = { maxBytes: 64, maxDepth: 1, maxKeys: 1 } as const;

/** Checks a snapshot request: the empty object `{}` (64 bytes at most, no field known yet). */
export function decodeSnapshotRequest(bytes: Uint8Array): void {
  let json: unknown;
  try {
    json = decodeBoundedJson(bytes, REQUEST_LIMITS);
  } catch (error) {
    if (!(error instanceof BoundedJsonError)) throw error;
    throw new SnapshotError(`Invalid snapshot request: ${error.message}`, error.code);
  }
  const parsed = z.strictObject({}).safeParse(json);
  if (!parsed.success) {
    const { code, detail } = describeSchemaIssue(parsed.error);
    throw new SnapshotError(`Invalid snapshot request: ${detail}`, code);
  }
}

/**
 * Merges snapshots: jobs deduplicated by `jobId` (the highest `attempt` wins), bids by `bidId`
 * (a withdrawal wins over the submission it withdraws).
 */
export function mergeSnapshots(snapshots: readonly SnapshotData[]): SnapshotData {
  const jobs = new Map<string, MessageOf<typeof TOPICS.jobs>>();
  const bids = new Map<string, MessageOf<typeof TOPICS.bids>>();
  for (const snapshot of snapshots) {
    for (const job of snapshot.jobs) {
      const known = jobs.get(job.jobId);
      if (known === undefined || job.attempt > known.attempt) jobs.set(job.jobId, job);
    }
    for (const bid of snapshot.bids) {
      const known = bids.get(bid.bidId);
      if (known === undefined || (bid.type === "bid.withdraw" && known.type !== "bid.withdraw")) {
        bids.set(bid.bidId, bid);
      }
    }
  }
  return { jobs: [...jobs.values()], bids: [...bids.values()] };
}

/**
 * Answers snapshot requests with what `provider` returns at the time of the request. The
 * provider's data is validated before it leaves, so a node never serves what peers reject.
 */
export function serveSnapshots(host: NetworkPort, provider: () => SnapshotData): void {
  host.handle(SNAPSHOT_PROTOCOL, (request) => {
    decodeSnapshotRequest(request);
    const data = provider();
    const bytes = encodeSnapshot(data);
    decodeSnapshot(bytes);
    return Promise.resolve(bytes);
  });
}

/** Options of {@link requestSnapshots}. */
export interface RequestSnapshotsOptions {
  /** Share of the connected peers to ask; at least one peer is asked. @default 1/3 */
  readonly fraction?: number;
  /** Ends the requests still running; their peers count as failed. */
  readonly signal?: AbortSignal;
}

const cursors = new WeakMap<NetworkPort, number>();

/**
 * Asks `ceil(peers × fraction)` connected peers (at least one; round robin across calls) for
 * their snapshot, in parallel, and merges the valid answers. Resolves with an empty snapshot
 * when there is no peer.
 */
export async function requestSnapshots(
  host: NetworkPort,
  options: RequestSnapshotsOptions = {},
): Promise<SnapshotResult> {
  const fraction = options.fraction ?? 1 / 3;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new RangeError(`Cannot request snapshots: fraction must be in (0, 1], got ${fraction}`);
  }
  options.signal?.throwIfAborted();
  const peers = host.peers().sort();
  if (peers.length === 0) return { jobs: [], bids: [], asked: [], failed: [] };
  const count = Math.max(1, Math.ceil(peers.length * fraction));
  const start = (cursors.get(host) ?? 0) % peers.length;
  cursors.set(host, start + count);
  const asked = Array.from(
    { length: Math.min(count, peers.length) },
    (_, i) => peers[(start + i) % peers.length]!,
  );
  const request = encoder.encode("{}");
  const answers = await Promise.allSettled(asked.map(async (peer) => {
    const bytes = await host.request(
      peer,
      SNAPSHOT_PROTOCOL,
      request,
      options.signal ? { signal: options.signal } : {},
    );
    return decodeSnapshot(bytes);
  }));
  const snapshots: SnapshotData[] = [];
  const failed: NodeId[] = [];
  answers.forEach((answer, i) => {
    if (answer.status === "fulfilled") snapshots.push(answer.value);
    else failed.push(asked[i]!);
  });
  return { ...mergeSnapshots(snapshots), asked, failed };
}
