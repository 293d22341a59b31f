/**
 * Outputs by content hash. A result's commitment is the sha-256 of its output's canonical JSON
 * (`commitmentOf`), so that JSON is a payload whose hash the chain holds: a node keeps the outputs
 * it produced or heard in an {@link OutputStore} (bounded, least recently used first out) and
 * serves them over the payload protocol; a chosen verifier (or the job's owner) that sees the chain's
 * `chain.result.submitted` but never got the output (the worker's result gossip was lost) fetches
 * it by that hash ({@link OutputFetcher}): from the assigned worker first, then the other chosen
 * verifiers and the job's owner. The bytes must hash to the commitment and decode as bounded JSON
 * ({@link PAYLOAD_VALUE_LIMITS}); a peer that serves anything else costs score and the next one is
 * asked. What is fetched enters the inbox as a `job.result.received` (journaled, `via: "fetch"`),
 * and verification goes on as if the gossip had come.
 *
 * ```ts ignore
 * const outputs = new OutputStore();
 * servePayloadStore(network, outputs.payloads(tree));
 * const fetcher = new OutputFetcher({ self, network, tree, outputs, submit, log });
 * await fetcher.fetch("job-1", { signal });
 * ```
 *
 * @module
 */
import type { ActorTree } from "../../actors/tree.ts";
import { jobContextOf } from "../../actors/tree.ts";
import { type AddressedEvent, jobAddress, peerAddress } from "../../machines/address.ts";
import type { NodeId } from "../../machines/types.ts";
import { BoundedJsonError, decodeBoundedJson } from "../../protocols/bounded_json.ts";
import { PAYLOAD_VALUE_LIMITS } from "../../protocols/messages.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { PAYLOAD_PROTOCOL, PayloadHashMismatchError } from "../../protocols/payload_errors.ts";
import type { PayloadStore } from "../../protocols/payload_protocol.ts";
import { fetchPayloadFrom } from "../../protocols/payload_transfer.ts";
import { canonicalJson, sha256Hex } from "../compute/mod.ts";
import { WIRE_PENALTY } from "./ingress.ts";

/** The timer key of a verifier's output check after a result lands on chain. */
export const OUTPUT_FETCH_KEY = "output.fetch";

/** How long after `chain.result.submitted` a verifier without the output fetches it. */
export const DEFAULT_OUTPUT_FETCH_DELAY_MS = 1_000;

const HASH = /^[0-9a-f]{64}$/;
const encoder = new TextEncoder();

/** Options of an {@link OutputStore}. */
export interface OutputStoreOptions {
  /** Outputs kept. @default 256 */
  readonly maxEntries?: number;
  /** Bytes kept, every output together. @default 33_554_432 (32 MiB) */
  readonly maxBytes?: number;
}

/**
 * Outputs by content hash (the canonical JSON's sha-256, a result's commitment), bounded in
 * count and bytes; the least recently used goes first. A {@link PayloadStore}: `put` checks the
 * hash.
 */
export class OutputStore implements PayloadStore {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly #items = new Map<string, Uint8Array>();
  #bytes = 0;

  constructor(options: OutputStoreOptions = {}) {
    this.maxEntries = options.maxEntries ?? 256;
    this.maxBytes = options.maxBytes ?? 33_554_432;
    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError(`Invalid output store maxEntries ${this.maxEntries}: must be >= 1`);
    }
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1) {
      throw new RangeError(`Invalid output store maxBytes ${this.maxBytes}: must be >= 1`);
    }
  }

  /** Keeps `output` (as its canonical JSON) and returns its hash, the commitment to it. */
  keep(output: unknown): string {
    const bytes = encoder.encode(canonicalJson(output));
    const hash = sha256Hex(bytes);
    this.#set(hash, bytes);
    return hash;
  }

  has(hash: string): Promise<boolean> {
    return Promise.resolve(this.#items.has(hash));
  }

  get(hash: string): Promise<Uint8Array | undefined> {
    const bytes = this.#items.get(hash);
    if (bytes !== undefined) {
      this.#items.delete(hash);
      this.#items.set(hash, bytes);
    }
    return Promise.resolve(bytes);
  }

  put(hash: string, bytes: Uint8Array): Promise<void> {
    if (!HASH.test(hash)) {
      return Promise.reject(new TypeError(`Invalid payload hash "${hash}": must be a hex sha-256`));
    }
    const actual = sha256Hex(bytes);
    if (actual !== hash) return Promise.reject(new PayloadHashMismatchError(hash, actual));
    this.#set(hash, bytes.slice());
    return Promise.resolve();
  }

  /** Outputs kept. */
  get size(): number {
    return this.#items.size;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * This store, and behind it the outputs the live job actors of `tree` hold (so that a node
   * restarted from its journal serves the outputs it had before the crash).
   */
  payloads(tree: ActorTree): PayloadStore {
    const fromActors = (hash: string): Uint8Array | undefined => {
      for (const cell of tree.jobs.cells()) {
        for (const output of Object.values(jobContextOf(cell).outputs)) {
          if (output.commitment !== hash) continue;
          const bytes = encoder.encode(canonicalJson(output.value));
          if (sha256Hex(bytes) === hash) return bytes;
        }
      }
      return undefined;
    };
    return {
      has: async (hash) => (await this.has(hash)) || fromActors(hash) !== undefined,
      get: async (hash) => (await this.get(hash)) ?? fromActors(hash),
      put: (hash, bytes) => this.put(hash, bytes),
    };
  }

  #set(hash: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.maxBytes) return;
    const old = this.#items.get(hash);
    if (old !== undefined) {
      this.#items.delete(hash);
      this.#bytes -= old.byteLength;
    }
    this.#items.set(hash, bytes);
    this.#bytes += bytes.byteLength;
    while (this.#items.size > this.maxEntries || this.#bytes > this.maxBytes) {
      const [oldest, value] = this.#items.entries().next().value!;
      this.#items.delete(oldest);
      this.#bytes -= value.byteLength;
    }
  }
}

/** Options of an {@link OutputFetcher}. */
export interface OutputFetcherOptions {
  readonly self: NodeId;
  readonly network: NetworkPort;
  readonly tree: ActorTree;
  /** Where fetched outputs are kept (and served from). */
  readonly outputs: OutputStore;
  /** Hands an event to the inbox. */
  readonly submit: (source: "network", addressed: AddressedEvent) => void;
  /** Time allowed for one peer's transfer. @default 30_000 */
  readonly timeoutMs?: number;
  readonly log: {
    info(message: string, properties?: Record<string, unknown>): void;
    warn(message: string, properties?: Record<string, unknown>): void;
  };
}

/** What one {@link OutputFetcher.fetch} did. */
export type OutputFetchOutcome =
  /** Fetched from `peer` and handed to the job. */
  | { readonly status: "fetched"; readonly peer: NodeId }
  /** Nothing to do: not a chosen verifier, no result on chain, or the output is here. */
  | { readonly status: "not_needed" }
  /** No peer served it; why, per peer. */
  | { readonly status: "failed"; readonly failures: readonly string[] };

/**
 * Fetches the output of a job's on-chain result by its commitment, for a chosen verifier (to
 * verify it) or the job's owner (to have what it paid for).
 */
export class OutputFetcher {
  readonly #o: OutputFetcherOptions;
  /** Fetches under way, by job. */
  readonly #running = new Map<string, Promise<OutputFetchOutcome>>();

  constructor(options: OutputFetcherOptions) {
    this.#o = options;
  }

  /** Fetches under way. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * If this node is a chosen verifier or the owner of `jobId`, the chain shows a result and the
   * output for it is not here, fetches it: from the worker, then the other chosen verifiers, then
   * the owner.
   */
  fetch(jobId: string, options: { signal?: AbortSignal } = {}): Promise<OutputFetchOutcome> {
    const running = this.#running.get(jobId);
    if (running !== undefined) return running;
    const work = this.#fetch(jobId, options.signal).finally(() => this.#running.delete(jobId));
    this.#running.set(jobId, work);
    return work;
  }

  /** Why the output of `jobId` is wanted: the claim on chain, or undefined if it is not. */
  #wanted(jobId: string): { worker: NodeId; commitment: string; holders: NodeId[] } | undefined {
    const cell = this.#o.tree.get(jobAddress(jobId));
    if (cell === undefined || cell.done) return undefined;
    const c = jobContextOf(cell);
    if (c.result === null) return undefined;
    if (!c.verifiers.includes(this.#o.self) && c.owner !== this.#o.self) return undefined;
    const { worker, commitment } = c.result;
    if (!HASH.test(commitment)) return undefined; // a failure claim has no output
    if (c.outputs[worker]?.commitment === commitment) return undefined;
    const holders = [...new Set([worker, ...c.verifiers, c.owner])]
      .filter((peer) => peer !== this.#o.self);
    return { worker, commitment, holders };
  }

  async #fetch(jobId: string, signal: AbortSignal | undefined): Promise<OutputFetchOutcome> {
    const wanted = this.#wanted(jobId);
    if (wanted === undefined) return { status: "not_needed" };
    const { worker, commitment } = wanted;
    const failures: string[] = [];
    for (const peer of wanted.holders) {
      if (this.#wanted(jobId) === undefined) return { status: "not_needed" }; // gossip came
      let output: unknown;
      try {
        const timeout = AbortSignal.timeout(this.#o.timeoutMs ?? 30_000);
        const bytes = await fetchPayloadFrom(this.#o.network, peer, commitment, {
          maxBytes: PAYLOAD_VALUE_LIMITS.maxBytes,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        output = decodeBoundedJson(bytes, PAYLOAD_VALUE_LIMITS);
        await this.#o.outputs.put(commitment, bytes);
      } catch (error) {
        signal?.throwIfAborted();
        const message = (error as Error).message;
        failures.push(`${peer}: ${message}`);
        const code = error instanceof PayloadHashMismatchError
          ? "hash_mismatch"
          : error instanceof BoundedJsonError
          ? error.code
          : undefined;
        if (code !== undefined) {
          // It served bytes that are not the output: that costs it.
          this.#o.network.reject?.(peer, PAYLOAD_PROTOCOL, code, message);
          this.#o.submit("network", {
            target: peerAddress(peer),
            event: { type: "peer.scored", delta: WIRE_PENALTY, reason: message },
          });
        }
        this.#o.log.warn("Cannot fetch the output of job {jobId} from {peer}: {message}", {
          jobId,
          peer,
          message,
        });
        continue;
      }
      this.#o.log.info("Fetched the output of job {jobId} ({commitment}) from {peer}", {
        jobId,
        commitment,
        peer,
      });
      this.#o.submit("network", {
        target: jobAddress(jobId),
        event: { type: "job.result.received", worker, commitment, output, via: "fetch" },
      });
      return { status: "fetched", peer };
    }
    return { status: "failed", failures };
  }
}
