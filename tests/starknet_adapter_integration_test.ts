/**
 * The Starknet adapter end to end against the JSON-RPC test double (`starknet/rpc_server.ts`,
 * which executes transactions on a local ledger): settlement flows, event pagination,
 * confirmations, reorgs and restarts on spec 0.9 and 0.10 nodes, nonce and transient-failure
 * retries, and that the account key never leaks. Every test also checks that all the traffic was
 * valid under the double's spec version. Every wait is bounded; no assertion depends on timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { ec } from "starknet";
import { LocalLedger } from "../chain/local_ledger.ts";
import { MAX_VERIFIERS } from "../machines/types.ts";
import { encodeChainEvent } from "../chain/events.ts";
import { FileCursorStore, MemoryCursorStore } from "../chain/event_cursor.ts";
import type { CursorStore } from "../chain/event_cursor.ts";
import type { ChainEvent } from "../chain/port.ts";
import {
  PRIVATE_KEY_ENV,
  type ReorgNotice,
  StarknetChain,
  type StarknetChainOptions,
} from "../chain/starknet_adapter.ts";
import { StarknetRpcServer, type StarknetRpcServerOptions } from "./starknet/rpc_server.ts";

const HASH = "ab".repeat(32);
const KEYS = {
  client: "0x5f4e3d2c1b0a99887766554433221100ffeeddccbbaa",
  worker: "0x1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f",
  watcher: "0x7777777777777777777777777777777777777777",
  verifier: "0x2468ace02468ace02468ace02468ace02468ace0",
};
const ADDRESSES = {
  client: "0xc11e47",
  worker: "0x3012ce",
  watcher: "0x3a7c4e",
  verifier: "0x7e21f1",
};

async function until(condition: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function connect(
  server: StarknetRpcServer,
  who: keyof typeof KEYS,
  options: Partial<StarknetChainOptions> = {},
): Promise<StarknetChain> {
  return StarknetChain.connect({
    rpcUrl: server.url,
    accountAddress: ADDRESSES[who],
    privateKey: KEYS[who],
    nodeId: `${who}-node`,
    jobManagerAddress: server.jobManagerAddress,
    cdcPoolAddress: server.cdcPoolAddress,
    confirmations: 0,
    pollMs: 5,
    backoffMs: 1,
    ...options,
  });
}

/** The three test accounts, deployed on every double. */
const ACCOUNTS = (Object.keys(KEYS) as (keyof typeof KEYS)[]).map((who) => ({
  address: ADDRESSES[who],
  publicKey: ec.starkCurve.getStarkKey(KEYS[who]),
}));

/**
 * Runs `body` against a fresh double and then checks that every request the adapter sent and
 * every answer the double gave was valid under the double's spec version.
 */
async function withServer(
  options: StarknetRpcServerOptions,
  body: (server: StarknetRpcServer) => Promise<void>,
): Promise<void> {
  const server = await StarknetRpcServer.start({ accounts: ACCOUNTS, ...options });
  try {
    await body(server);
    assert.deepEqual(server.requestProblems, [], "requests the spec refuses");
    assert.deepEqual(server.responseProblems, [], "answers the spec refuses");
    assert.ok(server.traffic.length > 0);
  } finally {
    await server.close();
  }
}

function key(event: ChainEvent): string {
  return `${event.blockHash}:${event.txHash}:${event.name}`;
}

function label(event: ChainEvent): string {
  return `${event.name}@${event.blockNumber}:${event.eventIndex}`;
}

async function allEvents(chain: StarknetChain): Promise<ChainEvent[]> {
  return (await chain.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 10_000 })).events;
}

async function assertMoneyConserved(chain: StarknetChain): Promise<void> {
  const t = await chain.totals();
  assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
  assert.equal(t.staked, t.bonded + t.slashed + t.withdrawn);
}

Deno.test("StarknetChain settles a job end to end: stake, submit, assign, result, verify, release", async () => {
  await withServer({ tokenAddress: "0x70ce2" }, async (server) => {
    const client = await connect(server, "client", { tokenAddress: "0x70ce2" });
    const worker = await connect(server, "worker");
    try {
      const seen: ChainEvent[] = [];
      const stop = client.subscribe((event) => seen.push(event));
      try {
        const staked = await worker.stake({ amount: 1_000n });
        assert.equal(typeof staked.txHash, "string");
        await client.submitJob({
          jobId: "job-1",
          amount: 500n,
          minStake: 100n,
          modelHash: HASH,
          inputCommitment: HASH,
        });
        await client.assignWorker({
          jobId: "job-1",
          worker: "worker-node",
          price: 400n,
          verifiers: ["verifier-a", "verifier-b"],
        });
        await worker.submitResult({ jobId: "job-1", commitment: "cd".repeat(32) });
        await client.recordVerification({ jobId: "job-1", accepted: true });
        const released = await client.releasePayment({ jobId: "job-1" });
        await until(() => seen.some((e) => e.name === "ReputationUpdated"), "the payment events");
        assert.deepEqual(seen.map((e) => e.name), [
          "WorkerStaked",
          "JobSubmitted",
          "WorkerAssigned",
          "ResultSubmitted",
          "JobVerified",
          "PaymentReleased",
          "ReputationUpdated",
        ]);
        const assigned = seen.find((e) => e.name === "WorkerAssigned");
        assert.ok(assigned?.name === "WorkerAssigned");
        assert.deepEqual(assigned.verifiers, ["verifier-a", "verifier-b"]);
        assert.equal(assigned.worker, "worker-node");
        const paid = seen.find((e) => e.name === "PaymentReleased");
        assert.ok(paid?.name === "PaymentReleased");
        assert.equal(paid.blockNumber, released.blockNumber);
        assert.equal(paid.amount + paid.fee + paid.change, 500n);
        assert.equal(await client.stakeOf("worker-node"), 1_000n);
        assert.equal(await client.reputationOf("worker-node"), 510);
        await assertMoneyConserved(client);
        await assert.rejects(client.releasePayment({ jobId: "job-1" }), {
          name: "ChainError",
          code: "invalid_state",
          message: /^Cannot release the payment of job "job-1": the contract refused it/,
        });
        await assert.rejects(
          client.submitJob({
            jobId: "job-1",
            amount: 1n,
            minStake: 0n,
            modelHash: HASH,
            inputCommitment: HASH,
          }),
          { name: "ChainError", code: "duplicate_job" },
        );
        await assert.rejects(worker.releasePayment({ jobId: "nope" }), {
          name: "ChainError",
          code: "unknown_job",
        });
        await assert.rejects(
          client.submitResult({ jobId: "job-1", commitment: "not a hash" }),
          TypeError,
        );
      } finally {
        stop();
      }
    } finally {
      await client.close();
      await worker.close();
    }
  });
});

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain settles a chain-decided job: a bonded verifier chosen by the chain, its signed attestation, its pay (spec ${specVersion})`, async () => {
    await withServer({ specVersion, ledgerOptions: { verifierRewardBps: 500 } }, async (server) => {
      const client = await connect(server, "client");
      const worker = await connect(server, "worker");
      const verifier = await connect(server, "verifier");
      try {
        const seen: ChainEvent[] = [];
        const stop = client.subscribe((event) => seen.push(event));
        try {
          await worker.stake({ amount: 1_000n });
          await verifier.stake({ amount: 1_000n, role: "verifier" });
          const publicKey = await verifier.accountPublicKey();
          assert.match(publicKey, /^[0-9a-f]{64}$/);
          await verifier.registerKey({ publicKey });
          await client.submitJob({
            jobId: "job-1",
            amount: 1_000n,
            minStake: 100n,
            modelHash: HASH,
            inputCommitment: HASH,
            verifierCount: 1,
            executionMs: 120_000,
          });
          await client.assignWorker({ jobId: "job-1", worker: "worker-node", price: 800n });
          await worker.submitResult({ jobId: "job-1", commitment: "cd".repeat(32) });
          const signed = await verifier.signAttestation({
            jobId: "job-1",
            attempt: 1,
            subject: "cd".repeat(32),
            verdict: "valid",
          });
          // Anyone relays it: here the worker.
          await worker.submitAttestations({ attestations: [signed] });
          await client.releasePayment({ jobId: "job-1" });
          await until(
            () => seen.filter((e) => e.name === "ReputationUpdated").length >= 1,
            "the payment events",
          );
          assert.deepEqual(seen.map((e) => e.name), [
            "WorkerStaked",
            "WorkerStaked",
            "VerifierRegistered",
            "KeyRegistered",
            "JobSubmitted",
            "WorkerAssigned",
            "ResultSubmitted",
            "AttestationRecorded",
            "JobVerified",
            "PaymentReleased",
            "ReputationUpdated",
          ]);
          const byName = (name: string) => seen.find((e) => e.name === name);
          const key = byName("KeyRegistered");
          assert.ok(key?.name === "KeyRegistered");
          assert.deepEqual([key.account, key.publicKey], ["verifier-node", publicKey]);
          const assigned = byName("WorkerAssigned");
          assert.ok(assigned?.name === "WorkerAssigned");
          assert.deepEqual(assigned.verifiers, ["verifier-node"]);
          const recorded = byName("AttestationRecorded");
          assert.ok(recorded?.name === "AttestationRecorded");
          assert.deepEqual(
            [recorded.verifier, recorded.attempt, recorded.verdict],
            ["verifier-node", 1, "valid"],
          );
          const paid = byName("PaymentReleased");
          assert.ok(paid?.name === "PaymentReleased");
          // The verifier's 5 % of the price comes out of the worker's share.
          assert.equal(paid.amount, 800n - 8n - 40n);
          await assertMoneyConserved(client);
        } finally {
          stop();
        }
      } finally {
        await client.close();
        await worker.close();
        await verifier.close();
      }
    });
  });
}

/** A chain-decided job assigned to `worker-node` with `verifier-node` its one verifier. */
async function chainDecidedJob(
  client: StarknetChain,
  worker: StarknetChain,
  verifier: StarknetChain,
): Promise<void> {
  await worker.stake({ amount: 1_000n });
  await verifier.stake({ amount: 1_000n, role: "verifier" });
  await verifier.registerKey({ publicKey: await verifier.accountPublicKey() });
  await client.submitJob({
    jobId: "job-1",
    amount: 1_000n,
    minStake: 100n,
    modelHash: HASH,
    inputCommitment: HASH,
    verifierCount: 1,
  });
  await client.assignWorker({ jobId: "job-1", worker: "worker-node", price: 800n });
}

Deno.test("StarknetChain: a lost answer to submitAttestations executes it once", async () => {
  await withServer({}, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    const verifier = await connect(server, "verifier");
    try {
      await chainDecidedJob(client, worker, verifier);
      await worker.reportFailure({ jobId: "job-1", reason: "input tensor has the wrong shape" });
      const signed = await verifier.signAttestation({
        jobId: "job-1",
        attempt: 1,
        subject: "failed",
        verdict: "valid",
      });
      const before = server.transactionsOf(ADDRESSES.client);
      // It executes; the answer is lost: the adapter follows the hash, never signs again.
      server.failNext("starknet_addInvokeTransaction", "lost");
      await client.submitAttestations({ attestations: [signed] });
      assert.equal(server.transactionsOf(ADDRESSES.client) - before, 1);
      const names = (await allEvents(client)).map((e) => e.name);
      assert.equal(names.filter((n) => n === "AttestationRecorded").length, 1);
      assert.equal(names.filter((n) => n === "JobVerified").length, 1);
      await client.refund({ jobId: "job-1", reason: "failed" });
      const failure = (await allEvents(client)).find((e) => e.name === "FailureReported");
      assert.ok(failure?.name === "FailureReported");
      assert.equal(failure.reason, "input tensor has the wrong shape");
      await assertMoneyConserved(client);
    } finally {
      await client.close();
      await worker.close();
      await verifier.close();
    }
  });
});

Deno.test("StarknetChain refuses malformed chain-decided arguments before any transaction", async () => {
  await withServer({}, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    const verifier = await connect(server, "verifier");
    try {
      await chainDecidedJob(client, worker, verifier);
      await worker.submitResult({ jobId: "job-1", commitment: "cd".repeat(32) });
      const good = await verifier.signAttestation({
        jobId: "job-1",
        attempt: 1,
        subject: "cd".repeat(32),
        verdict: "valid",
      });
      const estimates = () => server.calls.get("starknet_estimateFee") ?? 0;
      const before = estimates();
      const malformed: [string, () => Promise<unknown>, ErrorConstructor][] = [
        [
          "an empty failure reason",
          () => worker.reportFailure({ jobId: "job-1", reason: "" }),
          RangeError,
        ],
        [
          "a failure reason of 201 characters",
          () => worker.reportFailure({ jobId: "job-1", reason: "x".repeat(201) }),
          RangeError,
        ],
        ["a key that is not Ed25519", () => client.registerKey({ publicKey: "zz" }), TypeError],
        [
          "an unknown role",
          () => client.stake({ amount: 1n, role: "boss" as unknown as "worker" }),
          TypeError,
        ],
        ["no attestation", () => client.submitAttestations({ attestations: [] }), RangeError],
        [
          "more attestations than verifiers may be chosen",
          () => client.submitAttestations({ attestations: Array(MAX_VERIFIERS + 1).fill(good) }),
          RangeError,
        ],
        [
          "an attestation with an unknown verdict",
          () =>
            client.submitAttestations({
              attestations: [{ ...good, verdict: "maybe" as unknown as "valid" }],
            }),
          TypeError,
        ],
        [
          "attempt 0",
          () => client.reportDoubleSigning({ first: good, second: { ...good, attempt: 0 } }),
          RangeError,
        ],
        [
          "more verifiers than the chain may choose",
          () =>
            client.submitJob({
              jobId: "job-2",
              amount: 1n,
              minStake: 0n,
              modelHash: HASH,
              inputCommitment: HASH,
              verifierCount: MAX_VERIFIERS + 1,
            }),
          RangeError,
        ],
      ];
      for (const [what, call, type] of malformed) {
        await assert.rejects(call(), type, what);
      }
      assert.equal(estimates(), before, "nothing estimated, nothing sent");
      // A signature the ABI cannot carry goes as zeros: the contract refuses it, nothing sent.
      const sends = server.calls.get("starknet_addInvokeTransaction") ?? 0;
      await assert.rejects(
        client.submitAttestations({ attestations: [{ ...good, signature: "zz" }] }),
        { name: "ChainError", code: "bad_signature" },
      );
      assert.equal(server.calls.get("starknet_addInvokeTransaction") ?? 0, sends);
      assert.equal(
        (await allEvents(client)).filter((e) => e.name === "AttestationRecorded").length,
        0,
      );
    } finally {
      await client.close();
      await worker.close();
      await verifier.close();
    }
  });
});

Deno.test("StarknetChain.refund() and slash() settle a disputed job", async () => {
  await withServer({}, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    try {
      await worker.stake({ amount: 1_000n });
      await client.submitJob({
        jobId: "job-2",
        amount: 300n,
        minStake: 100n,
        modelHash: HASH,
        inputCommitment: HASH,
      });
      await client.assignWorker({
        jobId: "job-2",
        worker: "worker-node",
        price: 300n,
        verifiers: [],
      });
      await worker.submitResult({ jobId: "job-2", commitment: HASH });
      await client.recordVerification({ jobId: "job-2", accepted: false });
      await client.slash({ jobId: "job-2", worker: "worker-node", reason: "invalid_compute" });
      await client.refund({ jobId: "job-2", reason: "disputed" });
      const names = (await allEvents(client)).map((e) => e.name);
      assert.deepEqual(names, [
        "WorkerStaked",
        "JobSubmitted",
        "WorkerAssigned",
        "ResultSubmitted",
        "JobDisputed",
        "WorkerSlashed",
        "ReputationUpdated",
        "EscrowRefunded",
      ]);
      const events = await allEvents(client);
      const slashed = events.find((e) => e.name === "WorkerSlashed");
      assert.ok(slashed?.name === "WorkerSlashed");
      assert.equal(slashed.amount, 500n);
      assert.equal(slashed.reason, "invalid_compute");
      const refunded = events.find((e) => e.name === "EscrowRefunded");
      assert.ok(refunded?.name === "EscrowRefunded");
      assert.equal(refunded.amount, 300n);
      assert.equal(refunded.client, "client-node");
      assert.equal(await client.stakeOf("worker-node"), 500n);
      const totals = await client.totals();
      assert.equal(totals.refunded, 300n);
      assert.equal(totals.slashed, 500n);
      await assertMoneyConserved(client);
      await assert.rejects(client.refund({ jobId: "job-2", reason: "disputed" }), {
        name: "ChainError",
        code: "invalid_state",
      });
      await assert.rejects(
        worker.slash({ jobId: "job-2", worker: "client-node", reason: "downtime" }),
        {
          name: "ChainError",
          code: "not_authorized",
        },
      );
    } finally {
      await client.close();
      await worker.close();
    }
  });
});

Deno.test("StarknetChain.requestUnstake() and withdraw() return unbonded stake", async () => {
  const ledger = LocalLedger.open(":memory:", { unbondingMs: 0 });
  try {
    await withServer({ ledger, ledgerOptions: { unbondingMs: 0 } }, async (server) => {
      const worker = await connect(server, "worker");
      try {
        await worker.stake({ amount: 100n });
        await assert.rejects(worker.requestUnstake({ amount: 101n }), {
          name: "ChainError",
          code: "insufficient_stake",
        });
        await worker.requestUnstake({ amount: 60n });
        await worker.withdraw();
        const events = await allEvents(worker);
        assert.deepEqual(events.map((e) => e.name), [
          "WorkerStaked",
          "UnstakeRequested",
          "StakeWithdrawn",
        ]);
        const withdrawn = events[2];
        assert.ok(withdrawn?.name === "StakeWithdrawn");
        assert.equal(withdrawn.amount, 60n);
        assert.equal(await worker.stakeOf("worker-node"), 40n);
        await assertMoneyConserved(worker);
      } finally {
        await worker.close();
      }
    });
  } finally {
    ledger.close();
  }
});

Deno.test("StarknetChain.requestUnstake() fails with stake_locked while the worker's job is open", async () => {
  const ledger = LocalLedger.open(":memory:", { unbondingMs: 0 });
  try {
    await withServer({ ledger, ledgerOptions: { unbondingMs: 0 } }, async (server) => {
      const client = await connect(server, "client");
      const worker = await connect(server, "worker");
      try {
        await worker.stake({ amount: 100n });
        await client.submitJob({
          jobId: "job-3",
          amount: 50n,
          minStake: 10n,
          modelHash: HASH,
          inputCommitment: HASH,
        });
        await client.assignWorker({
          jobId: "job-3",
          worker: "worker-node",
          price: 50n,
          verifiers: [],
        });
        await worker.stake({ amount: 20n });
        const before = await allEvents(worker);
        const sent = server.transactionsOf(ADDRESSES.worker);
        // The fee estimate simulates the call: the panic is known before anything is sent.
        await assert.rejects(worker.requestUnstake({ amount: 21n }), {
          name: "ChainError",
          code: "stake_locked",
          message: 'Cannot request to unstake 21: the contract refused it with "stake_locked"',
        });
        assert.equal(server.transactionsOf(ADDRESSES.worker), sent);
        assert.deepEqual(await allEvents(worker), before);
        assert.deepEqual(ledger.stakeLockOf("worker-node"), {
          stake: 120n,
          unbonding: 0n,
          locked: 100n,
          openJobs: ["job-3"],
        });
        // The stake staked after the assignment is free; the rest once the job is refunded.
        await worker.requestUnstake({ amount: 20n });
        await client.refund({ jobId: "job-3", reason: "cancelled" });
        await worker.requestUnstake({ amount: 100n });
        await worker.withdraw();
        assert.equal(await worker.stakeOf("worker-node"), 0n);
        await assertMoneyConserved(worker);
      } finally {
        await client.close();
        await worker.close();
      }
    });
  } finally {
    ledger.close();
  }
});

Deno.test("StarknetChain.eventsSince() pages through several chunks with continuation tokens", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker", { chunkSize: 3 });
    try {
      for (let i = 1; i <= 10; i++) await worker.stake({ amount: BigInt(i) });
      const before = server.calls.get("starknet_getEvents") ?? 0;
      const { events, next } = await worker.eventsSince({ blockNumber: 0, eventIndex: 0 });
      const pages = (server.calls.get("starknet_getEvents") ?? 0) - before;
      assert.equal(events.length, 10);
      assert.deepEqual(events.map((e) => e.name === "WorkerStaked" ? e.amount : -1n), [
        1n,
        2n,
        3n,
        4n,
        5n,
        6n,
        7n,
        8n,
        9n,
        10n,
      ]);
      assert.equal(pages, 4);
      assert.ok(server.chunkSizes.every((size) => size === 3));
      assert.deepEqual(next, { blockNumber: server.blockNumber + 1, eventIndex: 0 });
      // A limit splits the read; continuing from `next` skips nothing and repeats nothing.
      const first = await worker.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 4 });
      const rest = await worker.eventsSince(first.next);
      assert.equal(first.events.length, 4);
      assert.deepEqual([...first.events, ...rest.events].map(label), events.map(label));
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain.eventsSince() returns only events at least `confirmations` blocks deep", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker", { confirmations: 3 });
    try {
      const receipt = await worker.stake({ amount: 7n });
      assert.equal(receipt.blockNumber, server.blockNumber);
      assert.deepEqual((await allEvents(worker)).map((e) => e.name), []);
      server.mine(2);
      assert.deepEqual((await allEvents(worker)).map((e) => e.name), []);
      server.mine(1);
      assert.deepEqual((await allEvents(worker)).map((e) => e.name), ["WorkerStaked"]);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain skips pre-confirmed events until their block is confirmed", async () => {
  await withServer({ autoMine: false, leakPreConfirmedEvents: true }, async (server) => {
    const registering = connect(server, "worker");
    await until(() => server.pendingCount === 1, "the registration");
    server.mine();
    const worker = await registering;
    try {
      const staking = worker.stake({ amount: 9n });
      await until(() => server.pendingCount === 1, "the stake in the pre-confirmed block");
      // The node returns the pre-confirmed event (no block hash or number); it is skipped.
      assert.deepEqual(await allEvents(worker), []);
      server.mine();
      const receipt = await staking;
      const events = await allEvents(worker);
      assert.deepEqual(events.map((e) => e.name), ["WorkerStaked"]);
      assert.equal(events[0]?.blockNumber, receipt.blockNumber);
    } finally {
      await worker.close();
    }
  });
});

for (
  const [mode, specVersion] of [
    ["rehash", "0.10.3"],
    ["drop", "0.10.3"],
    ["reverse", "0.10.3"],
    ["rehash", "0.9.0"],
    ["reverse", "0.9.0"],
  ] as const
) {
  const name = "StarknetChain.subscribe() re-applies events once after a reorg";
  Deno.test(`${mode === "rehash" ? name : `${name} that ${mode}s its blocks`} (spec ${specVersion})`, async () => {
    await withServer({ specVersion }, async (server) => {
      const worker = await connect(server, "worker");
      const watcher = await connect(server, "watcher", { confirmations: 1 });
      try {
        for (let i = 1; i <= 4; i++) await worker.stake({ amount: BigInt(i) });
        server.mine(1);
        const delivered: ChainEvent[] = [];
        const notices: ReorgNotice[] = [];
        const stop = watcher.subscribe((event) => delivered.push(event), {
          onReorg: (notice) => notices.push(notice),
        });
        try {
          await until(() => delivered.length === 4, "the first four events");
          // Replace the last three blocks (two stakes and the empty block) with a fork.
          server.reorg(3, mode);
          server.mine(1);
          const expected = (await allEvents(watcher)).map(key);
          await until(() => notices.length === 1, "the reorg notice");
          const notice = notices[0]!;
          assert.equal(notice.revoked.length, 2);
          const revoked = new Set(notice.revoked.map(key));
          const live = () => delivered.map(key).filter((k) => !revoked.has(k));
          await until(() => live().length === expected.length, "the new chain's events");
          // Let a few more polls run: nothing is delivered twice.
          const polls = server.calls.get("starknet_blockNumber") ?? 0;
          await until(
            () => (server.calls.get("starknet_blockNumber") ?? 0) >= polls + 3,
            "three more polls",
          );
          assert.deepEqual(live(), expected);
          assert.equal(new Set(delivered.map(key)).size, delivered.length);
          const amounts = (events: ChainEvent[]) =>
            events.map((e) => (e.name === "WorkerStaked" ? e.amount : -1n));
          const fresh = delivered.slice(4);
          assert.deepEqual(
            amounts(fresh),
            mode === "drop" ? [] : mode === "reverse" ? [4n, 3n] : [3n, 4n],
          );
          assert.deepEqual(amounts(notice.revoked as ChainEvent[]), [3n, 4n]);
        } finally {
          stop();
        }
      } finally {
        await worker.close();
        await watcher.close();
      }
    });
  });
}

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain.subscribe() resumes from a stored cursor without gaps or repeats (spec ${specVersion})`, async () => {
    const dir = await Deno.makeTempDir();
    try {
      await withServer({ specVersion }, async (server) => {
        const worker = await connect(server, "worker", { chunkSize: 2 });
        const stores: CursorStore[] = [];
        try {
          for (let i = 1; i <= 5; i++) await worker.stake({ amount: BigInt(i) });
          const delivered: ChainEvent[] = [];
          // First run: stop after three events, in the middle of a block range and a page.
          const store = new FileCursorStore(`${dir}/cursor.json`);
          stores.push(store);
          const first = await connect(server, "watcher", { cursorStore: store, chunkSize: 2 });
          let stopFirst = () => {};
          stopFirst = first.subscribe((event) => {
            delivered.push(event);
            if (delivered.length === 3) stopFirst();
          });
          await until(() => delivered.length === 3, "the first run");
          await first.close();
          for (let i = 6; i <= 8; i++) await worker.stake({ amount: BigInt(i) });
          // Second run: a new adapter with the same file.
          const second = await connect(server, "watcher", {
            cursorStore: new FileCursorStore(`${dir}/cursor.json`),
            chunkSize: 2,
          });
          const stop = second.subscribe((event) => delivered.push(event));
          try {
            await until(() => delivered.length >= 8, "the second run");
            const polls = server.calls.get("starknet_blockNumber") ?? 0;
            await until(
              () => (server.calls.get("starknet_blockNumber") ?? 0) >= polls + 3,
              "three more polls",
            );
            assert.deepEqual(
              delivered.map((e) => (e.name === "WorkerStaked" ? e.amount : -1n)),
              [1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n],
            );
            assert.deepEqual(delivered.map(label), (await allEvents(second)).map(label));
          } finally {
            stop();
            await second.close();
          }
        } finally {
          await worker.close();
          for (const store of stores) await store.close();
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain.subscribe() resumes inside a transaction of two events once (spec ${specVersion})`, async () => {
    await withServer({ specVersion }, async (server) => {
      const client = await connect(server, "client");
      const worker = await connect(server, "worker");
      const store = new MemoryCursorStore();
      try {
        await worker.stake({ amount: 100n });
        await client.submitJob({
          jobId: "j",
          amount: 10n,
          minStake: 1n,
          modelHash: HASH,
          inputCommitment: HASH,
        });
        await client.assignWorker({ jobId: "j", worker: "worker-node", price: 10n, verifiers: [] });
        await worker.submitResult({ jobId: "j", commitment: HASH });
        await client.recordVerification({ jobId: "j", accepted: true });
        const released = await client.releasePayment({ jobId: "j" });
        const delivered: ChainEvent[] = [];
        // First run: stop right after PaymentReleased, before the transaction's second event.
        const first = await connect(server, "watcher", { cursorStore: store, chunkSize: 1 });
        let stopFirst = () => {};
        stopFirst = first.subscribe((event) => {
          delivered.push(event);
          if (event.name === "PaymentReleased") stopFirst();
        });
        await until(() => delivered.at(-1)?.name === "PaymentReleased", "the first run");
        await first.close();
        const second = await connect(server, "watcher", { cursorStore: store, chunkSize: 1 });
        const stop = second.subscribe((event) => delivered.push(event));
        try {
          await until(() => delivered.at(-1)?.name === "ReputationUpdated", "the second run");
          const polls = server.calls.get("starknet_blockNumber") ?? 0;
          await until(
            () => (server.calls.get("starknet_blockNumber") ?? 0) >= polls + 3,
            "three more polls",
          );
          assert.deepEqual(delivered.map((e) => e.name), [
            "WorkerStaked",
            "JobSubmitted",
            "WorkerAssigned",
            "ResultSubmitted",
            "JobVerified",
            "PaymentReleased",
            "ReputationUpdated",
          ]);
          const last = delivered.filter((e) => e.txHash === released.txHash);
          assert.deepEqual(last.map((e) => e.eventIndex), [0, 1]);
        } finally {
          stop();
          await second.close();
        }
      } finally {
        await client.close();
        await worker.close();
      }
    });
  });
}

Deno.test("StarknetChain.subscribe() notices a reorg that happened while it was stopped", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker");
    const store = new MemoryCursorStore();
    try {
      const before = await connect(server, "watcher", { cursorStore: store });
      for (let i = 1; i <= 4; i++) await worker.stake({ amount: BigInt(i) });
      const delivered: ChainEvent[] = [];
      before.subscribe((event) => delivered.push(event));
      await until(() => delivered.length === 4, "the first four events");
      await before.close();
      const state = await store.load();
      assert.ok(state !== undefined && state.recentBlocks.length > 0);
      server.reorg(2, "drop");
      await worker.stake({ amount: 5n });
      const notices: ReorgNotice[] = [];
      const after = await connect(server, "watcher", { cursorStore: store });
      const stop = after.subscribe((event) => delivered.push(event), {
        onReorg: (notice) => notices.push(notice),
      });
      try {
        await until(() => delivered.length === 5, "the event after the reorg");
        assert.equal(notices.length, 1);
        // The last two blocks (stakes 3 and 4) were dropped: the fork is after stake 2's block.
        // The revoked events were delivered before the restart, so only the fork is known.
        assert.equal(notices[0]!.forkBlock, delivered[1]!.blockNumber);
        assert.deepEqual(notices[0]!.revoked, []);
        assert.deepEqual(
          delivered.map((e) => (e.name === "WorkerStaked" ? e.amount : -1n)),
          [1n, 2n, 3n, 4n, 5n],
        );
      } finally {
        stop();
        await after.close();
      }
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain retries a refused nonce and a failed send, and maps contract errors", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker", { maxAttempts: 4 });
    try {
      // Another process used the account: the cached nonce is stale.
      server.bumpNonce(ADDRESSES.worker);
      const sends = server.calls.get("starknet_addInvokeTransaction") ?? 0;
      await worker.stake({ amount: 5n });
      assert.equal((server.calls.get("starknet_addInvokeTransaction") ?? 0) - sends, 2);
      assert.ok((server.calls.get("starknet_getNonce") ?? 0) >= 2);
      // The send fails on the way: the node does not know the hash, so the identical
      // transaction is sent again.
      server.failNext("starknet_addInvokeTransaction", "network");
      await worker.stake({ amount: 6n });
      // Transient failures of reads are retried too.
      server.failNext("starknet_call", { code: 63, message: "An unexpected error occurred" }, 2);
      assert.equal(await worker.stakeOf("worker-node"), 11n);
      // A refusal at fee estimation names the Cairo panic.
      server.failNext("starknet_estimateFee", {
        code: 41,
        message: "Transaction execution error",
        data: {
          transaction_index: 0,
          execution_error:
            "Execution failed. Failure reason: (0x7374696c6c5f756e626f6e64696e67 ('still_unbonding')).",
        },
      });
      await assert.rejects(worker.withdraw(), {
        name: "ChainError",
        code: "still_unbonding",
        message: /^Cannot withdraw unbonded stake: the contract refused it with "still_unbonding"$/,
      });
      // Bounded: a node that keeps failing is an rpc_error after maxAttempts.
      server.failNext("starknet_blockNumber", "network", 4);
      await assert.rejects(worker.eventsSince({ blockNumber: 0, eventIndex: 0 }), {
        name: "ChainError",
        code: "rpc_error",
        message: /^Cannot read the block number: gave up after 4 attempts/,
      });
      assert.equal((await allEvents(worker)).length, 2);
    } finally {
      await worker.close();
    }
  });
});

for (const specVersion of ["0.9.0", "0.10.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain reads only its contracts' events from a spec ${specVersion} node`, async () => {
    await withServer({ specVersion }, async (server) => {
      const worker = await connect(server, "worker");
      try {
        await worker.stake({ amount: 1n });
        // Another contract emits an event with our selector and layout.
        const forged = encodeChainEvent({
          name: "WorkerStaked",
          worker: "worker-node",
          amount: 10n ** 9n,
          total: 10n ** 9n,
          blockNumber: 0,
          blockHash: "0x0",
          txHash: "0x0",
          eventIndex: 0,
        }, "0xbad");
        server.emitForeign("0xbad", forged.keys, forged.data);
        await worker.stake({ amount: 2n });
        const events = await allEvents(worker);
        assert.deepEqual(events.map((e) => (e.name === "WorkerStaked" ? e.amount : -1n)), [1n, 2n]);
        assert.ok(events.every((e) => e.eventIndex === 0));
        // From spec 0.10.1 the node filters by both addresses; before, a filter takes one
        // address, so the adapter filters itself.
        const address = server.eventFilters.at(-1)?.address;
        assert.deepEqual(
          address,
          specVersion === "0.10.3" ? [server.jobManagerAddress, server.cdcPoolAddress] : undefined,
        );
      } finally {
        await worker.close();
      }
    });
  });
}

Deno.test("StarknetChain.connect() refuses an account registered as another node", async () => {
  await withServer({}, async (server) => {
    const first = await connect(server, "worker");
    await first.close();
    await assert.rejects(connect(server, "worker", { nodeId: "someone-else" }), {
      name: "ChainError",
      code: "not_authorized",
      message: /registered as "worker-node"/,
    });
  });
});

Deno.test("StarknetChain never shows the private key in errors, logs or JSON", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      { category: ["ciro"], sinks: ["memory"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  const dir = await Deno.makeTempDir();
  const previous = Deno.env.get(PRIVATE_KEY_ENV);
  try {
    await withServer({}, async (server) => {
      Deno.env.set(PRIVATE_KEY_ENV, KEYS.client);
      const fromEnv = await StarknetChain.connect({
        rpcUrl: server.url,
        accountAddress: ADDRESSES.client,
        jobManagerAddress: server.jobManagerAddress,
        cdcPoolAddress: server.cdcPoolAddress,
        confirmations: 0,
        pollMs: 5,
        backoffMs: 1,
        cursorStore: new MemoryCursorStore(),
      });
      await Deno.writeTextFile(`${dir}/key`, `${KEYS.worker}\n`);
      Deno.env.delete(PRIVATE_KEY_ENV);
      const fromFile = await StarknetChain.connect({
        rpcUrl: server.url,
        accountAddress: ADDRESSES.worker,
        privateKeyFile: `${dir}/key`,
        jobManagerAddress: server.jobManagerAddress,
        cdcPoolAddress: server.cdcPoolAddress,
        confirmations: 0,
        pollMs: 5,
        backoffMs: 1,
      });
      const texts: string[] = [];
      const collect = (error: unknown) => {
        for (let e: unknown = error; e !== undefined; e = (e as { cause?: unknown }).cause) {
          texts.push(String(e), (e as Error).stack ?? "", JSON.stringify(e) ?? "");
        }
      };
      try {
        await fromEnv.releasePayment({ jobId: "missing" }).catch(collect);
        server.failNext("starknet_addInvokeTransaction", {
          code: 55,
          message: "Account validation failed",
        });
        await fromFile.stake({ amount: 1n }).catch(collect);
        server.failNext("starknet_estimateFee", "network", 5);
        await fromFile.stake({ amount: 1n }).catch(collect);
        await StarknetChain.connect({
          rpcUrl: server.url,
          accountAddress: ADDRESSES.client,
          privateKey: `${KEYS.client}zz`,
          jobManagerAddress: server.jobManagerAddress,
          cdcPoolAddress: server.cdcPoolAddress,
        }).catch(collect);
        assert.equal(texts.length > 6, true);
        texts.push(JSON.stringify(fromEnv), JSON.stringify(fromFile));
        texts.push(Deno.inspect(fromEnv, { depth: 10 }), Deno.inspect(fromFile, { depth: 10 }));
        texts.push(
          ...records.map((r) =>
            JSON.stringify(
              { message: r.message, properties: r.properties },
              (_k, v) => typeof v === "bigint" ? v.toString() : v,
            )
          ),
        );
        assert.ok(records.length > 0);
        for (const text of texts) {
          for (const secret of [KEYS.client, KEYS.worker]) {
            assert.equal(text.toLowerCase().includes(secret.slice(2).toLowerCase()), false, text);
          }
        }
      } finally {
        await fromEnv.close();
        await fromFile.close();
      }
    });
  } finally {
    if (previous === undefined) Deno.env.delete(PRIVATE_KEY_ENV);
    else Deno.env.set(PRIVATE_KEY_ENV, previous);
    await Deno.remove(dir, { recursive: true });
    await reset();
  }
});

Deno.test("StarknetChain.escrowOf() refuses a node's answer with an unknown status or a known job without a client", async () => {
  await withServer({}, async (server) => {
    const client = await connect(server, "client");
    try {
      await client.submitJob({
        jobId: "j1",
        amount: 10n,
        minStake: 0n,
        modelHash: HASH,
        inputCommitment: HASH,
      });
      assert.deepEqual(await client.escrowOf("j1"), {
        jobId: "j1",
        client: "client-node",
        ended: false,
      });
      const short = (text: string) => `0x${new TextEncoder().encode(text).toHex()}`;
      const c1 = ["0x0", short("c1"), "0x2"];
      const cases: [string[], RegExp][] = [
        [[...c1, "0x0", "0x0", short("settled")], /unknown status "settled"/],
        [[...c1, "0x0", "0x0", "0x0"], /unknown status ""/],
        [["0x0", "0x0", "0x0", "0x0", "0x0", short("paid")], /a job without a client/],
      ];
      for (const [answer, message] of cases) {
        server.answerNext("starknet_call", answer);
        await assert.rejects(client.escrowOf("j1"), (error: Error & { code?: string }) => {
          assert.equal(error.name, "ChainError");
          assert.equal(error.code, "rpc_error");
          assert.match(error.message, /Cannot read the escrow of "j1": the node answered/);
          assert.match(error.message, message);
          return true;
        });
      }
      server.answerNext("starknet_call", [...c1, "0x0", "0x0", short("refunded")]);
      assert.deepEqual(await client.escrowOf("j1"), { jobId: "j1", client: "c1", ended: true });
    } finally {
      await client.close();
    }
  });
});

Deno.test("StarknetRpcServer executes against a shared ledger that the local adapter also reads", async () => {
  const ledger = LocalLedger.open(":memory:");
  try {
    await withServer({ ledger, ledgerOptions: { unbondingMs: 0 } }, async (server) => {
      const worker = await connect(server, "worker");
      try {
        await worker.stake({ amount: 42n });
        assert.equal(await ledger.as("reader").stakeOf("worker-node"), 42n);
      } finally {
        await worker.close();
      }
    });
  } finally {
    ledger.close();
  }
});

Deno.test("StarknetChain.escrowOf() reads at the confirmed head, as its events: an unconfirmed escrow, ending or dropped block is not read", async () => {
  await withServer({}, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    const reader = await connect(server, "watcher", { confirmations: 2 });
    try {
      const submit = (jobId: string) =>
        client.submitJob({
          jobId,
          amount: 10n,
          minStake: 0n,
          modelHash: HASH,
          inputCommitment: HASH,
          verifierCount: 0,
        });
      const submitted = async (jobId: string) =>
        (await allEvents(reader)).filter((e) => e.name === "JobSubmitted" && e.jobId === jobId)
          .length;
      await submit("j1");
      assert.equal((await client.escrowOf("j1"))?.client, "client-node", "at the head");
      assert.equal(await reader.escrowOf("j1"), undefined, "unconfirmed: absent");
      assert.equal(
        (await reader.escrowOf("j1", { latest: true }))?.client,
        "client-node",
        "unconfirmed, at the latest block: present (review R6 M5)",
      );
      assert.equal(await submitted("j1"), 0);
      server.mine(1);
      assert.equal(await reader.escrowOf("j1"), undefined, "one block deep: absent");
      server.mine(1);
      const escrow = { jobId: "j1", client: "client-node", ended: false };
      assert.deepEqual(await reader.escrowOf("j1"), escrow, "two blocks deep: present");
      assert.equal(await submitted("j1"), 1, "the event stream shows it at the same depth");
      // Paid (no verifiers: on the result) at the head, not yet at the confirmed block.
      await client.assignWorker({ jobId: "j1", worker: "worker-node", price: 5n });
      await worker.submitResult({ jobId: "j1", commitment: HASH });
      await worker.releasePayment({ jobId: "j1" });
      assert.equal((await client.escrowOf("j1"))?.ended, true, "paid at the head");
      assert.deepEqual(await reader.escrowOf("j1"), escrow, "the payment is not confirmed yet");
      server.mine(2);
      assert.deepEqual(await reader.escrowOf("j1"), { ...escrow, ended: true });
      // An escrow whose block a reorg within the confirmations drops never shows (the double's
      // ledger, which a reorg does not roll back, still holds it).
      await submit("j2");
      assert.equal(await reader.escrowOf("j2"), undefined);
      server.reorg(1, "drop");
      server.mine(3);
      assert.equal(await reader.escrowOf("j2"), undefined, "dropped with its block");
      assert.equal(await submitted("j2"), 0);
      assert.equal(await client.escrowOf("j2"), undefined, "nor at the head");
      // No block is confirmed yet: nothing is escrowed there (not an error).
      const early = await connect(server, "verifier", { confirmations: server.blockNumber + 10 });
      try {
        assert.equal(await early.escrowOf("j1"), undefined);
      } finally {
        await early.close();
      }
      const ledger = server.ledger.as("test-reader");
      try {
        assert.equal((await ledger.escrowOf!("j2"))?.client, "client-node", "the ledger holds it");
      } finally {
        await ledger.close();
      }
    } finally {
      await reader.close();
      await worker.close();
      await client.close();
    }
  });
});
