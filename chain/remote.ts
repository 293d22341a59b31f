/**
 * A {@link ChainPort} served over a byte stream: the chain in another process.
 *
 * A node that talks to an EVM or Starknet node does its chain's work elsewhere; with the local
 * ledger every node process executes its own transactions. {@link serveChain} puts a ledger (any
 * factory of ports) behind a stream, a child process's stdin and stdout for instance, and
 * {@link RemoteChain} hands out ports that forward each call to it, so that the client's process
 * pays only for encoding its calls and decoding the answers and events, as with a chain node.
 *
 * The stream carries lines of JSON (`bigint` as `{ "$bigint": "<decimal>" }`), written at most
 * once per microtask turn in each direction:
 *
 * - the server's first line: `{ "hello": "ciro-chain/1", "methods": [...] }`;
 * - a call: `{ "id": 1, "a": "<account>", "m": "<method>", "p": [args] }`, answered by
 *   `{ "id": 1, "ok": value }` or `{ "id": 1, "err": { "name", "code"?, "message" } }`;
 * - a subscription: `{ "s": 1, "a": "<account>", "from": cursor?, "pollMs": n? }`, whose events
 *   come as `{ "s": 1, "e": [events] }` (or `{ "s": 1, "err": ... }` if its first read fails);
 *   `{ "u": 1 }` ends it. The server reads each subscription's events with the port's
 *   `eventsSince`: right after the answers to the calls it served (what they committed goes out
 *   with them, not a poll later: the client and the chain work at once instead of in turn), and
 *   every `pollMs` (default 25 ms) for what others wrote;
 * - the server's own figures, where it serves them: `{ "id": 1, "stats": true }`, answered as a
 *   call (the benchmark's chain process tells its CPU time so).
 *
 * Bounds, so that no client's line stops the server or its connection: a line is at most
 * {@link MAX_LINE_BYTES}; a tagged bigint at most {@link MAX_BIGINT_DIGITS} digits (a longer one
 * refuses its line, with its id; on the client, an answer holding one rejects its call alone); `eventsSince` at most {@link MAX_EVENTS_LIMIT} events a call;
 * a subscription polls every {@link MIN_POLL_MS} ms at the most often, and a connection holds at
 * most {@link MAX_SUBSCRIPTIONS} (another is refused, `{ "s": n, "err": ... }`). An answer that
 * cannot be sent (it cannot be encoded, or is longer than a line) answers its call `rpc_error`
 * saying why; an event batch too long for a line goes out in halves.
 *
 * Group commit: where the factory can group transactions (`LocalLedger.group`), the calls of
 * each chunk the server reads run in one group (one SQLite transaction), and every answer of the
 * chunk goes out only after the group committed; if it did not, each of its calls is answered
 * with why (`rpc_error`), whatever the ledger had said. A crash of the server before a commit
 * loses the chunk's transactions and sends none of their answers, as a chain node loses a block
 * it had not finalized. A line the ledger refuses (an account it does not take, a closed
 * ledger) is refused alone, with its id (`rpc_error`, saying why); the calls around it run once
 * and are answered with what they gave. A group that cannot begin (another process holds the
 * file's write lock past the ledger's busy timeout, a closed ledger) runs none of its chunk's
 * calls, then or later: each is answered `rpc_error`, "Cannot begin a group of transactions".
 * A subscription a chunk opens reads its first events after the group ended, so it is handed
 * only what committed.
 *
 * A subscriber's `interest` is a function and does not cross the stream: a remote port hands
 * over every event (`filtersEvents` is false) and the node filters, as with the EVM adapter.
 * An aborted call rejects at once; the transaction it sent may still be included, as on a chain.
 *
 * There is no authentication: whoever holds the stream acts as any account it names (the
 * benchmark's market acts as its 1,000 workers that way). Serve it only to a process you started
 * (a child's pipes), never on a socket others can reach; a real chain node signs transactions.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { NodeId } from "../machines/types.ts";
import {
  type ChainCallOptions,
  type ChainCursor,
  ChainError,
  type ChainErrorCode,
  type ChainEvent,
  type ChainPort,
  type SubscribeOptions,
} from "./port.ts";

/** The protocol's name and version, in the server's first line. */
export const REMOTE_CHAIN_PROTOCOL = "ciro-chain/1";

/** The longest line either side accepts, bytes (a call's arguments, an answer, an event batch). */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * The largest `limit` the server takes for `eventsSince`: a call asking for more is refused
 * (10,000 of the ledger's events make a line of a few MB, well under {@link MAX_LINE_BYTES}).
 */
export const MAX_EVENTS_LIMIT = 10_000;

/** The shortest poll interval of a served subscription, ms: a shorter one would busy-poll the ledger. */
export const MIN_POLL_MS = 5;

/** The subscriptions one connection may hold open at once; the server refuses another. */
export const MAX_SUBSCRIPTIONS = 1_024;

/**
 * The most decimal digits a tagged bigint may hold on either side (a u256 has 78): a longer one
 * refuses its line (turning millions of digits into a bigint takes seconds).
 */
export const MAX_BIGINT_DIGITS = 100;

/** The port methods that are transactions or reads: everything but `subscribe` and `close`. */
const CALLS = [
  "submitJob",
  "assignWorker",
  "revokeAssignment",
  "submitResult",
  "recordVerification",
  "reportFailure",
  "registerKey",
  "accountPublicKey",
  "signAttestation",
  "submitAttestations",
  "reportDoubleSigning",
  "releasePayment",
  "refund",
  "slash",
  "stake",
  "requestUnstake",
  "withdraw",
  "stakeOf",
  "escrowOf",
  "reputationOf",
  "eventsSince",
  "totals",
] as const;

type CallName = typeof CALLS[number];
const CALL_NAMES: ReadonlySet<string> = new Set(CALLS);

/** A duplex byte stream: a child process's stdout and stdin, a socket. */
export interface ByteStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
}

/** The ports a server hands out: one per account, as `LocalLedger.as` does. */
export interface PortFactory {
  as(account: NodeId): ChainPort;
  /**
   * Runs `work` with the transactions its ports' calls make meanwhile committed together, and
   * throws if that commit fails (as `LocalLedger.group` does). Where a factory has it,
   * {@link serveChain} runs the calls of each chunk it reads in one group and answers them only
   * after the group returned: with the error it threw, if it did.
   */
  group?<T>(work: () => T): T;
}

const BIGINT_TAG = "$bigint";
const logger = getLogger(["ciro", "chain", "remote"]);

/**
 * `value` with every `bigint` tagged, for a plain (fast) `JSON.stringify`: only the objects and
 * arrays that hold one are copied (an answer or an event without a bigint is not).
 */
function tag(value: unknown): unknown {
  if (typeof value === "bigint") return { [BIGINT_TAG]: value.toString() };
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item !== "bigint" && (typeof item !== "object" || item === null)) continue;
      const tagged = tag(item);
      if (tagged !== item) (copy ??= value.slice())[i] = tagged;
    }
    return copy ?? value;
  }
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    const item = record[key];
    if (typeof item !== "bigint" && (typeof item !== "object" || item === null)) continue;
    const tagged = tag(item);
    if (tagged !== item) (copy ??= { ...record })[key] = tagged;
  }
  return copy ?? record;
}

/** Why a line that is JSON is refused all the same (a tagged bigint too long). */
class RefusedLineError extends Error {
  override readonly name = "RefusedLineError";
  readonly code = "refused_line";
}

/**
 * Turns tagged bigints back, in place (walking only into objects and arrays); throws a
 * {@link RefusedLineError} for a tag of more than {@link MAX_BIGINT_DIGITS} digits.
 */
function untag(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      if (typeof item === "object" && item !== null) value[i] = untag(item);
    }
    return value;
  }
  const record = value as Record<string, unknown>;
  const tagged = record[BIGINT_TAG];
  if (typeof tagged === "string" && /^-?\d+$/.test(tagged) && Object.keys(record).length === 1) {
    const digits = tagged.length - (tagged.startsWith("-") ? 1 : 0);
    if (digits > MAX_BIGINT_DIGITS) {
      throw new RefusedLineError(
        `a bigint has more than ${MAX_BIGINT_DIGITS} digits: ${digits} digits`,
      );
    }
    return BigInt(tagged);
  }
  for (const key in record) {
    const item = record[key];
    if (typeof item === "object" && item !== null) record[key] = untag(item);
  }
  return record;
}

/**
 * Writes lines to a stream, coalesced: the lines queued in one turn go out in one write after it,
 * and while a write is under way the lines queued meanwhile wait for it and go out together (one
 * system call for many calls or events under load). A failed write is reported once to
 * `onError`; later lines are dropped.
 */
class LineWriter {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #encoder = new TextEncoder();
  readonly #onError: (error: unknown) => void;
  #pending: string[] = [];
  #scheduled = false;
  #writing = false;
  #failed = false;

  constructor(writable: WritableStream<Uint8Array>, onError: (error: unknown) => void) {
    this.#writer = writable.getWriter();
    this.#onError = onError;
  }

  /**
   * Queues `value` as a line; throws a `RangeError`, queuing nothing, if it cannot be encoded
   * (a cycle, a string longer than JSON.stringify can make) or is longer than
   * {@link MAX_LINE_BYTES} (the other side would refuse it).
   */
  line(value: unknown): void {
    if (this.#failed) return;
    this.#pending.push(this.#encode(value));
    if (this.#scheduled || this.#writing) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #encode(value: unknown): string {
    let text: string;
    try {
      text = JSON.stringify(tag(value));
    } catch (error) {
      throw new RangeError(`Cannot encode a line: ${(error as Error).message}`, { cause: error });
    }
    // A UTF-16 unit is 1 to 3 bytes of UTF-8 (a pair of them 4): the bytes are counted only
    // where the units do not settle it.
    if (text.length * 3 > MAX_LINE_BYTES) {
      const over = text.length > MAX_LINE_BYTES ||
        this.#encoder.encode(text).length > MAX_LINE_BYTES;
      if (over) {
        throw new RangeError(
          `Cannot send a line longer than ${MAX_LINE_BYTES} bytes: ${text.length} characters`,
        );
      }
    }
    return text;
  }

  #flush(): void {
    if (this.#failed || this.#writing || this.#pending.length === 0) return;
    const text = this.#pending.join("\n") + "\n";
    this.#pending = [];
    this.#writing = true;
    this.#writer.write(this.#encoder.encode(text)).then(
      () => {
        this.#writing = false;
        this.#flush();
      },
      (error) => this.#fail(error),
    );
  }

  #fail(error: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#onError(error);
  }

  /**
   * Writes what is queued and closes the stream; resolves without waiting for a reader that
   * never reads (a peer that is gone).
   */
  close(): Promise<void> {
    if (!this.#failed && this.#pending.length > 0) {
      const text = this.#pending.join("\n") + "\n";
      this.#pending = [];
      this.#writer.write(this.#encoder.encode(text)).catch(() => {});
    }
    this.#failed = true;
    this.#writer.close().catch(() => {});
    return Promise.resolve();
  }
}

/**
 * Reads lines of JSON from a stream and hands each parsed value to `onLine`; a line that is not
 * JSON, or longer than {@link MAX_LINE_BYTES}, goes to `onBad` with why, and so does a line that
 * is JSON but refused (a bigint of more than {@link MAX_BIGINT_DIGITS} digits), with its parsed
 * value (whose id its refusal answers). Resolves at the stream's end.
 */
async function readLines(
  readable: ReadableStream<Uint8Array>,
  onLine: (value: unknown) => void,
  onBad: (why: string, line?: unknown) => void,
  eachChunk?: (work: () => void) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  // After a line refused as too long, whose rest is dropped up to its end (not read as a line).
  let skipping = false;
  for await (const chunk of readable) {
    let text = decoder.decode(chunk, { stream: true });
    if (skipping) {
      const end = text.indexOf("\n");
      if (end < 0) continue;
      text = text.slice(end + 1);
      skipping = false;
    }
    buffered += text;
    // A chunk without a line's end completes none: nothing to hand over or to group.
    if (eachChunk === undefined || !chunk.includes(10)) {
      buffered = takeLines(buffered, onLine, onBad);
    } else eachChunk(() => buffered = takeLines(buffered, onLine, onBad));
    if (buffered.length > MAX_LINE_BYTES) {
      onBad(`a line is longer than ${MAX_LINE_BYTES} bytes`);
      buffered = "";
      skipping = true;
    }
  }
}

/** Hands each whole line of `buffered` over (see {@link readLines}); returns what is left. */
function takeLines(
  buffered: string,
  onLine: (value: unknown) => void,
  onBad: (why: string, line?: unknown) => void,
): string {
  let start = 0;
  for (let end = buffered.indexOf("\n"); end >= 0; end = buffered.indexOf("\n", start)) {
    const text = buffered.slice(start, end);
    start = end + 1;
    if (text.length === 0) continue;
    // However the stream cut it: a whole line in one chunk is held to the bound as well.
    if (text.length > MAX_LINE_BYTES) {
      onBad(`a line is longer than ${MAX_LINE_BYTES} bytes`);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      onBad(`a line is not JSON: ${(error as Error).message}`);
      continue;
    }
    // Only a line that holds a tagged bigint is walked (answers mostly do not).
    if (text.includes(BIGINT_TAG)) {
      try {
        value = untag(value);
      } catch (error) {
        if (!(error instanceof RefusedLineError)) throw error;
        onBad(error.message, value);
        continue;
      }
    }
    onLine(value);
  }
  return buffered.slice(start);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An error as it crosses the stream. */
interface WireError {
  readonly name: string;
  readonly code?: string;
  readonly message: string;
}

function toWire(error: unknown): WireError {
  if (error instanceof ChainError) {
    return { name: error.name, code: error.code, message: error.message };
  }
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: "Error", message: String(error) };
}

function fromWire(error: unknown): Error {
  const e = isRecord(error) ? error : {};
  const message = typeof e.message === "string" ? e.message : "The chain server failed";
  if (e.name === "ChainError" && typeof e.code === "string") {
    return new ChainError(e.code as ChainErrorCode, message);
  }
  const out = e.name === "RangeError"
    ? new RangeError(message)
    : e.name === "TypeError"
    ? new TypeError(message)
    : new Error(message);
  if (typeof e.name === "string" && out.name !== e.name) out.name = e.name;
  return out;
}

/** One chunk's group, as {@link serveChain} serves it. */
interface Chunk {
  /** Why the group did not commit, if it did not. */
  failed?: Error;
  /** The subscriptions the chunk opened: their first read waits for the group's end. */
  readonly feeds: Feed[];
  /** Why the group could not begin, if it could not: each call of the chunk is refused so. */
  unable?: ChainError;
}

/** Options of {@link serveChain}. */
export interface ServeChainOptions {
  /**
   * The methods served (the optional ones only if the factory's ports have them).
   * @default every method of {@link ChainPort} but `subscribe` and `close`
   */
  readonly methods?: readonly string[];
  /** Told of each refused line (not JSON, unknown method, bad fields), with why. */
  readonly onRefused?: (why: string) => void;
  /** The server's own figures, answered to a `stats` request (refused without it). */
  readonly stats?: () => unknown;
}

/**
 * Serves `ports` on `stream` until the stream ends (the client closed it), then stops every
 * subscription it opened. Each account's port is opened on its first use and kept.
 */
export async function serveChain(
  ports: PortFactory,
  stream: ByteStream,
  options: ServeChainOptions = {},
): Promise<void> {
  const methods = new Set((options.methods ?? CALLS).filter((m) => CALL_NAMES.has(m)));
  const refused = options.onRefused ?? (() => {});
  // The calls of one chunk run in one group where the factory groups (group commit); each
  // answer waits for the group's end, and a group that did not commit answers its calls with
  // why, whatever they gave. The subscriptions a chunk opens read their first events after the
  // group ends: what it wrote is not theirs to see before it commits.
  let chunk: Chunk | undefined;
  const group = ports.group;
  const eachChunk = group === undefined ? undefined : (work: () => void) => {
    const turn: Chunk = { feeds: [] };
    chunk = turn;
    // What `work` throws is told apart from a failed commit: the group commits what ran before
    // it (those calls are answered with what they gave) and the server stops with the error.
    // `onLine` refuses each line's own errors, so this is only a defect of the server's.
    let thrown: { error: unknown } | undefined;
    let began = false;
    const run = () => {
      try {
        work();
      } catch (error) {
        thrown = { error };
      }
    };
    try {
      group.call(ports, () => {
        began = true;
        run();
      });
    } catch (error) {
      const why = error instanceof Error ? error : new Error(String(error));
      if (began) {
        turn.failed = why;
        logger.error("The chain could not commit the calls of one read: {error}", { error });
      } else {
        // The group did not begin (another process holds the write lock, a closed ledger): the
        // chunk's lines are handled all the same, each call refused with why and not run, so
        // that none runs later with another chunk's lines either.
        turn.unable = new ChainError(
          "rpc_error",
          `Cannot begin a group of transactions: ${why.message}`,
          { cause: error },
        );
        logger.error("The chain could not begin a group for the calls of one read: {error}", {
          error,
        });
        run();
      }
    } finally {
      chunk = undefined;
    }
    if (turn.feeds.length > 0) {
      // After the answers of the chunk's calls, as `readFeeds`.
      queueMicrotask(() => {
        for (const feed of turn.feeds) feed.read();
      });
    }
    if (thrown !== undefined) throw thrown.error;
  };
  let broken = false;
  const out = new LineWriter(stream.writable, () => broken = true);
  const opened = new Map<NodeId, ChainPort>();
  const subscriptions = new Map<number, Feed>();
  // After the answers to the calls of one turn, each feed reads what they committed (once).
  let reading = false;
  const readFeeds = () => {
    if (reading) return;
    reading = true;
    queueMicrotask(() => {
      reading = false;
      for (const feed of subscriptions.values()) feed.read();
    });
  };
  const portOf = (account: NodeId) => {
    let port = opened.get(account);
    if (port === undefined) {
      port = ports.as(account);
      opened.set(account, port);
    }
    return port;
  };
  const tell = (why: string) => {
    try {
      refused(why);
    } catch (error) {
      logger.error("The onRefused callback threw on {why}: {error}", { why, error });
    }
  };
  const refuse = (id: unknown, why: string) => {
    tell(why);
    if (typeof id === "number") {
      out.line({
        id,
        err: toWire(new ChainError("rpc_error", `Refused by the chain server: ${why}`)),
      });
    }
  };
  // A line read but refused before it is served (a bigint too long): answered by its id, or by
  // its subscription's number.
  const refuseRead = (why: string, line?: unknown) => {
    if (isRecord(line) && typeof line.id !== "number" && typeof line.s === "number") {
      tell(why);
      const error = new ChainError("rpc_error", `Refused by the chain server: ${why}`);
      return out.line({ s: line.s, err: toWire(error) });
    }
    refuse(isRecord(line) ? line.id : undefined, why);
  };
  // An answer sent, or if it cannot be (it cannot be encoded, or is longer than a line may be),
  // the call answered with why: the answer is lost, not the server nor the client's connection.
  const answer = (id: number, method: string, line: { ok: unknown } | { err: WireError }) => {
    try {
      out.line({ id, ...line });
    } catch (error) {
      const why = (error as Error).message;
      logger.error("The answer to call {id} ({method}) cannot be sent: {why}", { id, method, why });
      try {
        const err = new ChainError("rpc_error", `Cannot send the answer to ${method}: ${why}`);
        out.line({ id, err: toWire(err) });
      } catch (again) {
        logger.error("Nor can why: {error}", { error: again });
      }
    }
  };
  // A batch of a subscription's events sent, in halves where it is too long for one line; an
  // event that cannot be sent alone ends the subscription with why (rather than skipping it).
  const sendEvents = (sub: number, events: ChainEvent[]): void => {
    try {
      out.line({ s: sub, e: events });
    } catch (error) {
      if (events.length > 1) {
        const half = Math.ceil(events.length / 2);
        sendEvents(sub, events.slice(0, half));
        if (subscriptions.has(sub)) sendEvents(sub, events.slice(half));
        return;
      }
      subscriptions.get(sub)?.stop();
      subscriptions.delete(sub);
      const why = (error as Error).message;
      logger.error("An event of subscription {sub} cannot be sent: {why}", { sub, why });
      const err = new ChainError(
        "rpc_error",
        `Cannot send an event of subscription ${sub}: ${why}`,
      );
      out.line({ s: sub, err: toWire(err) });
    }
  };
  // Each line's own failure (an account the ledger refuses, a closed ledger, stats that throw)
  // refuses that line, with its id: the lines before and after it are served as if it were not.
  const onLine = (request: unknown) => {
    try {
      serveLine(request);
    } catch (error) {
      const id = isRecord(request) ? request.id : undefined;
      refuse(id, `the line could not be served: ${toWire(error).message}`);
    }
  };
  // The port of `account`, or the error that refuses it (`LocalLedger.as` checks the account).
  const portFor = (account: string): ChainPort | Error => {
    try {
      return portOf(account);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  };
  const serveLine = (request: unknown) => {
    if (broken) return;
    if (!isRecord(request)) return refuse(undefined, "a line is not an object");
    if (typeof request.u === "number") {
      subscriptions.get(request.u)?.stop();
      subscriptions.delete(request.u);
      return;
    }
    if (request.stats === true && typeof request.id === "number") {
      if (options.stats === undefined) return refuse(request.id, "no stats served");
      return out.line({ id: request.id, ok: options.stats() ?? null });
    }
    const account = request.a;
    if (typeof account !== "string" || account.length === 0) {
      return refuse(request.id, "no account (a)");
    }
    if (typeof request.s === "number") {
      const sub = request.s;
      if (subscriptions.has(sub)) return refuse(undefined, `subscription ${sub} is open`);
      if (subscriptions.size >= MAX_SUBSCRIPTIONS) {
        const why = `too many subscriptions: at most ${MAX_SUBSCRIPTIONS} open on one connection`;
        tell(why);
        const err = new ChainError("rpc_error", `Refused by the chain server: ${why}`);
        return out.line({ s: sub, err: toWire(err) });
      }
      const from = isRecord(request.from) ? request.from as unknown as ChainCursor : undefined;
      const pollMs = request.pollMs ?? DEFAULT_FEED_POLL_MS;
      if (typeof pollMs !== "number" || !Number.isFinite(pollMs) || pollMs < MIN_POLL_MS) {
        const got = typeof pollMs === "number" ? String(pollMs) : typeof pollMs;
        return out.line({
          s: sub,
          err: toWire(
            new RangeError(`Invalid pollMs: expected at least ${MIN_POLL_MS} ms, got ${got}`),
          ),
        });
      }
      const port = portFor(account);
      if (port instanceof Error) {
        tell(`the account of subscription ${sub} is refused: ${port.message}`);
        return out.line({ s: sub, err: toWire(port) });
      }
      const feed = new Feed(port, from ?? { blockNumber: 0, eventIndex: 0 }, pollMs, {
        events: (events) => sendEvents(sub, events),
        failed: (error) => {
          subscriptions.delete(sub);
          out.line({ s: sub, err: toWire(error) });
        },
      });
      subscriptions.set(sub, feed);
      if (chunk === undefined) feed.read();
      else chunk.feeds.push(feed);
      return;
    }
    const id = request.id;
    if (typeof id !== "number") return refuse(undefined, "no call id");
    const method = request.m;
    if (typeof method !== "string" || !methods.has(method)) {
      return refuse(id, `unknown method ${JSON.stringify(method)}`);
    }
    if (!Array.isArray(request.p) || request.p.length > 2) {
      return refuse(id, `the arguments of ${method} are not a list of at most 2`);
    }
    if (method === "eventsSince") {
      const limit = isRecord(request.p[1]) ? request.p[1].limit : undefined;
      if (typeof limit === "number" && limit > MAX_EVENTS_LIMIT) {
        return refuse(id, `the limit of eventsSince is above ${MAX_EVENTS_LIMIT}: ${limit}`);
      }
    }
    if (chunk?.unable !== undefined) return out.line({ id, err: toWire(chunk.unable) });
    const found = portFor(account);
    if (found instanceof Error) return refuse(id, `the account is refused: ${found.message}`);
    const port = found as unknown as Record<string, unknown>;
    const fn = port[method];
    if (typeof fn !== "function") return refuse(id, `the ledger has no ${method}`);
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(fn.apply(port, request.p));
    } catch (error) {
      result = Promise.reject(error);
    }
    const turn = chunk;
    result.then(
      (value) => {
        if (turn?.failed !== undefined) return answer(id, method, { err: toWire(turn.failed) });
        answer(id, method, { ok: value === undefined ? null : value });
        readFeeds();
      },
      (error) => answer(id, method, { err: toWire(turn?.failed ?? error) }),
    );
  };
  out.line({ hello: REMOTE_CHAIN_PROTOCOL, methods: [...methods] });
  try {
    await readLines(stream.readable, onLine, refuseRead, eachChunk);
  } finally {
    for (const feed of subscriptions.values()) feed.stop();
    subscriptions.clear();
    await Promise.all([...opened.values()].map((p) => p.close().catch(() => {})));
    await out.close();
  }
}

/** How often a served subscription reads the chain for what others wrote, by default, ms. */
const DEFAULT_FEED_POLL_MS = 25;
/** Events a served subscription reads at a time (one line), and reads before it lets other work run. */
const FEED_BATCH = 256;
const FEED_BATCHES_PER_READ = 16;

/**
 * A subscription as {@link serveChain} serves it: reads the port's events from a cursor with
 * `eventsSince`, when told (after the calls it served) and every `pollMs`, and hands each
 * batch over in order. A failed first read ends it with the error; a later one is logged and
 * retried at the next poll.
 */
class Feed {
  readonly #port: ChainPort;
  readonly #pollMs: number;
  readonly #to: { events(events: ChainEvent[]): void; failed(error: unknown): void };
  #cursor: ChainCursor;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #reading = false;
  #again = false;
  #stopped = false;
  #started = false;

  constructor(
    port: ChainPort,
    from: ChainCursor,
    pollMs: number,
    to: { events(events: ChainEvent[]): void; failed(error: unknown): void },
  ) {
    this.#port = port;
    this.#cursor = from;
    this.#pollMs = pollMs;
    this.#to = to;
  }

  /** Reads and hands over what is new (once more after the read under way, if one is). */
  read(): void {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#reading = true;
    void this.#batch(0);
  }

  async #batch(done: number): Promise<void> {
    let full = false;
    try {
      const { events, next } = await this.#port.eventsSince(this.#cursor, { limit: FEED_BATCH });
      if (this.#stopped) return;
      this.#started = true;
      this.#cursor = next;
      if (events.length > 0) this.#to.events(events);
      full = events.length >= FEED_BATCH;
    } catch (error) {
      if (this.#stopped) return;
      if (!this.#started) {
        this.#stopped = true;
        return this.#to.failed(error);
      }
      logger.warn("Reading the chain's events for a subscriber failed: {error}", { error });
    }
    if ((full || this.#again) && done + 1 < FEED_BATCHES_PER_READ) {
      this.#again = false;
      return this.#batch(done + 1);
    }
    this.#reading = false;
    if (this.#stopped) return;
    // A longer backlog lets other work run between its reads; otherwise wait for news or a poll.
    const again = full || this.#again;
    this.#again = false;
    this.#timer = setTimeout(() => this.read(), again ? 0 : this.#pollMs);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** The call's abort signal, if any. */
  readonly signal: AbortSignal | undefined;
}

/**
 * The client side of {@link serveChain}: one stream, any number of accounts' ports.
 * `RemoteChain.connect` waits for the server's hello.
 */
export class RemoteChain {
  readonly methods: ReadonlySet<string>;
  readonly #out: LineWriter;
  readonly #pending = new Map<number, Pending>();
  /** The abort signals listened to (once each: a node passes the same one to every call). */
  readonly #signals = new WeakSet<AbortSignal>();
  readonly #subscriptions = new Map<number, (events: ChainEvent[]) => void>();
  readonly #reading: Promise<void>;
  #nextId = 1;
  #closed: Error | undefined;

  private constructor(
    methods: ReadonlySet<string>,
    out: LineWriter,
    reading: (chain: RemoteChain) => Promise<void>,
  ) {
    this.methods = methods;
    this.#out = out;
    this.#reading = reading(this);
  }

  /** Connects on `stream`; rejects if the server's first line is not a hello of this protocol. */
  static connect(stream: ByteStream, options: ChainCallOptions = {}): Promise<RemoteChain> {
    return new Promise((resolve, reject) => {
      let chain: RemoteChain | undefined;
      let out: LineWriter | undefined = undefined;
      const fail = (error: Error) => {
        if (chain === undefined) reject(error);
        else chain.#shut(error);
      };
      out = new LineWriter(
        stream.writable,
        (error) => fail(new ChainError("rpc_error", `Cannot write to the chain server: ${error}`)),
      );
      const abort = () =>
        fail(new ChainError("rpc_error", "Connecting to the chain server was aborted"));
      options.signal?.addEventListener("abort", abort, { once: true });
      const reading = readLines(stream.readable, (line) => {
        if (chain !== undefined) return chain.#receive(line);
        options.signal?.removeEventListener("abort", abort);
        if (
          !isRecord(line) || line.hello !== REMOTE_CHAIN_PROTOCOL || !Array.isArray(line.methods)
        ) {
          const what = isRecord(line) && typeof line.hello === "string" ? line.hello : "no hello";
          return fail(
            new ChainError(
              "rpc_error",
              `The chain server does not speak ${REMOTE_CHAIN_PROTOCOL}: ${what}`,
            ),
          );
        }
        const methods = new Set(
          line.methods.filter((m): m is string => CALL_NAMES.has(m as string)),
        );
        chain = new RemoteChain(methods, out!, () => reading);
        resolve(chain);
      }, (why, line) => {
        const error = new ChainError("rpc_error", `The chain server sent a bad line: ${why}`);
        // An answer refused once read (a bigint too long) rejects its call alone.
        if (chain !== undefined && isRecord(line) && chain.#refuse(line.id, error)) return;
        fail(error);
      })
        .then(
          () => fail(new ChainError("rpc_error", "The chain server closed its stream")),
          (error) =>
            fail(new ChainError("rpc_error", `Reading from the chain server failed: ${error}`)),
        );
    });
  }

  /** A port acting as `account`. */
  as(account: NodeId): ChainPort {
    if (typeof account !== "string" || account.length === 0) {
      throw new RangeError(
        `Invalid account ${JSON.stringify(account)}: must be a non-empty string`,
      );
    }
    return new RemoteChainPort(account, this);
  }

  /** Sends a call and waits for its answer. */
  call(
    account: NodeId,
    method: CallName,
    args: unknown[],
    options?: ChainCallOptions,
  ): Promise<unknown> {
    return this.#request((id) => ({ id, a: account, m: method, p: args }), options);
  }

  /** The server's own figures (see {@link ServeChainOptions.stats}); rejects where none are served. */
  stats(options?: ChainCallOptions): Promise<unknown> {
    return this.#request((id) => ({ id, stats: true }), options);
  }

  /** Sends the line `lineOf(id)` makes and waits for the answer to `id`. */
  #request(lineOf: (id: number) => unknown, options?: ChainCallOptions): Promise<unknown> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const id = this.#nextId++;
    if (signal !== undefined && !this.#signals.has(signal)) {
      this.#signals.add(signal);
      // Rejects the calls waiting under it (the walk happens only on an abort).
      signal.addEventListener("abort", () => {
        for (const [waitingId, pending] of this.#pending) {
          if (pending.signal !== signal) continue;
          this.#pending.delete(waitingId);
          pending.reject(signal.reason);
        }
      }, { once: true });
    }
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, signal });
      try {
        this.#out.line(lineOf(id));
      } catch (error) {
        // A call whose arguments cannot be sent (too long for a line) rejects alone.
        this.#pending.delete(id);
        reject(error);
      }
    });
  }

  /** Opens a subscription; returns its end. */
  subscribe(
    account: NodeId,
    onEvents: (events: ChainEvent[]) => void,
    options: SubscribeOptions,
  ): () => void {
    if (this.#closed !== undefined) throw this.#closed;
    const pollMs = options.pollMs;
    if (pollMs !== undefined && (!Number.isFinite(pollMs) || pollMs < MIN_POLL_MS)) {
      throw new RangeError(`Invalid pollMs: expected at least ${MIN_POLL_MS} ms, got ${pollMs}`);
    }
    const sub = this.#nextId++;
    this.#subscriptions.set(sub, onEvents);
    try {
      this.#out.line({
        s: sub,
        a: account,
        ...(options.from === undefined ? {} : { from: options.from }),
        ...(pollMs === undefined ? {} : { pollMs }),
      });
    } catch (error) {
      this.#subscriptions.delete(sub);
      throw error;
    }
    return () => {
      if (!this.#subscriptions.delete(sub) || this.#closed !== undefined) return;
      this.#out.line({ u: sub });
    };
  }

  #receive(line: unknown): void {
    if (!isRecord(line)) return;
    if (typeof line.id === "number") {
      const pending = this.#pending.get(line.id);
      if (pending === undefined) return;
      this.#pending.delete(line.id);
      if ("err" in line) pending.reject(fromWire(line.err));
      else pending.resolve(line.ok);
    } else if (typeof line.s === "number" && Array.isArray(line.e)) {
      this.#subscriptions.get(line.s)?.(line.e as ChainEvent[]);
    } else if (typeof line.s === "number" && "err" in line) {
      logger.error("The chain server refused subscription {sub}: {error}", {
        sub: line.s,
        error: fromWire(line.err).message,
      });
      this.#subscriptions.delete(line.s);
    }
  }

  /** Rejects the pending call `id` with `error`; false if none waits under it. */
  #refuse(id: unknown, error: Error): boolean {
    const pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (pending === undefined) return false;
    this.#pending.delete(id as number);
    pending.reject(error);
    return true;
  }

  #shut(error: Error): void {
    if (this.#closed !== undefined) return;
    this.#closed = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#subscriptions.clear();
  }

  /**
   * Ends the stream (the server then stops and ends its own, which this waits for): pending
   * calls reject.
   */
  async close(): Promise<void> {
    this.#shut(new ChainError("rpc_error", "The remote chain is closed"));
    await this.#out.close();
    await this.#reading.catch(() => {});
  }
}

/** One account's port on a {@link RemoteChain}. */
class RemoteChainPort implements ChainPort {
  readonly account: NodeId;
  readonly filtersEvents = false;
  readonly #chain: RemoteChain;
  readonly #subscriptions = new Set<() => void>();

  constructor(account: NodeId, chain: RemoteChain) {
    this.account = account;
    this.#chain = chain;
    for (const method of CALLS) {
      if (!chain.methods.has(method)) continue;
      (this as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        const options =
          method === "withdraw" || method === "accountPublicKey" || method === "totals"
            ? args[0] as ChainCallOptions | undefined
            : args[1] as ChainCallOptions | undefined;
        const wire = method === "withdraw" || method === "accountPublicKey" || method === "totals"
          ? []
          : [args[0]];
        if (method === "eventsSince" && options !== undefined) {
          const limit = (options as { limit?: number }).limit;
          if (limit !== undefined) wire.push({ limit });
        }
        const answer = chain.call(account, method, wire, options);
        // The server sends an undefined answer as null (JSON has no undefined): escrowOf's none.
        return method === "escrowOf" ? answer.then((value) => value ?? undefined) : answer;
      };
    }
  }

  subscribe(handler: (event: ChainEvent) => void, options: SubscribeOptions = {}): () => void {
    const end = this.#chain.subscribe(this.account, (events) => {
      for (const event of events) {
        try {
          handler(event);
        } catch (error) {
          // As the local ledger: a handler that throws is logged and the next event delivered.
          logger.error("Subscriber of {account} threw on {event}: {error}", {
            account: this.account,
            event: `${event.name}@${event.blockNumber}:${event.eventIndex}`,
            error,
          });
        }
      }
    }, {
      ...(options.from ? { from: options.from } : {}),
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    });
    const unsubscribe = () => {
      this.#subscriptions.delete(unsubscribe);
      end();
    };
    this.#subscriptions.add(unsubscribe);
    return unsubscribe;
  }

  close(): Promise<void> {
    for (const unsubscribe of [...this.#subscriptions]) unsubscribe();
    return Promise.resolve();
  }
}

// The methods are set in the constructor, for those the server serves; TypeScript's view of them.
interface RemoteChainPort
  extends Omit<ChainPort, "account" | "subscribe" | "close" | "filtersEvents"> {}
