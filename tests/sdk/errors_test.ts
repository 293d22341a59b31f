/**
 * `InferenceError.reason` through the SDK on a small market: an input the workers' executor
 * refuses (with the worker's reason), and a request no worker bids on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InferenceError } from "../../runtime/sdk/mod.ts";
import { market, MLP_HASH } from "./_market.ts";

const base = {
  modelId: MLP_HASH,
  maxPrice: 1_000n,
  maxLatency: 10_000,
  deadlines: { bidWindowMs: 150, executionMs: 4_000, verificationMs: 4_000 },
  maxAttempts: 1,
} as const;

Deno.test("an input the model refuses ends with reason input_refused and the worker's why (chain settlement)", async () => {
  const m = await market({ settlement: "chain" });
  try {
    // Well-formed tensor encoding, but 7 features where the MLP takes 8.
    const input = {
      inputs: { input: { dims: [1, 7], dtype: "float32", data: [1, 2, 3, 4, 5, 6, 7] } },
    } as const;
    await assert.rejects(m.sdk.infer({ ...base, input }), (e: unknown) => {
      assert.ok(e instanceof InferenceError, String(e));
      assert.equal(e.reason, "input_refused");
      assert.equal(e.state, "failed");
      assert.match(e.detail, /^execution failed: .+/);
      return true;
    });
  } finally {
    await m.close();
  }
});

Deno.test("a request no worker can serve ends with reason no_bid", async () => {
  const m = await market({ settlement: "legacy", verifiers: 0 });
  try {
    const input = {
      inputs: { input: { dims: [1, 8], dtype: "float32", data: [1, 2, 3, 4, 5, 6, 7, 8] } },
    } as const;
    // The only worker is a cpu worker: nobody bids on a gpu job.
    await assert.rejects(m.sdk.infer({ ...base, input, hardware: "gpu", verify: false }), {
      name: "InferenceError",
      reason: "no_bid",
      message: /ended expired: no worker bid in 1 auction\(s\)$/,
    });
  } finally {
    await m.close();
  }
});
