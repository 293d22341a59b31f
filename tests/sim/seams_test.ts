/**
 * The seams the simulator needs in the kernel and compute: each keeps the wall clock by default
 * and, given a clock, waits on it instead.
 */
import assert from "node:assert/strict";
import type { ChainEvent, ChainPort } from "../../chain/port.ts";
import { ChainSync } from "../../runtime/kernel/chain_sync.ts";
import { simulatedClock } from "../../runtime/kernel/mod.ts";

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
