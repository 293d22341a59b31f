/**
 * Verifiers learn a job only when chosen (issue 16 item 2), end to end on the in-process network
 * and a real local ledger: a verifier subscribes to no announcement topic, the chosen one learns
 * the job from its owner's assignment (which carries the spec to it, not to the winner) and
 * verifies it, and the one the chain did not choose journals nothing about the job.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { decodeMessage, type Topic, TOPICS } from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { createNode, MemoryJournal, type Node } from "../runtime/kernel/mod.ts";
import { oneVerifierSpec as spec } from "./_drive.ts";
import { finished, until } from "./_poll.ts";

Deno.test("a verifier hears no announcement: the chosen one learns the job from its owner's assignment and verifies it, the other journals nothing of it", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const journals = new Map<string, MemoryJournal>();
  /** Every message each node received, by topic family: what it heard. */
  const heard: { node: string; topic: string; data: Uint8Array }[] = [];
  const listening = (id: string, port: NetworkPort): NetworkPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "subscribe") {
          return (topic: Topic, validate: never, deliver: (m: never) => void) =>
            target.subscribe(topic, validate, (m: { data: Uint8Array }) => {
              heard.push({ node: id, topic, data: m.data });
              deliver(m as never);
            });
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const node = (id: string, extra: Record<string, unknown>): Node => {
    const journal = new MemoryJournal();
    journals.set(id, journal);
    return createNode({
      id,
      network: listening(id, network.join(id)),
      chain: ledger.as(id),
      journal,
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      ...extra,
    } as never);
  };
  const client = node("client", { roles: ["client"] });
  const worker = node("w1", { roles: ["worker"], worker: { hardware: "cpu", stake: 100n } });
  const verifiers = [node("v1", { roles: ["verifier"] }), node("v2", { roles: ["verifier"] })];
  const relay = node("relay", { roles: ["bootstrap"] });
  const all = [client, worker, ...verifiers, relay];
  try {
    // A verifier subscribes to no announcement shard; a relay keeps the watch topics (the join
    // snapshot is served from what it heard).
    for (const v of verifiers) assert.deepEqual(v.shardTopics(), []);
    assert.ok(relay.shardTopics().some((t) => t.endsWith("/all")), "a relay hears watch topics");
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const jobId = "va-1";
    const done = finished(client, jobId);
    client.submitJob({ spec: spec(), jobId });
    assert.equal(await done, "settled");
    const chosen = client.job(jobId)!.context.verifiers;
    assert.equal(chosen.length, 1);
    const [picked, other] = chosen[0] === "v1" ? verifiers : [verifiers[1]!, verifiers[0]!];
    await until(
      "the chosen verifier settles",
      30_000,
      () => picked!.job(jobId)?.state === "settled" || undefined,
    );
    await Promise.all(all.map((n) => n.settled()));
    const about = (id: string) =>
      journals.get(id)!.entries.filter((e) => e.target === `job:${jobId}`)
        .map((e) => `${e.source}:${e.event.type}`);
    // No verifier heard the announcement.
    for (const v of verifiers) {
      assert.equal(
        heard.filter((h) => h.node === v.id && h.topic.startsWith(`${TOPICS.jobs}/`)).length,
        0,
        `${v.id} heard an announcement`,
      );
    }
    // The chosen one: the owner's assignment (the spec, kept as a record until the chain named
    // it, or after), the chain's assignment, then its actor's lifecycle.
    const pickedJournal = about(picked!.id);
    assert.ok(pickedJournal.includes("network:job.declined"), pickedJournal.join(", "));
    assert.ok(pickedJournal.includes("chain:chain.worker.assigned"), pickedJournal.join(", "));
    assert.equal(picked!.job(jobId)?.context.attestations[picked!.id]?.verdict, "valid");
    // The other: nothing at all about the job.
    assert.deepEqual(about(other!.id), []);
    assert.equal(other!.declined(jobId), undefined);
    // The spec went to the chosen verifier only; the winner's copy carries none.
    const assignments = heard.filter((h) => h.topic === TOPICS.assignments).map((h) => ({
      node: h.node,
      spec: decodeMessage(TOPICS.assignments, h.data).spec !== undefined,
    }));
    assert.deepEqual(
      assignments.sort((a, b) => a.node.localeCompare(b.node)),
      [{ node: picked!.id, spec: true }, { node: "w1", spec: false }].sort((a, b) =>
        a.node.localeCompare(b.node)
      ),
    );
  } finally {
    for (const n of all) await n.stop();
    network.close();
    ledger.close();
  }
});

Deno.test("a chosen verifier whose copy of the assignment could not be sent gets it again, and verifies the job", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const refused: string[] = [];
  /** The client's port: its first assignment to each verifier fails, as to a loaded peer. */
  const flaky = (port: NetworkPort): NetworkPort =>
    new Proxy(port, {
      get(target, key) {
        if (key === "send") {
          return (peer: string, topic: Topic, data: Uint8Array, o?: object) => {
            if (topic === TOPICS.assignments && peer.startsWith("v") && !refused.includes(peer)) {
              refused.push(peer);
              return Promise.reject(new Error(`Refused: busy`));
            }
            return target.send(peer, topic, data, o);
          };
        }
        const value = Reflect.get(target, key, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const common = { capabilityIntervalMs: 0, retainFinishedMs: null };
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: flaky(network.join("client")),
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
    chain: ledger.as("v1"),
    ...common,
  });
  const all = [client, worker, verifier];
  try {
    for (const n of all) await n.start();
    for (const n of all) await n.announceCapabilities();
    const done = finished(client, "retry-1");
    client.submitJob({ spec: spec(), jobId: "retry-1" });
    assert.equal(await done, "settled");
    assert.deepEqual(refused, ["v1"], "the first copy was refused");
    assert.equal(verifier.job("retry-1")?.context.attestations["v1"]?.verdict, "valid");
  } finally {
    for (const n of all) await n.stop();
    network.close();
    ledger.close();
  }
});
