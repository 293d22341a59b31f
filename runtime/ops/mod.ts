/**
 * The operator's side: node configuration (file, flags, environment), the status server
 * (HTTP: health, jobs, submissions). The programs are `node/main.ts` (`deno task node`) and
 * `submit/main.ts` (`deno task submit`).
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
export * from "./status_server.ts";
