/**
 * `deno task simulate`: runs the market simulation for one seed or a campaign of seeds, prints
 * each seed's trace hash and any broken invariant with the command that reproduces it, shrinks
 * a failing schedule, and with `--bench` measures virtual time over wall time.
 *
 * Exit status: 0 when every seed held, 1 when an invariant broke, 2 on a usage error.
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { parseRecording } from "../durability/mod.ts";
import { buildReport, renderHtml } from "../research/mod.ts";
import { campaign, campaignTable } from "./campaign.ts";
import { FAULT_PROFILE_NAMES, faultProfile } from "./faults.ts";
import { formatScaleProgress, formatScaleResult, runScale } from "./scale.ts";
import { reproduceCommand, shrink } from "./shrink.ts";
import {
  ADVERSARY_NAMES,
  parseAdversaries,
  simulate,
  type SimulationOptions,
  type SimulationResult,
} from "./simulation.ts";

const USAGE = `Usage: deno task simulate [options]

Runs a whole market (clients, workers, verifiers on the real node code) in virtual time over a
simulated network and chain, driven by one seed, and checks the invariants after every step.

Options:
  --seed N            the seed (default 1)
  --seeds A..B        a campaign: every seed from A to B
  --workers N         honest workers (default 8)
  --verifiers N       verifiers (default 4)
  --clients N         honest clients (default 1)
  --jobs N            jobs the honest clients submit (default 20)
  --duration MS       most virtual time a seed may take (default from the jobs' deadlines)
  --faults NAME       ${FAULT_PROFILE_NAMES.join(" | ")} (default none)
  --adversaries LIST  comma-separated: ${ADVERSARY_NAMES.join(", ")}
  --settlement NAME   chain (the chain chooses bonded verifiers and decides) or legacy (the
                      client's node records the verdict; for research) (default chain)
  --json              one JSON object per seed
  --report DIR        write each seed's recording (replay it with deno task replay) and its
                      HTML timeline to DIR; with crashes, the nodes' journals too
                      (DIR/seed-N-data/<node>, read with deno task export)
  --no-shrink         do not shrink a failing schedule
  --campaign          every fault profile and every adversary over the seeds (--seeds A..B),
                      printed as a Markdown table of invariants that hold or break
  --bench             measure virtual over wall time (25 nodes and 100 jobs; 200 workers)
  --scale             the scaling scenario (no faults): --workers, --verifiers, --clients,
                      --rate jobs per virtual second for --duration virtual ms (default 30000),
                      at most --in-flight open jobs (default 500); prints progress to stderr
                      every 5 virtual s, then settled %, messages per job, events per worker
                      per job, declines and wall time (--json: one JSON object)
  --rate N            jobs per virtual second, with --scale (default 10)
  --in-flight N       most open jobs, with --scale (default 500)
  --decliners N       with --scale, N of the workers decline every job (price floor too high)
  --work-ms N         with --scale, an execution (and a verifier's re-run) takes about N virtual
                      ms (default 20 to 150): longer work keeps more jobs in flight
  --no-peer-events    with --scale, nodes do not hear every other node connect (the simulated
                      network connects every pair: O(N^2) work at start-up)
  --no-capabilities   with --scale, nodes do not gossip their capabilities (N^2 deliveries at
                      start-up; under chain settlement no job reads them)
  --wall-cap S        stop a --scale run past S wall seconds and say so
  -h, --help          this help

Exit status: 0 every seed held, 1 an invariant broke, 2 a usage error.`;

class UsageError extends Error {
  override readonly name = "UsageError";
}

function integer(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(`Invalid --${name} "${value}": must be an integer of at least ${min}`);
  }
  return n;
}

function seedsOf(seed: string | undefined, seeds: string | undefined): number[] {
  if (seeds !== undefined) {
    const match = /^(\d+)\.\.(\d+)$/.exec(seeds);
    if (match === null) throw new UsageError(`Invalid --seeds "${seeds}": expected A..B`);
    const [a, b] = [Number(match[1]), Number(match[2])];
    if (b < a || b - a >= 1_000_000) {
      throw new UsageError(
        `Invalid --seeds "${seeds}": B must be at least A, and at most A + 999999`,
      );
    }
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  }
  return [integer("seed", seed, 0) ?? 1];
}

function describe(r: SimulationResult): string {
  const ratio = r.wallMs > 0 ? (r.virtualMs / r.wallMs).toFixed(1) : "inf";
  const jobs = Object.entries(r.jobs).map(([k, v]) => `${k}=${v}`).join(" ");
  const head = `seed ${r.seed} ${r.violations.length === 0 ? "ok  " : "FAIL"} ${
    r.traceHash.slice(0, 16)
  } virtual ${r.virtualMs} ms, wall ${r.wallMs} ms (${ratio}x), ${r.steps} steps, jobs ${jobs}`;
  const v = r.violations[0];
  if (v === undefined) return head;
  return `${head}\n  ${v.invariant} broke at step ${v.step} (${v.at} ms)${
    v.node ? ` on ${v.node}` : ""
  }${v.job ? ` for job ${v.job}` : ""}: ${v.detail}`;
}

async function bench(json: boolean): Promise<void> {
  const shapes = [
    { name: "demo shape (1 client, 20 workers, 4 verifiers, 100 jobs)", workers: 20, jobs: 100 },
    { name: "200 workers (1 client, 4 verifiers, 10 jobs)", workers: 200, jobs: 10 },
  ];
  for (const shape of shapes) {
    // CPU time as well as wall time: on a shared machine the wall clock counts other processes.
    const cpu = process.cpuUsage();
    const r = await simulate({ seed: 1, workers: shape.workers, verifiers: 4, jobs: shape.jobs });
    const used = process.cpuUsage(cpu);
    const cpuMs = Math.round((used.user + used.system) / 1000);
    const figures = {
      shape: shape.name,
      virtualMs: r.virtualMs,
      wallMs: r.wallMs,
      cpuMs,
      speedup: Math.round((r.virtualMs / r.wallMs) * 10) / 10,
      speedupCpu: Math.round((r.virtualMs / cpuMs) * 10) / 10,
      steps: r.steps,
      eventsPerSecond: Math.round(r.steps / (r.wallMs / 1000)),
      loadAverage: Deno.loadavg()[0],
      traceHash: r.traceHash,
      jobs: r.jobs,
      violations: r.violations.length,
    };
    if (json) console.log(JSON.stringify(figures));
    else {
      console.log(
        `${figures.shape}: ${figures.virtualMs} virtual ms in ${figures.wallMs} wall ms = ${figures.speedup}x real time (${figures.cpuMs} CPU ms = ${figures.speedupCpu}x), ${figures.steps} events, ${figures.eventsPerSecond} events/s, load average ${figures.loadAverage}, trace ${
          figures.traceHash.slice(0, 16)
        }`,
      );
    }
  }
}

/** `--scale`: the scaling scenario (`scale.ts`). */
async function scale(values: Record<string, string | boolean | undefined>): Promise<number> {
  const text = (name: string) => typeof values[name] === "string" ? values[name] : undefined;
  let options;
  try {
    const rate = text("rate") === undefined ? undefined : Number(text("rate"));
    if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
      throw new UsageError(`Invalid --rate "${text("rate")}": must be a positive number`);
    }
    const cap = text("wall-cap") === undefined ? undefined : Number(text("wall-cap"));
    if (cap !== undefined && !(Number.isFinite(cap) && cap > 0)) {
      throw new UsageError(`Invalid --wall-cap "${text("wall-cap")}": must be positive seconds`);
    }
    const seed = integer("seed", text("seed"), 0);
    const verifiers = integer("verifiers", text("verifiers"), 1);
    const clients = integer("clients", text("clients"), 1);
    const durationMs = integer("duration", text("duration"), 1);
    const maxInFlight = integer("in-flight", text("in-flight"), 1);
    const decliners = integer("decliners", text("decliners"), 0);
    const workMs = integer("work-ms", text("work-ms"), 1);
    options = {
      workers: integer("workers", text("workers"), 1) ?? 8,
      ...(seed !== undefined ? { seed } : {}),
      ...(verifiers !== undefined ? { verifiers } : {}),
      ...(clients !== undefined ? { clients } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(maxInFlight !== undefined ? { maxInFlight } : {}),
      ...(decliners !== undefined ? { decliners } : {}),
      ...(workMs !== undefined ? { workMs } : {}),
      ...(values["no-peer-events"] === true ? { peerEvents: false } : {}),
      ...(values["no-capabilities"] === true ? { capabilities: false } : {}),
      ...(rate !== undefined ? { rate } : {}),
      ...(cap !== undefined ? { wallCapMs: cap * 1_000 } : {}),
    };
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n(add --help for usage)`);
      return 2;
    }
    throw error;
  }
  let result;
  try {
    result = await runScale({
      ...options,
      onProgress: (p) => console.error(formatScaleProgress(p)),
    });
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    console.error(`${error.message}\n(add --help for usage)`);
    return 2;
  }
  console.log(values.json ? JSON.stringify(result) : formatScaleResult(result));
  return result.violations.length > 0 ? 1 : 0;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        workers: { type: "string" },
        verifiers: { type: "string" },
        clients: { type: "string" },
        jobs: { type: "string" },
        duration: { type: "string" },
        faults: { type: "string" },
        adversaries: { type: "string" },
        settlement: { type: "string" },
        json: { type: "boolean" },
        report: { type: "string" },
        "no-shrink": { type: "boolean" },
        bench: { type: "boolean" },
        campaign: { type: "boolean" },
        scale: { type: "boolean" },
        rate: { type: "string" },
        "in-flight": { type: "string" },
        "wall-cap": { type: "string" },
        decliners: { type: "string" },
        "work-ms": { type: "string" },
        "no-peer-events": { type: "boolean" },
        "no-capabilities": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.bench) {
    await bench(values.json === true);
    return 0;
  }
  if (values.scale) return await scale(values);
  let seeds: number[];
  let base: Omit<SimulationOptions, "seed">;
  try {
    seeds = seedsOf(values.seed, values.seeds);
    const faults = values.faults ?? "none";
    faultProfile(faults);
    const workers = integer("workers", values.workers, 1);
    const verifiers = integer("verifiers", values.verifiers, 1);
    const clients = integer("clients", values.clients, 1);
    const jobs = integer("jobs", values.jobs, 0);
    const durationMs = integer("duration", values.duration, 1);
    const settlement = values.settlement;
    if (settlement !== undefined && settlement !== "chain" && settlement !== "legacy") {
      throw new UsageError(`Invalid --settlement "${settlement}": must be chain or legacy`);
    }
    base = {
      ...(workers !== undefined ? { workers } : {}),
      ...(verifiers !== undefined ? { verifiers } : {}),
      ...(clients !== undefined ? { clients } : {}),
      ...(jobs !== undefined ? { jobs } : {}),
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(settlement !== undefined ? { settlement } : {}),
      faults: faults as SimulationOptions["faults"] & string,
      adversaries: parseAdversaries(values.adversaries ?? ""),
    };
  } catch (error) {
    if (error instanceof UsageError || error instanceof RangeError) {
      console.error(`${error.message}\n(add --help for usage)`);
      return 2;
    }
    throw error;
  }
  if (values.campaign) {
    const { faults: _f, adversaries: _a, ...size } = base;
    const rows = await campaign(seeds, size, (row, r) => {
      if (!values.json) return;
      console.log(
        JSON.stringify({ row, seed: r.seed, traceHash: r.traceHash, violations: r.violations }),
      );
    });
    console.log(campaignTable(rows));
    return rows.some((r) => Object.keys(r.breaks).length > 0) ? 1 : 0;
  }
  if (values.report) await Deno.mkdir(values.report, { recursive: true });
  let failed = 0;
  for (const seed of seeds) {
    const options: SimulationOptions = {
      ...base,
      seed,
      ...(values.report ? { recordPath: `${values.report}/seed-${seed}.jsonl` } : {}),
    };
    const result = await simulate(options);
    const violation = result.violations[0];
    const reproduce = violation ? reproduceCommand(options) : undefined;
    let shrunk: string | undefined;
    if (violation && !values["no-shrink"]) {
      const s = await shrink(options, violation.invariant);
      const command = reproduceCommand(s.options);
      if (command !== reproduce) shrunk = command;
    }
    if (values.report && result.recordPath) {
      const recording = parseRecording(await Deno.readTextFile(result.recordPath));
      await Deno.writeTextFile(
        `${values.report}/seed-${seed}.html`,
        renderHtml(buildReport(recording), `Simulation seed ${seed}`),
      );
    }
    if (values.json) {
      console.log(JSON.stringify({
        seed: result.seed,
        traceHash: result.traceHash,
        virtualMs: result.virtualMs,
        wallMs: result.wallMs,
        steps: result.steps,
        jobs: result.jobs,
        messages: result.messages,
        chain: result.chain,
        violations: result.violations,
        ...(reproduce ? { reproduce } : {}),
        ...(shrunk ? { shrunk } : {}),
      }));
    } else {
      console.log(describe(result));
      if (reproduce) console.log(`  reproduce: ${reproduce}`);
      if (shrunk) console.log(`  shrunk:    ${shrunk}`);
      if (values.report) {
        console.log(
          `  recording: ${values.report}/seed-${seed}.jsonl (deno task replay ${values.report}/seed-${seed}.jsonl --report DIR), timeline: ${values.report}/seed-${seed}.html`,
        );
      }
    }
    if (violation) failed++;
  }
  if (!values.json && seeds.length > 1) {
    console.log(`${seeds.length - failed} of ${seeds.length} seeds held`);
  }
  return failed > 0 ? 1 : 0;
}

Deno.exit(await main());
