/**
 * The payload protocol (`/ciro/payload/1.0.0`) on any {@link NetworkPort}: serve a
 * {@link PayloadStore} and fetch from it by content hash. Over the libp2p host this is the
 * streaming transfer of `payload_protocol.ts` (loaded on first use, so that code on the
 * in-process network never loads libp2p). Over any other port it is one direct request: the
 * request is the hash (UTF-8), the answer a 9-byte header (status, size as a u64) followed by
 * the bytes. Either way the fetcher refuses a size above its limit, checks the hash of what it
 * got ({@link PayloadHashMismatchError} otherwise) and keeps nothing that does not match.
 *
 * ```ts ignore
 * const stop = servePayloadStore(network, store);
 * const bytes = await fetchPayloadFrom(network, peer, hash, { maxBytes: 65_536 });
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { NodeId } from "../machines/types.ts";
import type { Libp2pHost } from "./libp2p_host.ts";
import type { NetworkPort } from "./network_port.ts";
import type { PayloadStore } from "./payload_protocol.ts";
import {
  PAYLOAD_PROTOCOL,
  PayloadHashMismatchError,
  PayloadNotFoundError,
  PayloadRequestError,
  PayloadTooLargeError,
  PayloadTransferError,
} from "./payload_errors.ts";

const HASH = /^[0-9a-f]{64}$/;
const STATUS_OK = 0;
const STATUS_NOT_FOUND = 1;
const STATUS_ERROR = 2;

function isLibp2pHost(network: NetworkPort): network is Libp2pHost {
  return "libp2p" in network &&
    typeof (network as { libp2p?: { handle?: unknown } }).libp2p?.handle === "function";
}

/**
 * Serves `store` on `network` under {@link PAYLOAD_PROTOCOL} (one store per port: the protocol
 * has one handler; combine stores with {@link firstHolding}). Returns a function that stops
 * serving where the port can (libp2p). A request that is not a hex sha-256 is answered with
 * the error status and charged to the peer ({@link NetworkPort.reject}).
 */
export function servePayloadStore(network: NetworkPort, store: PayloadStore): () => void {
  if (isLibp2pHost(network)) {
    const stop = import("./payload_protocol.ts").then((p) => p.servePayloads(network, store));
    return () => void stop.then((undo) => undo()).catch(() => {});
  }
  network.handle(PAYLOAD_PROTOCOL, async (request, from) => {
    const hash = new TextDecoder().decode(request);
    if (!HASH.test(hash)) {
      const error = new PayloadRequestError(
        `Invalid payload request: ${request.byteLength} bytes, not a hex sha-256`,
      );
      network.reject?.(from, PAYLOAD_PROTOCOL, error.code, error.message);
      const answer = new Uint8Array(9);
      answer[0] = STATUS_ERROR;
      return answer;
    }
    const bytes = await store.get(hash);
    const answer = new Uint8Array(9 + (bytes?.byteLength ?? 0));
    answer[0] = bytes === undefined ? STATUS_NOT_FOUND : STATUS_OK;
    if (bytes !== undefined) {
      new DataView(answer.buffer).setBigUint64(1, BigInt(bytes.byteLength));
      answer.set(bytes, 9);
    }
    return answer;
  });
  return () => {};
}

/** Options of {@link fetchPayloadFrom}. */
export interface FetchPayloadFromOptions {
  /** Largest payload accepted. @default 268_435_456 (256 MiB) */
  readonly maxBytes?: number;
  readonly signal?: AbortSignal;
}

/**
 * Fetches the payload `hash` from `peer` and returns it once its hash checks. Throws
 * {@link PayloadNotFoundError}, {@link PayloadTooLargeError}, {@link PayloadHashMismatchError}
 * or {@link PayloadTransferError}; `TypeError` for a `hash` that is not a hex sha-256.
 */
export async function fetchPayloadFrom(
  network: NetworkPort,
  peer: NodeId,
  hash: string,
  options: FetchPayloadFromOptions = {},
): Promise<Uint8Array> {
  if (!HASH.test(hash)) {
    throw new TypeError(`Invalid payload hash "${hash}": must be a hex sha-256`);
  }
  const maxBytes = options.maxBytes ?? 268_435_456;
  const signal = options.signal ? { signal: options.signal } : {};
  if (isLibp2pHost(network)) {
    const { fetchPayload } = await import("./payload_protocol.ts");
    return await fetchPayload(network, peer, hash, { maxBytes, ...signal });
  }
  const answer = await network.request(
    peer,
    PAYLOAD_PROTOCOL,
    new TextEncoder().encode(hash),
    signal,
  );
  if (answer.byteLength < 9) {
    throw new PayloadTransferError(`Peer answered ${answer.byteLength} bytes: ${peer}`);
  }
  if (answer[0] === STATUS_NOT_FOUND) throw new PayloadNotFoundError(hash, peer);
  if (answer[0] !== STATUS_OK) throw new PayloadTransferError(`Peer refused the request: ${peer}`);
  const size = new DataView(answer.buffer, answer.byteOffset, 9).getBigUint64(1);
  if (size > BigInt(maxBytes)) throw new PayloadTooLargeError(hash, Number(size), maxBytes);
  if (size !== BigInt(answer.byteLength - 9)) {
    throw new PayloadTransferError(
      `Payload of ${answer.byteLength - 9} bytes, announced ${size}, from ${peer}`,
    );
  }
  const bytes = answer.slice(9);
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== hash) throw new PayloadHashMismatchError(hash, actual);
  return bytes;
}

/**
 * A {@link PayloadStore} over several: `has` and `get` answer from the first that holds the
 * hash, `put` stores in the first. For serving a node's models and its outputs on one protocol.
 */
export function firstHolding(stores: readonly PayloadStore[]): PayloadStore {
  if (stores.length === 0) throw new RangeError("Cannot combine payload stores: none given");
  return {
    async has(hash) {
      for (const store of stores) if (await store.has(hash)) return true;
      return false;
    },
    async get(hash) {
      for (const store of stores) {
        const bytes = await store.get(hash);
        if (bytes !== undefined) return bytes;
      }
      return undefined;
    },
    put: (hash, bytes) => stores[0]!.put(hash, bytes),
  };
}
