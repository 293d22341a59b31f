/**
 * Tests of the SQLite journal: durable appends with outcomes, torn-tail repair on open, clear
 * errors for damage that is not a torn tail, and the state hash.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { chainHash, decodeJson, encodeJson, fnv1aHex } from "./_codec.ts";
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

Deno.test("SqliteJournal names an edited last row as corruption and deletes nothing", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path);
    for (let seq = 1; seq <= 3; seq++) journal.append(envelope(seq));
    journal.close();
    const db = new DatabaseSync(path);
    db.exec(`UPDATE entries SET event = '{"type":"bid.rec' WHERE seq = 3`);
    db.close();
    const messages: string[] = [];
    assert.throws(() => SqliteJournal.open(path, { onRepair: (m) => messages.push(m) }), {
      name: "JournalError",
      code: "corrupt",
      seq: 3,
      message: /is corrupt at seq 3: its checksum does not match/,
    });
    assert.deepEqual(messages, []);
    const check = new DatabaseSync(path);
    const n = (check.prepare("SELECT count(*) AS n FROM entries").get() as { n: number }).n;
    check.close();
    assert.equal(n, 3, "the committed row is still there");
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
      code: "corrupt",
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

/** A journal of `n` delivered entries, with a checkpoint, closed. */
function filled(path: string, n: number): void {
  const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
  for (let seq = 1; seq <= n; seq++) {
    const env = envelope(seq);
    journal.append(env);
    journal.delivered(
      env,
      { status: "accepted" },
      actor("bidding", { escrowed: 1000n * BigInt(seq) }),
    );
  }
  journal.close();
}

function edit(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  db.exec(sql);
  db.close();
}

Deno.test("SqliteJournal's chain: an edited row whose own checksum was recomputed is caught at the next row", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    // Rows without outcomes (an outcome's checksum covers its row's, so it would catch it first).
    const journal = SqliteJournal.open(path);
    for (let seq = 1; seq <= 4; seq++) journal.append(envelope(seq));
    journal.abandon();
    // The editor changes row 2 and recomputes its checksum from row 1's: row 3's link breaks.
    const db = new DatabaseSync(path);
    const prev = (db.prepare("SELECT crc FROM entries WHERE seq = 1").get() as { crc: string }).crc;
    const row = db.prepare("SELECT seq, source, target, event, effect FROM entries WHERE seq = 2")
      .get() as { seq: number; source: string; target: string; event: string; effect: null };
    const crc = chainHash(prev, [2, 5, row.source, row.target, row.event, row.effect]);
    db.prepare("UPDATE entries SET at = 5, crc = ? WHERE seq = 2").run(crc);
    db.close();
    assert.throws(() => SqliteJournal.open(path), {
      name: "JournalError",
      code: "corrupt",
      seq: 3,
      message: /at seq 3: its checksum does not match \(the row, or the chain before it/,
    });
  }));

Deno.test("SqliteJournal names an edited outcome (in any of its fields) with its seq", () =>
  withDir((dir) => {
    for (
      const [column, value] of [
        ["status", "'rejected'"],
        ["actor", "'job:j9'"],
        ["state", "'assigned'"],
        ["hash", "'00000000000000'"],
        ["reason", "'why'"],
        ["effects", "'timer.arm#00'"],
      ]
    ) {
      const path = `${dir}/${column}.sqlite`;
      filled(path, 3);
      edit(path, `UPDATE entries SET ${column} = ${value} WHERE seq = 2`);
      assert.throws(() => SqliteJournal.open(path), {
        name: "JournalError",
        code: "corrupt",
        seq: 2,
        message: /at seq 2: the checksum of its outcome does not match/,
      }, column);
    }
    // An outcome erased after it was committed is caught too.
    const path = `${dir}/erased.sqlite`;
    filled(path, 3);
    edit(
      path,
      "UPDATE entries SET status = NULL, actor = NULL, state = NULL, hash = NULL WHERE seq = 3",
    );
    assert.throws(() => SqliteJournal.open(path), { name: "JournalError", seq: 3 });
  }));

Deno.test("SqliteJournal refuses an edited checkpoint snapshot, retired summary or checkpoint seq", () =>
  withDir((dir) => {
    const cases: [string, RegExp][] = [
      [
        `UPDATE snapshots SET snapshot = replace(snapshot, '3000', '9000')`,
        /snapshot of "job:j1" \(written at seq 3\) does not match/,
      ],
      [`UPDATE snapshots SET state = 'settled'`, /snapshot of "job:j1"/],
      [`UPDATE checkpoint SET seq = 1`, /checksum of the checkpoint \(seq 1\) does not match/],
    ];
    for (const [i, [sql, message]] of cases.entries()) {
      const path = `${dir}/snap${i}.sqlite`;
      filled(path, 3);
      edit(path, sql);
      assert.throws(() => SqliteJournal.open(path), {
        name: "JournalError",
        code: "corrupt",
        message,
      });
    }
    const path = `${dir}/retired.sqlite`;
    const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
    const env = envelope(1);
    journal.append(env);
    journal.delivered(env, { status: "accepted" }, actor("settled", {}));
    journal.retired("job:j1", { id: "j1", paid: 1000n });
    journal.close();
    edit(path, `UPDATE retired SET summary = replace(summary, '1000', '9000')`);
    assert.throws(() => SqliteJournal.open(path), {
      name: "JournalError",
      message: /retired summary of "job:j1"/,
    });
  }));

Deno.test("SqliteJournal refuses to send an edited open effect", () =>
  withDir((dir) => {
    const path = `${dir}/journal.sqlite`;
    const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
    const env = envelope(1);
    journal.append(env);
    journal.delivered(env, { status: "accepted" }, actor("announced", {}), [
      {
        id: "1.0",
        actor: "job:j1",
        effect: { type: "chain.escrow.lock", jobId: "j1", amount: 5n },
      },
    ]);
    journal.close();
    edit(path, `UPDATE effects SET effect = replace(effect, '"5"', '"500"')`);
    const again = SqliteJournal.open(path);
    assert.throws(() => again.openEffects(), {
      name: "JournalError",
      code: "corrupt",
      message: /at seq 1: the checksum of its open effect "1.0" does not match/,
    });
    again.abandon();
  }));

Deno.test("SqliteJournal migrates a version 1 journal: checked by its old checksums, then chained", () =>
  withDir((dir) => {
    const make = (path: string) => {
      filled(path, 3);
      // Turn it into what version 1 wrote: per-row FNV checksums, no outcome checksums.
      const db = new DatabaseSync(path);
      const rows = db.prepare("SELECT seq, at, source, target, event FROM entries").all() as {
        seq: number;
        at: number;
        source: string;
        target: string;
        event: string;
      }[];
      for (const r of rows) {
        db.prepare("UPDATE entries SET crc = ?, ocrc = NULL WHERE seq = ?").run(
          fnv1aHex(`${r.seq}|${r.at}|${r.source}|${r.target}|${r.event}`),
          r.seq,
        );
      }
      db.exec(`UPDATE meta SET value = '1' WHERE key = 'version';
        UPDATE snapshots SET crc = NULL; UPDATE checkpoint SET crc = NULL;`);
      db.close();
    };
    const path = `${dir}/v1.sqlite`;
    make(path);
    const messages: string[] = [];
    const journal = SqliteJournal.open(path, { onRepair: (m) => messages.push(m) });
    assert.match(
      messages[0]!,
      /migrated from version 1 to 2: its 3 rows, .* hash-chained from seq 1/,
    );
    assert.equal(journal.meta["version"], "2");
    assert.equal([...journal.entries()].length, 3);
    assert.equal(journal.loadCheckpoint().seq, 3);
    journal.close();
    // Once migrated, an edit is caught by the chain.
    edit(path, "UPDATE entries SET at = 7 WHERE seq = 1");
    assert.throws(() => SqliteJournal.open(path), { name: "JournalError", seq: 1 });
    // A version 1 journal edited before migration is refused, not migrated.
    const bad = `${dir}/v1-bad.sqlite`;
    make(bad);
    edit(bad, "UPDATE entries SET target = 'job:j2' WHERE seq = 2");
    assert.throws(() => SqliteJournal.open(bad), {
      name: "JournalError",
      code: "corrupt",
      message: /at seq 2: its \(version 1\) checksum does not match/,
    });
  }));
