/**
 * The operator's side: node configuration (file, flags, environment), the cockpit (a job
 * feed, kept outputs, Prometheus metrics, a job log), and the HTTP API and dashboard. The
 * programs are `node/main.ts` (`deno task node`), `submit/main.ts` (`deno task submit`),
 * `ciro/main.ts` (`deno task ciro`) and `devstack/main.ts` (`deno task devstack`).
 *
 * ```ts
 * import { parseConfig } from "./mod.ts";
 *
 * const config = parseConfig({ dataDir: "./data/a", roles: ["client"] });
 * console.log(config.roles); // ["client"]
 * ```
 *
 * @module
 */
export * from "./config.ts";
export * from "./job_request.ts";
export * from "./job_feed.ts";
export * from "./output_store.ts";
export * from "./metrics.ts";
export * from "./tracing.ts";
export * from "./logging.ts";
export * from "./cockpit.ts";
export * from "./openapi.ts";
export * from "./status_server.ts";
export * from "./http_server.ts";
export * from "./devstack/devstack.ts";
