/**
 * The local ledger's events carry what a chosen verifier needs from the chain (`JobSubmitted`
 * the escrow's terms, `WorkerAssigned` the attempt), on a real database file; a file written by an
 * earlier release (events without those fields, format 0) opens and its stored events are
 * completed; a file of a later format is refused with what to do.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { LocalLedger } from "./local_ledger.ts";
import { EVENT_SELECTORS } from "./events.ts";
import type { ChainEvent, ChainPort } from "./port.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);
const RESULT = "c".repeat(64);
const START = { blockNumber: 0, eventIndex: 0 };
const TERMS = { verifierCount: 4, bidWindowMs: 2_000, executionMs: 30_000, verificationMs: 45_000 };

type Body<N extends ChainEvent["name"]> = Omit<
  Extract<ChainEvent, { name: N }>,
  "blockNumber" | "blockHash" | "txHash" | "eventIndex"
>;

function body<N extends ChainEvent["name"]>(event: ChainEvent | undefined, name: N): Body<N> {
  assert.equal(event?.name, name);
  const { blockNumber: _b, blockHash: _h, txHash: _t, eventIndex: _i, ...rest } = event as Extract<
    ChainEvent,
    { name: N }
  >;
  return rest as unknown as Body<N>;
}

/** A chain-decided job `j1` assigned twice (revoked in between), and a legacy job `j2`. */
async function market(path: string): Promise<{ ledger: LocalLedger; verifiers: ChainPort[] }> {
  const clock = { now: 1_000 };
  const ledger = LocalLedger.open(path, { now: () => clock.now });
  const verifiers: ChainPort[] = [];
  for (const id of ["v1", "v2", "v3", "v4"]) {
    const v = ledger.as(id);
    await v.stake({ amount: 100n, role: "verifier" });
    await v.registerKey!({ publicKey: await v.accountPublicKey!() });
    verifiers.push(v);
  }
  for (const id of ["w1", "w2"]) await ledger.as(id).stake({ amount: 50n });
  const client = ledger.as("client");
  await client.submitJob({
    jobId: "j1",
    amount: 900n,
    minStake: 7n,
    modelHash: MODEL,
    inputCommitment: INPUT,
    ...TERMS,
  });
  await client.assignWorker({ jobId: "j1", worker: "w1", price: 500n });
  await client.revokeAssignment({ jobId: "j1", worker: "w1" });
  await client.assignWorker({ jobId: "j1", worker: "w2", price: 600n });
  await client.submitJob({
    jobId: "j2",
    amount: 10n,
    minStake: 0n,
    modelHash: MODEL,
    inputCommitment: INPUT,
  });
  return { ledger, verifiers };
}

async function events(ledger: LocalLedger): Promise<ChainEvent[]> {
  return (await ledger.as("reader").eventsSince(START, { limit: 1000 })).events;
}

Deno.test("LocalLedger's JobSubmitted carries the escrow's terms, WorkerAssigned the attempt the chain checks", async () => {
  const dir = await Deno.makeTempDir();
  const { ledger, verifiers } = await market(`${dir}/ledger.db`);
  try {
    const all = await events(ledger);
    const submitted = all.filter((e) => e.name === "JobSubmitted");
    assert.deepEqual(body(submitted[0], "JobSubmitted"), {
      name: "JobSubmitted",
      jobId: "j1",
      client: "client",
      amount: 900n,
      modelHash: MODEL,
      inputCommitment: INPUT,
      minStake: 7n,
      ...TERMS,
    });
    // Without terms: their defaults, as the ledger records them.
    assert.deepEqual(
      (({ minStake, verifierCount, bidWindowMs, executionMs, verificationMs }) => ({
        minStake,
        verifierCount,
        bidWindowMs,
        executionMs,
        verificationMs,
      }))(body(submitted[1], "JobSubmitted")),
      {
        minStake: 0n,
        verifierCount: 0,
        bidWindowMs: 60_000,
        executionMs: 600_000,
        verificationMs: 600_000,
      },
    );
    const assigned = all.filter((e) => e.name === "WorkerAssigned").map((e) =>
      body(e, "WorkerAssigned")
    );
    assert.deepEqual(assigned.map((a) => [a.worker, a.price, a.attempt]), [
      ["w1", 500n, 1],
      ["w2", 600n, 2],
    ]);
    // The attempt the event names is the one an attestation must carry.
    const second = assigned[1]!;
    await ledger.as("w2").submitResult({ jobId: "j1", commitment: RESULT });
    const chosen = verifiers.find((v) => second.verifiers.includes(v.account))!;
    const stale = await chosen.signAttestation!({
      jobId: "j1",
      attempt: second.attempt - 1,
      subject: RESULT,
      verdict: "valid",
    });
    await assert.rejects(
      chosen.submitAttestations!({ attestations: [stale] }),
      (e: Error & { code?: string }) => e.code === "wrong_attempt",
    );
    const current = await chosen.signAttestation!({
      jobId: "j1",
      attempt: second.attempt,
      subject: RESULT,
      verdict: "valid",
    });
    await chosen.submitAttestations!({ attestations: [current] });
  } finally {
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

for (
  const [format, cuts] of [
    // Format 0: without the escrow's terms (minStake's two felts and four numbers), the spec
    // hash (two felts) and the attempt; format 2: without the spec hash only.
    [0, { submitted: 8, assigned: 1 }],
    [2, { submitted: 2, assigned: 0 }],
  ] as const
) {
  Deno.test(`LocalLedger.open() completes the events of a file of format ${format}`, async () => {
    await completesFormat(format, cuts);
  });
}

async function completesFormat(
  format: number,
  cuts: { readonly submitted: number; readonly assigned: number },
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ledger.db`;
  const { ledger } = await market(path);
  const before = await events(ledger);
  ledger.close();
  // What an earlier release wrote: the same rows, without the fields added at the end of the
  // two layouts (minStake's two felts and four numbers; the attempt), and no format number.
  const db = new DatabaseSync(path);
  const rows = db.prepare("SELECT block_number, event_index, keys, data FROM events").all();
  let stripped = 0;
  for (const row of rows) {
    const [selector] = JSON.parse(String(row["keys"])) as string[];
    const data = JSON.parse(String(row["data"])) as string[];
    const cut = selector === EVENT_SELECTORS.JobSubmitted
      ? cuts.submitted
      : selector === EVENT_SELECTORS.WorkerAssigned
      ? cuts.assigned
      : 0;
    if (cut === 0) continue;
    stripped++;
    db.prepare("UPDATE events SET data = ? WHERE block_number = ? AND event_index = ?")
      .run(
        JSON.stringify(data.slice(0, -cut)),
        Number(row["block_number"]),
        Number(row["event_index"]),
      );
  }
  db.exec(`PRAGMA user_version = ${format}`);
  db.close();
  assert.equal(stripped, cuts.assigned > 0 ? 4 : 2, "two escrows (and two assignments)");
  const reopened = LocalLedger.open(path);
  try {
    assert.deepEqual(await events(reopened), before);
  } finally {
    reopened.close();
  }
  const check = new DatabaseSync(path);
  try {
    assert.equal(check.prepare("PRAGMA user_version").get()?.["user_version"], 3);
  } finally {
    check.close();
  }
  await Deno.remove(dir, { recursive: true });
}

Deno.test("LocalLedger.open() refuses a file of a later format, naming it and what to do", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ledger.db`;
  LocalLedger.open(path).close();
  const db = new DatabaseSync(path);
  db.exec("PRAGMA user_version = 9");
  db.close();
  try {
    assert.throws(
      () => LocalLedger.open(path),
      (e: Error & { code?: string }) =>
        e.name === "ChainError" && e.code === "unsupported_format" &&
        e.message.includes(path) && /its format is 9, this release reads formats up to 3/
          .test(e.message) &&
        /start a new ledger file/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("LocalLedger refuses at open an earlier-format file whose events' keys or data are not hex felts, naming the file and the event (review 2, L1)", async () => {
  const first = "event_index = 0 AND block_number = (SELECT MIN(block_number) FROM events)";
  const crafts: Record<string, [string, RegExp]> = {
    "keys not JSON": [
      `UPDATE events SET keys = 'nope' WHERE ${first}`,
      /: event \d+:0 keys are not JSON$/,
    ],
    "a key not hex": [
      `UPDATE events SET keys = '["zz"]' WHERE ${first}`,
      /: event \d+:0 keys are not an array of hex felts$/,
    ],
    "data an object": [
      `UPDATE events SET data = '{}' WHERE ${first}`,
      /: event \d+:0 data are not an array of hex felts$/,
    ],
  };
  for (const [name, [sql, message]] of Object.entries(crafts)) {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/ledger.db`;
    try {
      const ledger = LocalLedger.open(path, { now: () => 1_000 });
      await ledger.as("w1").stake({ amount: 50n });
      await ledger.as("client").submitJob({
        jobId: "j1",
        amount: 9n,
        minStake: 1n,
        modelHash: MODEL,
        inputCommitment: INPUT,
      });
      ledger.close();
      const db = new DatabaseSync(path);
      db.exec(sql);
      db.exec("PRAGMA user_version = 0");
      db.close();
      assert.throws(() => LocalLedger.open(path).close(), (error: Error) => {
        assert.equal(error.name, "ChainError", name);
        assert.equal((error as { code?: string }).code, "rpc_error", name);
        assert.ok(error.message.startsWith(`Cannot upgrade ledger "${path}"`), error.message);
        assert.match(error.message, message, name);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
