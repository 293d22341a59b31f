/** The demo's market over real libp2p hosts on loopback (one host per node, in one process). */
import assert from "node:assert/strict";
import { runDemo } from "../runtime/demo/demo.ts";

Deno.test({
  name: "runDemo() over libp2p finishes every job and conserves money",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const summary = await runDemo({
      network: "libp2p",
      jobs: 6,
      workers: 5,
      verifiers: 4,
      concurrency: 3,
      ledgerPath: ":memory:",
      timeoutMs: 90_000,
    });
    const finished = Object.values(summary.byState).reduce((a, b) => a + b, 0);
    assert.equal(finished, 6, JSON.stringify(summary.byState));
    assert.ok(summary.moneyConserved && summary.stakeConserved);
    assert.equal(summary.totals.locked, 0n);
    assert.ok(summary.totals.escrowed > 0n);
    assert.ok(
      (summary.byState["settled"] ?? 0) + (summary.byState["refunded"] ?? 0) > 0,
      JSON.stringify(summary.byState),
    );
  },
});
