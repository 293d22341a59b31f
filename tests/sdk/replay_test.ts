/**
 * A job's priority is part of its spec, so it is journaled with the submission and comes back
 * when a crashed client node recovers from its SQLite journal (`openDurableNode`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { type DurableNode, openDurableNode } from "../../runtime/durability/mod.ts";
import { createClient } from "../../runtime/sdk/mod.ts";
import { INPUT, MLP_HASH } from "./_market.ts";

function open(dir: string, ledger: LocalLedger): Promise<DurableNode> {
  return openDurableNode({
    id: "client",
    roles: ["client"],
    network: new InProcessNetwork().join("client"),
    chain: ledger.as("client"),
    dataDir: `${dir}/client`,
    checkpointEvery: 1_000,
    capabilityIntervalMs: 0,
  });
}

Deno.test("a job's priority is journaled with its spec and restored after a crash", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-sdk-replay-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  try {
    const first = await open(dir, ledger);
    await first.start();
    const sdk = createClient(first.node);
    const spec = sdk.specFor({
      modelId: MLP_HASH,
      input: INPUT,
      maxPrice: 1_000n,
      maxLatency: 120_000,
      priority: "low",
      verify: false,
    });
    // Low priority: 20 % of the budget, capped at 1 s. No workers: the job waits in its window.
    assert.equal(spec.bidWindowMs, 1_000);
    first.node.submitJob({ jobId: "j1", spec });
    for (let i = 0; i < 200 && first.node.job("j1")?.state !== "bidding"; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(first.node.job("j1")?.state, "bidding");
    // The crash: nothing more reaches the journal.
    first.journal.abandon();
    await first.node.stop();

    const second = await open(dir, ledger);
    try {
      assert.ok(second.replayed > 0, "the journal's tail was replayed");
      const restored = second.node.job("j1");
      assert.equal(restored?.context.spec.priority, "low");
      assert.equal(restored?.context.spec.bidWindowMs, 1_000);
    } finally {
      await second.node.stop();
    }
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});
