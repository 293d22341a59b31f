/**
 * Sampled announcements (protocol v2, `protocols/sampling.ts`): in a market large enough, a job
 * reaches only the workers of its sample, the verifiers still hear it (the shard's watch topic),
 * and the owner refuses a bid from outside the sample, scoring its sender down.
 *
 * @module
 */
import assert from "node:assert/strict";
import { jobContextOf } from "../actors/tree.ts";
import { LocalLedger } from "../chain/local_ledger.ts";
import { jobAddress } from "../machines/address.ts";
import type { JobSpec } from "../machines/types.ts";
import {
  announcementTopic,
  decodeMessage,
  encodeMessage,
  isAnnouncementTopic,
  shardPartOf,
  type Topic,
  TOPICS,
  WireError,
} from "../protocols/messages.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import {
  inSample,
  jobSamplePrefix,
  MAX_SAMPLE_BITS,
  sampleBitsFor,
  samplePrefix,
} from "../protocols/sampling.ts";
import { createNode, type Node } from "../runtime/kernel/mod.ts";
import { spec as drivenSpec } from "./_drive.ts";
import { finished, until } from "./_poll.ts";

/** A CPU matmul job, with wide margins: the machine running the tests is shared and loaded. */
function spec(): JobSpec {
  return drivenSpec({
    bidWindowMs: 2_000,
    executionMs: 20_000,
    verificationMs: 20_000,
    maxAttempts: 1,
    verifierCount: 1,
  });
}

Deno.test("sampling: the depth aims at the bidders asked for, and a sample is a hash prefix", () => {
  assert.equal(sampleBitsFor(0), 0);
  assert.equal(sampleBitsFor(15), 0, "fewer than 2 x 8 workers: every one hears the job");
  assert.equal(sampleBitsFor(16), 1);
  assert.equal(sampleBitsFor(1000), 6, "1000 / 2^6 = 16 workers a sample");
  assert.equal(sampleBitsFor(1_000_000), MAX_SAMPLE_BITS, "never deeper than the topics go");
  assert.equal(sampleBitsFor(100, 4), 4);
  assert.equal(samplePrefix("x", 5), samplePrefix("x", 8).slice(0, 5), "prefixes nest");
  assert.match(samplePrefix("x", 8), /^[01]{8}$/);
  assert.ok(inSample("anyone", "job", 1, 0), "bits 0 is everyone");
  // About 1 in 2^bits of the workers fall in a sample, and each attempt draws another one.
  const workers = Array.from({ length: 4096 }, (_, i) => `w${i}`);
  const share = workers.filter((w) => inSample(w, "job-a", 1, 4)).length / workers.length;
  assert.ok(share > 0.04 && share < 0.085, `share ${share}`);
  const first = workers.filter((w) => inSample(w, "job-a", 1, 4));
  const second = workers.filter((w) => inSample(w, "job-a", 2, 4));
  assert.notDeepEqual(first, second, "a re-auction draws a new sample");
});

Deno.test("sampling: an announcement must be on its own sample's topic, or the watch topic", () => {
  const s = spec();
  const key = { hardware: "cpu" as const, kind: "matmul" };
  const announce = (sample?: number) => ({
    type: "job.announce" as const,
    jobId: "job-1",
    owner: "client",
    attempt: 1,
    bidWindowEndsAt: 1_000,
    spec: s,
    ...(sample !== undefined ? { sample } : {}),
  });
  const prefix = jobSamplePrefix("job-1", 1, 3);
  const own = announcementTopic(key, { sample: prefix });
  const other = announcementTopic(key, {
    sample: prefix.slice(0, 2) + (prefix[2] === "0" ? "1" : "0"),
  });
  const bytes = (sample?: number) => encodeMessage(TOPICS.jobs, announce(sample) as never);
  assert.ok(isAnnouncementTopic(own) && isAnnouncementTopic(announcementTopic(key, "watch")));
  assert.ok(!isAnnouncementTopic(`${announcementTopic(key)}/012`));
  assert.ok(!isAnnouncementTopic(`${announcementTopic(key)}/${"0".repeat(MAX_SAMPLE_BITS + 1)}`));
  assert.deepEqual(shardPartOf(own), { sample: prefix });
  assert.equal(decodeMessage(own as Topic, bytes(3)).type, "job.announce");
  assert.equal(decodeMessage(announcementTopic(key, "watch"), bytes(3)).type, "job.announce");
  const refused = (topic: string, data: Uint8Array) =>
    assert.throws(
      () => decodeMessage(topic as Topic, data),
      (e) => e instanceof WireError && e.code === "wrong_shard",
    );
  refused(other, bytes(3)); // another sample's workers
  refused(own, bytes(2)); // the wrong depth
  refused(announcementTopic(key), bytes(3)); // a sampled job on the whole shard
  refused(own, bytes()); // an unsampled job on a sample
  refused(announcementTopic(key, "watch"), bytes()); // an unsampled job on the watch topic
});

Deno.test("sampling: a job reaches only its sample's workers, the verifier still verifies, made-up workers do not deepen the sample, and a bid from outside it is ignored", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const announcementsHeard = new Map<string, number>();
  const counting = (id: string, port: NetworkPort): NetworkPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "subscribe") {
          return (topic: Topic, validate: never, deliver: (m: never) => void) =>
            target.subscribe(topic, validate, (m) => {
              if (topic.startsWith(`${TOPICS.jobs}/`)) {
                announcementsHeard.set(id, (announcementsHeard.get(id) ?? 0) + 1);
              }
              deliver(m as never);
            });
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const ports = new Map<string, NetworkPort>();
  const node = (id: string, extra: Record<string, unknown>): Node =>
    createNode({
      id,
      network: counting(id, ports.set(id, network.join(id)).get(id)!),
      chain: ledger.as(id),
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      ...extra,
    } as never);
  // 24 workers; the client aims at 4 bidders: floor(log2(24 / 4)) = 2 bits, 1 in 4 of them.
  const workerIds = Array.from({ length: 24 }, (_, i) => `w${String(i).padStart(2, "0")}`);
  const client = node("client", { roles: ["client"], sampling: { bidders: 4 } });
  const workers = workerIds.map((id) =>
    node(id, { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } })
  );
  const verifier = node("verifier", { roles: ["verifier"] });
  const all = [client, ...workers, verifier];
  // A job id whose sample holds at least one worker and leaves one out.
  const jobId = Array.from({ length: 64 }, (_, i) => `sampled-${i}`).find((id) => {
    const n = workerIds.filter((w) => inSample(w, id, 1, 2)).length;
    return n >= 2 && n < workerIds.length;
  })!;
  const sampled = new Set(workerIds.filter((w) => inSample(w, jobId, 1, 2)));
  const outsider = workerIds.find((w) => !sampled.has(w))!;
  try {
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    // 40 made-up workers advertise capabilities without any stake on chain: counted, they would
    // take the client to 3 bits (64 workers / 4), a sample with fewer real workers in it.
    for (let i = 0; i < 40; i++) {
      const sybil = network.join(`sybil-${i}`);
      await sybil.start();
      await sybil.publish(
        TOPICS.capabilities,
        encodeMessage(TOPICS.capabilities, {
          type: "node.capabilities",
          node: `sybil-${i}`,
          roles: ["worker"],
          hardware: "cpu",
          models: [],
        }),
      );
    }
    const before = new Map(announcementsHeard);
    const done = finished(client, jobId);
    client.submitJob({ spec: spec(), jobId });
    // Before the window closes: an outsider bids anyway (it heard of the job second hand).
    const rejectedBefore = client.stats.wireRejected;
    const ignoredBefore = client.stats.sampledOut;
    const forged = encodeMessage(TOPICS.bids, {
      type: "bid.submit",
      bidId: `${jobId}.1.${outsider}`,
      jobId,
      worker: outsider,
      price: 1n,
      etaMs: 10,
      stake: 100n,
      reputation: 1000,
      hardware: "cpu",
    });
    // Once the job is announced (its sample drawn), sent from the outsider's own identity,
    // straight to the owner.
    const inside = [...sampled][0]!;
    await until(
      "the announcement",
      30_000,
      () => (announcementsHeard.get(inside) ?? 0) > (before.get(inside) ?? 0) ? true : undefined,
    );
    await ports.get(outsider)!.send("client", TOPICS.bids, forged);
    assert.equal(await done, "settled");
    // Ignored, not scored: an honest worker that joined late bids from a snapshot, which does
    // not carry the sample.
    assert.equal(client.stats.sampledOut, ignoredBefore + 1, "the outsider's bid is ignored");
    assert.equal(client.stats.wireRejected, rejectedBefore);
    const context = jobContextOf(client.tree.get(jobAddress(jobId))!);
    const bidders = Object.values(context.bids).map((b) => b.worker);
    assert.ok(bidders.length >= 1);
    for (const bidder of bidders) {
      assert.ok(sampled.has(bidder), `bid from ${bidder}, outside the sample`);
    }
    assert.ok(sampled.has(context.winner!.worker), `winner ${context.winner?.worker}`);
    for (const w of workerIds) {
      const heard = (announcementsHeard.get(w) ?? 0) - (before.get(w) ?? 0);
      assert.equal(heard, sampled.has(w) ? 1 : 0, `${w} heard the announcement ${heard} times`);
    }
    // The verifier hears no announcement (issue 16 item 2): the owner's assignment brings it
    // the job the chain chose it for, and it verifies it.
    assert.equal(
      (announcementsHeard.get("verifier") ?? 0) - (before.get("verifier") ?? 0),
      0,
      "the verifier hears no announcement",
    );
    assert.deepEqual(context.verifiers, ["verifier"]);
    await until(
      "the verifier's actor",
      30_000,
      () => verifier.job(jobId)?.state === "settled" || undefined,
    );
  } finally {
    for (const n of all) await n.stop();
    ledger.close();
  }
});

Deno.test("sampling: a sample no connected peer subscribes to falls back to the whole shard", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  // The client's port knows of no subscriber to any sample topic (as libp2p when it is not
  // connected to any worker of the sample): announced there, the job would reach nobody.
  const blind = (port: NetworkPort): NetworkPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "topicPeers") return (topic: string) => topic.split("/").length > 6 ? 0 : 5;
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const node = (id: string, extra: Record<string, unknown>, port = network.join(id)): Node =>
    createNode({
      id,
      network: port,
      chain: ledger.as(id),
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      ...extra,
    } as never);
  const client = node(
    "client",
    { roles: ["client"], sampling: { bits: 3 } },
    blind(network.join("client")),
  );
  const workers = Array.from(
    { length: 6 },
    (_, i) => node(`w${i}`, { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } }),
  );
  const all = [client, ...workers];
  try {
    for (const n of all) await n.start();
    const s = { ...spec(), verifierCount: 0 };
    const done = finished(client, "fallback-1");
    client.submitJob({ spec: s, jobId: "fallback-1" });
    assert.equal(await done, "settled");
    assert.equal(client.stats.sampleFallbacks, 1);
    const context = jobContextOf(client.tree.get(jobAddress("fallback-1"))!);
    // Every worker heard it: 6 bids (3 bits would have reached about 1 in 8 of them).
    assert.equal(Object.keys(context.bids).length, 6);
  } finally {
    for (const n of all) await n.stop();
    ledger.close();
  }
});
