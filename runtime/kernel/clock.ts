/**
 * Clocks. The runtime reads time only through a {@link Clock}; machines never read it at all
 * (the inbox stamps each event with the clock's time). XState's `SimulatedClock` satisfies the
 * interface, so tests and replay drive time with `increment(ms)`.
 *
 * The wall clock's timers are a {@link TimerHeap}: a node arms about six deadlines a job and
 * cancels most of them, and one host timer for the earliest of them costs less than one each.
 * Virtual clocks (XState's `SimulatedClock`, the simulator's scheduler) keep their own timers.
 *
 * @module
 */
import { SimulatedClock } from "xstate";

/** The clock interface: XState's `Clock` plus `now()`. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** A timer of a {@link TimerHeap}: its handle. */
interface HeapTimer {
  /** When it is due, on the host's clock. */
  readonly due: number;
  /** Arming order: timers due at the same time fire in the order they were armed. */
  readonly seq: number;
  readonly fn: () => void;
  /** Its place in the heap; -1 once it fired or was cancelled. */
  index: number;
}

/** The longest host timer (2^31 - 1 ms, about 24.8 days): a longer one fires at once. */
const MAX_HOST_WAIT_MS = 2 ** 31 - 1;

function earlier(a: HeapTimer, b: HeapTimer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

/**
 * Timers kept in a binary heap ordered by due time (then arming order), over one timer of a
 * host clock armed for the earliest of them. Arming and cancelling cost a heap operation, not a
 * host timer; when the host timer fires, every timer due by then that was armed before it fired
 * runs, in order (a timer armed meanwhile waits for the next turn, even with a delay of 0, as a
 * host timer would). A callback that throws does not stop the others: the first error is thrown
 * again once they ran and the host timer is armed for what remains. With no timer left the host
 * timer is cleared, so a heap holds a process open exactly when one of its timers is pending.
 *
 * Unlike separate host timers, the callbacks due at one firing run back to back, without the
 * microtasks one queues running before the next.
 *
 * ```ts
 * import { SimulatedClock, TimerHeap } from "./clock.ts";
 *
 * const host = new SimulatedClock();
 * const heap = new TimerHeap(host);
 * const fired: string[] = [];
 * heap.setTimeout(() => fired.push("b"), 20);
 * const a = heap.setTimeout(() => fired.push("a"), 10);
 * heap.clearTimeout(a);
 * host.increment(20);
 * console.assert(fired.join() === "b");
 * ```
 */
export class TimerHeap implements Clock {
  readonly #host: Clock;
  readonly #slackMs: number;
  readonly #heap: HeapTimer[] = [];
  #seq = 0;
  /** The host timer and when it is due, if armed. */
  #hostTimer: unknown = undefined;
  #hostDue = Infinity;
  readonly #fire = () => this.#run();

  /**
   * Timers on `host`'s clock: its `now()` (ms, not going back) and one of its timers at a time.
   * `options.slackMs`: a timer due within that much of the host timer's firing runs with it (a
   * host whose timers fire up to a millisecond early by its `now()`, as the runtime's do, would
   * otherwise need a second host timer for the rest). @default 0
   */
  constructor(host: Clock, options: { readonly slackMs?: number } = {}) {
    const slackMs = options.slackMs ?? 0;
    if (!(slackMs >= 0 && slackMs < Infinity)) {
      throw new RangeError(`Invalid slackMs ${slackMs}: must be a finite number, 0 or more`);
    }
    this.#host = host;
    this.#slackMs = slackMs;
  }

  /** The host's time. */
  now(): number {
    return this.#host.now();
  }

  /** Timers pending. */
  get size(): number {
    return this.#heap.length;
  }

  /** Runs `fn` once `ms` have passed on the host's clock (a negative or NaN `ms` is 0). */
  setTimeout(fn: () => void, ms: number): unknown {
    const timer: HeapTimer = {
      due: this.#host.now() + (ms > 0 ? ms : 0),
      seq: this.#seq++,
      fn,
      index: this.#heap.length,
    };
    this.#heap.push(timer);
    this.#up(timer.index);
    if (timer.index === 0) this.#arm();
    return timer;
  }

  /** Cancels a timer this heap armed; anything else (a fired timer, undefined) is ignored. */
  clearTimeout(id: unknown): void {
    const timer = id as HeapTimer | undefined;
    if (
      timer === null || typeof timer !== "object" || typeof timer.index !== "number" ||
      timer.index < 0 || this.#heap[timer.index] !== timer
    ) return;
    this.#remove(timer.index);
    // The host timer stays armed for an earlier time (it finds nothing due and arms again),
    // unless nothing is left to wait for.
    if (this.#heap.length === 0) this.#disarm();
  }

  #run(): void {
    this.#hostTimer = undefined;
    this.#hostDue = Infinity;
    const now = this.#host.now() + this.#slackMs;
    const armedBefore = this.#seq;
    let failed = false;
    let error: unknown;
    try {
      for (let top = this.#heap[0]; top !== undefined; top = this.#heap[0]) {
        if (top.due > now || top.seq >= armedBefore) break;
        this.#remove(0);
        try {
          top.fn();
        } catch (e) {
          if (!failed) error = e;
          failed = true;
        }
      }
    } finally {
      this.#arm();
    }
    if (failed) throw error;
  }

  /** Arms the host timer for the earliest timer, unless it is armed for that time or earlier. */
  #arm(): void {
    const top = this.#heap[0];
    if (top === undefined) return this.#disarm();
    if (this.#hostTimer !== undefined && this.#hostDue <= top.due) return;
    this.#disarm();
    this.#hostDue = top.due;
    // A host timer longer than the host allows would fire at once: it fires at the longest,
    // finds nothing due, and is armed again.
    const wait = Math.min(MAX_HOST_WAIT_MS, top.due - this.#host.now());
    this.#hostTimer = this.#host.setTimeout(this.#fire, wait);
  }

  #disarm(): void {
    if (this.#hostTimer === undefined) return;
    this.#host.clearTimeout(this.#hostTimer);
    this.#hostTimer = undefined;
    this.#hostDue = Infinity;
  }

  #remove(index: number): void {
    const heap = this.#heap;
    const removed = heap[index]!;
    removed.index = -1;
    const last = heap.pop()!;
    if (index === heap.length) return;
    heap[index] = last;
    last.index = index;
    if (index > 0 && earlier(last, heap[(index - 1) >> 1]!)) this.#up(index);
    else this.#down(index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    const timer = heap[index]!;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex]!;
      if (!earlier(timer, parent)) break;
      heap[index] = parent;
      parent.index = index;
      index = parentIndex;
    }
    heap[index] = timer;
    timer.index = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const timer = heap[index]!;
    const n = heap.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && earlier(heap[right]!, heap[left]!) ? right : left;
      if (!earlier(heap[child]!, timer)) break;
      heap[index] = heap[child]!;
      heap[index]!.index = index;
      index = child;
    }
    heap[index] = timer;
    timer.index = index;
  }
}

/**
 * The host's own timers, on its monotonic clock: what the wall clock's {@link TimerHeap} uses.
 * The wait is rounded up to whole milliseconds: the runtime truncates a fractional delay, and its
 * timer then fires before the due time by `performance.now()` (by up to 0.9 ms in a quarter of
 * the firings, measured by review).
 */
const hostTimers: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, Math.ceil(ms))),
  clearTimeout: (id) => clearTimeout(id as number),
};

/**
 * The wall clock's timers: one host timer for the earliest of them. No slack: a deadline never
 * runs before its time, because the chain judges the same deadline by its own clock (a refund
 * 1 ms early is refused, `deadline_not_passed`, and the job waits in `refunding`).
 */
const wallTimers = new TimerHeap(hostTimers);

/** The wall clock: `Date.now()`, its timers in one {@link TimerHeap} on the monotonic clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => wallTimers.setTimeout(fn, ms),
  clearTimeout: (id) => wallTimers.clearTimeout(id),
};

/** A clock moved by hand (XState's `SimulatedClock`), starting at `start`. */
export function simulatedClock(start = 0): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(start);
  return clock;
}

export { SimulatedClock };
