/**
 * An HTTP/1.1 listener for a fetch handler (a Hono app's `fetch`) with the bounds `Deno.serve`
 * cannot set: a deadline for a request's headers, an idle timeout between requests on a kept-alive
 * connection, a deadline for the whole request, and a cap on open connections.
 *
 * It serves through `node:http` (Deno's implementation parses with llhttp and enforces
 * `headersTimeout`, `requestTimeout` and `keepAliveTimeout` like Node's: a client too slow with its
 * headers gets a 408 and its connection closed), with `@hono/node-server` translating between
 * `node:http` and the fetch API (streamed bodies both ways; the request's signal aborts when the
 * client goes away).
 *
 * The connection cap: past `maxConnections`, the oldest connection with no request in progress
 * (one still sending its headers, or idle between requests) is closed to make room, so connections
 * that hold a slot without asking for anything cannot lock honest clients out; only when every
 * open connection has a request in progress is the newcomer closed instead.
 *
 * ```ts ignore
 * import { listenHttp } from "./http_server.ts";
 *
 * const server = await listenHttp(() => new Response("ok"), { headersTimeoutMs: 2_000 });
 * console.log(server.url); // http://127.0.0.1:PORT
 * await server.shutdown();
 * ```
 *
 * @module
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";

/** Options of {@link listenHttp}. */
export interface HttpListenOptions {
  /** The address to bind. @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port. @default 0 */
  readonly port?: number;
  /** Time for a request's headers to arrive, from its first byte or the connection's start, ms. @default 5_000 */
  readonly headersTimeoutMs?: number;
  /** Time a kept-alive connection may stay idle between requests, ms. @default 5_000 */
  readonly idleTimeoutMs?: number;
  /** Time for a whole request (headers and body) to arrive, ms. @default 15_000 */
  readonly requestTimeoutMs?: number;
  /** Connections open at once; past it the oldest one without a request in progress is closed. @default 128 */
  readonly maxConnections?: number;
  /**
   * How long shutdown waits for requests in progress before it closes their connections, ms.
   * @default 5_000
   */
  readonly shutdownGraceMs?: number;
}

/** Counters of an {@link HttpListener}. */
export interface HttpListenerStats {
  /** Connections open now. */
  readonly open: number;
  /** Connections accepted since start. */
  readonly accepted: number;
  /** Connections without a request in progress closed to make room for a new one. */
  readonly evicted: number;
  /** New connections closed at once because every open one had a request in progress. */
  readonly refused: number;
}

/** A running listener. */
export interface HttpListener {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  stats(): HttpListenerStats;
  /**
   * Stops accepting connections, waits up to the grace period for requests in progress, then
   * closes every connection.
   */
  shutdown(): Promise<void>;
}

/** An error binding the listener (the port taken, an address not local). */
export class HttpListenError extends Error {
  override readonly name = "HttpListenError";
  readonly code: string;
  constructor(message: string, code: string) {
    super(message);
    this.code = code;
  }
}

function positive(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid HTTP listener ${name}: must be a positive integer, got ${value}`);
  }
  return value;
}

/** Serves `handler` over HTTP/1.1 with header, idle and request deadlines and a connection cap. */
export async function listenHttp(
  handler: (request: Request) => Response | Promise<Response>,
  options: HttpListenOptions = {},
): Promise<HttpListener> {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`Invalid HTTP listener port ${port}: must be in [0, 65535]`);
  }
  const headersTimeoutMs = positive("headersTimeoutMs", options.headersTimeoutMs ?? 5_000);
  const idleTimeoutMs = positive("idleTimeoutMs", options.idleTimeoutMs ?? 5_000);
  const requestTimeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs ?? 15_000);
  const maxConnections = positive("maxConnections", options.maxConnections ?? 128);
  const graceMs = options.shutdownGraceMs ?? 5_000;
  if (requestTimeoutMs < headersTimeoutMs) {
    throw new RangeError(
      `Invalid HTTP listener requestTimeoutMs ${requestTimeoutMs}: must be at least headersTimeoutMs (${headersTimeoutMs})`,
    );
  }

  // Requests in progress per open connection; the map's order is the connections' age.
  const open = new Map<Socket, { busy: number }>();
  let accepted = 0;
  let evicted = 0;
  let refused = 0;
  let active = 0;

  // The adapter hands over a lazy request object that Deno's own `Request` does not accept as
  // one (`new Request(request, init)` throws), so the handler gets a standard one.
  const standard = (request: Request): Request =>
    new Request(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: request.signal,
      duplex: "half",
    } as RequestInit);
  const listener = getRequestListener((request) => handler(standard(request)), {
    overrideGlobalObjects: false,
  });
  const server = createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: idleTimeoutMs,
    // How often the deadlines above are checked: a tenth of the shortest, at least 10 ms.
    connectionsCheckingInterval: Math.max(
      10,
      Math.floor(Math.min(headersTimeoutMs, idleTimeoutMs) / 10),
    ),
  }, listener);

  server.on("connection", (socket: Socket) => {
    accepted++;
    if (open.size >= maxConnections) {
      let victim: Socket | undefined;
      for (const [s, state] of open) {
        if (state.busy === 0) {
          victim = s;
          break;
        }
      }
      if (victim === undefined) {
        refused++;
        socket.destroy();
        return;
      }
      evicted++;
      open.delete(victim);
      victim.destroy();
    }
    const state = { busy: 0 };
    open.set(socket, state);
    socket.on("close", () => open.delete(socket));
  });
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    active++;
    const state = open.get(request.socket as Socket);
    if (state !== undefined) state.busy++;
    response.on("close", () => {
      active--;
      if (state !== undefined) state.busy--;
    });
  });

  await new Promise<void>((resolve, reject) => {
    const fail = (error: Error & { code?: string }) => {
      reject(
        new HttpListenError(
          `Cannot listen on ${host}:${port}: ${error.message}`,
          error.code ?? "listen_failed",
        ),
      );
    };
    server.once("error", fail);
    server.listen(port, host, () => {
      server.off("error", fail);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new HttpListenError(`Cannot listen on ${host}:${port}: no address`, "listen_failed");
  }
  const shown = address.address.includes(":") ? `[${address.address}]` : address.address;
  let stopping: Promise<void> | undefined;
  return {
    url: `http://${shown}:${address.port}`,
    port: address.port,
    stats: () => ({ open: open.size, accepted, evicted, refused }),
    shutdown: () =>
      stopping ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        // Idle connections go now; requests in progress may finish within the grace period.
        for (const [socket, state] of open) if (state.busy === 0) socket.destroy();
        const deadline = Date.now() + graceMs;
        while (active > 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        for (const socket of open.keys()) socket.destroy();
        open.clear();
        await closed;
      })(),
  };
}
