/**
 * Hardhat turns every revert into a Solidity stack trace through V8's `Error.prepareStackTrace`,
 * which Deno leaves undefined. Without it Hardhat fails its own invariant (HHE100) instead of
 * throwing the revert: in process the revert data is lost, and `hardhat node` answers the call
 * with a bare JSON-RPC "Internal error" (-32603) and no data, for `eth_call` and `eth_estimateGas`
 * alike. {@link defineV8StackTraceFormat} gives it V8's default format.
 *
 * @module
 */

/**
 * Installs V8's default stack format as `Error.prepareStackTrace` if none is defined; returns
 * whether it installed it. Call it before Hardhat runs its first transaction.
 */
export function defineV8StackTraceFormat(): boolean {
  const errorClass = Error as unknown as { prepareStackTrace?: unknown };
  if (errorClass.prepareStackTrace !== undefined) return false;
  errorClass.prepareStackTrace = (error: Error, frames: readonly unknown[]) =>
    [String(error), ...frames.map((frame) => `    at ${String(frame)}`)].join("\n");
  return true;
}
