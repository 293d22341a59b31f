/**
 * Gossipsub peer score parameters. Gossipsub's defaults assume high-traffic topics and one peer
 * per IP. Ours:
 *
 * Gossipsub's defaults assume high-traffic topics and one peer per IP. Ours:
 *
 * - **Every topic in `TOPICS` is scored** (gossipsub only counts invalid deliveries for scored
 *   topics), `topicWeight` 1.
 * - **P1 time in mesh**: weight 0.01 per second, capped at 300 s (at most +3).
 * - **P2 first deliveries**: weight 1, decay 0.9 per second, cap 20 (at most +20).
 * - **P3/P3b mesh delivery deficits: off** (weight 0). Job traffic is bursty and often
 *   quiet; a deficit penalty would prune honest peers from the mesh in a quiet minute.
 * - **P4 invalid deliveries**: weight -0.2, decay 0.99 per second (half-life about 70 s).
 *   The penalty is quadratic (-0.2 n²): one rejected message costs 0.2, 7 cost about 10 (the
 *   gossip threshold), 16 about 51 (the publish threshold), 20 exactly 80 (the graylist
 *   threshold), which is where the ban counter above disconnects the peer: score and ban
 *   agree.
 * - **P6 IP colocation**: weight -5 above 10 peers per IP (the gossipsub defaults) for public
 *   addresses; addresses in `trustedRanges` (default loopback, `127.0.0.0/8` and `::1/128`) are
 *   whitelisted. Measured before the whitelist: an 11th node on loopback emptied every mesh
 *   and a 20-node loopback network delivered 0 % of its gossip.
 * - **P7 behaviour penalty**: gossipsub defaults (weight -10, decay 0.2).
 * - Thresholds: gossip -10, publish -50, graylist -80, accept PX 10, opportunistic graft 20.
 * - `topicScoreCap` 25; decay interval 1 s.
 *
 * @module
 */
import type {
  PeerScoreParams,
  PeerScoreThresholds,
  TopicScoreParams,
} from "@libp2p/gossipsub/score";
import { shardsFor, TOPICS } from "./messages.ts";

/** The score parameters of every topic in `TOPICS`. */
export const TOPIC_SCORE: Readonly<TopicScoreParams> = {
  topicWeight: 1,
  timeInMeshWeight: 0.01,
  timeInMeshQuantum: 1_000,
  timeInMeshCap: 300,
  firstMessageDeliveriesWeight: 1,
  firstMessageDeliveriesDecay: 0.9,
  firstMessageDeliveriesCap: 20,
  meshMessageDeliveriesWeight: 0,
  meshMessageDeliveriesDecay: 0.5,
  meshMessageDeliveriesCap: 100,
  meshMessageDeliveriesThreshold: 1,
  meshMessageDeliveriesWindow: 10,
  meshMessageDeliveriesActivation: 5_000,
  meshFailurePenaltyWeight: 0,
  meshFailurePenaltyDecay: 0.5,
  invalidMessageDeliveriesWeight: -0.2,
  invalidMessageDeliveriesDecay: 0.99,
};

/** Score thresholds: gossip -10, publish -50, graylist -80, accept PX 10, opportunistic graft 20. */
export const PEER_SCORE_THRESHOLDS: Readonly<PeerScoreThresholds> = {
  gossipThreshold: -10,
  publishThreshold: -50,
  graylistThreshold: -80,
  acceptPXThreshold: 10,
  opportunisticGraftThreshold: 20,
};

/**
 * The peer score parameters: every topic scored with {@link TOPIC_SCORE}, IP colocation
 * penalised above 10 peers per IP except for addresses `whitelist.has()` accepts.
 */
export function peerScoreParams(whitelist: Set<string>): Partial<PeerScoreParams> {
  return {
    // The fixed topics and the builtin's shards; a model's shard has no topic score (our own
    // rejection budget still bans a peer that sends bad messages on it).
    topics: Object.fromEntries(
      [
        ...Object.values(TOPICS),
        ...shardsFor("gpu", ["matmul"]),
      ].map((topic) => [topic, { ...TOPIC_SCORE }]),
    ),
    topicScoreCap: 25,
    IPColocationFactorWeight: -5,
    IPColocationFactorThreshold: 10,
    IPColocationFactorWhitelist: whitelist,
    decayInterval: 1_000,
    decayToZero: 0.01,
  };
}
