/**
 * The capability index: workers advertise what they can run (a model by content hash, a
 * hardware class, a role) as DHT provider records, and clients find them without waiting for
 * gossip. Each capability is a namespaced string (`ciro:cap:model:<hash>`, `ciro:cap:hw:gpu`,
 * `ciro:cap:role:worker`) whose sha-256 becomes a CIDv1 (raw codec): the DHT key.
 *
 * ```ts ignore
 * const host = await createLibp2pHost({ bootstrap: [bootstrapAddress] });
 * await host.capabilities.advertise({ type: "hardware", hardware: "gpu" });
 * const workers = await host.capabilities.findProviders(
 *   { type: "hardware", hardware: "gpu" },
 *   { limit: 5, signal: AbortSignal.timeout(5_000) },
 * );
 * ```
 *
 * @module
 */
import type { Libp2p } from "libp2p";
import type { PeerInfo } from "@libp2p/interface";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import type { HardwareClass, NodeId, Role } from "../machines/types.ts";

/** Something a node can do, as advertised in the DHT. */
export type Capability =
  | { readonly type: "model"; readonly hash: string }
  | { readonly type: "hardware"; readonly hardware: HardwareClass }
  | { readonly type: "role"; readonly role: Role };

/** A node found to provide a capability, with the addresses the DHT knows for it. */
export interface Provider {
  readonly peer: NodeId;
  readonly multiaddrs: readonly string[];
}

/** Options of {@link CapabilityIndex.findProviders}. */
export interface FindProvidersOptions {
  /** Stop after this many providers. @default 20 */
  readonly limit?: number;
  /** Ends the lookup; the providers found so far are returned. */
  readonly signal?: AbortSignal;
}

const ROLES: readonly string[] = ["client", "worker", "verifier", "bootstrap"];

/** The namespaced string a capability is keyed by. Throws `TypeError` for a malformed one. */
export function capabilityKey(capability: Capability): string {
  switch (capability.type) {
    case "model":
      if (!/^[0-9a-f]{64}$/.test(capability.hash)) {
        throw new TypeError(`Invalid model capability "${capability.hash}": must be a hex sha-256`);
      }
      return `ciro:cap:model:${capability.hash}`;
    case "hardware":
      if (capability.hardware !== "cpu" && capability.hardware !== "gpu") {
        throw new TypeError(
          `Invalid hardware capability "${capability.hardware}": must be cpu or gpu`,
        );
      }
      return `ciro:cap:hw:${capability.hardware}`;
    case "role":
      if (!ROLES.includes(capability.role)) {
        throw new TypeError(
          `Invalid role capability "${capability.role}": must be one of ${ROLES.join(", ")}`,
        );
      }
      return `ciro:cap:role:${capability.role}`;
  }
}

/** The DHT key of a capability: CIDv1, raw codec, sha-256 of {@link capabilityKey}. */
export async function capabilityCid(capability: Capability): Promise<CID> {
  const digest = await sha256.digest(new TextEncoder().encode(capabilityKey(capability)));
  return CID.createV1(raw.code, digest);
}

/** Advertises and finds capabilities through the node's content routing (the Kademlia DHT). */
export class CapabilityIndex {
  readonly #node: Libp2p;
  readonly #advertised = new Set<string>();

  constructor(node: Libp2p) {
    this.#node = node;
  }

  /**
   * Publishes a provider record for `capability` on the closest DHT peers; the DHT re-provides
   * it until {@link CapabilityIndex.withdraw}.
   */
  async advertise(capability: Capability, options: { signal?: AbortSignal } = {}): Promise<void> {
    const cid = await capabilityCid(capability);
    await this.#node.contentRouting.provide(cid, options.signal ? { signal: options.signal } : {});
    this.#advertised.add(capabilityKey(capability));
  }

  /** Stops re-providing `capability` (existing records expire on their own). */
  async withdraw(capability: Capability, options: { signal?: AbortSignal } = {}): Promise<void> {
    const cid = await capabilityCid(capability);
    await this.#node.contentRouting.cancelReprovide(
      cid,
      options.signal ? { signal: options.signal } : {},
    );
    this.#advertised.delete(capabilityKey(capability));
  }

  /** The capabilities this node advertises, as keys. */
  advertised(): string[] {
    return [...this.#advertised];
  }

  /**
   * Finds nodes that advertise `capability`, other than this one, up to `limit`. An aborted
   * `signal` ends the lookup early with what was found.
   */
  async findProviders(
    capability: Capability,
    options: FindProvidersOptions = {},
  ): Promise<Provider[]> {
    const limit = options.limit ?? 20;
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot find providers: limit must be a positive integer, got ${limit}`);
    }
    const cid = await capabilityCid(capability);
    const self = this.#node.peerId.toString();
    const found = new Map<string, Provider>();
    const controller = new AbortController();
    const signal = options.signal === undefined
      ? controller.signal
      : AbortSignal.any([options.signal, controller.signal]);
    try {
      for await (const info of this.#node.contentRouting.findProviders(cid, { signal })) {
        const peer = info.id.toString();
        if (peer === self || found.has(peer)) continue;
        found.set(peer, toProvider(info));
        if (found.size >= limit) break;
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    } finally {
      controller.abort();
    }
    return [...found.values()];
  }
}

function toProvider(info: PeerInfo): Provider {
  return {
    peer: info.id.toString(),
    multiaddrs: info.multiaddrs.map((address) => address.toString()),
  };
}
