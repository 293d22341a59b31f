/**
 * One multi-process market at a time. The suite runs test files in parallel (`deno test
 * --parallel`, one worker per core); the tests that start markets of separate processes (node
 * processes, a crash fixture, an EVM node) keep wall-clock deadlines, and two of them side by
 * side oversubscribe a 2-core machine several times over. Each takes this machine-wide lock
 * first, so they run one after another while the light tests fill the other core:
 *
 * ```ts ignore
 * Deno.test("a market of processes", async () => {
 *   await using _market = await processMarketLock();
 *   // start the processes
 * });
 * ```
 *
 * The lock is an advisory file lock, released when the test ends (or its process dies).
 *
 * @module
 */

const LOCK_PATH = `${Deno.env.get("TMPDIR") ?? "/tmp"}/ciro-process-market.lock`;

/** Waits for the machine-wide lock of multi-process tests; dispose it to release. */
export async function processMarketLock(): Promise<AsyncDisposable> {
  const file = await Deno.open(LOCK_PATH, { create: true, write: true });
  await file.lock(true);
  return {
    async [Symbol.asyncDispose]() {
      await file.unlock().catch(() => {});
      file.close();
    },
  };
}
