/**
 * A differential property test: fast-check sequences of settlement calls (legacy jobs and jobs
 * with terms but no verifiers, by the client, the workers and a stranger, with amounts, prices,
 * reasons and callers that break rules as often as not) applied to the local ledger and to the
 * EVM contracts side by side. After every call both must agree on the outcome (done, or the same
 * error code, or both refusing a malformed argument); at the end on every event (its fields, not
 * its position), the totals, each job's escrow (`escrowOf`), each account's stake and reputation.
 * The EVM is reset between runs with `evm_snapshot`/`evm_revert`.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ChainEvent, ChainPort } from "../../chain/port.ts";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { startEvmMarket } from "../../chain/evm/deploy.ts";
import { EvmChain } from "../../chain/evm/evm_adapter.ts";
import { HARDHAT_CHAIN_ID, hardhatKey } from "../../chain/evm/deploy.ts";
import { PARAMS } from "./_chains.ts";

const ACCOUNTS = ["client", "w1", "w2", "stranger"] as const;
type Account = typeof ACCOUNTS[number];
const HASH = "ab".repeat(32);

type Op =
  | { op: "submit"; by: Account; job: number; amount: bigint; minStake: bigint; terms: boolean }
  | { op: "assign"; by: Account; job: number; worker: Account; price: bigint }
  | { op: "revoke"; by: Account; job: number; worker: Account }
  | { op: "result"; by: Account; job: number }
  | { op: "verdict"; by: Account; job: number; accepted: boolean }
  | { op: "release"; by: Account; job: number }
  | {
    op: "refund";
    by: Account;
    job: number;
    reason: "expired" | "cancelled" | "disputed" | "failed";
  }
  | {
    op: "slash";
    by: Account;
    job: number;
    worker: Account;
    reason: "invalid_compute" | "downtime" | "double_signing" | "coordinated_attack";
  }
  | { op: "stake"; by: Account; amount: bigint }
  | { op: "unstake"; by: Account; amount: bigint };

const account = fc.constantFrom(...ACCOUNTS);
/** Mostly `usual`, sometimes anyone: lifecycles go deep and rules are still broken often. */
const mostly = (usual: Account) =>
  fc.oneof({ arbitrary: fc.constant(usual), weight: 4 }, { arbitrary: account, weight: 1 });
const worker = fc.oneof(
  { arbitrary: fc.constant<Account>("w1"), weight: 3 },
  { arbitrary: fc.constantFrom<Account>("w2", "stranger"), weight: 1 },
);
const job = fc.oneof(
  { arbitrary: fc.constant(0), weight: 3 },
  { arbitrary: fc.constant(1), weight: 1 },
);
const small = fc.bigInt({ min: 0n, max: 1_500n });

/** Weighted toward the calls that move a job forward, so lifecycles reach payment and slashing. */
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("stake" as const),
      by: worker,
      amount: fc.bigInt({ min: 100n, max: 1_000n }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("submit" as const),
      by: mostly("client"),
      job,
      amount: fc.bigInt({ min: 0n, max: 3_000n }),
      minStake: fc.bigInt({ min: 0n, max: 600n }),
      terms: fc.oneof(
        { arbitrary: fc.constant(false), weight: 2 },
        { arbitrary: fc.constant(true), weight: 1 },
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("assign" as const),
      by: mostly("client"),
      job,
      worker,
      price: small,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("revoke" as const), by: mostly("client"), job, worker }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant("result" as const), by: mostly("w1"), job }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("verdict" as const),
      by: mostly("client"),
      job,
      accepted: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("release" as const), by: account, job }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("refund" as const),
      by: mostly("client"),
      job,
      reason: fc.constantFrom("expired", "cancelled", "disputed", "failed" as const),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("slash" as const),
      by: mostly("client"),
      job,
      worker,
      reason: fc.constantFrom(
        "invalid_compute",
        "downtime",
        "double_signing",
        "coordinated_attack" as const,
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("stake" as const), by: account, amount: small }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("unstake" as const), by: account, amount: small }),
  },
);

/** Every run starts here: two bonded workers, a legacy job and a job with terms, both assigned. */
const PRELUDE: readonly Op[] = [
  { op: "stake", by: "w1", amount: 1_000n },
  { op: "stake", by: "w2", amount: 300n },
  { op: "submit", by: "client", job: 0, amount: 1_000n, minStake: 200n, terms: false },
  { op: "submit", by: "client", job: 1, amount: 1_000n, minStake: 200n, terms: true },
  { op: "assign", by: "client", job: 0, worker: "w1", price: 800n },
  { op: "assign", by: "client", job: 1, worker: "w1", price: 700n },
];

function apply(ports: Record<Account, ChainPort>, o: Op): Promise<unknown> {
  const p = ports[o.by];
  const jobId = `job-${"job" in o ? o.job : 0}`;
  switch (o.op) {
    case "submit":
      return p.submitJob({
        jobId,
        amount: o.amount,
        minStake: o.minStake,
        modelHash: HASH,
        inputCommitment: HASH,
        ...(o.terms ? { verifierCount: 0 } : {}),
      });
    case "assign":
      return p.assignWorker({ jobId, worker: o.worker, price: o.price });
    case "revoke":
      return p.revokeAssignment({ jobId, worker: o.worker });
    case "result":
      return p.submitResult({ jobId, commitment: HASH });
    case "verdict":
      return p.recordVerification({ jobId, accepted: o.accepted });
    case "release":
      return p.releasePayment({ jobId });
    case "refund":
      return p.refund({ jobId, reason: o.reason });
    case "slash":
      return p.slash({ jobId, worker: o.worker, reason: o.reason });
    case "stake":
      return p.stake({ amount: o.amount });
    case "unstake":
      return p.requestUnstake({ amount: o.amount });
  }
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "done";
  } catch (error) {
    const e = error as Error & { code?: string };
    if (e.name === "TypeError" || e.name === "RangeError") return "malformed";
    if (e.name === "ChainError") return e.code ?? "?";
    throw error;
  }
}

async function allEvents(port: ChainPort): Promise<ChainEvent[]> {
  return (await port.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 100_000 })).events;
}

function shape(event: ChainEvent): string {
  const rest: Record<string, unknown> = { ...event };
  for (const key of ["blockNumber", "blockHash", "txHash", "eventIndex"]) delete rest[key];
  if (rest["name"] === "UnstakeRequested") delete rest["unlockAt"];
  return JSON.stringify(rest, (_k, v) => typeof v === "bigint" ? `${v}` : v);
}

Deno.test({
  name: "the local ledger and the EVM contracts agree on every outcome, event and balance",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const market = await startEvmMarket({
      feeBps: PARAMS.feeBps,
      verifierRewardBps: PARAMS.verifierRewardBps,
      unbondingSeconds: PARAMS.unbondingMs / 1000,
      minVerifierBond: PARAMS.minVerifierBond,
    });
    try {
      // Register and fund every account once; each run starts from this snapshot.
      for (const name of ACCOUNTS) await (await market.connect(name)).close();
      const base = { evm: market.evm.provider };
      const done = new Set<string>();
      let snapshot = await base.evm.request({ method: "evm_snapshot" } as never) as string;
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArb, { minLength: 15, maxLength: 40, size: "max" }),
          async (ops) => {
            await base.evm.request({ method: "evm_revert", params: [snapshot] } as never);
            snapshot = await base.evm.request({ method: "evm_snapshot" } as never) as string;
            const ledger = LocalLedger.open(":memory:", {
              protocolFeeBps: PARAMS.feeBps,
              verifierRewardBps: PARAMS.verifierRewardBps,
              unbondingMs: PARAMS.unbondingMs,
              minVerifierBond: PARAMS.minVerifierBond,
            });
            const evm = {} as Record<Account, ChainPort>;
            const local = {} as Record<Account, ChainPort>;
            try {
              for (const [i, name] of ACCOUNTS.entries()) {
                local[name] = ledger.as(name);
                evm[name] = await EvmChain.connect({
                  nodeId: name,
                  provider: market.evm.provider,
                  chainId: HARDHAT_CHAIN_ID,
                  addresses: market.addresses,
                  privateKey: hardhatKey(i + 1),
                });
              }
              for (const [step, o] of [...PRELUDE, ...ops].entries()) {
                const [a, b] = [await outcome(apply(local, o)), await outcome(apply(evm, o))];
                if (a === "done") done.add(o.op);
                assert.equal(
                  b,
                  a,
                  `step ${step} ${
                    JSON.stringify(o, (_k, v) => typeof v === "bigint" ? `${v}` : v)
                  }`,
                );
              }
              assert.deepEqual(
                (await allEvents(evm.client)).map(shape),
                (await allEvents(local.client)).map(shape),
                "the same events",
              );
              assert.deepEqual(await evm.client.totals(), await local.client.totals(), "totals");
              // Each job's escrow as the chain holds it (job-2 is never submitted).
              for (const jobId of ["job-0", "job-1", "job-2"]) {
                assert.deepEqual(
                  await evm.stranger.escrowOf!(jobId),
                  await local.stranger.escrowOf!(jobId),
                  `escrowOf ${jobId}`,
                );
              }
              for (const name of ACCOUNTS) {
                assert.equal(
                  await evm.client.stakeOf(name),
                  await local.client.stakeOf(name),
                  name,
                );
                assert.equal(
                  await evm.client.reputationOf(name),
                  await local.client.reputationOf(name),
                  name,
                );
              }
            } finally {
              for (const port of Object.values(evm)) await port.close();
              ledger.close();
            }
          },
        ),
        { numRuns: 60, seed: 15, endOnFailure: true },
      );
      // The sequences reach every kind of call that moves money, so the comparison means something.
      assert.deepEqual(
        [...done].sort(),
        [
          "assign",
          "refund",
          "release",
          "result",
          "revoke",
          "slash",
          "stake",
          "submit",
          "unstake",
          "verdict",
        ],
      );
    } finally {
      await market.close();
    }
  },
});
