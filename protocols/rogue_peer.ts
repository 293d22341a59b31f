/**
 * A rogue peer for adversarial tests and benchmarks: a real libp2p host that sends gossip
 * messages signed with keys of its choosing, straight onto its gossipsub stream to one peer,
 * bypassing its own publish path (no rate limit, no size check, no validation on its side).
 * Each message is a genuine StrictSign message (`libp2p-pubsub:` + protobuf, signed by the
 * chosen key), so the receiver's gossipsub accepts the signature and the boundary policies
 * behind it are what is tested. Not used by the node.
 *
 * ```ts ignore
 * const key = await generateKeyPair("Ed25519");
 * const host = await createLibp2pHost({ privateKey: key, listen: ["/ip4/127.0.0.2/tcp/0"] });
 * const rogue = new RoguePeer(host, key);
 * const keys = await KeyRing.create(10);
 * await rogue.inject(victim.self, TOPICS.results, bytes, keys.next());
 * ```
 *
 * @module
 */
import { generateKeyPair, publicKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { RPC } from "@libp2p/gossipsub/message";
import type { NodeId } from "../machines/types.ts";
import type { Libp2pHost } from "./libp2p_host.ts";

const SIGN_PREFIX = new TextEncoder().encode("libp2p-pubsub:");

/** A message signed by `key` (its author is `key`'s peer id), ready for an RPC frame. */
export async function forgeMessage(
  topic: string,
  data: Uint8Array,
  key: PrivateKey,
): Promise<RPC.Message> {
  const message: RPC.Message = {
    from: peerIdFromPrivateKey(key).toMultihash().bytes,
    data,
    seqno: crypto.getRandomValues(new Uint8Array(8)),
    topic,
  };
  const unsigned = RPC.Message.encode(message);
  const signed = new Uint8Array(SIGN_PREFIX.byteLength + unsigned.byteLength);
  signed.set(SIGN_PREFIX);
  signed.set(unsigned, SIGN_PREFIX.byteLength);
  return {
    ...message,
    signature: await key.sign(signed),
    key: publicKeyToProtobuf(key.publicKey),
  };
}

/** Fresh Ed25519 keys handed out in turn, each `perKey` times before the next. */
export class KeyRing {
  readonly keys: readonly PrivateKey[];
  readonly #perKey: number;
  #uses = 0;

  private constructor(keys: PrivateKey[], perKey: number) {
    this.keys = keys;
    this.#perKey = perKey;
  }

  /** `count` fresh keys; {@link KeyRing.next} moves to the next key every `perKey` calls. */
  static async create(count: number, perKey = 1): Promise<KeyRing> {
    const keys = await Promise.all(Array.from({ length: count }, () => generateKeyPair("Ed25519")));
    return new KeyRing(keys, perKey);
  }

  /** The key to sign with now. */
  next(): PrivateKey {
    const key = this.keys[Math.floor(this.#uses / this.#perKey) % this.keys.length]!;
    this.#uses++;
    return key;
  }

  /** The peer ids of the keys. */
  peerIds(): NodeId[] {
    return this.keys.map((key) => peerIdFromPrivateKey(key).toString());
  }
}

interface GossipSubInternals {
  sendRpc(peer: string, rpc: RPC): boolean;
  streamsOutbound: Map<string, unknown>;
}

/** A host that injects forged gossip to its peers. */
export class RoguePeer {
  readonly host: Libp2pHost;
  /** The host's own key, used when no other is given. */
  readonly key: PrivateKey;

  constructor(host: Libp2pHost, key: PrivateKey) {
    if (peerIdFromPrivateKey(key).toString() !== host.self) {
      throw new TypeError(`Cannot make a rogue peer: the key is not the host's (${host.self})`);
    }
    this.host = host;
    this.key = key;
  }

  /** Whether the rogue has a gossipsub stream to `peer` to inject on. */
  canReach(peer: NodeId): boolean {
    return this.#pubsub().streamsOutbound.has(peer);
  }

  /**
   * Sends one RPC frame holding `data` on `topic`, signed by `key` (the host's own key by
   * default), to `peer`. Resolves `false` when there is no stream to `peer`.
   */
  async inject(
    peer: NodeId,
    topic: string,
    data: Uint8Array,
    key?: PrivateKey,
  ): Promise<boolean> {
    const message = await forgeMessage(topic, data, key ?? this.key);
    return this.#pubsub().sendRpc(peer, { subscriptions: [], messages: [message] });
  }

  /** Sends already forged messages to `peer` in one RPC frame. */
  injectForged(peer: NodeId, messages: RPC.Message[]): boolean {
    return this.#pubsub().sendRpc(peer, { subscriptions: [], messages });
  }

  #pubsub(): GossipSubInternals {
    return this.host.libp2p.services.pubsub as unknown as GossipSubInternals;
  }
}
