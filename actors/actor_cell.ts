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

/** What a cell needs of the running machine: XState's actor, or a {@link DirectRun}. */
interface Run {
  getSnapshot(): ReturnType<AnyActorRef["getSnapshot"]>;
  getPersistedSnapshot(): Snapshot<unknown>;
  send(event: { type: string }): void;
  stop(): void;
}

/** The error a {@link DirectRun} raises when its machine reaches for what it does not provide. */
function unsupported(what: string): never {
  throw new Error(
    `Cannot ${what} in an actor cell's direct run: its machine has no children and no delays`,
  );
}

/** A system of one actor without children, delays or inspection (see {@link DirectRun}). */
const DIRECT_SYSTEM = Object.freeze({
  _sendInspectionEvent: () => {},
  _bookId: () => unsupported("spawn an actor"),
  _register: () => unsupported("spawn an actor"),
  _unregister: () => {},
  _set: () => unsupported("register a system id"),
  get: () => undefined,
  _relay: () => unsupported("send an event to another actor"),
  scheduler: Object.freeze({
    schedule: () => unsupported("schedule a delayed event"),
    cancel: () => unsupported("cancel a delayed event"),
    cancelAll: () => {},
  }),
  inspect: () => unsupported("inspect"),
  start: () => {},
  getSnapshot: () => ({ _scheduledEvents: {} }),
});

/**
 * A machine run without an XState actor around it: each event goes straight to the machine's
 * own `transition` (what the actor's mailbox would call), its actions run as they resolve, and
 * what it emits is handed over after the step, in order, as the actor does. It leaves out what a
 * cell's machines do not use and a node pays for on every event: the actor's system, mailbox,
 * observers and inspection events. Only for a machine with no `invoke`, no `after` (a node's
 * deadlines are `timer.arm` requests) and no spawned children ({@link directRunnable}); one
 * that tries to spawn or schedule all the same fails with an error that says so, as a crash.
 *
 * It relies on XState's actor scope as 5.33.3 shapes it (`self`, `defer`, `emit`,
 * `actionExecutor`, and the system's `_sendInspectionEvent`, `_relay`, `_bookId`, `_register`,
 * `scheduler`), which is internal: `deno.json` pins the version, and the tests that run the job
 * machine to `settled` and the peer machine to its ban on a cell and on XState's own actor side
 * by side (snapshots and effects at every step, `actor_cell_test.ts`) fail on an upgrade that
 * changes what a step does.
 */
class DirectRun implements Run {
  readonly #logic: AnyStateMachine;
  #snapshot: ReturnType<AnyActorRef["getSnapshot"]>;
  readonly #deferred: (() => void)[] = [];
  readonly #scope: Record<string, unknown>;

  constructor(
    id: string,
    logic: AnyStateMachine,
    init: { readonly input?: unknown; readonly snapshot?: Snapshot<unknown> },
    emit: (event: { type: string }) => void,
  ) {
    this.#logic = logic;
    const self = {
      id,
      sessionId: id,
      system: DIRECT_SYSTEM,
      _parent: undefined,
      send: () => unsupported("send an event to itself"),
      getSnapshot: () => this.#snapshot,
    };
    this.#scope = {
      self,
      id,
      sessionId: id,
      logger: console.log,
      defer: (fn: () => void) => void this.#deferred.push(fn),
      system: DIRECT_SYSTEM,
      stopChild: () => unsupported("stop a child"),
      emit,
      actionExecutor: (
        action: { exec?: (info: unknown, params: unknown) => void; info: unknown; params: unknown },
      ) => action.exec?.(action.info, action.params),
    };
    const scope = this.#scope as never;
    const snapshot = init.snapshot === undefined
      ? logic.getInitialSnapshot(scope, init.input)
      : logic.restoreSnapshot!(init.snapshot, scope);
    this.#snapshot = snapshot;
    if (snapshot.status === "error") throw snapshot.error;
    logic.start?.(snapshot);
    this.#runDeferred();
  }

  getSnapshot(): ReturnType<AnyActorRef["getSnapshot"]> {
    return this.#snapshot;
  }

  getPersistedSnapshot(): Snapshot<unknown> {
    return this.#logic.getPersistedSnapshot(this.#snapshot) as Snapshot<unknown>;
  }

  /**
   * One step; an action that throws, or a step that leaves the machine in error (an
   * `xstate.error.*` event), leaves the snapshot in error, nothing emitted, and throws, as
   * XState's actor does after its step.
   */
  send(event: { type: string }): void {
    let next;
    try {
      next = this.#logic.transition(this.#snapshot, event, this.#scope as never);
    } catch (error) {
      this.#fail(this.#snapshot, error);
    }
    if (next.status === "error") this.#fail(next, next.error);
    this.#snapshot = next;
    this.#runDeferred();
  }

  #fail(snapshot: ReturnType<AnyActorRef["getSnapshot"]>, error: unknown): never {
    this.#deferred.length = 0;
    this.#snapshot = { ...snapshot, status: "error", error };
    throw error;
  }

  /** Runs the step's deferred actions (its emits, in order); one that throws fails the run. */
  #runDeferred(): void {
    try {
      for (let fn = this.#deferred.shift(); fn !== undefined; fn = this.#deferred.shift()) fn();
    } catch (error) {
      this.#fail(this.#snapshot, error);
    }
  }

  stop(): void {
    if (this.#snapshot.status !== "active") return;
    this.#deferred.length = 0;
    this.#snapshot = { ...this.#snapshot, status: "stopped" };
  }
}

/**
 * Whether `logic` can run as a {@link DirectRun}: no state of it invokes an actor or has a
 * delayed transition (spawning in an action is caught when it happens).
 */
function directRunnable(logic: AnyStateMachine): boolean {
  let runnable = directRuns.get(logic);
  if (runnable === undefined) {
    runnable = true;
    const nodes = [logic.root];
    for (let node = nodes.pop(); node !== undefined; node = nodes.pop()) {
      if (node.invoke.length > 0 || node.after.length > 0) {
        runnable = false;
        break;
      }
      nodes.push(...Object.values(node.states));
    }
    directRuns.set(logic, runnable);
  }
  return runnable;
}

const directRuns = new WeakMap<AnyStateMachine, boolean>();

/** XState's actor as a {@link Run} (a machine with children or delays). */
class ActorRun implements Run {
  readonly #actor: AnyActorRef;
  #error: { readonly error: unknown } | undefined;

  constructor(
    id: string,
    logic: AnyStateMachine,
    init: { readonly input?: unknown; readonly snapshot?: Snapshot<unknown> },
    emit: (event: { type: string }) => void,
  ) {
    const actor = createActor(logic, {
      id,
      ...(init.snapshot === undefined ? { input: init.input } : { snapshot: init.snapshot }),
    });
    actor.on("*", emit);
    actor.subscribe({ error: (error) => (this.#error = { error }) });
    actor.start();
    this.#actor = actor;
    this.#throwError();
  }

  #throwError(): void {
    const failure = this.#error;
    if (failure !== undefined) throw failure.error;
  }

  getSnapshot(): ReturnType<AnyActorRef["getSnapshot"]> {
    return this.#actor.getSnapshot();
  }

  getPersistedSnapshot(): Snapshot<unknown> {
    return this.#actor.getPersistedSnapshot() as Snapshot<unknown>;
  }

  send(event: { type: string }): void {
    this.#actor.send(event);
    this.#throwError();
  }

  stop(): void {
    this.#actor.stop();
  }
}

/** One supervised XState actor. */
export class ActorCell {
  readonly id: string;
  readonly logic: AnyStateMachine;
  readonly #options: ActorCellOptions;
  #actor!: Run;
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
  }

  #start(snapshot: Snapshot<unknown> | undefined): void {
    this.#incarnation++;
    this.#error = undefined;
    this.#pending = [];
    const logic = probed(this.logic);
    const init = snapshot === undefined ? { input: this.#options.input } : { snapshot };
    const emit = (emitted: { type: string }) => void this.#pending.push(emitted as EffectRequest);
    try {
      this.#actor = directRunnable(logic)
        ? new DirectRun(this.id, logic, init, emit)
        : new ActorRun(this.id, logic, init, emit);
    } catch (error) {
      this.#error = error;
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
    // XState's own events (`xstate.init`, `xstate.stop`, `xstate.error.actor.*`, ...) stop or
    // fail a machine from outside; no journal, recording or caller may send them to a cell.
    if (typeof event.type !== "string" || event.type.startsWith("xstate.")) {
      return rejected(
        "not_accepted",
        `Cannot deliver "${event.type}" to actor "${this.id}": XState's own events are reserved`,
      );
    }
    const snapshot = this.#actor.getSnapshot();
    if (snapshot.status !== "active") {
      return rejected(
        "not_active",
        `actor "${this.id}" is ${snapshot.status} in state ${stateName(snapshot.value)}`,
      );
    }
    if (this.#pending.length > 0) this.#pending = [];
    const outer = probe;
    const sending = probe = { event, taken: undefined as boolean | undefined };
    try {
      this.#actor.send(event);
    } catch (error) {
      this.#error = error;
    } finally {
      probe = outer;
    }
    if (this.#error !== undefined) return this.#crash(this.#error);
    if (sending.taken !== true) {
      // Nothing took it: the snapshot, the children and the effects are as they were.
      if (this.#pending.length > 0) this.#pending = [];
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
    if (effects.length === 0) return;
    this.#pending = [];
    for (const effect of effects) this.#options.onEffect(this, effect);
  }

  /** Restarts the actor from its last persisted snapshot (or from `snapshot`). */
  restart(snapshot: Snapshot<unknown> = this.persisted): void {
    if (this.#error === undefined) this.#actor.stop();
    this.#start(snapshot);
    this.#good = this.#actor.getSnapshot();
    this.#persisted = undefined;
  }

  /** Stops the actor for good. */
  stop(): void {
    this.#actor.stop();
  }
}
