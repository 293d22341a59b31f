import assert from "node:assert/strict";
import {
  decodeFunctionResult,
  type EIP1193Provider,
  encodeFunctionResult,
  type Hex,
  toFunctionSelector,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { ChainEvent } from "../port.ts";
import {
  EVM_ABIS,
  EVM_PRIVATE_KEY_ENV,
  EvmChain,
  type EvmChainOptions,
  idKey,
} from "./evm_adapter.ts";
import {
  deployContracts,
  fundAccounts,
  HARDHAT_CHAIN_ID,
  hardhatKey,
  type InProcessEvm,
  startInProcessEvm,
} from "./deploy.ts";
import type { EvmAddresses } from "./evm_adapter.ts";

interface Fixture {
  readonly evm: InProcessEvm;
  readonly addresses: EvmAddresses;
  readonly sends: Hex[];
  /** The provider the adapters use: records sends, and can lose answers. */
  readonly provider: EIP1193Provider;
  loseNextSendAnswer: boolean;
  /** Reverts of these methods are answered as a bare JSON-RPC "Internal error", no data. */
  bareRevertsOf: readonly string[];
  /** Rewrites the node's answers (a node that lies). */
  rewrite?: ((method: string, params: unknown, answer: unknown) => unknown) | undefined;
  connect(nodeId: string, index: number, options?: Partial<EvmChainOptions>): Promise<EvmChain>;
  rpc(method: string, params?: unknown[]): Promise<unknown>;
}

async function withEvm(body: (f: Fixture) => Promise<void>): Promise<void> {
  const evm = await startInProcessEvm();
  const deployer = hardhatKey(0);
  const addresses = await deployContracts(evm.provider, deployer, { unbondingSeconds: 60 });
  const chains: EvmChain[] = [];
  const fixture: Fixture = {
    evm,
    addresses,
    sends: [],
    loseNextSendAnswer: false,
    bareRevertsOf: [],
    provider: {
      request: async (args: { method: string; params?: unknown }) => {
        if (args.method === "eth_sendRawTransaction") {
          fixture.sends.push((args.params as Hex[])[0] as Hex);
        }
        const answer = await evm.provider.request(args as never).catch((error) => {
          if (!fixture.bareRevertsOf.includes(args.method)) throw error;
          // What a node that cannot format a revert answers (a Hardhat node under Deno without
          // Error.prepareStackTrace did): -32603 and no revert data.
          throw Object.assign(new Error("Internal error"), {
            code: -32603,
            data: { message: "Internal error" },
          });
        });
        if (args.method === "eth_sendRawTransaction") {
          if (fixture.loseNextSendAnswer) {
            fixture.loseNextSendAnswer = false;
            throw new TypeError("fetch failed: connection reset (the answer was lost)");
          }
        }
        return fixture.rewrite?.(args.method, args.params, answer) ?? answer;
      },
    } as unknown as EIP1193Provider,
    async connect(nodeId, index, options = {}) {
      const key = hardhatKey(index);
      await fundAccounts(evm.provider, deployer, addresses.token, [
        privateKeyToAccount(key).address,
      ], 10n ** 24n);
      const chain = await EvmChain.connect({
        nodeId,
        provider: fixture.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
        pollMs: 5,
        ...options,
      });
      chains.push(chain);
      return chain;
    },
    rpc: (method, params = []) => evm.provider.request({ method, params } as never),
  };
  try {
    await body(fixture);
  } finally {
    for (const chain of chains) await chain.close();
    await evm.close();
  }
}

async function until(condition: () => boolean, what: string, limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function refusedNaming(key: string, code = "rpc_error") {
  return (error: Error & { code?: string }) => {
    assert.equal(error.name, "ChainError", error.message);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, new RegExp(key.replaceAll(".", "\\.")));
    return true;
  };
}

Deno.test("EvmChain.connect() refuses a bad endpoint, chain id, address or ABI, naming the config key", async () => {
  await withEvm(async (f) => {
    const base = {
      nodeId: "n1",
      chainId: HARDHAT_CHAIN_ID,
      addresses: f.addresses,
      privateKey: hardhatKey(1),
    };
    await assert.rejects(
      EvmChain.connect({ ...base, rpcUrl: "http://127.0.0.1:9" }),
      refusedNaming("chain.rpcUrl"),
    );
    await assert.rejects(
      EvmChain.connect({ ...base, provider: f.provider, chainId: 1 }),
      refusedNaming("chain.chainId"),
    );
    const nobody = privateKeyToAccount(hardhatKey(7)).address;
    await assert.rejects(
      EvmChain.connect({
        ...base,
        provider: f.provider,
        addresses: { ...f.addresses, jobManager: nobody },
      }),
      refusedNaming("chain.addresses.jobManager"),
    );
    // The token has code but not the JobManager's ABI.
    await assert.rejects(
      EvmChain.connect({
        ...base,
        provider: f.provider,
        addresses: { ...f.addresses, jobManager: f.addresses.token },
      }),
      refusedNaming("chain.addresses.jobManager"),
    );
    // A pool linked to another manager.
    await assert.rejects(
      EvmChain.connect({
        ...base,
        provider: f.provider,
        addresses: { ...f.addresses, cdcPool: f.addresses.token },
      }),
      refusedNaming("chain.addresses"),
    );
    await assert.rejects(
      EvmChain.connect({
        ...base,
        provider: f.provider,
        addresses: { ...f.addresses, token: "0x12" as Hex },
      }),
      /chain\.addresses\.token/,
    );
  });
});

Deno.test("EvmChain takes its key from a file or the environment and never shows it", async () => {
  await withEvm(async (f) => {
    const key = hardhatKey(3);
    const file = await Deno.makeTempFile();
    try {
      await Deno.writeTextFile(file, `  ${key}\n`);
      const fromFile = await f.connect("file-node", 3, { privateKeyFile: file });
      assert.equal(fromFile.address, privateKeyToAccount(key).address);
      Deno.env.set(EVM_PRIVATE_KEY_ENV, hardhatKey(4));
      try {
        const fromEnv = await f.connect("env-node", 4);
        assert.equal(fromEnv.address, privateKeyToAccount(hardhatKey(4)).address);
        const bare = key.slice(2);
        for (const text of [JSON.stringify(fromFile), Deno.inspect(fromFile, { depth: 10 })]) {
          assert.ok(!text.includes(bare), "the key is not in the rendering");
        }
      } finally {
        Deno.env.delete(EVM_PRIVATE_KEY_ENV);
      }
      await Deno.writeTextFile(file, `not a key ${key.slice(0, 10)}`);
      await assert.rejects(
        EvmChain.connect({
          nodeId: "bad",
          provider: f.provider,
          chainId: HARDHAT_CHAIN_ID,
          addresses: f.addresses,
          privateKeyFile: file,
        }),
        (error: Error) => {
          assert.match(error.message, /chain\.privateKeyFile/);
          assert.ok(
            !error.message.includes(key.slice(2, 10)),
            "no part of the file in the message",
          );
          return true;
        },
      );
    } finally {
      await Deno.remove(file);
    }
  });
});

Deno.test("EvmChain resends the identical transaction when an answer is lost: executed once", async () => {
  await withEvm(async (f) => {
    const worker = await f.connect("worker", 1);
    const before = f.sends.length;
    f.loseNextSendAnswer = true;
    const receipt = await worker.stake({ amount: 700n });
    const sent = f.sends.slice(before);
    assert.equal(sent.length, 2, "sent twice");
    assert.equal(sent[0], sent[1], "the same signed bytes, never re-signed with another nonce");
    assert.equal(await worker.stakeOf("worker"), 700n, "executed once");
    const staked = (await worker.eventsSince({ blockNumber: 0, eventIndex: 0 })).events
      .filter((e) => e.name === "WorkerStaked");
    assert.equal(staked.length, 1);
    assert.equal(staked[0]?.txHash, receipt.txHash);
    await worker.stake({ amount: 1n }); // the kept nonce is right
    assert.equal(await worker.stakeOf("worker"), 701n);
  });
});

Deno.test("EvmChain decodes the escrow's terms from JobSubmitted and the attempt from WorkerAssigned", async () => {
  await withEvm(async (f) => {
    const verifier = await f.connect("verifier", 3);
    await verifier.stake({ amount: 100n, role: "verifier" });
    const worker = await f.connect("worker", 1);
    await worker.stake({ amount: 50n });
    const client = await f.connect("client", 2);
    const terms = {
      verifierCount: 1,
      bidWindowMs: 2_000,
      executionMs: 30_000,
      verificationMs: 45_000,
    };
    const hash = "ab".repeat(32);
    await client.submitJob({
      jobId: "j1",
      amount: 900n,
      minStake: 7n,
      modelHash: hash,
      inputCommitment: hash,
      ...terms,
    });
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 500n });
    await client.revokeAssignment({ jobId: "j1", worker: "worker" });
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 600n });
    const events = (await client.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 1000 }))
      .events;
    const submitted = events.find((e) => e.name === "JobSubmitted");
    assert.ok(submitted?.name === "JobSubmitted");
    assert.deepEqual(
      {
        client: submitted.client,
        amount: submitted.amount,
        minStake: submitted.minStake,
        verifierCount: submitted.verifierCount,
        bidWindowMs: submitted.bidWindowMs,
        executionMs: submitted.executionMs,
        verificationMs: submitted.verificationMs,
      },
      { client: "client", amount: 900n, minStake: 7n, ...terms },
    );
    const assigned = events.flatMap((e) =>
      e.name === "WorkerAssigned" ? [[e.price, e.attempt, e.verifiers]] : []
    );
    assert.deepEqual(assigned, [[500n, 1, ["verifier"]], [600n, 2, ["verifier"]]]);
  });
});

Deno.test("EvmChain reports a transaction that is never mined after bounded identical resends", async () => {
  await withEvm(async (f) => {
    const worker = await f.connect("worker", 1, { receiptTimeoutMs: 30, maxAttempts: 3 });
    await f.rpc("evm_setAutomine", [false]);
    const before = f.sends.length;
    await assert.rejects(worker.stake({ amount: 5n }), (error: Error & { code?: string }) => {
      assert.equal(error.code, "rpc_error");
      assert.match(error.message, /was not mined after 3 sends/);
      assert.match(error.message, /0x[0-9a-f]{64}/);
      return true;
    });
    const sent = f.sends.slice(before);
    assert.equal(sent.length, 3);
    assert.equal(new Set(sent).size, 1, "one signed transaction");
    await f.rpc("evm_setAutomine", [true]);
    await f.rpc("evm_mine");
    assert.equal(await worker.stakeOf("worker"), 5n, "mined once, later");
    await worker.stake({ amount: 1n }); // the nonce is read again
    assert.equal(await worker.stakeOf("worker"), 6n);
  });
});

Deno.test("EvmChain pages eth_getLogs by block range, resumes mid-block and waits for confirmations", async () => {
  await withEvm(async (f) => {
    const worker = await f.connect("worker", 1, { logBlockRange: 2 });
    for (let i = 1; i <= 5; i++) await worker.stake({ amount: BigInt(i) });
    const whole = (await worker.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 1000 }))
      .events;
    assert.equal(whole.filter((e) => e.name === "WorkerStaked").length, 5);
    const paged: ChainEvent[] = [];
    let cursor = { blockNumber: 0, eventIndex: 0 };
    for (let i = 0; i < 100; i++) {
      const { events, next } = await worker.eventsSince(cursor, { limit: 1 });
      if (events.length === 0) break;
      paged.push(...events);
      cursor = next;
    }
    assert.deepEqual(
      paged.map((e) => `${e.txHash}:${e.eventIndex}`),
      whole.map((e) => `${e.txHash}:${e.eventIndex}`),
    );
    const confirmed = await f.connect("watcher", 2, { confirmations: 3 });
    const seen = (await confirmed.eventsSince({ blockNumber: 0, eventIndex: 0 })).events;
    const head = Number(await f.rpc("eth_blockNumber"));
    assert.ok(seen.every((e) => e.blockNumber <= head - 3), "nothing above head - confirmations");
    assert.ok(seen.length > 0 && seen.length < whole.length + 10);
  });
});

Deno.test("EvmChain.subscribe() rolls back on a reorg (evm_snapshot/evm_revert): each event applied once", async () => {
  await withEvm(async (f) => {
    const watcher = await f.connect("watcher", 1);
    const a = await f.connect("a", 2);
    const b = await f.connect("b", 3);
    const c = await f.connect("c", 4);
    const delivered: ChainEvent[] = [];
    const revoked: ChainEvent[] = [];
    const stop = watcher.subscribe((event) => delivered.push(event), {
      onReorg: (events) => revoked.push(...events),
    });
    try {
      const staked = () => delivered.filter((e) => e.name === "WorkerStaked");
      await a.stake({ amount: 10n });
      await until(() => staked().length === 1, "a's stake");
      const snapshot = await f.rpc("evm_snapshot");
      const before = f.sends.length;
      await b.stake({ amount: 20n });
      const bRaw = f.sends[before] as Hex;
      await until(() => staked().length === 2, "b's stake");
      const bEvent = staked()[1] as ChainEvent;
      assert.equal(await f.rpc("evm_revert", [snapshot]), true);
      await c.stake({ amount: 30n });
      await until(() => staked().length === 3, "c's stake on the new chain");
      await until(() => revoked.length === 1, "b's stake reported revoked");
      assert.equal(revoked[0]?.txHash, bEvent.txHash);
      // b's transaction comes back in a later block: the same transaction, not applied again.
      await f.rpc("eth_sendRawTransaction", [bRaw]);
      const wait = Date.now() + 300;
      while (Date.now() < wait) await new Promise((resolve) => setTimeout(resolve, 10));
      const amounts = staked().map((e) => e.name === "WorkerStaked" ? e.amount : 0n);
      assert.deepEqual(amounts, [10n, 20n, 30n]);
      assert.equal(await watcher.stakeOf("b"), 20n, "on chain once");
      assert.equal(revoked.length, 1);
    } finally {
      stop();
    }
  });
});

Deno.test("EvmChain.connect() refuses an account bound to another node id, and a node id bound to another account", async () => {
  await withEvm(async (f) => {
    await f.connect("first", 1);
    await assert.rejects(
      EvmChain.connect({
        nodeId: "second",
        provider: f.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses: f.addresses,
        privateKey: hardhatKey(1),
      }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, "not_authorized");
        assert.match(error.message, /registered to another node id/);
        return true;
      },
    );
    await assert.rejects(f.connect("first", 2), (error: Error & { code?: string }) => {
      assert.equal(error.code, "not_authorized");
      assert.match(error.message, /another account has it/);
      return true;
    });
  });
});

Deno.test("EvmChain names a refusal whose estimate lost its revert data, and a node that gives none", async () => {
  await withEvm(async (f) => {
    const chain = await f.connect("w1", 1);
    await chain.stake({ amount: 10n });
    // The estimate comes back bare: the reason is read from eth_call with the block's gas.
    f.bareRevertsOf = ["eth_estimateGas"];
    await assert.rejects(
      chain.requestUnstake({ amount: 11n }),
      refusedNaming(
        'Cannot requestUnstake as "w1": Cannot unstake: the amount exceeds',
        "insufficient_stake",
      ),
    );
    // Neither gives a reason: the node is named, not the contract, and nothing is sent.
    f.bareRevertsOf = ["eth_estimateGas", "eth_call"];
    const sends = f.sends.length;
    await assert.rejects(
      chain.requestUnstake({ amount: 11n }),
      refusedNaming(
        'Cannot requestUnstake as "w1": the node failed the call without a revert reason \\(JSON-RPC -32603\\): ',
        "rpc_error",
      ),
    );
    assert.equal(f.sends.length, sends);
    f.bareRevertsOf = [];
    await chain.requestUnstake({ amount: 10n });
  });
});

Deno.test("EvmChain.escrowOf() reads the contract's escrowOf view, and refuses a status the contract has not or an unregistered client", async () => {
  await withEvm(async (f) => {
    const client = await f.connect("client", 2);
    const reader = await f.connect("reader", 3);
    const hash = "ab".repeat(32);
    const specHash = "5e".repeat(32);
    const submit = { amount: 9n, minStake: 0n, modelHash: hash, inputCommitment: hash };
    await client.submitJob({ jobId: "j1", ...submit, verifierCount: 0, specHash });
    await client.submitJob({ jobId: "j2", ...submit });
    // What the contract holds: the client's node key, the hash (zero: none), the status.
    const raw = async (jobId: string) =>
      decodeFunctionResult({
        abi: EVM_ABIS.jobManager,
        functionName: "escrowOf",
        data: await f.rpc("eth_call", [{
          to: f.addresses.jobManager,
          data: `0x${toFunctionSelector("escrowOf(bytes32)").slice(2)}${idKey(jobId).slice(2)}`,
        }, "latest"]) as Hex,
      });
    assert.deepEqual(await raw("j1"), [idKey("client"), `0x${specHash}`, 1]);
    assert.deepEqual(await raw("j2"), [idKey("client"), `0x${"0".repeat(64)}`, 1]);
    assert.deepEqual(await raw("j3"), [`0x${"0".repeat(64)}`, `0x${"0".repeat(64)}`, 0]);
    assert.deepEqual(await reader.escrowOf("j1"), {
      jobId: "j1",
      client: "client",
      specHash,
      ended: false,
    });
    assert.deepEqual(await reader.escrowOf("j2"), { jobId: "j2", client: "client", ended: false });
    assert.equal(await reader.escrowOf("j3"), undefined);
    // A node that answers a status the JobManager has not (its enum ends at Refunded, 8).
    const lie = (status: number, client = "client") =>
    (
      method: string,
      params: unknown,
      answer: unknown,
    ) => {
      const call = (params as [{ data?: string }] | undefined)?.[0];
      if (
        method !== "eth_call" || !call?.data?.startsWith(toFunctionSelector("escrowOf(bytes32)"))
      ) {
        return answer;
      }
      return encodeFunctionResult({
        abi: EVM_ABIS.jobManager,
        functionName: "escrowOf",
        result: [idKey(client), `0x${"0".repeat(64)}`, status],
      });
    };
    f.rewrite = lie(9);
    await assert.rejects(reader.escrowOf("j2"), (error: Error & { code?: string }) => {
      assert.equal(error.name, "ChainError");
      assert.equal(error.code, "rpc_error");
      assert.match(error.message, /Cannot read escrowOf: job "j2" has an unknown status 9/);
      return true;
    });
    f.rewrite = lie(8);
    assert.deepEqual(await reader.escrowOf("j2"), { jobId: "j2", client: "client", ended: true });
    // A client key no node registered.
    f.rewrite = lie(1, "ghost");
    await assert.rejects(reader.escrowOf("j2"), (error: Error & { code?: string }) => {
      assert.equal(error.code, "rpc_error");
      assert.match(
        error.message,
        /Cannot decode the escrow of "j2": node key 0x[0-9a-f]{64} is not/,
      );
      return true;
    });
    f.rewrite = undefined;
    await assert.rejects(reader.escrowOf(""), { name: "RangeError", message: /Invalid job id/ });
  });
});

Deno.test("EvmChain.escrowOf() reads at the confirmed head, as its events: an unconfirmed escrow or ending is not read yet", async () => {
  await withEvm(async (f) => {
    const client = await f.connect("client", 2);
    const worker = await f.connect("worker", 4);
    const reader = await f.connect("reader", 3, { confirmations: 2 });
    const hash = "ab".repeat(32);
    const specHash = "5e".repeat(32);
    const submitted = async () =>
      (await reader.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 1000 })).events
        .filter((e) => e.name === "JobSubmitted" && e.jobId === "j1").length;
    await client.submitJob({
      jobId: "j1",
      amount: 9n,
      minStake: 0n,
      modelHash: hash,
      inputCommitment: hash,
      verifierCount: 0,
      specHash,
    });
    // At the latest block the escrow is there; one confirmation is not two.
    assert.deepEqual((await client.escrowOf("j1"))?.client, "client");
    assert.equal(await reader.escrowOf("j1"), undefined, "unconfirmed: absent");
    assert.equal(await submitted(), 0);
    await f.rpc("evm_mine");
    assert.equal(await reader.escrowOf("j1"), undefined, "one block deep: absent");
    assert.equal(await submitted(), 0);
    await f.rpc("evm_mine");
    const escrow = { jobId: "j1", client: "client", specHash, ended: false };
    assert.deepEqual(await reader.escrowOf("j1"), escrow, "two blocks deep: present");
    assert.equal(await submitted(), 1, "the event stream shows it at the same depth");
    // Paid (no verifiers: on the result) at the latest block, not yet at the confirmed one.
    await client.assignWorker({ jobId: "j1", worker: "worker", price: 5n });
    await worker.submitResult({ jobId: "j1", commitment: hash });
    await worker.releasePayment({ jobId: "j1" });
    assert.equal((await client.escrowOf("j1"))?.ended, true, "paid at the latest block");
    assert.deepEqual(await reader.escrowOf("j1"), escrow, "the payment is not confirmed yet");
    await f.rpc("evm_mine");
    await f.rpc("evm_mine");
    assert.deepEqual(await reader.escrowOf("j1"), { ...escrow, ended: true });
  });
});

Deno.test("EvmChain.escrowOf() reads no escrow before the confirmed head reaches the deployment", async () => {
  await withEvm(async (f) => {
    const head = Number(await f.rpc("eth_blockNumber"));
    const reader = await f.connect("reader", 3, {
      confirmations: head + 10,
    });
    // The contracts do not exist at the confirmed head: nothing is escrowed there (not an error).
    assert.equal(await reader.escrowOf("j1"), undefined);
  });
});
