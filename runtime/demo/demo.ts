/**
 * `deno task demo`: one process hosting a client, 20 workers and 4 verifiers on the in-process
 * network, settling on the embedded local ledger (a real SQLite file), runs 100 jobs through
 * the whole lifecycle. Unhappy paths are built in: one worker goes silent (its jobs are
 * re-auctioned and it is slashed for downtime), one returns wrong results (its jobs are
 * disputed, refunded, and it is slashed for invalid compute), and some jobs need a GPU no
 * worker has (they expire and are refunded). It prints progress, then a summary: jobs by
 * outcome, per-phase latency, and the money check.
 *
 * Flags: `--jobs N` (default 100), `--workers N` (20), `--verifiers N` (4), `--concurrency N`
 * (25), `--ledger PATH` (default a new file in a temporary directory), `--record PATH` (the
 * recording, see `recording.ts`; default `recording.jsonl` in a new temporary directory),
 * `--json` (print the summary as JSON), `--onnx` (ONNX inference jobs on a generated MLP instead
 * of `builtin:matmul`; every worker and verifier holds the model in a `MemoryModelStore`),
 * `--chain evm` (settle on the Solidity contracts on Hardhat's EVM in this process instead of the
 * local ledger; the money check is read from the contracts).
 *
 * @module
 */
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { ChainPort, LedgerTotals } from "../../chain/port.ts";
import { DEFAULT_POLICY } from "../../machines/policies.ts";
import type { JobSpec } from "../../machines/types.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { commitmentOf } from "../compute/mod.ts";
import { MemoryModelStore } from "../compute/mod.ts";
import { buildMlpModel, seededRandom } from "../compute/mod.ts";
import type { OnnxJobInput } from "../compute/mod.ts";
import { describeNode } from "../durability/mod.ts";
import {
  createNode as createNodeWith,
  type Node,
  NODE_DEFAULT_POLICY,
  type NodeOptions,
  type WorkerProfile,
} from "../kernel/mod.ts";
import { RecordingWriter } from "../durability/mod.ts";
import { type Phase, phaseDurations, PHASES, quantile } from "../research/mod.ts";

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** @default 100 */
  readonly jobs?: number;
  /** @default 20 */
  readonly workers?: number;
  /** @default 4 */
  readonly verifiers?: number;
  /** `in-process`, or one real libp2p host per node on loopback. @default "in-process" */
  readonly network?: "in-process" | "libp2p";
  /**
   * ONNX inference jobs on one generated MLP ({@link DEMO_MLP}) instead of `builtin:matmul`:
   * every worker and verifier holds the model in a `MemoryModelStore`. @default false
   */
  readonly onnx?: boolean;
  /** Time between two job submissions, ms. @default 15 */
  readonly paceMs?: number;
  /** Jobs in flight at once. @default 25 */
  readonly concurrency?: number;
  /** Ledger file; `:memory:` for none. @default a new file in a temporary directory */
  readonly ledgerPath?: string;
  /**
   * Where jobs settle: the local ledger, or the Solidity contracts on Hardhat's EVM in this
   * process (`chain/evm/`). @default "local"
   */
  readonly chain?: "local" | "evm";
  /**
   * Who decides the jobs' verification: the chain (the node's default: it chooses the bonded
   * verifiers and counts their signed attestations), or `legacy` (the client's node counts what
   * it hears and records the verdict), kept for research and comparison. @default "chain"
   */
  readonly settlement?: "chain" | "legacy";
  /** Where to write the recording of every node's journal. @default none */
  readonly recordPath?: string;
  /** Called with progress while jobs run. */
  readonly onProgress?: (done: number, total: number, byState: Record<string, number>) => void;
  /**
   * How long each node keeps a finished job's actor before retiring it to its archive, ms;
   * `null` keeps them all. @default the node default (60 s)
   */
  readonly retainFinishedMs?: number | null;
  /** Gives up after this long, ms. @default 180_000 */
  readonly timeoutMs?: number;
  /**
   * Overrides of the jobs' deadlines, ms (tests on a loaded machine give the bid window room).
   * @default 120 / 800 / 2,000 in process, 1,000 / 2,000 / 4,000 over libp2p
   */
  readonly timing?: {
    readonly bidWindowMs?: number;
    readonly executionMs?: number;
    readonly verificationMs?: number;
  };
  readonly signal?: AbortSignal;
}

/** What a demo run reports. */
export interface DemoSummary {
  readonly jobs: number;
  /** Who decided the jobs' verification. */
  readonly settlement: "chain" | "legacy";
  readonly byState: Record<string, number>;
  readonly reauctioned: number;
  readonly disputed: number;
  readonly slashes: { downtime: number; invalid_compute: number };
  readonly latencyMs: Record<Phase, { p50: number; p95: number; n: number }>;
  readonly totals: LedgerTotals;
  readonly moneyConserved: boolean;
  readonly stakeConserved: boolean;
  readonly wallMs: number;
  /** Job actors still live on all nodes at the end, and jobs retired to the nodes' archives. */
  readonly jobActors: { readonly live: number; readonly retired: number };
  readonly ledgerPath: string;
  readonly silentWorker: string;
  readonly wrongWorker: string;
  /** The recording written, if one was asked for. */
  readonly recordPath?: string;
}

/** Deadlines of the demo's jobs: tight in process, looser over real libp2p (mesh hops, one event loop for every host). */
/** A job's deadlines, ms. */
interface Timing {
  readonly bidWindowMs: number;
  readonly executionMs: number;
  readonly verificationMs: number;
}

const TIMING: Readonly<Record<"in-process" | "libp2p", Timing>> = {
  // Chain settlement: each chosen verifier submits its own attestation transaction in time.
  "in-process": { bidWindowMs: 120, executionMs: 2_000, verificationMs: 5_000 },
  libp2p: { bidWindowMs: 1_000, executionMs: 2_000, verificationMs: 4_000 },
};

function matmulSpec(
  random: () => number,
  needsGpu: boolean,
  timing: Timing,
  verifierCount: number,
): JobSpec {
  const n = 2 + Math.floor(random() * 3);
  const matrix = () =>
    Array.from({ length: n }, () => Array.from({ length: n }, () => Math.floor(random() * 19) - 9));
  const input = { a: matrix(), b: matrix() };
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: needsGpu ? "gpu" : "cpu", minStake: 100n },
    maxPrice: 1_000n + BigInt(Math.floor(random() * 1_000)),
    ...timing,
    maxAttempts: 3,
    verifierCount,
  };
}

/** The model of the `--onnx` demo: an MLP 16->32->4 (float32, symbolic batch), seed 7. */
export const DEMO_MLP = { inputSize: 16, hiddenSize: 32, outputSize: 4, seed: 7 } as const;

function onnxSpec(
  random: () => number,
  needsGpu: boolean,
  timing: Timing,
  modelHash: string,
  verifierCount: number,
): JobSpec {
  const batch = 1 + Math.floor(random() * 3);
  const data = Array.from(
    { length: batch * DEMO_MLP.inputSize },
    () => Math.round((random() * 4 - 2) * 1_000) / 1_000,
  );
  const input: OnnxJobInput = {
    inputs: { input: { dims: [batch, DEMO_MLP.inputSize], dtype: "float32", data } },
  };
  return {
    kind: { type: "onnx", modelHash },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: needsGpu ? "gpu" : "cpu", minStake: 100n },
    maxPrice: 1_000n + BigInt(Math.floor(random() * 1_000)),
    ...timing,
    maxAttempts: 3,
    verifierCount,
  };
}

/** Runs the demo and returns its summary. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoSummary> {
  // Over libp2p every host shares this process's event loop (signatures, mesh forwarding), so
  // the default market is smaller there: 8 workers, 40 jobs, 8 in flight.
  const overLibp2p = options.network === "libp2p";
  const total = options.jobs ?? (overLibp2p ? 40 : 100);
  const workerCount = options.workers ?? (overLibp2p ? 8 : 20);
  const verifierCount = options.verifiers ?? 4;
  const concurrency = options.concurrency ?? (overLibp2p ? 8 : 25);
  if (!Number.isInteger(total) || total < 1) {
    throw new RangeError(`Invalid --jobs ${total}: must be a positive integer`);
  }
  if (!Number.isInteger(workerCount) || workerCount < 3) {
    throw new RangeError(`Invalid --workers ${workerCount}: need at least 3`);
  }
  if (!Number.isInteger(verifierCount) || verifierCount < 1) {
    throw new RangeError(`Invalid --verifiers ${verifierCount}: need at least 1`);
  }
  const ledgerPath = options.ledgerPath ??
    `${await Deno.makeTempDir({ prefix: "ciro-demo-" })}/ledger.sqlite`;
  const started = performance.now();
  const network = new InProcessNetwork({ heartbeatMs: 1_000 });
  // One libp2p host per node on loopback when asked; they all bootstrap from the client's.
  let bootstrap: string[] = [];
  const join = async (name: string): Promise<NetworkPort> => {
    if ((options.network ?? "in-process") === "in-process") return network.join(name);
    const { createLibp2pHost } = await import("../../protocols/libp2p_host.ts");
    const host = await createLibp2pHost({
      listen: ["/ip4/127.0.0.1/tcp/0"],
      bootstrap,
      heartbeatMs: peer.heartbeatMs,
    });
    if (bootstrap.length === 0) bootstrap = host.multiaddrs();
    return host;
  };
  const ledger = LocalLedger.open(options.chain === "evm" ? ":memory:" : ledgerPath);
  const evm = options.chain === "evm"
    ? await (await import("../../chain/evm/deploy.ts")).startEvmMarket()
    : undefined;
  const chainFor = (id: string): Promise<ChainPort> =>
    evm === undefined ? Promise.resolve(ledger.as(id)) : evm.connect(id, { pollMs: 20 });
  // Heartbeats: every second in process; over libp2p every 5 s (pings from 25 hosts sharing one
  // event loop time out under load and would mark live peers as gone).
  const peer = {
    heartbeatMs: (options.network ?? "in-process") === "libp2p" ? 5_000 : 1_000,
    maxMissedHeartbeats: 3,
    initialScore: 100,
    banThreshold: 0,
    banMs: 60_000,
  };
  const retain = options.retainFinishedMs === undefined
    ? {}
    : { retainFinishedMs: options.retainFinishedMs };
  const nodes: Node[] = [];
  // --onnx: one model, held by every worker and verifier (each its own store).
  const modelBytes = options.onnx ? buildMlpModel(DEMO_MLP) : undefined;
  const modelHash = modelBytes ? await new MemoryModelStore().put(modelBytes) : "";
  const modelStore = async (): Promise<{ models?: MemoryModelStore }> => {
    if (modelBytes === undefined) return {};
    const models = new MemoryModelStore();
    await models.put(modelBytes);
    return { models };
  };
  const recorder = options.recordPath === undefined
    ? undefined
    : RecordingWriter.create(options.recordPath, {
      demo: {
        jobs: total,
        workers: workerCount,
        verifiers: verifierCount,
        concurrency,
        seed: 42,
        ...(options.onnx ? { onnx: true, modelHash } : {}),
      },
    });
  // Every node runs the same settlement rules; the chain's are the default.
  const policy = options.settlement === "legacy"
    ? { ...DEFAULT_POLICY, settlement: "legacy" as const }
    : NODE_DEFAULT_POLICY;
  const createNode = (options: NodeOptions): Node => {
    const o = { ...options, policy };
    return createNodeWith(recorder ? { ...o, journal: recorder.sink(describeNode(o)) } : o);
  };
  // A job asks for 4 verifiers (f = 1), or for as many as there are: the chain refuses a job
  // that asks for more verifiers than are bonded.
  const perJob = Math.min(4, verifierCount);
  const pad = (i: number) => String(i + 1).padStart(2, "0");
  const silentWorker = `worker-${pad(6)}`;
  const wrongWorker = `worker-${pad(12 % workerCount)}`;
  try {
    const clientPort = await join("client");
    const client = createNode({
      id: clientPort.self,
      roles: ["client"],
      network: clientPort,
      chain: await chainFor("client"),
      peer,
      capabilityIntervalMs: 0,
      ...retain,
    });
    nodes.push(client);
    for (let i = 0; i < workerCount; i++) {
      const id = `worker-${pad(i)}`;
      const profile: WorkerProfile = {
        hardware: "cpu",
        stake: 1_000n,
        // The faulty workers bid lowest, so they win work and their faults show.
        priceRatio: id === silentWorker
          ? 0.5
          : id === wrongWorker
          ? 0.51
          : 0.55 + ((i * 7) % workerCount) / (workerCount * 2.5),
        etaMs: 100 + ((i * 13) % 5) * 50,
        capacity: 2,
        fault: id === silentWorker ? "silent" : id === wrongWorker ? "wrong_result" : "none",
      };
      const port = await join(id);
      nodes.push(createNode({
        id: port.self,
        roles: ["worker"],
        network: port,
        chain: await chainFor(port.self),
        worker: profile,
        ...(await modelStore()),
        peer,
        capabilityIntervalMs: 0,
        ...retain,
      }));
    }
    for (let i = 0; i < verifierCount; i++) {
      const id = `verifier-${pad(i)}`;
      const port = await join(id);
      nodes.push(
        createNode({
          id: port.self,
          roles: ["verifier"],
          network: port,
          chain: await chainFor(port.self),
          ...(await modelStore()),
          peer,
          capabilityIntervalMs: 0,
          ...retain,
        }),
      );
    }
    for (const node of nodes) {
      await node.start({ ...(options.signal ? { signal: options.signal } : {}) });
    }
    // Every node is listening now: announce again until the client knows everyone (at once
    // in process; over libp2p once the gossip mesh has formed).
    for (let round = 0; client.knownNodes().length < nodes.length; round++) {
      if (round >= 100) {
        throw new Error(
          `The network did not form: the client knows ${client.knownNodes().length} of ${nodes.length} nodes`,
        );
      }
      for (const node of nodes) await node.announceCapabilities();
      await new Promise((r) => setTimeout(r, round === 0 ? 20 : 300));
    }

    const random = seededRandom(42);
    const finished = new Map<string, string>();
    const byState: Record<string, number> = {};
    let wake: () => void = () => {};
    client.observe((o) => {
      if (o.type !== "job.finished" || o.owner !== client.id) return;
      finished.set(o.jobId, o.state);
      byState[o.state] = (byState[o.state] ?? 0) + 1;
      options.onProgress?.(finished.size, total, byState);
      wake();
    });
    const deadline = Date.now() + (options.timeoutMs ?? 180_000);
    let submitted = 0;
    while (finished.size < total) {
      options.signal?.throwIfAborted();
      if (Date.now() > deadline) {
        throw new Error(
          `Demo timed out: ${finished.size} of ${total} jobs finished within ${
            options.timeoutMs ?? 180_000
          } ms`,
        );
      }
      if (submitted < total && submitted - finished.size < concurrency) {
        // Clients arrive one at a time, not all in the same millisecond.
        const needsGpu = submitted % 17 === 16;
        const timing = { ...TIMING[options.network ?? "in-process"], ...options.timing };
        client.submitJob({
          spec: options.onnx
            ? onnxSpec(random, needsGpu, timing, modelHash, perJob)
            : matmulSpec(random, needsGpu, timing, perJob),
          jobId: `job-${String(submitted + 1).padStart(4, "0")}`,
        });
        submitted++;
        await new Promise((r) => setTimeout(r, options.paceMs ?? 15));
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 250);
      });
    }
    await Promise.all(nodes.map((n) => n.settled()));
    const totals = await client.chainTotals();

    // A finished job may be retired by now: its archive summary has what the summary needs.
    const jobs = client.jobs().map((j) =>
      client.job(j.jobId)?.context ?? client.retiredJob(j.jobId)!
    );
    const durations: Record<Phase, number[]> = {
      bidding: [],
      execution: [],
      verification: [],
      settlement: [],
      total: [],
    };
    for (const job of jobs) {
      const d = phaseDurations(job.path);
      for (const phase of PHASES) if (d[phase] !== undefined) durations[phase].push(d[phase]);
    }
    const latencyMs = Object.fromEntries(
      PHASES.map((
        p,
      ) => [p, {
        p50: quantile(durations[p], 0.5),
        p95: quantile(durations[p], 0.95),
        n: durations[p].length,
      }]),
    ) as DemoSummary["latencyMs"];
    const slashes = { downtime: 0, invalid_compute: 0 };
    for (const job of jobs) {
      for (const s of job.slashes) {
        if (s.reason === "downtime" || s.reason === "invalid_compute") slashes[s.reason]++;
      }
    }
    return {
      jobs: total,
      settlement: policy.settlement === "legacy" ? "legacy" : "chain",
      byState,
      reauctioned: jobs.filter((j) => j.attempt > 1).length,
      disputed: jobs.filter((j) => j.path.some((p) => p.state === "disputed")).length,
      slashes,
      latencyMs,
      totals,
      moneyConserved:
        totals.escrowed === totals.paid + totals.fees + totals.refunded + totals.locked,
      stakeConserved: totals.staked === totals.bonded + totals.slashed + totals.withdrawn,
      wallMs: Math.round(performance.now() - started),
      jobActors: {
        live: nodes.reduce((n, node) => n + node.tree.jobs.size, 0),
        retired: nodes.reduce((n, node) => n + [...node.tree.archive()].length, 0),
      },
      ledgerPath: evm === undefined
        ? ledgerPath
        : `evm in process, JobManager ${evm.addresses.jobManager}`,
      silentWorker,
      wrongWorker,
      ...(options.recordPath === undefined ? {} : { recordPath: options.recordPath }),
    };
  } finally {
    for (const node of nodes) await node.stop();
    recorder?.close();
    network.close();
    ledger.close();
    await evm?.close();
  }
}

/** The summary as the demo prints it. */
export function formatSummary(s: DemoSummary): string {
  const states = ["settled", "refunded", "expired", "cancelled", "failed"];
  const lines = [
    "",
    `Jobs: ${s.jobs} in ${(s.wallMs / 1000).toFixed(1)} s (settlement: ${s.settlement})`,
    ...states.map((st) => `  ${st.padEnd(10)} ${String(s.byState[st] ?? 0).padStart(4)}`),
    `  re-auctioned ${s.reauctioned} (silent worker ${s.silentWorker}), disputed ${s.disputed} (wrong results from ${s.wrongWorker})`,
    `  slashes: downtime ${s.slashes.downtime}, invalid compute ${s.slashes.invalid_compute}`,
    `  job actors at the end: ${s.jobActors.live} live on all nodes, ${s.jobActors.retired} retired to archives`,
    "",
    "Per-phase latency (ms)      p50      p95      n",
    ...PHASES.map((p) => {
      const l = s.latencyMs[p];
      return `  ${p.padEnd(22)} ${fmt(l.p50).padStart(7)}  ${fmt(l.p95).padStart(7)}  ${
        String(l.n).padStart(5)
      }`;
    }),
    "",
    `Money check (u256, from the ${s.ledgerPath.startsWith("evm") ? "contracts" : "ledger"})`,
    `  escrowed ${s.totals.escrowed} = paid ${s.totals.paid} + fees ${s.totals.fees} + refunded ${s.totals.refunded} + locked ${s.totals.locked}: ${
      s.moneyConserved ? "OK" : "MISMATCH"
    }`,
    `  staked ${s.totals.staked} = bonded ${s.totals.bonded} + slashed ${s.totals.slashed} + withdrawn ${s.totals.withdrawn}: ${
      s.stakeConserved ? "OK" : "MISMATCH"
    }`,
    `  ledger: ${s.ledgerPath}`,
    ...(s.recordPath
      ? [`  recording: ${s.recordPath} (replay: deno task replay ${s.recordPath})`]
      : []),
  ];
  return lines.join("\n");
}

function fmt(n: number): string {
  return Number.isNaN(n) ? "-" : String(Math.round(n));
}
