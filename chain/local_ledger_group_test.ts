/**
 * Tests of group commit (`LocalLedger.group`): transactions made inside one group are one SQLite
 * transaction, each in a savepoint, and give exactly what running them one by one gives: the same
 * receipts, refusals, events, totals, balances and head, a transaction refused after it wrote
 * undoing only its own writes; others see the group only once it commits.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { LocalLedger } from "./local_ledger.ts";
import type { ChainEvent, ChainPort } from "./port.ts";
import { assignedJob } from "./_assigned_job.ts";
import type { SignedAttestation } from "./settlement.ts";

const HASH = "ab".repeat(32);
const START = { blockNumber: 0, eventIndex: 0 };

/** The ledger's clock: every ledger made here reads the same times in the same order. */
function ticking(): () => number {
  let now = 1_000_000;
  return () => now += 7;
}

function show(value: unknown): string {
  return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v);
}

/** What a call gave: its receipt or answer, or its error's name, code and message. */
function settle(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    (value) => `ok ${show(value)}`,
    (error) => `err ${error.name} ${error.code ?? ""} ${error.message}`,
  );
}

/**
 * `j1` assigned on a ledger, its result submitted, attestations of three verifiers signed; then
 * `steps` (each a call on the set-up's ports) either one by one or inside one group.
 */
async function run(grouped: boolean): Promise<{ outcomes: string[]; state: string }> {
  const ledger = LocalLedger.open(":memory:", { now: ticking() });
  try {
    const { verifiers, worker, client } = await assignedJob((a) => ledger.as(a), {
      amount: 1_000n,
      price: 600n,
      hash: HASH,
    });
    await worker.submitResult({ jobId: "j1", commitment: HASH });
    // The chain chose 4 of the 4 verifiers: all may attest.
    const signed: SignedAttestation[] = [];
    for (const v of verifiers.slice(0, 3)) {
      signed.push(
        await v.signAttestation!({ jobId: "j1", attempt: 1, subject: HASH, verdict: "valid" }),
      );
    }
    const anyone = ledger.as("anyone");
    const steps: ((p: { client: ChainPort; anyone: ChainPort }) => Promise<unknown>)[] = [
      // Refused before it writes anything.
      ({ client }) => client.assignWorker({ jobId: "j1", worker: "worker", price: 1n }),
      // Refused after it wrote: the first attestation is recorded, its repeat is refused.
      ({ anyone }) => anyone.submitAttestations!({ attestations: [signed[0]!, signed[0]!] }),
      // So the first attestation counts here: 3 of 4 verify the job.
      ({ anyone }) => anyone.submitAttestations!({ attestations: signed }),
      ({ anyone }) => anyone.releasePayment({ jobId: "j1" }),
      // Reads inside a group see the transactions before them (each read first of its table).
      () => Promise.resolve(ledger.head()),
      ({ client }) =>
        client.submitJob({
          jobId: "j2",
          amount: 500n,
          minStake: 1n,
          modelHash: HASH,
          inputCommitment: HASH,
        }),
      ({ client }) => client.refund({ jobId: "j2", reason: "cancelled" }),
      () => Promise.resolve(ledger.balanceOf("client")),
      ({ client }) => client.refund({ jobId: "j2", reason: "cancelled" }),
      ({ anyone }) => anyone.stake({ amount: 3n }),
      ({ client }) => client.eventsSince(START, { limit: 1_000 }).then((r) => r.events.length),
      ({ anyone }) => anyone.stake({ amount: 4n }),
      ({ client }) => client.totals(),
      ({ client }) => client.escrowOf!("j2"),
    ];
    const ports = { client, anyone };
    let outcomes: string[];
    if (grouped) {
      const pending = ledger.group(() => steps.map((step) => settle(step(ports))));
      outcomes = await Promise.all(pending);
    } else {
      outcomes = [];
      for (const step of steps) outcomes.push(await settle(step(ports)));
    }
    const events = (await client.eventsSince(START, { limit: 1_000 })).events;
    const state = show({
      events,
      totals: await client.totals(),
      balances: ["client", "worker", "treasury", "v1", "v2", "v3", "v4"].map((a) =>
        ledger.balanceOf(a)
      ),
      head: ledger.head(),
      stake: await client.stakeOf("worker"),
    });
    return { outcomes, state };
  } finally {
    ledger.close();
  }
}

Deno.test("LocalLedger.group gives the receipts, refusals, reads, events and money of running the transactions one by one", async () => {
  const alone = await run(false);
  const grouped = await run(true);
  assert.deepEqual(grouped.outcomes, alone.outcomes);
  assert.equal(grouped.state, alone.state);
  // What the steps gave, so that the comparison is of something: two refusals, then the rest.
  assert.match(alone.outcomes[0]!, /^err ChainError invalid_state/);
  assert.match(alone.outcomes[1]!, /^err ChainError duplicate_attestation/);
  assert.match(alone.outcomes[2]!, /^ok /);
  assert.match(alone.outcomes[3]!, /^ok /);
  assert.match(alone.outcomes[8]!, /^err ChainError invalid_state/);
  assert.match(alone.state, /"name":"JobVerified"/);
  assert.match(alone.state, /"name":"EscrowRefunded"/);
});

Deno.test("LocalLedger.group is one SQLite transaction: another connection sees none of it before its end, all of it after", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ledger.sqlite`;
  const ledger = LocalLedger.open(path);
  const other = new DatabaseSync(path);
  const blocks = () => (other.prepare("SELECT count(*) AS n FROM blocks").get() as { n: number }).n;
  const heard: ChainEvent[] = [];
  const stop = ledger.as("c1").subscribe((e) => heard.push(e), { pollMs: 600_000 });
  try {
    await ledger.as("w1").stake({ amount: 10n });
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(blocks(), 1);
    assert.equal(heard.length, 1);
    let inside = -1;
    const answers = ledger.group(() => {
      const made = [ledger.as("w2").stake({ amount: 10n }), ledger.as("w3").stake({ amount: 10n })];
      inside = blocks();
      return made;
    });
    assert.equal(inside, 1, "another connection saw a transaction of an open group");
    assert.equal(blocks(), 3);
    assert.deepEqual((await Promise.all(answers)).map((r) => r.blockNumber), [2, 3]);
    // The subscriber hears of the group after its commit, as of any transaction.
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(heard.map((e) => e.blockNumber), [1, 2, 3]);
    // A group inside a group is part of it.
    ledger.group(() => ledger.group(() => ledger.as("w4").stake({ amount: 10n })));
    assert.equal(blocks(), 4);
  } finally {
    stop();
    other.close();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a group commits what its work did before the work threw, and throws what it threw", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    let made: Promise<unknown> | undefined;
    assert.throws(
      () =>
        ledger.group(() => {
          made = ledger.as("w1").stake({ amount: 10n });
          throw new RangeError("Invalid work: a test");
        }),
      RangeError,
    );
    await made;
    assert.equal(await ledger.as("w1").stakeOf("w1"), 10n);
    assert.equal(ledger.head().blockNumber, 1);
    // The store is out of its group: a transaction after it commits on its own.
    await ledger.as("w2").stake({ amount: 5n });
    assert.equal(ledger.head().blockNumber, 2);
  } finally {
    ledger.close();
  }
  assert.throws(() => ledger.group(() => 1), /the ledger is closed/);
});

Deno.test("a transaction refused after it changed its job's row leaves the job as it was, alone or in a group", async () => {
  for (const grouped of [false, true]) {
    const ledger = LocalLedger.open(":memory:");
    try {
      const { verifiers, worker } = await assignedJob((a) => ledger.as(a), {
        amount: 1_000n,
        price: 600n,
        hash: HASH,
      });
      await worker.submitResult({ jobId: "j1", commitment: HASH });
      const signed: SignedAttestation[] = [];
      for (const v of verifiers.slice(0, 3)) {
        signed.push(
          await v.signAttestation!({ jobId: "j1", attempt: 1, subject: HASH, verdict: "valid" }),
        );
      }
      const anyone = ledger.as("anyone");
      const steps = () => [
        // The third attestation verifies the job; the repeat after it is refused: all undone.
        settle(anyone.submitAttestations!({ attestations: [...signed, signed[0]!] })),
        // So the job is not verified: no release.
        settle(anyone.releasePayment({ jobId: "j1" })),
        settle(anyone.submitAttestations!({ attestations: signed })),
        settle(anyone.releasePayment({ jobId: "j1" })),
      ];
      const outcomes = grouped ? await Promise.all(ledger.group(steps)) : await steps().reduce(
        async (all, _p, i, list) => [...await all, await list[i]!],
        Promise.resolve([] as string[]),
      );
      assert.match(outcomes[0]!, /^err ChainError duplicate_attestation/, `grouped ${grouped}`);
      assert.match(outcomes[1]!, /^err ChainError invalid_state .*not verified|it has no verified/);
      assert.match(outcomes[2]!, /^ok /);
      assert.match(outcomes[3]!, /^ok /);
    } finally {
      ledger.close();
    }
  }
});

Deno.test("a job's row as a transaction changed it is what the next one reads: a revocation's new bid deadline", async () => {
  const clock = { now: 0 };
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now });
  try {
    const worker = ledger.as("worker");
    await worker.stake({ amount: 100n });
    const client = ledger.as("client");
    await client.submitJob({
      jobId: "j1",
      amount: 50n,
      minStake: 1n,
      modelHash: HASH,
      inputCommitment: HASH,
      verifierCount: 0,
      bidWindowMs: 100,
      executionMs: 100,
      verificationMs: 100,
    });
    clock.now = 10;
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 40n });
    // Overdue (its execution deadline was 110): anyone takes the job back, open until 300.
    clock.now = 200;
    const anyone = ledger.as("anyone");
    await anyone.revokeAssignment({ jobId: "j1", worker: "worker" });
    clock.now = 250;
    await assert.rejects(
      anyone.refund({ jobId: "j1", reason: "expired" }),
      (e: Error & { code?: string }) => e.code === "deadline_not_passed" && /300/.test(e.message),
    );
    clock.now = 300;
    await anyone.refund({ jobId: "j1", reason: "expired" });
  } finally {
    ledger.close();
  }
});

Deno.test("a transaction refused after it slashed a verifier leaves its stake as it was, alone or in a group", async () => {
  for (const grouped of [false, true]) {
    const ledger = LocalLedger.open(":memory:");
    try {
      const { verifiers, worker } = await assignedJob((a) => ledger.as(a), {
        amount: 1_000n,
        price: 600n,
        hash: HASH,
      });
      await worker.submitResult({ jobId: "j1", commitment: HASH });
      const sign = (i: number, verdict: "valid" | "invalid") =>
        verifiers[i]!.signAttestation!({ jobId: "j1", attempt: 1, subject: HASH, verdict });
      const [valid, no1, no2] = [
        await sign(0, "valid"),
        await sign(1, "invalid"),
        await sign(2, "invalid"),
      ];
      const anyone = ledger.as("anyone");
      const steps = () => [
        // Two of four say invalid: disputed, and v1, who said valid, is slashed; then the repeat
        // is refused, and all of it undone.
        settle(anyone.submitAttestations!({ attestations: [valid, no1, no2, valid] })),
        settle(anyone.stakeOf("v1")),
        settle(anyone.reputationOf("v1")),
        settle(anyone.submitAttestations!({ attestations: [valid, no1, no2] })),
        settle(anyone.stakeOf("v1")),
      ];
      const outcomes = grouped
        ? await Promise.all(ledger.group(steps))
        : await Promise.all(steps());
      assert.match(outcomes[0]!, /^err ChainError duplicate_attestation/, `grouped ${grouped}`);
      assert.equal(outcomes[1], 'ok "100n"');
      assert.equal(outcomes[2], "ok 500");
      assert.match(outcomes[3]!, /^ok /);
      assert.equal(outcomes[4], 'ok "50n"');
    } finally {
      ledger.close();
    }
  }
});
