/**
 * Separate OS processes settling through one EVM: `deno task chain` (Hardhat's node in its own
 * process, the contracts deployed, accounts funded) and three `deno task node` processes with
 * `chain.kind: "evm"` and the default settlement (chain-decided): a client (and bootstrap), a
 * worker and a verifier that bonds the default verifier stake, each with its own key file. A job
 * submitted with `deno task submit --wait` settles: the contract chooses the verifier, counts its
 * signed attestation, verifies the job and pays; its events and the money check are then read
 * from the contracts by a fourth account.
 *
 * Skipped when `protocols/libp2p_host.ts` is absent.
 *
 * @module
 */
import assert from "node:assert/strict";
import { EvmChain } from "../../chain/evm/evm_adapter.ts";
import { readDeployment } from "../../chain/evm/local_node.ts";
import { until } from "../_poll.ts";
import { processMarketLock } from "../_exclusive.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const HAS_HOST = await Deno.stat(`${ROOT}protocols/libp2p_host.ts`).then(() => true, () => false);
const decoder = new TextDecoder();
/** Tokens `deno task chain` mints to each account. */
const FUND = 1_000_000n;

interface Proc {
  readonly name: string;
  readonly process: Deno.ChildProcess;
  readonly log: string[];
  exited: boolean;
  readonly status: Promise<Deno.CommandStatus>;
}

function start(name: string, args: string[]): Proc {
  const process = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) if (log.length < 2_000) log.push(decoder.decode(chunk));
  };
  void drain(process.stdout).catch(() => {});
  void drain(process.stderr).catch(() => {});
  const proc: Proc = {
    name,
    process,
    log,
    exited: false,
    status: process.status.then((s) => {
      proc.exited = true;
      return s;
    }),
  };
  return proc;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test({
  name: "deno task node processes settle a job through one deno task chain EVM node",
  ignore: !HAS_HOST,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using _market = await processMarketLock();
    const dir = await Deno.makeTempDir({ prefix: "ciro-evm-processes-" });
    const procs: Proc[] = [];
    try {
      const chain = start("chain", [
        "task",
        "-q",
        "chain",
        "--port",
        `${freePort()}`,
        "--out",
        `${dir}/evm`,
        "--accounts",
        "4",
        "--fund",
        `${FUND}`,
      ]);
      procs.push(chain);
      const deployment = await until("deployment.json", 90_000, async () => {
        if (chain.exited) throw new Error(`deno task chain exited: ${chain.log.join("")}`);
        return await readDeployment(`${dir}/evm/deployment.json`).catch(() => undefined);
      });

      const node = async (
        name: string,
        account: number,
        config: Record<string, unknown>,
        bootstrap: string[],
      ) => {
        const dataDir = `${dir}/${name}`;
        await Deno.mkdir(dataDir, { recursive: true });
        const file = `${dir}/${name}.json`;
        await Deno.writeTextFile(
          file,
          JSON.stringify({
            dataDir,
            listen: ["/ip4/127.0.0.1/tcp/0"],
            bootstrap,
            chain: {
              kind: "evm",
              deployment: `${dir}/evm/deployment.json`,
              privateKeyFile: `${dir}/evm/account-${account}.key`,
              pollMs: 100,
            },
            network: { heartbeatMs: 1_000 },
            capabilityIntervalMs: 1_000,
            http: { host: "127.0.0.1", port: 0 },
            log: { level: "warning", format: "json" },
            // The defaults: chain settlement, the verifier bonded (verifier.stake).
            ...config,
          }),
        );
        const proc = start(name, ["task", "-q", "node", "--config", file]);
        procs.push(proc);
        const info = await until(`${name} to write node.json`, 60_000, async () => {
          if (proc.exited) throw new Error(`${name} exited: ${proc.log.join("")}`);
          const text = await Deno.readTextFile(`${dataDir}/node.json`).catch(() => undefined);
          return text === undefined ? undefined : JSON.parse(text) as {
            peerId: string;
            pid: number;
            multiaddrs: string[];
            http: string;
          };
        });
        return { proc, info };
      };
      const boot = await node("client", 1, { roles: ["client", "bootstrap"] }, []);
      const address = boot.info.multiaddrs[0] as string;
      const worker = await node("worker", 2, {
        roles: ["worker"],
        worker: { hardware: "cpu", stake: 1_000, priceRatio: 0.5, etaMs: 200, capacity: 1 },
      }, [address]);
      const verifier = await node("verifier", 3, { roles: ["verifier"] }, [address]);
      await until("the client to know the worker and the verifier", 30_000, async () => {
        const peers = await (await fetch(`${boot.info.http}/peers`)).json();
        const health = await (await fetch(`${boot.info.http}/health`)).json();
        return peers.connected.includes(worker.info.peerId) &&
            peers.connected.includes(verifier.info.peerId) && health.verifiers >= 1
          ? true
          : undefined;
      });
      const spec = {
        kind: { type: "builtin", name: "matmul" },
        input: { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] },
        requirements: { hardware: "cpu", minStake: "100" },
        maxPrice: "1000",
        bidWindowMs: 2_000,
        // Deadlines on chain (block time): wide, for a loaded machine; the honest path does not
        // wait for them.
        executionMs: 30_000,
        verificationMs: 30_000,
        maxAttempts: 2,
        verifierCount: 1,
      };
      await Deno.writeTextFile(`${dir}/job.json`, JSON.stringify({ spec, jobId: "evm-job-1" }));
      const submit = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "-q",
          "submit",
          "--node",
          boot.info.http,
          "--spec",
          `${dir}/job.json`,
          "--wait",
          "--json",
          "--timeout",
          "120000",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(150_000),
      }).output();
      const out = decoder.decode(submit.stdout);
      assert.equal(submit.code, 0, `deno task submit: ${decoder.decode(submit.stderr)} ${out}`);
      const job = JSON.parse(out);
      assert.equal(job.state, "settled", JSON.stringify(job.context?.path));
      assert.equal(job.context.payment.worker, worker.info.peerId);

      // Read back from the contracts by another account.
      const observer = await EvmChain.connect({
        nodeId: "observer",
        rpcUrl: deployment.rpcUrl,
        chainId: deployment.chainId,
        addresses: deployment,
        privateKeyFile: `${dir}/evm/account-4.key`,
      });
      try {
        const { events } = await observer.eventsSince({ blockNumber: 0, eventIndex: 0 }, {
          limit: 1000,
        });
        const mine = events.filter((e) => "jobId" in e && e.jobId === "evm-job-1");
        const names = mine.map((e) => e.name);
        for (
          const name of [
            "JobSubmitted",
            "WorkerAssigned",
            "ResultSubmitted",
            "AttestationRecorded",
            "JobVerified",
            "PaymentReleased",
          ]
        ) {
          assert.ok(names.includes(name as never), `${name} on chain: ${names.join(", ")}`);
        }
        // Chain settlement: the contract chose the bonded verifier, counted its signed
        // attestation, and that count verified the job (the client recorded no verdict).
        const assigned = mine.find((e) => e.name === "WorkerAssigned");
        assert.ok(assigned?.name === "WorkerAssigned");
        assert.deepEqual(assigned.verifiers, [verifier.info.peerId]);
        const attested = mine.filter((e) => e.name === "AttestationRecorded");
        assert.deepEqual(
          attested.map((e) => e.name === "AttestationRecorded" && [e.verifier, e.verdict]),
          [[verifier.info.peerId, "valid"]],
        );
        assert.ok(names.indexOf("AttestationRecorded") < names.indexOf("JobVerified"));
        assert.equal(job.context.policy.settlement, "chain");
        const t = await observer.totals();
        assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
        assert.equal(t.staked, t.bonded + t.slashed + t.withdrawn);
        assert.ok(t.paid > 0n);
        assert.equal(await observer.stakeOf(worker.info.peerId), 1_000n);
        // The verifier bonded the default verifier stake and was paid its share of the price.
        assert.equal(await observer.stakeOf(verifier.info.peerId), 1_000n);
        const paid = mine.find((e) => e.name === "PaymentReleased");
        assert.ok(paid?.name === "PaymentReleased");
        const reward = assigned.price - paid.amount - paid.fee;
        assert.ok(reward > 0n, `verifier reward ${reward}`);
        assert.equal(await observer.balanceOf(verifier.info.peerId), FUND - 1_000n + reward);
      } finally {
        await observer.close();
      }
    } catch (error) {
      for (const p of procs) console.error(`--- ${p.name}\n${p.log.join("").slice(-3_000)}`);
      throw error;
    } finally {
      for (const p of procs.slice(1).reverse()) {
        if (!p.exited) {
          try {
            p.process.kill("SIGTERM");
          } catch { /* gone */ }
        }
      }
      await Promise.race([
        Promise.allSettled(procs.slice(1).map((p) => p.status)),
        new Promise((r) => setTimeout(r, 15_000)),
      ]);
      const chain = procs[0];
      if (chain !== undefined && !chain.exited) chain.process.kill("SIGTERM");
      await Promise.race([chain?.status, new Promise((r) => setTimeout(r, 15_000))]);
      for (const p of procs) {
        if (!p.exited) {
          try {
            p.process.kill("SIGKILL");
          } catch { /* gone */ }
        }
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
