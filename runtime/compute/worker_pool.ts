/**
 * A bounded execution pool: at most `concurrency` tasks run at once, at most `maxQueued` wait,
 * and every task gets an `AbortSignal` that fires at its deadline, when its caller aborts, or
 * when the pool closes. A worker node runs its executions and re-executions through one, so a
 * burst of jobs queues instead of oversubscribing the CPU, and a job past its deadline stops.
 *
 * ```ts
 * import { WorkerPool } from "./worker_pool.ts";
 *
 * const pool = new WorkerPool({ concurrency: 1, maxQueued: 4 });
 * const value = await pool.run((signal) => Promise.resolve(signal.aborted ? 0 : 42), {
 *   timeoutMs: 1_000,
 * });
 * console.assert(value === 42);
 * ```
 *
 * @module
 */

/** The longest wait the host's `setTimeout` takes, ms (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Tasks running at once. @default 2 */
  readonly concurrency?: number;
  /** Tasks waiting for a slot; more are refused with {@link PoolFullError}. @default 16 */
  readonly maxQueued?: number;
  /**
   * The timers deadlines are measured with (a simulation passes its virtual clock).
   * @default the wall clock
   */
  readonly clock?: PoolClock;
}

/** The timers a {@link WorkerPool} measures deadlines with. */
export interface PoolClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** Options of {@link WorkerPool.run}. */
export interface PoolRunOptions {
  /** Aborts the task (queued or running). */
  readonly signal?: AbortSignal;
  /** The task's deadline, from now, ms: its signal aborts with a `TimeoutError` then. */
  readonly timeoutMs?: number;
  /**
   * Queue the task even past `maxQueued`: for tasks whose number is bounded elsewhere and that
   * must not be refused (a verifier's re-runs: one per job the chain chose it for, each waiting
   * at most its deadline). @default false
   */
  readonly pastLimit?: boolean;
}

/** The pool's queue is full: the task was refused. */
export class PoolFullError extends Error {
  override readonly name = "PoolFullError";
}

/** A task's own signal, and what waits on it while it is queued or running. */
interface Live {
  readonly controller: AbortController;
  onAbort: ((reason: unknown) => void) | undefined;
}

interface Waiting {
  readonly start: () => void;
  readonly fail: (reason: unknown) => void;
}

/** Runs tasks with bounded concurrency and a bounded queue. */
export class WorkerPool {
  readonly concurrency: number;
  readonly maxQueued: number;
  readonly #queue: Waiting[] = [];
  readonly #closing = new AbortController();
  /** The tasks queued or running, which {@link WorkerPool.close} aborts. */
  readonly #live = new Set<Live>();
  readonly #clock: PoolClock | undefined;
  #running = 0;

  constructor(options: WorkerPoolOptions = {}) {
    const concurrency = options.concurrency ?? 2;
    const maxQueued = options.maxQueued ?? 16;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
      throw new RangeError(`Invalid concurrency: expected a positive integer, got ${concurrency}`);
    }
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 0) {
      throw new RangeError(
        `Invalid maxQueued: expected a non-negative integer, got ${maxQueued}`,
      );
    }
    this.concurrency = concurrency;
    this.maxQueued = maxQueued;
    this.#clock = options.clock;
  }

  /** Tasks running now. */
  get running(): number {
    return this.#running;
  }

  /** Tasks waiting for a slot. */
  get queued(): number {
    return this.#queue.length;
  }

  /**
   * Runs `task` when a slot is free. Rejects with {@link PoolFullError} when the queue is full,
   * and with the abort reason when the caller aborts or the deadline passes while it waits.
   * A running task is told through its signal; the pool does not wait for it to notice.
   *
   * A task's signal is its own controller's: the pool aborts it itself at the deadline or when
   * it closes (it keeps its live tasks), and listens to the caller's signal only while the task is
   * there. Listeners on the node-long signals, or `AbortSignal.any`, cost every task a few event
   * listeners (the 1000-worker simulator's executions: about 2 % of its time).
   */
  async run<T>(
    task: (signal: AbortSignal) => Promise<T>,
    options: PoolRunOptions = {},
  ): Promise<T> {
    let ms: number | undefined;
    if (options.timeoutMs !== undefined) {
      if (!(options.timeoutMs >= 0)) {
        throw new RangeError(
          `Invalid timeoutMs: expected a non-negative number, got ${options.timeoutMs}`,
        );
      }
      ms = Math.ceil(options.timeoutMs);
    }
    const live: Live = { controller: new AbortController(), onAbort: undefined };
    const caller = options.signal;
    if (this.#closing.signal.aborted) this.#abort(live, this.#closing.signal.reason);
    else if (caller?.aborted) this.#abort(live, caller.reason);
    const fromCaller = () => this.#abort(live, caller!.reason);
    let timer: unknown;
    if (!live.controller.signal.aborted) {
      this.#live.add(live);
      caller?.addEventListener("abort", fromCaller, { once: true });
      if (ms !== undefined) {
        const late = () =>
          this.#abort(
            live,
            new DOMException(`The task passed its deadline of ${ms} ms`, "TimeoutError"),
          );
        if (this.#clock !== undefined) timer = this.#clock.setTimeout(late, ms);
        else {
          // The host's timers take at most 2^31 - 1 ms (longer fires at once): wait in steps.
          const wait = (left: number) => {
            timer = left > MAX_TIMER_MS
              ? setTimeout(() => wait(left - MAX_TIMER_MS), MAX_TIMER_MS)
              : setTimeout(late, left);
          };
          wait(ms);
        }
      }
    }
    try {
      return await this.#run(task, live, options.pastLimit === true);
    } finally {
      this.#live.delete(live);
      caller?.removeEventListener("abort", fromCaller);
      if (timer !== undefined) {
        if (this.#clock === undefined) clearTimeout(timer as number);
        else this.#clock.clearTimeout(timer);
      }
    }
  }

  /** Aborts a task's signal with `reason`, and rejects what waits on it (queued or running). */
  #abort(live: Live, reason: unknown): void {
    if (live.controller.signal.aborted) return;
    live.controller.abort(reason);
    live.onAbort?.(reason);
  }

  async #run<T>(
    task: (signal: AbortSignal) => Promise<T>,
    live: Live,
    pastLimit: boolean,
  ): Promise<T> {
    const signal = live.controller.signal;
    signal.throwIfAborted();
    if (this.#running >= this.concurrency) {
      if (this.#queue.length >= this.maxQueued && !pastLimit) {
        throw new PoolFullError(
          `Cannot queue task: ${this.#running} running and ${this.#queue.length} waiting (the limit)`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        const entry: Waiting = {
          start: () => {
            live.onAbort = undefined;
            resolve();
          },
          fail: reject,
        };
        live.onAbort = (reason) => {
          const i = this.#queue.indexOf(entry);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(reason);
        };
        this.#queue.push(entry);
      });
    } else {
      this.#running++;
    }
    try {
      signal.throwIfAborted();
      return await new Promise<T>((resolve, reject) => {
        live.onAbort = reject;
        task(signal).then(resolve, reject);
      });
    } finally {
      live.onAbort = undefined;
      const next = this.#queue.shift();
      if (next) next.start(); // the slot passes on: #running stays
      else this.#running--;
    }
  }

  /** Aborts every running task and refuses the queued ones. */
  close(reason: unknown = new Error("The worker pool is closed")): void {
    this.#closing.abort(reason);
    for (const live of [...this.#live]) this.#abort(live, reason);
    for (const waiting of this.#queue.splice(0)) waiting.fail(reason);
  }
}
