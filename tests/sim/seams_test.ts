/**
 * The seams the simulator needs in the kernel and compute: each keeps the wall clock by default
 * and, given a clock, waits on it instead; and the node's escrow wait, which bounds how long a
 * gossiped job the chain never escrowed is kept (the simulator sets it to its chain's lag).
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import {
  type ChainCursor,
  type ChainEvent,
  type ChainEventName,
  type ChainPort,
  JobWatch,
} from "../../chain/port.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { ChainSync } from "../../runtime/kernel/chain_sync.ts";
import { SimChain } from "../../runtime/sim/chain.ts";
import { Scheduler } from "../../runtime/sim/scheduler.ts";
import { Trace } from "../../runtime/sim/trace.ts";
import { createNode, simulatedClock } from "../../runtime/kernel/mod.ts";
import {
  DEFAULT_ESCROW_WAIT_MS,
  ESCROW_GRACE_MS,
  EscrowWatch,
} from "../../runtime/kernel/escrow_watch.ts";

function chainOnce(): ChainPort {
  let calls = 0;
  const event = {
    name: "JobVerified",
    jobId: "j1",
    blockNumber: 1,
    blockHash: "0x1",
    txHash: "0x1",
    eventIndex: 0,
  } as ChainEvent;
  return {
    // The first read finds one event the subscription never hands over (a reorg took it).
    eventsSince: () =>
      Promise.resolve(
        calls++ === 0
          ? { events: [event], next: { blockNumber: 1, eventIndex: 1 } }
          : { events: [], next: { blockNumber: 0, eventIndex: 0 } },
      ),
    subscribe: () => () => {},
  } as unknown as ChainPort;
}

Deno.test("ChainSync.catchUp() rechecks on its injected clock", async () => {
  const clock = simulatedClock(0);
  const sync = new ChainSync({ chain: chainOnce(), submit: () => {}, clock });
  sync.subscribe({ blockNumber: 0, eventIndex: 0 });
  let done = false;
  const caught = sync.catchUp(new AbortController().signal, 100).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(done, false, "150 real ms are not 100 virtual ms");
  clock.increment(100);
  await caught;
  assert.equal(done, true);
});

Deno.test("ChainSync.catchUp() rechecks on the wall clock by default", async () => {
  const sync = new ChainSync({ chain: chainOnce(), submit: () => {} });
  sync.subscribe({ blockNumber: 0, eventIndex: 0 });
  await sync.catchUp(new AbortController().signal, 10);
});

Deno.test("EscrowWatch checks a gossiped job at its window's grace, or at the escrow wait if sooner", () => {
  const watch = new EscrowWatch(20_000);
  // A short window: a grace after it closes, as before.
  assert.equal(
    watch.expect("job:a", { closesAt: 1_200, bidWindowMs: 200, heardAt: 1_000, announcer: "p" }),
    1_200 + ESCROW_GRACE_MS,
  );
  // A one-minute window: the escrow wait after it was heard of, not the window again.
  assert.equal(
    watch.expect("job:b", { closesAt: 61_000, bidWindowMs: 60_000, heardAt: 1_000 }),
    21_000,
  );
  assert.deepEqual(watch.unescrowed("job:b"), { blame: undefined });
  watch.saw("a");
  assert.equal(watch.unescrowed("job:a"), undefined, "its escrow showed");
  assert.equal(
    new EscrowWatch().expect("job:c", { closesAt: 601_000, bidWindowMs: 600_000, heardAt: 1_000 }),
    1_000 + DEFAULT_ESCROW_WAIT_MS,
  );
});

Deno.test("createNode() refuses an escrow wait that is not a non-negative integer of ms", () => {
  const ledger = LocalLedger.open(":memory:");
  for (const escrowWaitMs of [-1, 1.5, Number.NaN]) {
    assert.throws(
      () =>
        createNode({
          id: "n1",
          roles: ["client"],
          network: new InProcessNetwork().join("n1"),
          chain: ledger.as("n1"),
          escrowWaitMs,
        }),
      (e: Error) =>
        e.name === "RangeError" && e.message.startsWith(`Invalid escrowWaitMs ${escrowWaitMs}:`),
    );
  }
  ledger.close();
});

Deno.test("createNode() refuses an escrow memory that is not a positive integer", () => {
  const ledger = LocalLedger.open(":memory:");
  for (const escrowMemory of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () =>
        createNode({
          id: "n1",
          roles: ["client"],
          network: new InProcessNetwork().join("n1"),
          chain: ledger.as("n1"),
          escrowMemory,
        }),
      (e: Error) =>
        e.name === "RangeError" && e.message.startsWith(`Invalid escrowMemory ${escrowMemory}:`),
    );
  }
  ledger.close();
});

Deno.test("ChainSync.catchUp() over a chain that tracks its position is caught up past the events it skipped, told of none of them", async () => {
  const calm = { blockMs: 20, confirmMs: 10, reorgChance: 0, reorgDepth: 0, reorgHoldMs: 0 };
  const sched = new Scheduler(1);
  const chain = new SimChain(sched, new Trace(), calm);
  const names = new Set<ChainEventName>(["VerifierRegistered"]);
  const sync = new ChainSync({
    chain: chain.port("n1"),
    submit: () => {},
    clock: sched,
    interest: (event) => names.has(event.name),
    index: { names, accounts: [], jobs: new JobWatch() },
  });
  sync.subscribe({ blockNumber: 0, eventIndex: 0 });
  const run = (until: number) => sched.run({ until, maxSteps: 100_000 });
  for (let i = 0; i < 5; i++) {
    const staked = chain.port(`w${i}`).stake({ amount: 100n });
    await run(sched.now() + 40);
    await staked;
  }
  let caught: ChainCursor | undefined;
  const catching = sync.catchUp(new AbortController().signal, 100).then((at) => (caught = at));
  await run(sched.now() + 1_000);
  await Promise.race([catching, new Promise((r) => setTimeout(r, 50))]);
  const last = chain.events().at(-1)!;
  assert.deepEqual(caught, { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 });
  chain.close();
});
