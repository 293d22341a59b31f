/**
 * Tests of the SQLite journal: durable appends with outcomes, torn-tail repair on open, clear
 * errors for damage that is not a torn tail, and the state hash.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { decodeJson, encodeJson } from "./_codec.ts";
import type { Envelope } from "../kernel/mod.ts";
import { SqliteJournal, stateHash } from "./journal.ts";

function envelope(seq: number, extra: Record<string, unknown> = {}): Envelope {
  return {
    seq,
    at: 1_000 + seq,
    source: "network",
    target: "job:j1",
    event: { type: "bid.received", price: 10n * BigInt(seq), ...extra },
  };
}

const actor = (state: string, context: unknown) => ({
  id: "job:j1",
  state,
  done: false,
  snapshot: { context },
  persisted: { value: state, context },
});

async function withDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "journal-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("SqliteJournal keeps entries and outcomes across reopen", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path, { checkpointEvery: 2 });
    for (let seq = 1; seq <= 5; seq++) {
      const env = envelope(seq);
      journal.append(env);
      journal.delivered(env, { status: "accepted" }, actor("bidding", { n: seq }));
    }
    journal.close();
    const again = SqliteJournal.open(path);
    assert.equal(again.nextSeq(), 6);
    assert.deepEqual(again.repairs, []);
    const entries = [...again.entries()];
    assert.equal(entries.length, 5);
    assert.equal(entries[2]!.event["price"], 30n);
    assert.deepEqual(entries[4]!.outcome, {
      status: "accepted",
      actor: "job:j1",
      state: "bidding",
      hash: stateHash({ n: 5 }),
    });
    const checkpoint = again.loadCheckpoint();
    assert.equal(checkpoint.seq, 5);
    assert.deepEqual(checkpoint.actors[0]!.snapshot, { value: "bidding", context: { n: 5 } });
    assert.throws(() => again.append(envelope(9)), { name: "RangeError" });
    again.close();
  }));

Deno.test("SqliteJournal repairs a torn write-ahead log tail with a clear message", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path);
    for (let seq = 1; seq <= 20; seq++) journal.append(envelope(seq));
    // What a crash leaves: the database and its write-ahead log, copied while still open.
    const crashed = `${dir}/crashed.sqlite`;
    Deno.copyFileSync(path, crashed);
    Deno.copyFileSync(`${path}-wal`, `${crashed}-wal`);
    journal.abandon();
    const wal = Deno.openSync(`${crashed}-wal`, { append: true });
    wal.writeSync(new Uint8Array(100).fill(7));
    wal.close();
    const messages: string[] = [];
    const reopened = SqliteJournal.open(crashed, { onRepair: (m) => messages.push(m) });
    assert.equal(messages.length, 1);
    assert.match(
      messages[0]!,
      /torn tail repaired: dropped a partial write-ahead log frame of 100 bytes/,
    );
    assert.deepEqual(reopened.repairs, messages);
    assert.equal(reopened.nextSeq(), 21);
    reopened.close();
  }));

Deno.test("SqliteJournal drops a last row whose checksum does not match", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path);
    for (let seq = 1; seq <= 3; seq++) journal.append(envelope(seq));
    journal.close();
    const db = new DatabaseSync(path);
    db.exec(`UPDATE entries SET event = '{"type":"bid.rec' WHERE seq = 3`);
    db.close();
    const messages: string[] = [];
    const reopened = SqliteJournal.open(path, { onRepair: (m) => messages.push(m) });
    assert.match(messages[0]!, /torn tail repaired: dropped seq 3/);
    assert.equal(reopened.nextSeq(), 3);
    assert.equal([...reopened.entries()].length, 2);
    reopened.close();
  }));

Deno.test("SqliteJournal names the seq of damage that is not a torn tail", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path);
    for (let seq = 1; seq <= 4; seq++) journal.append(envelope(seq));
    journal.close();
    const db = new DatabaseSync(path);
    db.exec(`UPDATE entries SET at = 5 WHERE seq = 2`);
    db.close();
    assert.throws(() => SqliteJournal.open(path), {
      name: "JournalError",
      message: /is corrupt at seq 2: its checksum does not match/,
    });
    const gap = new DatabaseSync(path);
    gap.exec(`UPDATE entries SET at = 1002 WHERE seq = 2; DELETE FROM entries WHERE seq = 3`);
    gap.close();
    assert.throws(() => SqliteJournal.open(path), {
      name: "JournalError",
      message: /seq 4 follows seq 2 \(entries are missing\)/,
    });
  }));

Deno.test("SqliteJournal refuses a foreign database and another node's journal", () =>
  withDir((dir) => {
    const foreign = `${dir}/foreign.sqlite`;
    const db = new DatabaseSync(foreign);
    db.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('format', 'something.else')`);
    db.close();
    assert.throws(() => SqliteJournal.open(foreign), {
      name: "JournalError",
      message: /Not a CIRO journal: .* has format "something.else"/,
    });
    const path = `${dir}/journal.sqlite`;
    const policy = { bidSelection: "lowest_price", quorum: "bft" } as const;
    SqliteJournal.open(path, { node: { id: "a", roles: ["client"], policy } }).close();
    assert.throws(
      () => SqliteJournal.open(path, { node: { id: "b", roles: ["client"], policy } }),
      { name: "JournalError", message: /belongs to node "a"/ },
    );
  }));

Deno.test("stateHash() depends on the value only, bigints included", () => {
  const a = { x: 1n, y: [1, "two", null], z: { b: true, a: undefined } };
  const b = { z: { b: true }, y: [1, "two", null], x: 1n };
  assert.equal(stateHash(a), stateHash(b));
  assert.notEqual(stateHash(a), stateHash({ ...a, x: 2n }));
  assert.notEqual(stateHash({ s: "1" }), stateHash({ s: 1 }));
  assert.match(stateHash(a), /^[0-9a-f]{14}$/);
  const text = encodeJson(a);
  assert.deepEqual(decodeJson(text), { x: 1n, y: [1, "two", null], z: { b: true } });
});

Deno.test("SqliteJournal keeps the effects each delivery emitted open until their outcome or end", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
    const first = envelope(1);
    journal.append(first);
    const effects = [
      { id: "1.0", actor: "job:j1", effect: { type: "timer.arm", key: "bid_window", at: 9 } },
      { id: "1.1", actor: "job:j1", effect: { type: "chain.escrow.lock", jobId: "j1" } },
      { id: "1.2", actor: "job:j1", effect: { type: "exec.run", jobId: "j1" } },
      { id: "1.3", actor: "job:j1", effect: { type: "net.announce", jobId: "j1" } },
    ];
    journal.delivered(first, { status: "accepted" }, actor("announced", { n: 1 }), effects);
    // The execution's outcome names it: journaling the outcome closes it.
    const outcome = { ...envelope(2), source: "effect" as const, effect: "1.2" };
    journal.append(outcome);
    // Timers are re-armed from the context, not sent again: never open.
    assert.deepEqual(journal.openEffects().map((r) => r.id), ["1.1", "1.3"]);
    // The publish ended without an outcome event of its own; then the process is killed.
    journal.effectClosed("1.3");
    journal.abandon();
    // A crash keeps what was written: the closure that came with the outcome event, not the
    // publish's end, which was still pending (sent again: a repeated publish is harmless).
    const again = SqliteJournal.open(path);
    assert.deepEqual(again.openEffects().map((r) => [r.id, r.effect.type]), [
      ["1.1", "chain.escrow.lock"],
      ["1.3", "net.announce"],
    ]);
    const entries = [...again.entries()];
    assert.equal(entries[1]!.effect, "1.2");
    assert.match(
      entries[0]!.outcome!.effects!,
      /^timer\.arm,chain\.escrow\.lock,exec\.run,net\.announce#/,
    );
    again.effectClosed("1.3");
    again.close();
    const third = SqliteJournal.open(path);
    assert.deepEqual(third.openEffects().map((r) => r.id), ["1.1"]);
    third.close();
  }));

Deno.test("SqliteJournal's row checksum covers the effect an entry closes", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
    journal.append(envelope(1));
    journal.append({ ...envelope(2), effect: "1.0" });
    journal.append(envelope(3));
    journal.close();
    const db = new DatabaseSync(path);
    db.prepare("UPDATE entries SET effect = '1.5' WHERE seq = 2").run();
    db.close();
    assert.throws(() => SqliteJournal.open(path), {
      name: "JournalError",
      message: /corrupt at seq 2/,
    });
  }));
