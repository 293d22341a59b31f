/**
 * Recovery checks the journal's recorded outcomes: a node's journal (a real SQLite file) is cut
 * by a crash with entries after its last checkpoint; one recorded outcome is edited in the file;
 * reopening the node stops with a clear error naming the sequence number, the event, the actor,
 * and expected vs actual, unless the operator asks to accept the divergence, and then only for
 * that restart.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { SqliteJournal } from "../runtime/durability/journal.ts";
import { chainHash } from "../runtime/durability/mod.ts";
import {
  type DurableNode,
  openDurableNode,
  type RecoveryDivergenceError,
} from "../runtime/durability/recovery.ts";
import { spec } from "./_drive.ts";

function open(dir: string, ledger: LocalLedger, acceptDivergence?: boolean): Promise<DurableNode> {
  return openDurableNode({
    id: "client",
    roles: ["client"],
    network: new InProcessNetwork().join("client"),
    chain: ledger.as("client"),
    dataDir: `${dir}/client`,
    checkpointEvery: 1_000,
    capabilityIntervalMs: 0,
    ...(acceptDivergence === undefined ? {} : { acceptDivergence }),
  });
}

/**
 * A client that submitted a job and saw its escrow locked, then crashed: its journal holds
 * `job.submit` (outcome recorded) and `chain.escrow.locked` after it, and no checkpoint.
 * Returns the seq of `job.submit`.
 */
async function crashedClient(dir: string, ledger: LocalLedger): Promise<number> {
  const durable = await open(dir, ledger);
  await durable.start();
  // No verifier is bonded here: an unverified job, which the chain escrows without any.
  durable.node.submitJob({ jobId: "j1", spec: spec({ bidWindowMs: 60_000, verifierCount: 0 }) });
  const deadline = Date.now() + 5_000;
  while (durable.node.job("j1")?.state !== "bidding") {
    if (Date.now() > deadline) throw new Error("The escrow was never locked");
    await new Promise((r) => setTimeout(r, 10));
  }
  // The crash: nothing more reaches the journal (no final checkpoint, no pending outcome).
  durable.journal.abandon();
  await durable.node.stop();
  const journal = SqliteJournal.open(`${dir}/client/journal.sqlite`, { checkpointEvery: 0 });
  try {
    const submit = [...journal.entries()].find((e) => e.event.type === "job.submit")!;
    assert.equal(submit.outcome?.state, "announced");
    return submit.seq;
  } finally {
    journal.abandon();
  }
}

/**
 * Rewrites the outcome checksum of `seq` (what another build of the code writing that outcome
 * would have written; an edit without it is corruption, refused on open: see journal_test.ts).
 */
function reseal(db: DatabaseSync, seq: number): void {
  const r = db.prepare(
    "SELECT crc, status, actor, state, hash, reason, effects FROM entries WHERE seq = ?",
  ).get(seq) as Record<string, string | null>;
  const fields = ["status", "actor", "state", "hash", "reason", "effects"].map((k) => r[k]);
  db.prepare("UPDATE entries SET ocrc = ? WHERE seq = ?").run(chainHash(r["crc"]!, fields), seq);
}

/** Edits the outcome recorded for `seq` in the journal file, as other code would have. */
function editOutcome(dir: string, seq: number, state: string): void {
  const db = new DatabaseSync(`${dir}/client/journal.sqlite`);
  try {
    db.prepare("UPDATE entries SET state = ? WHERE seq = ?").run(state, seq);
    reseal(db, seq);
  } finally {
    db.close();
  }
}

/** Edits the effects recorded for `seq`: as if the code had asked for something else. */
function editEffects(dir: string, seq: number, effects: string): void {
  const db = new DatabaseSync(`${dir}/client/journal.sqlite`);
  try {
    db.prepare("UPDATE entries SET effects = ? WHERE seq = ?").run(effects, seq);
    reseal(db, seq);
  } finally {
    db.close();
  }
}

async function withClient(fn: (dir: string, ledger: LocalLedger, seq: number) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "recovery-divergence-" });
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  try {
    await fn(dir, ledger, await crashedClient(dir, ledger));
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("openDurableNode() checks the recorded outcome of every replayed delivery", async () => {
  await withClient(async (dir, ledger) => {
    const durable = await open(dir, ledger);
    try {
      assert.ok(durable.replayed >= 2, `replayed ${durable.replayed}`);
      assert.ok(durable.checked >= 1, `checked ${durable.checked}`);
      assert.equal(durable.divergence, null);
      assert.equal(durable.node.job("j1")?.state, "bidding");
    } finally {
      await durable.stop();
    }
  });
});

Deno.test("openDurableNode() stops at a journal whose recorded outcome the code does not reproduce", async () => {
  await withClient(async (dir, ledger, seq) => {
    editOutcome(dir, seq, "bidding");
    await assert.rejects(open(dir, ledger), (error: Error) => {
      assert.equal(error.name, "RecoveryDivergenceError");
      const d = (error as RecoveryDivergenceError).divergence;
      assert.equal(d.seq, seq);
      assert.equal(d.event, "job.submit");
      assert.equal(d.target, "job:j1");
      assert.equal(d.expected.state, "bidding");
      assert.equal(d.actual.state, "announced");
      const lines = error.message.split("\n");
      assert.match(
        lines[0]!,
        new RegExp(`diverged at seq ${seq}: job\\.submit \\(operator\\) to job:j1$`),
      );
      assert.match(
        lines[1]!,
        /^ {2}expected: accepted, job:j1 in state bidding, context \w+, effects \[chain\.escrow\.lock\] #\w+$/,
      );
      assert.match(
        lines[2]!,
        /^ {2}actual: {3}accepted, job:j1 in state announced, context \w+, effects \[chain\.escrow\.lock\] #\w+$/,
      );
      assert.match(error.message, /acceptDivergence/);
      return true;
    });
    // The refused open left the journal as it was: the same error again.
    await assert.rejects(open(dir, ledger), { name: "RecoveryDivergenceError" });
  });
});

Deno.test("openDurableNode({ acceptDivergence: true }) goes on from the replayed state, for that restart", async () => {
  await withClient(async (dir, ledger, seq) => {
    editOutcome(dir, seq, "bidding");
    const accepted = await open(dir, ledger, true);
    try {
      assert.equal(accepted.divergence?.seq, seq);
      assert.equal(accepted.divergence?.count, 1);
      assert.equal(accepted.node.job("j1")?.state, "bidding", "the replayed state");
    } finally {
      await accepted.stop();
    }
    // The replayed state is checkpointed: the next restart needs no escape hatch.
    const again = await open(dir, ledger);
    try {
      assert.equal(again.divergence, null);
      assert.equal(again.node.job("j1")?.state, "bidding");
    } finally {
      await again.stop();
    }
  });
});

Deno.test("openDurableNode() compares the effects a replayed delivery emits and names the one that differs", async () => {
  await withClient(async (dir, ledger, seq) => {
    // The same state and context, but the journal says job.submit asked for a release instead.
    editEffects(dir, seq, "chain.release#00000000000000");
    await assert.rejects(open(dir, ledger), (error: Error) => {
      assert.equal(error.name, "RecoveryDivergenceError");
      const d = (error as RecoveryDivergenceError).divergence;
      assert.equal(d.seq, seq);
      assert.equal(d.expected.state, d.actual.state, "only the effects differ");
      assert.match(error.message, /expected: .*effects \[chain\.release\]/);
      assert.match(error.message, /actual: .*effects \[chain\.escrow\.lock\]/);
      return true;
    });
  });
});

Deno.test("openDurableNode() recovers the open effects from the journal alone and sends them once", async () => {
  await withClient(async (dir, ledger) => {
    const durable = await open(dir, ledger);
    try {
      // The client crashed in bidding: its announcement's publish may not have ended, nothing
      // else is owed (the escrow tx went through and its event came).
      assert.ok(
        durable.openEffects.every((r) => r.effect.type !== "chain.escrow.lock"),
        `open: ${durable.openEffects.map((r) => r.effect.type).join(", ")}`,
      );
      await durable.start();
      const resumed = durable.resumed!;
      assert.deepEqual(resumed.sent.map((r) => r.id), durable.openEffects.map((r) => r.id));
      await durable.node.settled();
    } finally {
      await durable.stop();
    }
    // Sent and ended: nothing is open any more.
    const again = await open(dir, ledger);
    try {
      assert.deepEqual(again.openEffects.map((r) => r.effect.type), []);
    } finally {
      await again.stop();
    }
  });
});
