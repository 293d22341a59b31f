/**
 * `deno task chain`: a local EVM for nodes on this machine. Starts `hardhat node` on loopback in
 * a separate process, deploys the contracts, funds accounts with test tokens, and writes
 * `<out>/deployment.json` (read by `deno task node` with `chain.kind: "evm"`) and one key file
 * per funded account (`<out>/account-<i>.key`, Hardhat's public development keys: test use only).
 * Runs until interrupted.
 *
 * ```
 * deno task chain [--port 8545] [--out .ciro/evm] [--accounts 8] [--fund 1000000]
 *                 [--bond <account>:<nodeId>:<amount>[:verifier]]... [--log FILE]
 * ```
 *
 * `--bond` registers `nodeId` (a libp2p peer id) for funded account `<account>` and bonds
 * `amount` for it, as a verifier (with its attestation key registered) when `:verifier` is given.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createPublicClient, type EIP1193Provider, type Hex, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { deployContracts, fundAccounts, hardhatKey } from "../deploy.ts";
import { EvmChain } from "../evm_adapter.ts";
import { type EvmDeployment, startLocalEvmNode } from "../local_node.ts";

const USAGE =
  `Usage: deno task chain [--port 8545] [--out .ciro/evm] [--accounts 8] [--fund 1000000]
                [--bond <account>:<nodeId>:<amount>[:verifier]]... [--log FILE]
  --port N        JSON-RPC port on 127.0.0.1 (default 8545)
  --out DIR       where deployment.json and account-<i>.key go (default .ciro/evm)
  --accounts N    accounts funded with test tokens, 1 to 19 (default 8)
  --fund AMOUNT   tokens minted to each (default 1000000)
  --bond SPEC     register a node id for a funded account and bond stake for it (repeatable)
  --log FILE      append Hardhat's log (each request, each revert and its reason) to FILE`;

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8545" },
      out: { type: "string", default: ".ciro/evm" },
      accounts: { type: "string", default: "8" },
      fund: { type: "string", default: "1000000" },
      bond: { type: "string", multiple: true, default: [] },
      log: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
} catch (error) {
  console.error(`${(error as Error).message}\n(add --help for usage)`);
  Deno.exit(2);
}
const { values } = parsed;
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const port = Number.parseInt(values.port, 10);
if (!/^[0-9]{1,5}$/.test(values.port) || port < 1 || port > 65_535) {
  console.error(`Invalid --port: expected 1 to 65535, got ${values.port}`);
  Deno.exit(2);
}
const accounts = Number.parseInt(values.accounts, 10);
if (!Number.isSafeInteger(accounts) || accounts < 1 || accounts > 19) {
  console.error(`Invalid --accounts: expected 1 to 19, got ${values.accounts}`);
  Deno.exit(2);
}
if (!/^[0-9]+$/.test(values.fund)) {
  console.error(`Invalid --fund: expected a whole number of tokens, got ${values.fund}`);
  Deno.exit(2);
}
const bonds = values.bond.map((spec) => {
  const match = /^([0-9]+):([^:]{1,128}):([0-9]+)(:verifier)?$/.exec(spec);
  const account = Number(match?.[1]);
  if (match === null || account < 1 || account > accounts) {
    console.error(
      `Invalid --bond "${spec}": expected <account 1..${accounts}>:<nodeId>:<amount>[:verifier]`,
    );
    Deno.exit(2);
  }
  return {
    account,
    nodeId: match[2] as string,
    amount: BigInt(match[3] as string),
    verifier: match[4] !== undefined,
  };
});
const node = await startLocalEvmNode(
  values.log === undefined ? { port } : { port, logFile: values.log },
);
const stop = async () => {
  await node.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);
const provider = createPublicClient({ transport: http(node.url) }) as unknown as EIP1193Provider;
const deployer = hardhatKey(0);
const addresses = await deployContracts(provider, deployer);
const keys = Array.from({ length: accounts }, (_, i) => hardhatKey(i + 1));
await fundAccounts(
  provider,
  deployer,
  addresses.token,
  keys.map((k) => privateKeyToAccount(k).address),
  BigInt(values.fund),
);
const chainId = Number(await provider.request({ method: "eth_chainId" }));
const deployment: EvmDeployment = { rpcUrl: node.url, chainId, ...addresses };
// Bonds first: deployment.json appears only when the chain is ready for the nodes.
for (const bond of bonds) {
  const chain = await EvmChain.connect({
    nodeId: bond.nodeId,
    rpcUrl: node.url,
    chainId,
    addresses,
    privateKey: keys[bond.account - 1] as Hex,
  });
  try {
    await chain.stake({ amount: bond.amount, role: bond.verifier ? "verifier" : "worker" });
    if (bond.verifier) await chain.registerKey({ publicKey: await chain.accountPublicKey() });
  } finally {
    await chain.close();
  }
  console.log(
    `account-${bond.account} is node ${bond.nodeId}, bonded ${bond.amount}${
      bond.verifier ? " as a verifier" : ""
    }`,
  );
}
await Deno.mkdir(values.out, { recursive: true });
await Deno.writeTextFile(
  `${values.out}/deployment.json`,
  `${JSON.stringify(deployment, null, 2)}\n`,
);
for (const [i, key] of keys.entries()) {
  await Deno.writeTextFile(`${values.out}/account-${i + 1}.key`, `${key}\n`, { mode: 0o600 });
}
console.log(`EVM on ${node.url} (chain id ${chainId}, hardhat node pid ${node.pid})`);
console.log(
  `JobManager ${addresses.jobManager}, CdcPool ${addresses.cdcPool}, token ${addresses.token}`,
);
console.log(
  `${accounts} accounts funded with ${values.fund} tokens: ${values.out}/account-1.key ... account-${accounts}.key`,
);
console.log(
  `deployment: ${values.out}/deployment.json (chain: { "kind": "evm", "deployment": ..., "privateKeyFile": ... })`,
);
