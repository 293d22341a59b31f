/**
 * The multi-process benchmark: a market of separate `deno task node` processes on 127.0.0.1
 * ({@link startDevstack}: the first client is also the bootstrap; every node settles on one
 * local ledger file, chain settlement), started a few at a time, then `jobs` jobs submitted over
 * HTTP to the clients in turn with at most `concurrency` in flight, until every job is final or
 * the global cap passes. Measured: outcomes, announcement to first bid and job wall time (both
 * from the owner's job record: its `bidding` phase, its bids' `receivedAt`, its final phase),
 * total wall time, the processes' peak RSS and the load average. Every process it started is
 * stopped before it returns or throws (SIGTERM, then SIGKILL).
 *
 * On a failure other than an abort, what each node last logged is told and the data directories
 * are kept. `processes/main.ts` is `deno task bench:processes`.
 *
 * @module
 */
import { type Devstack, type DevstackNode, startDevstack } from "../ops/mod.ts";
import { type Stats, stats } from "./bench_network.ts";

/** Options of {@link runProcessBench}; {@link PROCESS_BENCH_DEFAULTS} has the defaults. */
export interface ProcessBenchOptions {
  /** Client nodes (the first is also the bootstrap). @default 2 */
  readonly clients?: number;
  /** Worker nodes. @default 24 */
  readonly workers?: number;
  /** Verifier nodes. @default 4 */
  readonly verifiers?: number;
  /** Jobs submitted. @default 200 */
  readonly jobs?: number;
  /** Jobs in flight at most (submitted, not final). @default 16 */
  readonly concurrency?: number;
  /** Nodes starting at once. @default 2 */
  readonly startConcurrency?: number;
  /** Each job's bid window, ms. @default 2_000 */
  readonly bidWindowMs?: number;
  /** Verifiers each job asks for (at most `verifiers`). @default 4 */
  readonly verifierCount?: number;
  /** Cap on forming the market, ms. @default 600_000 */
  readonly readyTimeoutMs?: number;
  /** Cap on the jobs, from the first submission to the last final state, ms. @default 1_800_000 */
  readonly timeoutMs?: number;
  /** Where data directories and the ledger go. @default a new temporary directory, removed after */
  readonly dir?: string;
  /** How often progress is told, ms. @default 5_000 */
  readonly progressMs?: number;
  readonly onProgress?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** The defaults of {@link ProcessBenchOptions}, in one place. */
export const PROCESS_BENCH_DEFAULTS = {
  clients: 2,
  workers: 24,
  verifiers: 4,
  jobs: 200,
  concurrency: 16,
  startConcurrency: 2,
  bidWindowMs: 2_000,
  verifierCount: 4,
  readyTimeoutMs: 600_000,
  timeoutMs: 1_800_000,
  progressMs: 5_000,
} as const;

/**
 * What every node of the benchmark runs with, over devstack's own (which pings each peer and
 * re-announces capabilities every 1 to 2 s, for quick tests): the node's defaults for the peer
 * and ping heartbeats (5 s) and capabilities every 10 s (the default is 30 s; a node that joins
 * hears the others' at their next). Thirty processes waking each second starved one another on
 * the loaded 2-core machine.
 */
export const QUIET_NODE_CONFIG: Readonly<Record<string, unknown>> = {
  peer: { heartbeatMs: 5_000 },
  network: { heartbeatMs: 5_000 },
  capabilityIntervalMs: 10_000,
};

/** The limits of {@link ProcessBenchOptions}, checked by {@link checkProcessBenchOptions}. */
export const PROCESS_BENCH_LIMITS = {
  clients: [1, 8],
  workers: [1, 32],
  verifiers: [1, 32],
  jobs: [1, 10_000],
  concurrency: [1, 500],
  startConcurrency: [1, 64],
  bidWindowMs: [100, 60_000],
  verifierCount: [0, 32],
  readyTimeoutMs: [1_000, 3_600_000],
  timeoutMs: [1_000, 86_400_000],
  progressMs: [100, 600_000],
} as const satisfies Record<string, readonly [number, number]>;

type Numeric = keyof typeof PROCESS_BENCH_LIMITS;

/** Options with every default filled in. */
export type ResolvedProcessBenchOptions = { readonly [K in Numeric]: number };

/**
 * Fills in the defaults and checks every figure: an integer within its limit, and no more
 * verifiers per job than verifier nodes. Throws `RangeError` naming the option.
 */
export function checkProcessBenchOptions(
  options: Partial<Record<Numeric, number>>,
): ResolvedProcessBenchOptions {
  const out = {} as Record<Numeric, number>;
  for (const key of Object.keys(PROCESS_BENCH_LIMITS) as Numeric[]) {
    const value = options[key] ?? PROCESS_BENCH_DEFAULTS[key];
    const [min, max] = PROCESS_BENCH_LIMITS[key];
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`Invalid ${key} ${value}: must be an integer in [${min}, ${max}]`);
    }
    out[key] = value;
  }
  if (out.verifierCount > out.verifiers) {
    throw new RangeError(
      `Invalid verifierCount ${out.verifierCount}: more than the ${out.verifiers} verifier nodes`,
    );
  }
  return out;
}

/** A job's record as the owner's `GET /jobs/:id` gives it (the fields read here). */
export interface OwnerJobView {
  readonly state: string;
  readonly context?: {
    readonly path: readonly { readonly state: string; readonly at: number }[];
    readonly bids: Readonly<
      Record<string, { readonly attempt: number; readonly receivedAt: number }>
    >;
  };
}

/**
 * From the owner's record of a job: the time from its announcement (its first `bidding` phase,
 * when the owner published it) to its first bid of attempt 1, and from its first phase
 * (submission) to its last (final). Undefined where the record does not say (no bid, a retired
 * actor's summary without bids, a job not final).
 */
export function jobTimes(
  view: OwnerJobView,
): { announceToBidMs?: number; wallMs?: number } {
  const path = view.context?.path ?? [];
  const bidding = path.find((p) => p.state === "bidding")?.at;
  const firstBid = Math.min(
    ...Object.values(view.context?.bids ?? {}).filter((b) => b.attempt === 1).map((b) =>
      b.receivedAt
    ),
  );
  const first = path[0]?.at;
  const last = path.at(-1);
  return {
    ...(bidding !== undefined && Number.isFinite(firstBid)
      ? { announceToBidMs: firstBid - bidding }
      : {}),
    ...(first !== undefined && last !== undefined && FINAL_STATES.includes(last.state)
      ? { wallMs: last.at - first }
      : {}),
  };
}

/** The job machine's final states. */
export const FINAL_STATES: readonly string[] = [
  "settled",
  "expired",
  "cancelled",
  "refunded",
  "failed",
];

/** Resident set sizes of processes, from `/proc/<pid>/status` (Linux); bytes. */
export async function residentSet(
  pid: number,
): Promise<{ rss: number; peak: number } | undefined> {
  const text = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => undefined);
  if (text === undefined) return undefined;
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const rss = kb("VmRSS");
  const peak = kb("VmHWM");
  return Number.isFinite(rss) && Number.isFinite(peak)
    ? { rss: rss * 1024, peak: peak * 1024 }
    : undefined;
}

/** What {@link runProcessBench} measured. */
export interface ProcessBenchResult {
  readonly options: ResolvedProcessBenchOptions;
  /** Node processes started. */
  readonly processes: number;
  /** From the first process start until every client heard every node, ms. */
  readonly formationMs: number;
  /** From the first submission until every job was final (or the cap), ms. */
  readonly jobsWallMs: number;
  /** Final states by name, plus `unfinished` (not final at the cap) and `rejected` (not taken). */
  readonly outcomes: Readonly<Record<string, number>>;
  /** Announcement to the first bid, ms, one sample per job that had a bid. */
  readonly announceToBid: Stats;
  /** Submission to final state, ms, one sample per final job. */
  readonly jobWall: Stats;
  /** Settled jobs per second of `jobsWallMs`. */
  readonly settledPerSecond: number;
  readonly rss: {
    /** The largest sum of every node's RSS seen while sampling (every 2 s), bytes. */
    readonly peakTotal: number;
    /** The largest one process's peak RSS (VmHWM), bytes. */
    readonly peakProcess: number;
    /** The sum of every process's peak RSS (VmHWM), bytes: a bound on the total. */
    readonly sumOfPeaks: number;
  };
  /** The 1-, 5- and 15-minute load averages before the start and at the end; the 1-minute max. */
  readonly load: {
    readonly before: readonly number[];
    readonly max1: number;
    readonly after: readonly number[];
  };
}

interface Tracked {
  readonly jobId: string;
  readonly client: DevstackNode;
  final?: string;
  announceToBidMs?: number;
  wallMs?: number;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/**
 * GETs `url` as JSON. A connection that fails (a loaded node's HTTP server may drop one) is tried
 * again, 3 times in all, half a second apart: a poll is safe to repeat.
 */
async function getJson(url: string, signal?: AbortSignal): Promise<unknown> {
  for (let attempt = 1;; attempt++) {
    try {
      const response = await fetch(url, {
        signal: signal === undefined
          ? AbortSignal.timeout(10_000)
          : AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
      });
      if (!response.ok) {
        const text = await response.text();
        throw new HttpStatusError(`GET ${url}: ${response.status} ${text.slice(0, 200)}`);
      }
      return await response.json();
    } catch (error) {
      if (error instanceof HttpStatusError || signal?.aborted || attempt >= 3) throw error;
      await sleep(500, signal);
    }
  }
}

/** A GET answered with a status that is not ok (not tried again). */
class HttpStatusError extends Error {
  override readonly name = "HttpStatusError";
}

/** The job spec every submission uses, the input varying with `i`. */
export function benchJobSpec(
  i: number,
  options: Pick<ResolvedProcessBenchOptions, "bidWindowMs" | "verifierCount">,
): Record<string, unknown> {
  return {
    kind: { type: "builtin", name: "matmul" },
    input: { a: [[i, 2], [3, 4]], b: [[5, 6], [7, 8]] },
    requirements: { hardware: "cpu", minStake: "100" },
    maxPrice: "1000",
    bidWindowMs: options.bidWindowMs,
    // Room for a loaded machine: every attestation is a transaction on the one ledger file.
    executionMs: 30_000,
    verificationMs: 60_000,
    maxAttempts: 3,
    verifierCount: options.verifierCount,
  };
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const loads = () => Deno.loadavg().map((l) => Math.round(l * 100) / 100);

/** Runs the benchmark; every process it started is stopped when it returns or throws. */
export async function runProcessBench(
  options: ProcessBenchOptions = {},
): Promise<ProcessBenchResult> {
  const o = checkProcessBenchOptions(options);
  const signal = options.signal;
  const tell = options.onProgress ?? (() => {});
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "ciro-bench-processes-" });
  const before = loads();
  let max1 = before[0] ?? 0;
  const processes = o.clients + o.workers + o.verifiers;
  const tails = new Map<string, string[]>();
  let stack: Devstack | undefined;
  let failed = false;
  let peakTotal = 0;
  let pids: number[] = [];
  const t0 = performance.now();
  const since = () => `${((performance.now() - t0) / 1000).toFixed(0)} s`;
  // Progress while the market forms: nodes that wrote their node.json.
  const forming = setInterval(async () => {
    let up = 0;
    for (const entry of await Array.fromAsync(Deno.readDir(dir)).catch(() => [])) {
      if (!entry.isDirectory) continue;
      if (await Deno.stat(`${dir}/${entry.name}/node.json`).then(() => true, () => false)) up++;
    }
    max1 = Math.max(max1, Deno.loadavg()[0] ?? 0);
    tell(`[${since()}] forming: ${up}/${processes} nodes up, load ${loads().join(" ")}`);
  }, o.progressMs);
  const sampler = setInterval(async () => {
    const sets = await Promise.all(pids.map(residentSet));
    peakTotal = Math.max(peakTotal, sets.reduce((sum, s) => sum + (s?.rss ?? 0), 0));
    max1 = Math.max(max1, Deno.loadavg()[0] ?? 0);
  }, 2_000);
  try {
    tell(
      `Starting ${processes} node processes (${o.clients} clients, ${o.workers} workers, ${o.verifiers} verifiers), ${o.startConcurrency} at a time, in ${dir}; load ${
        before.join(" ")
      }`,
    );
    try {
      stack = await startDevstack({
        clients: o.clients,
        workers: o.workers,
        verifiers: o.verifiers,
        dir,
        startConcurrency: o.startConcurrency,
        readyTimeoutMs: o.readyTimeoutMs,
        logLevel: "warning",
        nodeConfig: () => QUIET_NODE_CONFIG,
        onLog: (name, line) => {
          const tail = tails.get(name) ?? [];
          tail.push(line);
          if (tail.length > 20) tail.shift();
          tails.set(name, tail);
        },
        ...(signal !== undefined ? { signal } : {}),
      });
    } finally {
      clearInterval(forming);
    }
    pids = stack.nodes.map((n) => n.pid);
    const formationMs = performance.now() - t0;
    tell(`[${since()}] market formed: every client heard every node`);
    const clients = stack.nodes.filter((n) => n.roles.includes("client"));
    const died = stack.firstExit.then((name) => {
      throw new Error(
        `Node ${name} exited during the run: ${
          (tails.get(name) ?? []).join("\n") || "(no output)"
        }`,
      );
    });
    died.catch(() => {});

    const jobs: Tracked[] = [];
    const outcomes: Record<string, number> = { rejected: 0 };
    const inFlight = new Set<Tracked>();
    let next = 0;
    const t1 = performance.now();
    const deadline = t1 + o.timeoutMs;
    let lastTold = t1;
    const count = () => jobs.filter((j) => j.final !== undefined).length + outcomes.rejected!;
    while (next < o.jobs || inFlight.size > 0) {
      signal?.throwIfAborted();
      if (performance.now() > deadline) break;
      // Submit up to the bound.
      while (next < o.jobs && inFlight.size < o.concurrency) {
        const i = next++;
        const client = clients[i % clients.length]!;
        const jobId = `job-${i + 1}`;
        const response = await fetch(`${client.http}/jobs`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ spec: benchJobSpec(i + 1, o), jobId }),
          signal: AbortSignal.timeout(30_000),
        });
        // The status is what counts; a body lost with a dropped connection is not a refusal.
        const text = await response.text().catch((e: Error) => e.message);
        if (response.status !== 202) {
          outcomes.rejected!++;
          tell(`${jobId} not taken by ${client.name}: ${response.status} ${text.slice(0, 200)}`);
          continue;
        }
        const job: Tracked = { jobId, client };
        jobs.push(job);
        inFlight.add(job);
      }
      await Promise.race([sleep(1_000, signal), died]);
      // One page of the owner's jobs per client, then the record of each job found final.
      for (const client of clients) {
        const mine = [...inFlight].filter((j) => j.client === client);
        if (mine.length === 0) continue;
        const page = await getJson(
          `${client.http}/jobs?owner=${encodeURIComponent(client.peerId)}&limit=1000`,
          signal,
        ) as { jobs: { jobId: string; state: string; done: boolean }[] };
        const byId = new Map(page.jobs.map((j) => [j.jobId, j]));
        for (const job of mine) {
          const summary = byId.get(job.jobId);
          if (summary === undefined || !summary.done) continue;
          const view = await getJson(`${client.http}/jobs/${job.jobId}`, signal) as OwnerJobView;
          Object.assign(job, jobTimes(view));
          job.final = summary.state;
          outcomes[summary.state] = (outcomes[summary.state] ?? 0) + 1;
          inFlight.delete(job);
        }
      }
      if (performance.now() - lastTold >= o.progressMs) {
        lastTold = performance.now();
        const rss = peakTotal === 0 ? "" : `, peak RSS ${mb(peakTotal)}`;
        tell(
          `[${since()}] jobs: ${count()}/${o.jobs} final, ${inFlight.size} in flight (${
            Object.entries(outcomes).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(
              ", ",
            ) || "none final"
          }); load ${loads().join(" ")}${rss}`,
        );
      }
    }
    const jobsWallMs = performance.now() - t1;
    outcomes.unfinished = o.jobs - count();
    // Peaks before the processes stop (VmHWM is the process's own high-water mark).
    const sets = await Promise.all(pids.map(residentSet));
    const peaks = sets.map((s) => s?.peak ?? 0);
    peakTotal = Math.max(peakTotal, sets.reduce((sum, s) => sum + (s?.rss ?? 0), 0));
    const after = loads();
    max1 = Math.max(max1, after[0] ?? 0);
    const sample = (key: "announceToBidMs" | "wallMs") =>
      jobs.map((j) => j[key]).filter((v): v is number => v !== undefined);
    return {
      options: o,
      processes: stack.nodes.length,
      formationMs: Math.round(formationMs),
      jobsWallMs: Math.round(jobsWallMs),
      outcomes,
      announceToBid: stats(sample("announceToBidMs")),
      jobWall: stats(sample("wallMs")),
      settledPerSecond: Math.round((outcomes.settled ?? 0) / (jobsWallMs / 1000) * 100) / 100,
      rss: {
        peakTotal,
        peakProcess: Math.max(0, ...peaks),
        sumOfPeaks: peaks.reduce((a, b) => a + b, 0),
      },
      load: { before, max1: Math.round(max1 * 100) / 100, after },
    };
  } catch (error) {
    failed = true;
    if (!signal?.aborted) {
      // What the nodes last logged (warnings and errors: bans, lost peers, failed transactions).
      for (const [name, tail] of tails) tell(`--- ${name} last logged:\n${tail.join("\n")}`);
      tell(`Data directories and the ledger kept in ${dir}`);
    }
    throw error;
  } finally {
    clearInterval(forming);
    clearInterval(sampler);
    if (stack !== undefined) {
      tell(`[${since()}] stopping ${stack.nodes.length} processes`);
      await stack.stop({ graceMs: 15_000 });
    }
    if (ownDir && !(failed && !signal?.aborted)) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  }
}

/** The result as text, one figure a line. */
export function formatProcessBench(r: ProcessBenchResult): string {
  const o = r.options;
  const s = (x: Stats) =>
    x.n === 0
      ? "no samples"
      : `p50 ${x.p50.toFixed(0)} ms, p99 ${x.p99.toFixed(0)} ms, max ${
        x.max.toFixed(0)
      } ms (n ${x.n})`;
  return [
    `Processes: ${r.processes} (${o.clients} clients, the first also the bootstrap; ${o.workers} workers; ${o.verifiers} verifiers), local ledger file, chain settlement`,
    `Jobs: ${o.jobs}, at most ${o.concurrency} in flight, bid window ${o.bidWindowMs} ms, ${o.verifierCount} verifiers each`,
    `Outcomes: ${Object.entries(r.outcomes).map(([k, n]) => `${k} ${n}`).join(", ")}`,
    `Announcement to first bid: ${s(r.announceToBid)}`,
    `Job wall time (submitted to final): ${s(r.jobWall)}`,
    `Market formation: ${(r.formationMs / 1000).toFixed(1)} s; jobs: ${
      (r.jobsWallMs / 1000).toFixed(1)
    } s (${r.settledPerSecond} settled/s)`,
    `Peak RSS: all nodes ${mb(r.rss.peakTotal)} (sampled), sum of each node's peak ${
      mb(r.rss.sumOfPeaks)
    }, largest node ${mb(r.rss.peakProcess)}`,
    `Load average: before ${r.load.before.join(" ")}, 1-min max ${r.load.max1}, after ${
      r.load.after.join(" ")
    }`,
  ].join("\n");
}
