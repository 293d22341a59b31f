/**
 * Replay and research: reports read from recordings (timelines, per-phase durations, bid
 * statistics, an HTML timeline), counterfactual replays under another job policy, the state
 * diagrams generated from the machines, and SVG line charts.
 *
 * ```ts
 * import { phaseDurations, quantile } from "./mod.ts";
 *
 * const path = [
 *   { state: "bidding", at: 0 },
 *   { state: "executing", at: 120 },
 *   { state: "verifying", at: 180 },
 *   { state: "settling", at: 260 },
 *   { state: "settled", at: 300 },
 * ];
 * console.log(phaseDurations(path).total, quantile([1, 2, 3, 4], 0.5)); // 300 ...
 * ```
 *
 * @module
 */
export * from "./phases.ts";
export * from "./report.ts";
export * from "./counterfactual.ts";
export * from "./diagrams.ts";
export * from "./svg_plot.ts";
