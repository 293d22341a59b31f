/**
 * Private to the Starknet adapter: how it talks to a node. The error classification (what a failed
 * request means: nonce, execution, transient, duplicate, fatal), bounded retries with backoff,
 * canonical felts, and {@link Rpc}, one request with retries whose failure is a {@link ChainError}.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { ChainError, type ChainErrorCode } from "../port.ts";

const logger = getLogger(["ciro", "chain", "starknet"]);

/** The codes a contract panics with (every {@link ChainErrorCode} but the adapter's own). */
const CHAIN_ERROR_CODES: ReadonlySet<string> = new Set<ChainErrorCode>([
  "unknown_job",
  "duplicate_job",
  "invalid_state",
  "not_authorized",
  "insufficient_stake",
  "insufficient_balance",
  "invalid_amount",
  "still_unbonding",
  "stake_locked",
  "not_enough_verifiers",
  "bad_signature",
  "no_key",
  "not_chosen",
  "duplicate_attestation",
  "wrong_attempt",
  "deadline_passed",
  "deadline_not_passed",
  "no_evidence",
  "wrong_subject",
]);
const MAX_BACKOFF_MS = 30_000;
export const RPC_NONCE_ERROR = 52;
export const RPC_DUPLICATE_TX = 59;
export const RPC_BLOCK_NOT_FOUND = 24;
export const RPC_TX_NOT_FOUND = 29;
export const RPC_TOO_MANY_KEYS = 34;
export const RPC_INVALID_CONTINUATION_TOKEN = 33;
const RPC_TRANSIENT = new Set([63, -32603, -32000, -32005]);
const RPC_EXECUTION = new Set([40, 41]);

/** How a failed RPC attempt should be handled. */
export type Failure =
  | { kind: "nonce"; detail: string }
  | { kind: "execution"; detail: string; code: ChainErrorCode | undefined }
  | { kind: "transient"; detail: string }
  | { kind: "duplicate"; detail: string }
  | { kind: "fatal"; detail: string };

export function firstLine(text: string, max = 240): string {
  const line = text.split("\n").find((l) => l.trim().length > 0)?.trim() ?? "";
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

export function rpcCode(error: unknown): number | undefined {
  const base = (error as { baseError?: { code?: unknown } })?.baseError;
  return typeof base?.code === "number" ? base.code : undefined;
}

export function rpcText(error: unknown): string {
  const base = (error as { baseError?: { message?: unknown; data?: unknown } })?.baseError;
  if (base !== undefined) {
    const data = typeof base.data === "string" ? base.data : JSON.stringify(base.data ?? "");
    return `${String(base.message)} ${data}`;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The Cairo panic string naming a {@link ChainErrorCode}, if the error text has one. */
export function panicCode(text: string): ChainErrorCode | undefined {
  let found: ChainErrorCode | undefined;
  for (const match of text.matchAll(/'([a-z_]{3,31})'|"([a-z_]{3,31})"/g)) {
    const code = match[1] ?? match[2];
    if (code !== undefined && CHAIN_ERROR_CODES.has(code)) found = code as ChainErrorCode;
  }
  return found;
}

export function classify(error: unknown): Failure {
  const code = rpcCode(error);
  const text = rpcText(error);
  if (code !== undefined) {
    const detail = `RPC error ${code}: ${firstLine(text)}`;
    if (code === RPC_NONCE_ERROR || /invalid transaction nonce/i.test(text)) {
      return { kind: "nonce", detail };
    }
    if (code === RPC_DUPLICATE_TX) return { kind: "duplicate", detail };
    if (RPC_EXECUTION.has(code)) return { kind: "execution", detail, code: panicCode(text) };
    if (RPC_TRANSIENT.has(code)) return { kind: "transient", detail };
    return { kind: "fatal", detail };
  }
  // No JSON-RPC error object: the request or the response failed on the way (connection
  // refused, HTTP 5xx without a JSON body, a body that is not JSON).
  const name = (error as { name?: unknown })?.name;
  if (name === "AbortError") return { kind: "fatal", detail: "aborted" };
  return { kind: "transient", detail: firstLine(text) };
}

/** A felt as the spec's FELT pattern wants it: `0x` and hex digits without leading zeros. */
export function canonicalFelt(value: string | bigint): string {
  return `0x${BigInt(value).toString(16)}`;
}

/** `[major, minor, patch]` of a spec version string such as `0.10.1`, or undefined. */
export function parseVersion(spec: string): [number, number, number] | undefined {
  const match = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(spec);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

export function sameFelt(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  try {
    return BigInt(a) === BigInt(b);
  } catch {
    return a === b;
  }
}

export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** The adapter's settings, checked at connect. */
export interface Settings {
  readonly rpcOrigin: string;
  readonly accountAddress: string;
  readonly jobManagerAddress: string;
  readonly cdcPoolAddress: string;
  readonly tokenAddress: string | undefined;
  /** The node's spec version allows a list of addresses in an event filter (from 0.10.1). */
  readonly addressList: boolean;
  /** The chain id, to compute transaction hashes. */
  readonly chainId: string;
  /** The spec version the node reported. */
  readonly specVersion: string;
  readonly confirmations: number;
  readonly chunkSize: number;
  readonly pollMs: number;
  readonly txTimeoutMs: number;
  readonly maxAttempts: number;
  readonly backoffMs: number;
  readonly tip: bigint;
  readonly reorgWindow: number;
}

export function backoff(baseMs: number, attempt: number): number {
  return Math.min(baseMs * 2 ** (attempt - 2), MAX_BACKOFF_MS);
}

/** Runs `body`, retrying transient failures with exponential backoff; rethrows the rest. */
export async function withRetries<T>(
  action: string,
  body: () => Promise<T>,
  maxAttempts: number,
  backoffMs: number,
  signal: AbortSignal | undefined,
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    signal?.throwIfAborted();
    if (attempt > 1) await delay(backoff(backoffMs, attempt), signal);
    try {
      return await abortable(body(), signal);
    } catch (error) {
      signal?.throwIfAborted();
      if (classify(error).kind !== "transient") throw error;
      lastError = error;
      logger.debug("Attempt {attempt} to {action} failed: {detail}", {
        attempt,
        action,
        detail: classify(error).detail,
      });
    }
  }
  throw new ChainError(
    "rpc_error",
    `Cannot ${action}: gave up after ${maxAttempts} attempts: ${classify(lastError).detail}`,
    { cause: lastError },
  );
}

export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      promise.catch(() => {});
      return reject(signal.reason);
    }
    const onAbort = () => {
      promise.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** Requests to one node with the adapter's retry settings; failures as {@link ChainError}s. */
export class Rpc {
  readonly #settings: Settings;
  readonly #closing: AbortSignal;

  /** `closing` aborts when the adapter closes: a request it stops fails as "the adapter is closed". */
  constructor(settings: Settings, closing: AbortSignal) {
    this.#settings = settings;
    this.#closing = closing;
  }

  /** One RPC call with bounded retries of transient failures; any other failure is a ChainError. */
  async call<T>(action: string, body: () => Promise<T>, signal: AbortSignal): Promise<T> {
    try {
      return await withRetries(
        action,
        body,
        this.#settings.maxAttempts,
        this.#settings.backoffMs,
        signal,
      );
    } catch (error) {
      throw this.asChainError(action, error);
    }
  }

  asChainError(action: string, error: unknown): Error {
    if ((error as { name?: unknown })?.name === "ChainError") return error as Error;
    if (this.#closing.aborted && error === this.#closing.reason) {
      return new ChainError("rpc_error", `Cannot ${action}: the adapter is closed`, {
        cause: error,
      });
    }
    if ((error as { name?: unknown })?.name === "AbortError") return error as Error;
    const failure = classify(error);
    if (failure.kind === "execution") {
      return new ChainError(failure.code ?? "reverted", `Cannot ${action}: ${failure.detail}`, {
        cause: error,
      });
    }
    return new ChainError("rpc_error", `Cannot ${action}: ${failure.detail}`, { cause: error });
  }
}
