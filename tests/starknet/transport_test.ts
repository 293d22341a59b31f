/**
 * The Starknet adapter's transport held to the spec, against the double in its realistic modes
 * (`rpc_server.ts`): a send whose answer is lost while the mempool lags, evictions, a 0.9 node,
 * a strict 0.10.0 node, error 34, signature and balance refusals, and the schema check of all the
 * traffic for 0.9.0, 0.10.0 and 0.10.3. Every wait is bounded; nothing depends on timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Account, ec, RpcProvider } from "starknet";
import { EVENT_SELECTORS } from "../../chain/events.ts";
import type { ChainEvent } from "../../chain/port.ts";
import { StarknetChain, type StarknetChainOptions } from "../../chain/starknet_adapter.ts";
import { StarknetRpcServer, type StarknetRpcServerOptions } from "./rpc_server.ts";
import { SPEC_VERSIONS, StarknetSpec } from "./spec.ts";
import { encodeEvent } from "./cairo.ts";

const HASH = "ab".repeat(32);
const NOT_FOUND = { code: 29, message: "Transaction hash not found" };
const KEYS = {
  client: "0x5f4e3d2c1b0a99887766554433221100ffeeddccbbaa",
  worker: "0x1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f",
};
const ADDRESSES = { client: "0xc11e47", worker: "0x3012ce" };
const ACCOUNTS = (Object.keys(KEYS) as (keyof typeof KEYS)[]).map((who) => ({
  address: ADDRESSES[who],
  publicKey: ec.starkCurve.getStarkKey(KEYS[who]),
}));

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
    txTimeoutMs: 5_000,
    ...options,
  });
}

async function withServer(
  options: StarknetRpcServerOptions,
  body: (server: StarknetRpcServer) => Promise<void>,
): Promise<void> {
  const server = await StarknetRpcServer.start({ accounts: ACCOUNTS, ...options });
  try {
    await body(server);
    assert.deepEqual(server.requestProblems, [], "requests the spec refuses");
    assert.deepEqual(server.responseProblems, [], "answers the spec refuses");
  } finally {
    await server.close();
  }
}

async function allEvents(chain: StarknetChain): Promise<ChainEvent[]> {
  return (await chain.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 10_000 })).events;
}

/** Stake, submit, assign, result, verify, release: the last transaction emits two events. */
async function settle(client: StarknetChain, worker: StarknetChain, jobId = "job-1") {
  await worker.stake({ amount: 1_000n });
  await client.submitJob({
    jobId,
    amount: 500n,
    minStake: 100n,
    modelHash: HASH,
    inputCommitment: HASH,
  });
  await client.assignWorker({ jobId, worker: "worker-node", price: 400n, verifiers: ["v-1"] });
  await worker.submitResult({ jobId, commitment: "cd".repeat(32) });
  await client.recordVerification({ jobId, accepted: true });
  return await client.releasePayment({ jobId });
}

const SETTLED = [
  "WorkerStaked",
  "JobSubmitted",
  "WorkerAssigned",
  "ResultSubmitted",
  "JobVerified",
  "PaymentReleased",
  "ReputationUpdated",
];

Deno.test("StarknetChain: a lost send response with a lagging nonce executes once", async () => {
  await withServer({ mempool: { hiddenFor: 2, executeAfter: 3 } }, async (server) => {
    const worker = await connect(server, "worker");
    try {
      const before = server.transactionsOf(ADDRESSES.worker);
      // The node takes the transaction, the answer is lost, the hash stays unknown for two
      // requests and the nonce does not count it until it executes, three requests later.
      server.failNext("starknet_addInvokeTransaction", "lost");
      await worker.stake({ amount: 5n });
      const statuses = server.traffic.filter((t) => t.method === "starknet_getTransactionStatus");
      assert.equal(statuses[0]?.error?.code, 29, "unknown right after the submission");
      await worker.stake({ amount: 6n });
      const staked = (await allEvents(worker)).filter((e) => e.name === "WorkerStaked");
      assert.deepEqual(staked.map((e) => e.name === "WorkerStaked" && e.amount), [5n, 6n]);
      assert.equal(await worker.stakeOf("worker-node"), 11n);
      assert.equal(server.transactionsOf(ADDRESSES.worker), before + 2);
      assert.ok((server.calls.get("starknet_addInvokeTransaction") ?? 0) >= 3);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: a duplicate (59) after a lost answer is followed, not re-signed", async () => {
  await withServer({ mempool: { hiddenFor: 0, executeAfter: 6 } }, async (server) => {
    const worker = await connect(server, "worker");
    try {
      const before = server.transactionsOf(ADDRESSES.worker);
      // The answer is lost and a lagging replica does not know the hash yet: the adapter sends
      // the identical transaction again and the node answers 59, it has it.
      server.failNext("starknet_addInvokeTransaction", "lost");
      server.failNext("starknet_getTransactionStatus", NOT_FOUND, 3);
      const sends = server.calls.get("starknet_addInvokeTransaction") ?? 0;
      await worker.stake({ amount: 5n });
      assert.equal((server.calls.get("starknet_addInvokeTransaction") ?? 0) - sends, 2);
      assert.ok(server.traffic.some((t) => t.error?.code === 59));
      assert.equal(server.transactionsOf(ADDRESSES.worker), before + 1);
      assert.equal(await worker.stakeOf("worker-node"), 5n);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: a nonce refusal (52) after a lost answer is looked up, not re-signed", async () => {
  await withServer({ mempool: { hiddenFor: 0, executeAfter: 2 } }, async (server) => {
    const worker = await connect(server, "worker");
    try {
      const before = server.transactionsOf(ADDRESSES.worker);
      // The answer is lost, the replica asked does not know the hash, and by the time the
      // identical transaction is sent again it has executed: 52. Possibly executed: look it up.
      server.failNext("starknet_addInvokeTransaction", "lost");
      server.failNext("starknet_getTransactionStatus", NOT_FOUND, 3);
      await worker.stake({ amount: 5n });
      assert.ok(server.traffic.some((t) => t.error?.code === 52));
      assert.equal(server.transactionsOf(ADDRESSES.worker), before + 1);
      assert.equal(await worker.stakeOf("worker-node"), 5n);
      // The next call still uses the right nonce.
      await worker.stake({ amount: 1n });
      assert.equal(await worker.stakeOf("worker-node"), 6n);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: an evicted transaction is resent identical and executes once", async () => {
  await withServer({ mempool: { hiddenFor: 1, executeAfter: 2 } }, async (server) => {
    const worker = await connect(server, "worker");
    try {
      const before = server.transactionsOf(ADDRESSES.worker);
      server.evictNext(1);
      const sends = server.calls.get("starknet_addInvokeTransaction") ?? 0;
      await worker.stake({ amount: 5n });
      assert.equal((server.calls.get("starknet_addInvokeTransaction") ?? 0) - sends, 2);
      const sent = server.traffic.filter((t) => t.method === "starknet_addInvokeTransaction");
      assert.deepEqual(sent.at(-1)!.params, sent.at(-2)!.params, "the identical transaction");
      assert.equal(server.transactionsOf(ADDRESSES.worker), before + 1);
      assert.equal(await worker.stakeOf("worker-node"), 5n);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: an eviction leaves no nonce gap", async () => {
  await withServer({ mempool: { hiddenFor: 1, executeAfter: 2 } }, async (server) => {
    const worker = await connect(server, "worker", { maxAttempts: 2, txTimeoutMs: 2_000 });
    try {
      // Every copy of the first transaction is evicted: the call fails, its nonce unused.
      server.evictNext(2);
      await assert.rejects(worker.stake({ amount: 5n }), { name: "ChainError", code: "rpc_error" });
      // The next call must use that nonce again: a skipped nonce would wait in the mempool.
      await worker.stake({ amount: 7n });
      assert.equal(server.mempoolCount, 0);
      assert.equal(await worker.stakeOf("worker-node"), 7n);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: a spec 0.9 node (no event_index) delivers every event", async () => {
  await withServer({ specVersion: "0.9.0" }, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    const seen: ChainEvent[] = [];
    const stop = worker.subscribe((event) => seen.push(event));
    try {
      const released = await settle(client, worker);
      await until(() => seen.length >= SETTLED.length, "every event");
      assert.deepEqual(seen.map((e) => e.name), SETTLED);
      const last = seen.filter((e) => e.txHash === released.txHash).map((e) => e.name);
      assert.deepEqual(last, ["PaymentReleased", "ReputationUpdated"]);
      assert.deepEqual((await allEvents(client)).map((e) => e.name), SETTLED);
      // The double really is 0.9: no index in any event.
      const pages = server.traffic.filter((t) => t.method === "starknet_getEvents");
      const events = pages.flatMap((t) => (t.result as { events: object[] }).events);
      assert.ok(events.length > 0 && events.every((e) => !("event_index" in e)));
    } finally {
      stop();
      await client.close();
      await worker.close();
    }
  });
});

Deno.test("StarknetChain: a strict 0.10.0 node is served (no address list in a filter)", async () => {
  await withServer({ specVersion: "0.10.0", strict: true }, async (server) => {
    const client = await connect(server, "client");
    const worker = await connect(server, "worker");
    try {
      await settle(client, worker);
      assert.deepEqual((await allEvents(client)).map((e) => e.name), SETTLED);
      assert.ok(server.eventFilters.every((f) => !Array.isArray(f.address)));
    } finally {
      await client.close();
      await worker.close();
    }
  });
});

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain splits the key filter on error 34 from a ${specVersion} node`, async () => {
    await withServer({ specVersion, maxKeysInFilter: 4 }, async (server) => {
      const client = await connect(server, "client", { chunkSize: 2 });
      const worker = await connect(server, "worker");
      const seen: ChainEvent[] = [];
      const stop = client.subscribe((event) => seen.push(event));
      try {
        await settle(client, worker);
        await settle(client, worker, "job-2");
        const expected = [...SETTLED, ...SETTLED.slice(0)];
        await until(() => seen.length >= expected.length, "every event");
        assert.deepEqual(seen.map((e) => e.name), expected);
        assert.deepEqual((await allEvents(client)).map((e) => e.name), expected);
        const keyCounts = server.eventFilters.map((f) => (f.keys as string[][])[0]!.length);
        // The full key filter (every event kind) was refused with 34, then split in fours.
        const all = Object.keys(EVENT_SELECTORS).length;
        assert.ok(keyCounts.includes(all) && keyCounts.some((n) => n <= 4), `${keyCounts}`);
        // Positions are strictly increasing: merged in chain order.
        for (let i = 1; i < seen.length; i++) {
          const a = seen[i - 1]!;
          const b = seen[i]!;
          assert.ok(
            a.blockNumber < b.blockNumber ||
              (a.blockNumber === b.blockNumber && a.eventIndex < b.eventIndex),
          );
        }
      } finally {
        stop();
        await client.close();
        await worker.close();
      }
    });
  });
}

Deno.test("StarknetChain: a bad signature (55) and a short balance (54) are refused, nothing sent", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker");
    try {
      // Another key on the same account: the node refuses the signature.
      const impostor = await connect(server, "worker", { privateKey: KEYS.client });
      try {
        await assert.rejects(impostor.stake({ amount: 1n }), {
          name: "ChainError",
          code: "rpc_error",
          message: /RPC error 55: Account validation failed/,
        });
      } finally {
        await impostor.close();
      }
      server.addAccount({ ...ACCOUNTS[1]!, balance: 10n });
      await assert.rejects(worker.stake({ amount: 1n }), {
        name: "ChainError",
        code: "rpc_error",
        message: /RPC error 54: Account balance is smaller/,
      });
      assert.equal(await worker.stakeOf("worker-node"), 0n);
    } finally {
      await worker.close();
    }
  });
});

for (const specVersion of SPEC_VERSIONS) {
  Deno.test(`StarknetChain's recorded traffic is valid under spec ${specVersion}`, async () => {
    const server = await StarknetRpcServer.start({ accounts: ACCOUNTS, specVersion });
    try {
      const client = await connect(server, "client");
      const worker = await connect(server, "worker");
      try {
        await settle(client, worker);
        await assert.rejects(worker.requestUnstake({ amount: 10_000n }), {
          code: "insufficient_stake",
        });
        server.failNext("starknet_addInvokeTransaction", "lost");
        await worker.stake({ amount: 1n });
        await allEvents(client);
        await client.totals();
      } finally {
        await client.close();
        await worker.close();
      }
      const methods = new Set(server.traffic.map((t) => t.method));
      for (
        const method of [
          "starknet_specVersion",
          "starknet_chainId",
          "starknet_getNonce",
          "starknet_estimateFee",
          "starknet_addInvokeTransaction",
          "starknet_getTransactionStatus",
          "starknet_getTransactionReceipt",
          "starknet_getEvents",
          "starknet_call",
          "starknet_blockNumber",
        ]
      ) {
        assert.ok(methods.has(method), `${method} was exercised`);
      }
      assert.ok(server.traffic.some((t) => t.error?.code === 41), "an error 41 was answered");
      assert.deepEqual(server.requestProblems, []);
      assert.deepEqual(server.responseProblems, []);
    } finally {
      await server.close();
    }
  });
}

Deno.test("StarknetSpec refuses what the official documents refuse", async () => {
  const v100 = await StarknetSpec.load("0.10.0");
  const v103 = await StarknetSpec.load("0.10.3");
  const filter = { address: ["0x10a0", "0x10b0"], keys: [["0x1"]], chunk_size: 10 };
  assert.equal(v100.checkParams("starknet_getEvents", { filter }).length, 1);
  assert.deepEqual(v103.checkParams("starknet_getEvents", { filter }), []);
  const padded = { ...filter, address: `0x${"10a0".padStart(64, "0")}` };
  assert.equal(v103.checkParams("starknet_getEvents", { filter: padded }).length, 1);
  assert.deepEqual(
    v103.checkError("starknet_getEvents", {
      code: 34,
      message: "Too many keys provided in a filter",
    }),
    [],
  );
  assert.equal(
    v103.checkError("starknet_getEvents", { code: 52, message: "Invalid transaction nonce" })
      .length,
    1,
  );
  assert.equal(
    v103.checkError("starknet_addInvokeTransaction", { code: 59, message: "Duplicate" }).length,
    1,
  );
  assert.equal(v103.checkResult("starknet_blockNumber", -1).length, 1);
});

Deno.test("StarknetRpcServer refuses a request its spec version refuses, as a strict node does", async () => {
  const server = await StarknetRpcServer.start({ specVersion: "0.10.0" });
  try {
    const ask = async (filter: Record<string, unknown>) => {
      const response = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "starknet_getEvents",
          params: { filter },
        }),
      });
      return await response.json() as { result?: unknown; error?: { code: number } };
    };
    const list = await ask({ address: ["0x10a0", "0x10b0"], keys: [], chunk_size: 10 });
    assert.equal(list.error?.code, -32602);
    const padded = await ask({ address: `0x${"10a0".padStart(64, "0")}`, chunk_size: 10 });
    assert.equal(padded.error?.code, -32602);
    const one = await ask({ address: "0x10a0", chunk_size: 10 });
    assert.deepEqual(one.result, { events: [] });
    assert.equal(server.requestProblems.length, 2);
  } finally {
    await server.close();
  }
});

Deno.test("StarknetRpcServer queues a future nonce until the gap is filled, and refuses short resource bounds (53)", async () => {
  await withServer({ mempool: { hiddenFor: 0, executeAfter: 0 } }, async (server) => {
    const provider = new RpcProvider({ nodeUrl: server.url, specVersion: "0.10.0" });
    const account = new Account({
      provider,
      address: ADDRESSES.client,
      signer: KEYS.client,
      cairoVersion: "1",
    });
    // `approve` on the payment token is accepted and changes nothing: a call that always runs.
    const call = {
      contractAddress: server.tokenAddress,
      entrypoint: "approve",
      calldata: [server.cdcPoolAddress, "0x1", "0x0"],
    };
    const bounds = (l2: bigint) => ({
      l1_gas: { max_amount: 0n, max_price_per_unit: 1n },
      l2_gas: { max_amount: l2, max_price_per_unit: 1n },
      l1_data_gas: { max_amount: 0x100n, max_price_per_unit: 1n },
    });
    await assert.rejects(
      account.execute([call], { nonce: 0n, tip: 0n, resourceBounds: bounds(1n) }),
      /53: The transaction's resources don't cover validation/,
    );
    const later = await account.execute([call], {
      nonce: 1n,
      tip: 0n,
      resourceBounds: bounds(0x200000n),
    });
    const status = await provider.getTransactionStatus(later.transaction_hash);
    assert.equal(status.finality_status, "RECEIVED");
    assert.equal(server.mempoolCount, 1);
    assert.equal(server.transactionsOf(ADDRESSES.client), 0);
    await account.execute([call], { nonce: 0n, tip: 0n, resourceBounds: bounds(0x200000n) });
    assert.equal(server.mempoolCount, 0);
    assert.equal(server.transactionsOf(ADDRESSES.client), 2);
    const receipt = await provider.getTransactionReceipt(later.transaction_hash);
    assert.equal((receipt as { execution_status?: string }).execution_status, "SUCCEEDED");
  });
});

Deno.test("StarknetChain: when another transaction took the nonce of a send that may have arrived, it fails without signing again", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker", { maxAttempts: 3 });
    try {
      // Another process uses the nonce the adapter has cached; the adapter's send fails on the
      // way, and the identical transaction sent again is refused with 52. That the first copy
      // did not arrive cannot be known: the call fails instead of signing with a new nonce.
      server.bumpNonce(ADDRESSES.worker);
      server.failNext("starknet_addInvokeTransaction", "network");
      const sends = server.calls.get("starknet_addInvokeTransaction") ?? 0;
      await assert.rejects(worker.stake({ amount: 5n }), {
        name: "ChainError",
        code: "rpc_error",
        message: /the outcome of transaction 0x[0-9a-f]+ is unknown: .*not signing again/,
      });
      assert.equal((server.calls.get("starknet_addInvokeTransaction") ?? 0) - sends, 2);
      assert.equal(await worker.stakeOf("worker-node"), 0n);
      // The next call reads the nonce again and goes through.
      await worker.stake({ amount: 6n });
      assert.equal(await worker.stakeOf("worker-node"), 6n);
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain refuses a node that answers another transaction hash than the one signed", async () => {
  await withServer({}, async (server) => {
    const worker = await connect(server, "worker");
    try {
      server.answerNext("starknet_addInvokeTransaction", { transaction_hash: "0x1234" });
      await assert.rejects(worker.stake({ amount: 5n }), {
        name: "ChainError",
        code: "rpc_error",
        message: /the node answered transaction hash 0x1234, computed 0x[0-9a-f]+/,
      });
    } finally {
      await worker.close();
    }
  });
});

Deno.test("StarknetChain.connect() speaks only spec 0.9 and 0.10, and lists addresses from 0.10.1", async () => {
  await withServer({}, async (server) => {
    for (const spec of ["0.8.1", "0.11.0", "1.0.0", "v0.10"]) {
      server.answerNext("starknet_specVersion", spec);
      await assert.rejects(connect(server, "worker"), {
        name: "ChainError",
        code: "rpc_error",
        message: new RegExp(
          `it speaks JSON-RPC spec ${spec.replaceAll(".", "\\.")}, expected 0\\.9 or 0\\.10`,
        ),
      });
    }
    for (const [spec, list] of [["0.10.1", true], ["0.10.0", false], ["0.9.0", false]] as const) {
      server.answerNext("starknet_specVersion", spec);
      const worker = await connect(server, "worker");
      try {
        await worker.eventsSince({ blockNumber: 0, eventIndex: 0 });
        assert.equal(Array.isArray(server.eventFilters.at(-1)?.address), list, spec);
      } finally {
        await worker.close();
      }
    }
  });
});

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain merges split key filters in chain order within a block (${specVersion})`, async () => {
    await withServer({ specVersion, maxKeysInFilter: 4, autoMine: false }, async (server) => {
      const client = await connect(server, "client");
      const worker = await connect(server, "worker");
      try {
        server.mine();
        // One block, three transactions whose events sit in different key filters, in an order
        // that is not the filters' order: a pool event, a JobManager event, a pool event.
        await worker.stake({ amount: 100n });
        await client.submitJob({
          jobId: "j",
          amount: 10n,
          minStake: 1n,
          modelHash: HASH,
          inputCommitment: HASH,
        });
        await worker.requestUnstake({ amount: 1n });
        server.mine();
        const events = await allEvents(client);
        assert.deepEqual(events.map((e) => e.name), [
          "WorkerStaked",
          "JobSubmitted",
          "UnstakeRequested",
        ]);
        assert.deepEqual(events.map((e) => e.eventIndex), [0, 1, 2]);
        assert.ok(new Set(events.map((e) => e.blockNumber)).size === 1);
        assert.ok(server.eventFilters.some((f) => (f.keys as string[][])[0]!.length <= 4));
      } finally {
        await client.close();
        await worker.close();
      }
    });
  });
}

for (const specVersion of ["0.9.0", "0.10.3"] as const) {
  Deno.test(`StarknetChain merges split key filters in order within a transaction (${specVersion})`, async () => {
    await withServer({ specVersion, maxKeysInFilter: 4 }, async (server) => {
      const client = await connect(server, "client");
      try {
        // One transaction whose events come in the opposite order of the key filters.
        server.emitRaw([
          {
            from_address: server.cdcPoolAddress,
            ...encodeEvent("ReputationUpdated", { worker: "w", score: 510 }),
          },
          {
            from_address: server.jobManagerAddress,
            ...encodeEvent("JobVerified", { jobId: "j" }),
          },
          {
            from_address: server.cdcPoolAddress,
            ...encodeEvent("ReputationUpdated", { worker: "w", score: 520 }),
          },
        ]);
        const events = await allEvents(client);
        assert.deepEqual(
          events.map((e) => e.name === "ReputationUpdated" ? e.score : e.name),
          [510, "JobVerified", 520],
        );
        assert.deepEqual(events.map((e) => e.eventIndex), [0, 1, 2]);
      } finally {
        await client.close();
      }
    });
  });
}

Deno.test("StarknetRpcServer refuses integers out of their Cairo type's range, as a deserializer does", async () => {
  await withServer({}, async (server) => {
    const provider = new RpcProvider({ nodeUrl: server.url, specVersion: "0.10.0" });
    const account = new Account({
      provider,
      address: ADDRESSES.client,
      signer: KEYS.client,
      cairoVersion: "1",
    });
    // submit_job_with_terms("j", 1, 0, 5, 6, JobTerms { verifier_count: u8, ...: u64,
    // spec_hash: u256 (zero) }).
    const submit = (terms: bigint[]) => ({
      contractAddress: server.jobManagerAddress,
      entrypoint: "submit_job_with_terms",
      calldata: ["0x0", "0x6a", "0x1", "0x1", "0x0", "0x0", "0x0", "0x5", "0x0", "0x6", "0x0"]
        .concat(terms.map((t) => `0x${t.toString(16)}`), ["0x0", "0x0"]),
    });
    const refusal = async (terms: bigint[]) => {
      const error = await account.estimateInvokeFee([submit(terms)], { nonce: 0n, tip: 0n }).then(
        () => undefined,
        (e: Error) => e,
      );
      assert.ok(error !== undefined, "the estimate fails: the account is not registered");
      return error.message;
    };
    // In range: decoded, then refused by the contract (the account has no node id).
    assert.match(await refusal([255n, 60_000n, 1n, 1n]), /not_authorized/);
    assert.match(await refusal([4n, 2n ** 64n - 1n, 1n, 1n]), /not_authorized/);
    // Out of range: refused before any rule runs.
    assert.match(await refusal([256n, 60_000n, 1n, 1n]), /Failed to deserialize param/);
    assert.match(await refusal([4n, 2n ** 64n, 1n, 1n]), /Failed to deserialize param/);
    assert.equal(server.transactionsOf(ADDRESSES.client), 0);
  });
});
