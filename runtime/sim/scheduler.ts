/**
 * The seeded scheduler: one queue of tasks in virtual time. It is the clock of every simulated
 * node (it implements the kernel's `Clock`), of the network and of the chain. Tasks due at the
 * same time run in an order drawn from the seed, so one seed explores one interleaving and
 * another seed another. Between two tasks the scheduler lets every promise chain the task
 * started run to its end (a macrotask turn), so async node code runs as far as it can at that
 * virtual instant, and nothing else runs in between: no real timer, no I/O on the simulated path.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type { Clock } from "../kernel/mod.ts";
import { Rng } from "./rng.ts";

/** A scheduled task; the handle `setTimeout` returns. */
export interface Task {
  readonly at: number;
  readonly order: number;
  readonly seq: number;
  readonly label: string;
  readonly fn: () => void | Promise<void>;
  cancelled: boolean;
}

/** Lets every pending promise reaction run: a macrotask turn. */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Options of {@link Scheduler.run}. */
export interface RunOptions {
  /** Stops before the first task due after this virtual time. */
  readonly until: number;
  /** Most tasks run. */
  readonly maxSteps: number;
  /** Called after each task (and its promise chains); returns true to stop. */
  readonly afterStep?: (task: Task, step: number) => boolean | Promise<boolean>;
  /** Real work injected between steps (the determinism test uses it); never changes the run. */
  readonly between?: (step: number) => Promise<void> | void;
}

function before(a: Task, b: Task): boolean {
  return a.at < b.at ||
    (a.at === b.at && (a.order < b.order || (a.order === b.order && a.seq < b.seq)));
}

/** Order values a task's order is drawn from: `at * ORDERS + order` orders as `(at, order)`. */
const ORDERS = 0x10000;

/**
 * A task's heap key: `at * ORDERS + order`. The map from `(at, order)` (an integer time, an order
 * below {@link ORDERS}) to it is strictly increasing, and rounding keeps it non-decreasing, so a
 * smaller key is an earlier task, and only equal keys need {@link before}: the heap compares the
 * keys it keeps beside the tasks and reads a task only on a tie, with the same outcome as
 * `before` on every pair (NaN included: false either way).
 */
function keyOf(task: Task): number {
  return task.at * ORDERS + task.order;
}

/** A virtual-time scheduler driven by one seed. */
export class Scheduler implements Clock {
  readonly rng: Rng;
  readonly #heap: Task[] = [];
  /** {@link keyOf} of each task in {@link Scheduler.#heap}, at the same index. */
  #keys = new Float64Array(1024);
  #now: number;
  #seq = 0;
  #steps = 0;

  constructor(seed: number, start = 0) {
    this.rng = new Rng(seed);
    this.#now = start;
  }

  /** Virtual time, ms. */
  now(): number {
    return this.#now;
  }

  /** Tasks run so far. */
  get steps(): number {
    return this.#steps;
  }

  /** Tasks waiting. */
  get pending(): number {
    return this.#heap.length;
  }

  /** Runs `fn` `ms` from now (the kernel's `Clock`). */
  setTimeout(fn: () => void, ms: number): Task {
    return this.at(this.#now + Math.max(0, ms), fn, "timer");
  }

  clearTimeout(id: unknown): void {
    if (id !== null && typeof id === "object" && "cancelled" in id) (id as Task).cancelled = true;
  }

  /** Runs `fn` at virtual time `at` (not before now). */
  at(at: number, fn: () => void | Promise<void>, label: string): Task {
    const task: Task = {
      at: Math.max(this.#now, Math.ceil(at)),
      order: this.rng.int(0, ORDERS - 1),
      seq: this.#seq++,
      label,
      fn,
      cancelled: false,
    };
    this.#push(task);
    return task;
  }

  /** Runs `fn` `ms` from now. */
  after(ms: number, fn: () => void | Promise<void>, label: string): Task {
    return this.at(this.#now + ms, fn, label);
  }

  /** A promise that resolves `ms` of virtual time from now. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve, "sleep"));
  }

  /** Runs tasks in order until none is left, `until` is passed, or `afterStep` says stop. */
  async run(options: RunOptions): Promise<"idle" | "until" | "steps" | "stopped"> {
    for (;;) {
      const task = this.#pop();
      if (task === undefined) return "idle";
      if (task.cancelled) continue;
      if (task.at > options.until) {
        this.#push(task);
        return "until";
      }
      if (this.#steps >= options.maxSteps) {
        this.#push(task);
        return "steps";
      }
      this.#now = task.at;
      this.#steps++;
      const result = task.fn();
      if (result instanceof Promise) await result;
      await drainMicrotasks();
      if (options.between) await options.between(this.#steps);
      if (options.afterStep && await options.afterStep(task, this.#steps)) return "stopped";
    }
  }

  #push(task: Task): void {
    // Sifted up through a hole, not by swaps (a swap by destructuring makes an array).
    const heap = this.#heap;
    let i = heap.length;
    heap.push(task);
    if (i >= this.#keys.length) {
      const grown = new Float64Array(this.#keys.length * 2);
      grown.set(this.#keys);
      this.#keys = grown;
    }
    const keys = this.#keys;
    const key = keyOf(task);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = keys[parent]!;
      if (!(key < above || (key === above && before(task, heap[parent]!)))) break;
      heap[i] = heap[parent]!;
      keys[i] = above;
      i = parent;
    }
    heap[i] = task;
    keys[i] = key;
  }

  #pop(): Task | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    // `last` sifted down from the root through a hole. Tasks are totally ordered (`seq`), so the
    // order they come out in does not depend on how the heap moves them.
    const keys = this.#keys;
    const n = heap.length;
    const lastKey = keys[n]!;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let m = l;
      let key = keys[l]!;
      if (r < n) {
        const right = keys[r]!;
        if (right < key || (right === key && before(heap[r]!, heap[l]!))) {
          m = r;
          key = right;
        }
      }
      if (!(key < lastKey || (key === lastKey && before(heap[m]!, last)))) break;
      heap[i] = heap[m]!;
      keys[i] = key;
      i = m;
    }
    heap[i] = last;
    keys[i] = lastKey;
    return top;
  }
}
