/**
 * Protocol v2 end to end on the in-process network and a real local ledger (issue 16 item 1):
 * announcements reach only the workers that can run the job (topics sharded by hardware and
 * kind); bids go to the job's owner alone, results to the owner and the chosen verifiers; a
 * worker that declines handles one delivery for the job, journals one event, and holds no actor.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { JobSpec } from "../machines/types.ts";
import { type Topic, topicFamily, TOPICS } from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { commitmentOf } from "../runtime/compute/mod.ts";
import { createNode, MemoryJournal } from "../runtime/kernel/mod.ts";
import { finished } from "./_poll.ts";

function spec(hardware: "cpu" | "gpu"): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    input,
    inputCommitment: commitmentOf(input),
    requirements: { hardware, minStake: 10n },
    maxPrice: 100n,
    // Wide margins: the machine running the tests is shared and loaded (both CPU workers' bids
    // must be in before the window closes).
    bidWindowMs: hardware === "cpu" ? 2_000 : 500,
    executionMs: 20_000,
    verificationMs: 20_000,
    maxAttempts: 1,
    verifierCount: 1,
  };
}

/** Deliveries a node's port handed it, by topic family (what reached the node at all). */
type Heard = Map<string, number>;

function counting(port: NetworkPort, heard: Heard): NetworkPort {
  return new Proxy(port, {
    get(target, key) {
      if (key === "subscribe") {
        return (topic: Topic, validate: never, deliver: (m: never) => void) =>
          target.subscribe(topic, validate, (m) => {
            const family = topicFamily(topic);
            heard.set(family, (heard.get(family) ?? 0) + 1);
            deliver(m as never);
          });
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

Deno.test("protocol v2: announcements reach the workers that can run the job; bids, results and attestations reach only their parties", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const heard = new Map<string, Heard>();
  const journals = new Map<string, MemoryJournal>();
  const node = (id: string, extra: Record<string, unknown>) => {
    const journal = new MemoryJournal();
    journals.set(id, journal);
    const counts: Heard = new Map();
    heard.set(id, counts);
    return createNode({
      id,
      network: counting(network.join(id), counts),
      chain: ledger.as(id),
      journal,
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      ...extra,
    } as never);
  };
  const client = node("client", { roles: ["client"] });
  const wa = node("wa", { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } });
  const wb = node("wb", { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } });
  // A GPU worker that asks more than any job here pays: it hears CPU and GPU jobs and declines.
  const wg = node("wg", {
    roles: ["worker"],
    worker: { hardware: "gpu", stake: 100n, minPrice: 1_000n },
  });
  const v1 = node("v1", { roles: ["verifier"] });
  const all = [client, wa, wb, wg, v1];
  try {
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    assert.deepEqual(client.shardTopics(), [], "a client alone listens on no shard");
    // A direct topic is never gossiped: a publish on it is refused, naming why.
    const stray = network.join("stray");
    await stray.start();
    await assert.rejects(stray.publish(TOPICS.bids, new Uint8Array(1)), /direct topic/);
    await stray.stop();
    // Whole shards (a worker also hears its own samples, a verifier every shard's watch topic).
    const whole = (topics: string[]) => topics.filter((t) => t.split("/").length === 6);
    assert.deepEqual(whole(wa.shardTopics()), ["/ciro/jobs/2/cpu/matmul"]);
    assert.deepEqual(whole(wg.shardTopics()), [
      "/ciro/jobs/2/cpu/matmul",
      "/ciro/jobs/2/gpu/matmul",
    ]);
    const before = (id: string) => new Map(heard.get(id)!);
    const base = new Map(all.map((n) => [n.id, before(n.id)]));
    const since = (id: string, family: string) =>
      (heard.get(id)!.get(family) ?? 0) - (base.get(id)!.get(family) ?? 0);

    const done = finished(client, "cpu-1");
    client.submitJob({ spec: spec("cpu"), jobId: "cpu-1" });
    assert.equal(await done, "settled");
    const winner = client.job("cpu-1")!.context.winner!.worker;
    const loser = winner === "wa" ? "wb" : "wa";
    // Each CPU-capable worker heard the announcement once; the client heard its own bids only.
    for (const id of ["wa", "wb", "wg"]) assert.equal(since(id, TOPICS.jobs), 1, id);
    assert.equal(since("client", TOPICS.bids), 2, "both CPU workers bid, to the owner");
    for (const id of ["wa", "wb", "wg", "v1"]) {
      assert.equal(since(id, TOPICS.bids), 0, `${id} heard no bid`);
    }
    // The result went to the owner and the chosen verifier, not to the losing bidder.
    assert.equal(since("client", TOPICS.results), 1);
    assert.equal(since("v1", TOPICS.results), 1);
    assert.equal(since(loser, TOPICS.results), 0, "the loser heard no result");
    assert.equal(since("wg", TOPICS.results), 0);
    // The attestation went to the owner alone.
    assert.equal(since("client", TOPICS.attestations), 1);
    for (const id of ["wa", "wb", "wg"]) assert.equal(since(id, TOPICS.attestations), 0, id);
    // The declining GPU worker: one delivery, one journaled event, no actor.
    assert.equal(wg.job("cpu-1"), undefined);
    assert.equal(wg.declined("cpu-1")?.reason, "price_below_floor");
    const wgEntries = journals.get("wg")!.entries.filter((e) => e.target === "job:cpu-1");
    assert.deepEqual(wgEntries.map((e) => e.event.type), ["job.declined"]);
    // Nor did the job's chain events reach it: its chain port reads escrows on demand, and it
    // read this one once, as the announcement came, before it triaged it.
    assert.equal(wg.stats.chainIgnored, 0, "the chain's news of the job did not reach it");
    assert.equal(wg.stats.escrowReads, 1, "one read of the job's escrow");

    // A GPU job: the CPU workers never hear of it.
    const gpuBefore = { wa: since("wa", TOPICS.jobs), wg: since("wg", TOPICS.jobs) };
    const gpu = finished(client, "gpu-1");
    client.submitJob({ spec: spec("gpu"), jobId: "gpu-1" });
    assert.equal(await gpu, "expired", "the only GPU worker asks too much");
    assert.equal(since("wa", TOPICS.jobs), gpuBefore.wa, "a CPU worker never hears a GPU job");
    assert.equal(since("wg", TOPICS.jobs), gpuBefore.wg + 1);
    for (const id of ["wa", "wb"]) {
      assert.equal(
        journals.get(id)!.entries.filter((e) => e.target === "job:gpu-1").length,
        0,
        `${id} journaled nothing of the GPU job`,
      );
    }
  } finally {
    for (const n of all) await n.stop();
    network.close();
    ledger.close();
  }
});
