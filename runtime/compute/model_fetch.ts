/**
 * Models over the payload protocol (`/ciro/payload/1.0.0`): a node with a {@link ModelStore}
 * serves its models by content hash, and a node missing a job's model fetches it from a peer,
 * re-hashes it and stores it only if the hash matches ({@link PayloadHashMismatchError}
 * otherwise, nothing stored).
 *
 * Over the libp2p host this is the streaming transfer of `protocols/payload_protocol.ts`
 * (loaded on first use). Over any other {@link NetworkPort} (the in-process network) it is one
 * direct request: the request is the hash (UTF-8), the answer the same 9-byte header (status,
 * size as a u64) followed by the bytes, in one message.
 *
 * ```ts ignore
 * const stop = serveModels(network, models);
 * await fetchModel(network, peer, modelHash, { models: myModels });
 * ```
 *
 * @module
 */
import type { NodeId } from "../../machines/types.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import type { Libp2pHost } from "../../protocols/libp2p_host.ts";
import type { PayloadStore } from "../../protocols/payload_protocol.ts";
import { PayloadHashMismatchError } from "../../protocols/payload_errors.ts";
import { fetchPayloadFrom, servePayloadStore } from "../../protocols/payload_transfer.ts";
import { sha256Hex } from "./executor.ts";
import { isModelHash, ModelNotFoundError, type ModelStore } from "./model_store.ts";

/** Largest model fetched by default: 256 MiB. */
export const DEFAULT_MAX_MODEL_BYTES = 268_435_456;

/**
 * A {@link ModelStore} seen as a {@link PayloadStore}: `get` answers `undefined` for a model
 * it does not hold (or one whose bytes no longer hash to its name), `put` re-hashes and refuses
 * bytes that do not hash to `hash`.
 */
export function modelPayloadStore(models: ModelStore): PayloadStore {
  return {
    has: (hash) => models.has(hash),
    async get(hash) {
      try {
        return await models.get(hash);
      } catch (error) {
        if (
          error instanceof ModelNotFoundError || (error as Error).name === "ModelIntegrityError"
        ) {
          return undefined;
        }
        throw error;
      }
    },
    async put(hash, bytes) {
      const actual = sha256Hex(bytes);
      if (actual !== hash) throw new PayloadHashMismatchError(hash, actual);
      await models.put(bytes);
    },
  };
}

function isLibp2pHost(network: NetworkPort): network is Libp2pHost {
  return "libp2p" in network &&
    typeof (network as { libp2p?: { handle?: unknown } }).libp2p?.handle === "function";
}

/**
 * Serves the models of `models` on `network` (the payload protocol: see
 * `protocols/payload_transfer.ts`). Returns a function that stops serving (libp2p).
 */
export function serveModels(network: NetworkPort, models: ModelStore): () => void {
  return servePayloadStore(network, modelPayloadStore(models));
}

/** Options of {@link fetchModel}. */
export interface FetchModelOptions {
  /** Where the model goes once its hash checks. */
  readonly models: ModelStore;
  /** Largest model accepted. @default {@link DEFAULT_MAX_MODEL_BYTES} */
  readonly maxBytes?: number;
  readonly signal?: AbortSignal;
}

/**
 * Fetches the model `hash` from `peer`, checks its hash and stores it in `options.models`.
 * Throws `PayloadNotFoundError`, `PayloadTooLargeError`, `PayloadHashMismatchError` (nothing
 * stored) or `PayloadTransferError`.
 */
export async function fetchModel(
  network: NetworkPort,
  peer: NodeId,
  hash: string,
  options: FetchModelOptions,
): Promise<void> {
  if (!isModelHash(hash)) throw new TypeError(`Invalid model hash ${JSON.stringify(hash)}`);
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_MODEL_BYTES;
  const store = modelPayloadStore(options.models);
  if (isLibp2pHost(network)) {
    const { fetchPayload } = await import("../../protocols/payload_protocol.ts");
    await fetchPayload(network, peer, hash, {
      store,
      maxBytes,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    return;
  }
  // Elsewhere one request answers the whole model, checked against its hash.
  await store.put(
    hash,
    await fetchPayloadFrom(network, peer, hash, {
      maxBytes,
      ...(options.signal ? { signal: options.signal } : {}),
    }),
  );
}
