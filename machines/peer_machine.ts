/**
 * The peer machine: one actor per known peer, fed by the network boundary.
 *
 * States: `discovered` (heard of, not connected), `connected` (transport up), `active`
 * (identified and heard from within its heartbeat deadline), `suspect` (missed heartbeats),
 * `disconnected`, and `banned` (score fell below the ban threshold; lifted when the ban
 * deadline passes).
 *
 * Events: `peer.connected`, `peer.identified`, `peer.heartbeat`, `peer.disconnected`,
 * `peer.scored` `{ delta, reason }` (negative for a rejected message), and `timer.fired`
 * `{ key, due }` for the `heartbeat` and `ban` deadlines. Deadlines are absolute times in
 * context, so a restored actor re-arms them.
 *
 * @module
 */
import { and, assign, emit, enqueueActions, setup } from "xstate";
import type { EffectRequest, NodeId } from "./types.ts";

/** Tunables of peer supervision. */
export interface PeerConfig {
  /** Expected interval between heartbeats, ms. */
  readonly heartbeatMs: number;
  /** Missed heartbeats before a suspect peer counts as disconnected. */
  readonly maxMissedHeartbeats: number;
  /** Score a new peer starts with. */
  readonly initialScore: number;
  /** A score below this bans the peer. */
  readonly banThreshold: number;
  /** How long a ban lasts, ms. */
  readonly banMs: number;
}

/** Peer tunables used unless the node's config says otherwise. */
export const DEFAULT_PEER_CONFIG: PeerConfig = {
  heartbeatMs: 5_000,
  maxMissedHeartbeats: 3,
  initialScore: 100,
  banThreshold: 0,
  banMs: 10 * 60_000,
};

/** Context of a peer actor. */
export interface PeerContext {
  readonly peerId: NodeId;
  readonly config: PeerConfig;
  readonly score: number;
  readonly missedHeartbeats: number;
  readonly lastSeenAt: number;
  readonly rttMs: number | null;
  readonly protocols: readonly string[];
  readonly deadlines: { readonly heartbeat?: number; readonly ban?: number };
  /** The last reasons the score dropped, newest last (at most 8). */
  readonly offences: readonly string[];
}

/** What a peer actor is created with. */
export interface PeerInput {
  readonly peerId: NodeId;
  readonly at: number;
  readonly config?: PeerConfig;
}

/** Events a peer actor accepts. */
export type PeerMachineEvent =
  | { readonly type: "peer.connected"; readonly at: number }
  | { readonly type: "peer.identified"; readonly at: number; readonly protocols: readonly string[] }
  | { readonly type: "peer.heartbeat"; readonly at: number; readonly rttMs: number }
  | { readonly type: "peer.disconnected"; readonly at: number }
  | {
    readonly type: "peer.scored";
    readonly at: number;
    readonly delta: number;
    readonly reason: string;
  }
  | {
    readonly type: "timer.fired";
    readonly at: number;
    readonly key: string;
    readonly due: number;
  };

/** Version of the peer machine's logic; bump when a recording could replay differently. */
export const PEER_MACHINE_VERSION = 1;

type Deadline = "heartbeat" | "ban";

/** The peer machine. */
export const peerMachine = setup({
  types: {} as {
    context: PeerContext;
    events: PeerMachineEvent;
    input: PeerInput;
    emitted: EffectRequest;
  },
  guards: {
    heartbeatDue: ({ context, event }) =>
      event.type === "timer.fired" && event.key === "heartbeat" &&
      context.deadlines.heartbeat === event.due,
    banOver: ({ context, event }) =>
      event.type === "timer.fired" && event.key === "ban" && context.deadlines.ban === event.due,
    tooManyMisses: ({ context }) =>
      context.missedHeartbeats + 1 >= context.config.maxMissedHeartbeats,
    belowBanThreshold: ({ context, event }) =>
      event.type === "peer.scored" && context.score + event.delta < context.config.banThreshold,
  },
  actions: {
    touch: assign({
      lastSeenAt: ({ event }) => event.at,
      missedHeartbeats: 0,
      rttMs: (
        { context, event },
      ) => (event.type === "peer.heartbeat" ? event.rttMs : context.rttMs),
    }),
    recordProtocols: assign({
      protocols: ({ context, event }) =>
        event.type === "peer.identified" ? [...event.protocols] : context.protocols,
    }),
    countMiss: assign({ missedHeartbeats: ({ context }) => context.missedHeartbeats + 1 }),
    applyScore: assign(({ context, event }) => {
      if (event.type !== "peer.scored") return {};
      const offences = event.delta < 0
        ? [...context.offences, event.reason].slice(-8)
        : context.offences;
      return { score: context.score + event.delta, offences };
    }),
    armHeartbeat: enqueueActions(({ context, event, enqueue }) => {
      const due = event.at + Math.ceil(context.config.heartbeatMs * 1.5);
      enqueue.assign({ deadlines: { ...context.deadlines, heartbeat: due } });
      enqueue.emit({ type: "timer.arm", key: "heartbeat", at: due });
    }),
    clearHeartbeat: enqueueActions(({ context, enqueue }) => {
      if (context.deadlines.heartbeat === undefined) return;
      const { heartbeat: _dropped, ...rest } = context.deadlines;
      enqueue.assign({ deadlines: rest });
      enqueue.emit({ type: "timer.cancel", key: "heartbeat" });
    }),
    armBan: enqueueActions(({ context, event, enqueue }) => {
      const due = event.at + context.config.banMs;
      enqueue.assign({ deadlines: { ban: due } });
      enqueue.emit({ type: "timer.arm", key: "ban", at: due });
    }),
    liftBan: assign({
      deadlines: {},
      score: ({ context }) => context.config.initialScore,
      offences: [],
    }),
    disconnectPeer: emit(({ context }) => ({
      type: "peer.disconnect" as const,
      peer: context.peerId,
      reason: `score ${context.score} is below the ban threshold ${context.config.banThreshold}`,
    })),
    withdrawBids: emit(({ context }) => ({
      type: "peer.withdraw_bids" as const,
      peer: context.peerId,
    })),
  },
}).createMachine({
  id: "peer",
  context: ({ input }) => ({
    peerId: input.peerId,
    config: input.config ?? DEFAULT_PEER_CONFIG,
    score: (input.config ?? DEFAULT_PEER_CONFIG).initialScore,
    missedHeartbeats: 0,
    lastSeenAt: input.at,
    rttMs: null,
    protocols: [],
    deadlines: {},
    offences: [],
  }),
  initial: "discovered",
  on: {
    "peer.scored": [
      { guard: "belowBanThreshold", target: ".banned", actions: "applyScore" },
      { actions: "applyScore" },
    ],
  },
  states: {
    discovered: {
      description: "Heard of, not connected.",
      on: { "peer.connected": { target: "connected", actions: "touch" } },
    },
    connected: {
      description: "Transport up, not yet identified.",
      on: {
        "peer.identified": { target: "active", actions: ["touch", "recordProtocols"] },
        "peer.heartbeat": { target: "active", actions: "touch" },
        "peer.disconnected": { target: "disconnected", actions: "withdrawBids" },
      },
    },
    active: {
      description: "Identified and heard from within its heartbeat deadline.",
      entry: "armHeartbeat",
      on: {
        "peer.heartbeat": { actions: ["touch", "armHeartbeat"] },
        "peer.identified": { actions: ["touch", "recordProtocols"] },
        "timer.fired": { guard: "heartbeatDue", target: "suspect", actions: "countMiss" },
        "peer.disconnected": {
          target: "disconnected",
          actions: ["clearHeartbeat", "withdrawBids"],
        },
      },
    },
    suspect: {
      description: "Missed heartbeats; disconnected after too many.",
      entry: "armHeartbeat",
      on: {
        "peer.heartbeat": { target: "active", actions: "touch" },
        "timer.fired": [
          {
            guard: and(["heartbeatDue", "tooManyMisses"]),
            target: "disconnected",
            actions: ["countMiss", "clearHeartbeat", "withdrawBids"],
          },
          { guard: "heartbeatDue", actions: ["countMiss", "armHeartbeat"] },
        ],
        "peer.disconnected": {
          target: "disconnected",
          actions: ["clearHeartbeat", "withdrawBids"],
        },
      },
    },
    disconnected: {
      description: "Gone; its open bids are withdrawn.",
      on: { "peer.connected": { target: "connected", actions: "touch" } },
    },
    banned: {
      description: "Score fell below the ban threshold; lifted when the ban deadline passes.",
      entry: ["clearHeartbeat", "armBan", "disconnectPeer", "withdrawBids"],
      on: {
        "peer.scored": { actions: "applyScore" },
        "timer.fired": { guard: "banOver", target: "disconnected", actions: "liftBan" },
      },
    },
  },
});
