/**
 * A small market in one process for the cockpit's tests: a client, workers and verifiers on the
 * in-process network, settling on a real local ledger (SQLite in memory), the client's chain
 * port and journal instrumented, and the client's status server on loopback.
 *
 * @module
 */
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { JobSpec } from "../../machines/types.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { commitmentOf } from "../../runtime/compute/mod.ts";
import {
  createNode,
  MemoryJournal,
  type Node,
  type WorkerProfile,
} from "../../runtime/kernel/mod.ts";
import {
  Cockpit,
  instrumentChain,
  instrumentJournal,
  serveStatus,
  type StatusLimits,
  type StatusServer,
} from "../../runtime/ops/mod.ts";

/** A running test market. */
export interface Market {
  readonly client: Node;
  readonly workers: Node[];
  readonly verifiers: Node[];
  readonly cockpit: Cockpit;
  readonly workerCockpits: Cockpit[];
  readonly server: StatusServer;
  readonly workerServers: StatusServer[];
  readonly url: string;
  readonly ledger: LocalLedger;
  readonly journal: MemoryJournal;
  /** Resolves with the job's final state. */
  finished(jobId: string, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Options of {@link startMarket}. */
export interface MarketOptions {
  readonly workers?: readonly Partial<WorkerProfile>[];
  readonly verifiers?: number;
  readonly retainFinishedMs?: number | null;
  readonly limits?: StatusLimits;
  readonly outputs?: { maxEntries?: number; maxBytes?: number };
}

/** A small matmul job. */
export function matmulSpec(overrides: Partial<JobSpec> = {}): JobSpec {
  const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
  return {
    kind: { type: "builtin", name: "matmul" },
    input,
    inputCommitment: commitmentOf(input),
    requirements: { hardware: "cpu", minStake: 10n },
    maxPrice: 100n,
    bidWindowMs: 60,
    executionMs: 5_000,
    verificationMs: 5_000,
    maxAttempts: 2,
    verifierCount: 1,
    ...overrides,
  };
}

/** Starts a market; stop it with `market.stop()`. */
export async function startMarket(options: MarketOptions = {}): Promise<Market> {
  const ledger = LocalLedger.open(":memory:");
  const network = new InProcessNetwork();
  const journal = new MemoryJournal();
  const retain = options.retainFinishedMs === undefined ? {} : {
    retainFinishedMs: options.retainFinishedMs,
  };
  const late: { cockpit?: Cockpit } = {};
  const client = createNode({
    id: "client",
    roles: ["client"],
    network: network.join("client"),
    // The decorators report to the cockpit, made right after the node (it observes the node).
    chain: instrumentChain(ledger.as("client"), {
      chainCall: (...a) => late.cockpit!.metrics.chainCall(...a),
    }),
    journal: instrumentJournal(journal, {
      journalAppend: (s) => late.cockpit!.metrics.journalAppend(s),
    }),
    capabilityIntervalMs: 0,
    ...retain,
  });
  const cockpit = late.cockpit = new Cockpit(client, {
    chain: ledger.as("client"),
    ...(options.outputs ? { outputs: options.outputs } : {}),
  });
  const workerProfiles = options.workers ?? [{}];
  const workers = workerProfiles.map((profile, i) =>
    createNode({
      id: `w${i + 1}`,
      roles: ["worker"],
      network: network.join(`w${i + 1}`),
      chain: ledger.as(`w${i + 1}`),
      worker: { hardware: "cpu", stake: 100n, ...profile },
      capabilityIntervalMs: 0,
      ...retain,
    })
  );
  const verifiers = Array.from({ length: options.verifiers ?? 1 }, (_, i) =>
    createNode({
      id: `v${i + 1}`,
      roles: ["verifier"],
      network: network.join(`v${i + 1}`),
      chain: ledger.as(`v${i + 1}`),
      capabilityIntervalMs: 0,
      ...retain,
    }));
  const all = [client, ...workers, ...verifiers];
  for (const n of all) await n.start();
  for (const n of all) await n.announceCapabilities();
  const workerCockpits = workers.map((w, i) =>
    new Cockpit(w, { chain: ledger.as(w.id), capacity: workerProfiles[i]?.capacity ?? 2 })
  );
  const server = await serveStatus(client, {
    cockpit,
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const workerServers = await Promise.all(
    workers.map((w, i) => serveStatus(w, { cockpit: workerCockpits[i]! })),
  );
  const finished = (jobId: string, timeoutMs = 20_000) =>
    new Promise<string>((resolve, reject) => {
      const known = client.job(jobId) ?? client.retiredJob(jobId);
      if (known !== undefined && ("done" in known ? known.done : true)) {
        resolve(known.state);
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`Job "${jobId}" did not finish within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const stop = client.observe((o) => {
        if (o.type === "job.finished" && o.jobId === jobId) {
          clearTimeout(timer);
          stop();
          resolve(o.state);
        }
      });
    });
  return {
    client,
    workers,
    verifiers,
    cockpit,
    workerCockpits,
    server,
    workerServers,
    url: server.url,
    ledger,
    journal,
    finished,
    async stop() {
      await server.shutdown();
      for (const s of workerServers) await s.shutdown();
      cockpit.close();
      for (const c of workerCockpits) c.close();
      for (const n of all) await n.stop();
      network.close();
      ledger.close();
    },
  };
}
