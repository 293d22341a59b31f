/**
 * The in-process network: many nodes in one process, for tests, simulation and the demo. It
 * behaves like the libp2p host where it matters to the engine: messages are bytes, the sender
 * never hears its own publish, delivery is asynchronous, validators run before delivery, direct
 * protocols answer requests, and peers see each other connect, heartbeat and disconnect.
 *
 * @module
 */
import type { NodeId } from "../machines/types.ts";
import type { Topic } from "./messages.ts";
import type {
  GossipMessage,
  NetworkCallOptions,
  NetworkPort,
  PeerEvent,
  ValidationResult,
} from "./network_port.ts";

interface Subscription {
  readonly validate: (message: GossipMessage) => ValidationResult;
  readonly deliver: (message: GossipMessage) => void;
}

/** Counters of an in-process network. */
export interface InProcessStats {
  published: number;
  delivered: number;
  rejected: number;
  ignored: number;
}

/** Options of an {@link InProcessNetwork}. */
export interface InProcessNetworkOptions {
  /** Interval of the heartbeats peers see from each other, ms; 0 disables them. @default 0 */
  readonly heartbeatMs?: number;
}

class InProcessPort implements NetworkPort {
  readonly self: NodeId;
  readonly #hub: InProcessNetwork;
  readonly subs = new Map<Topic, Set<Subscription>>();
  readonly handlers = new Map<string, (request: Uint8Array, from: NodeId) => Promise<Uint8Array>>();
  readonly listeners = new Set<(event: PeerEvent) => void>();
  running = false;

  constructor(hub: InProcessNetwork, self: NodeId) {
    this.#hub = hub;
    this.self = self;
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
    this.#hub.broadcast({ topic, from: this.self, data });
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
}

/** A network of nodes inside one process. */
export class InProcessNetwork {
  readonly #ports = new Map<NodeId, InProcessPort>();
  readonly stats: InProcessStats = { published: 0, delivered: 0, rejected: 0, ignored: 0 };
  readonly #heartbeatMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: InProcessNetworkOptions = {}) {
    this.#heartbeatMs = options.heartbeatMs ?? 0;
  }

  /** A port for node `id`; start it to join. */
  join(id: NodeId): NetworkPort {
    if (this.#ports.has(id)) throw new RangeError(`Cannot join node "${id}": the id is taken`);
    const port = new InProcessPort(this, id);
    this.#ports.set(id, port);
    return port;
  }

  /** @internal */
  attach(port: InProcessPort): void {
    port.running = true;
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
      if (other.running) this.#peerEvent(other, { type: "disconnected", peer: id });
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
    return [...this.#ports.values()].filter((p) => p.running && p.self !== id).map((p) => p.self);
  }

  /** @internal */
  broadcast(message: GossipMessage): void {
    this.stats.published++;
    for (const port of this.#ports.values()) {
      if (port.self === message.from || !port.running) continue;
      const subs = port.subs.get(message.topic);
      if (subs === undefined) continue;
      for (const sub of subs) {
        queueMicrotask(() => {
          if (!port.running) return;
          const verdict = sub.validate(message);
          if (verdict === "accept") {
            this.stats.delivered++;
            sub.deliver(message);
          } else if (verdict === "reject") this.stats.rejected++;
          else this.stats.ignored++;
        });
      }
    }
  }

  /** @internal */
  async request(from: NodeId, to: NodeId, protocol: string, data: Uint8Array): Promise<Uint8Array> {
    const port = this.#ports.get(to);
    if (port === undefined || !port.running) {
      throw new Error(`Cannot reach peer "${to}": not connected`);
    }
    const handler = port.handlers.get(protocol);
    if (handler === undefined) throw new Error(`Peer "${to}" does not speak "${protocol}"`);
    await Promise.resolve();
    return handler(data, from);
  }

  #heartbeat(): void {
    for (const port of this.#ports.values()) {
      if (!port.running) continue;
      for (const other of this.#ports.values()) {
        if (other !== port && other.running) {
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
