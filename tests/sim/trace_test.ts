/** The run's trace: hashed in batches, the same bytes as line by line. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Trace, TRACE_BATCH } from "../../runtime/sim/mod.ts";

const lineByLine = (lines: readonly string[]) => {
  const hash = createHash("sha256");
  for (const line of lines) hash.update(line + "\n");
  return hash.digest("hex");
};

Deno.test("Trace hashes its lines in batches to the digest of the lines one by one", () => {
  const trace = new Trace({ keepTail: 4 });
  const lines: string[] = [];
  // Across several batch boundaries, with a digest taken in the middle of a batch.
  for (let i = 0; i < TRACE_BATCH * 2 + 7; i++) {
    const line = `${i * 3}|g|worker-${i % 5}>client-01|/ciro/bids/1|${100 + i}|accept`;
    trace.add(line);
    lines.push(line);
    if (i === TRACE_BATCH + 3) assert.equal(trace.digest(), lineByLine(lines));
  }
  assert.equal(trace.digest(), lineByLine(lines));
  assert.equal(trace.lines, lines.length);
  assert.deepEqual(trace.tail(), lines.slice(-4));
  assert.notEqual(trace.digest(), lineByLine(lines.slice(1)), "a line less, another hash");
});
