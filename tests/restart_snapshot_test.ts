/**
 * A node that reads escrows on demand (its chain port has `escrowOf`; not a verifier) keeps no
 * record of the escrows it read across a restart, and a join snapshot hands on only the jobs whose
 * escrow this node saw (review R5 L4). Restarted on its journal, it reads again the escrow of each
 * live job it restored, so its snapshot is as complete as before the restart: a worker's observed
 * job and a client's own. A real ledger file, real journal files, the in-process network.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainPort } from "../chain/port.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { type DurableNode, openDurableNode } from "../runtime/durability/recovery.ts";
import {
  createNode,
  RESTORED_READ_RETRIES,
  RESTORED_READ_RETRY_MS,
  simulatedClock,
} from "../runtime/kernel/mod.ts";
import { DEFAULT_ESCROW_WAIT_MS } from "../runtime/kernel/escrow_watch.ts";
import { DECLINE_DEFAULTS } from "../actors/declines.ts";
import { announceSpec as announce, escrowOfSpec, spec } from "./_drive.ts";
import { until } from "./_poll.ts";

/** Escrows job `jobId` for spec `s` on `ledger`, as account `client`. */
const escrowJob = (ledger: LocalLedger, jobId: string, client: string, s: JobSpec) =>
  ledger.as(client).submitJob(escrowOfSpec(jobId, s));

const served = (node: DurableNode) => node.node.snapshot().jobs.map((j) => j.jobId).sort();

/** A late joiner asks only `peer`, and says which jobs it took from the answer. */
async function lateJoinerHears(
  network: InProcessNetwork,
  ledger: LocalLedger,
): Promise<string[]> {
  const late = createNode({
    id: "late",
    roles: ["worker"],
    worker: { hardware: "cpu", stake: 100n },
    network: network.join("late"),
    chain: ledger.as("late"),
    capabilityIntervalMs: 0,
  });
  try {
    await late.start();
    await late.requestSnapshot({ fraction: 1 });
    return ["j1", "j2"].filter((id) => late.job(id)?.state === "bidding");
  } finally {
    await late.stop();
  }
}

Deno.test("a worker that reads escrows on demand hands on in join snapshots, after a restart on its journal, the jobs it held before", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let network = new InProcessNetwork();
  // Virtual time: the node's journal spans more than the chain news a restart reads again.
  const clock = simulatedClock(Date.now());
  const open = (net: InProcessNetwork, at: ReturnType<typeof simulatedClock>) =>
    openDurableNode({
      id: "w1",
      roles: ["worker"],
      worker: { hardware: "cpu", stake: 100n, capacity: 4 },
      network: net.join("w1"),
      chain: ledger.as("w1"),
      clock: at,
      capabilityIntervalMs: 0,
      dataDir: `${dir}/w1`,
      checkpointEvery: 2,
    });
  let w1: DurableNode | undefined;
  let owner: NetworkPort | undefined;
  try {
    w1 = await open(network, clock);
    await w1.start();
    owner = network.join("client");
    await owner.start();
    const window = 2 * DECLINE_DEFAULTS.ttlMs;
    const s = spec({ bidWindowMs: window, verifierCount: 0 });
    const endsAt = clock.now() + window;
    await escrowJob(ledger, "j1", "client", s);
    await escrowJob(ledger, "j2", "client", s);
    await announce(owner, "j1", "client", s, endsAt);
    await announce(owner, "j2", "client", s, endsAt);
    const node = w1.node;
    await until("both taken", 20_000, () => served(w1!).length === 2 || undefined);
    assert.deepEqual(served(w1), ["j1", "j2"]);
    // Chain events of jobs w1 takes part in (another worker assigned), journaled now and again
    // past the chain news a restart reads again: the escrows' JobSubmitted are behind it.
    await ledger.as("w2").stake({ amount: 100n });
    const journaledAssignment = async (jobId: string) => {
      await escrowJob(ledger, jobId, "client", s);
      await announce(owner!, jobId, "client", s, clock.now() + window);
      await until("taken", 20_000, () => node.job(jobId) ?? undefined);
      const before = w1!.journal.lastOf("chain")?.seq ?? 0;
      await ledger.as("client").assignWorker({ jobId, worker: "w2", price: 50n });
      await until(
        "the assignment journaled",
        20_000,
        () => (w1!.journal.lastOf("chain")?.seq ?? 0) > before || undefined,
      );
    };
    await journaledAssignment("j3");
    clock.increment(DECLINE_DEFAULTS.ttlMs + 60_000);
    await journaledAssignment("j4");
    // And a job the chain never escrowed, whose escrow check the stop cuts off.
    await announce(owner, "j5", "client", s, clock.now() + window);
    await until("j5 taken", 20_000, () => node.job("j5") ?? undefined);
    assert.equal(node.job("j1")?.state, "bidding", "still in its bid window");
    await w1.stop();
    await owner.stop();
    owner = undefined;

    network = new InProcessNetwork();
    const later = simulatedClock(clock.now());
    w1 = await open(network, later);
    assert.ok(
      w1.chainNewsFrom.blockNumber > 0,
      "the chain's news is read again from after block 0",
    );
    assert.equal(w1.node.job("j1")?.state, "bidding", "restored from the journal");
    assert.equal(w1.node.job("j2")?.state, "bidding");
    const reads = w1.node.stats.escrowReads;
    await w1.start();
    // The reads run in the background: start waits for none of them.
    await until(
      "the snapshot served as before the restart",
      20_000,
      () => served(w1!).length === 2 || undefined,
    );
    assert.ok(w1.node.stats.escrowReads >= reads + 3, "it read the restored jobs' escrows again");
    assert.notEqual(w1.node, node);
    assert.deepEqual(served(w1), ["j1", "j2"]);
    assert.deepEqual(await lateJoinerHears(network, ledger), ["j1", "j2"]);
    // The unescrowed job's check comes again: dropped (blaming no one: a restart forgot who).
    assert.equal(w1.node.job("j5")?.done, false);
    later.increment(DEFAULT_ESCROW_WAIT_MS);
    await until("j5 dropped", 20_000, () => w1!.node.retiredJob("j5"));
    assert.equal(w1.node.retiredJob("j5")?.state, "unescrowed");
    assert.equal(w1.node.job("j1")?.state, "bidding", "an escrowed job is kept");
  } finally {
    await owner?.stop();
    await w1?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client that reads escrows on demand hands on its own open job in join snapshots after a restart on its journal", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let network = new InProcessNetwork();
  const clock = simulatedClock(Date.now());
  const open = (net: InProcessNetwork, at: ReturnType<typeof simulatedClock>) =>
    openDurableNode({
      id: "client",
      roles: ["client"],
      network: net.join("client"),
      chain: ledger.as("client"),
      clock: at,
      capabilityIntervalMs: 0,
      dataDir: `${dir}/client`,
      checkpointEvery: 2,
    });
  let client: DurableNode | undefined;
  try {
    client = await open(network, clock);
    await client.start();
    const s = spec({ bidWindowMs: 2 * DECLINE_DEFAULTS.ttlMs, verifierCount: 0 });
    // Its second job's escrow is journaled past the chain news a restart reads again.
    const submitted = async (jobId: string) => {
      client!.node.submitJob({ jobId, spec: s });
      await until(
        "the escrow locked",
        20_000,
        () => client!.node.job(jobId)?.state === "bidding" || undefined,
      );
    };
    await submitted("j1");
    clock.increment(DECLINE_DEFAULTS.ttlMs + 60_000);
    await submitted("j2");
    assert.deepEqual(served(client), ["j1", "j2"]);
    await client.stop();

    network = new InProcessNetwork();
    client = await open(network, simulatedClock(clock.now() + 1));
    assert.ok(client.chainNewsFrom.blockNumber > 0, "the news is read again from after block 0");
    await client.start();
    assert.equal(client.node.job("j1")?.state, "bidding");
    await until(
      "its own jobs served as before the restart",
      20_000,
      () => served(client!).length === 2 || undefined,
    );
    assert.deepEqual(served(client), ["j1", "j2"]);
    assert.deepEqual(await lateJoinerHears(network, ledger), ["j1", "j2"]);
  } finally {
    await client?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * `port` whose reads of job j1's escrow fail (the chain's node unreachable) while `failing(n)`, n
 * the read's number from 1; `reads` counts them. (Its client's j2 is noted by the chain's news.)
 */
function failingReads(
  port: ChainPort,
  failing: (n: number) => boolean,
  reads = { j1: 0 },
): ChainPort {
  return new Proxy(port, {
    get(target, key) {
      const value = Reflect.get(target, key);
      if (key === "escrowOf") {
        return (jobId: string, options?: never) =>
          jobId === "j1" && failing(++reads.j1)
            ? Promise.reject(new Error("error sending request: connection refused"))
            : target.escrowOf!(jobId, options);
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A client that submitted `early` (j1) and, past the chain news a restart reads again, j2;
 * stopped.
 */
async function clientWithTwoJobs(dir: string, ledger: LocalLedger, early = ["j1"]) {
  const clock = simulatedClock(Date.now());
  const open = (
    net: InProcessNetwork,
    at: ReturnType<typeof simulatedClock>,
    chain: ChainPort,
  ) =>
    openDurableNode({
      id: "client",
      roles: ["client"],
      network: net.join("client"),
      chain,
      clock: at,
      capabilityIntervalMs: 0,
      dataDir: `${dir}/client`,
      checkpointEvery: 2,
    });
  const client = await open(new InProcessNetwork(), clock, ledger.as("client"));
  try {
    await client.start();
    const s = spec({ bidWindowMs: 2 * DECLINE_DEFAULTS.ttlMs, verifierCount: 0 });
    for (const jobId of [...early, "j2"]) {
      if (jobId === "j2") clock.increment(DECLINE_DEFAULTS.ttlMs + 60_000);
      client.node.submitJob({ jobId, spec: s });
      await until("locked", 20_000, () => client.node.job(jobId)?.state === "bidding" || undefined);
    }
  } finally {
    await client.stop();
  }
  return { open, restartAt: clock.now() + 1 };
}

Deno.test("a restarted client whose first reads of its own open jobs' escrows fail reads them again after a back off and hands them on (review R7 M-b)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let client: DurableNode | undefined;
  try {
    const { open, restartAt } = await clientWithTwoJobs(dir, ledger);
    const network = new InProcessNetwork();
    const clock = simulatedClock(restartAt);
    // One failed read for each job: the first round's.
    const reads = { j1: 0 };
    client = await open(network, clock, failingReads(ledger.as("client"), (n) => n === 1, reads));
    await client.start();
    await until("the first read", 20_000, () => reads.j1 >= 1 || undefined);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!served(client).includes("j1"), "not yet read");
    // Not again before the back off, on the node's clock.
    clock.increment(RESTORED_READ_RETRY_MS - 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(reads.j1, 1, "no read before the back off");
    await until("read again", 20_000, () => {
      clock.increment(1_000);
      return served(client!).length === 2 || undefined;
    });
    assert.equal(reads.j1, 2);
    assert.deepEqual(await lateJoinerHears(network, ledger), ["j1", "j2"]);
    assert.deepEqual(["j1", "j2"].map((j) => client!.node.job(j)?.state), ["bidding", "bidding"]);
  } finally {
    await client?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restarted client whose restored escrow reads always fail reads them again a bounded number of rounds, ends no job, and stops at once in a back off (review R7 M-b)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let client: DurableNode | undefined;
  try {
    const { open, restartAt } = await clientWithTwoJobs(dir, ledger);
    const clock = simulatedClock(restartAt);
    const reads = { j1: 0 };
    client = await open(
      new InProcessNetwork(),
      clock,
      failingReads(ledger.as("client"), () => true, reads),
    );
    await client.start();
    const all = 1 + RESTORED_READ_RETRIES;
    await until("every round", 20_000, () => {
      clock.increment(1_000);
      return reads.j1 >= all || undefined;
    });
    // Well past the last back off: no more reads, no job ended by them.
    for (let i = 0; i < 20; i++) {
      clock.increment(RESTORED_READ_RETRY_MS * 2 ** RESTORED_READ_RETRIES / 10);
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(reads.j1, all);
    assert.deepEqual(["j1", "j2"].map((j) => client!.node.job(j)?.state), ["bidding", "bidding"]);
    assert.ok(!served(client).includes("j1"));
    await client.stop();
    // Stopped inside the first back off: the stop does not wait for it (the clock is not moved).
    const again = { j1: 0 };
    client = await open(
      new InProcessNetwork(),
      clock,
      failingReads(ledger.as("client"), () => true, again),
    );
    await client.start();
    await until("the first read", 20_000, () => again.j1 >= 1 || undefined);
    await new Promise((r) => setTimeout(r, 100));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stopped = await Promise.race([
      client.stop().then(() => true),
      new Promise((r) => timer = setTimeout(() => r(false), 10_000)),
    ]);
    clearTimeout(timer);
    assert.equal(stopped, true, "stopped within 10 s");
    assert.equal(again.j1, 1);
  } finally {
    await client?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A worker `w1` on `ledger` that keeps its journal in `dir`, reading time from `clock`. */
function openWorker(
  dir: string,
  ledger: LocalLedger,
  network: InProcessNetwork,
  clock: ReturnType<typeof simulatedClock>,
  chain: ChainPort = ledger.as("w1"),
) {
  return openDurableNode({
    id: "w1",
    roles: ["worker"],
    worker: { hardware: "cpu", stake: 100n, capacity: 4, maxOpenBids: 32 },
    network: network.join("w1"),
    chain,
    clock,
    capabilityIntervalMs: 0,
    dataDir: `${dir}/w1`,
    checkpointEvery: 2,
  });
}

/** Has `w1` observe escrowed jobs `jobIds`, announced by their client; then stops both. */
async function observeAndStop(
  w1: DurableNode,
  network: InProcessNetwork,
  ledger: LocalLedger,
  clock: ReturnType<typeof simulatedClock>,
  jobIds: readonly string[],
): Promise<void> {
  const owner = network.join("client");
  await owner.start();
  const window = 2 * DECLINE_DEFAULTS.ttlMs;
  const s = spec({ bidWindowMs: window, verifierCount: 0 });
  for (const jobId of jobIds) {
    await escrowJob(ledger, jobId, "client", s);
    await announce(owner, jobId, "client", s, clock.now() + window);
    await until(`${jobId} taken`, 20_000, () => w1.node.job(jobId) ?? undefined);
  }
  await w1.stop();
  await owner.stop();
}

Deno.test("a restarted worker ends a job the chain refunded while it was down as the chain says (cancelled), not heard_late (review R6 M2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  const clock = simulatedClock(Date.now());
  let w1: DurableNode | undefined;
  try {
    let network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, clock);
    await w1.start();
    await observeAndStop(w1, network, ledger, clock, ["j1"]);
    // While w1 is down its client cancels: the chain refunds j1.
    await ledger.as("client").refund({ jobId: "j1", reason: "cancelled" });
    network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, simulatedClock(clock.now() + 1));
    assert.equal(w1.node.job("j1")?.state, "bidding", "restored from the journal");
    await w1.start();
    const ended = () =>
      w1!.node.job("j1")?.done ? w1!.node.job("j1")!.state : w1!.node.retiredJob("j1")?.state;
    await until("j1 ended", 20_000, () => ended());
    await until(
      "j1's escrow read again",
      20_000,
      () => w1!.node.stats.escrowReads > 0 || undefined,
    );
    assert.equal(ended(), "cancelled", "the chain's word: refunded");
  } finally {
    await w1?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restarted worker whose first read of a restored job's escrow fails does not read it again to end the job (review R6 M2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  const clock = simulatedClock(Date.now());
  let w1: DurableNode | undefined;
  try {
    let network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, clock);
    await w1.start();
    await observeAndStop(w1, network, ledger, clock, ["j1"]);
    await ledger.as("client").refund({ jobId: "j1", reason: "cancelled" });
    // The first escrow read fails (the chain's node unreachable); the next ones answer.
    let reads = 0;
    const real = ledger.as("w1");
    const flaky = new Proxy(real, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (key === "escrowOf") {
          return (jobId: string, options?: never) =>
            ++reads === 1
              ? Promise.reject(new Error("connection refused"))
              : target.escrowOf!(jobId, options);
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, simulatedClock(clock.now() + 1), flaky);
    await w1.start();
    const ended = () =>
      w1!.node.job("j1")?.done ? w1!.node.job("j1")!.state : w1!.node.retiredJob("j1")?.state;
    await until("j1 ended", 20_000, () => ended());
    assert.equal(ended(), "cancelled", "the chain's word: refunded");
    assert.ok(reads >= 1);
  } finally {
    await w1?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restarted worker's start and catch-up with the chain wait for none of its restored jobs' escrow reads (review R6 M2)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  const clock = simulatedClock(Date.now());
  let w1: DurableNode | undefined;
  try {
    let network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, clock);
    await w1.start();
    const ids = Array.from({ length: 20 }, (_, i) => `j${i}`);
    await observeAndStop(w1, network, ledger, clock, ids);
    // A chain whose escrow reads hang until the node stops (aborts them).
    let hanging = 0;
    const real = ledger.as("w1");
    const slow = new Proxy(real, {
      get(target, key) {
        if (key !== "escrowOf") {
          const value = Reflect.get(target, key);
          return typeof value === "function" ? value.bind(target) : value;
        }
        return (_jobId: string, options?: { signal?: AbortSignal }) =>
          new Promise((_, reject) => {
            hanging++;
            options?.signal?.addEventListener("abort", () => reject(options.signal!.reason));
          });
      },
    });
    network = new InProcessNetwork();
    w1 = await openWorker(dir, ledger, network, simulatedClock(clock.now() + 1), slow);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("start waited for the escrow reads")), 20_000);
    });
    try {
      await Promise.race([w1.start(), late]);
    } finally {
      clearTimeout(timer);
    }
    // A sliding window: at most 16 in flight, none answered.
    await until("16 reads in flight", 20_000, () => hanging === 16 || undefined);
    assert.equal(w1.node.job("j0")?.state, "bidding");
  } finally {
    await w1?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a restarted client reads again the restored escrows whose first read failed within the window of 16 (review R7 M-b)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "restart-snapshot-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  let client: DurableNode | undefined;
  try {
    const ids = Array.from({ length: 30 }, (_, i) => `e${i}`);
    const { open, restartAt } = await clientWithTwoJobs(dir, ledger, ids);
    // Each job's first read fails at once; the next ones hang until the node stops.
    const failed = new Set<string>();
    const reads = { first: 0, again: 0, inflight: 0, max: 0 };
    const real = ledger.as("client");
    const chain = new Proxy(real, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (key !== "escrowOf") return typeof value === "function" ? value.bind(target) : value;
        return (jobId: string, options?: { signal?: AbortSignal }) => {
          if (!failed.has(jobId)) {
            failed.add(jobId);
            reads.first++;
            return Promise.reject(new Error("error sending request: connection refused"));
          }
          reads.again++;
          reads.max = Math.max(reads.max, ++reads.inflight);
          return new Promise((_, reject) =>
            options?.signal?.addEventListener("abort", () => {
              reads.inflight--;
              reject(options.signal!.reason);
            }, { once: true })
          );
        };
      },
    });
    const clock = simulatedClock(restartAt);
    client = await open(new InProcessNetwork(), clock, chain);
    await client.start();
    await until("the first reads", 20_000, () => reads.first >= ids.length || undefined);
    await until("read again", 20_000, () => {
      clock.increment(1_000);
      return reads.again >= 16 || undefined;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(reads.max, 16, "16 in flight, no more");
    assert.equal(reads.again, 16);
  } finally {
    await client?.stop();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});
