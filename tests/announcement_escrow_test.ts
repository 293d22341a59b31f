/**
 * An announcement of a job must match the job's escrow, whether the worker's chain showed it
 * before (the announcement is refused) or after (the job is dropped): a peer
 * that read the escrow cannot announce the job as its own (the workers would bid to it and the
 * job expire) nor with another spec (the workers would run another input); each costs its sender
 * (review R3). The owner's own announcement, or a relay of it, is taken.
 *
 * Two kinds of node: one whose chain port reads a job's escrow on demand (`ChainPort.escrowOf`:
 * it reads the escrow of a job it takes, and drops a forger's), and one whose port cannot (it
 * reads every job's escrow as it comes, and refuses a forger's announcement at the wire).
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainPort } from "../chain/port.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { createNode } from "../runtime/kernel/mod.ts";
import { announceSpec, escrowOfSpec, spec } from "./_drive.ts";

/** Escrows job `jobId` for spec `s` on `ledger`, as account `client`. */
const escrowJob = (ledger: LocalLedger, jobId: string, client: string, s: JobSpec) =>
  ledger.as(client).submitJob(escrowOfSpec(jobId, s));

/** `from` announces job `jobId` with spec `s` as `owner`'s, its window a minute from now. */
const announceJob = (from: NetworkPort, jobId: string, owner: string, s: JobSpec) =>
  announceSpec(from, jobId, owner, s, Date.now() + 60_000);

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

/** `port` without its escrow read (as an adapter that has none). */
function withoutEscrowReads(port: ChainPort): ChainPort {
  return new Proxy(port, {
    get(target, prop) {
      if (prop === "escrowOf") return undefined;
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function market(readsEscrows: boolean) {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
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
    worker: { hardware: "cpu", stake: 100n },
    network: network.join("w1"),
    chain: readsEscrows ? ledger.as("w1") : withoutEscrowReads(ledger.as("w1")),
    capabilityIntervalMs: 0,
  });
  const mallory = network.join("mallory");
  return { ledger, client, worker, mallory };
}

Deno.test("an announcement that does not match the job's escrow (owner, spec) is refused at the sender's cost (a port without escrow reads)", async () => {
  const { ledger, client, worker, mallory } = market(false);
  try {
    await ledger.as("w1").stake({ amount: 100n });
    await client.start();
    await worker.start();
    await mallory.start();
    const real = spec({ bidWindowMs: 60_000, verifierCount: 0 });
    const escrow = (jobId: string, account: string) => escrowJob(ledger, jobId, account, real);
    const announce = (jobId: string, s: typeof real) => announceJob(mallory, jobId, "mallory", s);
    // Job a: escrowed by "client", a node here. Job b: by an account no node goes by (an EVM or
    // Starknet address). Job c: not escrowed yet when announced (gossip can outrun the chain).
    await escrow("a", "client");
    await escrow("b", "0xb0b");
    await until("the worker's chain showed both escrows", () => worker.stats.chainIgnored >= 2);
    const rejected = worker.stats.wireRejected;
    // Job a as mallory's own: the workers would bid to mallory and the job expire.
    await announce("a", real);
    // Job b with another input (its commitment made to match): the workers would run it.
    const input = { a: [[9, 9], [9, 9]], b: [[1, 0], [0, 1]] };
    await announce("b", { ...real, input });
    await until("both forgeries refused", () => worker.stats.wireRejected === rejected + 2);
    assert.equal(worker.job("a"), undefined, "no actor from a forgery");
    assert.equal(worker.job("b"), undefined, "no actor from a forgery");
    // The same announcement of a job whose escrow the worker has not seen is taken for now (the
    // escrow check comes later): what refused the two above was their escrow.
    await announce("c", real);
    await until("an announcement ahead of the chain is taken", () => worker.job("c") !== undefined);
    assert.equal(worker.stats.wireRejected, rejected + 2);
    // Then the chain shows job c's escrow, by "client": the job mallory announced as its own is
    // dropped, and mallory pays for it.
    const score = () => worker.peers().find((p) => p.peer === "mallory")?.score ?? 0;
    const before = score();
    await escrow("c", "client");
    await until(
      "the forged job is dropped once its escrow shows",
      () => worker.job("c") === undefined,
    );
    assert.equal(worker.retiredJob("c")?.state, "unescrowed");
    await until("the announcer paid for it", () => score() < before);
  } finally {
    await worker.stop();
    await client.stop();
    await mallory.stop();
    ledger.close();
  }
});

Deno.test("a worker that reads escrows on demand reads a job's escrow before it takes its announcement: a forgery is refused at the sender's cost, a job that ended is let by", async () => {
  const { ledger, client, worker, mallory } = market(true);
  try {
    await ledger.as("w1").stake({ amount: 100n });
    await client.start();
    await worker.start();
    await mallory.start();
    const real = spec({ bidWindowMs: 60_000, verifierCount: 0 });
    const escrow = (jobId: string, account: string) => escrowJob(ledger, jobId, account, real);
    const announce = (jobId: string, s: typeof real) => announceJob(mallory, jobId, "mallory", s);
    const score = () => worker.peers().find((p) => p.peer === "mallory")?.score ?? 0;
    await escrow("a", "client");
    await escrow("b", "0xb0b");
    await escrow("d", "0xb0b");
    await ledger.as("0xb0b").refund({ jobId: "d", reason: "cancelled" });
    // A job announced ahead of its escrow is taken for now (its escrow read finds none).
    await announce("c", real);
    await until("an announcement ahead of the chain is taken", () => worker.job("c") !== undefined);
    // Job a as mallory's own, job b with another input: each read first, then refused at the
    // wire, at mallory's cost; no actor, nothing archived.
    let before = score();
    let rejected = worker.stats.wireRejected;
    await announce("a", real);
    await until("job a refused", () => worker.stats.wireRejected === rejected + 1);
    await until("mallory paid for job a", () => score() < before);
    before = score();
    rejected = worker.stats.wireRejected;
    const input = { a: [[9, 9], [9, 9]], b: [[1, 0], [0, 1]] };
    await announce("b", { ...real, input });
    await until("job b refused", () => worker.stats.wireRejected === rejected + 1);
    await until("mallory paid for job b", () => score() < before);
    for (const jobId of ["a", "b"]) {
      assert.equal(worker.job(jobId), undefined, `no actor for forged ${jobId}`);
      assert.equal(worker.retiredJob(jobId), undefined, `nothing archived for forged ${jobId}`);
    }
    // Job d, refunded before mallory announced it with its own spec (the client is no node here,
    // so anyone may announce it): let by, at nobody's cost (a late relay is no forgery).
    before = score();
    rejected = worker.stats.wireRejected;
    await announce("d", real);
    await until("job d's escrow read", () => worker.stats.escrowReads === 5);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(worker.job("d"), undefined, "no actor for a job that ended");
    assert.equal(worker.retiredJob("d"), undefined);
    assert.equal(worker.stats.wireRejected, rejected);
    assert.equal(score(), before, "a late announcement of an ended job costs nothing");
    // The worker read the four escrows (c's twice: as its announcement came, and as its actor was
    // made, both before the escrow), and did not read every job's escrow as it came.
    assert.equal(worker.stats.escrowReads, 5);
    assert.equal(worker.stats.chainIgnored, 0);
    // Job c, announced ahead of its escrow, was taken; it is checked when the escrow shows.
    before = score();
    await escrow("c", "client");
    await until("job c dropped once its escrow shows", () => worker.job("c") === undefined);
    assert.equal(worker.retiredJob("c")?.state, "unescrowed");
    await until("mallory paid for job c", () => score() < before);
  } finally {
    await worker.stop();
    await client.stop();
    await mallory.stop();
    ledger.close();
  }
});

Deno.test("a failed escrow read blames no one: the check comes again, and drops the job only when the chain answers that it holds no escrow", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const inner = ledger.as("w1");
  let failing = true;
  let reads = 0;
  const port = new Proxy(inner, {
    get(target, key) {
      if (key === "escrowOf") {
        return (jobId: string) => {
          reads++;
          return failing
            ? Promise.reject(new Error("the chain node is unreachable"))
            : target.escrowOf!(jobId);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    worker: { hardware: "cpu", stake: 100n },
    network: network.join("w1"),
    chain: port,
    capabilityIntervalMs: 0,
    // The escrow check is due 100 ms after the announcement.
    escrowWaitMs: 100,
  });
  const mallory = network.join("mallory");
  try {
    await inner.stake({ amount: 100n });
    await worker.start();
    await mallory.start();
    const s = spec({ bidWindowMs: 60_000, verifierCount: 0 });
    await announceJob(mallory, "never", "mallory", s);
    // The read as the job came and the one as its check was due both failed: the job stays.
    await until("the check read the chain", () => reads >= 2);
    assert.ok(worker.job("never"), "not dropped on a failed read");
    assert.equal(worker.retiredJob("never"), undefined);
    const score = () => worker.peers().find((p) => p.peer === "mallory")?.score ?? 0;
    const before = score();
    // The chain answers again: the next check (a grace later) finds no escrow, and blames.
    failing = false;
    for (let i = 0; i < 1_000 && worker.retiredJob("never") === undefined; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(worker.retiredJob("never")?.state, "unescrowed");
    await until("the announcer paid for it", () => score() < before);
    assert.ok(reads >= 3);
  } finally {
    await worker.stop();
    await mallory.stop();
    ledger.close();
  }
});

for (const busy of [false, true]) {
  Deno.test(
    `a job dropped as a forger's announcement is ${
      busy ? "triaged again (a busy worker declines it)" : "taken"
    } from its real owner's announcement after it (review R3)`,
    async () => {
      const ledger = LocalLedger.open(":memory:");
      const network = new InProcessNetwork();
      const worker = createNode({
        id: "w1",
        roles: ["worker"],
        worker: { hardware: "cpu", stake: 100n, maxOpenBids: 1 },
        network: network.join("w1"),
        chain: ledger.as("w1"),
        capabilityIntervalMs: 0,
      });
      const owner = network.join("owner");
      const mallory = network.join("mallory");
      try {
        await ledger.as("w1").stake({ amount: 100n });
        await worker.start();
        await owner.start();
        await mallory.start();
        const real = spec({ bidWindowMs: 60_000, verifierCount: 0 });
        const announce = (from: NetworkPort, who: string) => announceJob(from, "x", who, real);
        // Mallory outruns the owner, and the worker's chain, with the job as her own: taken, as a
        // job announced ahead of its escrow is. Then the escrow shows the owner's: dropped.
        await announce(mallory, "mallory");
        await until(
          "the forgery taken for now",
          () => worker.job("x")?.context.owner === "mallory",
        );
        await escrowJob(ledger, "x", "owner", real);
        await until("the forgery dropped", () => worker.retiredJob("x")?.state === "unescrowed");
        if (busy) {
          // Another job takes the worker's one bid slot: the owner's announcement is triaged as any
          // job heard of, and declined.
          await announceJob(owner, "other", "owner", real);
          await until("the other job taken", () => worker.job("other") !== undefined);
          await announce(owner, "owner");
          await until("the real job declined", () => worker.declined("x")?.reason === "busy");
          assert.equal(worker.job("x"), undefined);
          return;
        }
        // The owner's own announcement comes after: the worker takes the job from it.
        await announce(owner, "owner");
        await until("the real job taken", () => worker.job("x")?.context.owner === "owner");
        // A second forgery of it now meets the escrow the worker read: refused at the wire.
        const rejected = worker.stats.wireRejected;
        await announce(mallory, "mallory");
        await until("the second forgery refused", () => worker.stats.wireRejected === rejected + 1);
        assert.equal(worker.job("x")?.context.owner, "owner");
      } finally {
        await worker.stop();
        await owner.stop();
        await mallory.stop();
        ledger.close();
      }
    },
  );
}
