/**
 * `deno task bench [--quick] [--out DIR]`: every benchmark, each beside its baseline.
 * `deno task bench --lifecycle [--rounds N]`: only the client engine's lifecycle throughput
 * beside raw XState. `deno task bench --engine [--journal]`: the engine alone, after a warm-up
 * in the same node (the run `docs/profile.md` profiles).
 * `deno task bench --summarize FILE.cpuprofile`: the top self-time functions and layers of a
 * profile taken with `deno run --cpu-prof`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  benchConfig,
  benchEngine,
  canCollect,
  formatTable,
  lifecycleRows,
  runBench,
  runLifecycle,
  tableOf,
  writeResults,
} from "./mod.ts";
import { type CpuProfile, formatProfileSummary, summarizeProfile } from "./cpu_profile.ts";

const USAGE = `Usage: deno task bench [--quick] [--out DIR]
       deno task bench --lifecycle [--quick] [--rounds N]
       deno task bench --engine [--journal] [--chain-process [--chain-cpu-prof DIR]] [--stages]
                            [--jobs N] [--warm-up N] [--quick]
       deno task bench --summarize FILE.cpuprofile [--top N]

Runs every benchmark, each beside its baseline, and writes the results to DIR.

Flags:
  --quick      smaller runs (a minute or two)
  --out DIR    where results go (default bench-results)
  --lifecycle  only the lifecycle throughput (engine, tree, raw XState); writes nothing
  --rounds N   interleaved rounds of the lifecycle figures, best of each (default 2)
  --engine     only the engine's lifecycle run, once after a warm-up (to profile it)
  --journal    with --engine: the node journals to a SQLite file, as deno task node does
  --chain-process  with --engine: the ledger runs in a child process (chain/remote.ts), as a
               chain node does; the client's process pays only for its calls' encoding
  --chain-cpu-prof DIR  with --chain-process: a CPU profile of the chain's process of the
               measured run, written to DIR (for --summarize)
  --stages     with --engine: the mean time of each step of a job (where its wall time goes)
  --jobs N     with --engine: jobs in the measured run (default 3000, --quick 1000)
  --warm-up N  with --engine: jobs the same node and chain process run first, the measurement
               starting when the last of them finishes (default: as many as --jobs)
  --summarize FILE  the top self-time functions and layers of a deno run --cpu-prof profile
  --top N      rows of each --summarize table (default 30)
  -h, --help   this help`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        quick: { type: "boolean", default: false },
        out: { type: "string", default: "bench-results" },
        lifecycle: { type: "boolean", default: false },
        rounds: { type: "string", default: "2" },
        engine: { type: "boolean", default: false },
        journal: { type: "boolean", default: false },
        "chain-process": { type: "boolean", default: false },
        stages: { type: "boolean", default: false },
        "chain-cpu-prof": { type: "string" },
        jobs: { type: "string" },
        "warm-up": { type: "string" },
        summarize: { type: "string" },
        top: { type: "string", default: "30" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  const values = parsed.values;
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const t0 = performance.now();
  const log = (message: string) =>
    console.error(`[${((performance.now() - t0) / 1000).toFixed(1)} s] ${message}`);
  if (values.summarize !== undefined) {
    const top = Number(values.top);
    if (!Number.isInteger(top) || top < 1) {
      console.error(`Invalid --top ${values.top}: expected a positive integer`);
      Deno.exit(2);
    }
    try {
      const profile = JSON.parse(await Deno.readTextFile(values.summarize)) as CpuProfile;
      const root = new URL("../../", import.meta.url).href;
      console.log(formatProfileSummary(summarizeProfile(profile, { root, limit: top })));
    } catch (error) {
      console.error(`Cannot summarize ${values.summarize}: ${(error as Error).message}`);
      Deno.exit(1);
    }
    Deno.exit(0);
  }
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    console.error(`Invalid --rounds ${values.rounds}: expected an integer from 1 to 20`);
    Deno.exit(2);
  }
  if (values.engine) {
    const config = benchConfig(values.quick);
    const jobs = values.jobs === undefined ? config.jobs : Number(values.jobs);
    if (!Number.isInteger(jobs) || jobs < 1 || jobs > 1_000_000) {
      console.error(`Invalid --jobs ${values.jobs}: expected an integer from 1 to 1000000`);
      Deno.exit(2);
    }
    const warmUp = values["warm-up"] === undefined ? jobs : Number(values["warm-up"]);
    if (!Number.isInteger(warmUp) || warmUp < 0 || warmUp > 1_000_000) {
      console.error(
        `Invalid --warm-up ${values["warm-up"]}: expected an integer from 0 to 1000000`,
      );
      Deno.exit(2);
    }
    const c = { ...config, jobs };
    log(
      `engine: ${warmUp} jobs to warm up, then ${c.jobs} measured, ${c.concurrency} in flight${
        values.journal ? ", journaled" : ""
      }${values["chain-process"] ? ", the chain in its own process" : ""}`,
    );
    const r = await benchEngine({
      workers: c.workers,
      bidsPerJob: c.bidsPerJob,
      journal: values.journal,
      chainProcess: values["chain-process"],
      warmUp,
      jobs: c.jobs,
      concurrency: c.concurrency,
      stages: values.stages,
      onProgress: log,
      ...(values["chain-cpu-prof"] === undefined
        ? {}
        : { chainCpuProfDir: values["chain-cpu-prof"] }),
    });
    console.log(JSON.stringify(r));
    Deno.exit(0);
  }
  if (values.lifecycle) {
    const figures = await runLifecycle(benchConfig(values.quick), { rounds, onProgress: log });
    console.log(tableOf(lifecycleRows(figures)));
    Deno.exit(0);
  }
  if (!canCollect()) log("no gc(): run with --v8-flags=--expose-gc for steadier heap figures");
  const results = await runBench(benchConfig(values.quick), { onProgress: log });
  results.meta.wallMs = Math.round(performance.now() - t0);
  console.log(formatTable(results));
  const written = await writeResults(results, values.out.replace(/\/+$/, "") || ".");
  console.log(
    `\n${values.quick ? "Quick run" : "Run"} took ${
      (results.meta.wallMs / 1000).toFixed(1)
    } s; wrote ${written.join(", ")}`,
  );
  // libp2p and the ledgers are stopped; leave no stray timer keeping the process alive.
  Deno.exit(0);
}
