/**
 * The in-process network: many nodes in one process, for tests, simulation and the demo. It
 * behaves like the libp2p host where it matters to the engine: messages are bytes, the sender
 * never hears its own publish, delivery is asynchronous, validators run before delivery, direct
 * protocols answer requests, and peers see each other connect, heartbeat and disconnect.
 *
 * It has the host's defences too, with the same classes, so what a test or the demo pushes
 * through it meets the same boundary:
 *
 * - **Size**: a publish past {@link MAX_FRAME_BYTES} (four times {@link MAX_MESSAGE_BYTES}, the
 *   host's transport limit) is refused (`RangeError`); past the wire limit, the receiver's bounded
 *   decoder refuses it. A direct request or answer past its limit is refused, and a request
 *   counts against its sender.
 * - **Rate limit**: each node keeps a token bucket per sender ({@link RateLimiter}); a message
 *   over it is ignored (not penalised) before anything decodes it.
 * - **Fair ingress**: what passes waits in a bounded queue per sender at each node and is
 *   validated and delivered round robin, a batch per turn ({@link FairQueue}); what does not fit
 *   its sender's queue is dropped and counted. Turns run as microtasks by default (the timing
 *   this network always had); the host yields to the event loop between them.
 * - **Rejections and bans**: a message a validator rejects (or throws a coded wire error for)
 *   is logged at warn through a rate-limited {@link RejectionLog} and counted against its sender;
 *   past `maxRejections` the sender is banned for `banMs`: both see it disconnect, nothing passes
 *   between them either way, and at the ban's end they see it connect again. `ban` and `reject`
 *   are the port's, for the node's own decisions, as on the libp2p host.
 * - **Direct protocols**: each node admits a peer's requests through a {@link DirectLimiter}
 *   (concurrency and rate per peer and overall); a refused request fails at once.
 *
 * The defaults are looser than the host's (the demo and the tests push honest bursts through
 * one process); every one is an option.
 *
 * ```ts
 * import { InProcessNetwork } from "./in_process_network.ts";
 *
 * const network = new InProcessNetwork({ rateLimit: { capacity: 100, refillPerSecond: 50 } });
 * const a = network.join("a");
 * const b = network.join("b");
 * await a.start();
 * await b.start();
 * b.subscribe("/ciro/health/1", () => "accept", (m) => console.log(m.from));
 * await a.publish("/ciro/health/1", new TextEncoder().encode("{}"));
 * ```
 *
 * @module
 */
import type { NodeId } from "../machines/types.ts";
import { isDirectTopic, MAX_MESSAGE_BYTES, type Topic } from "./messages.ts";
import {
  type GossipMessage,
  type NetworkCallOptions,
  type NetworkPort,
  type PeerEvent,
  sendRefusal,
  type ValidationResult,
} from "./network_port.ts";
import { FairQueue } from "./fair_queue.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limit.ts";
import { RejectionLog } from "./rejection_log.ts";
import { DirectLimiter, type DirectLimitOptions } from "./direct_limits.ts";
import { getLogger } from "@logtape/logtape";

const log = getLogger(["ciro", "network"]);

/**
 * The largest gossip frame carried, as the libp2p host's transport (`maxInboundDataLength`, four
 * times the wire limit). Between the wire limit and this, the receiver's decoder refuses the
 * message (bounded decoding), so a test can still play a peer that sends one.
 */
export const MAX_FRAME_BYTES = 4 * MAX_MESSAGE_BYTES;

/** Errors a validator or handler throws for bad input (charged to the peer), matched by name. */
const PEER_FAULTS = new Set(["SnapshotError", "WireError", "BoundedJsonError", "RuleViolation"]);

interface Subscription {
  readonly validate: (message: GossipMessage) => ValidationResult;
  readonly deliver: (message: GossipMessage) => void;
}

/** Counters of an in-process network (all nodes together). */
export interface InProcessStats {
  published: number;
  delivered: number;
  rejected: number;
  ignored: number;
  /** Messages ignored because their sender was over its rate limit at the receiver. */
  rateLimited: number;
  /** Messages dropped because their sender's ingress queue at the receiver was full. */
  queueFull: number;
  /** Messages dropped or refused because one side had banned the other. */
  banned: number;
  /** Bans imposed (by the rejection budget or by a node's own decision). */
  bans: number;
  /** Direct requests refused by the receiver's limits (concurrency, rate, size). */
  directRefused: number;
  /** Direct messages sent (`send`: one receiver each). */
  sent: number;
}

/** Options of an {@link InProcessNetwork}. */
export interface InProcessNetworkOptions {
  /** Interval of the heartbeats peers see from each other, ms; 0 disables them. @default 0 */
  readonly heartbeatMs?: number;
  /**
   * Per-sender gossip budget at each node, taken before validation.
   * @default {capacity: 2_000, refillPerSecond: 1_000}
   */
  readonly rateLimit?: RateLimitOptions;
  /** Fair ingress at each node: bounded queues per sender, delivered round robin. */
  readonly ingress?: {
    /** Messages one sender may have waiting at a node. @default 2_048 */
    readonly perPeer?: number;
    /** Messages all senders may have waiting at a node. @default 32_768 */
    readonly total?: number;
    /** Messages validated and delivered per turn. @default 64 */
    readonly batch?: number;
    /**
     * Runs the next turn. The default keeps the network's timing (delivery in the microtasks
     * after a publish, as the engine's in-process tests expect); pass `(run) => setTimeout(run, 0)`
     * for the host's (I/O between turns). @default queueMicrotask
     */
    readonly schedule?: (run: () => void) => void;
  };
  /**
   * Limits of direct requests at each node.
   * @default {perPeerConcurrency: 32, totalConcurrency: 512, perPeerBurst: 1_000, perPeerPerSecond: 500}
   */
  readonly direct?: DirectLimitOptions;
  /** Largest direct request accepted. @default 1_048_576 */
  readonly maxRequestBytes?: number;
  /** Largest direct answer accepted. @default 8_388_608 */
  readonly maxResponseBytes?: number;
  /** Rejections a sender may cause at a node before that node bans it. @default 20 */
  readonly maxRejections?: number;
  /** How long a peer's rejections are remembered after its last one, ms. @default 600_000 */
  readonly rejectionMemoryMs?: number;
  /** How long a ban lasts, ms. @default 600_000 */
  readonly banMs?: number;
  /** Where each node logs its rejections. @default a new {@link RejectionLog} per node */
  readonly rejectionLog?: (node: NodeId) => RejectionLog;
  /** The clock of rate limits, rejection memory and bans, ms. @default Date.now */
  readonly now?: () => number;
}

interface Queued {
  readonly topic: Topic;
  readonly message: GossipMessage;
}

class InProcessPort implements NetworkPort {
  readonly self: NodeId;
  readonly #hub: InProcessNetwork;
  readonly subs = new Map<Topic, Set<Subscription>>();
  readonly handlers = new Map<string, (request: Uint8Array, from: NodeId) => Promise<Uint8Array>>();
  readonly listeners = new Set<(event: PeerEvent) => void>();
  readonly limiter: RateLimiter;
  readonly ingress: FairQueue<Queued>;
  readonly direct: DirectLimiter;
  readonly rejections: RejectionLog;
  /** Peers this node banned: peer -> until (ms). */
  readonly bans = new Map<NodeId, number>();
  /** Rejections counted per sender: peer -> count and last time. */
  readonly counts = new Map<NodeId, { count: number; lastAt: number }>();
  running = false;

  constructor(hub: InProcessNetwork, self: NodeId, init: InProcessNetworkOptions) {
    this.#hub = hub;
    this.self = self;
    const now = init.now ?? Date.now;
    this.limiter = new RateLimiter({
      capacity: 2_000,
      refillPerSecond: 1_000,
      now,
      ...init.rateLimit,
    });
    this.ingress = new FairQueue<Queued>((item) => hub.deliver(this, item), {
      perKey: init.ingress?.perPeer ?? 2_048,
      total: init.ingress?.total ?? 32_768,
      batch: init.ingress?.batch ?? 64,
      schedule: init.ingress?.schedule ?? queueMicrotask,
      onError: (error) => log.error("Ingress delivery failed: {error}", { error }),
    });
    this.direct = new DirectLimiter({
      perPeerConcurrency: 32,
      totalConcurrency: 512,
      perPeerBurst: 1_000,
      perPeerPerSecond: 500,
      now,
      ...init.direct,
    });
    this.rejections = init.rejectionLog?.(self) ?? new RejectionLog({ now });
  }

  start(): Promise<void> {
    this.#hub.attach(this);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#hub.detach(this.self);
    return Promise.resolve();
  }

  publish(topic: Topic, data: Uint8Array, options: NetworkCallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.running) {
      return Promise.reject(
        new Error(`Cannot publish on "${topic}": node "${this.self}" is not started`),
      );
    }
    if (data.byteLength > MAX_FRAME_BYTES) {
      return Promise.reject(
        new RangeError(
          `Cannot publish on "${topic}": ${data.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`,
        ),
      );
    }
    if (isDirectTopic(topic)) {
      return Promise.reject(
        new TypeError(`Cannot publish on "${topic}": it is a direct topic (send it to a peer)`),
      );
    }
    this.#hub.broadcast({ topic, from: this.self, data });
    return Promise.resolve();
  }

  send(
    peer: NodeId,
    topic: Topic,
    data: Uint8Array,
    options: NetworkCallOptions = {},
  ): Promise<void> {
    options.signal?.throwIfAborted();
    const refusal = sendRefusal(this.self, this.running, topic);
    if (refusal !== undefined) return Promise.reject(refusal);
    if (data.byteLength > MAX_FRAME_BYTES) {
      return Promise.reject(
        new RangeError(
          `Cannot send on "${topic}": ${data.byteLength} bytes exceeds ${MAX_FRAME_BYTES}`,
        ),
      );
    }
    try {
      this.#hub.sendTo(peer, { topic, from: this.self, data });
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  subscribe(
    topic: Topic,
    validate: (message: GossipMessage) => ValidationResult,
    deliver: (message: GossipMessage) => void,
  ): () => void {
    const sub: Subscription = { validate, deliver };
    let set = this.subs.get(topic);
    if (set === undefined) this.subs.set(topic, set = new Set());
    set.add(sub);
    return () => set.delete(sub);
  }

  handle(
    protocol: string,
    handler: (request: Uint8Array, from: NodeId) => Promise<Uint8Array>,
  ): void {
    this.handlers.set(protocol, handler);
  }

  request(
    peer: NodeId,
    protocol: string,
    data: Uint8Array,
    options: NetworkCallOptions = {},
  ): Promise<Uint8Array> {
    options.signal?.throwIfAborted();
    return this.#hub.request(this.self, peer, protocol, data);
  }

  peers(): NodeId[] {
    return this.#hub.peersOf(this.self);
  }

  onPeerEvent(listener: (event: PeerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  ban(peer: NodeId, reason: string, durationMs?: number): void {
    this.#hub.ban(this, peer, reason, durationMs);
  }

  reject(peer: NodeId, where: string, code: string, detail: string): void {
    this.#hub.reject(this, peer, where, code, detail);
  }
}

/** A network of nodes inside one process. */
export class InProcessNetwork {
  readonly #ports = new Map<NodeId, InProcessPort>();
  readonly stats: InProcessStats = {
    published: 0,
    delivered: 0,
    rejected: 0,
    ignored: 0,
    rateLimited: 0,
    queueFull: 0,
    banned: 0,
    bans: 0,
    directRefused: 0,
    sent: 0,
  };
  readonly #heartbeatMs: number;
  readonly #init: InProcessNetworkOptions;
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /**
   * The message being validated: a validator that reports its rejection through the port's
   * `reject` (as the node does, with its own code) is not counted a second time.
   */
  #validating: { port: InProcessPort; peer: NodeId; reported: boolean } | undefined;

  constructor(options: InProcessNetworkOptions = {}) {
    this.#heartbeatMs = options.heartbeatMs ?? 0;
    this.#init = options;
    this.#now = options.now ?? Date.now;
  }

  /** A port for node `id`; start it to join. */
  join(id: NodeId): NetworkPort {
    if (this.#ports.has(id)) throw new RangeError(`Cannot join node "${id}": the id is taken`);
    const port = new InProcessPort(this, id, this.#init);
    this.#ports.set(id, port);
    return port;
  }

  /** Whether node `by` has banned `peer` now. */
  isBanned(by: NodeId, peer: NodeId): boolean {
    const port = this.#ports.get(by);
    if (port === undefined) return false;
    this.#liftExpired(port);
    return port.bans.has(peer);
  }

  /** The rejection log of node `id` (its counts by code, what it logged and suppressed). */
  rejectionsOf(id: NodeId): RejectionLog | undefined {
    return this.#ports.get(id)?.rejections;
  }

  /** @internal */
  attach(port: InProcessPort): void {
    port.running = true;
    for (const other of this.#ports.values()) {
      if (other === port || !other.running || this.#apart(port, other)) continue;
      this.#connect(other, port);
      this.#connect(port, other);
    }
    if (this.#heartbeatMs > 0 && this.#timer === undefined) {
      this.#timer = setInterval(() => this.#heartbeat(), this.#heartbeatMs);
    }
  }

  /** Takes node `id` off the network (a crash, or a stop): the others see it disconnect. */
  detach(id: NodeId): void {
    const port = this.#ports.get(id);
    if (port === undefined || !port.running) return;
    port.running = false;
    for (const other of this.#ports.values()) {
      if (other.running && !this.#apart(port, other)) {
        this.#peerEvent(other, { type: "disconnected", peer: id });
      }
    }
    if (![...this.#ports.values()].some((p) => p.running)) this.close();
  }

  /** Stops the heartbeats. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** @internal */
  peersOf(id: NodeId): NodeId[] {
    const self = this.#ports.get(id);
    return [...this.#ports.values()]
      .filter((p) => p.running && p.self !== id && (self === undefined || !this.#apart(self, p)))
      .map((p) => p.self);
  }

  /** @internal */
  broadcast(message: GossipMessage): void {
    this.stats.published++;
    const sender = this.#ports.get(message.from);
    for (const port of this.#ports.values()) {
      if (port.self === message.from || !port.running) continue;
      const subs = port.subs.get(message.topic);
      if (subs === undefined || subs.size === 0) continue;
      if (sender !== undefined && this.#apart(sender, port)) {
        this.stats.banned++;
        continue;
      }
      // The budget is taken before anything decodes the message; over it: ignored, no penalty.
      if (!port.limiter.take(message.from)) {
        this.stats.rateLimited++;
        continue;
      }
      if (!port.ingress.offer(message.from, { topic: message.topic, message })) {
        this.stats.queueFull++;
      }
    }
  }

  /** @internal One message to one peer (a direct topic), through its boundary. */
  sendTo(to: NodeId, message: GossipMessage): void {
    const port = this.#ports.get(to);
    const sender = this.#ports.get(message.from);
    if (
      port === undefined || !port.running ||
      (sender !== undefined && this.#apart(sender, port))
    ) {
      throw new Error(`Cannot reach peer "${to}": not connected`);
    }
    this.stats.sent++;
    const subs = port.subs.get(message.topic);
    if (subs === undefined || subs.size === 0) return;
    if (!port.limiter.take(message.from)) {
      this.stats.rateLimited++;
      return;
    }
    if (!port.ingress.offer(message.from, { topic: message.topic, message })) {
      this.stats.queueFull++;
    }
  }

  /** @internal Validates and delivers one queued message at `port`. */
  deliver(port: InProcessPort, { topic, message }: Queued): void {
    if (!port.running) return;
    const sender = this.#ports.get(message.from);
    if (sender !== undefined && this.#apart(sender, port)) {
      this.stats.banned++;
      return;
    }
    const subs = port.subs.get(topic);
    if (subs === undefined) return;
    let rejected: { code: string; reason: string } | undefined;
    for (const sub of [...subs]) {
      let verdict: ValidationResult;
      const validating = this.#validating = { port, peer: message.from, reported: false };
      try {
        verdict = sub.validate(message);
        if (verdict === "reject" && validating.reported) {
          // Already counted and logged, with the validator's own code.
          this.stats.rejected++;
          continue;
        }
      } catch (error) {
        // A validator may throw a wire error to say why (its code is the reason code).
        verdict = "reject";
        const code = (error as { code?: unknown }).code;
        const named = PEER_FAULTS.has((error as Error).name) && typeof code === "string";
        if (!validating.reported) {
          rejected ??= {
            code: named ? code : "validator_threw",
            reason: named
              ? (error as Error).message
              : `validator threw: ${(error as Error).message}`,
          };
        }
      } finally {
        this.#validating = undefined;
      }
      if (verdict === "accept") {
        this.stats.delivered++;
        try {
          sub.deliver(message);
        } catch (error) {
          log.error("Subscriber of {topic} threw: {error}", { topic, error });
        }
      } else if (verdict === "reject") {
        this.stats.rejected++;
        rejected ??= { code: "invalid", reason: "validator rejected it" };
      } else this.stats.ignored++;
    }
    if (rejected !== undefined) {
      this.reject(port, message.from, topic, rejected.code, rejected.reason);
    }
  }

  /** @internal */
  async request(from: NodeId, to: NodeId, protocol: string, data: Uint8Array): Promise<Uint8Array> {
    const port = this.#ports.get(to);
    const sender = this.#ports.get(from);
    if (
      port === undefined || !port.running ||
      (sender !== undefined && this.#apart(sender, port))
    ) {
      throw new Error(`Cannot reach peer "${to}": not connected`);
    }
    const handler = port.handlers.get(protocol);
    if (handler === undefined) throw new Error(`Peer "${to}" does not speak "${protocol}"`);
    const admission = port.direct.admit(from);
    if (!admission.ok) {
      this.stats.directRefused++;
      port.rejections.reject(from, protocol, admission.code, admission.reason);
      throw new Error(`Refused: ${admission.code}: ${admission.reason}`);
    }
    try {
      await Promise.resolve();
      const maxRequest = this.#init.maxRequestBytes ?? 1_048_576;
      if (data.byteLength > maxRequest) {
        this.stats.directRefused++;
        const detail = `request of ${data.byteLength} bytes exceeds ${maxRequest}`;
        this.reject(port, from, protocol, "too_large", detail);
        throw new RangeError(`Refused: too_large: ${detail}`);
      }
      let answer: Uint8Array;
      try {
        answer = await handler(data, from);
      } catch (error) {
        if (PEER_FAULTS.has((error as Error).name)) {
          const code = (error as { code?: unknown }).code;
          this.reject(
            port,
            from,
            protocol,
            typeof code === "string" ? code : "invalid",
            (error as Error).message,
          );
        }
        throw error;
      }
      const maxResponse = this.#init.maxResponseBytes ?? 8_388_608;
      if (answer.byteLength > maxResponse) {
        throw new RangeError(
          `Response too large: ${answer.byteLength} bytes exceeds ${maxResponse}`,
        );
      }
      return answer;
    } finally {
      admission.release();
    }
  }

  /** @internal Counts a rejection of what `peer` sent to `port`; bans it past the budget. */
  reject(port: InProcessPort, peer: NodeId, where: string, code: string, detail: string): void {
    const validating = this.#validating;
    if (validating !== undefined && validating.port === port && validating.peer === peer) {
      validating.reported = true;
    }
    port.rejections.reject(peer, where, code, detail);
    const now = this.#now();
    const memory = this.#init.rejectionMemoryMs ?? 600_000;
    const limit = this.#init.maxRejections ?? 20;
    let entry = port.counts.get(peer);
    if (entry === undefined || now - entry.lastAt > memory) {
      entry = { count: 0, lastAt: now };
      if (port.counts.size >= 10_000) {
        const oldest = port.counts.keys().next();
        if (!oldest.done) port.counts.delete(oldest.value);
      }
    }
    port.counts.delete(peer);
    entry.count++;
    entry.lastAt = now;
    port.counts.set(peer, entry);
    if (entry.count > limit && !port.bans.has(peer)) {
      this.ban(
        port,
        peer,
        `sent ${entry.count} rejected messages (limit ${limit}), last on ${where}: ${detail}`,
      );
    }
  }

  /** @internal `port` bans `peer`: both see it disconnect; nothing passes either way until the end. */
  ban(port: InProcessPort, peer: NodeId, reason: string, durationMs?: number): void {
    const ms = durationMs ?? this.#init.banMs ?? 600_000;
    const other = this.#ports.get(peer);
    const wasApart = other !== undefined && this.#apart(port, other);
    port.bans.set(peer, this.#now() + ms);
    port.counts.delete(peer);
    this.stats.bans++;
    log.warn("Banned peer {peer} for {durationMs} ms: {reason}", {
      peer,
      durationMs: ms,
      reason,
      node: port.self,
    });
    if (other === undefined || wasApart || !other.running || !port.running) return;
    this.#peerEvent(port, { type: "disconnected", peer });
    this.#peerEvent(other, { type: "disconnected", peer: port.self });
  }

  /** Whether a ban stands between `a` and `b` (either way), lifting bans that have ended. */
  #apart(a: InProcessPort, b: InProcessPort): boolean {
    if (a.bans.size > 0) this.#liftExpired(a);
    if (b.bans.size > 0) this.#liftExpired(b);
    return a.bans.has(b.self) || b.bans.has(a.self);
  }

  /** Ends `port`'s bans whose time is up; the pair sees the connection come back. */
  #liftExpired(port: InProcessPort): void {
    const now = this.#now();
    for (const [peer, until] of port.bans) {
      if (until > now) continue;
      port.bans.delete(peer);
      const other = this.#ports.get(peer);
      if (other === undefined || !other.running || !port.running) continue;
      if (other.bans.has(port.self) && other.bans.get(port.self)! > now) continue;
      this.#connect(port, other);
      this.#connect(other, port);
    }
  }

  /** `port` sees `other` connect and identify. */
  #connect(port: InProcessPort, other: InProcessPort): void {
    this.#peerEvent(port, { type: "connected", peer: other.self });
    this.#peerEvent(port, {
      type: "identified",
      peer: other.self,
      protocols: [...other.handlers.keys()],
    });
  }

  #heartbeat(): void {
    for (const port of this.#ports.values()) {
      if (!port.running) continue;
      for (const other of this.#ports.values()) {
        if (other !== port && other.running && !this.#apart(port, other)) {
          this.#peerEvent(port, { type: "heartbeat", peer: other.self, rttMs: 0 });
        }
      }
    }
  }

  #peerEvent(port: InProcessPort, event: PeerEvent): void {
    queueMicrotask(() => {
      if (!port.running) return;
      for (const listener of port.listeners) listener(event);
    });
  }
}
