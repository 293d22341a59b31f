/**
 * Property: whatever the interleaving of bids, withdrawals, deadlines, silent workers, wrong
 * results and verification outcomes, a job never settles twice, never pays out more than was
 * escrowed, and always reaches a final state once its deadlines pass.
 *
 * The harness runs the real job machine (pure `transition()`) for three jobs against the real
 * local ledger (in memory): every chain effect becomes a ledger transaction, and the ledger's
 * events come back through the same translation the node uses. Time is virtual.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { initialTransition, transition } from "xstate";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainCursor, ChainPort } from "../chain/port.ts";
import { chainEventToActorEvents } from "../chain/translate.ts";
import { type JobContext, jobMachine } from "../machines/job_machine.ts";
import type { EffectRequest } from "../machines/types.ts";
import { spec } from "./_drive.ts";

const WORKERS = ["w1", "w2", "w3", "w4"];
const VERIFIERS = ["v1", "v2", "v3", "v4", "v5"];
const JOBS = ["j1", "j2", "j3"];

type Move =
  | { kind: "bid"; job: number; worker: number; price: number; eta: number }
  | { kind: "withdraw"; job: number; worker: number }
  | { kind: "advance"; ms: number }
  | { kind: "deliver"; job: number; correct: boolean }
  | { kind: "attest"; job: number; verifier: number; valid: boolean }
  | { kind: "cancel"; job: number }
  | { kind: "lose_stake"; worker: number }
  | { kind: "attest_all"; job: number; valid: boolean };

const move: fc.Arbitrary<Move> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant("attest_all" as const),
      job: fc.nat(2),
      valid: fc.boolean(),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant("bid" as const),
      job: fc.nat(2),
      worker: fc.nat(3),
      price: fc.integer({ min: 1, max: 150 }),
      eta: fc.integer({ min: 10, max: 1_500 }),
    }),
    weight: 3,
  },
  fc.record({ kind: fc.constant("withdraw" as const), job: fc.nat(2), worker: fc.nat(3) }),
  {
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      ms: fc.integer({ min: 1, max: 300 }),
    }),
    weight: 3,
  },
  fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 300, max: 1_200 }) }),
  {
    arbitrary: fc.record({
      kind: fc.constant("deliver" as const),
      job: fc.nat(2),
      correct: fc.boolean(),
    }),
    weight: 2,
  },
  fc.record({
    kind: fc.constant("attest" as const),
    job: fc.nat(2),
    verifier: fc.nat(3),
    valid: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("cancel" as const), job: fc.nat(2) }),
  fc.record({ kind: fc.constant("lose_stake" as const), worker: fc.nat(3) }),
);

class Market {
  readonly ledger = LocalLedger.open(":memory:", { unbondingMs: 1 });
  readonly client: ChainPort = this.ledger.as("client");
  readonly reader: ChainPort = this.ledger.as("reader");
  readonly ports = new Map(WORKERS.map((w) => [w, this.ledger.as(w)]));
  // deno-lint-ignore no-explicit-any
  readonly snapshots = new Map<string, any>();
  cursor: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  now = 0;
  queue: { job: string; event: Record<string, unknown> & { type: string } }[] = [];
  finishedTwice: string[] = [];

  async init(): Promise<void> {
    for (const [, port] of this.ports) await port.stake({ amount: 100n });
    for (const jobId of JOBS) {
      const [s, actions] = initialTransition(jobMachine, {
        jobId,
        spec: spec({ maxAttempts: 2, verifierCount: 4, bidWindowMs: 600 }),
        owner: "client",
        self: "client",
        roles: ["client"],
        at: 0,
        verifierPool: VERIFIERS,
      });
      this.snapshots.set(jobId, s);
      // deno-lint-ignore no-explicit-any
      await this.effects(jobId, actions as any[]);
    }
    await this.pump();
  }

  context(jobId: string): JobContext {
    return this.snapshots.get(jobId).context;
  }

  // deno-lint-ignore no-explicit-any
  async effects(jobId: string, actions: any[]): Promise<void> {
    for (const a of actions) {
      if (a.type !== "xstate.emit") continue;
      const e = a.params.event as EffectRequest;
      try {
        switch (e.type) {
          case "chain.escrow.lock":
            await this.client.submitJob({
              jobId,
              amount: e.amount,
              minStake: e.spec.requirements.minStake,
              modelHash: "0".repeat(64),
              inputCommitment: e.spec.inputCommitment,
            });
            break;
          case "chain.assign":
            await this.client.assignWorker({
              jobId,
              worker: e.worker,
              price: e.price,
              verifiers: e.verifiers,
            });
            break;
          case "chain.assignment.revoke":
            await this.client.revokeAssignment({ jobId, worker: e.worker });
            break;
          case "chain.verification.record":
            await this.client.recordVerification({ jobId, accepted: e.accepted });
            break;
          case "chain.release":
            await this.client.releasePayment({ jobId });
            break;
          case "chain.refund":
            await this.client.refund({ jobId, reason: e.reason });
            break;
          case "chain.slash":
            await this.client.slash({ jobId, worker: e.worker, reason: e.reason });
            break;
          default:
            break;
        }
      } catch (error) {
        // deno-lint-ignore no-explicit-any
        const err = error as any;
        if (err.name !== "ChainError") throw error;
        this.queue.push({
          job: jobId,
          event: { type: "chain.tx.failed", request: e.type, code: err.code, message: err.message },
        });
      }
    }
  }

  async send(jobId: string, event: Record<string, unknown> & { type: string }): Promise<void> {
    const before = this.snapshots.get(jobId);
    if (before.status !== "active") return;
    const full = { ...event, at: this.now };
    if (!before.can(full)) return;
    const [after, actions] = transition(jobMachine, before, full as never);
    this.snapshots.set(jobId, after);
    // deno-lint-ignore no-explicit-any
    await this.effects(jobId, actions as any[]);
  }

  /** Delivers queued events and new chain events until quiet. */
  async pump(): Promise<void> {
    for (let round = 0; round < 1_000; round++) {
      const { events, next } = await this.reader.eventsSince(this.cursor);
      this.cursor = next;
      for (const ce of events) {
        for (const { target, event } of chainEventToActorEvents(ce)) {
          this.queue.push({ job: target.slice(4), event: event as { type: string } });
        }
      }
      const item = this.queue.shift();
      if (item === undefined && events.length === 0) return;
      if (item !== undefined) await this.send(item.job, item.event);
    }
    throw new Error("The market did not quiesce within 1000 rounds");
  }

  async advance(ms: number): Promise<void> {
    this.now += ms;
    for (let guard = 0; guard < 50; guard++) {
      let fired = false;
      for (const jobId of JOBS) {
        const deadlines = this.context(jobId).deadlines as Record<string, number>;
        for (const [key, due] of Object.entries(deadlines)) {
          if (due <= this.now) {
            fired = true;
            await this.send(jobId, { type: "timer.fired", key, due });
            await this.pump();
          }
        }
      }
      if (!fired) return;
    }
  }

  async apply(m: Move): Promise<void> {
    const jobId = JOBS["job" in m ? m.job : 0]!;
    const c = this.context(jobId);
    switch (m.kind) {
      case "bid": {
        const worker = WORKERS[m.worker]!;
        await this.send(jobId, {
          type: "bid.received",
          bid: {
            bidId: `${jobId}.${c.attempt}.${worker}`,
            jobId,
            worker,
            price: BigInt(m.price),
            etaMs: m.eta,
            stake: 100n,
            reputation: 500,
            hardware: "cpu",
          },
        });
        break;
      }
      case "withdraw": {
        const worker = WORKERS[m.worker]!;
        await this.send(jobId, {
          type: "bid.withdrawn",
          bidId: `${jobId}.${c.attempt}.${worker}`,
          worker,
        });
        break;
      }
      case "advance":
        await this.advance(m.ms);
        break;
      case "deliver": {
        const worker = c.winner?.worker;
        if (worker === undefined) break;
        try {
          await this.ports.get(worker)!.submitResult({
            jobId,
            commitment: (m.correct ? "a" : "b").repeat(64),
          });
        } catch (error) {
          if ((error as Error).name !== "ChainError") throw error;
        }
        break;
      }
      case "attest": {
        const verifier = c.verifiers[m.verifier];
        if (verifier === undefined) break;
        await this.send(jobId, {
          type: "job.attestation.received",
          verifier,
          verdict: m.valid ? "valid" : "invalid",
          commitment: "a".repeat(64),
          ...judged(c),
        });
        break;
      }
      case "attest_all":
        for (const verifier of c.verifiers) {
          await this.send(jobId, {
            type: "job.attestation.received",
            verifier,
            verdict: m.valid ? "valid" : "invalid",
            commitment: "a".repeat(64),
            ...judged(c),
          });
        }
        break;
      case "cancel":
        await this.send(jobId, { type: "job.cancel" });
        break;
      case "lose_stake": {
        const port = this.ports.get(WORKERS[m.worker]!)!;
        try {
          await port.requestUnstake({ amount: 95n });
        } catch (error) {
          if ((error as Error).name !== "ChainError") throw error;
        }
        break;
      }
    }
    await this.pump();
  }
}

/**
 * One hand-written interleaving per outcome. fast-check runs these first, then the random ones,
 * so the coverage check below does not depend on the seed (random runs alone reached "settled"
 * in most seeds but not all, and a coverage check that fails by chance says nothing).
 */
/** What an attestation sent now judges: the result on chain, else the assigned worker's. */
function judged(c: JobContext): { worker: string; claimed: string } {
  return {
    worker: c.result?.worker ?? c.winner?.worker ?? "none",
    claimed: c.result?.commitment ?? "a".repeat(64),
  };
}

const bid = (job: number, worker: number): Move => ({
  kind: "bid",
  job,
  worker,
  price: 50,
  eta: 100,
});
const advance = (ms: number): Move => ({ kind: "advance", ms });
const OUTCOME_EXAMPLES: Record<string, Move[]> = {
  settled: [bid(0, 0), advance(700), { kind: "deliver", job: 0, correct: true }, {
    kind: "attest_all",
    job: 0,
    valid: true,
  }],
  refunded: [bid(0, 1), advance(700), { kind: "deliver", job: 0, correct: false }, {
    kind: "attest_all",
    job: 0,
    valid: false,
  }],
  expired: [advance(700)],
  cancelled: [{ kind: "cancel", job: 0 }],
  "re-auctioned": [bid(0, 2), advance(700), advance(1_200), bid(0, 3), advance(700)],
  failed: [bid(0, 2), advance(700), advance(1_200), bid(0, 3), advance(700), advance(1_200)],
};

Deno.test("jobs never settle twice, never overpay, and always finish once deadlines pass", async () => {
  const reached = new Set<string>();
  const reachedByExample = new Map<string, Set<string>>();
  let current: Set<string> | undefined;
  await fc.assert(
    fc.asyncProperty(
      fc.array(move, { minLength: 10, maxLength: 80, size: "max" }),
      async (moves) => {
        const example = Object.entries(OUTCOME_EXAMPLES).find(([, m]) => m === moves)?.[0];
        current = example === undefined ? undefined : new Set();
        if (example !== undefined) reachedByExample.set(example, current!);
        const market = new Market();
        try {
          await market.init();
          for (const m of moves) await market.apply(m);
          // Let every deadline pass (verification and execution are 1 s, two attempts at most).
          for (let i = 0; i < 10; i++) await market.advance(1_500);

          const { events } = await market.reader.eventsSince({ blockNumber: 0, eventIndex: 0 }, {
            limit: 100_000,
          });
          for (const jobId of JOBS) {
            const snapshot = market.snapshots.get(jobId);
            assert.equal(
              snapshot.status,
              "done",
              `${jobId} is final, not ${JSON.stringify(snapshot.value)}`,
            );
            reached.add(snapshot.value);
            current?.add(snapshot.value);
            if (snapshot.context.attempt > 1) {
              reached.add("re-auctioned");
              current?.add("re-auctioned");
            }
            const settlements = events.filter((e) =>
              (e.name === "PaymentReleased" || e.name === "EscrowRefunded") && e.jobId === jobId
            );
            assert.ok(settlements.length <= 1, `${jobId} settled ${settlements.length} times`);
            const escrow = events.find((e) => e.name === "JobSubmitted" && e.jobId === jobId);
            const out = settlements.reduce(
              (sum, e) =>
                sum +
                (e.name === "PaymentReleased"
                  ? e.amount + e.fee + e.change
                  : e.name === "EscrowRefunded"
                  ? e.amount
                  : 0n),
              0n,
            );
            if (escrow?.name === "JobSubmitted") {
              assert.equal(out, escrow.amount, `${jobId} pays out exactly its escrow`);
            }
          }
          const t = await market.client.totals();
          assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
          assert.equal(t.locked, 0n, "nothing stays locked once every job is final");
          assert.ok(t.paid + t.fees <= t.escrowed);
        } finally {
          market.ledger.close();
        }
      },
    ),
    {
      numRuns: 150,
      examples: Object.values(OUTCOME_EXAMPLES).map((moves) => [moves]),
    },
  );
  // Every outcome must be reached, or the property says little: each hand-written example
  // reaches the outcome it is named for.
  for (const [outcome, moves] of Object.entries(OUTCOME_EXAMPLES)) {
    const got = reachedByExample.get(outcome);
    assert.ok(got !== undefined, `the "${outcome}" example did not run`);
    assert.ok(
      got.has(outcome),
      `the "${outcome}" example reached ${[...got].join(", ")} (moves: ${JSON.stringify(moves)})`,
    );
  }
  for (const outcome of Object.keys(OUTCOME_EXAMPLES)) {
    assert.ok(reached.has(outcome), `no run reached "${outcome}": ${[...reached].join(", ")}`);
  }
});
