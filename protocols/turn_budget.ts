/**
 * A budget of items per turn of the event loop, for work that arrives faster than it should be
 * done in one go. While a turn has budget left, {@link TurnBudget.pace} hands its value back at
 * once; past `perTurn` values, it hands them back only on a later turn (a macrotask), so timers
 * and I/O (the status endpoint, pings, other peers' streams) run in between. A caller that
 * awaits what `pace` returns before it takes its next item (gossipsub with `awaitRpcHandler`,
 * for one) stops there: its backlog waits in its buffers, not in the microtask queue.
 *
 * Why: gossipsub decodes, checks the signature of and validates every message it has read in
 * microtasks, without yielding. Under a flood the backlog of one read kept the event loop busy
 * for seconds (`GET /health` answered after 0.9 to 1.4 s at the median). The budget counts
 * items, not milliseconds: on a machine whose cores are shared, a wall-clock slice ends early
 * whenever the process is descheduled, and the work done per turn (so the rate at which a
 * node gets through its input, and notices a flooder) collapsed with it.
 *
 * ```ts
 * import { TurnBudget } from "./turn_budget.ts";
 *
 * const turns: Array<() => void> = [];
 * const budget = new TurnBudget({ perTurn: 2, schedule: (run) => turns.push(run) });
 * budget.pace("a"); // "a"
 * budget.pace("b"); // "b"
 * budget.pace("c"); // a promise of "c", resolved on the next turn
 * ```
 *
 * @module
 */

/** Options of {@link TurnBudget}. */
export interface TurnBudgetOptions {
  /** Values handed back at once per turn; later ones wait for a later turn. @default 16 */
  readonly perTurn?: number;
  /** Runs a function on a later turn. @default a `setTimeout(run, 0)` (a macrotask) */
  readonly schedule?: (run: () => void) => void;
}

/** Hands values back at once while the turn's budget lasts, on a later turn after it. */
export class TurnBudget {
  readonly perTurn: number;
  readonly #schedule: (run: () => void) => void;
  /** Values handed back in this turn. */
  #used = 0;
  /** Whether a later turn is scheduled (it resets the budget and hands back what waits). */
  #scheduled = false;
  /** What waits for a later turn, first in first out. */
  readonly #waiting: Array<() => void> = [];
  #deferred = 0;

  constructor(options: TurnBudgetOptions = {}) {
    const { perTurn = 16 } = options;
    if (!Number.isSafeInteger(perTurn) || perTurn < 1) {
      throw new RangeError(
        `Cannot create turn budget: perTurn must be a positive integer, got ${perTurn}`,
      );
    }
    this.perTurn = perTurn;
    this.#schedule = options.schedule ?? ((run) => setTimeout(run, 0));
  }

  /**
   * `value` now while the turn's budget lasts and nothing waits; otherwise a promise of `value`
   * handed back on a later turn, after what waited before it (each turn hands back at most
   * `perTurn`, so callers that wait take turns round robin).
   */
  pace<T>(value: T): T | Promise<T> {
    this.#wake();
    if (this.#waiting.length === 0 && this.#used < this.perTurn) {
      this.#used++;
      return value;
    }
    this.#deferred++;
    return new Promise((resolve) => this.#waiting.push(() => resolve(value)));
  }

  /** Values handed back on a later turn since creation. */
  get deferred(): number {
    return this.#deferred;
  }

  /** Values waiting for a later turn now. */
  get waiting(): number {
    return this.#waiting.length;
  }

  #wake(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#schedule(() => this.#turn());
  }

  #turn(): void {
    this.#scheduled = false;
    this.#used = 0;
    while (this.#used < this.perTurn && this.#waiting.length > 0) {
      this.#used++;
      this.#waiting.shift()!();
    }
    if (this.#waiting.length > 0 || this.#used > 0) this.#wake();
  }
}
