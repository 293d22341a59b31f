/**
 * `deno run -A runtime/bench/flood/main.ts [--jobs N] [--rate-limit R] [--profile FILE]`: honest
 * announcement-to-bid latency (p50, p99), the status endpoint's latency (`GET /health`) and
 * event-loop lag, without and then with a flood at 100 times the per-peer rate limit from 10
 * rogue keys, in one run.
 *
 * A worker host (the victim, real wire boundary: bounded decoding, strict schemas) answers each
 * announcement of an honest client with a bid. In the flood phase ten rogue libp2p hosts on
 * 127.0.0.2 (ten keys) each send valid, signed `node.health` messages at 100 times the worker's
 * sustained per-peer rate, for as long as the honest phase runs (a rogue the victim has banned
 * for flooding has no stream left to send on). All hosts share this process (and its two
 * cores), so the figures include the cost of the attackers themselves. The victim's bid goes
 * to the client directly (protocol v2, `send`).
 *
 * `--profile FILE` writes a V8 CPU profile of the flood phase (`node:inspector`), for
 * `deno task bench --summarize FILE`.
 *
 * The status endpoint is the node's own (`serveStatus`, on `node:http`) in the victim's process,
 * over a real node (an idle client on a ledger in memory) with the victim host's peers and
 * counters in `/health`, as `deno task node` wires it; a prober asks `GET /health` every 50 ms
 * during each phase (each request on a new connection, 5 s at most).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createLibp2pHost, type Libp2pHost } from "../../../protocols/libp2p_host.ts";
import { decodeMessage, encodeMessage, TOPICS } from "../../../protocols/messages.ts";
import { InProcessNetwork } from "../../../protocols/in_process_network.ts";
import { LocalLedger } from "../../../chain/local_ledger.ts";
import { createNode } from "../../kernel/mod.ts";
import { serveStatus, type StatusServer } from "../../ops/mod.ts";

const USAGE =
  `Usage: deno run -A runtime/bench/flood/main.ts [--jobs N] [--rate-limit R] [--profile FILE]

Flags:
  --jobs N          honest announcements per phase (default 50)
  --rate-limit R    the worker's sustained per-peer rate, messages per second (default 10);
                    the honest client announces at 0.8 x R, each of the 10 rogues floods at
                    100 x R
  --profile FILE    write a CPU profile of the flood phase to FILE (.cpuprofile)
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

/** The lines of a child's output, one JSON message each. */
function lineReader(stream: ReadableStream<Uint8Array>): { next: () => Promise<string> } {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    next: async () => {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("The rogues' process ended early");
        buffer += value;
      }
      const at = buffer.indexOf("\n");
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      return line;
    },
  };
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

/** Starts V8's sampling profiler in this process (`node:inspector`). */
async function startProfile(): Promise<{ stop: () => Promise<unknown> }> {
  const { Session } = await import("node:inspector");
  const session = new Session();
  session.connect();
  const post = (method: string) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, (error, result) => error ? reject(error) : resolve(result))
    );
  await post("Profiler.enable");
  await post("Profiler.start");
  return {
    stop: async () => {
      const { profile } = await post("Profiler.stop") as { profile: unknown };
      session.disconnect();
      return profile;
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
        profile: { type: "string" },
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
  let rogues: Deno.ChildProcess | undefined;
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
        // Protocol v2: a bid goes to the job's owner directly.
        worker.send(
          job.owner,
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
      () => client.libp2p.services.pubsub.getSubscribers(TOPICS.jobs).length > 0,
    );
    console.error(`phase 1: ${jobs} announcements, no flood`);
    const quiet = await phase(client, bids, "quiet", jobs, everyMs, status);

    const floodRate = 100 * rate;
    const floodSeconds = Math.ceil((jobs * everyMs + 2_000) / 100) / 10;
    console.error(`starting ${ROGUES} rogues in their own process (${floodRate}/s per key)`);
    rogues = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("./rogues/main.ts", import.meta.url).pathname,
        "--victim",
        worker.self,
        "--keys",
        String(ROGUES),
        "--rate",
        String(floodRate),
        "--seconds",
        String(floodSeconds),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const fromRogues = lineReader(rogues.stdout);
    const { rogues: addresses } = JSON.parse(await fromRogues.next()) as { rogues: string[] };
    for (const address of addresses) {
      // A loaded machine can time a handshake out: a few tries.
      for (let attempt = 1;; attempt++) {
        try {
          await worker.dial(address, { signal: AbortSignal.timeout(20_000) });
          break;
        } catch (error) {
          if (attempt === 3) throw error;
        }
      }
    }
    const { ready } = JSON.parse(await fromRogues.next()) as { ready: string[] };
    console.error(`phase 2: ${jobs} announcements during the flood`);
    const toRogues = rogues.stdin.getWriter();
    await toRogues.write(new TextEncoder().encode("go\n"));
    const before = worker.stats();
    // When the victim has banned every rogue for flooding (FloodGuard), from the flood's start.
    const floodStarted = performance.now();
    let allBannedMs = NaN;
    const banWatch = setInterval(() => {
      if (worker.stats().floodBans - before.floodBans < ROGUES) return;
      allBannedMs = performance.now() - floodStarted;
      clearInterval(banWatch);
    }, 20);
    const profiler = values.profile === undefined ? undefined : await startProfile();
    const flooded = await phase(client, bids, "flood", jobs, everyMs, status);
    if (profiler !== undefined) {
      await Deno.writeTextFile(values.profile!, JSON.stringify(await profiler.stop()));
      console.error(`wrote the flood phase's CPU profile to ${values.profile}`);
    }
    clearInterval(banWatch);
    await toRogues.close(); // stops the flood
    const flood = JSON.parse(await fromRogues.next()) as { sent: number; cut: number };
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
      `flood: ${flood.sent} messages sent (${flood.cut} frames not sent: cut off), ` +
        `${after.rateLimited - before.rateLimited} rate limited, ` +
        `${after.queueFull - before.queueFull} queue full, ${
          after.rejected - before.rejected
        } rejected, ${
          ready.filter((id) => worker.isBanned(id)).length
        } of ${ROGUES} keys banned for flooding${
          Number.isNaN(allBannedMs) ? "" : ` (all within ${(allBannedMs / 1_000).toFixed(1)} s)`
        }, ${after.bannedIgnored - before.bannedIgnored} decoded after the bans`,
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
        sent: flood.sent,
        cut: flood.cut,
        rateLimited: after.rateLimited - before.rateLimited,
        floodBans: after.floodBans - before.floodBans,
        bannedIgnored: after.bannedIgnored - before.bannedIgnored,
        allBannedMs,
      },
    }));
  } finally {
    // Stopping a host whose peer is mid-flood can wait on its streams: bounded, then exit.
    await Promise.race([
      Promise.all([
        status.shutdown(),
        worker.stop(),
        client.stop(),
        rogues?.status,
      ]),
      new Promise((resolve) => setTimeout(resolve, 5_000)),
    ]);
    try {
      rogues?.kill();
    } catch {
      // already exited
    }
    await node.stop();
    ledger.close();
  }
  Deno.exit(0);
}
