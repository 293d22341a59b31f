/**
 * Deterministic replay. `replay()` rebuilds each recorded node's supervisor tree with inert
 * ports (effects go nowhere: no network, chain, executor or timers, because every outcome and
 * every timer firing is itself a recorded event) and feeds it the node's entries in order,
 * each at its stamped virtual time. At every step it checks that the addressed actor ends in
 * the recorded state with the recorded state hash of its context, and stops at the first
 * divergence, naming the line, node, sequence number, event and actor with expected and
 * actual. Time is never waited for: replay runs as fast as the machines do.
 *
 * `deno task replay <recording> [--policy <name>] [--report <dir>] [--quiet]`: prints OK with
 * counts and events/s, or the first divergence (exit code 1). `--policy` runs a counterfactual
 * instead (see `counterfactual.ts`); `--report` writes the research outputs (see `report.ts`).
 *
 * @module
 */
import { ActorTree, type RetiredJob } from "../../actors/tree.ts";
import type { EffectRequest } from "../../machines/types.ts";
import {
  describeOutcome,
  type EmittedEffect,
  type EnvelopeOutcome,
  outcomeOf,
  sameOutcome,
} from "./_codec.ts";
import { MACHINE_VERSIONS, type NodeDescriptor } from "./journal.ts";
import type { Recording, RecordingEntry, RecordingHeader } from "./recording.ts";

/** A recording made with machine versions this engine does not have. */
export class ReplayVersionError extends Error {
  override readonly name = "ReplayVersionError";
  /** The machine versions the recording needs. */
  readonly needs: Readonly<Record<string, number>>;
  constructor(message: string, needs: Readonly<Record<string, number>>) {
    super(message);
    this.needs = needs;
  }
}

/**
 * Throws a {@link ReplayVersionError} saying exactly which machine versions the recording
 * needs, when they are not this engine's.
 */
export function checkVersions(header: RecordingHeader, name = "recording"): void {
  const problems: string[] = [];
  for (const [kind, have] of Object.entries(MACHINE_VERSIONS)) {
    const need = header.machines[kind];
    if (need === undefined) problems.push(`it names no ${kind} machine version`);
    else if (need !== have) {
      problems.push(`it needs ${kind} machine version ${need}, this engine has version ${have}`);
    }
  }
  if (problems.length > 0) {
    throw new ReplayVersionError(
      `Cannot replay "${name}" (made by ${header.engine}): ${
        problems.join("; ")
      }; replay it with an engine whose machines are ${
        Object.entries(header.machines).map(([k, v]) => `${k} v${v}`).join(", ")
      }`,
      header.machines,
    );
  }
}

/** Where a replay first disagreed with its recording. */
export interface Divergence {
  readonly line: number;
  readonly node: string;
  readonly seq: number;
  readonly source: string;
  readonly event: string;
  readonly target: string;
  readonly expected: EnvelopeOutcome;
  readonly actual: EnvelopeOutcome;
}

/** One replayed step, for observers (reports). */
export interface ReplayStep {
  readonly entry: RecordingEntry;
  readonly outcome: EnvelopeOutcome | null;
  readonly tree: ActorTree;
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  /** Check each step against its recorded outcome. @default true */
  readonly check?: boolean;
  /** Called every `progressEvery` events with how many are done. */
  readonly onProgress?: (done: number, total: number) => void;
  /** @default 100_000 */
  readonly progressEvery?: number;
  /** Called after each step (slows replay down: the outcome is computed for it). */
  readonly onStep?: (step: ReplayStep) => void;
  /** Name used in messages. @default "recording" */
  readonly name?: string;
}

/** What a replay found. */
export interface ReplayReport {
  readonly ok: boolean;
  readonly divergence: Divergence | null;
  readonly nodes: number;
  /** Events delivered. */
  readonly events: number;
  /** Events whose outcome was checked. */
  readonly checked: number;
  /** Events without a recorded outcome (delivered, not checked). */
  readonly unchecked: number;
  /** Actors in the rebuilt trees at the end. */
  readonly actors: number;
  readonly wallMs: number;
  readonly eventsPerSecond: number;
  /** Virtual time the recording spans, ms. */
  readonly virtualMs: number;
  /** Virtual time over wall time. */
  readonly speedup: number;
  /** The rebuilt trees, by node. */
  readonly trees: ReadonlyMap<string, ActorTree>;
}

/**
 * A tree like the recorded node's, with inert ports: effects go nowhere, or to `onEffect`
 * (replay and recovery collect them to compare with, or recover, the recorded ones).
 */
export function inertTree(
  node: NodeDescriptor,
  now: () => number,
  onRetired?: (job: RetiredJob) => void,
  onEffect?: (actor: string, effect: EffectRequest) => void,
): ActorTree {
  return new ActorTree({
    self: node.id,
    ...(node.account !== undefined ? { account: node.account } : {}),
    roles: node.roles,
    now,
    policy: node.policy,
    ...(node.peer ? { peerConfig: node.peer } : {}),
    ...(node.intensity ? { intensity: node.intensity } : {}),
    ...(node.archiveSize !== undefined ? { archiveSize: node.archiveSize } : {}),
    ...(onRetired ? { onRetired } : {}),
    onEffect: onEffect ?? (() => {}),
  });
}

/** Replays `recording`, checking every step. Throws {@link ReplayVersionError} first if needed. */
export function replay(recording: Recording, options: ReplayOptions = {}): ReplayReport {
  checkVersions(recording.header, options.name);
  const check = options.check ?? true;
  const every = options.progressEvery ?? 100_000;
  let now = 0;
  const clock = () => now;
  const trees = new Map<string, ActorTree>();
  // The effects each delivery emits, to compare with the recorded ones.
  let emitted: EmittedEffect[] = [];
  const collect = (actor: string, effect: EffectRequest) => void emitted.push({ actor, effect });
  for (const node of recording.nodes) {
    trees.set(node.id, inertTree(node, clock, undefined, collect));
  }
  const entries = recording.entries;
  const total = entries.length;
  let checked = 0;
  let unchecked = 0;
  let divergence: Divergence | null = null;
  let first = Infinity;
  let last = -Infinity;
  const started = performance.now();
  let i = 0;
  for (; i < total; i++) {
    const entry = entries[i]!;
    const tree = trees.get(entry.node)!;
    now = entry.at;
    if (now < first) first = now;
    if (now > last) last = now;
    emitted = [];
    const delivery = tree.deliver(entry);
    const recorded = entry.outcome;
    let actual: EnvelopeOutcome | null = null;
    if (recorded === null) unchecked++;
    else if (check) {
      actual = outcomeOf(
        delivery,
        tree.get(entry.target),
        recorded.effects === undefined ? undefined : emitted,
      );
      if (!sameOutcome(actual, recorded)) {
        divergence = {
          line: entry.line,
          node: entry.node,
          seq: entry.seq,
          source: entry.source,
          event: entry.event.type,
          target: entry.target,
          expected: recorded,
          actual,
        };
        i++;
        break;
      }
      checked++;
    }
    if (options.onStep) {
      options.onStep({
        entry,
        outcome: actual ?? outcomeOf(delivery, tree.get(entry.target)),
        tree,
      });
    }
    if (options.onProgress && (i + 1) % every === 0) options.onProgress(i + 1, total);
  }
  const wallMs = performance.now() - started;
  const virtualMs = total > 0 ? last - first : 0;
  let actors = 0;
  for (const tree of trees.values()) actors += tree.jobs.size + tree.peers.size;
  return {
    ok: divergence === null,
    divergence,
    nodes: trees.size,
    events: i,
    checked,
    unchecked,
    actors,
    wallMs,
    eventsPerSecond: wallMs > 0 ? i / (wallMs / 1000) : Infinity,
    virtualMs,
    speedup: wallMs > 0 ? virtualMs / wallMs : Infinity,
    trees,
  };
}

const count = (n: number) => Math.round(n).toLocaleString("en-US");

/** The report as `deno task replay` prints it. */
export function formatReplay(report: ReplayReport, name = "recording"): string {
  const d = report.divergence;
  if (d === null) {
    return [
      `OK: ${name} replays identically`,
      `  ${count(report.events)} events on ${report.nodes} nodes (${
        count(report.checked)
      } checked, ${count(report.unchecked)} without a recorded outcome), ${
        count(report.actors)
      } actors`,
      `  ${(report.wallMs / 1000).toFixed(2)} s: ${count(report.eventsPerSecond)} events/s, ${
        report.speedup.toFixed(1)
      }x faster than real time (${(report.virtualMs / 1000).toFixed(1)} s recorded)`,
    ].join("\n");
  }
  return [
    `DIVERGED at line ${d.line}: node "${d.node}", seq ${d.seq}: ${d.event} (${d.source}) to ${d.target}`,
    `  expected: ${describeOutcome(d.expected)}`,
    `  actual:   ${describeOutcome(d.actual)}`,
    `  after ${count(report.checked)} matching steps`,
  ].join("\n");
}

/** The command line: kept out of module evaluation so `report.ts` can import this module. */
