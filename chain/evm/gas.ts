/**
 * Gas of each lifecycle step and of a whole job, measured on Hardhat's EVM in this process from
 * the transactions' receipts (`gasUsed`). `deno task gas` prints the table.
 *
 * @module
 */
import type { Hex } from "viem";
import { EvmChain } from "./evm_adapter.ts";
import {
  deployContracts,
  fundAccounts,
  HARDHAT_CHAIN_ID,
  hardhatKey,
  startInProcessEvm,
} from "./deploy.ts";
import { privateKeyToAccount } from "viem/accounts";

/** Gas per step for one job with `verifiers` chosen verifiers. */
export interface GasRow {
  readonly verifiers: number;
  readonly submitJob: bigint;
  readonly assignWorker: bigint;
  readonly submitResult: bigint;
  /** One transaction carrying the 2f+1 attestations that decide. */
  readonly submitAttestations: bigint;
  readonly releasePayment: bigint;
  readonly job: bigint;
}

/** Gas of the one-off steps of a node. */
export interface SetupGas {
  readonly registerNode: bigint;
  readonly approve: bigint;
  readonly stakeWorker: bigint;
  readonly stakeVerifier: bigint;
  readonly registerKey: bigint;
}

/**
 * Runs one job per entry of `counts` (verifiers chosen, among `bonded` verifiers) and returns
 * the gas of each step.
 */
export async function measureGas(
  counts: readonly number[],
  options: { bonded?: number } = {},
): Promise<{ setup: SetupGas; rows: GasRow[] }> {
  const bonded = options.bonded ?? Math.max(...counts, 1);
  const evm = await startInProcessEvm();
  const chains: EvmChain[] = [];
  try {
    const deployer = hardhatKey(0);
    const addresses = await deployContracts(evm.provider, deployer);
    const gasOf = async (txHash: string): Promise<bigint> => {
      const receipt = await evm.provider.request({
        method: "eth_getTransactionReceipt",
        params: [txHash as Hex],
      } as never) as { gasUsed: Hex };
      return BigInt(receipt.gasUsed);
    };
    let next = 1;
    const connect = async (nodeId: string) => {
      const key = hardhatKey(next++);
      await fundAccounts(evm.provider, deployer, addresses.token, [
        privateKeyToAccount(key).address,
      ], 10n ** 24n);
      const chain = await EvmChain.connect({
        nodeId,
        provider: evm.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
      });
      chains.push(chain);
      return chain;
    };
    const client = await connect("client");
    const worker = await connect("worker");
    const hash = "ab".repeat(32);
    const blockTxs = async (from: number) => {
      // The registration and approvals made by connect(): read from the blocks since `from`.
      const head = Number(await evm.provider.request({ method: "eth_blockNumber" } as never));
      const gas: bigint[] = [];
      for (let b = from + 1; b <= head; b++) {
        const block = await evm.provider.request({
          method: "eth_getBlockByNumber",
          params: [`0x${b.toString(16)}`, false],
        } as never) as { transactions: string[] };
        for (const tx of block.transactions) gas.push(await gasOf(tx));
      }
      return gas;
    };
    const before = Number(await evm.provider.request({ method: "eth_blockNumber" } as never));
    const probe = await connect("probe");
    const [, registerNode = 0n, approve = 0n] = await blockTxs(before); // mint, register, approve x2
    const stakeWorker = await gasOf((await worker.stake({ amount: 10n ** 21n })).txHash);
    const verifiers: EvmChain[] = [];
    let stakeVerifier = 0n;
    let registerKey = 0n;
    for (let i = 0; i < bonded; i++) {
      const v = await connect(`verifier-${i}`);
      stakeVerifier = await gasOf((await v.stake({ amount: 10n ** 21n, role: "verifier" })).txHash);
      registerKey = await gasOf(
        (await v.registerKey({ publicKey: await v.accountPublicKey() })).txHash,
      );
      verifiers.push(v);
    }
    void probe;
    const rows: GasRow[] = [];
    for (const n of counts) {
      const jobId = `gas-${n}`;
      const submitJob = await gasOf(
        (await client.submitJob({
          jobId,
          amount: 10n ** 18n,
          minStake: 1n,
          modelHash: hash,
          inputCommitment: hash,
          verifierCount: n,
          specHash: hash,
        })).txHash,
      );
      const assigned = await client.assignWorker({
        jobId,
        worker: "worker",
        price: 9n * 10n ** 17n,
      });
      const assignWorker = await gasOf(assigned.txHash);
      const submitResult = await gasOf(
        (await worker.submitResult({ jobId, commitment: hash })).txHash,
      );
      let submitAttestations = 0n;
      if (n > 0) {
        const { events } = await client.eventsSince({
          blockNumber: assigned.blockNumber,
          eventIndex: 0,
        });
        const event = events.find((e) => e.name === "WorkerAssigned" && e.jobId === jobId);
        const chosen = event?.name === "WorkerAssigned" ? event.verifiers : [];
        const quorum = 2 * Math.floor((n - 1) / 3) + 1;
        const signed = [];
        for (const id of chosen.slice(0, quorum)) {
          const v = verifiers.find((c) => c.account === id) as EvmChain;
          signed.push(
            await v.signAttestation({ jobId, attempt: 1, subject: hash, verdict: "valid" }),
          );
        }
        submitAttestations = await gasOf(
          (await client.submitAttestations({ attestations: signed })).txHash,
        );
      }
      const releasePayment = await gasOf((await worker.releasePayment({ jobId })).txHash);
      rows.push({
        verifiers: n,
        submitJob,
        assignWorker,
        submitResult,
        submitAttestations,
        releasePayment,
        job: submitJob + assignWorker + submitResult + submitAttestations + releasePayment,
      });
    }
    return { setup: { registerNode, approve, stakeWorker, stakeVerifier, registerKey }, rows };
  } finally {
    for (const chain of chains) await chain.close();
    await evm.close();
  }
}
