/**
 * The honest side of the adversarial tests: a worker host (the victim) and a client host on
 * 127.0.0.1, running the real wire boundary (bounded decoding, strict schemas, the application
 * rules of `wireToActorEvents`), and a rogue host on 127.0.0.2 that the victim dials, so the
 * victim sees the rogue's own IP address (outside its trusted range, `127.0.0.1/32`).
 *
 * The client announces jobs on a shard ({@link JOBS}); the worker answers each with a bid sent
 * to the client directly (protocol v2); {@link Market.announce}
 * resolves with the announcement-to-bid time. That is the honest traffic each test checks
 * keeps flowing under attack.
 *
 * @module
 */
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import {
  createLibp2pHost,
  type Libp2pHost,
  type Libp2pHostOptions,
} from "../../protocols/libp2p_host.ts";
import {
  announcementTopic,
  decodeMessage,
  encodeMessage,
  type MessageOf,
  type Topic,
  TOPICS,
} from "../../protocols/messages.ts";
import { wireToActorEvents } from "../../protocols/translate.ts";
import type { GossipMessage } from "../../protocols/network_port.ts";
import { RoguePeer } from "../../protocols/rogue_peer.ts";

export const HONEST = ["/ip4/127.0.0.1/tcp/0"];
export const ROGUE = ["/ip4/127.0.0.2/tcp/0"];
export const HASH = "ab".repeat(32);
/** The announcement shard of the harness's jobs (CPU matmul, protocol v2). */
export const JOBS = announcementTopic({ hardware: "cpu", kind: "matmul" });

/** Polls `check` every 20 ms until it holds or `timeoutMs` passes; throws naming `what`. */
export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The node's gossip validator, reduced to the boundary: decode (bounded, strict), then the
 * application rules. Throws the `WireError` or `RuleViolation`, whose code the host logs and
 * counts; `seen` collects what was accepted.
 */
export function boundaryValidator(seen: MessageOf<Topic>[]) {
  return (message: GossipMessage): "accept" => {
    const decoded = decodeMessage(message.topic, message.data);
    wireToActorEvents(message.topic, decoded, message.from, { verifiersOf: () => undefined });
    seen.push(decoded);
    return "accept";
  };
}

/** A valid announcement of `jobId` by `owner`. */
export function announcement(jobId: string, owner: string): MessageOf<typeof TOPICS.jobs> {
  return {
    type: "job.announce",
    jobId,
    owner,
    attempt: 1,
    bidWindowEndsAt: Date.now() + 60_000,
    spec: {
      kind: { type: "builtin", name: "matmul" },
      inputCommitment: HASH,
      input: { a: [[1, 2]], b: [[3], [4]] },
      requirements: { hardware: "cpu", minStake: 0n },
      maxPrice: 100n,
      bidWindowMs: 60_000,
      executionMs: 60_000,
      verificationMs: 60_000,
      maxAttempts: 1,
      verifierCount: 0,
    },
  };
}

/** The honest client and worker, and what each accepted. */
export interface Market {
  readonly worker: Libp2pHost;
  readonly client: Libp2pHost;
  /** What the worker accepted, on every topic. */
  readonly workerSeen: MessageOf<Topic>[];
  /** Publishes an announcement and resolves with the time until the worker's bid arrived. */
  announce(jobId: string, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the worker (victim) with `workerOptions`, and the client bootstrapped to it. */
export async function startMarket(
  workerOptions: Partial<Libp2pHostOptions> = {},
): Promise<Market> {
  const worker = await createLibp2pHost({
    listen: HONEST,
    heartbeatMs: 0,
    trustedRanges: ["127.0.0.1/32"],
    ...workerOptions,
  });
  const client = await createLibp2pHost({
    listen: HONEST,
    bootstrap: [worker.multiaddrs()[0]!],
    heartbeatMs: 0,
  });
  const workerSeen: MessageOf<Topic>[] = [];
  const validate = boundaryValidator(workerSeen);
  const topics = [JOBS, ...Object.values(TOPICS).filter((t) => t !== TOPICS.jobs)];
  for (const topic of topics) {
    worker.subscribe(topic, validate, (message) => {
      if (message.topic !== JOBS) return;
      const job = decodeMessage(JOBS, message.data);
      const bid = encodeMessage(TOPICS.bids, {
        type: "bid.submit",
        bidId: `bid-${job.jobId}`,
        jobId: job.jobId,
        worker: worker.self,
        price: 5n,
        etaMs: 1_000,
        stake: 0n,
        reputation: 500,
        hardware: "cpu",
      });
      // Protocol v2: the bid goes to the job's owner directly.
      worker.send(job.owner, TOPICS.bids, bid).catch(() => {});
    });
  }
  const bids = new Map<string, number>();
  const clientSeen: MessageOf<Topic>[] = [];
  client.subscribe(TOPICS.bids, boundaryValidator(clientSeen), (message) => {
    const bid = decodeMessage(TOPICS.bids, message.data);
    if (bid.worker === worker.self) bids.set(bid.jobId, performance.now());
  });
  client.subscribe(JOBS, boundaryValidator(clientSeen), () => {});
  await waitFor("the client to connect", () => worker.peers().includes(client.self));
  await waitFor(
    "the mesh to form",
    () => client.libp2p.services.pubsub.getSubscribers(JOBS).length > 0,
  );
  return {
    worker,
    client,
    workerSeen,
    async announce(jobId, timeoutMs = 15_000) {
      const started = performance.now();
      await client.publish(JOBS, encodeMessage(JOBS, announcement(jobId, client.self)));
      await waitFor(`the bid on ${jobId}`, () => bids.has(jobId), timeoutMs);
      return bids.get(jobId)! - started;
    },
    async stop() {
      await Promise.all([worker.stop(), client.stop()]);
    },
  };
}

/** A rogue host on 127.0.0.2 that `victim` has dialled, ready to inject. */
export async function startRogue(
  victim: Libp2pHost,
  options: Partial<Libp2pHostOptions> = {},
): Promise<RoguePeer> {
  const key: PrivateKey = await generateKeyPair("Ed25519");
  const host = await createLibp2pHost({
    privateKey: key,
    listen: ROGUE,
    heartbeatMs: 0,
    ...options,
  });
  const rogue = new RoguePeer(host, key);
  try {
    await victim.dial(host.multiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
    await waitFor("the rogue's gossip stream", () => rogue.canReach(victim.self));
    return rogue;
  } catch (error) {
    await host.stop();
    throw error;
  }
}

/** How many of `victim`'s rejections carried `code`. */
export function rejectedWith(victim: Libp2pHost, code: string): number {
  return victim.rejections.stats().byCode[code] ?? 0;
}

export const encoder = new TextEncoder();
