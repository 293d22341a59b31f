/**
 * Nothing is acknowledged that was not journaled. A node whose journal refuses an append (a full
 * disk, a closed file, an encoding it cannot write) stops taking input loudly: the event is not
 * delivered, no sequence number is spent on it, the submission throws (`POST /jobs` answers 503,
 * never 202), `/health` fails with the reason, and observers are told once.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import {
  createNode,
  Inbox,
  type JournalSink,
  MemoryJournal,
  type NodeObservation,
  simulatedClock,
} from "../runtime/kernel/mod.ts";
import { serveStatus } from "../runtime/ops/mod.ts";
import { spec } from "./_drive.ts";

/** A journal that takes `ok` appends, then refuses every one (as a full disk would). */
class FailingJournal extends MemoryJournal implements JournalSink {
  #left: number;
  constructor(ok: number) {
    super();
    this.#left = ok;
  }
  override append(envelope: Parameters<MemoryJournal["append"]>[0]): void {
    if (this.#left-- <= 0) throw new Error("database or disk is full");
    super.append(envelope);
  }
}

Deno.test("Inbox takes the sequence number only after the journal took the event, and stops after a failure", () => {
  const journal = new FailingJournal(2);
  const delivered: number[] = [];
  const failures: string[] = [];
  const inbox = new Inbox({
    clock: simulatedClock(0),
    journal,
    deliver: (e) => void delivered.push(e.seq),
    onJournalFailure: (error) => void failures.push(error.code),
  });
  inbox.submit("operator", "job:a", { type: "job.cancel" });
  inbox.submit("operator", "job:b", { type: "job.cancel" });
  assert.throws(() => inbox.submit("operator", "job:c", { type: "job.cancel" }), {
    name: "JournalAppendError",
    message: /Cannot journal "job.cancel" for "job:c" \(seq 3\): database or disk is full/,
  });
  assert.deepEqual(delivered, [1, 2], "the refused event was not delivered");
  assert.deepEqual(journal.entries.map((e) => e.seq), [1, 2], "no sequence gap, nothing lost");
  assert.deepEqual(failures, ["journal_append_failed"], "told once");
  assert.throws(() => inbox.submit("chain", "job:a", { type: "chain.escrow.locked" }), {
    name: "JournalAppendError",
    message: /the journal failed earlier/,
  });
  assert.deepEqual(delivered, [1, 2]);
});

Deno.test("a node whose journal fails answers 503 to POST /jobs, fails /health with the reason, and tells observers", async () => {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const journal = new FailingJournal(1_000);
  const node = createNode({
    id: "c",
    roles: ["client"],
    network: network.join("c"),
    chain: ledger.as("c"),
    capabilityIntervalMs: 0,
    journal,
  });
  const seen: NodeObservation["type"][] = [];
  node.observe((o) => void seen.push(o.type));
  await node.start();
  const status = await serveStatus(node);
  try {
    const body = (jobId: string) =>
      JSON.stringify({
        jobId,
        spec: {
          ...spec({ verifierCount: 1 }),
          maxPrice: "100",
          requirements: { hardware: "cpu", minStake: "10" },
        },
      });
    const ok = await fetch(`${status.url}/jobs`, { method: "POST", body: body("j1") });
    await ok.body?.cancel();
    assert.equal(ok.status, 202);
    assert.equal((await (await fetch(`${status.url}/health`)).json()).status, "ok");
    // The disk fills up.
    const before = journal.entries.length;
    (journal as unknown as { append: (e: unknown) => void }).append = () => {
      throw new Error("database or disk is full");
    };
    const refused = await fetch(`${status.url}/jobs`, { method: "POST", body: body("j2") });
    const problem = await refused.json();
    assert.equal(refused.status, 503, JSON.stringify(problem));
    assert.match(JSON.stringify(problem), /database or disk is full/);
    assert.equal(node.job("j2"), undefined, "nothing unjournaled was delivered");
    assert.equal(journal.entries.length, before);
    const health = await fetch(`${status.url}/health`);
    const report = await health.json();
    assert.equal(health.status, 503);
    assert.equal(report.status, "failing");
    assert.match(report.reason, /database or disk is full/);
    assert.equal(seen.filter((t) => t === "journal.failed").length, 1);
    assert.throws(() => node.submitJob({ jobId: "j3", spec: spec() }), {
      name: "JournalAppendError",
    });
  } finally {
    await status.shutdown();
    await node.stop();
    ledger.close();
  }
});
