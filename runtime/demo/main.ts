/**
 * `deno task demo`: a whole market in one process, with progress and a money check.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { configureLogging } from "../kernel/mod.ts";
import { formatSummary, runDemo } from "./mod.ts";

function parseNetwork(value: string): "in-process" | "libp2p" {
  if (value === "in-process" || value === "libp2p") return value;
  throw new TypeError(`Invalid --network "${value}": must be in-process or libp2p`);
}

function progressBar(done: number, total: number, byState: Record<string, number>): string {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const parts = Object.entries(byState).sort().map(([k, v]) => `${k} ${v}`).join(", ");
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}  ${parts}`;
}

const USAGE = `Usage: deno task demo [flags]

A whole market in one process, with progress and a money check.

Flags:
  --jobs N             jobs to submit (default 100; 40 over libp2p)
  --workers N          workers, at least 3 (default 20; 8 over libp2p)
  --verifiers N        verifiers, at least 1 (default 4)
  --concurrency N      jobs in flight at once (default 25; 8 over libp2p)
  --network NAME       in-process or libp2p (default in-process)
  --onnx               ONNX jobs on a model built here (onnxruntime)
  --ledger PATH        the local ledger file (default: in memory)
  --chain NAME         local or evm: the Solidity contracts on Hardhat's EVM in process (default local)
  --settlement NAME    chain (the chain chooses bonded verifiers and decides) or legacy
                       (the client's node records the verdict; for research) (default chain)
  --record PATH        where the recording goes (default: a temp dir)
  --retain-ms MS       how long a finished job's actor stays live, or "never"
  --log-level LEVEL    trace, debug, info, warning, error, fatal (default error)
  --json               print the summary as JSON
  -h, --help           this help

Exit codes: 0 money conserved, 1 failed, 2 bad usage.`;

const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** Parses the demo's flags; throws `TypeError` naming the bad flag. */
function parseFlags(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      jobs: { type: "string" },
      workers: { type: "string" },
      verifiers: { type: "string" },
      concurrency: { type: "string" },
      ledger: { type: "string" },
      record: { type: "string" },
      network: { type: "string" },
      chain: { type: "string" },
      settlement: { type: "string" },
      json: { type: "boolean" },
      onnx: { type: "boolean" },
      "retain-ms": { type: "string" },
      "log-level": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  for (const flag of ["jobs", "workers", "verifiers", "concurrency"] as const) {
    const value = values[flag];
    if (value !== undefined && !/^[1-9]\d{0,6}$/.test(value)) {
      throw new TypeError(`Invalid --${flag} "${value}": must be a positive integer`);
    }
  }
  const level = values["log-level"];
  if (level !== undefined && !(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new TypeError(`Invalid --log-level "${level}": must be one of ${LOG_LEVELS.join(", ")}`);
  }
  if (values.network !== undefined) parseNetwork(values.network);
  if (values.chain !== undefined && values.chain !== "local" && values.chain !== "evm") {
    throw new TypeError(`Invalid --chain "${values.chain}": must be local or evm`);
  }
  const settlement = values.settlement;
  if (settlement !== undefined && settlement !== "chain" && settlement !== "legacy") {
    throw new TypeError(`Invalid --settlement "${settlement}": must be chain or legacy`);
  }
  return values;
}

if (import.meta.main) {
  let values: ReturnType<typeof parseFlags>;
  try {
    values = parseFlags(Deno.args);
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const retainMs = values["retain-ms"];
  if (retainMs !== undefined && retainMs !== "never" && !/^\d+$/.test(retainMs)) {
    console.error(
      `Invalid --retain-ms "${retainMs}": must be a whole number of milliseconds, or "never"`,
    );
    Deno.exit(2);
  }
  configureLogging({
    level: (values["log-level"] as (typeof LOG_LEVELS)[number] | undefined) ?? "error",
  });
  const tty = Deno.stderr.isTerminal();
  const encoder = new TextEncoder();
  let lastDecile = -1;
  try {
    const summary = await runDemo({
      ...(values.jobs ? { jobs: Number(values.jobs) } : {}),
      ...(values.workers ? { workers: Number(values.workers) } : {}),
      ...(values.verifiers ? { verifiers: Number(values.verifiers) } : {}),
      ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}),
      ...(values.ledger ? { ledgerPath: values.ledger } : {}),
      ...(values.chain === "evm" ? { chain: "evm" as const } : {}),
      ...(values.settlement === "legacy" ? { settlement: "legacy" as const } : {}),
      ...(values.network ? { network: parseNetwork(values.network) } : {}),
      ...(values.onnx ? { onnx: true } : {}),
      ...(retainMs === undefined
        ? {}
        : { retainFinishedMs: retainMs === "never" ? null : Number(retainMs) }),
      recordPath: values.record ??
        `${await Deno.makeTempDir({ prefix: "ciro-demo-" })}/recording.jsonl`,
      onProgress: (done, total, byState) => {
        const decile = Math.floor((done / total) * 10);
        if (tty) Deno.stderr.writeSync(encoder.encode(`\r${progressBar(done, total, byState)}`));
        else if (decile !== lastDecile) {
          lastDecile = decile;
          console.error(progressBar(done, total, byState));
        }
      },
    });
    if (tty) console.error();
    console.log(
      values.json
        ? JSON.stringify(summary, (_k, v) => typeof v === "bigint" ? v.toString() : v, 2)
        : formatSummary(summary),
    );
    // Exit explicitly: over libp2p the peer store's lock library (mortice) opens a
    // BroadcastChannel and calls `unref()`, which Deno's BroadcastChannel lacks, so the channel
    // would keep the process alive after every host is stopped.
    Deno.exit(summary.moneyConserved && summary.stakeConserved ? 0 : 1);
  } catch (error) {
    const e = error as Error;
    // runDemo checks its numbers too (at least 3 workers): that is bad usage, not a failure.
    if (e.name === "RangeError" && e.message.startsWith("Invalid --")) {
      console.error(`\n${e.message}\n(add --help for usage)`);
      Deno.exit(2);
    }
    console.error(`\nDemo failed: ${e.message}`);
    Deno.exit(1);
  }
}
