/**
 * Supervisors: the supervision XState does not have. A supervisor keeps its children in a Map
 * of independently created actors (XState copies a parent's whole children map on every spawn,
 * which makes thousands of machine children quadratic), delivers events to them, and restarts a
 * crashed child one-for-one from its last persisted snapshot. Past the restart intensity (more
 * than `maxRestarts` restarts of one child within `withinMs`) the child is quarantined and the
 * failure escalates to the parent supervisor, which restarts the escalating supervisor's
 * children from their snapshots; past the parent's own intensity it escalates further, and the
 * root reports a fatal failure.
 *
 * The intensity is counted per child, not per supervisor: one poisonous job must not use up
 * the restart budget of hundreds of healthy ones.
 *
 * @module
 */
import type { AnyStateMachine, Snapshot } from "xstate";
import type { EffectRequest } from "../machines/types.ts";
import { ActorCell, type DeliveryOutcome, rejected } from "./actor_cell.ts";

/** How many restarts a supervisor allows before it escalates. */
export interface RestartIntensity {
  /** @default 3 */
  readonly maxRestarts: number;
  /** @default 10_000 */
  readonly withinMs: number;
}

/** The restart intensity used unless configured. */
export const DEFAULT_INTENSITY: RestartIntensity = { maxRestarts: 3, withinMs: 10_000 };

/** What a supervisor reports: restarts, quarantines, escalations. */
export type SupervisionEvent =
  | {
    readonly type: "restarted";
    readonly supervisor: string;
    readonly actor: string;
    readonly error: string;
    readonly event: string;
  }
  | {
    readonly type: "quarantined";
    readonly supervisor: string;
    readonly actor: string;
    readonly error: string;
  }
  | {
    readonly type: "escalated";
    readonly supervisor: string;
    readonly to: string;
    readonly error: string;
  }
  | {
    readonly type: "supervisor.restarted";
    readonly supervisor: string;
    readonly children: number;
  }
  | { readonly type: "fatal"; readonly supervisor: string; readonly error: string };

/** Options of a {@link Supervisor}. */
export interface SupervisorOptions {
  readonly name: string;
  readonly now: () => number;
  readonly intensity?: RestartIntensity;
  readonly parent?: Supervisor;
  /** Receives each effect a child emits. */
  readonly onEffect?: (cell: ActorCell, effect: EffectRequest) => void;
  /** Called after a child is (re)started from a snapshot, to re-arm its deadlines. */
  readonly onRestored?: (cell: ActorCell) => void;
  readonly onSupervision?: (event: SupervisionEvent) => void;
}

/** A failure that went past a supervisor's restart intensity. */
export class EscalationError extends Error {
  override readonly name = "EscalationError";
  readonly supervisor: string;
  constructor(supervisor: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.supervisor = supervisor;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A one-for-one supervisor of actor cells, and of child supervisors. */
export class Supervisor {
  readonly name: string;
  readonly #options: SupervisorOptions;
  readonly #intensity: RestartIntensity;
  readonly #cells = new Map<string, ActorCell>();
  readonly #restarts = new Map<string, number[]>();
  readonly #quarantined = new Map<string, { cell: ActorCell; error: string }>();
  readonly #children = new Map<string, Supervisor>();
  readonly #onEffect: (cell: ActorCell, effect: EffectRequest) => void;

  constructor(options: SupervisorOptions) {
    this.name = options.name;
    this.#options = options;
    this.#intensity = options.intensity ?? DEFAULT_INTENSITY;
    this.#onEffect = options.onEffect ?? (() => {});
    if (options.parent !== undefined) options.parent.#children.set(options.name, this);
  }

  /** The child supervisors. */
  get supervisors(): ReadonlyMap<string, Supervisor> {
    return this.#children;
  }

  /** Number of live children. */
  get size(): number {
    return this.#cells.size;
  }

  /** A child by id. */
  get(id: string): ActorCell | undefined {
    return this.#cells.get(id);
  }

  /** All live children. */
  cells(): IterableIterator<ActorCell> {
    return this.#cells.values();
  }

  /** Children given up on after too many crashes, with the last error. */
  quarantined(): ReadonlyMap<string, { cell: ActorCell; error: string }> {
    return this.#quarantined;
  }

  /** Starts a child from `input`, or from a persisted `snapshot`. */
  spawn(
    id: string,
    logic: AnyStateMachine,
    init: { input?: unknown; snapshot?: Snapshot<unknown> },
  ): ActorCell {
    if (this.#cells.has(id)) {
      throw new RangeError(`Cannot spawn "${id}" under "${this.name}": it already exists`);
    }
    const cell = new ActorCell(id, logic, {
      onEffect: (c, effect) => this.#onEffect(c, effect),
      ...(init.input === undefined ? {} : { input: init.input }),
      ...(init.snapshot === undefined ? {} : { snapshot: init.snapshot }),
    });
    this.#cells.set(id, cell);
    if (init.snapshot !== undefined) this.#options.onRestored?.(cell);
    return cell;
  }

  /** Stops and forgets a child (a finished job, say). */
  retire(id: string): void {
    this.#cells.get(id)?.stop();
    this.#cells.delete(id);
    this.#restarts.delete(id);
  }

  /** Delivers an event to a child and supervises the outcome. */
  deliver(id: string, event: { type: string }): DeliveryOutcome {
    const cell = this.#cells.get(id);
    if (cell === undefined) {
      const q = this.#quarantined.get(id);
      return q
        ? rejected("crashed_actor", `actor "${id}" is quarantined after: ${q.error}`)
        : rejected("no_actor", `no actor "${id}"`);
    }
    const outcome = cell.deliver(event);
    if (outcome.status === "crashed") this.#childCrashed(cell, outcome.error, event.type);
    return outcome;
  }

  #childCrashed(cell: ActorCell, error: unknown, eventType: string): void {
    const now = this.#options.now();
    const recent = (this.#restarts.get(cell.id) ?? []).filter((t) =>
      now - t < this.#intensity.withinMs
    );
    if (recent.length < this.#intensity.maxRestarts) {
      recent.push(now);
      this.#restarts.set(cell.id, recent);
      cell.restart();
      this.#options.onRestored?.(cell);
      this.#options.onSupervision?.({
        type: "restarted",
        supervisor: this.name,
        actor: cell.id,
        error: message(error),
        event: eventType,
      });
      return;
    }
    this.#cells.delete(cell.id);
    this.#restarts.delete(cell.id);
    this.#quarantined.set(cell.id, { cell, error: message(error) });
    this.#options.onSupervision?.({
      type: "quarantined",
      supervisor: this.name,
      actor: cell.id,
      error: message(error),
    });
    this.#escalate(
      new EscalationError(
        this.name,
        `Actor "${cell.id}" crashed more than ${this.#intensity.maxRestarts} times within ${this.#intensity.withinMs} ms: ${
          message(error)
        }`,
        { cause: error },
      ),
    );
  }

  #escalate(error: EscalationError): void {
    const parent = this.#options.parent;
    if (parent === undefined) {
      this.#options.onSupervision?.({ type: "fatal", supervisor: this.name, error: error.message });
      return;
    }
    this.#options.onSupervision?.({
      type: "escalated",
      supervisor: this.name,
      to: parent.name,
      error: error.message,
    });
    parent.#childSupervisorFailed(this, error);
  }

  #childSupervisorFailed(child: Supervisor, error: EscalationError): void {
    const now = this.#options.now();
    const key = `supervisor:${child.name}`;
    const recent = (this.#restarts.get(key) ?? []).filter((t) =>
      now - t < this.#intensity.withinMs
    );
    if (recent.length < this.#intensity.maxRestarts) {
      recent.push(now);
      this.#restarts.set(key, recent);
      child.restartAll();
      return;
    }
    this.#escalate(
      new EscalationError(
        this.name,
        `Supervisor "${child.name}" escalated more than ${this.#intensity.maxRestarts} times within ${this.#intensity.withinMs} ms: ${error.message}`,
        { cause: error },
      ),
    );
  }

  /** Restarts every child from its last persisted snapshot (what a parent does on escalation). */
  restartAll(): void {
    for (const cell of this.#cells.values()) {
      cell.restart();
      this.#options.onRestored?.(cell);
    }
    this.#restarts.clear();
    for (const child of this.#children.values()) child.restartAll();
    this.#options.onSupervision?.({
      type: "supervisor.restarted",
      supervisor: this.name,
      children: this.#cells.size,
    });
  }

  /** Stops every child and child supervisor. */
  stopAll(): void {
    for (const cell of this.#cells.values()) cell.stop();
    this.#cells.clear();
    for (const child of this.#children.values()) child.stopAll();
  }
}
