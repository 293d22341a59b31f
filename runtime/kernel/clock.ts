/**
 * Clocks. The runtime reads time only through a {@link Clock}; machines never read it at all
 * (the inbox stamps each event with the clock's time). XState's `SimulatedClock` satisfies the
 * interface, so tests and replay drive time with `increment(ms)`.
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

/** The wall clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (id) => clearTimeout(id as number),
};

/** A clock moved by hand (XState's `SimulatedClock`), starting at `start`. */
export function simulatedClock(start = 0): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(start);
  return clock;
}

export { SimulatedClock };
