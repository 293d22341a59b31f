/**
 * Deployment of the three contracts (token, CDC Pool, JobManager) and funding of accounts, and
 * the in-process Hardhat EVM used by tests, the demo and the conformance suite.
 *
 * @module
 */
import {
  type Abi,
  type Address,
  createPublicClient,
  custom,
  type EIP1193Provider,
  encodeDeployData,
  encodeFunctionData,
  getAddress,
  type Hex,
  keccak256,
  type PublicClient,
  toHex,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { createHardhatRuntimeEnvironment } from "hardhat/hre";
import cdcPoolArtifact from "./artifacts/CdcPool.json" with { type: "json" };
import jobManagerArtifact from "./artifacts/JobManager.json" with {
  type: "json",
};
import tokenArtifact from "./artifacts/CiroToken.json" with { type: "json" };
import { type EvmAddresses, EvmChain } from "./evm_adapter.ts";
import { defineV8StackTraceFormat } from "./_stack_trace.ts";

/** Hardhat's well-known development mnemonic: its accounts are funded with ether at genesis. */
export const HARDHAT_MNEMONIC = "test test test test test test test test test test test junk";

/** The chain id of Hardhat's EVM. */
export const HARDHAT_CHAIN_ID = 31337;

/** The private key of Hardhat development account `index` (public knowledge: test use only). */
export function hardhatKey(index: number): Hex {
  const key = mnemonicToAccount(HARDHAT_MNEMONIC, { addressIndex: index }).getHdKey()
    .privateKey;
  if (key === null) throw new RangeError(`Invalid account index: ${index}`);
  return toHex(key);
}

/** Contract parameters fixed at deployment. */
export interface DeployOptions {
  /**
   * Protocol fee, basis points of the price.
   * @default {100}
   */
  readonly feeBps?: number;
  /**
   * How long an unstake stays bonded, seconds.
   * @default {604800}
   */
  readonly unbondingSeconds?: number;
  /**
   * The least bonded stake a verifier needs to be chosen.
   * @default {1n}
   */
  readonly minVerifierBond?: bigint;
  /**
   * The verifiers' share of a released price, basis points, split among those who agreed.
   * @default {500}
   */
  readonly verifierRewardBps?: number;
  /** Receives fees and slashed stake. @default {the deployer} */
  readonly treasury?: Address;
}

/** Sends one transaction from `key` and waits for its receipt (deployment is not the adapter). */
async function send(
  client: PublicClient,
  key: Hex,
  tx: { to?: Address; data: Hex },
): Promise<
  { contractAddress: Address | null | undefined; blockNumber: bigint }
> {
  const account = privateKeyToAccount(key);
  const [nonce, gas, fees, chainId] = await Promise.all([
    client.getTransactionCount({
      address: account.address,
      blockTag: "pending",
    }),
    client.estimateGas({ account: account.address, ...tx }),
    client.estimateFeesPerGas(),
    client.getChainId(),
  ]);
  const raw = await account.signTransaction({
    chainId,
    type: "eip1559",
    ...tx,
    nonce,
    gas: gas + gas / 5n,
    maxFeePerGas: fees.maxFeePerGas,
    maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
  });
  await client.request({ method: "eth_sendRawTransaction", params: [raw] });
  const receipt = await client.waitForTransactionReceipt({
    hash: keccak256(raw),
    pollingInterval: 20,
  });
  if (receipt.status !== "success") {
    throw new Error(
      `Cannot deploy: transaction ${receipt.transactionHash} reverted`,
    );
  }
  return {
    contractAddress: receipt.contractAddress,
    blockNumber: receipt.blockNumber,
  };
}

/** Deploys the token, the CDC Pool and the JobManager from `deployerKey` and links them. */
export async function deployContracts(
  provider: EIP1193Provider,
  deployerKey: Hex,
  options: DeployOptions = {},
): Promise<EvmAddresses> {
  const client = createPublicClient({
    transport: custom(provider),
  }) as PublicClient;
  const treasury = options.treasury ?? privateKeyToAccount(deployerKey).address;
  const deploy = async (
    artifact: { abi: unknown; bytecode: string },
    args: unknown[],
  ) => {
    const data = encodeDeployData({
      abi: artifact.abi as Abi,
      bytecode: artifact.bytecode as Hex,
      args,
    });
    const { contractAddress, blockNumber } = await send(client, deployerKey, {
      data,
    });
    if (contractAddress === null || contractAddress === undefined) {
      throw new Error("Cannot deploy: no address");
    }
    return {
      address: getAddress(contractAddress),
      blockNumber: Number(blockNumber),
    };
  };
  const token = await deploy(tokenArtifact, []);
  const pool = await deploy(cdcPoolArtifact, [
    token.address,
    treasury,
    BigInt(options.unbondingSeconds ?? 7 * 24 * 3600),
    options.minVerifierBond ?? 1n,
  ]);
  const manager = await deploy(jobManagerArtifact, [
    token.address,
    pool.address,
    treasury,
    options.feeBps ?? 100,
    options.verifierRewardBps ?? 500,
  ]);
  await send(client, deployerKey, {
    to: pool.address,
    data: encodeFunctionData({
      abi: cdcPoolArtifact.abi as Abi,
      functionName: "setManager",
      args: [manager.address],
    }),
  });
  return {
    token: token.address,
    cdcPool: pool.address,
    jobManager: manager.address,
    deployBlock: token.blockNumber,
  };
}

/** Mints `amount` test tokens to each address (the deployer is the minter). */
export async function fundAccounts(
  provider: EIP1193Provider,
  deployerKey: Hex,
  token: Address,
  accounts: readonly Address[],
  amount: bigint,
): Promise<void> {
  const client = createPublicClient({
    transport: custom(provider),
  }) as PublicClient;
  for (const to of accounts) {
    await send(client, deployerKey, {
      to: token,
      data: encodeFunctionData({
        abi: tokenArtifact.abi as Abi,
        functionName: "mint",
        args: [to, amount],
      }),
    });
  }
}

/** Hardhat's EVM (EDR) running in this process. */
export interface InProcessEvm {
  readonly provider: EIP1193Provider;
  close(): Promise<void>;
}

let sharedHre: ReturnType<typeof createHardhatRuntimeEnvironment> | undefined;

/** Starts Hardhat's EVM in this process (its root is `chain/evm/hardhat/`, which holds the package.json Hardhat 3 needs). */
export async function startInProcessEvm(): Promise<InProcessEvm> {
  // Without it a revert's data is lost (HHE100): see _stack_trace.ts.
  defineV8StackTraceFormat();
  // One Hardhat runtime (one EDR context) per process: each connection is its own fresh chain.
  // Its native library crashes when a process starts it again and again.
  sharedHre ??= createHardhatRuntimeEnvironment(
    {},
    {},
    new URL("./hardhat/", import.meta.url).pathname,
  );
  const hre = await sharedHre;
  const connection = await hre.network.connect();
  return {
    provider: connection.provider as unknown as EIP1193Provider,
    close: () => connection.close(),
  };
}

/** A deployment on the in-process EVM that hands out funded, registered ports. */
export interface EvmMarket {
  readonly evm: InProcessEvm;
  readonly addresses: EvmAddresses;
  /** A port for `nodeId` on a fresh development account, with ether and `tokens` test tokens. */
  connect(nodeId: string, options?: { pollMs?: number }): Promise<EvmChain>;
  close(): Promise<void>;
}

/**
 * Starts Hardhat's EVM in this process, deploys the contracts and returns a factory of funded
 * ports (development accounts beyond Hardhat's 20 get their ether with `hardhat_setBalance`).
 */
export async function startEvmMarket(
  options: DeployOptions & { tokens?: bigint } = {},
): Promise<EvmMarket> {
  const evm = await startInProcessEvm();
  const deployer = hardhatKey(0);
  const addresses = await deployContracts(evm.provider, deployer, options);
  const ports: EvmChain[] = [];
  let next = 1;
  return {
    evm,
    addresses,
    async connect(nodeId, connectOptions = {}) {
      const key = hardhatKey(next++);
      const address = privateKeyToAccount(key).address;
      if (next > 20) {
        await evm.provider.request({
          method: "hardhat_setBalance",
          params: [address, toHex(10n ** 22n)],
        } as never);
      }
      await fundAccounts(
        evm.provider,
        deployer,
        addresses.token,
        [address],
        options.tokens ?? 10n ** 24n,
      );
      const port = await EvmChain.connect({
        nodeId,
        provider: evm.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
        ...connectOptions,
      });
      ports.push(port);
      return port;
    },
    async close() {
      for (const port of ports) await port.close();
      await evm.close();
    },
  };
}
