/**
 * Per-phase durations of a job, read from its path through the job machine: bidding (bid
 * window opened -> assigned), execution (assigned -> result on chain), verification (result ->
 * verdict), settlement (verdict -> paid or refunded), and the total.
 *
 * @module
 */
import type { PhaseEntry } from "../../machines/job_machine.ts";

/** The phases reported. */
export const PHASES = ["bidding", "execution", "verification", "settlement", "total"] as const;
/** A reported phase. */
export type Phase = (typeof PHASES)[number];

/** Durations (ms) of the phases a job went through; absent phases are omitted. */
export function phaseDurations(path: readonly PhaseEntry[]): Partial<Record<Phase, number>> {
  const first = (state: string) => path.find((p) => p.state === state)?.at;
  const last = (state: string) => path.findLast((p) => p.state === state)?.at;
  const out: Partial<Record<Phase, number>> = {};
  const bidding = first("bidding");
  const executing = last("executing");
  const assigned = executing ?? first("refunding");
  if (bidding !== undefined && assigned !== undefined) out.bidding = assigned - bidding;
  const verifying = first("verifying");
  if (executing !== undefined && verifying !== undefined) out.execution = verifying - executing;
  const verdict = first("settling") ?? first("disputed");
  if (verifying !== undefined && verdict !== undefined) out.verification = verdict - verifying;
  const end = path[path.length - 1];
  if (verdict !== undefined && end !== undefined && end.at >= verdict) {
    out.settlement = end.at - verdict;
  }
  const start = path[0];
  if (start !== undefined && end !== undefined) out.total = end.at - start.at;
  return out;
}

/** The value at quantile `q` (0..1) of `values` (nearest rank), or NaN for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
