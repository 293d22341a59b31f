/**
 * Network benchmarks on a real libp2p loopback cluster in this process: announcement latency
 * (a client node's job until every worker node's job actor is in `bidding`) beside raw gossipsub
 * publish -> receive on the same hosts, and DHT discovery of capable workers. Every wait is
 * bounded; every host and node is stopped before the function returns.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { JobSpec } from "../../machines/types.ts";
import type { Capability } from "../../protocols/capability_index.ts";
import { createLibp2pHost, type Libp2pHost } from "../../protocols/libp2p_host.ts";
import { announcementTopic, encodeMessage, shardOf, TOPICS } from "../../protocols/messages.ts";
import { commitmentOf } from "../compute/mod.ts";
import { createNode, type Node } from "../kernel/mod.ts";
import { quantile } from "../research/mod.ts";

const LOOPBACK = ["/ip4/127.0.0.1/tcp/0"];

/** What gossipsub's implementation has beyond its declared interface. */
interface MeshView {
  getMeshPeers(topic: string): string[];
}

/** Distribution of a list of millisecond samples. */
export interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

/** p50, p99, mean and max of `values` (p99 of fewer than 100 samples is near the max). */
export function stats(values: readonly number[]): Stats {
  const round = (v: number) => Math.round(v * 100) / 100;
  return {
    n: values.length,
    p50: round(quantile(values, 0.5)),
    p99: round(quantile(values, 0.99)),
    mean: round(values.reduce((a, b) => a + b, 0) / Math.max(1, values.length)),
    max: round(values.length ? Math.max(...values) : NaN),
  };
}

/** Waits until `check()` holds, polling every 10 ms; throws after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => boolean,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Starts `n` hosts on 127.0.0.1: the first alone, each next one bootstrapped to the first, to
 * `i / 2` and to `i - 1` (the topology of `tests/libp2p_cluster_test.ts`), then waits until every
 * host has `min(3, n - 1)` connections.
 */
export async function startCluster(n: number, signal?: AbortSignal): Promise<Libp2pHost[]> {
  const hosts: Libp2pHost[] = [];
  try {
    for (let i = 0; i < n; i++) {
      signal?.throwIfAborted();
      const picks = new Set([0, Math.floor(i / 2), i - 1].filter((j) => j >= 0 && j < i));
      const bootstrap = [...picks].map((j) => hosts[j]!.multiaddrs()[0]!);
      hosts.push(await createLibp2pHost({ listen: LOOPBACK, bootstrap, heartbeatMs: 0 }));
    }
    const min = Math.min(3, n - 1);
    await waitFor(
      `${n} hosts to have ${min} peers each`,
      () => hosts.every((h) => h.peers().length >= min),
      30_000,
    );
    return hosts;
  } catch (error) {
    await Promise.all(hosts.map((host) => host.stop()));
    throw error;
  }
}

/**
 * Waits (at most 10 s) until the event loop is quiet: five timer turns in a row each late by less
 * than 3 ms. A freshly started cluster is busy for a while (identify, DHT routing table
 * refresh), and that work would be measured as gossip latency.
 */
export async function waitQuiet(signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + 10_000;
  let quiet = 0;
  while (quiet < 5 && Date.now() < deadline) {
    signal?.throwIfAborted();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 5));
    quiet = performance.now() - t0 < 8 ? quiet + 1 : 0;
  }
}

/** Options of {@link benchNetwork}. */
export interface NetworkBenchOptions {
  /** Jobs announced (and raw messages published), after one warm-up of each. @default 20 */
  readonly jobs?: number;
  /** Providers to find in the discovery lookups (at most n - 1). @default [5, 20] */
  readonly k?: readonly number[];
  /** Lookups per k, each for a fresh capability. @default 3 */
  readonly lookups?: number;
  readonly onProgress?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** What {@link benchNetwork} measured on one cluster. */
export interface NetworkBenchResult {
  readonly nodes: number;
  readonly clusterReadyMs: number;
  /** Announcement until every worker's job actor is in `bidding`, ms, one sample per job. */
  readonly announceAll: Stats;
  /** Announcement until one worker's job actor is in `bidding`, ms, one sample per worker. */
  readonly announceEach: Stats;
  /** Raw gossipsub publish until every worker's subscription received it, ms. */
  readonly rawAll: Stats;
  /** Raw gossipsub publish until one worker received it, ms. */
  readonly rawEach: Stats;
  /** announceAll.p50 / rawAll.p50. */
  readonly ratioP50: number;
  /** Time for the capable workers to advertise their provider records (in parallel), ms. */
  readonly advertiseMs: number;
  /** Provider records advertised. */
  readonly provides: number;
  /** Discovery of k capable workers through the DHT capability index, ms. */
  readonly discovery: readonly { readonly k: number; readonly found: number; readonly ms: Stats }[];
}

/**
 * A GPU job no worker takes (each asks more than it pays): announced, bid on by nobody, expired.
 */
function gpuSpec(): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: "gpu", minStake: 0n },
    maxPrice: 1_000n,
    bidWindowMs: 100,
    executionMs: 1_000,
    verificationMs: 1_000,
    maxAttempts: 1,
    verifierCount: 0, // no verifier is bonded here, and nobody bids anyway
  };
}

/**
 * Runs the announcement, raw gossip and discovery benchmarks on one `n`-node cluster: a client
 * node on the last host to join (the least connected) and a worker node on each other host.
 * Workers have a GPU (so each hears the job's shard, protocol v2) but ask more than any job
 * here pays, so they decline it: the network carries only the announcement, and each job
 * expires after its bid window.
 */
export async function benchNetwork(
  n: number,
  options: NetworkBenchOptions = {},
): Promise<NetworkBenchResult> {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`Invalid node count ${n}: need >= 2`);
  const jobs = options.jobs ?? 20;
  const progress = options.onProgress ?? (() => {});
  const started = performance.now();
  const hosts = await startCluster(n, options.signal);
  const ledger = LocalLedger.open(":memory:");
  const nodes: Node[] = [];
  try {
    const clusterReadyMs = performance.now() - started;
    progress(`${n} nodes: cluster ready in ${clusterReadyMs.toFixed(0)} ms`);
    const clientHost = hosts[n - 1]!;
    const workerHosts = hosts.slice(0, n - 1);
    for (const host of hosts) {
      const isClient = host === clientHost;
      nodes.push(createNode({
        id: host.self,
        roles: isClient ? ["client"] : ["worker"],
        network: host,
        chain: ledger.as(host.self),
        capabilityIntervalMs: 0,
        ...(isClient ? {} : { worker: { hardware: "gpu" as const, minPrice: 1_000_000n } }),
      }));
    }
    for (const node of nodes) await node.start(options.signal ? { signal: options.signal } : {});
    const client = nodes[n - 1]!;
    const workers = nodes.slice(0, n - 1);

    // Raw receive: a second subscription on the health topic of every worker host.
    const rawSeen: Map<number, number>[] = [];
    workerHosts.forEach((host, i) => {
      rawSeen.push(new Map());
      host.subscribe(TOPICS.health, () => "accept", (message) => {
        const tag = Number(new TextDecoder().decode(message.data).match(/"openJobs":(\d+)/)?.[1]);
        if (!rawSeen[i]!.has(tag)) rawSeen[i]!.set(tag, performance.now());
      });
    });
    // Engine receive: the time each worker took the job in, its actor first seen in `bidding`,
    // or its decline journaled (a worker that cannot run a job keeps no actor for it).
    const bidding = new Map<string, Map<number, number>>();
    const mark = (jobId: string, who: number) => {
      let seen = bidding.get(jobId);
      if (seen === undefined) bidding.set(jobId, seen = new Map());
      if (!seen.has(who)) seen.set(who, performance.now());
    };
    nodes.forEach((node, i) => {
      node.observe((o) => {
        if (
          o.type === "delivered" && (o.state === "bidding" || o.state === "declined") &&
          o.actor.startsWith("job:")
        ) {
          mark(o.actor.slice(4), i === n - 1 ? -1 : i);
        }
      });
    });
    // Gossip meshes form after subscription (heartbeat 1 s): wait until every worker host has
    // mesh peers on the topics measured (the job's shard and health), and the client, which
    // listens on no shard, knows the shard's subscribers.
    const shard = announcementTopic(shardOf(gpuSpec()));
    await waitFor(
      "gossip meshes on every host",
      () =>
        workerHosts.every((h) =>
          [shard, TOPICS.health].every((t) =>
            (h.libp2p.services.pubsub as unknown as MeshView).getMeshPeers(t).length > 0
          )
        ) && clientHost.libp2p.services.pubsub.getSubscribers(shard).length > 0 &&
        (clientHost.libp2p.services.pubsub as unknown as MeshView).getMeshPeers(TOPICS.health)
            .length > 0,
      30_000,
    );

    await waitQuiet(options.signal);
    const rawAll: number[] = [], rawEach: number[] = [];
    const annAll: number[] = [], annEach: number[] = [];
    for (let j = -1; j < jobs; j++) {
      options.signal?.throwIfAborted();
      // Raw: publish a valid health message (it addresses no actor) and wait for every worker.
      const tag = j + 1_000_000;
      const t0 = performance.now();
      await clientHost.publish(
        TOPICS.health,
        encodeMessage(TOPICS.health, {
          type: "node.health",
          node: clientHost.self,
          at: Date.now(),
          openJobs: tag,
        }),
      );
      await waitFor(
        `raw message ${j} on every worker`,
        () => rawSeen.every((m) => m.has(tag)),
        10_000,
      );
      if (j >= 0) {
        const times = rawSeen.map((m) => m.get(tag)! - t0);
        rawEach.push(...times);
        rawAll.push(Math.max(...times));
      }
      await new Promise((r) => setTimeout(r, 20));
      // Engine: submit a job; from the client's actor entering `bidding` (the announcement is
      // published in that step) to every worker's actor in `bidding`.
      const jobId = `bench-${n}-${j + 1}`;
      client.submitJob({ spec: gpuSpec(), jobId });
      await waitFor(`job ${jobId} taken in (bidding or declined) on every worker`, () => {
        const seen = bidding.get(jobId);
        return seen !== undefined && seen.size === n;
      }, 10_000);
      if (j >= 0) {
        const seen = bidding.get(jobId)!;
        const start = seen.get(-1)!;
        const times = workers.map((_, i) => seen.get(i)! - start);
        annEach.push(...times);
        annAll.push(Math.max(...times));
      }
      await new Promise((r) => setTimeout(r, 20));
      if ((j + 1) % 5 === 0) progress(`${n} nodes: ${j + 1}/${jobs} announcements`);
    }
    // Let the last jobs expire so their traffic does not overlap the DHT measurements.
    await new Promise((r) => setTimeout(r, 150));

    // Discovery: for each k, `lookups` fresh model capabilities, each advertised by k workers
    // (a provider lookup returns at most 20 providers: kad-dht's K).
    const lookups = options.lookups ?? 3;
    const ks = [...new Set((options.k ?? [5, 20]).map((k) => Math.min(k, n - 1)))];
    const capabilities = ks.map((k) =>
      Array.from({ length: lookups }, (_, r): Capability => ({
        type: "model",
        hash: createHash("sha256").update(`bench-${n}-${k}-${r}-${Math.random()}`).digest("hex"),
      }))
    );
    const advStart = performance.now();
    let provides = 0;
    await Promise.all(workerHosts.map(async (host, w) => {
      for (const [i, k] of ks.entries()) {
        if (w >= k) continue;
        for (const capability of capabilities[i]!) {
          await host.capabilities.advertise(capability, { signal: AbortSignal.timeout(30_000) });
          provides++;
        }
      }
    }));
    const advertiseMs = performance.now() - advStart;
    progress(`${n} nodes: ${provides} provider records advertised in ${advertiseMs.toFixed(0)} ms`);
    await waitQuiet(options.signal);
    const discovery = [];
    for (const [i, k] of ks.entries()) {
      const times: number[] = [];
      let found = Infinity;
      for (const capability of capabilities[i]!) {
        const t0 = performance.now();
        const providers = await clientHost.capabilities.findProviders(capability, {
          limit: k,
          signal: AbortSignal.timeout(15_000),
        });
        times.push(performance.now() - t0);
        found = Math.min(found, providers.length);
      }
      discovery.push({ k, found, ms: stats(times) });
    }
    progress(`${n} nodes: discovery done`);
    return {
      nodes: n,
      clusterReadyMs: Math.round(clusterReadyMs),
      announceAll: stats(annAll),
      announceEach: stats(annEach),
      rawAll: stats(rawAll),
      rawEach: stats(rawEach),
      ratioP50: Math.round((quantile(annAll, 0.5) / quantile(rawAll, 0.5)) * 100) / 100,
      advertiseMs: Math.round(advertiseMs),
      provides,
      discovery,
    };
  } finally {
    for (const node of nodes) await node.stop().catch(() => {});
    await Promise.all(hosts.map((host) => host.stop().catch(() => {})));
    ledger.close();
  }
}
