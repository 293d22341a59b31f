/**
 * The demo market: a client, workers (one silent, one returning wrong results) and verifiers in
 * one process, on the in-process network or real libp2p hosts, settling on the local ledger.
 * `main.ts` is `deno task demo`.
 *
 * ```ts ignore
 * import { formatSummary, runDemo } from "./mod.ts";
 *
 * console.log(formatSummary(await runDemo({ jobs: 10 })));
 * ```
 *
 * @module
 */
export * from "./demo.ts";
