/**
 * Byzantine settlement, property-tested on the chain's rules (the local ledger, jobs submitted
 * with terms): random lifecycles where the client lies (records a verdict, slashes, refunds,
 * revokes when it should not), up to f of the n chosen verifiers collude (attest against the
 * truth, double sign, stay silent), the worker is honest, wrong, silent, fails honestly on a bad
 * input or claims a failure falsely, and honest verifiers come and go (offline ones never
 * attest). After every step and at the end:
 *
 * - no honest worker or verifier is slashed;
 * - no worker is paid for a result that is not the true one; an honest client gets its escrow
 *   back whenever no true result was accepted (less the verifiers' 5 % when a quorum confirmed
 *   that its input fails);
 * - money and stake are conserved (`escrowed = paid + fees + refunded + locked`,
 *   `staked = bonded + slashed + withdrawn`, the balances credited sum to what left escrow and
 *   stake), and no job settles twice;
 * - once every deadline has passed, anyone can settle every job.
 *
 * With f+1 colluders the damage is bounded as the README says: they can have a true result
 * disputed (the worker loses the invalid-compute share, 50 % of its liable stake, and the honest
 * verifiers who had already attested valid lose 50 % too), but never have a false result paid,
 * and the client never loses its escrow.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainEvent, ChainPort } from "../chain/port.ts";
import { FAILURE_SUBJECT } from "../chain/settlement.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);
const TRUE_RESULT = "c".repeat(64);
const WRONG_RESULT = "d".repeat(64);
const WORKER_STAKE = 1_000n;
const VERIFIER_STAKE = 100n;
const ESCROW = 1_000n;
const PRICE = 600n;
const BID_MS = 1_000;
const EXEC_MS = 5_000;
const VERIFY_MS = 5_000;

type WorkerKind = "honest" | "wrong" | "silent" | "false_failure";

interface Scenario {
  verifiers: number;
  /** How many verifiers the job asks for (at most `verifiers`). */
  n: number;
  /** Whether the input really fails (the honest outcome is then a failure report). */
  badInput: boolean;
  worker: WorkerKind;
  /** Extra colluders beyond f (0 for the safety property, 1 for the damage bound). */
  extraColluders: number;
  /** Verifier index order: the first `f + extra` chosen are the colluders. */
  colludersFirst: boolean;
  steps: Step[];
}

type Step =
  | { op: "lie"; how: "verdict_false" | "verdict_true" | "slash" | "refund" | "revoke" }
  | { op: "attest"; who: number }
  | { op: "double_sign"; who: number }
  | { op: "offline"; who: number }
  | { op: "tick"; ms: number }
  | { op: "settle" };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    op: fc.constant("lie" as const),
    how: fc.constantFrom(
      "verdict_false" as const,
      "verdict_true" as const,
      "slash" as const,
      "refund" as const,
      "revoke" as const,
    ),
  }),
  fc.record({ op: fc.constant("attest" as const), who: fc.nat(9) }),
  fc.record({ op: fc.constant("double_sign" as const), who: fc.nat(9) }),
  fc.record({ op: fc.constant("offline" as const), who: fc.nat(9) }),
  fc.record({ op: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 3_000 }) }),
  fc.record({ op: fc.constant("settle" as const) }),
);

function scenarioArb(extraColluders: number, minN = 1): fc.Arbitrary<Scenario> {
  return fc.integer({ min: minN, max: 7 }).chain((n) =>
    fc.record({
      verifiers: fc.integer({ min: n, max: 8 }),
      n: fc.constant(n),
      badInput: fc.boolean(),
      worker: fc.constantFrom<WorkerKind>("honest", "wrong", "silent", "false_failure"),
      extraColluders: fc.constant(extraColluders),
      colludersFirst: fc.boolean(),
      steps: fc.array(stepArb, { maxLength: 40 }),
    })
  );
}

interface World {
  ledger: LocalLedger;
  clock: { now: number };
  client: ChainPort;
  worker: ChainPort;
  anyone: ChainPort;
  verifiers: Map<string, ChainPort>;
}

async function world(verifiers: number): Promise<World> {
  const clock = { now: 1_000 };
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now });
  const ports = new Map<string, ChainPort>();
  for (let i = 0; i < verifiers; i++) {
    const id = `v${i}`;
    const port = ledger.as(id);
    await port.stake({ amount: VERIFIER_STAKE, role: "verifier" });
    await port.registerKey!({ publicKey: await port.accountPublicKey!() });
    ports.set(id, port);
  }
  const worker = ledger.as("w1");
  await worker.stake({ amount: WORKER_STAKE });
  return {
    ledger,
    clock,
    client: ledger.as("c1"),
    worker,
    anyone: ledger.as("anyone"),
    verifiers: ports,
  };
}

async function events(port: ChainPort): Promise<ChainEvent[]> {
  return (await port.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 100_000 })).events;
}

/** Runs `call`; a refusal by the chain is part of the game, anything else is a bug. */
async function attempt(call: () => Promise<unknown> | undefined): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    assert.equal((error as Error).name, "ChainError", String(error));
    return false;
  }
}

interface Outcome {
  events: ChainEvent[];
  chosen: string[];
  colluders: Set<string>;
  truth: string;
  world: World;
}

async function play(s: Scenario): Promise<Outcome> {
  const w = await world(s.verifiers);
  await w.client.submitJob({
    jobId: "j1",
    amount: ESCROW,
    minStake: 100n,
    modelHash: MODEL,
    inputCommitment: INPUT,
    verifierCount: s.n,
    bidWindowMs: BID_MS,
    executionMs: EXEC_MS,
    verificationMs: VERIFY_MS,
  });
  await w.client.assignWorker({ jobId: "j1", worker: "w1", price: PRICE });
  const assigned = (await events(w.client)).find((e) => e.name === "WorkerAssigned");
  assert.ok(assigned?.name === "WorkerAssigned");
  const chosen = [...assigned.verifiers];
  assert.equal(chosen.length, s.n, "the chain chose exactly n verifiers");
  const f = Math.floor((s.n - 1) / 3);
  const count = Math.min(chosen.length, f + s.extraColluders);
  const ordered = s.colludersFirst ? chosen : [...chosen].reverse();
  const colluders = new Set(ordered.slice(0, count));
  const truth = s.badInput ? FAILURE_SUBJECT : TRUE_RESULT;
  // The worker acts at once (an honest worker is never late).
  switch (s.worker) {
    case "honest":
      if (s.badInput) await w.worker.reportFailure!({ jobId: "j1", reason: "input rejected" });
      else await w.worker.submitResult({ jobId: "j1", commitment: TRUE_RESULT });
      break;
    case "wrong":
      await w.worker.submitResult({ jobId: "j1", commitment: WRONG_RESULT });
      break;
    case "false_failure":
      if (s.badInput) await w.worker.submitResult({ jobId: "j1", commitment: WRONG_RESULT });
      else await w.worker.reportFailure!({ jobId: "j1", reason: "lazy" });
      break;
    case "silent":
      break;
  }
  // The worker acted at once: its claim (if any) landed at the start time.
  const claimedAt = w.clock.now;
  const claimOf = (evs: ChainEvent[]): string | null => {
    for (const e of evs) {
      if (e.name === "ResultSubmitted") return e.commitment;
      if (e.name === "FailureReported") return FAILURE_SUBJECT;
    }
    return null;
  };
  const offline = new Set<string>();
  const attested = new Set<string>();
  const verdictFor = (verifier: string, subject: string) => {
    const right = subject === truth ? "valid" as const : "invalid" as const;
    if (!colluders.has(verifier)) return right;
    return right === "valid" ? "invalid" as const : "valid" as const;
  };
  const attestAs = async (verifier: string, flip = false) => {
    const subject = claimOf(await events(w.client));
    if (subject === null) return;
    const port = w.verifiers.get(verifier)!;
    let verdict = verdictFor(verifier, subject);
    if (flip) verdict = verdict === "valid" ? "invalid" : "valid";
    const signed = await port.signAttestation!({ jobId: "j1", attempt: 1, subject, verdict });
    return signed;
  };
  for (const step of s.steps) {
    switch (step.op) {
      case "lie":
        switch (step.how) {
          case "verdict_false":
          case "verdict_true":
            await attempt(() =>
              w.client.recordVerification({ jobId: "j1", accepted: step.how === "verdict_true" })
            );
            break;
          case "slash":
            for (const reason of ["invalid_compute", "downtime", "double_signing"] as const) {
              await attempt(() => w.client.slash({ jobId: "j1", worker: "w1", reason }));
            }
            break;
          case "refund": {
            // A claim under verification, no verdict yet, its deadline not passed: the client
            // must not get its escrow back.
            const before = await events(w.client);
            const protectedClaim = claimOf(before) !== null &&
              !before.some((e) =>
                e.name === "JobVerified" || e.name === "JobDisputed" ||
                e.name === "EscrowRefunded" || e.name === "PaymentReleased"
              ) && w.clock.now < claimedAt + VERIFY_MS;
            for (const reason of ["failed", "cancelled", "expired", "disputed"] as const) {
              const took = await attempt(() => w.client.refund({ jobId: "j1", reason }));
              assert.ok(!(took && protectedClaim), `the client refunded a job under verification`);
            }
            break;
          }
          case "revoke":
            await attempt(() => w.client.revokeAssignment({ jobId: "j1", worker: "w1" }));
            break;
        }
        break;
      case "attest": {
        const verifier = chosen[step.who % chosen.length]!;
        if (offline.has(verifier) || attested.has(verifier)) break;
        const signed = await attestAs(verifier);
        if (signed === undefined) break;
        if (await attempt(() => w.anyone.submitAttestations!({ attestations: [signed] }))) {
          attested.add(verifier);
        }
        break;
      }
      case "double_sign": {
        // Only a colluder signs two conflicting statements; anyone turns them in as evidence.
        const verifier = chosen[step.who % chosen.length]!;
        if (!colluders.has(verifier)) break;
        const a = await attestAs(verifier);
        const b = await attestAs(verifier, true);
        if (a === undefined || b === undefined) break;
        await attempt(() => w.anyone.reportDoubleSigning!({ first: a, second: b }));
        break;
      }
      case "offline": {
        const verifier = chosen[step.who % chosen.length]!;
        if (!colluders.has(verifier)) offline.add(verifier);
        break;
      }
      case "tick":
        w.clock.now += step.ms;
        break;
      case "settle":
        await settleAll(w);
        break;
    }
    await checkConservation(w);
  }
  // Parties that stayed online attest; then every deadline passes and anyone settles.
  for (const verifier of chosen) {
    if (offline.has(verifier) || attested.has(verifier)) continue;
    const signed = await attestAs(verifier);
    if (signed === undefined) continue;
    if (await attempt(() => w.anyone.submitAttestations!({ attestations: [signed] }))) {
      attested.add(verifier);
    }
  }
  // Deadlines pass; a job reopened by an overdue revocation expires after its new bid window.
  w.clock.now += EXEC_MS + VERIFY_MS + BID_MS;
  await settleAll(w);
  w.clock.now += BID_MS;
  await settleAll(w);
  await checkConservation(w);
  return { events: await events(w.client), chosen, colluders, truth, world: w };
}

/** What anyone may do to bring a job to its end: every settlement call, refusals ignored. */
async function settleAll(w: World): Promise<void> {
  await attempt(() => w.anyone.revokeAssignment({ jobId: "j1", worker: "w1" }));
  for (const reason of ["invalid_compute", "downtime"] as const) {
    await attempt(() => w.anyone.slash({ jobId: "j1", worker: "w1", reason }));
  }
  await attempt(() => w.anyone.releasePayment({ jobId: "j1" }));
  for (const reason of ["disputed", "failed", "expired"] as const) {
    await attempt(() => w.anyone.refund({ jobId: "j1", reason }));
  }
}

async function checkConservation(w: World): Promise<void> {
  const t = await w.client.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked, "escrow conserved");
  assert.equal(t.staked, t.bonded + t.slashed + t.withdrawn, "stake conserved");
  const accounts = ["c1", "w1", "treasury", ...w.verifiers.keys()];
  const credited = accounts.reduce((sum, a) => sum + w.ledger.balanceOf(a), 0n);
  assert.equal(credited, t.paid + t.fees + t.refunded + t.slashed + t.withdrawn, "balances");
}

function settlements(evs: ChainEvent[]): number {
  return evs.filter((e) => e.name === "PaymentReleased" || e.name === "EscrowRefunded").length;
}

function slashedAccounts(evs: ChainEvent[]): string[] {
  return evs.flatMap((e) => e.name === "WorkerSlashed" ? [e.worker] : []);
}

Deno.test("byzantine: with at most f colluders no honest party is slashed, nobody pays for a false result, money is conserved, each job settles once", async () => {
  await fc.assert(
    fc.asyncProperty(scenarioArb(0), async (s) => {
      const { events: evs, chosen, colluders, truth, world: w } = await play(s);
      try {
        assert.equal(settlements(evs), 1, "the job settled exactly once");
        const slashed = slashedAccounts(evs);
        const honestWorker = s.worker === "honest";
        if (honestWorker) assert.ok(!slashed.includes("w1"), "honest worker slashed");
        for (const v of chosen) {
          if (!colluders.has(v)) assert.ok(!slashed.includes(v), `honest verifier ${v} slashed`);
        }
        const paid = evs.find((e) => e.name === "PaymentReleased");
        if (paid !== undefined) {
          // Paid only for the true result.
          assert.equal(truth, TRUE_RESULT);
          const claim = evs.find((e) => e.name === "ResultSubmitted");
          assert.ok(claim?.name === "ResultSubmitted" && claim.commitment === TRUE_RESULT);
        } else {
          // No true result accepted: the client got its escrow back, less the verifiers' share
          // only when a quorum confirmed that its input truly fails.
          const refunded = w.ledger.balanceOf("c1");
          const confirmedFailure = evs.some((e) => e.name === "FailureReported") &&
            evs.some((e) => e.name === "JobVerified");
          if (confirmedFailure) {
            assert.ok(s.badInput, "a failure was confirmed on a good input");
            assert.ok(refunded >= ESCROW - PRICE * 500n / 10_000n);
          } else {
            assert.equal(refunded, ESCROW);
          }
        }
        if (s.worker !== "honest" && s.worker !== "silent") {
          assert.ok(paid === undefined, "a dishonest worker was paid");
        }
      } finally {
        w.ledger.close();
      }
    }),
    { numRuns: 120 },
  );
});

Deno.test("byzantine: with f+1 colluders the damage is bounded: no false result paid, the client keeps its escrow, losses at most the invalid-compute share", async () => {
  await fc.assert(
    // With n < 4, f = 0 and one colluder is already 2f+1: ask for n >= 4 to tolerate one.
    fc.asyncProperty(scenarioArb(1, 4), async (s) => {
      const { events: evs, chosen, colluders, world: w } = await play(s);
      try {
        assert.equal(settlements(evs), 1, "the job settled exactly once");
        const paid = evs.find((e) => e.name === "PaymentReleased");
        if (paid !== undefined) {
          const claim = evs.find((e) => e.name === "ResultSubmitted");
          assert.ok(claim?.name === "ResultSubmitted" && claim.commitment === TRUE_RESULT);
        } else {
          assert.ok(w.ledger.balanceOf("c1") >= ESCROW - PRICE * 500n / 10_000n);
        }
        // Each honest party loses at most the invalid-compute share of its stake.
        for (const e of evs) {
          if (e.name !== "WorkerSlashed" || colluders.has(e.worker)) continue;
          if (e.worker === "w1" && s.worker !== "honest") continue;
          assert.equal(e.reason, "invalid_compute");
          const stake = e.worker === "w1" ? WORKER_STAKE : VERIFIER_STAKE;
          assert.ok(e.amount <= stake / 2n, `${e.worker} lost ${e.amount} of ${stake}`);
          assert.ok(chosen.includes(e.worker) || e.worker === "w1");
        }
      } finally {
        w.ledger.close();
      }
    }),
    { numRuns: 120 },
  );
});

Deno.test("byzantine: f+1 colluders of n >= 4 never get a wrong claim accepted, honest losses stay within half the stakes, and a failed collusion costs each counted colluder its bond's share", async () => {
  await fc.assert(
    fc.asyncProperty(scenarioArb(1, 4), async (s) => {
      const { events: evs, chosen, colluders, truth, world: w } = await play(s);
      try {
        const f = Math.floor((s.n - 1) / 3);
        assert.equal(colluders.size, f + 1);
        const claim = (() => {
          for (const e of evs) {
            if (e.name === "ResultSubmitted") return e.commitment;
            if (e.name === "FailureReported") return FAILURE_SUBJECT;
          }
          return null;
        })();
        const verified = evs.some((e) => e.name === "JobVerified");
        const disputed = evs.some((e) => e.name === "JobDisputed");
        // Acceptance takes 2f + 1 valid attestations: f + 1 colluders never reach it alone.
        if (verified) assert.equal(claim, truth, "a wrong claim was accepted");
        // The bound on what the honest lose: half the worker's stake and half of each honest
        // chosen verifier's bond, at most (the invalid-compute share, once).
        const honestVerifiers = chosen.filter((v) => !colluders.has(v));
        let honestLoss = 0n;
        for (const e of evs) {
          if (e.name !== "WorkerSlashed" || colluders.has(e.worker)) continue;
          if (e.worker === "w1" && s.worker !== "honest") continue;
          honestLoss += e.amount;
        }
        const bound = (s.worker === "honest" ? WORKER_STAKE / 2n : 0n) +
          BigInt(honestVerifiers.length) * VERIFIER_STAKE / 2n;
        assert.ok(honestLoss <= bound, `honest parties lost ${honestLoss} > ${bound}`);
        // When the collusion fails (the decision matches the truth), each colluder whose
        // attestation the chain counted loses at least 35 % of its bond: half of what is left
        // after a possible 30 % double-signing slash.
        const decidedRight = (verified && claim === truth) || (disputed && claim !== truth);
        if (decidedRight) {
          const counted = new Set(
            evs.flatMap((e) => e.name === "AttestationRecorded" ? [e.verifier] : []),
          );
          for (const c of colluders) {
            if (!counted.has(c)) continue;
            const lost = evs.filter((e) =>
              e.name === "WorkerSlashed" && e.worker === c && e.reason === "invalid_compute"
            ).reduce((sum, e) => sum + (e.name === "WorkerSlashed" ? e.amount : 0n), 0n);
            assert.ok(
              lost >= VERIFIER_STAKE * 35n / 100n,
              `colluder ${c} attested against the outcome and lost only ${lost}`,
            );
          }
        }
      } finally {
        w.ledger.close();
      }
    }),
    { numRuns: 120 },
  );
});
