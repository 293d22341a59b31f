/**
 * The simulated network: a `NetworkPort` per node, every message a scheduler task. Each copy
 * of a gossip message, each request and each answer crosses a link with a latency drawn from
 * the seed, and may be lost, duplicated (gossip) or cut by a partition, per the fault profile.
 * Like the in-process network, the sender never hears its own publish, validators run before
 * delivery, direct protocols answer requests, and peers see each other connect and disconnect.
 *
 * @module
 */
import type { NodeId } from "../../machines/types.ts";
import { isDirectTopic, type Topic } from "../../protocols/messages.ts";
import {
  type GossipMessage,
  type NetworkCallOptions,
  type NetworkPort,
  type PeerEvent,
  sendRefusal,
  type ValidationResult,
} from "../../protocols/network_port.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Trace } from "./trace.ts";

/** How long a request waits for an answer that was lost, virtual ms. */
export const REQUEST_TIMEOUT_MS = 2_000;

/** How long a ban lasts when the node names no duration, virtual ms. */
export const BAN_MS = 60_000;

/** Link behaviour of a {@link SimNetwork}, changeable as faults start and heal. */
export interface LinkFaults {
  latencyMs: readonly [number, number];
  loss: number;
  duplicate: number;
}

/** Counters of a {@link SimNetwork}. */
export interface SimNetworkStats {
  published: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  rejected: number;
  requests: number;
  bans: number;
  /** Direct messages sent (protocol v2: one receiver each). */
  sent: number;
}

interface Subscription {
  readonly validate: (message: GossipMessage) => ValidationResult;
  readonly deliver: (message: GossipMessage) => void;
}

/** A request answered with an error by the simulated network. */
export class SimNetworkError extends Error {
  override readonly name = "SimNetworkError";
  readonly code: "unreachable" | "timeout" | "no_protocol";
  constructor(code: SimNetworkError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

class SimPort implements NetworkPort {
  readonly self: NodeId;
  readonly #net: SimNetwork;
  readonly subs = new Map<Topic, Set<Subscription>>();
  readonly handlers = new Map<string, (request: Uint8Array, from: NodeId) => Promise<Uint8Array>>();
  readonly listeners = new Set<(event: PeerEvent) => void>();
  running = false;
  /** Bumped at each start: deliveries meant for an earlier start are dropped. */
  life = 0;

  constructor(net: SimNetwork, self: NodeId) {
    this.#net = net;
    this.self = self;
  }

  start(): Promise<void> {
    this.#net.attach(this);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    if (this.running) this.#net.detach(this.self);
    return Promise.resolve();
  }

  publish(topic: Topic, data: Uint8Array, options: NetworkCallOptions = {}): Promise<void> {
    options.signal?.throwIfAborted();
    if (!this.running) {
      return Promise.reject(
        new Error(`Cannot publish on "${topic}": node "${this.self}" is not started`),
      );
    }
    if (isDirectTopic(topic)) {
      return Promise.reject(
        new TypeError(`Cannot publish on "${topic}": it is a direct topic (send it to a peer)`),
      );
    }
    this.#net.broadcast({ topic, from: this.self, data });
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
    return this.#net.sendTo(peer, { topic, from: this.self, data });
  }

  subscribe(
    topic: Topic,
    validate: (message: GossipMessage) => ValidationResult,
    deliver: (message: GossipMessage) => void,
  ): () => void {
    const sub: Subscription = { validate, deliver };
    let set = this.subs.get(topic);
    if (set === undefined) {
      this.subs.set(topic, set = new Set());
      this.#net.topicsChanged();
    }
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
    return this.#net.request(this.self, peer, protocol, data, options.signal);
  }

  peers(): NodeId[] {
    return this.#net.peersOf(this.self);
  }

  onPeerEvent(listener: (event: PeerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Bans `peer`: nothing it sends reaches this node until the ban ends. */
  ban(peer: NodeId, reason: string, durationMs = BAN_MS): void {
    this.#net.ban(this.self, peer, reason, durationMs);
  }
}

/** A network of simulated nodes driven by a {@link Scheduler}. */
export class SimNetwork {
  readonly #ports = new Map<NodeId, SimPort>();
  /** The ports subscribed to each topic, worked out when first asked (see `topicsChanged`). */
  readonly #byTopic = new Map<Topic, SimPort[]>();
  readonly #sched: Scheduler;
  readonly #trace: Trace;
  /** The partition group of each node while a partition holds; empty when healed. */
  readonly #group = new Map<NodeId, number>();
  faults: LinkFaults;
  readonly stats: SimNetworkStats = {
    published: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    rejected: 0,
    requests: 0,
    bans: 0,
    sent: 0,
  };
  /** Bans in force: `banner>banned` -> until (virtual ms). */
  readonly #bans = new Map<string, number>();
  /**
   * Whether nodes hear each other connect, identify and leave: every pair of nodes, so O(N^2)
   * scheduler tasks at start-up (4 million for 1000 nodes), where a libp2p node keeps a bounded
   * number of connections. The scaling scenario turns it off (`scale.ts`). @default true
   */
  peerEvents = true;
  /** Sees every gossip message published (the replaying adversary listens here). */
  onPublish: ((message: GossipMessage) => void) | undefined;

  constructor(scheduler: Scheduler, trace: Trace, faults: LinkFaults) {
    this.#sched = scheduler;
    this.#trace = trace;
    this.faults = faults;
  }

  /**
   * A port for node `id`; start it to join. A node that restarts joins again and gets a new
   * port: what its earlier life still sends goes nowhere.
   */
  join(id: NodeId): NetworkPort {
    const existing = this.#ports.get(id);
    if (existing?.running) throw new RangeError(`Cannot join node "${id}": it is running`);
    const port = new SimPort(this, id);
    this.#ports.set(id, port);
    this.topicsChanged();
    return port;
  }

  /**
   * @internal A port subscribed to a topic it had none on, or joined: the ports by topic are
   * worked out again when next asked.
   */
  topicsChanged(): void {
    this.#byTopic.clear();
  }

  /** The ports subscribed to `topic`, in join order (as `#ports` lists them). */
  #portsOn(topic: Topic): readonly SimPort[] {
    let ports = this.#byTopic.get(topic);
    if (ports === undefined) {
      ports = [...this.#ports.values()].filter((port) => port.subs.has(topic));
      this.#byTopic.set(topic, ports);
    }
    return ports;
  }

  /** Ids of the ports, in join order. */
  ids(): NodeId[] {
    return [...this.#ports.keys()];
  }

  /** Splits the nodes into groups (a node's group by id); messages between groups are lost. */
  partition(groups: ReadonlyMap<NodeId, number>): void {
    this.#group.clear();
    for (const [id, g] of groups) this.#group.set(id, g);
    this.#trace.add(`${this.#sched.now()}|partition|${[...groups].map(([i, g]) => `${i}:${g}`)}`);
  }

  /** Ends any partition. */
  heal(): void {
    if (this.#group.size === 0) return;
    this.#group.clear();
    this.#trace.add(`${this.#sched.now()}|heal`);
  }

  /** @internal */
  ban(by: NodeId, peer: NodeId, reason: string, durationMs: number): void {
    this.stats.bans++;
    this.#bans.set(`${by}>${peer}`, this.#sched.now() + durationMs);
    this.#trace.add(`${this.#sched.now()}|ban|${by}>${peer}|${reason}`);
  }

  #banned(from: NodeId, to: NodeId): boolean {
    if (this.#bans.size === 0) return false;
    const until = this.#bans.get(`${to}>${from}`);
    return until !== undefined && until > this.#sched.now();
  }

  #cut(a: NodeId, b: NodeId): boolean {
    if (this.#banned(a, b) || this.#banned(b, a)) return true;
    if (this.#group.size === 0) return false;
    return (this.#group.get(a) ?? 0) !== (this.#group.get(b) ?? 0);
  }

  #latency(): number {
    const [min, max] = this.faults.latencyMs;
    return this.#sched.rng.int(min, max);
  }

  /** @internal */
  attach(port: SimPort): void {
    if (this.#ports.get(port.self) !== port) return; // an earlier life's port
    port.running = true;
    port.life++;
    this.#trace.add(`${this.#sched.now()}|up|${port.self}`);
    if (!this.peerEvents) return;
    for (const other of this.#ports.values()) {
      if (other === port || !other.running) continue;
      this.#peerEvent(other, { type: "connected", peer: port.self });
      this.#peerEvent(other, {
        type: "identified",
        peer: port.self,
        protocols: [...port.handlers.keys()],
      });
      this.#peerEvent(port, { type: "connected", peer: other.self });
      this.#peerEvent(port, {
        type: "identified",
        peer: other.self,
        protocols: [...other.handlers.keys()],
      });
    }
  }

  /** Takes node `id` off the network (a crash, or a stop): the others see it disconnect. */
  detach(id: NodeId): void {
    const port = this.#ports.get(id);
    if (port === undefined || !port.running) return;
    port.running = false;
    this.#trace.add(`${this.#sched.now()}|down|${id}`);
    if (!this.peerEvents) return;
    for (const other of this.#ports.values()) {
      if (other.running) this.#peerEvent(other, { type: "disconnected", peer: id });
    }
  }

  /** @internal */
  peersOf(id: NodeId): NodeId[] {
    return [...this.#ports.values()].filter((p) => p.running && p.self !== id).map((p) => p.self);
  }

  /** @internal */
  broadcast(message: GossipMessage): void {
    this.stats.published++;
    this.onPublish?.(message);
    // Only the ports on the topic, in join order: the same copies as a look at every port.
    for (const port of this.#portsOn(message.topic)) {
      if (port.self === message.from || !port.running) continue;
      this.#copy(port, message);
      if (this.#sched.rng.chance(this.faults.duplicate)) {
        this.stats.duplicated++;
        this.#copy(port, message);
      }
    }
  }

  /**
   * @internal One message to one peer (a direct topic). A peer that is not running fails the
   * send; on the way, the message may be lost or duplicated as gossip is.
   */
  sendTo(to: NodeId, message: GossipMessage): Promise<void> {
    this.stats.sent++;
    this.onPublish?.(message);
    const port = this.#ports.get(to);
    if (port === undefined || !port.running) {
      return Promise.reject(
        new SimNetworkError("unreachable", `Cannot reach peer "${to}": not connected`),
      );
    }
    if (!port.subs.has(message.topic)) return Promise.resolve();
    this.#copy(port, message);
    if (this.#sched.rng.chance(this.faults.duplicate)) {
      this.stats.duplicated++;
      this.#copy(port, message);
    }
    return Promise.resolve();
  }

  #copy(port: SimPort, message: GossipMessage): void {
    if (this.#cut(message.from, port.self) || this.#sched.rng.chance(this.faults.loss)) {
      this.stats.dropped++;
      return;
    }
    const life = port.life;
    this.#sched.after(this.#latency(), () => {
      if (!port.running || port.life !== life) return;
      const subs = port.subs.get(message.topic);
      if (subs === undefined) return;
      for (const sub of [...subs]) {
        const verdict = sub.validate(message);
        this.#trace.add(
          `${this.#sched.now()}|g|${message.from}>${port.self}|${message.topic}|${message.data.length}|${verdict}`,
        );
        if (verdict === "accept") {
          this.stats.delivered++;
          sub.deliver(message);
        } else if (verdict === "reject") this.stats.rejected++;
      }
    }, "gossip");
  }

  /** @internal */
  request(
    from: NodeId,
    to: NodeId,
    protocol: string,
    data: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    this.stats.requests++;
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => finish(() => reject(signal!.reason));
      signal?.addEventListener("abort", onAbort, { once: true });
      const lost = () =>
        this.#sched.after(
          REQUEST_TIMEOUT_MS,
          () =>
            finish(() =>
              reject(new SimNetworkError("timeout", `Request to "${to}" timed out: ${protocol}`))
            ),
          "request.timeout",
        );
      const target = this.#ports.get(to);
      if (target === undefined || !target.running) {
        this.#sched.after(
          this.#latency(),
          () =>
            finish(() =>
              reject(new SimNetworkError("unreachable", `Cannot reach peer "${to}": not connected`))
            ),
          "request.unreachable",
        );
        return;
      }
      if (this.#cut(from, to) || this.#sched.rng.chance(this.faults.loss)) {
        this.stats.dropped++;
        lost();
        return;
      }
      this.#sched.after(this.#latency(), () => {
        this.#trace.add(`${this.#sched.now()}|req|${from}>${to}|${protocol}|${data.length}`);
        const handler = target.running ? target.handlers.get(protocol) : undefined;
        if (handler === undefined) {
          finish(() =>
            reject(new SimNetworkError("no_protocol", `Peer "${to}" does not speak "${protocol}"`))
          );
          return;
        }
        handler(data, from).then((answer) => {
          if (this.#cut(from, to) || this.#sched.rng.chance(this.faults.loss)) {
            this.stats.dropped++;
            lost();
            return;
          }
          this.#sched.after(this.#latency(), () => {
            this.#trace.add(`${this.#sched.now()}|res|${to}>${from}|${protocol}|${answer.length}`);
            finish(() => resolve(answer));
          }, "response");
        }, (error: unknown) => {
          this.#sched.after(this.#latency(), () => finish(() => reject(error)), "response.error");
        });
      }, "request");
    });
  }

  #peerEvent(port: SimPort, event: PeerEvent): void {
    const life = port.life;
    this.#sched.after(this.#latency(), () => {
      if (!port.running || port.life !== life) return;
      this.#trace.add(`${this.#sched.now()}|peer|${port.self}|${event.type}|${event.peer}`);
      for (const listener of [...port.listeners]) listener(event);
    }, "peer");
  }
}
