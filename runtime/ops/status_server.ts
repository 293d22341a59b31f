/**
 * The node's loopback HTTP API, on the `hono` router. JSON everywhere, with `bigint`s as decimal
 * strings; errors are `{ error, key? }` with a sentence-case message.
 *
 * - `GET /health`: id, roles, uptime, peer, verifier and job counts, the worker's stake,
 *   reputation, earnings and capacity (when the node is a worker), plus `extra()`.
 * - `GET /peers`: peers connected now and tracked (state, score, the roles and hardware they
 *   announced, and the addresses they are connected on).
 * - `GET /jobs?state=a,b&owner=ID&limit=N&offset=M`: a page of job summaries, newest first:
 *   `{ total, offset, limit, next, jobs }` (`next` is the next page's offset or null).
 * - `GET /jobs/:id`: one job's state and full context, plus `market` (known workers, those whose
 *   hardware matches and, of those, the ones holding the minimum stake on chain; bids by status
 *   and refusal reason); for a finished job whose actor was
 *   retired, `{ retired: true, summary }`; 404 when unknown.
 * - `GET /jobs/:id/events`: server-sent events, one `phase`, `declined` or `slashed` event per
 *   {@link JobUpdate} (the path so far first), then `end` when the job is final.
 * - `GET /jobs/:id/output`: the verified output of a settled job, kept by commitment after its
 *   actor is retired ({@link OutputStore}); 409 before it settled, 410 when no longer kept.
 * - `DELETE /jobs/:id`: asks to cancel a job (its client only, before assignment): 202.
 * - `POST /jobs`: submits a job (a client node only): `{ spec, jobId?, policy? }`, validated
 *   ({@link parseJobRequest}); 202 `{ jobId }`, 400 naming the bad field, 409 when the node is
 *   not a client or the id is taken, 413 past the body limit (counted while the body streams).
 * - `GET /money`: the ledger's totals (escrowed, paid, fees, refunded, locked, staked,
 *   slashed, withdrawn, bonded).
 * - `GET /openapi.json`: this API as an OpenAPI 3.1 document ({@link openApiDocument}).
 * - `GET /metrics`: Prometheus text ({@link CockpitMetrics}).
 * - `GET /ui`: the dashboard (static HTML and JavaScript, with uPlot for the charts).
 *
 * Limits: a request body of 64 KiB (decoded by `decodeBoundedJson`: depth, string, array and
 * key limits scanned before parsing), 10 s to send it, 64 requests in flight at once (server-sent
 * event streams included; past it 503 with `retry-after`), and a malformed percent-encoding in
 * the path is a 400. The listener ({@link listenHttp}, on `node:http`) gives a request 5 s for
 * its headers (then 408 and the connection closed), closes a kept-alive connection idle for 5 s,
 * and keeps at most 128 connections open (past it, the oldest without a request in progress is
 * closed).
 *
 * It binds a loopback address only: it has no authentication, and `POST /jobs` spends escrow.
 *
 * ```ts ignore
 * import { serveStatus } from "./status_server.ts";
 *
 * const server = await serveStatus(node, { port: 0 });
 * console.log(server.url); // http://127.0.0.1:PORT
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import type { DeclineRecord } from "../../actors/declines.ts";
import type { RetiredJob } from "../../actors/tree.ts";
import type { LedgerTotals } from "../../chain/port.ts";
import { BoundedJsonError, decodeBoundedJson } from "../../protocols/bounded_json.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { HardwareClass, NodeId, Role } from "../../machines/types.ts";
import type { JobRequest, JobSummary } from "../kernel/mod.ts";
import { Cockpit } from "./cockpit.ts";
import { FINAL_STATES, type JobUpdate } from "./job_feed.ts";
import { JobRequestError, parseJobRequest } from "./job_request.ts";
import { JOBS_QUERY_SCHEMA, openApiDocument } from "./openapi.ts";
import { uiAsset } from "./ui/assets.ts";
import { type HttpListener, type HttpListenerStats, listenHttp } from "./http_server.ts";

export { JobRequestError, parseJobRequest } from "./job_request.ts";

/** What the server reads from a node (a `Node` satisfies it). */
export interface StatusSource {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  jobs(): JobSummary[];
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined;
  /** A finished job whose actor was retired, when the source keeps an archive. */
  retiredJob?(jobId: string): RetiredJob | undefined;
  /** Why this node took no part in a job it heard of (no actor: a compact record). */
  declined?(jobId: string): DeclineRecord | undefined;
  peers(): { peer: NodeId; state: string; score: number }[];
  verifierPool(): NodeId[];
  knownNodes?(): { id: NodeId; roles: readonly Role[]; hardware: HardwareClass }[];
  /** The ledger's money totals (for `/money`). */
  chainTotals?(): Promise<LedgerTotals>;
  submitJob(request: JobRequest): string;
  cancelJob(jobId: string): void;
  /** The node's inbox: a journal failure there stops the node (`/health` fails with it). */
  readonly inbox?: { readonly failure: Error | undefined };
  observe: Cockpit["source"]["observe"];
}

/** Limits of the server. */
export interface StatusLimits {
  /** Request body bytes. @default 65_536 */
  readonly maxBodyBytes?: number;
  /** Requests in flight at once, event streams included. @default 64 */
  readonly maxInFlight?: number;
  /** Time to receive a request body, ms. @default 10_000 */
  readonly bodyTimeoutMs?: number;
  /** Interval of the keep-alive comment on event streams, ms. @default 15_000 */
  readonly keepAliveMs?: number;
  /**
   * How long shutdown waits for requests in flight before it closes their connections, ms (a
   * client that never finishes sending would hold a graceful shutdown forever). @default 5_000
   */
  readonly shutdownGraceMs?: number;
  /** Time for a request's headers to arrive; past it a 408 and the connection closed, ms. @default 5_000 */
  readonly headersTimeoutMs?: number;
  /** Time a kept-alive connection may stay idle between requests, ms. @default 5_000 */
  readonly idleTimeoutMs?: number;
  /**
   * Connections open at once; past it the oldest one without a request in progress is closed
   * (or the new one, when every open one has a request in progress). @default 128
   */
  readonly maxConnections?: number;
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
  /** The remote addresses of each connected peer (for `/peers`). */
  readonly peerAddresses?: () => ReadonlyMap<NodeId, readonly string[]>;
  /** The node's cockpit (feed, outputs, metrics). @default one made here, closed at shutdown */
  readonly cockpit?: Cockpit;
  readonly limits?: StatusLimits;
  /** Stops the server when aborted. */
  readonly signal?: AbortSignal;
}

/** A running status server. */
export interface StatusServer {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  /** Connections open, accepted, evicted and refused. */
  stats(): HttpListenerStats;
  /** Stops accepting requests and waits for those in flight (up to the grace period). */
  shutdown(): Promise<void>;
}

const LOOPBACK = ["127.0.0.1", "::1", "localhost"];
const CANCELLABLE = ["announced", "bidding"];

/** JSON with `bigint`s as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v);
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(toJson(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function problem(status: number, error: string, key?: string): Response {
  return json({ error, ...(key !== undefined ? { key } : {}) }, status);
}

/** A query parameter that is not a valid value. */
function badQuery(key: string, message: string): Response {
  return problem(400, `Invalid query "${key}": ${message}`, key);
}

/** What `/jobs/:id` says about the market a job met: who could have bid, and what came of bids. */
/** Workers whose stake `/jobs/:id` reads from the chain, at most (the rest are not counted). */
const MAX_STAKE_READS = 64;

async function marketOf(node: StatusSource, cockpit: Cockpit, context: JobContext) {
  const known = node.knownNodes?.() ?? [];
  const workers = known.filter((n) => n.roles.includes("worker") && n.id !== node.id);
  const hardware = context.spec.requirements.hardware;
  const matching = workers.filter((w) => w.hardware === hardware);
  // Of those with the hardware, how many hold the job's minimum stake (read from the chain).
  const checked = matching.slice(0, MAX_STAKE_READS);
  const stakes = await Promise.all(checked.map((w) => cockpit.stakeOf(w.id)));
  const readable = stakes.filter((s): s is bigint => s !== undefined);
  const bids = Object.values(context.bids);
  const byStatus: Record<string, number> = {};
  const refused: Record<string, number> = {};
  for (const bid of bids) {
    byStatus[bid.status] = (byStatus[bid.status] ?? 0) + 1;
    if (bid.status === "rejected") {
      const reason = bid.reason ?? "unknown";
      refused[reason] = (refused[reason] ?? 0) + 1;
    }
  }
  return {
    knownWorkers: workers.length,
    matchingHardware: matching.length,
    /** Null when the chain could not be read. */
    matchingStake: readable.length === 0 && checked.length > 0
      ? null
      : readable.filter((stake) => stake >= context.spec.requirements.minStake).length,
    stakeChecked: readable.length,
    bids: byStatus,
    refused,
    declined: context.declined,
  };
}

/** The Hono app: the request handler without a listener (tests call `app.fetch`). */
export function statusApp(
  node: StatusSource,
  cockpit: Cockpit,
  options: Pick<
    StatusServerOptions,
    "connected" | "extra" | "peerAddresses" | "limits" | "signal"
  > = {},
): Hono {
  const started = Date.now();
  const maxBody = options.limits?.maxBodyBytes ?? 64 * 1024;
  const maxInFlight = options.limits?.maxInFlight ?? 64;
  const bodyTimeoutMs = options.limits?.bodyTimeoutMs ?? 10_000;
  const keepAliveMs = options.limits?.keepAliveMs ?? 15_000;
  let inFlight = 0;
  const app = new Hono({ strict: false });

  app.onError((error) =>
    error.name === "TimeoutError"
      ? problem(408, `Request body too slow: not received within ${bodyTimeoutMs} ms`)
      : problem(500, `Internal error: ${error.message}`)
  );
  app.notFound((c) => problem(404, `Not found: ${new URL(c.req.url).pathname}`));

  // Bounds first: a full server answers 503 without doing anything else.
  app.use("*", async (c, next) => {
    if (inFlight >= maxInFlight) {
      return c.newResponse(
        toJson({ error: `Too many requests in flight: at most ${maxInFlight}` }),
        503,
        { "content-type": "application/json; charset=utf-8", "retry-after": "1" },
      );
    }
    inFlight++;
    let held = false;
    c.set(
      "hold" as never,
      (() => {
        held = true;
        return () => inFlight--;
      }) as never,
    );
    try {
      await next();
    } finally {
      if (!held) inFlight--;
    }
  });
  app.use("*", async (c, next) => {
    const raw = new URL(c.req.url).pathname;
    try {
      decodeURIComponent(raw);
    } catch {
      return problem(400, `Malformed URI: ${raw.slice(0, 200)}`);
    }
    await next();
  });

  app.get("/health", async (c) => {
    const jobs = node.jobs();
    const worker = node.roles.includes("worker") ? await cockpit.workerStatus() : undefined;
    const failure = node.inbox?.failure;
    return c.newResponse(
      toJson({
        status: failure === undefined ? "ok" : "failing",
        ...(failure === undefined ? {} : { reason: failure.message }),
        id: node.id,
        roles: node.roles,
        uptimeMs: Date.now() - started,
        peers: options.connected?.().length ?? node.peers().length,
        verifiers: node.verifierPool().length,
        jobs: { total: jobs.length, open: jobs.filter((j) => !j.done).length },
        ...(worker !== undefined ? { worker } : {}),
        ...options.extra?.(),
      }),
      failure === undefined ? 200 : 503,
      { "content-type": "application/json; charset=utf-8" },
    );
  });

  app.get("/peers", () => {
    const known = new Map((node.knownNodes?.() ?? []).map((n) => [n.id, n]));
    const addresses = options.peerAddresses?.() ?? new Map<NodeId, readonly string[]>();
    const tracked = node.peers().map((p) => {
      const k = known.get(p.peer);
      return {
        ...p,
        roles: k?.roles ?? [],
        hardware: k?.hardware ?? null,
        addresses: addresses.get(p.peer) ?? [],
      };
    });
    // The nodes whose capabilities this node heard: a peer gets an actor (tracked) only once this
    // node deals with it (runtime/kernel/ingress.ts, quiet peers).
    const heard = [...known.values()].filter((n) => n.id !== node.id).map((n) => ({
      peer: n.id,
      roles: n.roles,
      hardware: n.hardware,
      addresses: addresses.get(n.id) ?? [],
    }));
    return json({ connected: options.connected?.() ?? [], tracked, heard });
  });

  app.get("/money", async () => {
    if (node.chainTotals === undefined) return problem(404, "Not found: /money");
    return json(await node.chainTotals());
  });

  app.get("/metrics", async () => {
    return new Response(await cockpit.metrics.text(), {
      headers: { "content-type": cockpit.metrics.contentType },
    });
  });

  app.get("/openapi.json", () => json(openApiDocument()));

  app.get("/jobs", (c) => {
    const parsed = JOBS_QUERY_SCHEMA.safeParse(c.req.query());
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      if (issue.code === "unrecognized_keys") {
        return badQuery(
          issue.keys[0] ?? "",
          "unknown parameter; use state, owner, limit or offset",
        );
      }
      return badQuery(String(issue.path[0] ?? ""), issue.message);
    }
    const query = parsed.data;
    const { limit, offset } = query;
    const states = query.state === undefined ? undefined : query.state.split(",");
    const jobs = node.jobs().filter((j) =>
      (states === undefined || states.includes(j.state)) &&
      (query.owner === undefined || j.owner === query.owner)
    );
    const start = (j: JobSummary) => j.path[0]?.at ?? 0;
    const ordered = jobs.map((j, i) => ({ j, i })).sort((a, b) =>
      start(b.j) - start(a.j) || b.i - a.i
    ).map(({ j }) => j);
    const page = ordered.slice(offset, offset + limit);
    return json({
      total: ordered.length,
      offset,
      limit,
      next: offset + limit < ordered.length ? offset + limit : null,
      jobs: page,
    });
  });

  app.get("/jobs/:id", async (c) => {
    const jobId = c.req.param("id")!;
    const job = node.job(jobId);
    if (job !== undefined) {
      return json({
        jobId,
        state: job.state,
        done: job.done,
        context: job.context,
        market: await marketOf(node, cockpit, job.context),
      });
    }
    const retired = node.retiredJob?.(jobId);
    // A job this node declined has no actor here: its record says why (and the chain, its end).
    const declined = node.declined?.(jobId);
    if (declined !== undefined) {
      const { spec: _s, results: _r, ...record } = declined;
      const chain = retired === undefined ? {} : { chainState: retired.state };
      return json({ jobId, state: "declined", done: true, declined: record, ...chain });
    }
    if (retired !== undefined) {
      return json({ jobId, state: retired.state, done: true, retired: true, summary: retired });
    }
    return problem(404, `Unknown job "${jobId}"`);
  });

  app.get("/jobs/:id/output", (c) => {
    const jobId = c.req.param("id")!;
    const job = node.job(jobId);
    const retired = job === undefined ? node.retiredJob?.(jobId) : undefined;
    if (job === undefined && retired === undefined) return problem(404, `Unknown job "${jobId}"`);
    const state = job?.state ?? retired!.state;
    if (state !== "settled") {
      return problem(409, `Job "${jobId}" has no verified output: it is ${state}`);
    }
    const live = job !== undefined && job.context.result !== null
      ? job.context.outputs[job.context.result.worker]
      : undefined;
    if (live !== undefined && live.commitment === job!.context.result!.commitment) {
      return json({ jobId, commitment: live.commitment, output: live.value });
    }
    const kept = cockpit.outputs.byJob(jobId);
    if (kept !== undefined) {
      return json({ jobId, commitment: kept.commitment, output: kept.value });
    }
    return problem(
      410,
      `Output of job "${jobId}" is no longer kept: commitment ${
        retired?.commitment ?? job?.context.result?.commitment ?? "unknown"
      }`,
    );
  });

  app.get("/jobs/:id/events", (c) => {
    const jobId = c.req.param("id")!;
    const job = node.job(jobId);
    const retired = job === undefined ? node.retiredJob?.(jobId) : undefined;
    if (job === undefined && retired === undefined) return problem(404, `Unknown job "${jobId}"`);
    const release = (c.get("hold" as never) as () => () => void)();
    return streamSSE(c, async (stream) => {
      let id = 0;
      const queue: JobUpdate[] = [];
      let wake: () => void = () => {};
      let closed = false;
      const unsubscribe = cockpit.feed.subscribe((u) => {
        if (u.jobId !== jobId) return;
        queue.push(u);
        wake();
      });
      const stop = () => {
        closed = true;
        wake();
      };
      stream.onAbort(stop);
      options.signal?.addEventListener("abort", stop, { once: true });
      if (options.signal?.aborted) stop();
      const keepAlive = setInterval(() => {
        stream.write(": keep-alive\n\n").catch(() => {});
      }, keepAliveMs);
      try {
        if (retired !== undefined) {
          for (const entry of retired.path) {
            await stream.writeSSE({
              event: "phase",
              id: String(++id),
              data: toJson({ type: "phase", jobId, state: entry.state, at: entry.at }),
            });
          }
          await stream.writeSSE({ event: "end", data: toJson({ jobId, state: retired.state }) });
          return;
        }
        const history = cockpit.feed.history(jobId);
        let final = job!.done;
        for (const update of history) {
          await stream.writeSSE({ event: update.type, id: String(++id), data: toJson(update) });
        }
        while (!final && !closed) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => wake = resolve);
            continue;
          }
          const update = queue.shift()!;
          // The history already held what happened before we subscribed.
          if (history.some((h) => sameUpdate(h, update))) continue;
          await stream.writeSSE({ event: update.type, id: String(++id), data: toJson(update) });
          if (update.type === "phase" && FINAL_STATES.includes(update.state)) final = true;
        }
        if (!closed) {
          const now = node.job(jobId)?.state ?? node.retiredJob?.(jobId)?.state ?? "unknown";
          await stream.writeSSE({ event: "end", data: toJson({ jobId, state: now }) });
        }
      } finally {
        clearInterval(keepAlive);
        options.signal?.removeEventListener("abort", stop);
        unsubscribe();
        release();
      }
    });
  });

  app.delete("/jobs/:id", (c) => {
    const jobId = c.req.param("id")!;
    const job = node.job(jobId);
    if (job === undefined) {
      if (node.retiredJob?.(jobId) !== undefined) {
        return problem(409, `Cannot cancel job "${jobId}": it is finished`);
      }
      return problem(404, `Unknown job "${jobId}"`);
    }
    if (job.context.owner !== node.id) {
      return problem(409, `Cannot cancel job "${jobId}": only its client can`);
    }
    if (!CANCELLABLE.includes(job.state)) {
      return problem(409, `Cannot cancel job "${jobId}": it is ${job.state}`);
    }
    node.cancelJob(jobId);
    return json({ jobId, cancelRequested: true }, 202);
  });

  app.post(
    "/jobs",
    async (_c, next) => {
      if (!node.roles.includes("client")) {
        return problem(409, `Cannot submit a job on node "${node.id}": it is not a client`);
      }
      await next();
    },
    // The body must arrive within the deadline, however it is sent (the limit below reads it).
    async (c, next) => {
      const body = c.req.raw.body;
      if (body !== null) {
        c.req.raw = new Request(c.req.raw, { body: withDeadline(body, bodyTimeoutMs) });
      }
      await next();
    },
    bodyLimit({
      maxSize: maxBody,
      onError: () => problem(413, `Job request too large: exceeds ${maxBody} bytes`),
    }),
    async (c) => {
      const text = await c.req.text();
      let raw: unknown;
      try {
        // Depth, string, array and key limits are scanned before anything is parsed.
        raw = decodeBoundedJson(text, { maxBytes: maxBody });
      } catch (error) {
        if (!(error instanceof BoundedJsonError)) throw error;
        return json({ error: `Invalid job request: ${error.message}`, code: error.code }, 400);
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
        // Not journaled, so not acknowledged: the node's fault, not the request's.
        if ((error as Error).name === "JournalAppendError") {
          return problem(503, (error as Error).message);
        }
        return problem(400, (error as Error).message);
      }
    },
  );

  const ui = (c: Context) => {
    const path = new URL(c.req.url).pathname;
    // Relative links in the page need the trailing slash.
    if (path === "/ui") return c.redirect("/ui/");
    const name = path.slice("/ui/".length) || "index.html";
    const asset = uiAsset(name);
    if (asset === undefined) return problem(404, `Not found: ${path}`);
    return new Response(asset.body, {
      headers: { "content-type": asset.type, "cache-control": "no-cache" },
    });
  };
  app.get("/ui", ui);
  app.get("/ui/*", ui);

  // Known paths with a method they do not take.
  const allowed: [RegExp, string][] = [
    [/^\/jobs\/?$/, "GET, POST"],
    [/^\/jobs\/[^/]+\/?$/, "GET, DELETE"],
    [/^\/(health|peers|money|metrics|openapi\.json|jobs\/[^/]+\/(events|output))\/?$/, "GET"],
  ];
  app.all("*", (c) => {
    const path = new URL(c.req.url).pathname;
    const allow = allowed.find(([pattern]) => pattern.test(path))?.[1];
    if (allow === undefined) return problem(404, `Not found: ${path}`);
    return json({ error: `Method ${c.req.method} not allowed on ${path}` }, 405, { allow });
  });
  return app;
}

function sameUpdate(a: JobUpdate, b: JobUpdate): boolean {
  return a.type === b.type && a.state === b.state && a.at === b.at && a.reason === b.reason;
}

/** `body`, failing with a `TimeoutError` if it has not all arrived within `ms`. */
function withDeadline(body: ReadableStream<Uint8Array>, ms: number): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const deadline = AbortSignal.timeout(ms);
  const expired = new Promise<never>((_, reject) => {
    const fail = () => reject(new DOMException(`Not received within ${ms} ms`, "TimeoutError"));
    if (deadline.aborted) fail();
    else deadline.addEventListener("abort", fail, { once: true });
  });
  expired.catch(() => {}); // observed by pull(); never an unhandled rejection
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await Promise.race([reader.read(), expired]);
        if (chunk.done) controller.close();
        else controller.enqueue(chunk.value);
      } catch (error) {
        reader.cancel(error).catch(() => {});
        controller.error(error);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

/** Serves the status endpoint on a loopback address. Throws `RangeError` for any other host. */
export async function serveStatus(
  node: StatusSource,
  options: StatusServerOptions = {},
): Promise<StatusServer> {
  const host = options.host ?? "127.0.0.1";
  if (!LOOPBACK.includes(host)) {
    throw new RangeError(`Invalid status server host "${host}": must be a loopback address`);
  }
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`Invalid status server port ${port}: must be in [0, 65535]`);
  }
  const limits = options.limits ?? {};
  const headersTimeoutMs = limits.headersTimeoutMs ?? 5_000;
  // Event streams end when the server stops, so that shutdown does not wait on them.
  const closing = new AbortController();
  const cockpit = options.cockpit ?? new Cockpit(node);
  const app = statusApp(node, cockpit, { ...options, signal: closing.signal });
  let listener: HttpListener;
  try {
    listener = await listenHttp(app.fetch, {
      host,
      port,
      headersTimeoutMs,
      idleTimeoutMs: limits.idleTimeoutMs ?? 5_000,
      // The body has its own deadline (bodyTimeoutMs) once the headers are in.
      requestTimeoutMs: headersTimeoutMs + (limits.bodyTimeoutMs ?? 10_000),
      maxConnections: limits.maxConnections ?? 128,
      shutdownGraceMs: limits.shutdownGraceMs ?? 5_000,
    });
  } catch (error) {
    if (options.cockpit === undefined) cockpit.close();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      closing.abort();
      await listener.shutdown();
      if (options.cockpit === undefined) cockpit.close();
    })();
  options.signal?.addEventListener("abort", () => void shutdown(), { once: true });
  if (options.signal?.aborted) void shutdown();
  return { url: listener.url, port: listener.port, stats: () => listener.stats(), shutdown };
}
