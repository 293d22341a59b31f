/**
 * Test helpers: drive a machine through XState's pure `transition()` (no timers, no I/O) and
 * collect what it emits.
 *
 * @module
 */
import { type AnyStateMachine, initialTransition, transition } from "xstate";
import type { EffectRequest, JobSpec } from "../machines/types.ts";
import { announcementTopicsOf, encodeMessage } from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { specHashOf } from "../protocols/spec_hash.ts";
import { commitmentOf } from "../runtime/compute/executor.ts";

/** One step's result. */
export interface Step {
  // deno-lint-ignore no-explicit-any
  readonly snapshot: any;
  readonly effects: EffectRequest[];
}

// deno-lint-ignore no-explicit-any
function effectsOf(actions: readonly any[]): EffectRequest[] {
  return actions.filter((a) => a.type === "xstate.emit").map((a) =>
    a.params.event as EffectRequest
  );
}

/** A driver over `machine`, starting from `input`. */
export class Driver {
  readonly machine: AnyStateMachine;
  // deno-lint-ignore no-explicit-any
  snapshot: any;
  effects: EffectRequest[];

  constructor(machine: AnyStateMachine, input: unknown) {
    this.machine = machine;
    const [snapshot, actions] = initialTransition(machine, input);
    this.snapshot = snapshot;
    this.effects = effectsOf(actions);
  }

  /** Sends one event; returns the effects it emitted. */
  send(event: { type: string; [k: string]: unknown }): EffectRequest[] {
    const [snapshot, actions] = transition(this.machine, this.snapshot, event as never);
    this.snapshot = snapshot;
    this.effects = effectsOf(actions);
    return this.effects;
  }

  /** Whether the machine would take `event` now. */
  can(event: { type: string; [k: string]: unknown }): boolean {
    return this.snapshot.can(event);
  }

  get state(): string {
    return typeof this.snapshot.value === "string"
      ? this.snapshot.value
      : JSON.stringify(this.snapshot.value);
  }

  // deno-lint-ignore no-explicit-any
  get context(): any {
    return this.snapshot.context;
  }

  /** The effects of the last step of one type. */
  // deno-lint-ignore no-explicit-any
  emitted(type: EffectRequest["type"]): any[] {
    return this.effects.filter((e) => e.type === type);
  }
}

/** A small matmul job spec. */
export function spec(overrides: Partial<JobSpec> = {}): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: "cpu", minStake: 10n },
    maxPrice: 100n,
    bidWindowMs: 100,
    executionMs: 1_000,
    verificationMs: 1_000,
    maxAttempts: 2,
    verifierCount: 4,
    ...overrides,
  };
}

/** A one-verifier job for real nodes, with wide margins: the test machine is shared and loaded. */
export function oneVerifierSpec(): JobSpec {
  return spec({
    bidWindowMs: 500,
    executionMs: 20_000,
    verificationMs: 20_000,
    maxAttempts: 1,
    verifierCount: 1,
  });
}

/** A bid offer. */
export function bid(worker: string, price: bigint, extra: Record<string, unknown> = {}) {
  return {
    bidId: `b-${worker}`,
    jobId: "j1",
    worker,
    price,
    etaMs: 100,
    stake: 50n,
    reputation: 500,
    hardware: "cpu" as const,
    ...extra,
  };
}

/** The escrow of job `jobId` for spec `s` (no verifiers, a builtin model): `ChainPort.submitJob`'s argument. */
export function escrowOfSpec(jobId: string, s: JobSpec) {
  return {
    jobId,
    amount: s.maxPrice,
    minStake: s.requirements.minStake,
    modelHash: "0".repeat(64),
    inputCommitment: s.inputCommitment,
    verifierCount: 0,
    bidWindowMs: s.bidWindowMs,
    executionMs: s.executionMs,
    verificationMs: s.verificationMs,
    specHash: specHashOf(s),
  };
}

/** `from` announces job `jobId` (attempt 1, no sample) with spec `s` as `owner`'s, its window ending at `endsAt`. */
export function announceSpec(
  from: NetworkPort,
  jobId: string,
  owner: string,
  s: JobSpec,
  endsAt: number,
) {
  const [topic] = announcementTopicsOf(s, jobId, 1, 0);
  return from.publish(
    topic!,
    encodeMessage(topic!, {
      type: "job.announce",
      jobId,
      owner,
      attempt: 1,
      bidWindowEndsAt: endsAt,
      spec: s,
    }),
  );
}
