import assert from "node:assert/strict";
import { readDeployment } from "./local_node.ts";

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
