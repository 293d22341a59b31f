/**
 * Counterfactual replay (stub).
 *
 * @module
 */
import type { Recording } from "./recording.ts";
/** Stub. */
export function counterfactual(
  _r: Recording,
  _p: string,
  _o: { onProgress?: (m: string) => void } = {},
): Promise<unknown> {
  return Promise.resolve(null);
}
/** Stub. */
export function formatCounterfactual(_r: unknown): string {
  return "";
}
