/**
 * The calling thread's CPU time (`process.threadCpuUsage()`, to the kernel's tick: 10 ms here),
 * and, where Linux's `/proc/thread-self/schedstat` can be read (Deno opens `/proc` only with
 * `--allow-all`), how long it was ready to run but waited for a core. Over a run, the wall time
 * the main thread was off the CPU tells a process that waits on another (a chain's answers, a
 * timer) from one that is busy; the time queued tells, of that, what the host's other load (or
 * the process's own other threads) took.
 *
 * @module
 */
import process from "node:process";

/** A thread's time so far, ms. */
export interface ThreadTime {
  /** On a CPU (user and system). */
  readonly cpuMs: number;
  /** Ready to run, waiting for a CPU; absent where it cannot be read. */
  readonly queuedMs?: number;
}

/** Where a thread's wall time went between two readings, ms. */
export interface ThreadShare {
  /** On a CPU. */
  readonly cpuMs: number;
  /** Not on a CPU: idle (nothing to do) or queued (ready, waiting for a core). */
  readonly offCpuMs: number;
  /** Of `offCpuMs`, ready but waiting for a core; absent where it cannot be read. */
  readonly queuedMs?: number;
}

/** The calling thread's {@link ThreadTime}. */
export function threadTime(): ThreadTime {
  const { user, system } = process.threadCpuUsage();
  const cpuMs = (user + system) / 1000;
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/thread-self/schedstat");
  } catch {
    return { cpuMs };
  }
  const queuedMs = parseSchedstat(text)?.queuedMs;
  return queuedMs === undefined ? { cpuMs } : { cpuMs, queuedMs };
}

/**
 * `schedstat`'s text (`<ns on a CPU> <ns queued> <time slices>`), ms; undefined if it is not
 * that.
 */
export function parseSchedstat(text: string): { runMs: number; queuedMs: number } | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 3 || !fields.every((f) => /^\d{1,19}$/.test(f))) return undefined;
  return { runMs: Number(fields[0]) / 1e6, queuedMs: Number(fields[1]) / 1e6 };
}

/** Where a thread's `wallMs` between readings `before` and `after` went. */
export function threadShare(before: ThreadTime, after: ThreadTime, wallMs: number): ThreadShare {
  const cpuMs = Math.round(after.cpuMs - before.cpuMs);
  const offCpuMs = Math.max(0, Math.round(wallMs) - cpuMs);
  return before.queuedMs === undefined || after.queuedMs === undefined
    ? { cpuMs, offCpuMs }
    : { cpuMs, offCpuMs, queuedMs: Math.round(after.queuedMs - before.queuedMs) };
}
