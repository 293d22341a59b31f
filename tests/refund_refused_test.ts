/**
 * A client node whose refund the chain refuses does not keep the job in `refunding` for ever (job
 * machine version 7): the refusal comes back as `chain.tx.failed` and is recorded as the job's
 * failure; after a grace for the chain to show the job's ending the refund is sent again, and
 * after the last refusal's grace the job ends `failed`. Where the chain shows a refund (a resend
 * that lands, or another's), the job ends as the chain says.
 * A real client node on a real local ledger; the node's clock is virtual.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { ChainError, type ChainPort } from "../chain/port.ts";
import {
  MAX_REFUND_RETRY_MS,
  MAX_REFUND_SENDS,
  REFUND_GRACE_MS,
  REFUND_LIMIT_MS,
} from "../machines/job_machine.ts";
import { type DurableNode, openDurableNode } from "../runtime/durability/mod.ts";
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

for (const outcome of ["failed", "resent", "shown"] as const) {
  const title = {
    failed: "sends it again after each grace and ends the job failed after the last refusal",
    resent: "sends it again after the grace, and the job ends as the chain records that one",
    shown: "ends the job as the chain shows another's refund within the grace",
  }[outcome];
  Deno.test(`a client whose refund the chain refuses ${title}`, async () => {
    const ledger = LocalLedger.open(":memory:");
    const clock = simulatedClock(Date.now());
    let refusing = true;
    let refusals = 0;
    const client = createNode({
      id: "client",
      roles: ["client"],
      network: new InProcessNetwork().join("client"),
      chain: refusingRefunds(ledger.as("client"), () => refusing && ++refusals > 0),
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
      const ended = async (state: string) => {
        await until("the end", 20_000, () => client.job(jobId)?.done === true || undefined);
        assert.equal(client.job(jobId)?.state, state);
      };
      if (outcome === "shown") {
        // The client refunds by hand: the chain's ending comes within the grace.
        refusing = false;
        await ledger.as("client").refund({ jobId, reason: "expired" });
        await ended("expired");
      } else if (outcome === "resent") {
        refusing = false;
        clock.increment(REFUND_GRACE_MS);
        await ended("expired");
        assert.equal((await ledger.as("client").totals()).locked, 0n, "refunded");
      } else {
        for (let send = 2; send <= MAX_REFUND_SENDS; send++) {
          clock.increment(REFUND_GRACE_MS);
          await until(`refusal ${send}`, 20_000, () => refusals >= send || undefined);
          await client.settled();
        }
        clock.increment(REFUND_GRACE_MS - 1);
        await client.settled();
        assert.equal(client.job(jobId)?.state, "refunding", "not a millisecond early");
        clock.increment(1);
        await ended("failed");
        assert.equal(refusals, MAX_REFUND_SENDS);
        const totals = await ledger.as("client").totals();
        assert.equal(totals.locked, 100n, "the escrow stays on chain for its client");
      }
    } finally {
      await client.stop();
      ledger.close();
    }
  });
}

Deno.test("a client whose refund fails transiently more than MAX_REFUND_SENDS times sends it again after each back off, and the job ends as the chain records it (review R6 M4)", async () => {
  const ledger = LocalLedger.open(":memory:");
  const clock = simulatedClock(Date.now());
  const failures = 2 * MAX_REFUND_SENDS;
  let calls = 0;
  const real = ledger.as("client");
  const flaky = new Proxy(real, {
    get(target, key) {
      if (key === "refund") {
        return (refund: Parameters<ChainPort["refund"]>[0], options?: never) =>
          ++calls <= failures
            ? Promise.reject(new TypeError("error sending request: connection refused"))
            : target.refund(refund, options);
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: new InProcessNetwork().join("client"),
    chain: flaky,
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
    clock.increment(1_000);
    for (let call = 1; call <= failures; call++) {
      await until(`refund call ${call}`, 20_000, () => calls >= call || undefined);
      await client.settled();
      assert.equal(client.job(jobId)?.state, "refunding", `after failure ${call}`);
      assert.match(client.job(jobId)!.context.failure!, /chain.refund failed: rpc_error/);
      // Its back off (doubled at each, at most the cap), to the millisecond: the next send.
      const wait = client.job(jobId)!.context.deadlines.refund! - clock.now();
      assert.ok(wait > 0 && wait <= MAX_REFUND_RETRY_MS, `a back off, not a grace: ${wait}`);
      clock.increment(wait);
    }
    await until("the end", 20_000, () => client.job(jobId)?.done === true || undefined);
    assert.equal(client.job(jobId)?.state, "expired", "refunded on chain, not failed");
    assert.equal(calls, failures + 1);
    assert.equal(client.job(jobId)?.context.refundRefusals ?? 0, 0, "none counted");
    assert.equal((await real.totals()).locked, 0n, "the escrow went back");
  } finally {
    await client.stop();
    ledger.close();
  }
});

Deno.test("a client whose refund never lands ends the job failed REFUND_LIMIT_MS after it began refunding, the limit kept across a restart (review R7 L-a)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "refund-limit-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  // Every refund fails as a transient error would (a cause that will not pass: no gas funds).
  const broke = (port: ChainPort): ChainPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "refund") {
          return () => Promise.reject(new TypeError("insufficient funds for gas"));
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const open = (clock: ReturnType<typeof simulatedClock>) =>
    openDurableNode({
      id: "client",
      roles: ["client"],
      network: new InProcessNetwork().join("client"),
      chain: broke(ledger.as("client")),
      clock,
      capabilityIntervalMs: 0,
      dataDir: `${dir}/client`,
    });
  let client: DurableNode | undefined;
  try {
    const clock = simulatedClock(Date.now());
    client = await open(clock);
    await client.start();
    const jobId = client.node.submitJob({
      jobId: "j1",
      spec: spec({ bidWindowMs: 1_000, verifierCount: 0 }),
    });
    await until(
      "the escrow locked",
      20_000,
      () => client!.node.job(jobId)?.state === "bidding" || undefined,
    );
    clock.increment(1_000);
    await until(
      "the first failure",
      20_000,
      () => client!.node.job(jobId)?.context.failure ?? undefined,
    );
    const limit = client.node.job(jobId)!.context.deadlines.refund_limit!;
    assert.equal(limit, clock.now() + REFUND_LIMIT_MS);
    await client.stop();
    // Restarted: the limit is restored from the journal and armed again.
    const later = simulatedClock(clock.now() + 1);
    client = await open(later);
    await client.start();
    assert.equal(client.node.job(jobId)?.state, "refunding");
    assert.equal(client.node.job(jobId)!.context.deadlines.refund_limit, limit);
    later.increment(limit - later.now() - 1);
    await client.node.settled();
    assert.equal(client.node.job(jobId)?.state, "refunding", "not a millisecond early");
    later.increment(1);
    await until("the end", 20_000, () => client!.node.job(jobId)?.done === true || undefined);
    assert.equal(client.node.job(jobId)?.state, "failed");
    assert.match(
      client.node.job(jobId)!.context.failure!,
      /^Cannot refund within 24 h: the escrow stays on chain: chain.refund failed: rpc_error: /,
    );
    assert.equal((await ledger.as("client").totals()).locked, 100n, "the escrow stays on chain");
  } finally {
    await client?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});
