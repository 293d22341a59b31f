import assert from "node:assert/strict";
import { createPublicClient, type EIP1193Provider, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { deployContracts, fundAccounts, HARDHAT_CHAIN_ID, hardhatKey } from "./deploy.ts";
import { EvmChain } from "./evm_adapter.ts";
import { readDeployment, startLocalEvmNode } from "./local_node.ts";

const GOOD = {
  rpcUrl: "http://127.0.0.1:8545",
  chainId: 31337,
  token: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  cdcPool: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  jobManager: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  deployBlock: 1,
};

Deno.test("readDeployment() reads what deno task chain writes and names the bad key otherwise", async () => {
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    await Deno.writeTextFile(file, JSON.stringify(GOOD));
    assert.deepEqual(await readDeployment(file), GOOD);
    const cases: [Record<string, unknown>, string][] = [
      [{ ...GOOD, jobManager: "0x12" }, '"jobManager" must be a 20-byte 0x address'],
      [{ ...GOOD, cdcPool: undefined }, '"cdcPool" must be a 20-byte 0x address'],
      [{ ...GOOD, deployBlock: -1 }, '"deployBlock" must be a block number'],
      [{ ...GOOD, chainId: "31337" }, '"chainId" must be a positive integer'],
      [{ ...GOOD, rpcUrl: "ftp://x" }, '"rpcUrl" must be an http(s) URL'],
    ];
    for (const [content, message] of cases) {
      await Deno.writeTextFile(file, JSON.stringify(content));
      await assert.rejects(readDeployment(file), (error: Error & { code?: string }) => {
        assert.equal(error.name, "DeploymentFileError");
        assert.equal(error.code, "bad_deployment");
        assert.ok(error.message.includes(message), error.message);
        return true;
      });
    }
    await Deno.writeTextFile(file, "{ not json");
    await assert.rejects(readDeployment(file), /Cannot read the EVM deployment file/);
    await assert.rejects(readDeployment(`${file}.missing`), /Cannot read the EVM deployment file/);
  } finally {
    await Deno.remove(file);
  }
});

Deno.test({
  name:
    "startLocalEvmNode() serves the contracts' refusals over JSON-RPC with their reason (not a bare internal error)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const dir = await Deno.makeTempDir({ prefix: "ciro-local-evm-" });
    // A slow start on a loaded machine is not a failure of what is tested here.
    const node = await startLocalEvmNode({
      port,
      startTimeoutMs: 180_000,
      logFile: `${dir}/hardhat.log`,
    });
    try {
      const provider = createPublicClient({
        transport: http(node.url),
      }) as unknown as EIP1193Provider;
      const addresses = await deployContracts(provider, hardhatKey(0));
      const key = hardhatKey(1);
      await fundAccounts(provider, hardhatKey(0), addresses.token, [
        privateKeyToAccount(key).address,
      ], 1_000n);
      const chain = await EvmChain.connect({
        nodeId: "w1",
        rpcUrl: node.url,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
        pollMs: 20,
      });
      try {
        await chain.stake({ amount: 10n });
        await assert.rejects(
          chain.requestUnstake({ amount: 11n }),
          (error: Error & { code?: string }) => {
            assert.equal(error.name, "ChainError");
            assert.equal(error.code, "insufficient_stake", error.message);
            assert.match(error.message, /Cannot unstake: the amount exceeds the bonded stake/);
            return true;
          },
        );
        assert.equal(await chain.stakeOf("w1"), 10n);
      } finally {
        await chain.close();
      }
    } finally {
      await node.close();
    }
    // Hardhat's log reached the file, the refused estimate with it.
    const log = await Deno.readTextFile(`${dir}/hardhat.log`);
    await Deno.remove(dir, { recursive: true });
    assert.match(log, /eth_estimateGas/);
    assert.match(log, /reverted with an unrecognized custom error/);
  },
});
