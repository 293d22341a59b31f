/**
 * A node keeps a job actor only for a job it has a role in (issue 16 item 2), end to end on the
 * in-process network and a real local ledger: a worker that declines a job journals one event for
 * it and holds no actor, and says why over HTTP; a verifier that declined it (no role) gets its
 * actor when the chain chooses it, and the job settles.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode, MemoryJournal } from "../runtime/kernel/mod.ts";
import { Cockpit, statusApp } from "../runtime/ops/mod.ts";
import { oneVerifierSpec as spec } from "./_drive.ts";
import { finished } from "./_poll.ts";

Deno.test("a worker that declines a job journals one event for it and holds no actor; a verifier gets its actor when the chain chooses it", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const journals = new Map<string, MemoryJournal>();
  const node = (id: string, extra: Record<string, unknown>) => {
    const journal = new MemoryJournal();
    journals.set(id, journal);
    return createNode({
      id,
      network: network.join(id),
      chain: ledger.as(id),
      journal,
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      ...extra,
    } as never);
  };
  const client = node("client", { roles: ["client"] });
  const w1 = node("w1", { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } });
  // w2 asks more than any job here pays: it declines them all.
  const w2 = node("w2", {
    roles: ["worker"],
    worker: { hardware: "cpu", stake: 100n, minPrice: 1_000n },
  });
  const v1 = node("v1", { roles: ["verifier"] });
  const all = [client, w1, w2, v1];
  try {
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const jobIds = ["d-1", "d-2"];
    for (const jobId of jobIds) {
      const done = finished(client, jobId);
      client.submitJob({ spec: spec(), jobId });
      assert.equal(await done, "settled");
    }
    await Promise.all(all.map((n) => n.settled()));
    for (const jobId of jobIds) {
      const target = `job:${jobId}`;
      const about = (id: string, source: string) =>
        journals.get(id)!.entries.filter((e) => e.target === target && e.source === source)
          .map((e) => e.event.type);
      // w2 declined: one network event, its decline; no actor, a record of why.
      assert.deepEqual(about("w2", "network"), ["job.declined"]);
      assert.equal(w2.job(jobId), undefined);
      assert.equal(w2.declined(jobId)?.reason, "price_below_floor");
      // w1 bid and won: the announcement is all it journaled from the network (not the result
      // gossip nor the attestations, which are not its to weigh).
      assert.deepEqual(about("w1", "network"), ["job.announced"]);
      assert.equal(w1.job(jobId)?.state, "settled");
      // v1 had no role until the chain chose it: a decline (keeping the spec), then its actor.
      assert.equal(about("v1", "network")[0], "job.declined");
      assert.equal(v1.job(jobId)?.state, "settled");
      assert.deepEqual(v1.job(jobId)?.context.verifiers, ["v1"]);
      // The client, as owner, followed everything.
      assert.equal(client.job(jobId)?.state, "settled");
    }
    // GET /jobs/:id on w2 says why it did not bid.
    const cockpit = new Cockpit(w2, { chain: ledger.as("w2") });
    try {
      const response = await statusApp(w2, cockpit).fetch(
        new Request("http://127.0.0.1/jobs/d-1"),
      );
      assert.equal(response.status, 200);
      const body = await response.json();
      assert.equal(body.state, "declined");
      assert.equal(body.declined.reason, "price_below_floor");
      assert.equal(body.declined.owner, "client");
      assert.equal(body.declined.spec, undefined);
    } finally {
      cockpit.close();
    }
  } finally {
    for (const n of all) await n.stop();
    network.close();
    ledger.close();
  }
});
