/**
 * Deterministic simulation: a whole market in one process on the real node code, in virtual
 * time, with a simulated network and chain, faults and adversaries, all driven by one seed.
 * The same seed gives the same trace hash; invariants are checked as it runs.
 *
 * ```ts
 * import { simulate } from "./mod.ts";
 *
 * const result = await simulate({ seed: 1, workers: 4, verifiers: 4, jobs: 3 });
 * console.log(result.traceHash.length, result.violations.length); // 64 0
 * ```
 *
 * @module
 */
export * from "./rng.ts";
export * from "./scheduler.ts";
export * from "./trace.ts";
export * from "./faults.ts";
export * from "./network.ts";
export * from "./chain.ts";
export * from "./invariants.ts";
export * from "./simulation.ts";
export * from "./shrink.ts";
export * from "./campaign.ts";
export * from "./scale.ts";
