/**
 * The adapters the conformance suite runs its scenarios against, behind one small harness: the
 * local ledger (a SQLite file in memory, its clock injected), the EVM adapter on Hardhat's EVM in
 * this process (time moved with `evm_increaseTime`), and the Starknet adapter on its JSON-RPC
 * double (which executes on a local ledger; time moved with `advanceTime`, the block timestamps).
 *
 * @module
 */
import assert from "node:assert/strict";
import { ec } from "starknet";
import type { ChainPort } from "../../chain/port.ts";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { StarknetChain } from "../../chain/starknet_adapter.ts";
import { EvmChain } from "../../chain/evm/evm_adapter.ts";
import {
  deployContracts,
  fundAccounts,
  HARDHAT_CHAIN_ID,
  hardhatKey,
  type InProcessEvm,
  startInProcessEvm,
} from "../../chain/evm/deploy.ts";
import { privateKeyToAccount } from "viem/accounts";
import type { EIP1193Provider } from "viem";
import { StarknetRpcServer } from "../starknet/rpc_server.ts";

/** One adapter under test. */
export interface ConformanceChain {
  readonly name: "local ledger" | "evm" | "starknet";
  /** Jobs with terms: verifiers chosen by the chain, attestations, deadlines, failures. */
  readonly chainDecided: boolean;
  /** Whether the chain's clock can be moved (deadlines, unbonding). */
  readonly canAdvance: boolean;
  /** A port for `account`, funded and (on chains that need it) registered. */
  port(account: string): Promise<ChainPort>;
  /** Moves the chain's clock forward by `ms` (a multiple of 1000). */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** The contract parameters every adapter is opened with. */
export const PARAMS = {
  feeBps: 100,
  verifierRewardBps: 500,
  unbondingMs: 3_600_000,
  minVerifierBond: 1n,
} as const;

/** The local ledger in memory, with a clock the suite moves. */
export function localLedgerChain(): ConformanceChain {
  let now = 1_700_000_000_000;
  const ledger = LocalLedger.open(":memory:", {
    now: () => now,
    protocolFeeBps: PARAMS.feeBps,
    verifierRewardBps: PARAMS.verifierRewardBps,
    unbondingMs: PARAMS.unbondingMs,
    minVerifierBond: PARAMS.minVerifierBond,
  });
  return {
    name: "local ledger",
    chainDecided: true,
    canAdvance: true,
    port: (account) => Promise.resolve(ledger.as(account)),
    advance: (ms) => {
      now += ms;
      return Promise.resolve();
    },
    close: () => Promise.resolve(ledger.close()),
  };
}

/** The EVM adapter on a fresh deployment in Hardhat's in-process EVM. */
export async function evmChain(): Promise<ConformanceChain> {
  const evm: InProcessEvm = await startInProcessEvm();
  const deployer = hardhatKey(0);
  const addresses = await deployContracts(evm.provider, deployer, {
    feeBps: PARAMS.feeBps,
    verifierRewardBps: PARAMS.verifierRewardBps,
    unbondingSeconds: PARAMS.unbondingMs / 1000,
    minVerifierBond: PARAMS.minVerifierBond,
  });
  const ports: EvmChain[] = [];
  let next = 1;
  return {
    name: "evm",
    chainDecided: true,
    canAdvance: true,
    async port(account) {
      const key = hardhatKey(next++);
      await fundAccounts(evm.provider, deployer, addresses.token, [
        privateKeyToAccount(key).address,
      ], 10n ** 24n);
      const port = await EvmChain.connect({
        nodeId: account,
        provider: evm.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
        pollMs: 5,
      });
      ports.push(port);
      return port;
    },
    advance: (ms) => increaseTime(evm.provider, ms),
    async close() {
      for (const port of ports) await port.close();
      await evm.close();
    },
  };
}

/** Moves an EVM's clock forward by `ms` and mines a block. */
export async function increaseTime(provider: EIP1193Provider, ms: number): Promise<void> {
  await provider.request({
    method: "evm_increaseTime" as never,
    params: [Math.ceil(ms / 1000)] as never,
  });
  await provider.request({ method: "evm_mine" as never, params: [] as never });
}

/** The Starknet adapter on its JSON-RPC double (instant mining, a clock the suite moves). */
export async function starknetChain(): Promise<ConformanceChain> {
  const keys = Array.from({ length: 12 }, (_, i) => `0x${(0x1000 + i * 7919).toString(16)}`);
  const addresses = keys.map((_, i) => `0x${(0xa000 + i).toString(16)}`);
  const server = await StarknetRpcServer.start({
    accounts: keys.map((key, i) => ({
      address: addresses[i] as string,
      publicKey: ec.starkCurve.getStarkKey(key),
    })),
    mempool: { hiddenFor: 0, executeAfter: 0 },
    ledgerOptions: {
      protocolFeeBps: PARAMS.feeBps,
      verifierRewardBps: PARAMS.verifierRewardBps,
      unbondingMs: PARAMS.unbondingMs,
      minVerifierBond: PARAMS.minVerifierBond,
    },
  });
  const ports: StarknetChain[] = [];
  let next = 0;
  return {
    name: "starknet",
    chainDecided: true,
    canAdvance: true,
    async port(account) {
      const i = next++;
      const port = await StarknetChain.connect({
        rpcUrl: server.url,
        accountAddress: addresses[i] as string,
        privateKey: keys[i] as string,
        nodeId: account,
        jobManagerAddress: server.jobManagerAddress,
        cdcPoolAddress: server.cdcPoolAddress,
        confirmations: 0,
        pollMs: 5,
        backoffMs: 1,
      });
      ports.push(port);
      return port;
    },
    advance: (ms) => Promise.resolve(server.advanceTime(ms)),
    async close() {
      for (const port of ports) await port.close();
      await server.close();
      // The double checks every request and answer against the spec version it speaks.
      assert.deepEqual(server.problems, [], "traffic the Starknet JSON-RPC spec refuses");
    },
  };
}

/** Every adapter, by name. */
export const CHAINS: Record<ConformanceChain["name"], () => Promise<ConformanceChain>> = {
  "local ledger": () => Promise.resolve(localLedgerChain()),
  evm: evmChain,
  starknet: starknetChain,
};
