/**
 * Counterfactual replay: what would have happened under another bid-selection or quorum
 * policy? Exact replay cannot answer it (a different winner means different messages, chain
 * events and outcomes than recorded), so the market is re-simulated: every recorded node is
 * rebuilt from its stream line (roles, worker profile, peer config) on an in-process network
 * with an in-memory local ledger, the real executor and verifier, and a simulated clock; the
 * recorded outside inputs that no node generated (operator commands: job submissions and
 * cancellations) are fed at their recorded virtual times; everything else (gossip, chain
 * events, timers, effect outcomes) is re-simulated. The run is done twice, under the recorded
 * policies (the baseline) and under the new one, and the differences are reported per job
 * (winner, final state, time to settle, payment, slashes) and in total.
 *
 * Simplifications: peers never time out (the simulation has no heartbeats), and executions
 * and chain transactions take no virtual time.
 *
 * @module
 */
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { LedgerTotals } from "../../chain/port.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import { DEFAULT_PEER_CONFIG } from "../../machines/peer_machine.ts";
import {
  BID_SELECTION_POLICIES,
  type BidSelectionPolicy,
  type JobPolicy,
  QUORUM_POLICIES,
  type QuorumPolicy,
} from "../../machines/policies.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import type { Clock } from "../kernel/mod.ts";
import { createNode, type Node } from "../kernel/mod.ts";
import type { Recording } from "../durability/mod.ts";

/** A clock moved by the simulation, with the next due timer visible. */
class SimClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, { due: number; fn: () => void }>();
  constructor(start: number) {
    this.#now = start;
  }
  now(): number {
    return this.#now;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { due: this.#now + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers.values()) if (min === undefined || t.due < min) min = t.due;
    return min;
  }
  /** Fires every timer due at or before `t`, in order, then sets the time to `t`. */
  advanceTo(t: number): void {
    for (let due = this.nextDue(); due !== undefined && due <= t; due = this.nextDue()) {
      for (
        const [id, timer] of [...this.#timers].sort((a, b) => a[1].due - b[1].due || a[0] - b[0])
      ) {
        if (timer.due !== due) continue;
        this.#timers.delete(id);
        this.#now = due;
        timer.fn();
      }
    }
    if (t > this.#now) this.#now = t;
  }
}

/** A policy change named on the command line. */
export interface PolicyChange {
  readonly bidSelection?: BidSelectionPolicy;
  readonly quorum?: QuorumPolicy;
}

/** Parses `lowest_price|fastest|best_value|bft|majority|unanimous`. */
export function parsePolicy(name: string): PolicyChange {
  if ((BID_SELECTION_POLICIES as readonly string[]).includes(name)) {
    return { bidSelection: name as BidSelectionPolicy };
  }
  if ((QUORUM_POLICIES as readonly string[]).includes(name)) {
    return { quorum: name as QuorumPolicy };
  }
  throw new RangeError(
    `Unknown policy "${name}": expected one of ${
      [...BID_SELECTION_POLICIES, ...QUORUM_POLICIES].join(", ")
    }`,
  );
}

/** How one job ended in a simulation. */
export interface SimulatedJob {
  readonly jobId: string;
  readonly state: string;
  readonly policy: JobPolicy;
  readonly winner: { readonly worker: string; readonly price: bigint } | null;
  readonly attempts: number;
  /** Virtual ms from submission to the final state (or the last state reached). */
  readonly durationMs: number;
  readonly paid: bigint;
  readonly refunded: bigint;
  readonly slashes: readonly string[];
}

/** One simulation run. */
export interface Simulation {
  readonly jobs: ReadonlyMap<string, SimulatedJob>;
  readonly totals: LedgerTotals;
  readonly virtualMs: number;
}

/** The two runs and what changed. */
export interface CounterfactualResult {
  readonly change: PolicyChange;
  readonly inputs: number;
  readonly baseline: Simulation;
  readonly counterfactual: Simulation;
  readonly wallMs: number;
}

async function quiesce(nodes: readonly Node[]): Promise<void> {
  let last = -1;
  let stable = 0;
  for (let i = 0; i < 500 && stable < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    await Promise.all(nodes.map((n) => n.settled()));
    let sig = 0;
    for (const n of nodes) sig += n.inbox.submitted;
    if (sig === last) stable++;
    else {
      stable = 0;
      last = sig;
    }
  }
}

/** Re-simulates the recorded market, with the recorded policies or with `change`. */
export async function simulate(
  recording: Recording,
  change: PolicyChange | null,
  options: { maxSteps?: number } = {},
): Promise<Simulation> {
  const inputs = recording.entries.filter((e) => e.source === "operator");
  const start = recording.entries.reduce((m, e) => Math.min(m, e.at), Infinity);
  const clock = new SimClock(Number.isFinite(start) ? start : 0);
  const network = new InProcessNetwork({ heartbeatMs: 0 });
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now() });
  const nodes = new Map<string, Node>();
  const apply = (p: JobPolicy): JobPolicy => (change ? { ...p, ...change } : p);
  try {
    for (const d of recording.nodes) {
      nodes.set(
        d.id,
        createNode({
          id: d.id,
          roles: d.roles,
          network: network.join(d.id),
          chain: ledger.as(d.id),
          clock,
          policy: apply(d.policy),
          // No heartbeats in a simulation: peers never time out.
          peer: { ...(d.peer ?? DEFAULT_PEER_CONFIG), heartbeatMs: 365 * 86_400_000 },
          ...(d.worker ? { worker: d.worker } : {}),
          capabilityIntervalMs: 0,
          // The comparison reads every job's final actor: keep them all.
          retainFinishedMs: null,
        }),
      );
    }
    const all = [...nodes.values()];
    for (const node of all) await node.start();
    for (const node of all) await node.announceCapabilities();
    await quiesce(all);
    const maxSteps = options.maxSteps ?? 200_000;
    let steps = 0;
    const step = async (until: number) => {
      for (let due = clock.nextDue(); due !== undefined && due <= until; due = clock.nextDue()) {
        if (++steps > maxSteps) return;
        clock.advanceTo(due);
        await quiesce(all);
      }
      clock.advanceTo(until);
    };
    for (const input of inputs) {
      await step(input.at);
      const node = nodes.get(input.node)!;
      const event = input.event.type === "job.submit" && input.event["policy"] !== undefined
        ? { ...input.event, policy: apply(input.event["policy"] as JobPolicy) }
        : input.event;
      try {
        node.inbox.submit("operator", input.target, event);
      } catch {
        // A closed inbox: the node is gone.
      }
      await quiesce(all);
    }
    const owned = () =>
      all.flatMap((n) =>
        [...n.tree.jobs.cells()].filter((c) => {
          const ctx = c.snapshot.context as JobContext;
          return ctx.owner === ctx.self;
        })
      );
    while (steps < maxSteps && !owned().every((c) => c.done)) {
      const due = clock.nextDue();
      if (due === undefined) break;
      await step(due);
    }
    const jobs = new Map<string, SimulatedJob>();
    for (const cell of owned()) {
      const c = cell.snapshot.context as JobContext;
      const first = c.path[0]?.at ?? 0;
      const last = c.path[c.path.length - 1]?.at ?? first;
      jobs.set(c.jobId, {
        jobId: c.jobId,
        state: cell.state,
        policy: c.policy,
        winner: c.winner ? { worker: c.winner.worker, price: c.winner.price } : null,
        attempts: c.attempt,
        durationMs: last - first,
        paid: c.payment?.amount ?? 0n,
        refunded: c.refunded,
        slashes: c.slashes.map((s) => `${s.worker}:${s.reason}`),
      });
    }
    const totals = await ledger.as("observer").totals();
    return { jobs, totals, virtualMs: clock.now() - (Number.isFinite(start) ? start : 0) };
  } finally {
    for (const node of nodes.values()) await node.stop().catch(() => {});
    network.close();
    ledger.close();
  }
}

/** Runs the baseline and the counterfactual simulations of `recording` under `policy`. */
export async function counterfactual(
  recording: Recording,
  policy: string,
  options: { onProgress?: (message: string) => void } = {},
): Promise<CounterfactualResult> {
  const change = parsePolicy(policy);
  const started = performance.now();
  const inputs = recording.entries.filter((e) => e.source === "operator").length;
  options.onProgress?.(`Simulating ${inputs} recorded inputs under the recorded policies`);
  const baseline = await simulate(recording, null);
  options.onProgress?.(`Simulating them under ${policy}`);
  const other = await simulate(recording, change);
  return {
    change,
    inputs,
    baseline,
    counterfactual: other,
    wallMs: performance.now() - started,
  };
}

function countStates(sim: Simulation): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of sim.jobs.values()) out[j.state] = (out[j.state] ?? 0) + 1;
  return out;
}

function slashCounts(sim: Simulation): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of sim.jobs.values()) {
    for (const s of j.slashes) {
      const reason = s.slice(s.lastIndexOf(":") + 1);
      out[reason] = (out[reason] ?? 0) + 1;
    }
  }
  return out;
}

const mean = (
  xs: number[],
) => (xs.length ? Math.round(xs.reduce((a, b) => a + b, 0) / xs.length) : 0);

/** What changed, as `deno task replay --policy` prints it. */
export function formatCounterfactual(result: CounterfactualResult): string {
  const { baseline: a, counterfactual: b } = result;
  const what = Object.entries(result.change).map(([k, v]) => `${k} ${v}`).join(", ");
  const arrow = (x: unknown, y: unknown) => (String(x) === String(y) ? `${x}` : `${x} -> ${y}`);
  const statesA = countStates(a);
  const statesB = countStates(b);
  const states = [...new Set([...Object.keys(statesA), ...Object.keys(statesB)])].sort();
  const slashA = slashCounts(a);
  const slashB = slashCounts(b);
  const reasons = [...new Set([...Object.keys(slashA), ...Object.keys(slashB)])].sort();
  const settledMs = (s: Simulation) =>
    mean([...s.jobs.values()].filter((j) => j.state === "settled").map((j) => j.durationMs));
  const lines = [
    `Counterfactual: ${what} (both runs re-simulated from ${result.inputs} recorded operator inputs, ${
      (result.wallMs / 1000).toFixed(1)
    } s)`,
    `  jobs:      ${
      states.map((s) => `${s} ${arrow(statesA[s] ?? 0, statesB[s] ?? 0)}`).join(", ")
    }`,
    `  paid:      ${arrow(a.totals.paid, b.totals.paid)} (fees ${
      arrow(a.totals.fees, b.totals.fees)
    }), refunded ${arrow(a.totals.refunded, b.totals.refunded)}`,
    `  slashes:   ${
      reasons.length
        ? reasons.map((r) => `${r} ${arrow(slashA[r] ?? 0, slashB[r] ?? 0)}`).join(", ")
        : "none"
    } (stake slashed ${arrow(a.totals.slashed, b.totals.slashed)})`,
    `  mean time to settle: ${arrow(`${settledMs(a)} ms`, `${settledMs(b)} ms`)}`,
  ];
  const changed: string[] = [];
  for (const [id, x] of a.jobs) {
    const y = b.jobs.get(id);
    if (y === undefined) continue;
    const diffs: string[] = [];
    const w = (j: SimulatedJob) => (j.winner ? `${j.winner.worker}@${j.winner.price}` : "none");
    if (w(x) !== w(y)) diffs.push(`winner ${w(x)} -> ${w(y)}`);
    if (x.state !== y.state) diffs.push(`${x.state} -> ${y.state}`);
    if (x.paid !== y.paid) diffs.push(`paid ${x.paid} -> ${y.paid}`);
    if (x.slashes.join() !== y.slashes.join()) {
      diffs.push(`slashes [${x.slashes.join(" ")}] -> [${y.slashes.join(" ")}]`);
    }
    if (x.durationMs !== y.durationMs) diffs.push(`${x.durationMs} -> ${y.durationMs} ms`);
    if (diffs.length > 0) changed.push(`    ${id}: ${diffs.join("; ")}`);
  }
  lines.push(`  jobs changed: ${changed.length} of ${a.jobs.size}`, ...changed);
  return lines.join("\n");
}
