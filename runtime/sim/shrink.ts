/**
 * Shrinking: given a failing seed, tries smaller schedules on the same seed (fewer adversaries,
 * a milder fault profile, fewer jobs, fewer workers) and keeps each that still breaks the same
 * invariant, so the command it prints is the smallest failing one it found.
 *
 * @module
 */
import type { InvariantName } from "./invariants.ts";
import { simulate, type SimulationOptions, type SimulationResult } from "./simulation.ts";

/** The command line that reproduces a run of `options`. */
export function reproduceCommand(options: SimulationOptions): string {
  const parts = ["deno task simulate", `--seed ${options.seed}`];
  if (options.workers !== undefined) parts.push(`--workers ${options.workers}`);
  if (options.verifiers !== undefined) parts.push(`--verifiers ${options.verifiers}`);
  if (options.clients !== undefined) parts.push(`--clients ${options.clients}`);
  if (options.jobs !== undefined) parts.push(`--jobs ${options.jobs}`);
  if (options.durationMs !== undefined) parts.push(`--duration ${options.durationMs}`);
  if (options.faults !== undefined && options.faults !== "none") {
    parts.push(`--faults ${options.faults}`);
  }
  if (options.adversaries !== undefined && options.adversaries.length > 0) {
    parts.push(`--adversaries ${options.adversaries.join(",")}`);
  }
  if (options.settlement === "legacy") parts.push("--settlement legacy");
  return parts.join(" ");
}

/** Options of {@link shrink}. */
export interface ShrinkOptions {
  /** Most candidate runs. @default 24 */
  readonly maxRuns?: number;
  /** Told of each candidate tried and whether it still failed. */
  readonly onTry?: (options: SimulationOptions, failed: boolean) => void;
}

/** The smallest options found that still break `invariant` on the same seed. */
export async function shrink(
  failing: SimulationOptions,
  invariant: InvariantName,
  options: ShrinkOptions = {},
): Promise<{ options: SimulationOptions; result: SimulationResult | null; runs: number }> {
  const maxRuns = options.maxRuns ?? 24;
  const { recordPath: _path, between: _between, ...plain } = failing;
  let best: SimulationOptions = plain;
  let bestResult: SimulationResult | null = null;
  let runs = 0;
  const fails = async (candidate: SimulationOptions): Promise<boolean> => {
    if (runs >= maxRuns) return false;
    runs++;
    const result = await simulate(candidate);
    const failed = result.violations.some((v) => v.invariant === invariant);
    options.onTry?.(candidate, failed);
    if (failed) bestResult = result;
    return failed;
  };
  const candidates = function* (o: SimulationOptions): Generator<SimulationOptions> {
    const adversaries = o.adversaries ?? [];
    for (let i = 0; i < adversaries.length; i++) {
      yield { ...o, adversaries: adversaries.filter((_, j) => j !== i) };
    }
    if (o.faults !== undefined && o.faults !== "none") yield { ...o, faults: "none" };
    const jobs = o.jobs ?? 20;
    if (jobs > 1) yield { ...o, jobs: Math.max(1, Math.floor(jobs / 2)) };
    const workers = o.workers ?? 8;
    if (workers > 1) yield { ...o, workers: Math.max(1, Math.floor(workers / 2)) };
    const clients = o.clients ?? 1;
    if (clients > 1) yield { ...o, clients: 1 };
  };
  for (let progress = true; progress && runs < maxRuns;) {
    progress = false;
    for (const candidate of candidates(best)) {
      if (await fails(candidate)) {
        best = candidate;
        progress = true;
        break;
      }
    }
  }
  return { options: best, result: bestResult, runs };
}
