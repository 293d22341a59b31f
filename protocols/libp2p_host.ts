/**
 * The libp2p host: the real {@link NetworkPort}. One libp2p v3 node with TCP (and WebSockets
 * when a `/ws` address is listened on), Noise, Yamux, identify, ping, gossipsub (strict
 * signing), a Kademlia DHT under our own protocol (`/ciro/kad/1.0.0`, server mode) and
 * bootstrap peers; plus the boundary policies that sit in front of the actors:
 *
 * - **Validation**: each subscription's validator becomes the gossipsub topic validator;
 *   `reject` maps to `TopicValidatorResult.Reject` (the forwarding peer loses score), `ignore`
 *   to `Ignore`. Messages above {@link MAX_MESSAGE_BYTES}, unsigned, or on no subscribed topic
 *   are rejected before any subscriber sees them.
 * - **Rate limit**: one token per message from the forwarding peer, taken before validation
 *   ({@link RateLimiter}); over the limit the message is ignored (no score change: a burst from
 *   an honest relay is not misbehaviour) and counted in {@link Libp2pHost.stats}. A peer far
 *   over it (past five bursts of excess at over three times the rate, `floodLimit`) is flooding:
 *   it is banned at once ({@link FloodGuard}), since every message it sends costs gossipsub's
 *   decoding and signature check before the limiter can ignore it.
 * - **Unbonded authors**: with `isBonded`, a message whose author holds no bond also takes a
 *   token from the author's small budget (`unbondedRateLimit`); over it, ignored.
 * - **Bans**: a peer that forwards more than `maxRejections` rejected messages or malformed
 *   direct requests (default 20, counted until it has been quiet for `rejectionMemoryMs`), or
 *   whose gossipsub score falls to the graylist threshold (forged signatures), is disconnected
 *   and denied by the connection gater, every way, until the ban expires (`banMs`, default
 *   10 min). Rejections also count per IP address outside `trustedRanges`
 *   (`maxRejectionsPerIp`): over it the address is banned. Every rejection is logged at warn
 *   through a rate-limited {@link RejectionLog}; bans are logged with their reason.
 * - **Fair ingress**: accepted messages wait in a bounded queue per forwarding peer and are
 *   delivered round robin, a batch per turn of the event loop ({@link FairQueue}), a turn
 *   ending early once it has used `ingress.sliceMs` (5 ms). Gossipsub handles one message of a
 *   peer's stream at a time, and at most `ingress.validationsPerTurn` (16) messages are
 *   validated per turn ({@link TurnBudget}): a flood's backlog waits in its stream, and the
 *   status endpoint and other peers get their turns in between.
 * - **Publishing**: a publish that finds no peer subscribed to its topic (gossipsub runs with
 *   `allowPublishToZeroTopicPeers: false`) waits in a bounded queue per topic with an expiry
 *   ({@link PublishQueue}, `publishQueue`), behind which later publishes on the topic line up,
 *   and goes out, in order, when a peer subscribes (or at a gossipsub heartbeat that finds one);
 *   drops are counted in {@link Libp2pHost.stats}. `publish()` resolves once the message is
 *   sent or queued: a node that has just (re)started loses no result to an empty mesh.
 * - **Direct messages** (protocol v2): `send` carries a message on a direct topic (bids,
 *   assignments, results, attestations) to one peer over {@link MESSAGE_PROTOCOL}, one
 *   request per message (`[topic length][topic][message]`), answered once the receiver took
 *   it. At the receiver it meets the gossip boundary: bans, the per-peer rate limit, the
 *   unbonded budget, the size limit, the subscription's validator (a rejection counts against
 *   the sender, the Noise-authenticated peer), then fair ingress. Its streams are admitted by
 *   their own {@link DirectLimiter} (`directMessages`), looser than the other direct protocols'.
 *   A direct topic is never gossiped: `publish` refuses it, `subscribe` joins no mesh for it.
 * - **Direct protocols**: `handle`/`request` exchange one length-prefixed request and one
 *   status-tagged, length-prefixed response per stream, with size limits on both sides and a
 *   timeout (`requestTimeoutMs`) merged with the caller's `AbortSignal`. Each served stream is
 *   admitted first by the per-peer limits ({@link DirectLimiter}: concurrency, rate) and cut
 *   when idle for `direct.idleTimeoutMs`. Writes respect
 *   backpressure (`send()` returning `false` waits for `drain`); reads pause the stream when
 *   the reader falls behind ({@link StreamReader}). The yamux stream window is capped at
 *   2 MiB (default 16 MiB) so that a paused stream cannot overflow its 4 MiB read buffer.
 * - **Joining**: while connected to none of its bootstrap peers the host dials them again
 *   (`bootstrapRetryMs`, doubling to 30 s): the bootstrap module dials once, and a dial that
 *   failed on a loaded machine left the node alone. libp2p's connection monitor closes a
 *   connection only after 30 s without a ping answer, and the ping protocol allows 8 inbound and
 *   4 outbound streams per connection, so that the monitor and the heartbeat do not collide.
 * - **Peer events**: `connected` (`peer:connect`), `identified` (`peer:identify`, with the
 *   peer's protocols), `heartbeat` (a ping to every connected peer each `heartbeatMs`, default
 *   5 s, with the round trip) and `disconnected` (`peer:disconnect`).
 *
 * Peer score parameters are in `gossip_score.ts`, stream framing in `stream_framing.ts`, address
 * ranges in `cidr.ts`.
 *
 * `trustedRanges` also join the connection manager's allow list (exempt from the per-IP
 * inbound connection rate limit, which refuses a 6th connection per second from one host),
 * and the DHT keeps their addresses in peer records (the default mapper drops every private
 * address, loopback included).
 *
 * ```ts ignore
 * import { createLibp2pHost } from "./libp2p_host.ts";
 * import { TOPICS } from "./messages.ts";
 *
 * const host = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], bootstrap: [] });
 * host.subscribe(TOPICS.jobs, () => "accept", (message) => console.log(message.from));
 * console.log(host.multiaddrs());
 * await host.stop();
 * ```
 *
 * @module
 */
import { createLibp2p, type Libp2p } from "libp2p";
import { tcp } from "@libp2p/tcp";
import { webSockets } from "@libp2p/websockets";
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { type Identify, identify } from "@libp2p/identify";
import { type Ping, ping } from "@libp2p/ping";
import {
  type GossipSub,
  gossipsub,
  type Message as GossipsubMessage,
  StrictSign,
  TopicValidatorResult,
} from "@libp2p/gossipsub";
import { type KadDHT, kadDHT } from "@libp2p/kad-dht";
import { bootstrap } from "@libp2p/bootstrap";
import type { MultiaddrConnection, PeerId, PeerInfo, PrivateKey, Stream } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { getLogger } from "@logtape/logtape";
import type { NodeId } from "../machines/types.ts";
import {
  isAnnouncementTopic,
  isDirectTopic,
  MAX_MESSAGE_BYTES,
  type Topic,
  TOPICS,
} from "./messages.ts";
import type {
  GossipMessage,
  NetworkCallOptions,
  NetworkPort,
  PeerEvent,
  ValidationResult,
} from "./network_port.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limit.ts";
import { FloodGuard } from "./flood_guard.ts";
import { TurnBudget } from "./turn_budget.ts";
import { RejectionLog } from "./rejection_log.ts";
import { FairQueue } from "./fair_queue.ts";
import { PublishQueue, type PublishQueueOptions, type Waiting } from "./publish_queue.ts";
import { DirectLimiter, type DirectLimitOptions } from "./direct_limits.ts";
import { loadOrCreateIdentity } from "./identity.ts";
import { CapabilityIndex } from "./capability_index.ts";
import {
  type Cidr,
  cidrToMultiaddr,
  ipInRanges,
  NON_PUBLIC_RANGES,
  parseCidr,
  TrustedIpSet,
} from "./cidr.ts";
import { PEER_SCORE_THRESHOLDS, peerScoreParams } from "./gossip_score.ts";
import { frame, idleSignal, readFrame, sendAll, StreamReader } from "./stream_framing.ts";

const log = getLogger(["ciro", "network"]);

/** Largest yamux receive window of a stream: what a sender may have in flight. */
export const MAX_STREAM_WINDOW = 2 * 1024 * 1024;

/** The DHT protocol: ours, so the node never joins (or pollutes) the public IPFS DHT. */
export const DHT_PROTOCOL = "/ciro/kad/1.0.0";

/** The services every host runs. */
export type HostServices = {
  identify: Identify;
  ping: Ping;
  pubsub: GossipSub;
  dht: KadDHT;
};

/** Options of {@link createLibp2pHost}. */
export interface Libp2pHostOptions {
  /**
   * The node's key. Without it the key is loaded from (or created in) `dataDir`; without both
   * a fresh key is generated (a new peer id on every start).
   */
  readonly privateKey?: PrivateKey;
  /**
   * Addresses to listen on, for example `/ip4/127.0.0.1/tcp/4001` or `/ip4/127.0.0.1/tcp/0/ws`.
   * @default ["/ip4/127.0.0.1/tcp/0"]
   */
  readonly listen?: readonly string[];
  /** Bootstrap peers, like `/ip4/127.0.0.1/tcp/4001/p2p/<peer id>`. @default [] */
  readonly bootstrap?: readonly string[];
  /** The node's data directory: holds `identity.key` when `privateKey` is not given. */
  readonly dataDir?: string;
  /**
   * CIDRs whose IP colocation is not penalised, which bypass the inbound connection rate limit
   * and whose addresses the DHT keeps.
   * @default ["127.0.0.0/8", "::1/128"]
   */
  readonly trustedRanges?: readonly string[];
  /** Per-peer gossip rate limit (messages forwarded to us). @default {capacity: 500, refillPerSecond: 250} */
  readonly rateLimit?: RateLimitOptions;
  /**
   * Whether a peer holds a bond on chain. Messages authored by a peer that does not draw on a
   * separate, small budget ({@link Libp2pHostOptions.unbondedRateLimit}). Without it every
   * peer counts as bonded.
   */
  readonly isBonded?: (peer: NodeId) => boolean;
  /** Per-author budget of peers that are not bonded. @default {capacity: 20, refillPerSecond: 2} */
  readonly unbondedRateLimit?: RateLimitOptions;
  /**
   * Messages a peer may send past its rate limit (`capacity`, refilled at `refillPerSecond`)
   * before it counts as flooding and is banned; see {@link FloodGuard}.
   * @default five bursts of `rateLimit` refilled at twice its rate: {capacity: 2_500, refillPerSecond: 500}
   */
  readonly floodLimit?: Omit<RateLimitOptions, "now" | "maxKeys">;
  /** Rejected messages a peer may forward before it is disconnected and banned. @default 20 */
  readonly maxRejections?: number;
  /**
   * Rejected messages all peers from one IP address outside `trustedRanges` may forward before
   * the address is banned (fresh keys from one place share one budget). @default 20
   */
  readonly maxRejectionsPerIp?: number;
  /** Fair ingress: bounded queues per forwarding peer, delivered round robin. */
  readonly ingress?: {
    /** Accepted messages one peer may have waiting for delivery. @default 256 */
    readonly perPeer?: number;
    /** Accepted messages all peers may have waiting. @default 4_096 */
    readonly total?: number;
    /** Messages delivered per turn of the event loop. @default 32 */
    readonly batch?: number;
    /** Time delivery may take per turn of the event loop, in milliseconds. @default 5 */
    readonly sliceMs?: number;
    /**
     * Gossip messages validated per turn of the event loop; later ones wait for a later turn,
     * and their peer's stream with them ({@link TurnBudget}). @default 16
     */
    readonly validationsPerTurn?: number;
  };
  /** Limits of the direct protocols (requests, snapshots, payloads); see {@link DirectLimiter}. */
  readonly direct?: DirectLimitOptions;
  /**
   * Limits of the streams that carry direct messages ({@link MESSAGE_PROTOCOL}); each message
   * also takes a token of the per-peer rate limit, as gossip does.
   * @default {perPeerConcurrency: 16, totalConcurrency: 256, perPeerBurst: 400, perPeerPerSecond: 200}
   */
  readonly directMessages?: DirectLimitOptions;
  /**
   * Publishes made while no peer is subscribed to the topic wait here (bounded per topic, with
   * an expiry) and go out once one subscribes; see {@link PublishQueue}.
   * @default {perTopic: 128, expiryMs: 60_000}
   */
  readonly publishQueue?: PublishQueueOptions;
  /** Where boundary rejections are logged. @default a new {@link RejectionLog} */
  readonly rejectionLog?: RejectionLog;
  /** How long a peer's rejections are remembered after its last one. @default 600_000 */
  readonly rejectionMemoryMs?: number;
  /** How long a ban lasts. @default 600_000 */
  readonly banMs?: number;
  /** Interval of the ping heartbeat to every connected peer; 0 turns it off. @default 5_000 */
  readonly heartbeatMs?: number;
  /** Time allowed for one direct request, dial to answer. @default 10_000 */
  readonly requestTimeoutMs?: number;
  /** Largest direct request accepted. @default 1_048_576 */
  readonly maxRequestBytes?: number;
  /** Largest direct response accepted. @default 8_388_608 */
  readonly maxResponseBytes?: number;
  /** Run the DHT as a client only (no routing for others). @default false */
  readonly dhtClientMode?: boolean;
  /**
   * While connected to none of the `bootstrap` peers, they are dialled again after this long,
   * doubling up to 30 s (the bootstrap module dials them once: a node whose first dial failed,
   * on a loaded machine, stayed alone for good). @default 1_000
   */
  readonly bootstrapRetryMs?: number;
  /** Start the node before returning. @default true */
  readonly start?: boolean;
  /** Stops the host when aborted. */
  readonly signal?: AbortSignal;
}

/** Counters of the boundary policies. */
export interface HostStats {
  /** Gossip messages ignored because their forwarder was over its rate limit. */
  readonly rateLimited: number;
  /** Gossip messages ignored because their author is not bonded and was over its budget. */
  readonly unbondedLimited: number;
  /** Peers banned for flooding (far past their rate limit). */
  readonly floodBans: number;
  /**
   * Messages ignored because their forwarder was banned: what it had got into this node's
   * buffers before its connection closed (gossipsub decodes and checks each one first).
   */
  readonly bannedIgnored: number;
  /** Accepted gossip messages dropped because their forwarder's ingress queue was full. */
  readonly queueFull: number;
  /** Accepted messages dropped from a full ingress (the longest queue loses). */
  readonly queueEvicted: number;
  /** IP addresses banned. */
  readonly ipBans: number;
  /** Direct streams refused by the per-peer limits (busy, rate limited). */
  readonly directRefused: number;
  /** Direct streams cut because they made no progress. */
  readonly directIdle: number;
  /** Direct requests rejected as malformed (counted against the peer like a rejected message). */
  readonly directRejected: number;
  /** Gossip messages rejected (by a validator or a boundary check). */
  readonly rejected: number;
  /** Gossip messages ignored by a validator. */
  readonly ignored: number;
  /** Bans issued. */
  readonly bans: number;
  /** Publishes waiting now for a topic peer. */
  readonly publishWaiting: number;
  /** Publishes that waited for a topic peer and then went out. */
  readonly publishFlushed: number;
  /**
   * Publishes that waited and were dropped: past the expiry, pushed out of a full topic queue,
   * or still waiting when the host stopped.
   */
  readonly publishDropped: number;
  /** Times the bootstrap peers were dialled again because none was connected. */
  readonly bootstrapRedials: number;
}

/** A direct request failed on the remote peer, or its framing was wrong. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  readonly protocol: string;
  readonly peer: NodeId;
  constructor(protocol: string, peer: NodeId, message: string, options?: ErrorOptions) {
    super(message, options);
    this.protocol = protocol;
    this.peer = peer;
  }
}

/** The libp2p implementation of {@link NetworkPort}. */
export interface Libp2pHost extends NetworkPort {
  /** The libp2p node, for protocols that stream (payloads) or need the DHT. */
  readonly libp2p: Libp2p<HostServices>;
  /** Capability advertisement and lookup over the DHT. */
  readonly capabilities: CapabilityIndex;
  /** The addresses peers can dial, each ending in `/p2p/<peer id>`. */
  multiaddrs(): string[];
  /** Disconnects `peer` and refuses it until the ban expires; logs the reason. */
  ban(peer: NodeId, reason: string, durationMs?: number): void;
  /** Whether `peer` is banned now. */
  isBanned(peer: NodeId): boolean;
  /** The gossipsub score of a peer (0 for an unknown one). */
  score(peer: NodeId): number;
  /** Dials a peer by multiaddr (`/ip4/…/tcp/…/p2p/<id>`), and resolves once connected. */
  dial(address: string, options?: NetworkCallOptions): Promise<NodeId>;
  /** Counters of the boundary policies. */
  stats(): HostStats;
  /** Whether `ip` is banned now. */
  isIpBanned(ip: string): boolean;
  /** The per-peer limits of the direct protocols, shared by every protocol this host serves. */
  readonly direct: DirectLimiter;
  /** The rate-limited log of boundary rejections. */
  readonly rejections: RejectionLog;
  /**
   * Counts a rejected message or request against `peer` (and its IP address, outside the
   * trusted ranges), logs it, and bans the peer or the address over its budget. For protocols
   * and the node to charge a peer for bad input found after the host's own checks.
   */
  reject(peer: NodeId, where: string, code: string, detail: string): void;
}

interface Subscription {
  readonly validate: (message: GossipMessage) => ValidationResult;
  readonly deliver: (message: GossipMessage) => void;
}

interface GossipSubScoring {
  getScore(peer: string): number;
}

/** Creates (and by default starts) a libp2p host. */
export async function createLibp2pHost(options: Libp2pHostOptions = {}): Promise<Libp2pHost> {
  const privateKey = options.privateKey ??
    (options.dataDir !== undefined ? await loadOrCreateIdentity(options.dataDir) : undefined);
  const trusted = (options.trustedRanges ?? ["127.0.0.0/8", "::1/128"]).map(parseCidr);
  const bans = new Map<string, number>();
  const isBanned = (peer: string): boolean => {
    const until = bans.get(peer);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    bans.delete(peer);
    return false;
  };
  const ipBans = new Map<string, number>();
  const isIpBanned = (ip: string | undefined): boolean => {
    if (ip === undefined) return false;
    const until = ipBans.get(ip);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    ipBans.delete(ip);
    return false;
  };
  const scoreParams = peerScoreParams(new TrustedIpSet(trusted));
  const bootstrapList = [...(options.bootstrap ?? [])];
  const peerDiscovery = bootstrapList.length > 0
    ? [bootstrap({ list: bootstrapList, timeout: 0 })]
    : [];
  const node = await createLibp2p({
    ...(privateKey !== undefined ? { privateKey } : {}),
    start: false,
    addresses: { listen: [...(options.listen ?? ["/ip4/127.0.0.1/tcp/0"])] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    // A paused stream still receives up to the yamux window; keep the window (2 MiB) below
    // the stream's read buffer limit (4 MiB) so pausing never overflows it.
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: MAX_STREAM_WINDOW } })],
    peerDiscovery,
    connectionManager: {
      allow: trusted.map(cidrToMultiaddr),
    },
    // libp2p's connection monitor pings every connection each 10 s and closes it when a ping
    // fails. With its defaults (a 5 s floor on the timeout, and the ping protocol's 1 outbound
    // and 2 inbound streams per connection, shared with our own heartbeat) a loaded machine lost
    // connections by the dozen: 25 in one 9-process discovery run, 14 to timeouts and the rest to
    // refused or reset ping streams; nodes went back to no peer at all. A connection is cut only
    // after 30 s without an answer now, and pings have room for both.
    connectionMonitor: { pingTimeout: { minTimeout: 30_000, maxTimeout: 60_000 } },
    // The node's bans bite here: a banned peer id or IP address is refused on every path in and
    // out until its ban expires.
    connectionGater: {
      denyDialPeer: (peer: PeerId) => isBanned(peer.toString()),
      denyDialMultiaddr: (address: Multiaddr) => isIpBanned(ipOf(address)),
      denyInboundConnection: (connection: MultiaddrConnection) =>
        isIpBanned(ipOf(connection.remoteAddr)),
      denyInboundEncryptedConnection: (peer: PeerId, connection: MultiaddrConnection) =>
        isBanned(peer.toString()) || isIpBanned(ipOf(connection.remoteAddr)),
      denyOutboundEncryptedConnection: (peer: PeerId) => isBanned(peer.toString()),
    },
    services: {
      identify: identify(),
      ping: ping({ maxInboundStreams: 8, maxOutboundStreams: 4 }),
      pubsub: gossipsub({
        globalSignaturePolicy: StrictSign,
        // A publish with no topic peer throws, and the host queues it until one subscribes.
        allowPublishToZeroTopicPeers: false,
        emitSelf: false,
        doPX: false,
        allowedTopics: Object.values(TOPICS),
        maxInboundDataLength: 4 * MAX_MESSAGE_BYTES,
        // One message of a peer's stream at a time, so that a validation paced to a later turn
        // (`ingress.validationsPerTurn`) holds the rest of the peer's backlog in its buffers
        // instead of decoding and checking all of it in one turn.
        awaitRpcHandler: true,
        awaitRpcMessageHandler: true,
        scoreParams,
        scoreThresholds: PEER_SCORE_THRESHOLDS,
      }),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: options.dhtClientMode ?? false,
        initialQuerySelfInterval: 0,
        peerInfoMapper: (info: PeerInfo) => keepRoutableAddresses(info, trusted),
      }),
    },
  });
  // Gossipsub takes a fixed list of topics; announcement shards are many (one per model), so
  // its allow list becomes a check: the gossip topics and well-formed shards, nothing else (not
  // the direct topics, which nobody gossips on).
  const fixed = new Set<string>(Object.values(TOPICS).filter((t) => !isDirectTopic(t)));
  (node.services.pubsub as unknown as { allowedTopics: { has(topic: string): boolean } })
    .allowedTopics = { has: (topic) => fixed.has(topic) || isAnnouncementTopic(topic) };
  const host = new Host(node, { ...options, isBanned, bans, isIpBanned, ipBans, trusted });
  if (options.start ?? true) await host.start();
  return host;
}

interface HostInit extends Libp2pHostOptions {
  readonly isBanned: (peer: string) => boolean;
  readonly bans: Map<string, number>;
  readonly isIpBanned: (ip: string | undefined) => boolean;
  readonly ipBans: Map<string, number>;
  readonly trusted: readonly Cidr[];
}

/** The IP address of a multiaddr, if it has one. */
function ipOf(address: Multiaddr): string | undefined {
  return address.getComponents().find((c) => c.name === "ip4" || c.name === "ip6")?.value;
}

/** A delivery waiting in the fair ingress queue. */
interface Delivery {
  readonly topic: string;
  readonly gossip: GossipMessage;
}

/** What gossipsub throws when a publish finds no topic peer (`allowPublishToZeroTopicPeers`). */
const NO_TOPIC_PEERS = "PublishError.NoPeersSubscribedToTopic";

/** The direct protocol that carries messages on direct topics (protocol v2), one per stream. */
export const MESSAGE_PROTOCOL = "/ciro/msg/2.0.0";

/** A direct message's frame: the topic's length (one byte), the topic, the message. */
function messageFrame(topic: string, data: Uint8Array): Uint8Array {
  const name = new TextEncoder().encode(topic);
  const out = new Uint8Array(1 + name.byteLength + data.byteLength);
  out[0] = name.byteLength;
  out.set(name, 1);
  out.set(data, 1 + name.byteLength);
  return out;
}

/** Errors a handler throws for bad input (charged to the peer), matched by name. */
const PEER_FAULTS = new Set(["SnapshotError", "WireError", "BoundedJsonError", "RuleViolation"]);

class Host implements Libp2pHost {
  readonly libp2p: Libp2p<HostServices>;
  readonly self: NodeId;
  readonly capabilities: CapabilityIndex;
  readonly direct: DirectLimiter;
  readonly directMessages: DirectLimiter;
  readonly rejections: RejectionLog;
  readonly #init: HostInit;
  readonly #limiter: FloodGuard;
  readonly #unbonded: RateLimiter;
  readonly #ingress: FairQueue<Delivery>;
  /** Paces gossip validation: `ingress.validationsPerTurn` per turn of the event loop. */
  readonly #turn: TurnBudget;
  readonly #outbox: PublishQueue;
  /** Topics whose waiting publishes are being sent now. */
  readonly #flushing = new Set<string>();
  /** Waiting publishes taken from the queue by a flush and not yet sent or put back. */
  #inFlush = 0;
  readonly #ipRejections = new Map<string, { count: number; lastAt: number }>();
  readonly #subscriptions = new Map<string, Set<Subscription>>();
  readonly #listeners = new Set<(event: PeerEvent) => void>();
  readonly #protocols = new Set<string>();
  readonly #rejections = new Map<string, { count: number; lastAt: number }>();
  readonly #counters = {
    rateLimited: 0,
    unbondedLimited: 0,
    floodBans: 0,
    bannedIgnored: 0,
    rejected: 0,
    ignored: 0,
    bans: 0,
    ipBans: 0,
    directRefused: 0,
    directIdle: 0,
    directRejected: 0,
  };
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #bootstrapTimer: ReturnType<typeof setTimeout> | undefined;
  #bootstrapRedials = 0;
  /** Peers the heartbeat is pinging now. */
  readonly #pinging = new Set<string>();
  #started = false;
  #stopping: Promise<void> | undefined;
  /** The forwarder of the message being validated, and whether a validator reported it. */
  #validating: { peer: NodeId; reported: boolean } | undefined;

  constructor(node: Libp2p<HostServices>, init: HostInit) {
    this.libp2p = node;
    this.self = node.peerId.toString();
    this.#init = init;
    this.#limiter = new FloodGuard(init.rateLimit, {
      ...(init.floodLimit !== undefined ? { excess: init.floodLimit } : {}),
      onFlood: (peer) => this.#flooding(peer),
    });
    this.#unbonded = new RateLimiter({
      capacity: 20,
      refillPerSecond: 2,
      ...init.unbondedRateLimit,
    });
    this.#turn = new TurnBudget({ perTurn: init.ingress?.validationsPerTurn ?? 16 });
    this.#ingress = new FairQueue<Delivery>((delivery) => this.#deliver(delivery), {
      ...init.ingress,
      sliceMs: init.ingress?.sliceMs ?? 5,
      onError: (error) => log.error("Ingress delivery failed: {error}", { error }),
    });
    this.#outbox = new PublishQueue(init.publishQueue);
    this.direct = new DirectLimiter(init.direct);
    this.directMessages = new DirectLimiter({
      perPeerConcurrency: 16,
      totalConcurrency: 256,
      perPeerBurst: 400,
      perPeerPerSecond: 200,
      ...init.directMessages,
    });
    this.#serve(MESSAGE_PROTOCOL, (r, f) => this.#receiveDirect(r, f), this.directMessages);
    // A message on an allowed topic this node does not subscribe to (another shard) meets the
    // boundary too (bans, the rate limit and its flood ban, pacing), then is ignored: without a
    // validator gossipsub would take it as valid and a flood there would cost nothing.
    const validators = node.services.pubsub.topicValidators;
    const fallback = (from: PeerId, message: GossipsubMessage) =>
      this.#turn.pace(this.#validate(message.topic, from, message));
    const get = validators.get.bind(validators);
    validators.get = (topic: string) => get(topic) ?? fallback;
    this.rejections = init.rejectionLog ?? new RejectionLog();
    this.capabilities = new CapabilityIndex(node);
    node.addEventListener("peer:connect", (event) => {
      const peer = event.detail.toString();
      if (init.isBanned(peer)) {
        void node.hangUp(event.detail).catch(() => {});
        return;
      }
      this.#emit({ type: "connected", peer });
    });
    node.addEventListener("peer:disconnect", (event) => {
      this.#emit({ type: "disconnected", peer: event.detail.toString() });
    });
    node.addEventListener("peer:identify", (event) => {
      this.#emit({
        type: "identified",
        peer: event.detail.peerId.toString(),
        protocols: [...event.detail.protocols],
      });
    });
    // Messages gossipsub refuses itself (a forged or missing signature) never reach the
    // validator; they cost the forwarder score. Score and ban agree: at the graylist threshold
    // the peer is banned like one over its rejection budget.
    node.services.pubsub.addEventListener("gossipsub:heartbeat", () => {
      this.#banGraylisted();
      this.#flushAll();
    });
    // A peer subscribed: what waited for a peer on its topics goes out now.
    node.services.pubsub.addEventListener("subscription-change", (event) => {
      for (const { topic, subscribe } of event.detail.subscriptions) {
        if (subscribe && this.#outbox.has(topic)) void this.#flush(topic);
      }
    });
    node.services.pubsub.addEventListener(
      "gossipsub:message",
      (event) => this.#onMessage(event.detail.propagationSource.toString(), event.detail.msg),
    );
    init.signal?.addEventListener("abort", () => void this.stop(), { once: true });
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#init.signal?.throwIfAborted();
    this.#started = true;
    await this.libp2p.start();
    const every = this.#init.heartbeatMs ?? 5_000;
    if (every > 0) {
      this.#heartbeat = setInterval(() => this.#ping(every), every);
      Deno.unrefTimer(this.#heartbeat);
    }
    this.#keepBootstrap(this.#init.bootstrapRetryMs ?? 1_000);
  }

  /**
   * Checks after `delayMs` that this node is connected to a bootstrap peer; if not, dials them
   * all again and checks again after twice the delay (at most 30 s); once connected, checks at
   * the first delay again (a bootstrap peer lost later is dialled again too).
   */
  #keepBootstrap(delayMs: number): void {
    const list = this.#init.bootstrap ?? [];
    if (list.length === 0) return;
    const first = this.#init.bootstrapRetryMs ?? 1_000;
    const ids = new Set(list.map((a) => /\/p2p\/([^/]+)$/.exec(a)?.[1]).filter((id) => id));
    this.#bootstrapTimer = setTimeout(() => {
      if (this.#stopping !== undefined) return;
      const connected = this.libp2p.getConnections().some((c) => ids.has(c.remotePeer.toString()));
      if (connected) return this.#keepBootstrap(first);
      this.#bootstrapRedials++;
      for (const address of list) {
        this.libp2p.dial(multiaddr(address), { signal: AbortSignal.timeout(10_000) }).catch(
          (error) =>
            log.debug("Cannot dial bootstrap peer {address}: {error}", {
              address,
              error: (error as Error).message,
            }),
        );
      }
      this.#keepBootstrap(Math.min(delayMs * 2, 30_000));
    }, delayMs);
    Deno.unrefTimer(this.#bootstrapTimer);
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
      clearTimeout(this.#bootstrapTimer);
      this.#ingress.close();
      this.#outbox.close();
      await this.libp2p.stop();
    })();
    return this.#stopping;
  }

  multiaddrs(): string[] {
    return this.libp2p.getMultiaddrs().map((address) => address.toString());
  }

  peers(): NodeId[] {
    return this.libp2p.getPeers().map((peer) => peer.toString());
  }

  async dial(address: string, options: NetworkCallOptions = {}): Promise<NodeId> {
    const connection = await this.libp2p.dial(multiaddr(address), withSignal(options.signal));
    return connection.remotePeer.toString();
  }

  score(peer: NodeId): number {
    return (this.libp2p.services.pubsub as unknown as GossipSubScoring).getScore(peer);
  }

  stats(): HostStats {
    const ingress = this.#ingress.stats();
    const outbox = this.#outbox.stats();
    return {
      ...this.#counters,
      queueFull: ingress.droppedPerKey,
      queueEvicted: ingress.droppedGlobal,
      publishWaiting: outbox.waiting + this.#inFlush,
      publishFlushed: outbox.flushed,
      publishDropped: outbox.expired + outbox.overflowed + outbox.closed,
      bootstrapRedials: this.#bootstrapRedials,
    };
  }

  isIpBanned(ip: string): boolean {
    return this.#init.isIpBanned(ip);
  }

  async publish(topic: Topic, data: Uint8Array, options: NetworkCallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (isDirectTopic(topic)) {
      throw new TypeError(`Cannot publish on "${topic}": it is a direct topic (send it to a peer)`);
    }
    if (data.byteLength > MAX_MESSAGE_BYTES) {
      throw new RangeError(
        `Cannot publish on "${topic}": ${data.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`,
      );
    }
    // Behind what already waits on the topic, so that order holds.
    if (this.#outbox.has(topic) || this.#flushing.has(topic)) {
      this.#outbox.push(topic, data);
      if (this.#hasTopicPeers(topic)) void this.#flush(topic);
      return;
    }
    if (!(await this.#send(topic, data))) this.#outbox.push(topic, data);
  }

  /**
   * Publishes now; false when nothing was sent: gossipsub has no topic peer, or none it could
   * write to yet (a peer whose subscription came in before the stream to it opened).
   */
  async #send(topic: string, data: Uint8Array): Promise<boolean> {
    try {
      const { recipients } = await this.libp2p.services.pubsub.publish(topic, data);
      return recipients.length > 0;
    } catch (error) {
      if ((error as Error).message === NO_TOPIC_PEERS) return false;
      throw error;
    }
  }

  /** Sends what waits on `topic`, in order, until gossipsub has no topic peer again. */
  async #flush(topic: string): Promise<void> {
    if (this.#flushing.has(topic) || this.#stopping !== undefined) return;
    this.#flushing.add(topic);
    try {
      while (this.#outbox.has(topic)) {
        const waiting: Waiting[] = this.#outbox.take(topic);
        this.#inFlush += waiting.length;
        for (let i = 0; i < waiting.length; i++) {
          let sent = false;
          try {
            sent = await this.#send(topic, waiting[i]!.data);
          } catch (error) {
            log.warn("Cannot publish a queued message on {topic}: {error}", {
              topic,
              error: (error as Error).message,
            });
            sent = true; // dropped: a message gossipsub refuses will not go later either
          }
          if (!sent) {
            this.#inFlush -= waiting.length - i;
            this.#outbox.putBack(topic, waiting.slice(i));
            return;
          }
          this.#inFlush--;
        }
      }
    } finally {
      this.#flushing.delete(topic);
    }
  }

  /** Expires what waited too long, and sends what waits on topics that have peers now. */
  #flushAll(): void {
    this.#outbox.expire();
    for (const topic of this.#outbox.topics()) {
      if (this.#hasTopicPeers(topic)) void this.#flush(topic);
    }
  }

  topicPeers(topic: Topic): number {
    return this.libp2p.services.pubsub.getSubscribers(topic).length;
  }

  #hasTopicPeers(topic: string): boolean {
    return this.libp2p.services.pubsub.getSubscribers(topic).length > 0;
  }

  subscribe(
    topic: Topic,
    validate: (message: GossipMessage) => ValidationResult,
    deliver: (message: GossipMessage) => void,
  ): () => void {
    const subscription: Subscription = { validate, deliver };
    let set = this.#subscriptions.get(topic);
    const pubsub = this.libp2p.services.pubsub;
    const direct = isDirectTopic(topic);
    if (set === undefined) {
      set = new Set();
      this.#subscriptions.set(topic, set);
      if (!direct) {
        pubsub.topicValidators.set(
          topic,
          (from, message) => this.#turn.pace(this.#validate(topic, from, message)),
        );
        pubsub.subscribe(topic);
      }
    }
    set.add(subscription);
    return () => {
      const current = this.#subscriptions.get(topic);
      if (current === undefined || !current.delete(subscription) || current.size > 0) return;
      this.#subscriptions.delete(topic);
      if (direct) return;
      pubsub.topicValidators.delete(topic);
      pubsub.unsubscribe(topic);
    };
  }

  handle(
    protocol: string,
    handler: (request: Uint8Array, from: NodeId) => Promise<Uint8Array>,
  ): void {
    if (protocol === MESSAGE_PROTOCOL) {
      throw new Error(`Cannot handle protocol "${protocol}": the host serves it (direct messages)`);
    }
    this.#serve(protocol, handler, this.direct);
  }

  async send(
    peer: NodeId,
    topic: Topic,
    data: Uint8Array,
    options: NetworkCallOptions = {},
  ): Promise<void> {
    if (data.byteLength > MAX_MESSAGE_BYTES) {
      throw new RangeError(
        `Cannot send on "${topic}": ${data.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`,
      );
    }
    await this.request(peer, MESSAGE_PROTOCOL, messageFrame(topic, data), options);
  }

  /**
   * A direct message (see the module doc): unframed, then through the gossip boundary to the
   * topic's subscriptions. Answers empty when taken (or ignored, as gossip would be); a refusal
   * throws, so the sender hears why.
   */
  #receiveDirect(request: Uint8Array, from: NodeId): Promise<Uint8Array> {
    const length = request[0] ?? 0;
    const topic = new TextDecoder().decode(request.subarray(1, 1 + length));
    const data = request.subarray(1 + length);
    if (request.byteLength < 1 + length || !isDirectTopic(topic)) {
      this.#counters.rejected++;
      this.reject(from, MESSAGE_PROTOCOL, "unknown_topic", `not a direct topic: "${topic}"`);
      return Promise.reject(new Error(`Refused: unknown_topic: not a direct topic: "${topic}"`));
    }
    const verdict = this.#admit(topic, from, from, data, true);
    if (verdict === "reject") return Promise.reject(new Error(`Refused: rejected on "${topic}"`));
    if (verdict === "accept") {
      this.#ingress.offer(from, { topic, gossip: { topic: topic as Topic, from, data } });
    }
    return Promise.resolve(new Uint8Array(0));
  }

  #serve(
    protocol: string,
    handler: (request: Uint8Array, from: NodeId) => Promise<Uint8Array>,
    limiter: DirectLimiter,
  ): void {
    if (this.#protocols.has(protocol)) {
      throw new Error(`Cannot handle protocol "${protocol}": it already has a handler`);
    }
    this.#protocols.add(protocol);
    const timeoutMs = this.#init.requestTimeoutMs ?? 10_000;
    // A direct message is one wire message and its topic: nothing larger is read.
    const maxRequest = protocol === MESSAGE_PROTOCOL
      ? 1 + 255 + MAX_MESSAGE_BYTES
      : this.#init.maxRequestBytes ?? 1_048_576;
    const maxResponse = this.#init.maxResponseBytes ?? 8_388_608;
    void this.libp2p.handle(protocol, async (stream, connection) => {
      const from = connection.remotePeer.toString();
      const admission = limiter.admit(from);
      if (!admission.ok) {
        this.#counters.directRefused++;
        this.rejections.reject(from, protocol, admission.code, admission.reason);
        await this.#refuse(stream, `Refused: ${admission.code}: ${admission.reason}`);
        return;
      }
      const deadline = AbortSignal.timeout(timeoutMs);
      const idle = idleSignal(limiter.idleTimeoutMs, deadline);
      const onData = () => idle.touch();
      stream.addEventListener("message", onData);
      try {
        if (this.#init.isBanned(from)) throw new Error(`Peer is banned: ${from}`);
        const reader = new StreamReader(stream);
        let request: Uint8Array | undefined;
        try {
          request = await readFrame(reader, maxRequest, idle.signal);
          if (request === undefined) throw new RangeError("Stream ended before the request");
        } catch (error) {
          const code = (error as Error).name === "StreamIdleError" ? "idle_timeout" : "bad_frame";
          if (code === "idle_timeout") this.#counters.directIdle++;
          else this.#counters.directRejected++;
          this.reject(from, protocol, code, (error as Error).message);
          throw error;
        }
        let status = 0;
        let body: Uint8Array;
        try {
          body = await handler(request, from);
          if (body.byteLength > maxResponse) {
            throw new RangeError(
              `Response too large: ${body.byteLength} bytes exceeds ${maxResponse}`,
            );
          }
        } catch (error) {
          status = 1;
          body = new TextEncoder().encode((error as Error).message ?? String(error));
          if (PEER_FAULTS.has((error as Error).name)) {
            this.#counters.directRejected++;
            const code = (error as { code?: unknown }).code;
            this.reject(
              from,
              protocol,
              typeof code === "string" ? code : "invalid",
              (error as Error).message,
            );
          }
        }
        const header = new Uint8Array(5);
        header[0] = status;
        new DataView(header.buffer).setUint32(1, body.byteLength);
        await sendAll(stream, header, idle.signal);
        await sendAll(stream, body, idle.signal, undefined, () => idle.touch());
        await stream.close({ signal: idle.signal });
      } catch (error) {
        log.debug("Direct request on {protocol} from {peer} failed: {error}", {
          protocol,
          peer: from,
          error: (error as Error).message,
        });
        stream.abort(error as Error);
      } finally {
        stream.removeEventListener("message", onData);
        idle.clear();
        admission.release();
      }
    }).catch((error) => log.error("Cannot register {protocol}: {error}", { protocol, error }));
  }

  /** Answers a refused stream with an error status at once, without reading its request. */
  async #refuse(stream: Stream, message: string): Promise<void> {
    try {
      const body = new TextEncoder().encode(message);
      const header = new Uint8Array(5);
      header[0] = 1;
      new DataView(header.buffer).setUint32(1, body.byteLength);
      const signal = AbortSignal.timeout(this.direct.idleTimeoutMs);
      await sendAll(stream, header, signal);
      await sendAll(stream, body, signal);
      await stream.close({ signal });
    } catch (error) {
      stream.abort(error as Error);
    }
  }

  async request(
    peer: NodeId,
    protocol: string,
    data: Uint8Array,
    options: NetworkCallOptions = {},
  ): Promise<Uint8Array> {
    const maxRequest = this.#init.maxRequestBytes ?? 1_048_576;
    if (data.byteLength > maxRequest) {
      throw new RangeError(
        `Cannot send request on "${protocol}": ${data.byteLength} bytes exceeds ${maxRequest}`,
      );
    }
    const maxResponse = this.#init.maxResponseBytes ?? 8_388_608;
    const timeout = AbortSignal.timeout(this.#init.requestTimeoutMs ?? 10_000);
    const signal = options.signal === undefined
      ? timeout
      : AbortSignal.any([options.signal, timeout]);
    const stream = await this.libp2p.dialProtocol(peerIdFromString(peer), protocol, { signal });
    try {
      const reader = new StreamReader(stream);
      await sendAll(stream, frame(data), signal);
      await stream.close({ signal });
      const header = await reader.readExactly(5, signal);
      if (header === undefined) {
        throw new ProtocolError(
          protocol,
          peer,
          `Peer closed the stream without answering: ${peer}`,
        );
      }
      const status = header[0];
      const length = new DataView(header.buffer, header.byteOffset, 5).getUint32(1);
      if (length > maxResponse) {
        throw new ProtocolError(
          protocol,
          peer,
          `Response too large: ${length} bytes exceeds ${maxResponse}`,
        );
      }
      const body = await reader.readExactly(length, signal);
      if (body === undefined) {
        throw new ProtocolError(protocol, peer, `Response truncated: ${peer}`);
      }
      if (status !== 0) {
        throw new ProtocolError(
          protocol,
          peer,
          `Request failed on peer ${peer}: ${new TextDecoder().decode(body)}`,
        );
      }
      return body;
    } catch (error) {
      stream.abort(error as Error);
      throw error;
    }
  }

  onPeerEvent(listener: (event: PeerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  /** A peer past its flood limit: logged and charged (its address too), then banned at once. */
  #flooding(peer: NodeId): void {
    this.#counters.floodBans++;
    const { capacity, refillPerSecond } = this.#limiter;
    const detail = `more than ${this.#limiter.excess.capacity} messages past its rate limit ` +
      `(${capacity} then ${refillPerSecond}/s)`;
    this.reject(peer, "gossipsub", "flooding", detail);
    if (!this.#init.isBanned(peer)) this.ban(peer, `flooding: ${detail}`);
    // Cut at once rather than close gracefully: what the flooder sends while a close waits on
    // its streams is read, decoded and signature-checked before the ban can ignore it.
    for (const connection of this.libp2p.getConnections(peerIdFromString(peer))) {
      connection.abort(new Error(`Banned for flooding: ${peer}`));
    }
  }

  ban(peer: NodeId, reason: string, durationMs = this.#init.banMs ?? 600_000): void {
    this.#init.bans.set(peer, Date.now() + durationMs);
    this.#rejections.delete(peer);
    this.#counters.bans++;
    log.warn("Banned peer {peer} for {durationMs} ms: {reason}", { peer, durationMs, reason });
    void this.libp2p.hangUp(peerIdFromString(peer)).catch(() => {});
  }

  /** Bans an IP address: every connection from it is closed and refused until the ban ends. */
  #banIp(ip: string, reason: string): void {
    const durationMs = this.#init.banMs ?? 600_000;
    this.#init.ipBans.set(ip, Date.now() + durationMs);
    this.#ipRejections.delete(ip);
    this.#counters.ipBans++;
    log.warn("Banned address {ip} for {durationMs} ms: {reason}", { ip, durationMs, reason });
    for (const connection of this.libp2p.getConnections()) {
      if (ipOf(connection.remoteAddr) === ip) void connection.close().catch(() => {});
    }
  }

  isBanned(peer: NodeId): boolean {
    return this.#init.isBanned(peer);
  }

  reject(peer: NodeId, where: string, code: string, detail: string): void {
    if (this.#validating?.peer === peer) this.#validating.reported = true;
    this.rejections.reject(peer, where, code, detail);
    const memory = this.#init.rejectionMemoryMs ?? 600_000;
    const limit = this.#init.maxRejections ?? 20;
    const count = countRejection(this.#rejections, peer, memory);
    if (count > limit && !this.#init.isBanned(peer)) {
      this.ban(
        peer,
        `sent ${count} rejected messages (limit ${limit}), last on ${where}: ${detail}`,
      );
    }
    const ipLimit = this.#init.maxRejectionsPerIp ?? 20;
    for (const ip of this.#ipsOf(peer)) {
      if (ipInRanges(ip, this.#init.trusted)) continue;
      const total = countRejection(this.#ipRejections, ip, memory);
      if (total > ipLimit && !this.#init.isIpBanned(ip)) {
        this.#banIp(
          ip,
          `peers from it sent ${total} rejected messages (limit ${ipLimit}), last ${peer} on ${where}: ${detail}`,
        );
      }
    }
  }

  /** The IP addresses `peer` is connected from now. */
  #ipsOf(peer: NodeId): string[] {
    let id: PeerId;
    try {
      id = peerIdFromString(peer);
    } catch {
      return [];
    }
    const ips = new Set<string>();
    for (const connection of this.libp2p.getConnections(id)) {
      const ip = ipOf(connection.remoteAddr);
      if (ip !== undefined) ips.add(ip);
    }
    return [...ips];
  }

  #validate(topic: string, from: PeerId, message: GossipsubMessage): TopicValidatorResult {
    if (message.type !== "signed") {
      const forwarder = from.toString();
      if (this.#init.isBanned(forwarder)) return TopicValidatorResult.Ignore;
      if (!this.#limiter.take(forwarder)) {
        this.#counters.rateLimited++;
        return TopicValidatorResult.Ignore;
      }
      this.#counters.rejected++;
      this.reject(forwarder, topic, "unsigned", "unsigned message");
      return TopicValidatorResult.Reject;
    }
    const verdict = this.#admit(
      topic,
      from.toString(),
      message.from.toString(),
      message.data,
      false,
    );
    if (verdict === "accept") return TopicValidatorResult.Accept;
    if (verdict === "ignore") return TopicValidatorResult.Ignore;
    return TopicValidatorResult.Reject;
  }

  /**
   * The boundary a gossip or direct message meets before delivery: bans, the forwarder's rate
   * limit, the author's unbonded budget, the size limit, then every subscription's validator.
   * A rejection is counted against the forwarder (and logged) once.
   */
  #admit(
    topic: string,
    forwarder: NodeId,
    author: NodeId,
    data: Uint8Array,
    direct: boolean,
  ): ValidationResult {
    if (this.#init.isBanned(forwarder)) {
      this.#counters.bannedIgnored++;
      return "ignore";
    }
    if (!this.#limiter.take(forwarder)) {
      this.#counters.rateLimited++;
      return "ignore";
    }
    const isBonded = this.#init.isBonded;
    if (isBonded !== undefined && !isBonded(author) && !this.#unbonded.take(author)) {
      this.#counters.unbondedLimited++;
      return "ignore";
    }
    const subscriptions = this.#subscriptions.get(topic);
    let result: ValidationResult = "accept";
    let code = "";
    let reason = "";
    let reported = false;
    if (data.byteLength > MAX_MESSAGE_BYTES) {
      result = "reject";
      code = "too_large";
      reason = `message of ${data.byteLength} bytes exceeds ${MAX_MESSAGE_BYTES}`;
    } else if (subscriptions === undefined || subscriptions.size === 0) {
      result = "ignore";
    } else {
      const gossip: GossipMessage = { topic: topic as Topic, from: author, data };
      for (const subscription of subscriptions) {
        let verdict: ValidationResult;
        this.#validating = { peer: forwarder, reported: false };
        try {
          verdict = subscription.validate(gossip);
        } catch (error) {
          // A validator may throw a wire error to say why (its code is the reason code).
          verdict = "reject";
          const faultCode = (error as { code?: unknown }).code;
          const named = PEER_FAULTS.has((error as Error).name) && typeof faultCode === "string";
          code = named ? faultCode : "validator_threw";
          reason = named
            ? (error as Error).message
            : `validator threw: ${(error as Error).message}`;
        }
        // A validator that reported the rejection itself (`reject`, as the node's ingress does,
        // with its own code) has counted and logged it: it is not counted again here.
        if (this.#validating.reported) reported = true;
        this.#validating = undefined;
        if (verdict === "reject") {
          result = "reject";
          code ||= "invalid";
          reason ||= "validator rejected it";
          break;
        }
        if (verdict === "ignore") result = "ignore";
      }
    }
    if (result === "ignore") this.#counters.ignored++;
    if (result !== "reject") return result;
    this.#counters.rejected++;
    if (!reported) {
      this.reject(forwarder, direct ? `${MESSAGE_PROTOCOL} ${topic}` : topic, code, reason);
    }
    return "reject";
  }

  #onMessage(forwarder: string, message: GossipsubMessage): void {
    if (message.type !== "signed") return;
    if (!this.#subscriptions.has(message.topic)) return;
    const gossip: GossipMessage = {
      topic: message.topic as Topic,
      from: message.from.toString(),
      data: message.data,
    };
    this.#ingress.offer(forwarder, { topic: message.topic, gossip });
  }

  #deliver({ topic, gossip }: Delivery): void {
    const subscriptions = this.#subscriptions.get(topic);
    if (subscriptions === undefined) return;
    for (const subscription of [...subscriptions]) {
      try {
        subscription.deliver(gossip);
      } catch (error) {
        log.error("Subscriber of {topic} threw: {error}", { topic, error });
      }
    }
  }

  #banGraylisted(): void {
    const threshold = PEER_SCORE_THRESHOLDS.graylistThreshold;
    for (const id of this.libp2p.getPeers()) {
      const peer = id.toString();
      const score = this.score(peer);
      if (score <= threshold && !this.#init.isBanned(peer)) {
        this.rejections.reject(peer, "gossipsub", "graylisted", `score ${score.toFixed(1)}`);
        this.ban(peer, `gossipsub score ${score.toFixed(1)} at or below ${threshold}`);
      }
    }
  }

  #ping(every: number): void {
    for (const peer of this.libp2p.getPeers()) {
      const id = peer.toString();
      // One ping per peer at a time: a slow answer is not stacked on.
      if (this.#pinging.has(id)) continue;
      this.#pinging.add(id);
      this.libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(every) }).then(
        (rttMs) => this.#emit({ type: "heartbeat", peer: id, rttMs }),
        (error) => log.debug("Ping to {peer} failed: {error}", { peer: id, error }),
      ).finally(() => this.#pinging.delete(id));
    }
  }

  #emit(event: PeerEvent): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (error) {
        log.error("Peer event listener threw: {error}", { error });
      }
    }
  }
}

/** Counts one rejection for `key`, forgetting counts older than `memoryMs`; the new count. */
function countRejection(
  counts: Map<string, { count: number; lastAt: number }>,
  key: string,
  memoryMs: number,
): number {
  const now = Date.now();
  let entry = counts.get(key);
  if (entry === undefined || now - entry.lastAt > memoryMs) {
    entry = { count: 0, lastAt: now };
    if (counts.size >= 10_000) {
      const oldest = counts.keys().next();
      if (!oldest.done) counts.delete(oldest.value);
    }
  }
  counts.delete(key);
  entry.count++;
  entry.lastAt = now;
  counts.set(key, entry);
  return entry.count;
}

function withSignal(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

/** Keeps a peer's public addresses and those in trusted ranges; drops other private ones. */
function keepRoutableAddresses(info: PeerInfo, trusted: readonly Cidr[]): PeerInfo {
  return {
    ...info,
    multiaddrs: info.multiaddrs.filter((address: Multiaddr) => {
      const ip = address.getComponents().find((c) => c.name === "ip4" || c.name === "ip6")?.value;
      if (ip === undefined) return true; // dns and the like
      return ipInRanges(ip, trusted) || !ipInRanges(ip, NON_PUBLIC_RANGES);
    }),
  };
}
