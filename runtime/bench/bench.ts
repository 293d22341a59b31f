/**
 * `deno task bench [--quick] [--out DIR]`: the engine's benchmarks, each beside a baseline from
 * the same run. Prints a table, writes `bench.json` and SVG plots to `DIR`
 * (default `bench-results/`), and shows progress on stderr.
 *
 * 1. Announcement latency on an N-node libp2p loopback network (N = 10, 20, 40; `--quick`:
 *    10, 20) until every worker's job actor is in `bidding`, beside raw gossipsub
 *    publish -> receive on the same hosts (`bench_network.ts`).
 * 2. Discovery of k capable workers through the DHT capability index, same clusters.
 * 3. Lifecycle throughput: one client node's engine under market load (1000 worker identities,
 *    500 concurrent jobs), beside the job machine in a bare tree and as plain XState actors
 *    (`bench_lifecycle.ts`), and how it grows with concurrent jobs.
 * 4. Replay throughput of a demo recorded in the same run (`bench_replay.ts`).
 * 5. Heap per live job actor (with bids) and per peer actor, tree and raw (`bench_memory.ts`).
 *
 * @module
 */
import { benchEngine, benchMachines, type LifecycleResult } from "./bench_lifecycle.ts";
import { benchMemory, canCollect, type MemoryResult } from "./bench_memory.ts";
import { benchNetwork, type NetworkBenchResult } from "./bench_network.ts";
import { benchReplay, type ReplayBenchResult } from "./bench_replay.ts";
import { lineChart } from "../research/mod.ts";

/** The sizes of one bench run. */
export interface BenchConfig {
  readonly quick: boolean;
  readonly nodes: readonly number[];
  readonly announcements: number;
  readonly lookups: number;
  readonly k: readonly number[];
  readonly workers: number;
  readonly jobs: number;
  readonly concurrency: number;
  /** Concurrency levels of the scaling sweep (each runs `sweepJobs(c)` jobs). */
  readonly sweep: readonly number[];
  readonly bidsPerJob: number;
  readonly memoryActors: number;
  readonly memoryBids: readonly number[];
  readonly replayJobs: number;
  readonly replayRuns: number;
}

/** The full run, or the `--quick` one. */
export function benchConfig(quick: boolean): BenchConfig {
  return quick
    ? {
      quick,
      nodes: [10, 20],
      announcements: 8,
      lookups: 2,
      k: [5, 20],
      workers: 1_000,
      jobs: 1_000,
      concurrency: 500,
      sweep: [50, 200],
      bidsPerJob: 8,
      memoryActors: 500,
      memoryBids: [0, 8],
      replayJobs: 20,
      replayRuns: 2,
    }
    : {
      quick,
      nodes: [10, 20, 40],
      announcements: 20,
      lookups: 3,
      k: [5, 20],
      workers: 1_000,
      jobs: 3_000,
      concurrency: 500,
      sweep: [50, 100, 250, 1_000],
      bidsPerJob: 8,
      memoryActors: 2_000,
      memoryBids: [0, 4, 8, 16],
      replayJobs: 60,
      replayRuns: 3,
    };
}

/** Everything a run measured (what `bench.json` holds). */
export interface BenchResults {
  readonly meta: {
    readonly date: string;
    readonly deno: string;
    readonly v8: string;
    readonly os: string;
    readonly cpus: number;
    readonly gc: boolean;
    readonly config: BenchConfig;
    wallMs: number;
  };
  readonly network: NetworkBenchResult[];
  readonly lifecycle: LifecycleFigures & {
    readonly sweep: { readonly engine: LifecycleResult; readonly raw: LifecycleResult }[];
  };
  readonly memory: MemoryResult[];
  readonly replay: ReplayBenchResult;
}

/** The lifecycle figures: the engine beside raw XState and the bare tree, from the same run. */
export interface LifecycleFigures {
  readonly engine: LifecycleResult;
  readonly tree: LifecycleResult;
  readonly raw: LifecycleResult;
  /**
   * The engine with its ledger in a child process (`chainProcess`), as a node with a chain node
   * elsewhere: the client's process pays for its calls' encoding, not their execution.
   */
  readonly remote: LifecycleResult;
  /**
   * The engine journaling to a SQLite file, as `deno task node` does (once, at most 1000 jobs).
   */
  readonly journaled: LifecycleResult;
  /** raw jobs/s over engine jobs/s (wall clock). */
  readonly overhead: number;
  /** engine jobs per CPU second over raw XState's (1 would be no overhead). */
  readonly cpuRatio: number;
}

/**
 * Lifecycle throughput at `config`'s size (`workers` identities, `concurrency` jobs in flight):
 * after a warm-up of every path, `rounds` interleaved rounds of raw XState, the bare tree and
 * the engine, each figure the best of its rounds (garbage collection and other load on the
 * machine fall on all alike); then the engine once more with its journal.
 */
export async function runLifecycle(
  config: Pick<BenchConfig, "workers" | "bidsPerJob" | "jobs" | "concurrency">,
  options: { rounds?: number; onProgress?: (message: string) => void; signal?: AbortSignal } = {},
): Promise<LifecycleFigures> {
  const progress = options.onProgress ?? (() => {});
  const signal = options.signal ? { signal: options.signal } : {};
  const base = { workers: config.workers, bidsPerJob: config.bidsPerJob };
  // Warm the JIT on every path, so the first measurement is not the coldest.
  const warm = {
    jobs: Math.min(1_000, config.jobs),
    concurrency: Math.min(100, config.concurrency),
  };
  for (const kind of ["raw", "tree", "raw"] as const) benchMachines(kind, { ...base, ...warm });
  await benchEngine({ ...base, ...warm, jobs: Math.min(300, config.jobs), ...signal });
  await benchEngine({
    ...base,
    ...warm,
    jobs: Math.min(300, config.jobs),
    chainProcess: true,
    ...signal,
  });
  const main = { ...base, jobs: config.jobs, concurrency: config.concurrency };
  const best = (a: LifecycleResult | undefined, b: LifecycleResult) =>
    a !== undefined && a.jobsPerSecond >= b.jobsPerSecond ? a : b;
  let raw: LifecycleResult | undefined;
  let tree: LifecycleResult | undefined;
  let engine: LifecycleResult | undefined;
  let remote: LifecycleResult | undefined;
  let rawCpu = 0;
  let engineCpu = 0;
  const rounds = Math.max(1, options.rounds ?? 2);
  for (let round = 1; round <= rounds; round++) {
    progress(
      `lifecycle round ${round}/${rounds}: ${config.jobs} jobs, ${config.concurrency} in flight, ` +
        `${config.workers} workers: raw XState, tree, engine, engine with the chain apart`,
    );
    const r = benchMachines("raw", main);
    raw = best(raw, r);
    rawCpu = Math.max(rawCpu, r.jobsPerCpuSecond);
    tree = best(tree, benchMachines("tree", main));
    const e = await benchEngine({
      ...main,
      ...(round === rounds ? { onProgress: progress } : {}),
      ...signal,
    });
    engine = best(engine, e);
    engineCpu = Math.max(engineCpu, e.jobsPerCpuSecond);
    remote = best(remote, await benchEngine({ ...main, chainProcess: true, ...signal }));
  }
  // At most 1000 jobs: journaled, the engine is several times slower.
  const journaledJobs = Math.min(1_000, config.jobs);
  progress(`lifecycle: the engine with its journal, ${journaledJobs} jobs`);
  const journaled = await benchEngine({ ...main, jobs: journaledJobs, journal: true, ...signal });
  return {
    engine: engine!,
    remote: remote!,
    journaled,
    tree: tree!,
    raw: raw!,
    overhead: Math.round((raw!.jobsPerSecond / engine!.jobsPerSecond) * 100) / 100,
    cpuRatio: Math.round((engineCpu / rawCpu) * 1000) / 1000,
  };
}

/** Runs every benchmark of `config`. */
export async function runBench(
  config: BenchConfig,
  options: { onProgress?: (message: string) => void; signal?: AbortSignal } = {},
): Promise<BenchResults> {
  const started = performance.now();
  const progress = options.onProgress ?? (() => {});
  const signal = options.signal ? { signal: options.signal } : {};
  const network: NetworkBenchResult[] = [];
  for (const n of config.nodes) {
    progress(`network: ${n} nodes`);
    network.push(
      await benchNetwork(n, {
        jobs: config.announcements,
        lookups: config.lookups,
        k: config.k,
        onProgress: progress,
        ...signal,
      }),
    );
  }
  const base = { workers: config.workers, bidsPerJob: config.bidsPerJob };
  const lifecycle = await runLifecycle(config, { onProgress: progress, ...signal });
  const { raw, engine } = lifecycle;
  const best = (a: LifecycleResult, b: LifecycleResult) =>
    a.jobsPerSecond >= b.jobsPerSecond ? a : b;
  const sweep = [];
  for (const c of config.sweep) {
    const o = { ...base, jobs: Math.max(4 * c, Math.min(400, config.jobs)), concurrency: c };
    progress(`lifecycle sweep: ${c} concurrent jobs`);
    const r = best(benchMachines("raw", o), benchMachines("raw", o));
    sweep.push({ raw: r, engine: await benchEngine({ ...o, ...signal }) });
  }
  sweep.push({ raw, engine });
  sweep.sort((a, b) => a.engine.concurrency - b.engine.concurrency);
  progress("memory");
  const memory = config.memoryBids.map((bidsPerJob) =>
    benchMemory({ actors: config.memoryActors, bidsPerJob })
  );
  progress("replay: recording a demo");
  const replay = await benchReplay({
    jobs: config.replayJobs,
    runs: config.replayRuns,
    onProgress: progress,
    ...signal,
  });
  return {
    meta: {
      date: new Date().toISOString(),
      deno: Deno.version.deno,
      v8: Deno.version.v8,
      os: `${Deno.build.os} ${Deno.build.arch}`,
      cpus: navigator.hardwareConcurrency,
      gc: canCollect(),
      config,
      wallMs: Math.round(performance.now() - started),
    },
    network,
    lifecycle: { ...lifecycle, sweep },
    memory,
    replay,
  };
}

const fmt = (n: number, digits = 0) =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : "n/a";

/** The results as a plain-text table. */
export function formatTable(r: BenchResults): string {
  const rows: [string, string, string][] = [];
  const row = (what: string, value: string, baseline = "") => rows.push([what, value, baseline]);
  for (const n of r.network) {
    row(
      `announce -> all workers bidding, ${n.nodes} nodes (p50 / p99 ms)`,
      `${fmt(n.announceAll.p50, 1)} / ${fmt(n.announceAll.p99, 1)}`,
      `raw gossip ${fmt(n.rawAll.p50, 1)} / ${fmt(n.rawAll.p99, 1)}, x${fmt(n.ratioP50, 2)}`,
    );
    row(
      `  per worker, ${n.nodes} nodes (p50 / p99 ms)`,
      `${fmt(n.announceEach.p50, 1)} / ${fmt(n.announceEach.p99, 1)}`,
      `raw gossip ${fmt(n.rawEach.p50, 1)} / ${fmt(n.rawEach.p99, 1)}`,
    );
    for (const d of n.discovery) {
      row(
        `discovery of k=${d.k} workers, ${n.nodes} nodes (p50 / max ms)`,
        `${fmt(d.ms.p50, 1)} / ${fmt(d.ms.max, 1)}`,
        `found ${d.found}; ${n.provides} records advertised in ${fmt(n.advertiseMs)} ms`,
      );
    }
  }
  const l = r.lifecycle;
  rows.push(...lifecycleRows(l));
  for (const s of l.sweep) {
    row(
      `  ${s.engine.concurrency} concurrent jobs (jobs/s)`,
      fmt(s.engine.jobsPerSecond),
      `raw XState ${fmt(s.raw.jobsPerSecond)}`,
    );
  }
  const rp = r.replay;
  row(
    `replay, ${rp.nodes}-node demo of ${rp.jobs} jobs (events/s)`,
    `${fmt(rp.raw.eventsPerSecond)} (x${fmt(rp.raw.speedup, 1)} real time)`,
    `with per-step checks ${fmt(rp.checked.eventsPerSecond)} (x${fmt(rp.checked.speedup, 1)})`,
  );
  for (const m of r.memory) {
    row(
      `heap per job actor with ${m.bidsPerJob} bids (bytes)`,
      fmt(m.jobInTree),
      `raw XState ${fmt(m.jobRaw)}`,
    );
  }
  const m0 = r.memory[0];
  if (m0) row("heap per peer actor (bytes)", fmt(m0.peerInTree), `raw XState ${fmt(m0.peerRaw)}`);
  if (m0) {
    row(
      `heap per finished job once retired (bytes)`,
      fmt(m0.retiredJob),
      `live job actor ${fmt(m0.jobInTree)}`,
    );
  }
  return tableOf(rows);
}

/** A thread's time on / off a CPU, and of that off it queued for a core where known. */
function threadFigure(t: LifecycleResult["clientThread"]): string {
  if (t === undefined) return "n/a";
  const queued = t.queuedMs === undefined ? "" : ` (queued ${fmt(t.queuedMs)})`;
  return `${fmt(t.cpuMs)} / ${fmt(t.offCpuMs)}${queued}`;
}

/** The lifecycle figures as table rows: what, engine, baseline. */
export function lifecycleRows(l: LifecycleFigures): [string, string, string][] {
  return [
    [
      `lifecycle: ${l.engine.workers} workers, ${l.engine.concurrency} in flight (jobs/s)`,
      `${fmt(l.engine.jobsPerSecond)} (${l.engine.settled}/${l.engine.jobs} settled)`,
      `raw XState ${fmt(l.raw.jobsPerSecond)}, tree ${fmt(l.tree.jobsPerSecond)}; overhead x${
        fmt(l.overhead, 2)
      }`,
    ],
    [
      `  steady, ${l.engine.concurrency} in flight throughout (jobs/s)`,
      fmt(l.engine.steadyJobsPerSecond ?? NaN),
      `raw XState ${fmt(l.raw.steadyJobsPerSecond ?? NaN)}, tree ${
        fmt(l.tree.steadyJobsPerSecond ?? NaN)
      }`,
    ],
    [
      "  per CPU second (jobs/s)",
      `${fmt(l.engine.jobsPerCpuSecond)} (x${fmt(l.cpuRatio, 3)} of raw XState)`,
      `raw XState ${fmt(l.raw.jobsPerCpuSecond)}, tree ${fmt(l.tree.jobsPerCpuSecond)}`,
    ],
    [
      "  per CPU second, the client without its chain calls (jobs/s)",
      fmt(l.engine.engineJobsPerCpuSecond ?? NaN),
      `the client with them ${fmt(l.engine.clientJobsPerCpuSecond ?? NaN)}; of ${
        fmt(l.engine.cpuMs)
      } ms CPU: chain calls ${fmt(l.engine.chainCpuMs ?? NaN)}, market ${
        fmt(l.engine.marketCpuMs ?? NaN)
      }`,
    ],
    [
      "  the chain in its own process: jobs/s, wall",
      `${fmt(l.remote.jobsPerSecond)} (${l.remote.settled}/${l.remote.jobs} settled)`,
      `steady ${fmt(l.remote.steadyJobsPerSecond ?? NaN)}; the ledger in a child process ` +
      "(chain/remote.ts), as a chain node",
    ],
    [
      "  the chain in its own process: per CPU second of the client's process",
      fmt(l.remote.jobsPerCpuSecond),
      `without the market's share ${fmt(l.remote.clientJobsPerCpuSecond ?? NaN)}; of ${
        fmt(l.remote.cpuMs)
      } ms CPU: market ${fmt(l.remote.marketCpuMs ?? NaN)}, chain calls' encoding ${
        fmt(l.remote.chainCpuMs ?? NaN)
      }; the chain's process ${fmt(l.remote.chainProcessCpuMs ?? NaN)} ms`,
    ],
    [
      "  the chain in its own process: the client's main thread on / off a CPU (ms)",
      threadFigure(l.remote.clientThread),
      `the chain's main thread ${threadFigure(l.remote.chainThread)}; both processes used ${
        fmt(
          100 * ((l.remote.cpuMs + (l.remote.chainProcessCpuMs ?? NaN)) / (2 * l.remote.wallMs)),
        )
      } % of two cores over ${fmt(l.remote.wallMs)} ms`,
    ],
    [
      "  the engine journaling to SQLite, as deno task node does (jobs/s)",
      `${fmt(l.journaled.jobsPerSecond)} (${l.journaled.settled}/${l.journaled.jobs} settled)`,
      `per CPU second ${fmt(l.journaled.jobsPerCpuSecond)}; ${
        fmt(l.journaled.journaled ?? NaN)
      } entries`,
    ],
    [
      "  actor events delivered (events/s)",
      fmt(l.engine.eventsPerSecond),
      `raw XState ${fmt(l.raw.eventsPerSecond)}, tree ${fmt(l.tree.eventsPerSecond)}`,
    ],
  ];
}

/** The table's layout: columns padded to their widest cell. */
export function tableOf(rows: readonly [string, string, string][]): string {
  const w = [0, 1, 2].map((i) => Math.max(...rows.map((x) => x[i]!.length), 8));
  const line = (x: string[]) => x.map((c, i) => c.padEnd(w[i]!)).join("  ").trimEnd();
  return [
    line(["figure", "engine", "baseline (same run)"]),
    line(w.map((n) => "-".repeat(n))),
    ...rows.map(line),
  ].join("\n");
}

/** The SVG plots, by file name. */
export function plots(r: BenchResults): Record<string, string> {
  const byN = (f: (n: NetworkBenchResult) => number) =>
    r.network.map((n) => [n.nodes, f(n)] as const);
  const ks = r.network[0]?.discovery.map((d) => d.k) ?? [];
  return {
    "announce.svg": lineChart({
      title: "Announcement latency on libp2p loopback (all workers)",
      xLabel: "nodes",
      yLabel: "ms",
      series: [
        { name: "engine p50", points: byN((n) => n.announceAll.p50) },
        { name: "engine p99", points: byN((n) => n.announceAll.p99) },
        { name: "raw gossipsub p50", points: byN((n) => n.rawAll.p50), dashed: true },
        { name: "raw gossipsub p99", points: byN((n) => n.rawAll.p99), dashed: true },
      ],
    }),
    "discovery.svg": lineChart({
      title: "DHT discovery of k capable workers (p50)",
      xLabel: "nodes",
      yLabel: "ms",
      series: ks.map((k, i) => ({
        name: `find ${k} workers`,
        points: byN((n) => n.discovery[i]?.ms.p50 ?? NaN),
      })),
    }),
    "lifecycle.svg": lineChart({
      title: "Jobs settled per second vs concurrent jobs",
      xLabel: "concurrent jobs",
      yLabel: "jobs/s",
      series: [
        {
          name: "engine (node, ledger, wire)",
          points: r.lifecycle.sweep.map((s) => [s.engine.concurrency, s.engine.jobsPerSecond]),
        },
        {
          name: "raw XState",
          points: r.lifecycle.sweep.map((s) => [s.raw.concurrency, s.raw.jobsPerSecond]),
          dashed: true,
        },
      ],
    }),
    "memory.svg": lineChart({
      title: "Heap per live job actor vs bids",
      xLabel: "bids per job",
      yLabel: "bytes",
      series: [
        { name: "job actor in tree", points: r.memory.map((m) => [m.bidsPerJob, m.jobInTree]) },
        {
          name: "raw XState actor",
          points: r.memory.map((m) => [m.bidsPerJob, m.jobRaw]),
          dashed: true,
        },
      ],
    }),
  };
}

/** Writes `bench.json` and the plots to `dir`; returns the paths written. */
export async function writeResults(r: BenchResults, dir: string): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const json = JSON.stringify(r, (_, v) => typeof v === "bigint" ? String(v) : v, 2);
  const written = [`${dir}/bench.json`];
  await Deno.writeTextFile(written[0]!, json + "\n");
  for (const [name, svg] of Object.entries(plots(r))) {
    await Deno.writeTextFile(`${dir}/${name}`, svg);
    written.push(`${dir}/${name}`);
  }
  return written;
}
