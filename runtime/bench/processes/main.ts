/**
 * `deno task bench:processes [--clients N] [--workers N] [--verifiers N] [--jobs N] ...`: a
 * market of separate `deno task node` processes on 127.0.0.1 settles a load of jobs
 * ({@link runProcessBench}); progress on stderr while it runs, the figures on stdout at the end
 * (`--json`: as JSON). Ctrl-C (SIGINT) or SIGTERM stops every node it started and exits 130.
 *
 * ```sh
 * nice -n 10 deno task bench:processes                      # 30 processes, 200 jobs
 * deno task bench:processes --clients 1 --workers 2 --verifiers 1 --jobs 5 --verifier-count 1
 * ```
 *
 * It runs with `--allow-all`: it starts processes (`--allow-run` grants as much), and Deno 2
 * reads another process's `/proc/<pid>/status` (its peak RSS) only with every permission.
 *
 * Exit codes: 0 when every job was final (whatever its outcome), 1 when the run failed or jobs
 * were left unfinished at the cap, 2 bad usage, 130 interrupted.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import {
  checkProcessBenchOptions,
  formatProcessBench,
  PROCESS_BENCH_DEFAULTS as D,
  runProcessBench,
} from "../processes.ts";

/** Where the program writes (tests capture it). */
export interface BenchIo {
  out(text: string): void;
  err(text: string): void;
}

const CONSOLE: BenchIo = { out: (t) => console.log(t), err: (t) => console.error(t) };

function integer(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
}

/** Runs `deno task bench:processes` with `args`; resolves with the exit code. */
export async function main(
  args: readonly string[],
  io: BenchIo = CONSOLE,
  signal?: AbortSignal,
): Promise<number> {
  const program = new Command("bench:processes")
    .description(
      "Separate deno task node processes on 127.0.0.1 (one local ledger file) settle a load of jobs",
    )
    .option("--clients <n>", "client nodes; the first is also the bootstrap", integer, D.clients)
    .option("--workers <n>", "worker nodes", integer, D.workers)
    .option("--verifiers <n>", "verifier nodes", integer, D.verifiers)
    .option("--jobs <n>", "jobs to submit", integer, D.jobs)
    .option("--concurrency <n>", "jobs in flight at most", integer, D.concurrency)
    .option("--start-concurrency <n>", "nodes starting at once", integer, D.startConcurrency)
    .option("--bid-window <ms>", "each job's bid window", integer, D.bidWindowMs)
    .option("--verifier-count <n>", "verifiers each job asks for", integer, D.verifierCount)
    .option("--ready-timeout <s>", "cap on forming the market", integer, D.readyTimeoutMs / 1000)
    .option("--timeout <s>", "cap on the jobs, first submission to last final", integer, 1800)
    .option("--dir <dir>", "keep data directories and the ledger here (default: a temp dir)")
    .option("--json", "print the result as JSON")
    .exitOverride()
    .configureOutput({
      writeOut: (t) => io.out(t.trimEnd()),
      writeErr: (t) => io.err(t.trimEnd()),
    });
  try {
    program.parse([...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  const v = program.opts<{
    clients: number;
    workers: number;
    verifiers: number;
    jobs: number;
    concurrency: number;
    startConcurrency: number;
    bidWindow: number;
    verifierCount: number;
    readyTimeout: number;
    timeout: number;
    dir?: string;
    json?: boolean;
  }>();
  const figures = {
    clients: v.clients,
    workers: v.workers,
    verifiers: v.verifiers,
    jobs: v.jobs,
    concurrency: v.concurrency,
    startConcurrency: v.startConcurrency,
    bidWindowMs: v.bidWindow,
    verifierCount: v.verifierCount,
    readyTimeoutMs: v.readyTimeout * 1000,
    timeoutMs: v.timeout * 1000,
  };
  try {
    checkProcessBenchOptions(figures);
  } catch (error) {
    io.err(`error: ${(error as Error).message}`);
    return 2;
  }
  const abort = new AbortController();
  signal?.addEventListener("abort", () => abort.abort(signal.reason), { once: true });
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) =>
    [name, () => abort.abort(new Error(`Received ${name}`))] as const
  );
  for (const [name, handler] of handlers) Deno.addSignalListener(name, handler);
  try {
    const result = await runProcessBench({
      ...figures,
      ...(v.dir !== undefined ? { dir: v.dir } : {}),
      onProgress: (message) => io.err(message),
      signal: abort.signal,
    });
    io.out(v.json ? JSON.stringify(result, null, 2) : formatProcessBench(result));
    return (result.outcomes.unfinished ?? 0) > 0 ? 1 : 0;
  } catch (error) {
    if (abort.signal.aborted) {
      io.err(`Stopped: ${(abort.signal.reason as Error)?.message ?? "aborted"}`);
      return 130;
    }
    io.err(`Benchmark failed: ${(error as Error).message}`);
    return 1;
  } finally {
    for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
