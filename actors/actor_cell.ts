/**
 * An actor cell: one XState actor with what supervision needs around it. The cell delivers
 * events (refusing those the machine cannot take in its current state, with a reason), forwards
 * the effect requests the machine emits, keeps the last persisted snapshot after every event,
 * and reports a crash (an action that throws) to its supervisor instead of losing it.
 *
 * @module
 */
import {
  type AnyActorRef,
  type AnyStateMachine,
  createActor,
  type Snapshot,
  StateMachine,
} from "xstate";
import type { EffectRequest } from "../machines/types.ts";

/**
 * Why a delivery was refused, as a code that callers match on (the `reason` beside it is for
 * people): no such kind of actor, no such job, a job finished and retired, a job that already
 * exists, an announcement of our own job we do not know, a peer event about ourselves, a job
 * event without a spec, a job that could not be created, an event the actor's state does not
 * take, an actor that is no longer active or has crashed, a retirement of a job not finished,
 * or no actor to retire.
 */
export type RejectCode =
  | "unknown_target"
  | "unknown_job"
  | "retired"
  | "duplicate_job"
  | "own_job_unknown"
  | "self_peer"
  | "no_spec"
  | "create_failed"
  | "not_accepted"
  | "not_active"
  | "crashed_actor"
  | "not_finished"
  | "no_actor";

/** What delivering an event to a cell did. */
export type DeliveryOutcome =
  | { readonly status: "accepted" }
  | { readonly status: "rejected"; readonly code: RejectCode; readonly reason: string }
  | { readonly status: "crashed"; readonly error: unknown };

/** A refusal with its code and reason. */
export function rejected(code: RejectCode, reason: string): DeliveryOutcome {
  return { status: "rejected", code, reason };
}

/** Options of an {@link ActorCell}. */
export interface ActorCellOptions {
  /** Receives each effect the machine emits, after the transition that emitted it succeeded. */
  readonly onEffect: (cell: ActorCell, effect: EffectRequest) => void;
  /** Called after every accepted event. */
  readonly onTransition?: (cell: ActorCell) => void;
  readonly input?: unknown;
  /** A persisted snapshot to start from (restart, restore). */
  readonly snapshot?: Snapshot<unknown>;
}

/** A short rendering of a state value: `bidding`, `executing`, `a.b`. */
export function stateName(value: unknown): string {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object") {
    return Object.entries(value).map(([k, v]) => `${k}.${stateName(v)}`).join(",");
  }
  return String(value);
}

/** The event a cell is sending, and whether a transition took it (see {@link probed}). */
let probe: { readonly event: object; taken: boolean | undefined } | undefined;

/**
 * XState's own transition selection, watched: the first time the machine selects transitions
 * for the event a cell is sending, the probe learns whether any was enabled (a transition took
 * the event: a targetless one without actions too, such as an observer letting another
 * worker's bid by). Guards are evaluated once, by the step itself, not again by
 * `snapshot.can()`; and unlike the `inspect` option, nothing is built for every microstep and
 * action of every actor. It relies on XState's step selecting an event's transitions through
 * `snapshot.machine.getTransitionData()` (xstate 5.33): if an upgrade stopped doing so, every
 * event would be refused, which `actor_cell_test.ts` catches.
 */
class ProbedMachine extends (StateMachine as unknown as new (
  config: unknown,
  implementations: unknown,
) => { getTransitionData(snapshot: unknown, event: object): readonly unknown[] }) {
  override getTransitionData(snapshot: unknown, event: object): readonly unknown[] {
    const transitions = super.getTransitionData(snapshot, event);
    if (probe !== undefined && probe.event === event && probe.taken === undefined) {
      probe.taken = transitions.length > 0;
    }
    return transitions;
  }
}

const probedLogic = new WeakMap<AnyStateMachine, AnyStateMachine>();

/** `logic` with the same config and implementations, its transition selection watched. */
function probed(logic: AnyStateMachine): AnyStateMachine {
  let machine = probedLogic.get(logic);
  if (machine === undefined) {
    machine = new ProbedMachine(logic.config, logic.implementations) as unknown as AnyStateMachine;
    probedLogic.set(logic, machine);
  }
  return machine;
}

/** One supervised XState actor. */
export class ActorCell {
  readonly id: string;
  readonly logic: AnyStateMachine;
  readonly #options: ActorCellOptions;
  #actor!: AnyActorRef;
  /** Computed on demand from `#good` (persisting a large context on every event is costly). */
  #persisted: Snapshot<unknown> | undefined;
  /** The live snapshot after the last accepted event. */
  #good!: ReturnType<AnyActorRef["getSnapshot"]>;
  #pending: EffectRequest[] = [];
  #error: unknown = undefined;
  #incarnation = 0;

  constructor(id: string, logic: AnyStateMachine, options: ActorCellOptions) {
    this.id = id;
    this.logic = logic;
    this.#options = options;
    this.#start(options.snapshot);
    this.#good = this.#actor.getSnapshot();
    this.#persisted = this.#actor.getPersistedSnapshot();
  }

  #start(snapshot: Snapshot<unknown> | undefined): void {
    this.#incarnation++;
    this.#error = undefined;
    const actor = createActor(probed(this.logic), {
      id: this.id,
      ...(snapshot === undefined ? { input: this.#options.input } : { snapshot }),
    });
    actor.on("*", (emitted) => this.#pending.push(emitted as EffectRequest));
    actor.subscribe({ error: (error) => (this.#error = error) });
    this.#pending = [];
    actor.start();
    this.#actor = actor;
    if (this.#error !== undefined) {
      const error = this.#error;
      throw new Error(`Cannot start actor "${this.id}": ${(error as Error)?.message ?? error}`, {
        cause: error,
      });
    }
    // Effects emitted on start (entry actions of a new actor) go out now; a restored actor's
    // entry actions do not run again.
    this.#flush();
  }

  /** How many times this cell's actor was (re)started. */
  get incarnation(): number {
    return this.#incarnation;
  }

  /** The live snapshot. */
  get snapshot(): ReturnType<AnyActorRef["getSnapshot"]> {
    return this.#actor.getSnapshot();
  }

  /** The snapshot persisted after the last accepted event. */
  get persisted(): Snapshot<unknown> {
    return this.#persisted ??= this.logic.getPersistedSnapshot(this.#good) as Snapshot<unknown>;
  }

  /** The state value rendered as text. */
  get state(): string {
    return stateName(this.snapshot.value);
  }

  /** Whether the actor reached a final state. */
  get done(): boolean {
    return this.snapshot.status === "done";
  }

  /** Whether the actor crashed and waits for its supervisor. */
  get crashed(): boolean {
    return this.#error !== undefined;
  }

  /** Delivers one event. Never throws. */
  deliver(event: { type: string }): DeliveryOutcome {
    if (this.#error !== undefined) {
      return rejected("crashed_actor", `actor "${this.id}" has crashed`);
    }
    const snapshot = this.#actor.getSnapshot();
    if (snapshot.status !== "active") {
      return rejected(
        "not_active",
        `actor "${this.id}" is ${snapshot.status} in state ${stateName(snapshot.value)}`,
      );
    }
    this.#pending = [];
    const outer = probe;
    const sending = probe = { event, taken: undefined as boolean | undefined };
    try {
      this.#actor.send(event);
    } finally {
      probe = outer;
    }
    if (this.#error !== undefined) return this.#crash(this.#error);
    if (sending.taken !== true) {
      // Nothing took it: the snapshot, the children and the effects are as they were.
      this.#pending = [];
      return rejected(
        "not_accepted",
        `"${event.type}" is not accepted in state ${stateName(snapshot.value)}`,
      );
    }
    this.#good = this.#actor.getSnapshot();
    this.#persisted = undefined;
    this.#flush();
    this.#options.onTransition?.(this);
    return { status: "accepted" };
  }

  #crash(error: unknown): DeliveryOutcome {
    // The children are as the last accepted event left them: persist with them now.
    this.#persisted ??= this.persisted;
    this.#error = error;
    this.#pending = [];
    this.#actor.stop();
    return { status: "crashed", error };
  }

  #flush(): void {
    const effects = this.#pending;
    this.#pending = [];
    for (const effect of effects) this.#options.onEffect(this, effect);
  }

  /** Restarts the actor from its last persisted snapshot (or from `snapshot`). */
  restart(snapshot: Snapshot<unknown> = this.persisted): void {
    if (this.#error === undefined) this.#actor.stop();
    this.#start(snapshot);
    this.#good = this.#actor.getSnapshot();
    this.#persisted = this.#actor.getPersistedSnapshot();
  }

  /** Stops the actor for good. */
  stop(): void {
    this.#actor.stop();
  }
}
