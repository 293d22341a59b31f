/**
 * Benchmarks, each beside a baseline measured in the same run: announcement latency and
 * discovery on real libp2p hosts, lifecycle throughput against raw XState, replay speed, and
 * memory per job. `main.ts` is `deno task bench`; `onnx/main.ts`, `journal/main.ts` and
 * `onnx_session/main.ts` measure ONNX jobs through the market, journal appends and replay, and
 * onnxruntime sessions.
 *
 * ```ts ignore
 * import { benchConfig, formatTable, runBench } from "./mod.ts";
 *
 * console.log(formatTable(await runBench(benchConfig(true))));
 * ```
 *
 * @module
 */
export * from "./bench.ts";
export * from "./bench_lifecycle.ts";
export * from "./bench_memory.ts";
export * from "./bench_network.ts";
export * from "./bench_replay.ts";
