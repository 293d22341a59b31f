/**
 * `deno bench -A runtime/ops/cockpit_bench.ts`: what the cockpit costs. The HTTP API's reads on
 * a client that settled 300 jobs (in process, real local ledger), and a market of 50 jobs with
 * and without a cockpit on every node (`n: 1`: one market each, compare the two).
 *
 * @module
 */
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { JobSpec } from "../../machines/types.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { commitmentOf } from "../compute/mod.ts";
import { createNode, type Node } from "../kernel/mod.ts";
import { Cockpit } from "./cockpit.ts";
import { serveStatus } from "./status_server.ts";

function spec(): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    input,
    inputCommitment: commitmentOf(input),
    requirements: { hardware: "cpu", minStake: 10n },
    maxPrice: 100n,
    bidWindowMs: 20,
    executionMs: 5_000,
    verificationMs: 5_000,
    maxAttempts: 2,
    verifierCount: 1,
  };
}

/** A market of a client, two workers and a verifier; runs `jobs` jobs, 25 at a time. */
async function market(jobs: number, cockpit: boolean) {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const make = (id: string, roles: ("client" | "worker" | "verifier")[]): Node =>
    createNode({
      id,
      roles,
      network: network.join(id),
      chain: ledger.as(id),
      capabilityIntervalMs: 0,
      ...(roles.includes("worker")
        ? { worker: { hardware: "cpu" as const, stake: 100n, capacity: 8, maxOpenBids: 64 } }
        : {}),
    });
  const client = make("client", ["client"]);
  const nodes = [client, make("w1", ["worker"]), make("w2", ["worker"]), make("v1", ["verifier"])];
  for (const n of nodes) await n.start();
  for (const n of nodes) await n.announceCapabilities();
  const cockpits = cockpit ? nodes.map((n) => new Cockpit(n, { log: false })) : [];
  const waiting = new Map<string, () => void>();
  client.observe((o) => {
    if (o.type === "job.finished") waiting.get(o.jobId)?.();
  });
  for (let b = 0; b < jobs / 25; b++) {
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        new Promise<void>((resolve) => {
          const jobId = `j${b}-${i}`;
          waiting.set(jobId, resolve);
          client.submitJob({ spec: spec(), jobId });
        })),
    );
  }
  return {
    client,
    cockpit: cockpits[0],
    async stop() {
      for (const c of cockpits) c.close();
      for (const n of nodes) await n.stop();
      network.close();
      ledger.close();
    },
  };
}

const settled = await market(300, true);
const server = await serveStatus(settled.client, { cockpit: settled.cockpit! });
const get = async (path: string) => {
  const response = await fetch(`${server.url}${path}`);
  await response.arrayBuffer();
};
addEventListener("unload", () => {
  // deno bench has no teardown hook; the process ends here anyway.
  void server.shutdown().then(() => settled.stop());
});

Deno.bench("GET /metrics (300 jobs)", { group: "http" }, async () => await get("/metrics"));
Deno.bench(
  "GET /jobs?limit=100 (300 jobs)",
  { group: "http" },
  async () => await get("/jobs?limit=100"),
);
Deno.bench("GET /jobs/:id", { group: "http" }, async () => await get("/jobs/j0-0"));
Deno.bench("GET /jobs/:id/output", { group: "http" }, async () => await get("/jobs/j0-0/output"));

Deno.bench(
  "50 jobs, no cockpit",
  { group: "market", baseline: true, n: 1, warmup: 0 },
  async () => {
    await (await market(50, false)).stop();
  },
);
Deno.bench("50 jobs, a cockpit on every node", { group: "market", n: 1, warmup: 0 }, async () => {
  await (await market(50, true)).stop();
});
