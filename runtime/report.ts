/**
 * Reports (stub).
 *
 * @module
 */
import type { Recording } from "./recording.ts";
import type { ReplayReport } from "./replay.ts";
/** Stub. */
export function writeReports(
  _r: Recording,
  _dir: string,
  _o: { replayed?: ReplayReport } = {},
): Promise<string[]> {
  return Promise.resolve([]);
}
