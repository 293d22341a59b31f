/**
 * A market in one process whose job traces (and logs) go out through OpenTelemetry: run by
 * `otel_test.ts` as a subprocess with `OTEL_DENO=true` and an OTLP endpoint on loopback.
 *
 * @module
 */
import { dispose } from "@logtape/logtape";
import { configureOperatorLogging } from "../../runtime/ops/mod.ts";
import { matmulSpec, startMarket } from "./_market.ts";

await configureOperatorLogging({ level: "info", format: "json" }, { otel: true });
// w2's floor is above the job's price: it declines, takes no part, and sends no trace of it.
const market = await startMarket({ workers: [{}, { minPrice: 1_000n }] });
market.client.submitJob({ spec: matmulSpec(), jobId: "traced-1" });
console.log(await market.finished("traced-1"));
await Promise.all([market.client, ...market.workers].map((n) => n.settled()));
await market.stop();
await dispose();
