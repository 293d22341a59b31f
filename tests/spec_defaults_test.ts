/**
 * One source for a job spec's defaults: `Node.submitJob` (and so the SDK) and `POST /jobs` fill
 * the fields a client leaves out with the same values, `JOB_SPEC_DEFAULTS`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { createNode, JOB_SPEC_DEFAULTS } from "../runtime/kernel/mod.ts";
import { parseJobRequest } from "../runtime/ops/mod.ts";
import { DEFAULT_VERIFIERS } from "../runtime/sdk/mod.ts";

Deno.test("submitJob and POST /jobs fill a spec's missing fields with the same defaults", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const node = createNode({
    id: "c",
    roles: ["client"],
    network: network.join("c"),
    chain: ledger.as("c"),
    capabilityIntervalMs: 0,
  });
  try {
    await node.start();
    const input = { a: [[1]], b: [[2]] };
    const jobId = node.submitJob({
      jobId: "j1",
      spec: {
        kind: { type: "builtin", name: "matmul" },
        input,
        inputCommitment: commitmentOf(input),
        maxPrice: 100n,
      },
    });
    const submitted = node.job(jobId)!.context.spec;
    const posted = parseJobRequest({
      spec: { kind: { type: "builtin", name: "matmul" }, input, maxPrice: "100" },
    }).spec;
    assert.deepEqual(submitted, posted);
    for (const [key, value] of Object.entries(JOB_SPEC_DEFAULTS)) {
      assert.deepEqual((submitted as unknown as Record<string, unknown>)[key], value, key);
    }
    assert.equal(DEFAULT_VERIFIERS, JOB_SPEC_DEFAULTS.verifierCount, "the SDK's default too");
  } finally {
    await node.stop();
    ledger.close();
  }
});
