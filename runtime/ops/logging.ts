/**
 * The operator's logging: what `configureLogging` of the kernel does (LogTape, the `ciro`
 * category, text or JSON lines on stderr), plus, with `otel`, every record sent to an OTLP
 * endpoint through `@logtape/otel` (the endpoint and protocol from the standard `OTEL_*`
 * environment variables, as Deno's own exporter of traces reads them).
 *
 * ```ts ignore
 * import { configureOperatorLogging } from "./logging.ts";
 * import { dispose } from "@logtape/logtape";
 *
 * await configureOperatorLogging({ level: "info", format: "text" }, { otel: true });
 * // ... at exit, flush what is buffered:
 * await dispose();
 * ```
 *
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type LogRecord,
  type Sink,
} from "@logtape/logtape";
import { getOpenTelemetrySink } from "@logtape/otel";
import type { LoggingOptions } from "../kernel/mod.ts";

const encoder = new TextEncoder();

/** Whether the environment asks for OpenTelemetry (`OTEL_DENO=true`). */
export function otelRequested(env: Readonly<Record<string, string | undefined>>): boolean {
  return env.OTEL_DENO === "true" || env.OTEL_DENO === "1";
}

/** Configures LogTape for the `ciro` category on stderr, and OTLP export with `otel`. */
export async function configureOperatorLogging(
  options: LoggingOptions = {},
  extra: { readonly otel?: boolean } = {},
): Promise<void> {
  const formatter = options.format === "json" ? getJsonLinesFormatter() : getTextFormatter();
  const sinks: Record<string, Sink> = {
    stderr: (record: LogRecord) => {
      Deno.stderr.writeSync(encoder.encode(formatter(record)));
    },
  };
  if (extra.otel) sinks.otel = getOpenTelemetrySink();
  const level: LogLevel = options.level ?? "info";
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["ciro"], lowestLevel: level, sinks: Object.keys(sinks) },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}
