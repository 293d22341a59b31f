/**
 * A campaign: every fault profile (without adversaries) and every adversary (without faults)
 * over a range of seeds, summed up as the table of the README: profile or adversary x invariant
 * -> holds, or breaks with the first seed that broke it.
 *
 * @module
 */
import { FAULT_PROFILE_NAMES } from "./faults.ts";
import { type InvariantName, INVARIANTS } from "./invariants.ts";
import {
  ADVERSARY_NAMES,
  simulate,
  type SimulationOptions,
  type SimulationResult,
} from "./simulation.ts";

/** One row of a campaign. */
export interface CampaignRow {
  readonly name: string;
  readonly seeds: number;
  /** The first seed that broke each invariant (a seed stops at its first violation). */
  readonly breaks: Partial<Record<InvariantName, number>>;
}

/** Runs the campaign over `seeds` with `base` options (market size). */
export async function campaign(
  seeds: readonly number[],
  base: Omit<SimulationOptions, "seed" | "faults" | "adversaries"> = {},
  onResult?: (row: string, result: SimulationResult) => void,
): Promise<CampaignRow[]> {
  const rows: { name: string; options: Omit<SimulationOptions, "seed"> }[] = [
    ...FAULT_PROFILE_NAMES.map((faults) => ({
      name: `faults ${faults}`,
      options: { ...base, faults },
    })),
    ...ADVERSARY_NAMES.map((a) => ({ name: a, options: { ...base, adversaries: [a] } })),
  ];
  const out: CampaignRow[] = [];
  for (const row of rows) {
    const breaks: Partial<Record<InvariantName, number>> = {};
    for (const seed of seeds) {
      const result = await simulate({ ...row.options, seed });
      onResult?.(row.name, result);
      const v = result.violations[0];
      if (v !== undefined) breaks[v.invariant] ??= seed;
    }
    out.push({ name: row.name, seeds: seeds.length, breaks });
  }
  return out;
}

/** The campaign as a Markdown table. */
export function campaignTable(rows: readonly CampaignRow[]): string {
  const head = `| profile / adversary | ${INVARIANTS.join(" | ")} |`;
  const rule = `|---|${INVARIANTS.map(() => "---").join("|")}|`;
  const lines = rows.map((r) =>
    `| ${r.name} | ${
      INVARIANTS.map((i) =>
        r.breaks[i] === undefined ? "holds" : `**breaks** (seed ${r.breaks[i]})`
      )
        .join(" | ")
    } |`
  );
  return [head, rule, ...lines].join("\n");
}
