/**
 * The in-process network's defences under real nodes (a client and a worker settling on a local
 * ledger): a rogue port floods valid `node.health` messages at 100 times the per-sender rate limit
 * while the client runs jobs, then sends malformed bids. Each receiver delivers the flood no more
 * than its budget, the malformed sender is banned by the nodes it annoyed (both ways), and every
 * honest job gets its bid and settles.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { encodeMessage, TOPICS } from "../../protocols/messages.ts";
import { commitmentOf } from "../../runtime/compute/mod.ts";
import { createNode } from "../../runtime/kernel/mod.ts";
import { waitFor } from "./_harness.ts";

const CAPACITY = 20;
const REFILL = 10;
const FLOOD_MS = 2_000;
/** 100 times the sustained rate. */
const RATE = 100 * REFILL;
/** What the flood sends: 100 times the rate for FLOOD_MS (longer on a loaded machine: the budget is
 * computed from the time it really took). */
const TOTAL = (RATE * FLOOD_MS) / 1_000;

Deno.test("adversarial in-process: a flood at 100x the rate limit is held to its budget, malformed bids get the rogue banned, jobs settle", async () => {
  const network = new InProcessNetwork({
    rateLimit: { capacity: CAPACITY, refillPerSecond: REFILL },
    maxRejections: 5,
  });
  const ledger = LocalLedger.open(":memory:");
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    chain: ledger.as("client"),
    capabilityIntervalMs: 0,
  });
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    worker: { hardware: "cpu", stake: 100n },
    capabilityIntervalMs: 0,
  });
  // A bystander that counts what reaches it of the flood: one receiver's view of the budget.
  const observer = network.join("observer");
  const rogue = network.join("rogue");
  let heard = 0;
  observer.subscribe(TOPICS.health, () => "accept", (m) => {
    if (m.from === "rogue") heard++;
  });
  try {
    for (const n of [client, worker]) await n.start();
    await observer.start();
    await rogue.start();
    await client.announceCapabilities();
    await worker.announceCapabilities();

    let sent = 0;
    const started = Date.now();
    // 10 messages every 10 ms: 100 times the rate while the machine keeps up.
    const flood = (async () => {
      while (sent < TOTAL) {
        for (let i = 0; i < RATE / 100; i++) {
          await rogue.publish(
            TOPICS.health,
            encodeMessage(TOPICS.health, {
              type: "node.health",
              node: "rogue",
              at: sent++,
              openJobs: 0,
            }),
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const input = { a: [[1, 2]], b: [[3], [4]] };
    const ids = [0, 1, 2].map((i) =>
      client.submitJob({
        jobId: `honest-${i}`,
        spec: {
          kind: { type: "builtin", name: "matmul" },
          input,
          inputCommitment: commitmentOf(input),
          requirements: { hardware: "cpu", minStake: 10n },
          maxPrice: 100n,
          bidWindowMs: 2_000,
          executionMs: 10_000,
          verificationMs: 10_000,
          maxAttempts: 2,
          verifierCount: 0,
        },
      })
    );
    await flood;
    const elapsedS = (Date.now() - started) / 1_000;
    // Burst plus refill over the flood's time (and a second of slack for the last deliveries).
    const budget = CAPACITY + REFILL * (elapsedS + 1);
    assert.ok(heard <= budget, `${heard} flood messages delivered, budget ${budget.toFixed(0)}`);
    assert.ok(heard >= CAPACITY, `the first ${CAPACITY} passed (${heard})`);
    assert.ok(network.stats.rateLimited >= sent - budget, JSON.stringify(network.stats));
    assert.equal(network.isBanned("w1", "rogue"), false, "a flood is ignored, not penalised");

    // Malformed bids: each rejected by the nodes' own boundary, the sixth gets the rogue banned.
    await new Promise((r) => setTimeout(r, 2_000)); // tokens back for the malformed bids
    for (let i = 0; i < 6; i++) {
      // Bids are direct messages (protocol v2): sent to the worker, they meet its boundary.
      await rogue.send("w1", TOPICS.bids, new TextEncoder().encode(`{not json ${i}`));
    }
    await waitFor("the rogue's ban at the worker", () => network.isBanned("w1", "rogue"));
    assert.equal(worker.stats.wireRejected, 6);
    assert.ok(!rogue.peers().includes("w1"), "the ban cuts the pair both ways");

    for (const id of ids) {
      await waitFor(`job ${id} to finish`, () => {
        const job = client.job(id);
        return job === undefined || job.done;
      }, 30_000);
      const job = client.job(id);
      const state = job?.state ?? client.retiredJob(id)?.state;
      assert.equal(state, "settled", `job ${id}: ${JSON.stringify(job?.context.path)}`);
    }
  } finally {
    await client.stop();
    await worker.stop();
    await observer.stop();
    await rogue.stop();
    ledger.close();
  }
});
