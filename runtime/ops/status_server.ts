/**
 * The node's loopback HTTP status endpoint. JSON everywhere, with `bigint`s as decimal strings:
 *
 * - `GET /health`: the node's id, roles, peer, verifier and job counts (plus `extra()`).
 * - `GET /peers`: the peers the node tracks (state, score) and those connected now.
 * - `GET /jobs`: a summary of every job the node knows.
 * - `GET /jobs/:id`: one job's state and full context, or for a finished job whose actor was
 *   retired, `{ retired: true, summary }`; 404 when unknown.
 * - `POST /jobs`: submits a job (a client node only): `{ spec, jobId?, policy? }`, validated
 *   ({@link parseJobRequest}); answers 202 `{ jobId }`, 400 naming the bad field, or 409 when
 *   the node is not a client.
 *
 * It binds a loopback address only: it has no authentication, and `POST /jobs` spends escrow.
 *
 * ```ts ignore
 * import { serveStatus } from "./status_server.ts";
 *
 * const server = serveStatus(node, { port: 0 });
 * console.log(server.url); // http://127.0.0.1:PORT
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { RetiredJob } from "../../actors/tree.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { JobPolicy } from "../../machines/policies.ts";
import { BID_SELECTION_POLICIES, QUORUM_POLICIES } from "../../machines/policies.ts";
import type { JobSpec, NodeId, Role } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";
import type { JobRequest, JobSummary } from "../kernel/mod.ts";

/** What the server reads from a node (a {@link Node} satisfies it). */
export interface StatusSource {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  jobs(): JobSummary[];
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined;
  /** A finished job whose actor was retired, when the source keeps an archive. */
  retiredJob?(jobId: string): RetiredJob | undefined;
  peers(): { peer: NodeId; state: string; score: number }[];
  verifierPool(): NodeId[];
  submitJob(request: JobRequest): string;
}

/** Options of {@link serveStatus}. */
export interface StatusServerOptions {
  /** A loopback address. @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. @default 0 */
  readonly port?: number;
  /** Peers connected at the network layer (for `/peers` and `/health`). */
  readonly connected?: () => readonly NodeId[];
  /** More fields for `/health` (multiaddrs, network counters). */
  readonly extra?: () => Record<string, unknown>;
  /** Stops the server when aborted. */
  readonly signal?: AbortSignal;
}

/** A running status server. */
export interface StatusServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting requests and waits for those in flight. */
  shutdown(): Promise<void>;
}

/** A job request that failed validation; `key` names the field. */
export class JobRequestError extends Error {
  override readonly name = "JobRequestError";
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.key = key;
  }
}

const LOOPBACK = ["127.0.0.1", "::1", "localhost"];
const MAX_BODY_BYTES = 64 * 1024;

const amount = z.union([
  z.number().int("must be an integer").nonnegative("must not be negative").refine(
    Number.isSafeInteger,
    "must be a safe integer; write larger amounts as a decimal string",
  ),
  z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "must be a non-negative decimal integer"),
], { error: "must be a non-negative integer or a decimal string" }).transform((v) => BigInt(v));
const ms = z.number({ error: "must be a number of milliseconds" }).int("must be an integer").min(
  1,
  "must be at least 1",
).max(2 ** 31 - 1, "must be at most 2147483647");
const hash = z.string().regex(/^[0-9a-f]{64}$/, "must be a hex sha-256");

const specSchema = z.strictObject({
  kind: z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("builtin"), name: z.literal("matmul") }),
    z.strictObject({ type: z.literal("onnx"), modelHash: hash }),
  ], { error: 'must be {"type": "builtin", "name": "matmul"} or {"type": "onnx", "modelHash"}' }),
  inputCommitment: hash.optional(),
  input: z.unknown().optional(),
  requirements: z.strictObject({
    hardware: z.enum(["cpu", "gpu"], { error: "must be cpu or gpu" }).default("cpu"),
    minStake: amount.default(0n),
  }).default({ hardware: "cpu", minStake: 0n }),
  maxPrice: amount,
  bidWindowMs: ms.default(500),
  executionMs: ms.default(10_000),
  verificationMs: ms.default(10_000),
  maxAttempts: z.number().int("must be an integer").min(1, "must be in [1, 16]").max(
    16,
    "must be in [1, 16]",
  ).default(3),
  verifierCount: z.number().int("must be an integer").min(1, "must be in [1, 64]").max(
    64,
    "must be in [1, 64]",
  ).default(4),
});

const requestSchema = z.strictObject({
  spec: specSchema,
  jobId: z.string().min(1).max(100).regex(
    /^[A-Za-z0-9._\-]+$/,
    "must be 1 to 100 letters, digits, '.', '_' or '-'",
  ).optional(),
  policy: z.strictObject({
    bidSelection: z.enum(BID_SELECTION_POLICIES as [string, ...string[]], {
      error: `must be one of ${BID_SELECTION_POLICIES.join(", ")}`,
    }),
    quorum: z.enum(QUORUM_POLICIES as [string, ...string[]], {
      error: `must be one of ${QUORUM_POLICIES.join(", ")}`,
    }),
  }).optional(),
});

/**
 * Validates a job request as JSON gives it (amounts as integers or decimal strings). Fills in
 * defaults (cpu, min stake 0, bid window 500 ms, execution and verification 10 s, 3 attempts,
 * 4 verifiers) and the input commitment when only the input is given. Throws
 * {@link JobRequestError} naming the field.
 */
export function parseJobRequest(raw: unknown): JobRequest {
  const result = requestSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      const key = [...path, issue.keys[0] ?? ""].join(".");
      throw new JobRequestError(key, `Invalid job request "${key}": unknown key`);
    }
    const key = path.join(".");
    let value: unknown = raw;
    for (const part of path) {
      value = value !== null && typeof value === "object"
        ? (value as Record<string, unknown>)[part]
        : undefined;
    }
    const message = value === undefined
      ? "is required"
      : issue.code === "invalid_type" && issue.message.startsWith("Invalid input")
      ? `must be a ${issue.expected}`
      : issue.message;
    throw new JobRequestError(key, `Invalid job request "${key}": ${message}`);
  }
  const { spec, jobId, policy } = result.data;
  const { inputCommitment, input, ...rest } = spec;
  let commitment = inputCommitment;
  if (input !== undefined) {
    const actual = commitmentOf(input);
    if (commitment !== undefined && commitment !== actual) {
      throw new JobRequestError(
        "spec.inputCommitment",
        'Invalid job request "spec.inputCommitment": does not match the input',
      );
    }
    commitment = actual;
  }
  if (commitment === undefined) {
    throw new JobRequestError(
      "spec.inputCommitment",
      'Invalid job request "spec.inputCommitment": is required when no input is given',
    );
  }
  const full: JobSpec = {
    ...rest,
    inputCommitment: commitment,
    ...(input !== undefined ? { input } : {}),
  };
  return {
    spec: full,
    ...(jobId !== undefined ? { jobId } : {}),
    ...(policy !== undefined ? { policy: policy as JobPolicy } : {}),
  };
}

/** JSON with `bigint`s as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v);
}

function json(body: unknown, status = 200): Response {
  return new Response(toJson(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

function problem(status: number, error: string, key?: string): Response {
  return json({ error, ...(key !== undefined ? { key } : {}) }, status);
}

/** The request handler, without a listener (tests call it directly). */
export function statusHandler(
  node: StatusSource,
  options: Pick<StatusServerOptions, "connected" | "extra"> = {},
): (request: Request) => Promise<Response> {
  const started = Date.now();
  return async (request) => {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const jobMatch = /^\/jobs\/([^/]+)$/.exec(path);
    if (request.method === "GET") {
      if (path === "/health") {
        const jobs = node.jobs();
        return json({
          status: "ok",
          id: node.id,
          roles: node.roles,
          uptimeMs: Date.now() - started,
          peers: options.connected?.().length ?? node.peers().length,
          verifiers: node.verifierPool().length,
          jobs: { total: jobs.length, open: jobs.filter((j) => !j.done).length },
          ...options.extra?.(),
        });
      }
      if (path === "/peers") {
        return json({ connected: options.connected?.() ?? [], tracked: node.peers() });
      }
      if (path === "/jobs") return json(node.jobs());
      if (jobMatch) {
        const jobId = decodeURIComponent(jobMatch[1]!);
        const job = node.job(jobId);
        if (job !== undefined) {
          return json({ jobId, state: job.state, done: job.done, context: job.context });
        }
        const retired = node.retiredJob?.(jobId);
        if (retired !== undefined) {
          return json({ jobId, state: retired.state, done: true, retired: true, summary: retired });
        }
        return problem(404, `Unknown job "${jobId}"`);
      }
      return problem(404, `Not found: ${path}`);
    }
    if (request.method === "POST" && path === "/jobs") {
      if (!node.roles.includes("client")) {
        return problem(409, `Cannot submit a job on node "${node.id}": it is not a client`);
      }
      const length = Number(request.headers.get("content-length") ?? "0");
      if (length > MAX_BODY_BYTES) {
        return problem(413, `Job request too large: ${length} bytes exceeds ${MAX_BODY_BYTES}`);
      }
      const text = await request.text();
      if (text.length > MAX_BODY_BYTES) {
        return problem(413, `Job request too large: exceeds ${MAX_BODY_BYTES} bytes`);
      }
      let raw: unknown;
      try {
        raw = JSON.parse(text);
      } catch (error) {
        return problem(400, `Invalid job request: ${(error as Error).message}`);
      }
      let jobRequest: JobRequest;
      try {
        jobRequest = parseJobRequest(raw);
      } catch (error) {
        if (error instanceof JobRequestError) return problem(400, error.message, error.key);
        throw error;
      }
      if (
        jobRequest.jobId !== undefined &&
        (node.job(jobRequest.jobId) !== undefined ||
          node.retiredJob?.(jobRequest.jobId) !== undefined)
      ) {
        return problem(409, `Cannot submit job "${jobRequest.jobId}": the id is taken`);
      }
      try {
        const jobId = node.submitJob(jobRequest);
        return json({ jobId }, 202);
      } catch (error) {
        return problem(400, (error as Error).message);
      }
    }
    const allowed = path === "/jobs" ? "GET, POST" : "GET";
    return new Response(toJson({ error: `Method ${request.method} not allowed on ${path}` }), {
      status: 405,
      headers: { "content-type": "application/json; charset=utf-8", allow: allowed },
    });
  };
}

/** Serves the status endpoint on a loopback address. Throws `RangeError` for any other host. */
export function serveStatus(node: StatusSource, options: StatusServerOptions = {}): StatusServer {
  const host = options.host ?? "127.0.0.1";
  if (!LOOPBACK.includes(host)) {
    throw new RangeError(`Invalid status server host "${host}": must be a loopback address`);
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`Invalid status server port ${port}: must be in [0, 65535]`);
  }
  const handler = statusHandler(node, options);
  const server = Deno.serve({
    hostname: host,
    port,
    onListen: () => {},
    ...(options.signal ? { signal: options.signal } : {}),
  }, async (request) => {
    try {
      return await handler(request);
    } catch (error) {
      return problem(500, `Internal error: ${(error as Error).message}`);
    }
  });
  const address = server.addr as Deno.NetAddr;
  const shown = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${shown}:${address.port}`,
    port: address.port,
    shutdown: () => stopping ??= server.shutdown(),
  };
}
