/**
 * A private helper of the compute package: a promise that settles with `promise`, or rejects
 * with the signal's reason as soon as `signal` aborts (the work itself may go on).
 *
 * @module
 */

/** `promise`, or the abort reason of `signal` if it aborts first (no signal: `promise`). */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
