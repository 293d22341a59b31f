/**
 * What `priority` buys, through the SDK on a small market: the bid window derived from the
 * latency budget (halved for high, doubled for low), recorded in the job spec every node sees;
 * and a worker at its limits serving the jobs it declined as busy by priority, then arrival.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseJobRequest } from "../../runtime/ops/mod.ts";
import {
  InferenceError,
  type InferenceProgress,
  type InferResult,
  PRIORITY_BID_WINDOW,
} from "../../runtime/sdk/mod.ts";
import { INPUT, market, MLP_HASH } from "./_market.ts";

const base = { modelId: MLP_HASH, input: INPUT, maxPrice: 1_000n, verify: false } as const;

Deno.test("priority sets the bid window from the latency budget and is recorded in the spec the workers see", async () => {
  const m = await market({ settlement: "legacy", verifiers: 0 });
  try {
    const windows = (maxLatency: number) =>
      (["high", "normal", "low"] as const).map((priority) =>
        m.sdk.specFor({ ...base, maxLatency, priority }).bidWindowMs
      );
    assert.deepEqual(windows(4_000), [200, 400, 800]);
    // The ceilings: 250, 500 and 1,000 ms.
    assert.deepEqual(windows(60_000), [250, 500, 1_000]);
    assert.deepEqual(PRIORITY_BID_WINDOW.normal, { share: 0.1, maxMs: 500 });
    // Left out, the spec has no priority (normal), as before the field existed.
    assert.equal(m.sdk.specFor({ ...base, maxLatency: 4_000 }).priority, undefined);
    assert.throws(
      () => m.sdk.specFor({ ...base, maxLatency: 4_000, priority: "urgent" as "high" }),
      {
        name: "RangeError",
        message: 'Invalid priority "urgent": expected "low", "normal" or "high"',
      },
    );

    // The priority travels in the announced spec (the wire schema accepts it) and is run.
    const result = await m.sdk.infer({ ...base, maxLatency: 4_000, priority: "high" });
    assert.equal(m.nodes.get("w1")!.job(result.jobId)?.context.spec.priority, "high");
    assert.equal(m.client.job(result.jobId)?.context.spec.bidWindowMs, 200);
    assert.equal(result.confidence.outcome, "unverified");
    assert.deepEqual([result.confidence.n, result.confidence.share], [0, 1]);
  } finally {
    await m.close();
  }
});

Deno.test("POST /jobs accepts a priority and names a bad one", () => {
  const spec = { kind: { type: "builtin", name: "matmul" }, input: { a: [[1]], b: [[1]] } };
  const ok = parseJobRequest({ spec: { ...spec, maxPrice: 10, priority: "low" } });
  assert.equal(ok.spec.priority, "low");
  assert.throws(() => parseJobRequest({ spec: { ...spec, maxPrice: 10, priority: "urgent" } }), {
    message: /^Invalid job request "spec.priority"/,
  });
});

Deno.test("a worker at capacity bids on the high-priority job it declined as busy before an older low-priority one", async () => {
  // One worker, one job at a time and one open bid: while it holds job A, it declines L (low)
  // then H (high) as busy; when A is done it bids on H first, and L's window closes bidless.
  const m = await market({
    settlement: "legacy",
    verifiers: 0,
    workers: { w1: { capacity: 1, maxOpenBids: 1 } },
  });
  try {
    const started = performance.now();
    const a = m.sdk.infer({ ...base, maxLatency: 10_000, deadlines: { bidWindowMs: 100 } });
    // Wait for the worker's bid on A (bounded).
    for (let i = 0; i < 200 && !m.client.jobs().some((j) => j.bids > 0); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const assignedAt: Record<string, number> = {};
    const job = (priority: "low" | "high") =>
      m.sdk.infer({
        ...base,
        priority,
        maxLatency: 10_000,
        maxAttempts: 1,
        // Equal windows, long enough for A to run: only the queue order differs.
        deadlines: { bidWindowMs: 3_000, executionMs: 3_000 },
        onProgress: (p: InferenceProgress) => {
          if (p.phase === "executing") assignedAt[priority] ??= performance.now() - started;
        },
      }).then((r): InferResult | InferenceError => r, (e) => e);
    const low = job("low"); // arrives first
    const high = job("high");
    assert.equal((await a).confidence.outcome, "unverified");
    const [l, h] = await Promise.all([low, high]);
    assert.ok(!(h instanceof Error), `high: ${h instanceof Error ? h.message : ""}`);
    assert.equal(h.worker, "w1");
    assert.ok(l instanceof InferenceError, "the low-priority job got no bid");
    assert.equal(l.reason, "no_bid");
    assert.match(l.message, /ended expired: no worker bid in 1 auction\(s\)$/);
    assert.ok(assignedAt.high !== undefined && assignedAt.low === undefined);
    console.log(`time to assignment: high ${assignedAt.high.toFixed(0)} ms, low never`);
  } finally {
    await m.close();
  }
});
