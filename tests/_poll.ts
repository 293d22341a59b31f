/**
 * Test helpers for suites that drive nodes: poll until a probe answers, read a node's HTTP API,
 * wait for a job to finish.
 *
 * @module
 */

import type { Node } from "../runtime/kernel/mod.ts";

// deno-lint-ignore no-explicit-any
export type Json = any;

/**
 * Polls `probe` every 100 ms until it returns something other than undefined (a throw counts as
 * not yet); throws after `timeoutMs`, naming `what` and the last error.
 */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `Timed out after ${timeoutMs} ms waiting for ${what}${
      lastError ? `: ${(lastError as Error).message}` : ""
    }`,
  );
}

/** GETs `url` as JSON (5 s at most); a status that is not ok throws with the body. */
export async function get(url: string): Promise<Json> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const body = await response.json();
  if (!response.ok) throw new Error(`${url}: ${response.status} ${JSON.stringify(body)}`);
  return body;
}

/** Resolves with job `jobId`'s final state on `node` (its `job.finished` observation). */
export function finished(node: Node, jobId: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Job "${jobId}" did not finish`)), timeoutMs);
    const stop = node.observe((o) => {
      if (o.type === "job.finished" && o.jobId === jobId) {
        clearTimeout(timer);
        stop();
        resolve(o.state);
      }
    });
  });
}
