/**
 * Payload transfer: `/ciro/payload/1.0.0` fetches job inputs, outputs and model blobs by
 * content hash (hex sha-256) from a peer. The request is one length-prefixed hash; the answer
 * is a 9-byte header (status, then the size as a u64) followed by the bytes, streamed in
 * chunks: the sender waits for `drain` whenever the muxer is full, the receiver pauses the
 * stream when it falls behind. The receiver refuses a size above its limit before reading,
 * hashes as it reads, and stores nothing unless the hash matches
 * ({@link PayloadHashMismatchError} otherwise).
 *
 * ```ts ignore
 * const store = new DirectoryPayloadStore("./data/payloads");
 * servePayloads(worker, store);
 * const bytes = await fetchPayload(client, worker.self, inputHash, { store: clientStore });
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { NodeId } from "../machines/types.ts";
import { peerIdFromString } from "@libp2p/peer-id";
import type { Libp2pHost } from "./libp2p_host.ts";
import type { Stream } from "@libp2p/interface";
import { frame, idleSignal, readFrame, sendAll, StreamReader } from "./stream_framing.ts";

import {
  PAYLOAD_PROTOCOL,
  PayloadHashMismatchError,
  PayloadNotFoundError,
  PayloadRequestError,
  PayloadTooLargeError,
  PayloadTransferError,
} from "./payload_errors.ts";

export {
  PAYLOAD_PROTOCOL,
  PayloadHashMismatchError,
  PayloadNotFoundError,
  PayloadRequestError,
  PayloadTooLargeError,
  PayloadTransferError,
};

const HASH = /^[0-9a-f]{64}$/;
const STATUS_OK = 0;
const STATUS_NOT_FOUND = 1;
const STATUS_ERROR = 2;

/** The hex sha-256 of `bytes`. */
export function payloadHash(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const requestDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The hash a payload request asks for: exactly 64 lowercase hex characters. Throws
 * {@link PayloadRequestError} (code `bad_hash`) for anything else, an absent request included.
 */
export function decodePayloadRequest(request: Uint8Array | undefined): string {
  if (request === undefined || request.byteLength !== 64) {
    throw new PayloadRequestError(
      `Invalid payload request: ${request?.byteLength ?? 0} bytes, expected a 64-character hash`,
    );
  }
  let hash: string;
  try {
    hash = requestDecoder.decode(request);
  } catch {
    throw new PayloadRequestError("Invalid payload request: not UTF-8");
  }
  if (!HASH.test(hash)) throw new PayloadRequestError("Invalid payload request: not a hex sha-256");
  return hash;
}

function checkHash(hash: string): void {
  if (!HASH.test(hash)) {
    throw new TypeError(`Invalid payload hash "${hash}": must be a hex sha-256`);
  }
}

function attempt<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Content-addressed storage of payloads. `put` verifies the hash. */
export interface PayloadStore {
  has(hash: string): Promise<boolean>;
  get(hash: string): Promise<Uint8Array | undefined>;
  /** Stores `bytes` under `hash`; throws {@link PayloadHashMismatchError} if they differ. */
  put(hash: string, bytes: Uint8Array): Promise<void>;
}

/** A {@link PayloadStore} in memory. */
export class MemoryPayloadStore implements PayloadStore {
  readonly #items = new Map<string, Uint8Array>();

  has(hash: string): Promise<boolean> {
    return attempt(() => {
      checkHash(hash);
      return this.#items.has(hash);
    });
  }

  get(hash: string): Promise<Uint8Array | undefined> {
    return attempt(() => {
      checkHash(hash);
      return this.#items.get(hash);
    });
  }

  put(hash: string, bytes: Uint8Array): Promise<void> {
    return attempt(() => {
      checkHash(hash);
      const actual = payloadHash(bytes);
      if (actual !== hash) throw new PayloadHashMismatchError(hash, actual);
      this.#items.set(hash, bytes.slice());
    });
  }

  /** How many payloads are stored. */
  get size(): number {
    return this.#items.size;
  }
}

/** A {@link PayloadStore} in a directory: one file `<dir>/<hash>` per payload, written atomically. */
export class DirectoryPayloadStore implements PayloadStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir.replace(/\/+$/, "");
  }

  async has(hash: string): Promise<boolean> {
    checkHash(hash);
    try {
      return (await Deno.stat(`${this.dir}/${hash}`)).isFile;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    checkHash(hash);
    try {
      return await Deno.readFile(`${this.dir}/${hash}`);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
  }

  async put(hash: string, bytes: Uint8Array): Promise<void> {
    checkHash(hash);
    const actual = payloadHash(bytes);
    if (actual !== hash) throw new PayloadHashMismatchError(hash, actual);
    await Deno.mkdir(this.dir, { recursive: true });
    const temporary = `${this.dir}/.${hash}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeFile(temporary, bytes);
      await Deno.rename(temporary, `${this.dir}/${hash}`);
    } catch (error) {
      await Deno.remove(temporary).catch(() => {});
      throw error;
    }
  }
}

/** Options of {@link servePayloads}. */
export interface ServePayloadsOptions {
  /** Bytes per `send()`. @default 65_536 */
  readonly chunkBytes?: number;
  /** Time allowed for one transfer. @default 120_000 */
  readonly timeoutMs?: number;
}

/**
 * Serves payloads from `store`. Returns a function that stops serving. Each stream is admitted
 * by the host's per-peer limits ({@link Libp2pHost.direct}: concurrency and rate) before its
 * request is read, and cut when it makes no progress for the limiter's idle timeout; a
 * malformed request or a stalled stream is charged to the peer ({@link Libp2pHost.reject}).
 */
export function servePayloads(
  host: Libp2pHost,
  store: PayloadStore,
  options: ServePayloadsOptions = {},
): () => Promise<void> {
  const chunkBytes = options.chunkBytes ?? 65_536;
  const timeoutMs = options.timeoutMs ?? 120_000;
  void host.libp2p.handle(PAYLOAD_PROTOCOL, async (stream, connection) => {
    const from = connection.remotePeer.toString();
    const admission = host.direct.admit(from);
    if (!admission.ok) {
      host.rejections.reject(from, PAYLOAD_PROTOCOL, admission.code, admission.reason);
      await answerError(stream, AbortSignal.timeout(host.direct.idleTimeoutMs));
      return;
    }
    const idle = idleSignal(host.direct.idleTimeoutMs, AbortSignal.timeout(timeoutMs));
    const onData = () => idle.touch();
    stream.addEventListener("message", onData);
    try {
      let request: Uint8Array | undefined;
      try {
        request = await readFrame(new StreamReader(stream), 64, idle.signal);
      } catch (error) {
        const idleCut = (error as Error).name === "StreamIdleError";
        host.reject(
          from,
          PAYLOAD_PROTOCOL,
          idleCut ? "idle_timeout" : "bad_frame",
          (error as Error).message,
        );
        throw error;
      }
      let hash: string;
      try {
        hash = decodePayloadRequest(request);
      } catch (error) {
        host.reject(from, PAYLOAD_PROTOCOL, "bad_hash", (error as Error).message);
        await answerError(stream, idle.signal);
        return;
      }
      const header = new Uint8Array(9);
      const bytes = await store.get(hash);
      if (bytes === undefined) {
        header[0] = STATUS_NOT_FOUND;
      } else {
        header[0] = STATUS_OK;
        new DataView(header.buffer).setBigUint64(1, BigInt(bytes.byteLength));
      }
      await sendAll(stream, header, idle.signal);
      if (bytes !== undefined) {
        await sendAll(stream, bytes, idle.signal, chunkBytes, () => idle.touch());
      }
      await stream.close({ signal: idle.signal });
    } catch (error) {
      stream.abort(error as Error);
    } finally {
      stream.removeEventListener("message", onData);
      idle.clear();
      admission.release();
    }
  });
  return () => host.libp2p.unhandle(PAYLOAD_PROTOCOL);
}

/** Answers a stream with the error status and closes it. */
async function answerError(stream: Stream, signal: AbortSignal): Promise<void> {
  try {
    const header = new Uint8Array(9);
    header[0] = STATUS_ERROR;
    await sendAll(stream, header, signal);
    await stream.close({ signal });
  } catch (error) {
    stream.abort(error as Error);
  }
}

/** Options of {@link fetchPayload}. */
export interface FetchPayloadOptions {
  /** Where to keep the payload once verified. */
  readonly store?: PayloadStore;
  /** Largest payload accepted. @default 268_435_456 (256 MiB) */
  readonly maxBytes?: number;
  /** Bytes the reader queues before it pauses the stream. @default 1_048_576 */
  readonly highWaterMark?: number;
  /** Time allowed for the whole transfer. @default 120_000 */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * Fetches the payload `hash` from `peer`, verifies it, stores it in `options.store` (when
 * given) and returns it. Throws {@link PayloadNotFoundError}, {@link PayloadTooLargeError},
 * {@link PayloadHashMismatchError} (nothing stored) or {@link PayloadTransferError}.
 */
export async function fetchPayload(
  host: Libp2pHost,
  peer: NodeId,
  hash: string,
  options: FetchPayloadOptions = {},
): Promise<Uint8Array> {
  checkHash(hash);
  const maxBytes = options.maxBytes ?? 268_435_456;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? 120_000);
  const signal = options.signal === undefined
    ? timeout
    : AbortSignal.any([options.signal, timeout]);
  const stream = await host.libp2p.dialProtocol(peerIdFromString(peer), PAYLOAD_PROTOCOL, {
    signal,
  });
  let bytes: Uint8Array;
  try {
    const reader = new StreamReader(stream, { highWaterMark: options.highWaterMark ?? 1_048_576 });
    await sendAll(stream, frame(new TextEncoder().encode(hash)), signal);
    await stream.close({ signal });
    const header = await reader.readExactly(9, signal);
    if (header === undefined) {
      throw new PayloadTransferError(`Peer closed the stream without answering: ${peer}`);
    }
    if (header[0] === STATUS_NOT_FOUND) throw new PayloadNotFoundError(hash, peer);
    if (header[0] !== STATUS_OK) {
      throw new PayloadTransferError(`Peer refused the request: ${peer}`);
    }
    const announced = new DataView(header.buffer, header.byteOffset, 9).getBigUint64(1);
    if (announced > BigInt(maxBytes)) {
      throw new PayloadTooLargeError(hash, Number(announced), maxBytes);
    }
    const size = Number(announced);
    bytes = new Uint8Array(size);
    const digest = createHash("sha256");
    let received = 0;
    while (received < size) {
      const chunk = await reader.read(size - received, signal);
      if (chunk === undefined) {
        throw new PayloadTransferError(
          `Payload truncated: got ${received} of ${size} bytes from ${peer}`,
        );
      }
      bytes.set(chunk, received);
      digest.update(chunk);
      received += chunk.byteLength;
    }
    if ((await reader.read(1, signal)) !== undefined) {
      throw new PayloadTransferError(`Payload longer than announced: ${size} bytes from ${peer}`);
    }
    const actual = digest.digest("hex");
    if (actual !== hash) throw new PayloadHashMismatchError(hash, actual);
  } catch (error) {
    stream.abort(error as Error);
    throw error;
  }
  if (options.store !== undefined) await options.store.put(hash, bytes);
  return bytes;
}
