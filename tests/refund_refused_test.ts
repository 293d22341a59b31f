/**
 * A client node whose refund the chain refuses for good does not keep the job in `refunding` for
 * ever (job machine version 7): the refusal comes back as `chain.tx.failed`, is recorded as the
 * job's failure, and the job ends `failed` once the grace for the chain to show its ending has
 * passed; where the chain does show the refund within the grace, the job ends as the chain says.
 * A real client node on a real local ledger; the node's clock is virtual.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { ChainError, type ChainPort } from "../chain/port.ts";
import { REFUND_GRACE_MS } from "../machines/job_machine.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode, simulatedClock } from "../runtime/kernel/mod.ts";
import { spec } from "./_drive.ts";
import { until } from "./_poll.ts";

/** `port` whose refunds the chain refuses (`invalid_state`) while `refusing()` says so. */
function refusingRefunds(port: ChainPort, refusing: () => boolean): ChainPort {
  return new Proxy(port, {
    get(target, key) {
      if (key === "refund") {
        return (refund: Parameters<ChainPort["refund"]>[0], options?: never) =>
          refusing()
            ? Promise.reject(
              new ChainError("invalid_state", "Cannot refund as expired: the job is not open"),
            )
            : target.refund(refund, options);
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

for (const landed of [false, true]) {
  Deno.test(
    `a client whose refund the chain refuses ends the job ${
      landed ? "as the chain shows it within the grace" : "failed after the grace"
    }`,
    async () => {
      const ledger = LocalLedger.open(":memory:");
      const clock = simulatedClock(Date.now());
      let refusing = true;
      const client = createNode({
        id: "client",
        roles: ["client"],
        network: new InProcessNetwork().join("client"),
        chain: refusingRefunds(ledger.as("client"), () => refusing),
        clock,
        capabilityIntervalMs: 0,
      });
      try {
        await client.start();
        const jobId = client.submitJob({
          jobId: "j1",
          spec: spec({ bidWindowMs: 1_000, verifierCount: 0 }),
        });
        await until(
          "the escrow locked",
          20_000,
          () => client.job(jobId)?.state === "bidding" || undefined,
        );
        // No bid: the window closes, the refund is sent and refused.
        clock.increment(1_000);
        await until("the refusal", 20_000, () => client.job(jobId)?.context.failure ?? undefined);
        assert.equal(client.job(jobId)?.state, "refunding");
        assert.match(client.job(jobId)!.context.failure!, /chain.refund failed: invalid_state/);
        if (landed) {
          // Another refund (the client's, by hand) lands: the chain's ending, within the grace.
          refusing = false;
          await ledger.as("client").refund({ jobId, reason: "expired" });
          await until(
            "the chain's ending",
            20_000,
            () => client.job(jobId)?.done === true || undefined,
          );
          assert.equal(client.job(jobId)?.state, "expired");
        } else {
          clock.increment(REFUND_GRACE_MS - 1);
          await client.settled();
          assert.equal(client.job(jobId)?.state, "refunding", "not a millisecond early");
          clock.increment(1);
          await until("ended", 20_000, () => client.job(jobId)?.done === true || undefined);
          assert.equal(client.job(jobId)?.state, "failed");
          const totals = await ledger.as("client").totals();
          assert.equal(totals.locked, 100n, "the escrow stays on chain for its client");
        }
      } finally {
        await client.stop();
        ledger.close();
      }
    },
  );
}
