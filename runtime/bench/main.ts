/**
 * `deno task bench [--quick] [--out DIR]`: every benchmark, each beside its baseline.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { benchConfig, canCollect, formatTable, runBench, writeResults } from "./mod.ts";

const USAGE = `Usage: deno task bench [--quick] [--out DIR]

Runs every benchmark, each beside its baseline, and writes the results to DIR.

Flags:
  --quick      smaller runs (a minute or two)
  --out DIR    where results go (default bench-results)
  -h, --help   this help`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        quick: { type: "boolean", default: false },
        out: { type: "string", default: "bench-results" },
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
