/**
 * The network port: gossip publish/subscribe, direct request/response protocols, and peer
 * events. Implementations: the in-process network (tests, simulation, the one-process demo)
 * and the libp2p host. Payloads are bytes: the codec in `messages.ts` sits on top.
 *
 * @module
 */
import type { NodeId } from "../machines/types.ts";
import { isDirectTopic, type Topic } from "./messages.ts";

/** A gossip message as delivered: the bytes and the authenticated sender. */
export interface GossipMessage {
  readonly topic: Topic;
  readonly from: NodeId;
  readonly data: Uint8Array;
}

/** What a subscriber says about a message; `reject` costs the sender score. */
export type ValidationResult = "accept" | "reject" | "ignore";

/** Events about peers, translated by the node into peer actor events. */
export type PeerEvent =
  | { readonly type: "connected"; readonly peer: NodeId }
  | { readonly type: "identified"; readonly peer: NodeId; readonly protocols: readonly string[] }
  | { readonly type: "heartbeat"; readonly peer: NodeId; readonly rttMs: number }
  | { readonly type: "disconnected"; readonly peer: NodeId };

/** Options every async network call takes. */
export interface NetworkCallOptions {
  readonly signal?: AbortSignal;
}

/** The network port. */
export interface NetworkPort {
  /** This node's id on the network (its peer id). */
  readonly self: NodeId;
  start(): Promise<void>;
  stop(): Promise<void>;
  /**
   * Publishes bytes on a gossip topic to every subscriber but the sender. A direct topic
   * (`isDirectTopic`) is refused: its messages go to named peers by {@link NetworkPort.send}.
   */
  publish(topic: Topic, data: Uint8Array, options?: NetworkCallOptions): Promise<void>;
  /**
   * Sends bytes on a direct topic to one peer (protocol v2: bids to a job's owner, results to
   * its verifiers). At the receiver the message meets the same boundary as gossip (its rate
   * limit, fair ingress, the topic subscription's validator, rejections and bans) and reaches
   * the same delivery; `from` is the sender the transport authenticated. Resolves when the peer
   * took it; rejects when it could not be reached or refused it.
   */
  send(peer: NodeId, topic: Topic, data: Uint8Array, options?: NetworkCallOptions): Promise<void>;
  /**
   * Subscribes to a topic: a gossip topic joins its mesh; a direct topic only receives what
   * peers {@link NetworkPort.send} this node. The validator runs first; a rejected message is not delivered and
   * costs its sender score. The validator and the delivery see the same `data` object, so a
   * subscriber may key what it decoded while validating by it.
   */
  subscribe(
    topic: Topic,
    validate: (message: GossipMessage) => ValidationResult,
    deliver: (message: GossipMessage) => void,
  ): () => void;
  /** Serves a direct protocol (for example `/ciro/snapshot/1.0.0`). */
  handle(
    protocol: string,
    handler: (request: Uint8Array, from: NodeId) => Promise<Uint8Array>,
  ): void;
  /** Sends a request to one peer over a direct protocol and waits for its answer. */
  request(
    peer: NodeId,
    protocol: string,
    data: Uint8Array,
    options?: NetworkCallOptions,
  ): Promise<Uint8Array>;
  /** Peers currently connected. */
  peers(): NodeId[];
  /** Listens for peer events. Returns an unsubscribe. */
  onPeerEvent(listener: (event: PeerEvent) => void): () => void;
  /**
   * Bans `peer` for `durationMs` (the port's default when absent): disconnects it and refuses
   * its reconnection until then. Ports that cannot ban (the in-process network) leave it out.
   */
  ban?(peer: NodeId, reason: string, durationMs?: number): void;
  /**
   * Counts a rejection of something `peer` sent (at `where`, with a `code` and a `detail`) toward
   * its and its address's budgets, and logs it rate-limited. Ports without budgets leave it out.
   */
  reject?(peer: NodeId, where: string, code: string, detail: string): void;
  /**
   * How many connected peers this port knows to be subscribed to `topic` (a gossip topic is
   * published to them, and from them on). Ports where every subscriber is reachable (the
   * in-process and simulated networks) leave it out.
   */
  topicPeers?(topic: Topic): number;
}

/**
 * Why a port refuses to `send` on `topic` from node `self` (not started, or a gossip topic), or
 * undefined when it may: the check every in-memory port makes before it sends.
 */
export function sendRefusal(self: NodeId, running: boolean, topic: Topic): Error | undefined {
  if (!running) return new Error(`Cannot send on "${topic}": node "${self}" is not started`);
  if (!isDirectTopic(topic)) {
    return new TypeError(`Cannot send on "${topic}": it is a gossip topic (publish it)`);
  }
  return undefined;
}
