/**
 * `deno run -A runtime/bench/flood/main.ts [--jobs N] [--rate-limit R]`: honest
 * announcement-to-bid latency (p50, p99), the status endpoint's latency (`GET /health`) and
 * event-loop lag, without and then with a flood at 100 times the per-peer rate limit from 10
 * rogue keys, in one run.
 *
 * A worker host (the victim, real wire boundary: bounded decoding, strict schemas) answers each
 * announcement of an honest client with a bid. In the flood phase ten rogue libp2p hosts on
 * 127.0.0.2 (ten keys) each send valid, signed `node.health` messages at 100 times the worker's
 * sustained per-peer rate, for as long as the honest phase runs. All hosts share this process
 * (and its two cores), so the figures include the cost of the attackers themselves.
 *
 * The status endpoint is the node's own (`serveStatus`, on `node:http`) in the victim's process,
 * over a real node (an idle client on a ledger in memory) with the victim host's peers and
 * counters in `/health`, as `deno task node` wires it; a prober asks `GET /health` every 50 ms
 * during each phase (each request on a new connection, 5 s at most).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { RPC } from "@libp2p/gossipsub/message";
import { createLibp2pHost, type Libp2pHost } from "../../../protocols/libp2p_host.ts";
import { decodeMessage, encodeMessage, TOPICS } from "../../../protocols/messages.ts";
import { forgeMessage, RoguePeer } from "../../../protocols/rogue_peer.ts";
import { InProcessNetwork } from "../../../protocols/in_process_network.ts";
import { LocalLedger } from "../../../chain/local_ledger.ts";
import { createNode } from "../../kernel/mod.ts";
import { serveStatus, type StatusServer } from "../../ops/mod.ts";

const USAGE = `Usage: deno run -A runtime/bench/flood/main.ts [--jobs N] [--rate-limit R]

Flags:
  --jobs N          honest announcements per phase (default 50)
  --rate-limit R    the worker's sustained per-peer rate, messages per second (default 10);
                    the honest client announces at 0.8 x R, each of the 10 rogues floods at
                    100 x R
  -h, --help        this help`;

const HASH = "ab".repeat(32);
const ROGUES = 10;

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Asks `GET /health` every 50 ms until stopped: each answer's time, and the requests that failed. */
function probeStatus(
  status: StatusServer,
): { stop: () => Promise<{ times: number[]; failed: number }> } {
  const times: number[] = [];
  let failed = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      try {
        const response = await fetch(`${status.url}/health`, {
          signal: AbortSignal.timeout(5_000),
          headers: { connection: "close" },
        });
        await response.arrayBuffer();
        if (response.status === 200) times.push(performance.now() - started);
        else failed++;
      } catch {
        failed++;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { times, failed };
    },
  };
}

interface PhaseResult {
  latencies: number[];
  lost: number;
  lag: number[];
  status: { times: number[]; failed: number };
}

/**
 * Runs `jobs` announcements, one every `everyMs`; each one's time to its bid, the loop lag, and
 * the status endpoint's answer times meanwhile.
 */
async function phase(
  client: Libp2pHost,
  bids: Map<string, number>,
  label: string,
  jobs: number,
  everyMs: number,
  status: StatusServer,
): Promise<PhaseResult> {
  const probe = probeStatus(status);
  const lag: number[] = [];
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    lag.push(Math.max(0, now - last - 10));
    last = now;
  }, 10);
  const sentAt = new Map<string, number>();
  try {
    for (let i = 0; i < jobs; i++) {
      const jobId = `${label}-${i}`;
      sentAt.set(jobId, performance.now());
      await client.publish(
        TOPICS.jobs,
        encodeMessage(TOPICS.jobs, {
          type: "job.announce",
          jobId,
          owner: client.self,
          attempt: 1,
          bidWindowEndsAt: Date.now() + 60_000,
          spec: {
            kind: { type: "builtin", name: "matmul" },
            inputCommitment: HASH,
            requirements: { hardware: "cpu", minStake: 0n },
            maxPrice: 100n,
            bidWindowMs: 60_000,
            executionMs: 60_000,
            verificationMs: 60_000,
            maxAttempts: 1,
            verifierCount: 0,
          },
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    await waitFor(`${label} bids`, () => [...sentAt.keys()].every((id) => bids.has(id)), 10_000)
      .catch(() => {});
  } finally {
    clearInterval(ticker);
  }
  const statusTimes = await probe.stop();
  const latencies = [...sentAt].filter(([id]) => bids.has(id)).map(([id, at]) =>
    bids.get(id)! - at
  );
  return { latencies, lost: sentAt.size - latencies.length, lag, status: statusTimes };
}

if (import.meta.main) {
  let values;
  try {
    values = parseArgs({
      args: Deno.args,
      options: {
        jobs: { type: "string", default: "50" },
        "rate-limit": { type: "string", default: "10" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const jobs = Number(values.jobs);
  const rate = Number(values["rate-limit"]);
  if (!Number.isInteger(jobs) || jobs < 1 || !(rate > 0)) {
    console.error(`Invalid flags: --jobs must be a positive integer, --rate-limit positive`);
    Deno.exit(2);
  }
  const worker = await createLibp2pHost({
    listen: ["/ip4/127.0.0.1/tcp/0"],
    heartbeatMs: 0,
    trustedRanges: ["127.0.0.1/32"],
    rateLimit: { capacity: 2 * rate, refillPerSecond: rate },
  });
  const client = await createLibp2pHost({
    listen: ["/ip4/127.0.0.1/tcp/0"],
    bootstrap: [worker.multiaddrs()[0]!],
    heartbeatMs: 0,
  });
  const rogues: RoguePeer[] = [];
  // The victim's status endpoint, as `deno task node` serves it: a real node behind it, the
  // host's peers and counters in /health.
  const ledger = LocalLedger.open(":memory:");
  const side = new InProcessNetwork();
  const node = createNode({
    id: worker.self,
    roles: ["client"],
    network: side.join(worker.self),
    chain: ledger.as(worker.self),
    capabilityIntervalMs: 0,
  });
  await node.start();
  const status = await serveStatus(node, {
    connected: () => worker.peers(),
    extra: () => ({ multiaddrs: worker.multiaddrs(), network: worker.stats() }),
  });
  // The honest client stays under the rate limit (80 % of it).
  const everyMs = 1_000 / (0.8 * rate);
  try {
    for (const topic of Object.values(TOPICS)) {
      worker.subscribe(topic, (message) => {
        decodeMessage(message.topic, message.data);
        return "accept";
      }, (message) => {
        if (message.topic !== TOPICS.jobs) return;
        const job = decodeMessage(TOPICS.jobs, message.data);
        worker.publish(
          TOPICS.bids,
          encodeMessage(TOPICS.bids, {
            type: "bid.submit",
            bidId: `bid-${job.jobId}`,
            jobId: job.jobId,
            worker: worker.self,
            price: 5n,
            etaMs: 1_000,
            stake: 0n,
            reputation: 500,
            hardware: "cpu",
          }),
        ).catch(() => {});
      });
    }
    const bids = new Map<string, number>();
    client.subscribe(TOPICS.bids, (message) => {
      decodeMessage(message.topic, message.data);
      return "accept";
    }, (message) => {
      const bid = decodeMessage(TOPICS.bids, message.data);
      bids.set(bid.jobId, performance.now());
    });
    client.subscribe(TOPICS.jobs, () => "accept", () => {});
    await waitFor(
      "the meshes",
      () =>
        client.libp2p.services.pubsub.getSubscribers(TOPICS.jobs).length > 0 &&
        worker.libp2p.services.pubsub.getSubscribers(TOPICS.bids).length > 0,
    );
    console.error(`phase 1: ${jobs} announcements, no flood`);
    const quiet = await phase(client, bids, "quiet", jobs, everyMs, status);

    for (let i = 0; i < ROGUES; i++) {
      const key = await generateKeyPair("Ed25519");
      const host = await createLibp2pHost({
        privateKey: key,
        listen: ["/ip4/127.0.0.2/tcp/0"],
        heartbeatMs: 0,
      });
      const rogue = new RoguePeer(host, key);
      rogues.push(rogue);
      await worker.dial(host.multiaddrs()[0]!);
      await waitFor("the rogue's stream", () => rogue.canReach(worker.self));
    }
    const floodRate = 100 * rate;
    const floodMs = jobs * everyMs + 2_000;
    const perRogue = Math.ceil((floodRate * floodMs) / 1_000);
    console.error(`forging ${ROGUES} x ${perRogue} flood messages (${floodRate}/s per key)`);
    const batches: RPC.Message[][] = await Promise.all(rogues.map(async (rogue) => {
      const out: RPC.Message[] = [];
      for (let n = 0; n < perRogue; n++) {
        const data = encodeMessage(TOPICS.health, {
          type: "node.health",
          node: rogue.host.self,
          at: n,
          openJobs: 0,
        });
        out.push(await forgeMessage(TOPICS.health, data, rogue.key));
      }
      return out;
    }));
    console.error(`phase 2: ${jobs} announcements during the flood`);
    let flooding = true;
    const flood = (async () => {
      const perSlice = Math.ceil(floodRate / 10);
      for (let s = 0; flooding && s * perSlice < perRogue; s++) {
        rogues.forEach((rogue, i) =>
          rogue.injectForged(worker.self, batches[i]!.slice(s * perSlice, (s + 1) * perSlice))
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const before = worker.stats();
    const flooded = await phase(client, bids, "flood", jobs, everyMs, status);
    flooding = false;
    await flood;
    const after = worker.stats();
    const row = (name: string, r: PhaseResult) =>
      `${name.padEnd(22)} ${percentile(r.latencies, 50).toFixed(1).padStart(8)} ${
        percentile(r.latencies, 99).toFixed(1).padStart(8)
      } ${String(r.lost).padStart(5)} ${percentile(r.lag, 99).toFixed(1).padStart(10)} ${
        percentile(r.status.times, 50).toFixed(1).padStart(10)
      } ${percentile(r.status.times, 99).toFixed(1).padStart(10)} ${
        String(r.status.failed).padStart(6)
      }`;
    console.log(
      `announcement to bid, ms   p50      p99  lost  loop lag p99 /health p50 /health p99 failed`,
    );
    console.log(row("no flood", quiet));
    console.log(row(`flood ${ROGUES} keys x ${floodRate}/s`, flooded));
    console.log(
      `flood: ${after.rateLimited - before.rateLimited} rate limited, ` +
        `${after.queueFull - before.queueFull} queue full, ${
          after.rejected - before.rejected
        } rejected`,
    );
    console.log(JSON.stringify({
      jobs,
      rateLimit: rate,
      floodPerKey: floodRate,
      keys: ROGUES,
      quiet: {
        p50: percentile(quiet.latencies, 50),
        p99: percentile(quiet.latencies, 99),
        lost: quiet.lost,
        lagP99: percentile(quiet.lag, 99),
        statusP50: percentile(quiet.status.times, 50),
        statusP99: percentile(quiet.status.times, 99),
        statusRequests: quiet.status.times.length,
        statusFailed: quiet.status.failed,
      },
      flood: {
        p50: percentile(flooded.latencies, 50),
        p99: percentile(flooded.latencies, 99),
        lost: flooded.lost,
        lagP99: percentile(flooded.lag, 99),
        statusP50: percentile(flooded.status.times, 50),
        statusP99: percentile(flooded.status.times, 99),
        statusRequests: flooded.status.times.length,
        statusFailed: flooded.status.failed,
        rateLimited: after.rateLimited - before.rateLimited,
      },
    }));
  } finally {
    // Stopping a host whose peer is mid-flood can wait on its streams: bounded, then exit.
    await Promise.race([
      Promise.all([
        status.shutdown(),
        worker.stop(),
        client.stop(),
        ...rogues.map((r) => r.host.stop()),
      ]),
      new Promise((resolve) => setTimeout(resolve, 5_000)),
    ]);
    await node.stop();
    ledger.close();
  }
  Deno.exit(0);
}
