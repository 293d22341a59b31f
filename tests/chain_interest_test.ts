/**
 * A node's log filter: it reads the chain events of its own jobs and of its account, and the
 * news every node keeps (escrows, endings, stakes), and skips the rest of the market's (its
 * port skips them where it can). The port tells how far it read, skipped events included, so
 * a node is caught up when only others' events are left. Real local ledger.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type {
  ChainCursor,
  ChainEvent,
  ChainPort,
  EventIndex,
  SubscribeOptions,
} from "../chain/port.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { ChainSync } from "../runtime/kernel/chain_sync.ts";
import { ESCROW_MEMORY, EscrowWatch } from "../runtime/kernel/escrow_watch.ts";
import { createNode } from "../runtime/kernel/mod.ts";
import { until } from "./_poll.ts";
import { spec } from "./_drive.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);

/** Client `c` submits `jobId`, assigns it to `w`, `w` submits its result. */
async function marketJob(ledger: LocalLedger, jobId: string, worker = "w"): Promise<void> {
  const client = ledger.as("c");
  await client.submitJob({
    jobId,
    amount: 10n,
    minStake: 0n,
    modelHash: MODEL,
    inputCommitment: INPUT,
  });
  await client.assignWorker({ jobId, worker, price: 5n });
  await ledger.as(worker).submitResult({ jobId, commitment: "c".repeat(64) });
}

/** The ledger's last event, and the cursor just after it. */
async function chainEnd(ledger: LocalLedger): Promise<{ last: ChainEvent; after: ChainCursor }> {
  const { events } = await ledger.as("n").eventsSince({ blockNumber: 0, eventIndex: 0 });
  const last = events.at(-1)!;
  return { last, after: { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 } };
}

Deno.test("the local ledger's subscription hands over only the events the interest accepts, and says how far it read", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    await ledger.as("w").stake({ amount: 100n });
    await marketJob(ledger, "j1");
    const handed: string[] = [];
    const passed: ChainCursor[] = [];
    const stop = ledger.as("n").subscribe((event) => handed.push(event.name), {
      interest: (event) => event.name === "JobSubmitted",
      passed: (next) => passed.push(next),
    });
    try {
      await until("the port read to the end", 5_000, () => passed.at(-1)?.eventIndex);
      assert.deepEqual(handed, ["JobSubmitted"]);
      const { last, after } = await chainEnd(ledger);
      assert.equal(last.name, "ResultSubmitted", "the last event was skipped");
      assert.deepEqual(passed.at(-1), after);
    } finally {
      stop();
    }
  } finally {
    ledger.close();
  }
});

/** A port that cannot filter (as the EVM and Starknet adapters): it hands over every event. */
function unfiltered(port: ChainPort): ChainPort {
  return new Proxy(port, {
    get(target, prop) {
      if (prop === "subscribe") {
        return (handler: (event: ChainEvent) => void, options: SubscribeOptions = {}) =>
          target.subscribe(handler, { ...(options.from ? { from: options.from } : {}) });
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

for (const filtering of [true, false]) {
  Deno.test(`a chain sync skips what its interest declines and is caught up when only skipped events are left (${filtering ? "a port that filters" : "a port that cannot"})`, async () => {
    const ledger = LocalLedger.open(":memory:");
    try {
      await ledger.as("w").stake({ amount: 100n });
      await marketJob(ledger, "j1");
      const seen: ChainEvent[] = [];
      const submitted: string[] = [];
      const sync = new ChainSync({
        chain: filtering ? ledger.as("n") : unfiltered(ledger.as("n")),
        submit: (addressed) => submitted.push(addressed.event.type),
        onEvent: (event) => seen.push(event),
        interest: (event) => event.name === "WorkerStaked" || event.name === "JobSubmitted",
      });
      const stop = sync.subscribe({ blockNumber: 0, eventIndex: 0 });
      try {
        const reached = await sync.catchUp(AbortSignal.timeout(5_000), 50);
        assert.deepEqual(seen.map((e) => e.name), ["WorkerStaked", "JobSubmitted"]);
        assert.deepEqual(submitted, ["chain.escrow.locked"]);
        assert.deepEqual(reached, (await chainEnd(ledger)).after);
      } finally {
        stop();
      }
    } finally {
      ledger.close();
    }
  });
}

for (const readsEscrows of [true, false]) {
  Deno.test(
    `a node reads ${
      readsEscrows ? "nothing" : "only the escrow and the ending"
    } of a job it has no part in ${
      readsEscrows ? "where its port reads escrows on demand" : "where its port cannot"
    }`,
    async () => {
      const ledger = LocalLedger.open(":memory:");
      const network = new InProcessNetwork();
      const port = ledger.as("x");
      const bystander = createNode({
        id: "x",
        roles: ["worker"],
        network: network.join("x"),
        chain: readsEscrows ? port : new Proxy(port, {
          get(target, key) {
            if (key === "escrowOf") return undefined;
            const value = Reflect.get(target, key, target);
            return typeof value === "function" ? value.bind(target) : value;
          },
        }),
        capabilityIntervalMs: 0,
        worker: { hardware: "cpu", stake: 100n },
      });
      try {
        await bystander.start();
        await ledger.as("w").stake({ amount: 100n });
        await marketJob(ledger, "j1");
        await ledger.as("c").recordVerification({ jobId: "j1", accepted: true });
        await ledger.as("c").releasePayment({ jobId: "j1" });
        const { events } = await ledger.as("n").eventsSince({ blockNumber: 0, eventIndex: 0 });
        assert.deepEqual(
          events.filter((e) => "jobId" in e).map((e) => e.name),
          ["JobSubmitted", "WorkerAssigned", "ResultSubmitted", "JobVerified", "PaymentReleased"],
        );
        await bystander.catchUpChain({ signal: AbortSignal.timeout(5_000), recheckMs: 50 });
        // Where it cannot read an escrow when it hears of a job, the escrow and the ending reached
        // it (news it keeps of every job); the assignment, the result and the verdict of a job it has
        // no part in were skipped before they cost it anything. Where it can, nothing reached it.
        assert.equal(bystander.stats.chainIgnored, readsEscrows ? 0 : 2);
        assert.equal(bystander.stats.escrowReads, 0);
      } finally {
        await bystander.stop();
        ledger.close();
      }
    },
  );
}

Deno.test("a node remembers the last 10,000 escrows and endings it read, the oldest out first", () => {
  const watch = new EscrowWatch();
  for (let i = 0; i <= ESCROW_MEMORY; i++) {
    watch.saw(`j${i}`);
    watch.sawEnd(`j${i}`);
  }
  // Seen again: not remembered twice, nothing pushed out.
  watch.saw("j5");
  assert.equal(watch.has("j0"), false, "the oldest escrow is forgotten");
  assert.equal(watch.ended("j0"), false, "the oldest ending is forgotten");
  for (const jobId of ["j1", "j5", `j${ESCROW_MEMORY}`]) {
    assert.ok(watch.has(jobId), jobId);
    assert.ok(watch.ended(jobId), jobId);
  }
});

Deno.test("a node given a smaller escrow memory remembers that many escrows and endings", () => {
  const watch = new EscrowWatch(undefined, 3);
  for (const jobId of ["j1", "j2", "j3", "j4"]) {
    watch.saw(jobId, { client: "c1" });
    watch.sawEnd(jobId);
  }
  assert.equal(watch.has("j1"), false);
  assert.equal(watch.ended("j1"), false);
  assert.deepEqual(watch.commitment("j4"), { client: "c1" });
  assert.ok(["j2", "j3", "j4"].every((j) => watch.has(j) && watch.ended(j)));
});

Deno.test("a port that wraps the ledger's and delays its events is not handed the filter: caught up means delivered", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    await ledger.as("w").stake({ amount: 100n });
    await marketJob(ledger, "j1");
    const inner = ledger.as("n");
    // A decorator written as a new object: every event reaches the handler 30 ms late.
    const delayed: ChainPort = {
      ...Object.fromEntries(
        Object.getOwnPropertyNames(Object.getPrototypeOf(inner)).map((name) => [
          name,
          (inner as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!.bind(inner),
        ]),
      ),
      account: inner.account,
      subscribe: (handler: (event: ChainEvent) => void, options?: SubscribeOptions) =>
        inner.subscribe((event) => setTimeout(() => handler(event), 30), options),
    } as unknown as ChainPort;
    const submitted: string[] = [];
    const sync = new ChainSync({
      chain: delayed,
      submit: (addressed) => submitted.push(addressed.event.type),
      interest: (event) => event.name === "JobSubmitted" || event.name === "WorkerStaked",
    });
    const stop = sync.subscribe({ blockNumber: 0, eventIndex: 0 });
    try {
      await sync.catchUp(AbortSignal.timeout(5_000), 20);
      // Had the ledger's port been given the filter, its `passed` would have said "caught up"
      // before the delayed escrow came through.
      assert.deepEqual(submitted, ["chain.escrow.locked"]);
    } finally {
      stop();
    }
  } finally {
    ledger.close();
  }
});

Deno.test("a node gives its chain port an index of what it reads: its own account, the news every node keeps, and the jobs it holds, those restored before it started included", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const inner = ledger.as("w1");
  let index: EventIndex | undefined;
  const port = new Proxy(inner, {
    get(target, key) {
      if (key === "subscribe") {
        return (handler: (event: ChainEvent) => void, options: SubscribeOptions = {}) => {
          index = options.index;
          return target.subscribe(handler, options);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: port,
    capabilityIntervalMs: 0,
    worker: { hardware: "cpu", stake: 100n },
  });
  try {
    // A job actor in the tree before the node starts, as recovery restores one.
    worker.tree.deliver({
      seq: 1,
      at: Date.now(),
      source: "test",
      target: "job:restored",
      event: {
        type: "job.announced",
        owner: "c",
        attempt: 1,
        bidWindowEndsAt: Date.now() + 60_000,
        spec: spec({ bidWindowMs: 60_000 }),
      },
    });
    assert.ok(worker.job("restored"));
    await worker.start();
    assert.ok(index !== undefined, "the local ledger filters events: it is given the index");
    assert.deepEqual(index.accounts, ["w1"]);
    assert.ok(index.names.has("WorkerStaked"), "stakes: news every node keeps");
    assert.ok(!index.names.has("JobSubmitted"), "escrows are read on demand");
    assert.ok(index.jobs.has("restored"), "a restored job's events are read");
  } finally {
    await worker.stop();
    ledger.close();
  }
});
