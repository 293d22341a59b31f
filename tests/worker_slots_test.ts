/**
 * `worker.reserveSlots`: each open bid holds one of the worker's `capacity` slots, so a worker
 * never wins more jobs than it can run at once (the scale scenario's workers, whose work takes
 * seconds, bid this way). Real nodes on the in-process network and the local ledger; the owner
 * is a bare port that counts the bids sent to it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { announcementTopic, encodeMessage, shardOf, TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";
import { until } from "./_poll.ts";

async function bidsOn(reserveSlots: boolean): Promise<{ bids: number; busy: number }> {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const owner = network.join("owner");
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    capabilityIntervalMs: 0,
    worker: { hardware: "cpu", stake: 100n, capacity: 2, maxOpenBids: 8, reserveSlots },
  });
  let bids = 0;
  owner.subscribe(TOPICS.bids, () => "accept", () => bids++);
  try {
    await worker.start();
    await owner.start();
    // Three jobs at once, with long windows: two slots.
    for (const jobId of ["j1", "j2", "j3"]) {
      const s = spec({ bidWindowMs: 30_000, verifierCount: 0 });
      await owner.publish(
        announcementTopic(shardOf(s)),
        encodeMessage(TOPICS.jobs, {
          type: "job.announce",
          jobId,
          owner: "owner",
          attempt: 1,
          bidWindowEndsAt: Date.now() + 30_000,
          spec: s,
        } as never),
      );
    }
    const busy = () => [...worker.tree.declines()].filter((d) => d.reason === "busy").length;
    await until("the worker's answers", 10_000, () => bids + busy() >= 3 ? true : undefined);
    return { bids, busy: busy() };
  } finally {
    await worker.stop();
    await owner.stop();
    ledger.close();
  }
}

Deno.test("a worker that reserves slots bids on no more jobs than it can run at once", async () => {
  assert.deepEqual(await bidsOn(true), { bids: 2, busy: 1 });
  // Without: it bids on all three (up to maxOpenBids), and could win more than it can run.
  assert.deepEqual(await bidsOn(false), { bids: 3, busy: 0 });
});
