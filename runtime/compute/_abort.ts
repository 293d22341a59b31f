/**
 * Private helpers of the compute package: a promise that settles with `promise`, or rejects
 * with the signal's reason as soon as `signal` aborts (the work itself may go on); and a signal
 * that aborts with the first of several, undone when the work is over.
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

/**
 * A signal that aborts when the first of `signals` does, with its reason, until `dispose`:
 * `AbortSignal.any` without its cost. That one registers each signal it makes with every source
 * for as long as the source lives (a weak reference and a finalization record each), and a
 * worker's pool and node signals live as long as the node: in the 1000-worker simulator those
 * records were three quarters of the live heap.
 */
export function linkedSignal(
  signals: readonly AbortSignal[],
): { readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const aborted = signals.find((s) => s.aborted);
  if (aborted !== undefined) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, dispose: () => {} };
  }
  const listeners = signals.map((source) => {
    const onAbort = () => controller.abort(source.reason);
    source.addEventListener("abort", onAbort, { once: true });
    return () => source.removeEventListener("abort", onAbort);
  });
  return {
    signal: controller.signal,
    dispose: () => {
      for (const remove of listeners) remove();
    },
  };
}
