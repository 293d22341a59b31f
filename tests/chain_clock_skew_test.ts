/**
 * The chain judges a job's deadlines by its own clock (an EVM block's timestamp, another machine's
 * ledger), which may lag the node's: a transaction the chain refuses as early
 * (`deadline_not_passed`) is sent again a while later (`DEADLINE_RETRY_MS`), instead of leaving
 * the job waiting in `refunding` for good.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { ChainError, type ChainPort } from "../chain/port.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { simulatedClock } from "../runtime/kernel/clock.ts";
import { DEADLINE_RETRY_MS } from "../runtime/kernel/effects.ts";
import { createNode } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";

/** `port` whose first `early` refunds are refused as a lagging chain refuses them. */
function lagging(port: ChainPort, early: number): ChainPort & { refunds: number } {
  let refunds = 0;
  return new Proxy(port, {
    get(target, key) {
      if (key === "refunds") return refunds;
      const value = Reflect.get(target, key, target);
      if (key !== "refund" || typeof value !== "function") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (...args: unknown[]) => {
        refunds++;
        if (refunds <= early) {
          return Promise.reject(
            new ChainError("deadline_not_passed", "Cannot refund: its deadline has not passed"),
          );
        }
        return value.apply(target, args);
      };
    },
  }) as ChainPort & { refunds: number };
}

async function expireWith(early: number) {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const clock = simulatedClock(1_000);
  const chain = lagging(ledger.as("client"), early);
  const node = createNode({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    chain,
    clock,
  });
  try {
    // The chain chooses a job's verifiers from the bonded ones: four are registered.
    for (const v of ["v1", "v2", "v3", "v4"]) {
      await ledger.as(v).stake({ amount: 100n, role: "verifier" });
    }
    await node.start();
    const jobId = node.submitJob({ spec: spec({ bidWindowMs: 500 }) });
    // The escrow, then the bid window with no bid: the owner refunds the job as expired.
    for (let i = 0; i < 50 && node.job(jobId)?.state !== "bidding"; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(node.job(jobId)?.state, "bidding", JSON.stringify(node.job(jobId)?.context.path));
    // Past the window, then through every wait of the retry, on the node's clock.
    for (const ms of [600, ...DEADLINE_RETRY_MS, 1_000]) {
      clock.increment(ms);
      for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 10));
    }
    await node.settled();
    return {
      state: node.job(jobId)?.state ?? node.retiredJob(jobId)?.state,
      refunds: chain.refunds,
    };
  } finally {
    await node.stop();
    ledger.close();
  }
}

Deno.test("a refund the chain refuses as early is sent again until the chain's clock has passed the deadline", async () => {
  const { state, refunds } = await expireWith(2);
  assert.equal(refunds, 3, "refused twice, then taken");
  assert.equal(state, "expired");
});

Deno.test("a refund refused as early more times than the retries allow stays the effect's failure", async () => {
  const { state, refunds } = await expireWith(DEADLINE_RETRY_MS.length + 1);
  assert.equal(refunds, DEADLINE_RETRY_MS.length + 1, "sent once and again once per wait");
  assert.notEqual(state, "expired");
});
