/**
 * Logging through LogTape (`npm:@logtape/logtape`; the design card's std log package on JSR cannot be
 * reached from our machines). Every logger sits under the `ciro` category; a library that
 * embeds the engine sees nothing until it (or {@link configureLogging}) configures LogTape.
 *
 * @module
 */
import {
  configureSync,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";

/** Log line format: human-readable text, or JSON lines for log shippers. */
export type LogFormat = "text" | "json";

/** Options of {@link configureLogging}. */
export interface LoggingOptions {
  /** @default "info" */
  readonly level?: LogLevel;
  /** @default "text" */
  readonly format?: LogFormat;
}

const encoder = new TextEncoder();

/** Configures LogTape for the `ciro` category, writing to stderr. Replaces earlier settings. */
export function configureLogging(options: LoggingOptions = {}): void {
  const formatter = options.format === "json" ? getJsonLinesFormatter() : getTextFormatter();
  resetSync();
  configureSync({
    reset: true,
    sinks: {
      stderr: (record: LogRecord) => {
        Deno.stderr.writeSync(encoder.encode(formatter(record)));
      },
    },
    loggers: [
      { category: ["ciro"], lowestLevel: options.level ?? "info", sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** The logger of a part of the engine: `logger("node", "n1")` is category `ciro.node.n1`. */
export function logger(...category: string[]): Logger {
  return getLogger(["ciro", ...category]);
}

export type { Logger, LogLevel };
