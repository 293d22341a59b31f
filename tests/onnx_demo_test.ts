/** `deno task demo --onnx` in small: ONNX jobs on a generated MLP through the whole market. */
import assert from "node:assert/strict";
import { runDemo } from "../runtime/demo/demo.ts";

Deno.test("demo --onnx: every job finishes, money and stake are conserved", async () => {
  const summary = await runDemo({
    onnx: true,
    jobs: 6,
    workers: 5,
    verifiers: 4,
    ledgerPath: ":memory:",
    timeoutMs: 60_000,
  });
  const finished = Object.values(summary.byState).reduce((a, b) => a + b, 0);
  assert.equal(finished, 6);
  assert.equal(summary.byState.failed ?? 0, 0);
  // With 5 workers the wrong_result worker (worker-03) bids lowest and wins most jobs: its
  // re-run by the verifiers' ONNX sessions disagrees, so it is disputed and slashed.
  assert.ok(summary.latencyMs.execution.n >= 1);
  assert.ok(summary.disputed >= 1, JSON.stringify(summary.byState));
  assert.equal(summary.slashes.invalid_compute, summary.disputed);
  assert.ok(summary.moneyConserved, JSON.stringify(summary.totals, (_k, v) => String(v)));
  assert.ok(summary.stakeConserved);
  assert.equal(summary.totals.locked, 0n);
});
