/**
 * A node's escrow reads follow its adapter's confirmed view (review R5 L2): on an EVM whose
 * adapter reads two confirmations behind, an escrow only the latest block holds reads as absent.
 * A worker that hears a job announced before its escrow is confirmed takes it all the same (an
 * absent read refuses nothing), and keeps it once the chain confirms the escrow; the announcer is
 * blamed only for a job the chain never escrowed. Real parts: Hardhat's EVM in process, the
 * Solidity contracts, the EVM adapter, the node; the node's clock is virtual so the escrow check
 * comes when the test says, not on a loaded machine's timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { privateKeyToAccount } from "viem/accounts";
import {
  deployContracts,
  fundAccounts,
  HARDHAT_CHAIN_ID,
  hardhatKey,
  startInProcessEvm,
} from "../chain/evm/deploy.ts";
import { EvmChain, type EvmChainOptions } from "../chain/evm/evm_adapter.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { createNode, simulatedClock } from "../runtime/kernel/mod.ts";
import {
  MAX_UNCONFIRMED_RECHECKS,
  UNCONFIRMED_RECHECK_MS,
} from "../runtime/kernel/escrow_watch.ts";
import { announceSpec as announce, escrowOfSpec, spec } from "./_drive.ts";

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 2_000 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

/** Hardhat's EVM in process with the contracts deployed; `connect` funds a key and opens its adapter. */
async function evmMarket() {
  const evm = await startInProcessEvm();
  const deployer = hardhatKey(0);
  const addresses = await deployContracts(evm.provider, deployer, { unbondingSeconds: 60 });
  const chains: EvmChain[] = [];
  return {
    connect: async (nodeId: string, index: number, options: Partial<EvmChainOptions>) => {
      const key = hardhatKey(index);
      await fundAccounts(evm.provider, deployer, addresses.token, [
        privateKeyToAccount(key).address,
      ], 10n ** 24n);
      const chain = await EvmChain.connect({
        nodeId,
        provider: evm.provider,
        chainId: HARDHAT_CHAIN_ID,
        addresses,
        privateKey: key,
        pollMs: 5,
        ...options,
      });
      chains.push(chain);
      return chain;
    },
    mine: (blocks: number) =>
      Promise.all(
        Array.from({ length: blocks }, () => evm.provider.request({ method: "evm_mine" } as never)),
      ),
    close: async () => {
      for (const chain of chains) await chain.close();
      await evm.close();
    },
  };
}

Deno.test("a worker reading escrows two confirmations behind takes a job announced before its escrow is confirmed, and keeps it once it is", async () => {
  const { connect, mine, close } = await evmMarket();
  const network = new InProcessNetwork();
  const clock = simulatedClock(Date.now());
  const owner = network.join("client");
  let worker: ReturnType<typeof createNode> | undefined;
  try {
    const client = await connect("client", 1, {});
    const workerChain = await connect("w1", 2, { confirmations: 2 });
    await workerChain.stake({ amount: 100n });
    await mine(2);
    worker = createNode({
      id: "w1",
      roles: ["worker"],
      worker: { hardware: "cpu", stake: 100n },
      network: network.join("w1"),
      chain: workerChain,
      clock,
      capabilityIntervalMs: 0,
      escrowWaitMs: 30_000,
    });
    await worker.start();
    await owner.start();
    const s = spec({ bidWindowMs: 60_000, verifierCount: 0 });
    await client.submitJob(escrowOfSpec("j1", s));
    // The escrow is in the latest block only: the worker's adapter does not read it yet.
    assert.equal(await workerChain.escrowOf("j1"), undefined);
    const endsAt = clock.now() + 60_000;
    await announce(owner, "j1", "client", s, endsAt);
    // And a job the chain never escrows, announced by the same peer.
    await announce(owner, "j2", "client", s, endsAt);
    const w = worker;
    await until(
      "the worker took both",
      () => w.job("j1") !== undefined && w.job("j2") !== undefined,
    );
    assert.ok(w.stats.escrowReads >= 2, "it read the escrows first");
    assert.equal(w.job("j1")!.done, false, "an absent escrow refuses nothing");
    // The chain confirms j1's escrow; the escrow checks come (virtual time).
    await mine(2);
    const reads = w.stats.escrowReads;
    clock.increment(30_000);
    await until("j2 dropped", () => w.retiredJob("j2") !== undefined);
    await until("the checks read the chain", () => w.stats.escrowReads >= reads + 2);
    await w.settled();
    assert.equal(w.retiredJob("j2")?.state, "unescrowed", "never escrowed: dropped");
    assert.equal(w.retiredJob("j1"), undefined, "confirmed since: kept");
    assert.equal(w.job("j1")?.done, false);
  } finally {
    await worker?.stop();
    await owner.stop();
    await close();
  }
});

for (const confirmed of [true, false]) {
  const title = confirmed
    ? "keeps a job whose escrow shows at the latest block but not yet at its confirmed head, checks it again, and blames no one"
    : "checks a job whose escrow stays unconfirmed again a few times at most, then drops it blaming no one";
  Deno.test(`a worker reading escrows more confirmations behind than the client waited ${title} (review R6 M5)`, async () => {
    const { connect, mine, close } = await evmMarket();
    const network = new InProcessNetwork();
    const clock = simulatedClock(Date.now());
    const owner = network.join("client");
    const forger = network.join("forger");
    let worker: ReturnType<typeof createNode> | undefined;
    try {
      const client = await connect("client", 1, {});
      const workerChain = await connect("w1", 2, { confirmations: 3 });
      await workerChain.stake({ amount: 100n });
      await mine(3);
      worker = createNode({
        id: "w1",
        roles: ["worker"],
        worker: { hardware: "cpu", stake: 100n },
        network: network.join("w1"),
        chain: workerChain,
        clock,
        capabilityIntervalMs: 0,
        escrowWaitMs: 30_000,
      });
      await worker.start();
      await owner.start();
      await forger.start();
      const s = spec({ bidWindowMs: 60_000, verifierCount: 0 });
      await client.submitJob(escrowOfSpec("j1", s));
      assert.equal(await workerChain.escrowOf("j1"), undefined, "not confirmed");
      assert.equal((await workerChain.escrowOf("j1", { latest: true }))?.client, "client");
      const endsAt = clock.now() + 60_000;
      await announce(owner, "j1", "client", s, endsAt);
      // A job the chain never escrows, announced by another peer, as its own.
      await announce(forger, "j2", "forger", s, endsAt);
      const w = worker;
      await until(
        "the worker took both",
        () => w.job("j1") !== undefined && w.job("j2") !== undefined,
      );
      const score = (peer: string) => w.peers().find((p) => p.peer === peer)?.score ?? 0;
      const clientScore = score("client");
      const forgerScore = score("forger");
      // The escrow wait passes with j1 still unconfirmed (no block mined).
      let reads = w.stats.escrowReads;
      clock.increment(30_000);
      await until("j2 dropped", () => w.retiredJob("j2") !== undefined);
      await until("both checks read the chain twice", () => w.stats.escrowReads >= reads + 4);
      await w.settled();
      assert.equal(w.retiredJob("j2")?.state, "unescrowed", "never escrowed: dropped");
      assert.ok(score("forger") < forgerScore, "its announcer blamed");
      assert.equal(w.job("j1")?.done, false, "unconfirmed: kept");
      assert.equal(score("client"), clientScore, "its client not blamed");
      if (confirmed) {
        await mine(3);
        reads = w.stats.escrowReads;
        clock.increment(UNCONFIRMED_RECHECK_MS);
        await until("the check again", () => w.stats.escrowReads >= reads + 1);
        await w.settled();
        assert.equal(w.job("j1")?.done, false, "confirmed since: kept");
        clock.increment(UNCONFIRMED_RECHECK_MS * (MAX_UNCONFIRMED_RECHECKS + 1));
        await w.settled();
        assert.equal(w.job("j1")?.done, false, "no further check drops it");
      } else {
        for (let again = 1; again <= MAX_UNCONFIRMED_RECHECKS; again++) {
          assert.equal(w.job("j1")?.done, false, `kept before check ${again}`);
          reads = w.stats.escrowReads;
          clock.increment(UNCONFIRMED_RECHECK_MS);
          await until(
            `check ${again} read the chain twice`,
            () => w.stats.escrowReads >= reads + 2,
          );
          await w.settled();
        }
        await until("j1 dropped", () => w.retiredJob("j1") !== undefined);
        assert.equal(w.retiredJob("j1")?.state, "unescrowed");
        assert.equal(score("client"), clientScore, "its client not blamed");
      }
    } finally {
      await worker?.stop();
      await owner.stop();
      await forger.stop();
      await close();
    }
  });
}
