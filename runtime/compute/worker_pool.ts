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
import { abortable, linkedSignal } from "./_abort.ts";

/** Options of {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Tasks running at once. @default 2 */
  readonly concurrency?: number;
  /** Tasks waiting for a slot; more are refused with {@link PoolFullError}. @default 16 */
  readonly maxQueued?: number;
  /**
   * The timers deadlines are measured with (a simulation passes its virtual clock).
   * @default the wall clock (`AbortSignal.timeout`)
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
   */
  async run<T>(
    task: (signal: AbortSignal) => Promise<T>,
    options: PoolRunOptions = {},
  ): Promise<T> {
    const signals = [this.#closing.signal];
    if (options.signal) signals.push(options.signal);
    let timer: { id: unknown } | undefined;
    if (options.timeoutMs !== undefined) {
      if (!(options.timeoutMs >= 0)) {
        throw new RangeError(
          `Invalid timeoutMs: expected a non-negative number, got ${options.timeoutMs}`,
        );
      }
      const ms = Math.ceil(options.timeoutMs);
      const clock = this.#clock;
      if (clock === undefined) signals.push(AbortSignal.timeout(ms));
      else {
        const deadline = new AbortController();
        timer = {
          id: clock.setTimeout(
            () =>
              deadline.abort(
                new DOMException(`The task passed its deadline of ${ms} ms`, "TimeoutError"),
              ),
            ms,
          ),
        };
        signals.push(deadline.signal);
      }
    }
    const linked = linkedSignal(signals);
    try {
      return await this.#run(task, linked.signal, options.pastLimit === true);
    } finally {
      linked.dispose();
      if (timer !== undefined) this.#clock!.clearTimeout(timer.id);
    }
  }

  async #run<T>(
    task: (signal: AbortSignal) => Promise<T>,
    signal: AbortSignal,
    pastLimit: boolean,
  ): Promise<T> {
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
            signal.removeEventListener("abort", onAbort);
            resolve();
          },
          fail: reject,
        };
        const onAbort = () => {
          const i = this.#queue.indexOf(entry);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        this.#queue.push(entry);
      });
    } else {
      this.#running++;
    }
    try {
      signal.throwIfAborted();
      return await abortable(task(signal), signal);
    } finally {
      const next = this.#queue.shift();
      if (next) next.start(); // the slot passes on: #running stays
      else this.#running--;
    }
  }

  /** Aborts every running task and refuses the queued ones. */
  close(reason: unknown = new Error("The worker pool is closed")): void {
    this.#closing.abort(reason);
    for (const waiting of this.#queue.splice(0)) waiting.fail(reason);
  }
}
