/**
 * The simulated chain's index of subscriptions: a node that gives its filter in a shape the chain
 * can index (`SubscribeOptions.index`) is handed exactly the events its filter accepts, in chain
 * order, as one that gives the same filter as a bare predicate (which the chain checks against
 * every event): by event name, by an account the event names, by a job on its watch list (added
 * and deleted as it goes), behind the chain (subscribed from the start) and after reorgs.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ChainCursor,
  type ChainEvent,
  type ChainEventName,
  jobOfEvent,
  JobWatch,
  namesAccount,
} from "../../chain/port.ts";
import { SimChain } from "./chain.ts";
import type { ChainFaults } from "./faults.ts";
import { Scheduler } from "./scheduler.ts";
import { Trace } from "./trace.ts";

const HASH = "a".repeat(64);

function filter(names: ReadonlySet<ChainEventName>, account: string, jobs: JobWatch) {
  return (event: ChainEvent) =>
    names.has(event.name) || namesAccount(event, account) ||
    jobs.has(jobOfEvent(event) ?? "");
}

/** A short market on `faults`; `watch` changes the indexed node's job list as events come. */
async function market(faults: ChainFaults, seed: number) {
  const sched = new Scheduler(seed);
  const chain = new SimChain(sched, new Trace(), faults);
  const names = new Set<ChainEventName>(["VerifierRegistered"]);
  const got = { indexed: [] as string[], plain: [] as string[], late: [] as string[] };
  const key = (e: ChainEvent) => `${e.blockNumber}:${e.eventIndex}:${e.name}`;
  const passed = { indexed: 0 };
  /** A node's handler: as j2's escrow comes, it leaves j2 and takes a part in j3. */
  const node = (into: string[], jobs: JobWatch) => (event: ChainEvent) => {
    into.push(key(event));
    if (event.name === "JobSubmitted" && jobOfEvent(event) === "j2") {
      jobs.delete("j2");
      jobs.add("j3");
    }
  };
  const indexedJobs = new JobWatch();
  const plainJobs = new JobWatch();
  for (const jobs of [indexedJobs, plainJobs]) jobs.add("j2");
  const interest = filter(names, "c1", indexedJobs);
  chain.port("n1").subscribe(node(got.indexed, indexedJobs), {
    interest,
    index: { names, accounts: ["c1"], jobs: indexedJobs },
    passed: () => passed.indexed++,
  });
  chain.port("n2").subscribe(node(got.plain, plainJobs), {
    interest: filter(names, "c1", plainJobs),
  });
  const c1 = chain.port("c1");
  const c2 = chain.port("c2");
  const job = (jobId: string) => ({
    jobId,
    amount: 100n,
    minStake: 10n,
    modelHash: HASH,
    inputCommitment: HASH,
  });
  const run = (until: number) => sched.run({ until, maxSteps: 100_000 });
  const steps = async () => {
    await chain.port("w1").stake({ amount: 100n });
    await chain.port("v1").stake({ amount: 100n, role: "verifier" });
    await c1.submitJob(job("j1"));
    await c2.submitJob(job("j2"));
    await c2.submitJob(job("j3"));
    await c2.assignWorker({ jobId: "j3", worker: "w1", price: 50n });
    await c2.revokeAssignment({ jobId: "j3", worker: "w1" });
    await c2.refund({ jobId: "j2", reason: "cancelled" });
    await c2.refund({ jobId: "j3", reason: "cancelled" });
    await c1.refund({ jobId: "j1", reason: "cancelled" });
  };
  const done = steps();
  await run(5_000);
  await done;
  await run(10_000);
  // A node behind the chain: subscribed from its first event, once the market is over.
  chain.port("n3").subscribe((event) => got.late.push(key(event)), {
    interest,
    index: { names, accounts: ["c1"], jobs: indexedJobs },
  });
  await run(20_000);
  const events = chain.events();
  chain.close();
  return {
    got,
    passed,
    reorgs: chain.stats.reorgs,
    all: events.map(key),
    expectLate: events.filter(interest).map(key),
  };
}

Deno.test("SimChain: an indexed subscription is handed what its filter accepts, as a checked one is", async () => {
  const calm = { blockMs: 20, confirmMs: 10, reorgChance: 0, reorgDepth: 0, reorgHoldMs: 0 };
  const { got, passed, all, expectLate } = await market(calm, 1);
  assert.deepEqual(got.indexed, got.plain);
  // Each filter rule let something through: the name, the account, the watch list (j2 until its
  // escrow, j3 from then on).
  const names = got.indexed.map((k) => k.split(":")[2]);
  assert.ok(names.includes("VerifierRegistered"), "by name");
  assert.ok(names.includes("WorkerStaked") === false, "a name outside the filter is skipped");
  assert.equal(names.filter((n) => n === "JobSubmitted").length, 3, "j1 (its client), j2, j3");
  assert.ok(names.includes("AssignmentRevoked"), "j3's events after it was watched");
  assert.equal(names.filter((n) => n === "EscrowRefunded").length, 2, "j3 and j1, not j2");
  assert.ok(got.indexed.length < all.length, "some events were not handed over");
  assert.ok(passed.indexed > 0, "told how far it read");
  // The late node read the chain from its start, with the watch list as it was by then (j3).
  assert.deepEqual(got.late, expectLate);
  assert.ok(got.late.length > 0);
});

Deno.test("SimChain: after a reorg an indexed subscription catches up, then is handed what the checked one is", async () => {
  const reorgs = { blockMs: 20, confirmMs: 40, reorgChance: 0.3, reorgDepth: 3, reorgHoldMs: 60 };
  for (const seed of [1, 2, 3]) {
    const { got, reorgs: shown } = await market(reorgs, seed);
    assert.ok(shown > 0, "reorgs were shown");
    // A reorg hands events again: deduplicated, the two saw the same, in the same order.
    const unique = (keys: string[]) => keys.filter((k, i) => keys.indexOf(k) === i);
    assert.deepEqual(unique(got.indexed), unique(got.plain), `seed ${seed}`);
  }
});

Deno.test("SimChain with pruneEvents lets go of the events every node has read, hands the same events, and refuses a subscription from before what it kept", async () => {
  const sched = new Scheduler(7);
  const chain = new SimChain(sched, new Trace(), {
    blockMs: 20,
    confirmMs: 10,
    reorgChance: 0,
    reorgDepth: 0,
    reorgHoldMs: 0,
  }, { pruneEvents: true });
  const names = new Set<ChainEventName>(["WorkerStaked"]);
  const got: string[] = [];
  const jobs = new JobWatch();
  chain.port("n1").subscribe((e) => got.push(`${e.blockNumber}:${e.eventIndex}`), {
    interest: filter(names, "n1", jobs),
    index: { names, accounts: ["n1"], jobs },
  });
  // 5,000 stakes, each an event every node here reads: more than one batch to let go.
  const stakes: Promise<unknown>[] = [];
  for (let i = 0; i < 5_000; i++) stakes.push(chain.port(`w${i}`).stake({ amount: 1n }));
  await sched.run({ until: 1_000, maxSteps: 1_000_000 });
  await Promise.all(stakes);
  await sched.run({ until: 2_000, maxSteps: 1_000_000 });
  assert.equal(got.length, 5_000, "every event handed over once");
  assert.equal(chain.eventCount, 5_000);
  assert.ok(chain.events().length < 5_000, "what every node read was let go");
  assert.throws(
    () => chain.port("late").subscribe(() => {}, { from: { blockNumber: 0, eventIndex: 0 } }),
    { name: "RangeError", message: /let go of its first \d+ events/ },
  );
  chain.close();
});

Deno.test("SimChain: a subscription that tracks its position is not told of each block while in step, reads the position it would have been told, and is told again once reorgs may come", async () => {
  const calm = { blockMs: 20, confirmMs: 10, reorgChance: 0, reorgDepth: 0, reorgHoldMs: 0 };
  const sched = new Scheduler(1);
  const chain = new SimChain(sched, new Trace(), calm);
  const names = new Set<ChainEventName>(["VerifierRegistered"]);
  const jobs = new JobWatch();
  const interest = filter(names, "nobody", jobs);
  const index = { names, accounts: ["nobody"], jobs };
  const told = { tracking: 0, plain: 0 };
  let plainAt: ChainCursor | undefined;
  let position: (() => ChainCursor | undefined) | undefined;
  chain.port("n1").subscribe(() => {}, {
    interest,
    index,
    passed: () => told.tracking++,
    track: (p) => (position = p),
  });
  chain.port("n2").subscribe(() => {}, {
    interest,
    index,
    passed: (next) => {
      told.plain++;
      plainAt = next;
    },
  });
  const run = (until: number) => sched.run({ until, maxSteps: 100_000 });
  // Stakes the filter skips, one block apart.
  for (let i = 0; i < 10; i++) {
    const staked = chain.port(`w${i}`).stake({ amount: 100n });
    await run(sched.now() + 40);
    await staked;
  }
  await run(sched.now() + 100);
  assert.ok(told.plain >= 10, `the plain one is told of each block (${told.plain})`);
  assert.equal(told.tracking, 0, "the tracking one is not");
  assert.ok(plainAt !== undefined && position !== undefined);
  assert.deepEqual(position(), plainAt, "its position is where the plain one was told it stands");
  // Reorgs may come: it is visited, and told, at each block again.
  chain.faults = { ...calm, reorgDepth: 2, reorgChance: 0, confirmMs: 40 };
  for (let i = 10; i < 14; i++) {
    const staked = chain.port(`w${i}`).stake({ amount: 100n });
    await run(sched.now() + 100);
    await staked;
  }
  assert.ok(told.tracking > 0, "told again once reorgs may come");
  assert.equal(position(), undefined, "and no longer reads it");
  chain.close();
});

Deno.test("SimChain runs a block's transactions as one group of the ledger, in an order the seed draws", async () => {
  const calm = { blockMs: 20, confirmMs: 10, reorgChance: 0, reorgDepth: 0, reorgHoldMs: 0 };
  const orders = new Set<string>();
  for (let seed = 1; seed <= 20; seed++) {
    const sched = new Scheduler(seed);
    const chain = new SimChain(sched, new Trace(), calm);
    let groups = 0;
    const group = chain.ledger.group.bind(chain.ledger);
    chain.ledger.group = <T>(work: () => T): T => {
      groups++;
      return group(work);
    };
    const sent = ["a", "b", "c"].map((w) => chain.port(w).stake({ amount: 1n }));
    // A refused one in the same block undoes only itself.
    const refused = assert.rejects(chain.port("d").stake({ amount: 0n }), {
      name: "ChainError",
      code: "invalid_amount",
    });
    await sched.run({ until: 100, maxSteps: 10_000 });
    await Promise.all(sent);
    await refused;
    assert.equal(groups, 1, "one group for the block");
    const staked = chain.events().filter((e) => e.name === "WorkerStaked");
    assert.equal(staked.length, 3);
    orders.add(staked.map((e) => (e as { worker: string }).worker).join(""));
    chain.close();
  }
  assert.ok(orders.size > 1, `the order in a block is drawn (${[...orders]})`);
});
