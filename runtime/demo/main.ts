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
  throw new RangeError(`Invalid --network "${value}": must be in-process or libp2p`);
}

function progressBar(done: number, total: number, byState: Record<string, number>): string {
  const width = 30;
  const filled = Math.round((done / total) * width);
  const parts = Object.entries(byState).sort().map(([k, v]) => `${k} ${v}`).join(", ");
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${total}  ${parts}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      jobs: { type: "string" },
      workers: { type: "string" },
      verifiers: { type: "string" },
      concurrency: { type: "string" },
      ledger: { type: "string" },
      record: { type: "string" },
      network: { type: "string" },
      json: { type: "boolean" },
      onnx: { type: "boolean" },
      "retain-ms": { type: "string" },
      "log-level": { type: "string" },
    },
  });
  const retainMs = values["retain-ms"];
  if (retainMs !== undefined && retainMs !== "never" && !/^\d+$/.test(retainMs)) {
    console.error(
      `Invalid --retain-ms "${retainMs}": must be a whole number of milliseconds, or "never"`,
    );
    Deno.exit(2);
  }
  configureLogging({ level: (values["log-level"] as "error" | undefined) ?? "error" });
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
    if (!summary.moneyConserved || !summary.stakeConserved) Deno.exit(1);
  } catch (error) {
    console.error(`\nDemo failed: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
