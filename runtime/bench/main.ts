/**
 * `deno task bench [--quick] [--out DIR]`: every benchmark, each beside its baseline.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { benchConfig, canCollect, formatTable, runBench, writeResults } from "./mod.ts";

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "bench-results" },
    },
  });
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
