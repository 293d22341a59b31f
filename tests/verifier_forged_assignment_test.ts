/**
 * The review's forgery (issue 16, "high 2"), end to end on the in-process network and a real
 * local ledger: where the job's client account is no node id (the owner's node is `owner`, its
 * chain account `client`), a peer that is not the owner sends the chosen verifier the job's
 * assignment first, once with attempt 16 and a 1 ms verification window, once with the escrow's
 * terms and attempt 16, before the verifier's chain follower shows the chain's naming. The first
 * costs its sender; the second is kept (only its attempt is a lie, and the chain has not spoken
 * yet); the verifier's actor takes the attempt from the chain's `WorkerAssigned` and attests on
 * it, so the chain counts its attestation and the job settles.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { JobSpec } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { encodeMessage, type Topic, TOPICS } from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { createNode, MemoryJournal } from "../runtime/kernel/mod.ts";
import { oneVerifierSpec } from "./_drive.ts";
import { gate, lagging } from "./_chain_lag.ts";
import { finished, until } from "./_poll.ts";

Deno.test("where the client is no node id, a non-owner's assignment sent first with attempt 16 no longer keeps the chosen verifier out: it attests on the chain's attempt", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const forged = gate();
  /** The owner's copies to verifiers wait until the forgeries went first. */
  const owners = (port: NetworkPort): NetworkPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "send") {
          return async (peer: string, topic: Topic, data: Uint8Array, o?: object) => {
            if (topic === TOPICS.assignments && peer === "v1") await forged.opened;
            return target.send(peer, topic, data, o);
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const common = { capabilityIntervalMs: 0, retainFinishedMs: null };
  const journal = new MemoryJournal();
  // The owner's node is "owner"; the job's client on chain is the account "client".
  const owner = createNode({
    id: "owner",
    roles: ["client"],
    network: owners(network.join("owner")),
    chain: ledger.as("client"),
    ...common,
  });
  const worker = createNode({
    id: "w1",
    roles: ["worker"],
    network: network.join("w1"),
    chain: ledger.as("w1"),
    worker: { hardware: "cpu", stake: 100n },
    ...common,
  });
  const verifier = createNode({
    id: "v1",
    roles: ["verifier"],
    network: network.join("v1"),
    chain: lagging(ledger.as("v1"), forged.opened),
    journal,
    ...common,
  });
  const mallory = network.join("mallory");
  const all = [owner, worker, verifier];
  const jobId = "forged-1";
  const spec: JobSpec = oneVerifierSpec();
  const sent: string[] = [];
  // Mallory reads the chain too: once the chain assigns the job, it sends the chosen verifier
  // its forgeries before the owner's copy goes.
  const watch = ledger.as("mallory").subscribe((event) => {
    if (event.name !== "WorkerAssigned" || event.jobId !== jobId) return;
    const forgery = (s: JobSpec) =>
      encodeMessage(TOPICS.assignments, {
        type: "job.assign",
        jobId,
        worker: event.worker,
        bidId: `${jobId}.16.${event.worker}`,
        price: event.price,
        verifiers: [...event.verifiers],
        attempt: 16,
        spec: s,
      });
    void (async () => {
      for (const v of event.verifiers) {
        await mallory.send(v, TOPICS.assignments, forgery({ ...spec, verificationMs: 1 }));
        sent.push(`${v}: a 1 ms window`);
        await mallory.send(v, TOPICS.assignments, forgery(spec));
        sent.push(`${v}: the escrow's terms`);
      }
      // Both were judged (the first refused, the second kept) before the verifier's chain
      // follower shows the naming.
      await until(
        "the forgeries judged",
        10_000,
        () => (verifier.stats.wireRejected > 0 && verifier.declined(jobId)) || undefined,
      );
      forged.open();
    })();
  });
  try {
    await mallory.start();
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const done = finished(owner, jobId);
    owner.submitJob({ spec, jobId });
    assert.equal(await done, "settled", "the verifier's attestation reached a quorum");
    assert.deepEqual(sent, ["v1: a 1 ms window", "v1: the escrow's terms"]);
    // The forgery with the escrow's terms was kept first, its attempt the sender's word...
    const kept = journal.entries.filter((e) =>
      e.target === `job:${jobId}` && e.event.type === "job.declined"
    );
    assert.deepEqual(kept.map((e) => [e.event["owner"], e.event["attempt"]]), [["mallory", 16]]);
    // ...and the actor follows the chain's attempt, on which the chain counted its attestation.
    await until("the verifier's actor", 10_000, () => verifier.job(jobId));
    assert.equal(verifier.job(jobId)!.context.attempt, 1);
    const events = (await ledger.as("reader").eventsSince({ blockNumber: 0, eventIndex: 0 }, {
      limit: 1000,
    })).events;
    const attested = events.flatMap((e) =>
      e.name === "AttestationRecorded" && e.jobId === jobId ? [[e.verifier, e.attempt]] : []
    );
    assert.deepEqual(attested, [["v1", 1]]);
    // The window's forgery cost its sender at the verifier.
    const score = verifier.peers().find((p) => p.peer === "mallory")?.score;
    assert.ok(score !== undefined && score < 100, `mallory's score: ${score}`);
  } finally {
    watch();
    for (const n of all) await n.stop();
    await mallory.stop();
    network.close();
    ledger.close();
  }
});
