/**
 * The scaling scenario: a market of N workers, V verifiers and C clients on the real node code
 * (`createNode`, as in `simulation.ts`) over the simulated network and chain, without faults,
 * the clients submitting jobs at a fixed rate for a stretch of virtual time, and what it costs
 * measured as it runs: the share settled, messages delivered per job, events each worker node
 * handles per announced job, what a worker keeps of the jobs it declined, and the wall time.
 *
 * What is counted (every per-job figure counts the job phase only: the start-up, where every
 * node connects to every other and announces its capabilities, is reported on its own):
 *
 * - **messages per job**: the simulated network's deliveries (gossip copies accepted by a node's
 *   validator, and direct messages where the network has them) over the jobs announced;
 * - **worker events per job**: inbox deliveries of worker nodes (delivered or rejected by the
 *   tree: what each worker journals), over workers x jobs announced, split by source (network,
 *   chain, timer, effect, ...), and messages received by worker nodes: gossip copies and direct
 *   messages (protocol v2) that reach the node's validator (handled, journaled
 *   or not) per worker per job;
 * - **declines**: the decline records worker nodes made, the inbox deliveries addressed to a job
 *   while the node had no actor for it (the decline, and chain news of the job) per decline, and
 *   the job actors worker nodes hold for jobs they did not bid on (sampled at every progress
 *   line, the most seen);
 * - **wall time** of the whole run, of the start-up, and CPU time (the machine is shared: wall
 *   time counts other processes, CPU time does not).
 *
 * A run may be bounded in wall time (`wallCapMs`): it stops at the first step past the cap and
 * says so (`stopped: "wall-cap"`), with what it measured until then.
 *
 * @module
 */
import process from "node:process";
import { jobContextOf } from "../../actors/tree.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../../machines/policies.ts";
import type { NodeId, Role } from "../../machines/types.ts";
import { TOPICS } from "../../protocols/messages.ts";
import type { GossipMessage, NetworkPort } from "../../protocols/network_port.ts";
import { createNode, type Node, type NodeOptions } from "../kernel/mod.ts";
import { quantile } from "../research/mod.ts";
import { SimChain } from "./chain.ts";
import { faultProfile } from "./faults.ts";
import { ChainChecker, type Violation } from "./invariants.ts";
import { SimNetwork } from "./network.ts";
import { Scheduler } from "./scheduler.ts";
import { matmulSpec, SIM_TIMING, SimExecutor } from "./simulation.ts";
import { Trace } from "./trace.ts";

/** Defaults of {@link ScaleOptions}. */
export const SCALE_DEFAULTS = {
  seed: 1,
  verifiers: 4,
  clients: 1,
  rate: 10,
  durationMs: 30_000,
  maxInFlight: 500,
  progressEveryMs: 5_000,
  retainFinishedMs: 10_000,
  archiveSize: 200,
  escrowMemory: 500,
} as const;

/** When the clients start submitting, virtual ms (every node has started and connected). */
export const SCALE_START_MS = 1_000;
/** Jobs tried per job (the simulation's). */
const MAX_ATTEMPTS = 3;
/**
 * After the last submission, the most virtual time the run waits for the jobs still open: a job
 * that needs every attempt, plus 5 s of slack (the simulation's liveness bound).
 */
export const SCALE_DRAIN_MS = MAX_ATTEMPTS *
    (SIM_TIMING.bidWindowMs + SIM_TIMING.executionMs + SIM_TIMING.verificationMs) + 5_000;

/**
 * A job's deadlines when its execution takes about `workMs` (`ScaleOptions.workMs`): the
 * simulation's, or, for longer work, an execution deadline 1 s and a verification deadline 2 s
 * past the longest execution (a verifier runs the job again).
 */
export function scaleTiming(workMs: number | undefined): {
  bidWindowMs: number;
  executionMs: number;
  verificationMs: number;
} {
  if (workMs === undefined) return { ...SIM_TIMING };
  const longest = Math.ceil(workMs * 1.1);
  return {
    bidWindowMs: SIM_TIMING.bidWindowMs,
    executionMs: Math.max(SIM_TIMING.executionMs, longest + 1_000),
    verificationMs: Math.max(SIM_TIMING.verificationMs, longest + 2_000),
  };
}
/** How many scheduler steps pass between two looks at the wall clock (the cap). */
const WALL_CHECK_EVERY = 256;
/** Wall time between two progress reports when virtual time crawls, ms. */
const WALL_PROGRESS_MS = 30_000;
const WORKER_STAKE = 1_000n;

/** Options of {@link runScale}. */
export interface ScaleOptions {
  /** @default 1 */
  readonly seed?: number;
  readonly workers: number;
  /** @default 4 */
  readonly verifiers?: number;
  /** @default 1 */
  readonly clients?: number;
  /**
   * Workers (of `workers`) whose price floor is above every job's maximum price: they decline
   * every job (`price_below_floor`), as a worker that cannot take part does. @default 0
   */
  readonly decliners?: number;
  /** Jobs submitted per virtual second, over all clients (round robin). @default 10 */
  readonly rate?: number;
  /**
   * How long an execution (and a verifier's re-run) takes, virtual ms (drawn within 10 % of it):
   * longer work keeps more jobs in flight at a given rate (100 jobs/s of 2.5 s work: about 550
   * open). Verifiers then run up to 64 re-runs at once. @default the simulation's 20 to 150 ms
   */
  readonly workMs?: number;
  /** Virtual time over which jobs are submitted, ms. @default 30,000 */
  readonly durationMs?: number;
  /**
   * Most jobs open at once over all clients: a submission due while this many are open is
   * skipped and counted as `throttled`. @default 500
   */
  readonly maxInFlight?: number;
  /** Most wall time the run may take, ms; null for no cap. @default null */
  readonly wallCapMs?: number | null;
  /** Virtual time between two progress reports, ms. @default 5,000 */
  readonly progressEveryMs?: number;
  /**
   * Told the figures so far every `progressEveryMs` of virtual time, and after every 30 s of
   * wall time without a report.
   */
  readonly onProgress?: (progress: ScaleProgress) => void;
  /**
   * How long a node keeps a finished job's actor, virtual ms (the node's `retainFinishedMs`;
   * shorter than the node's default of 60 s so that long runs stay within memory). @default 10,000
   */
  readonly retainFinishedMs?: number;
  /**
   * How many retired jobs a node keeps in its archive (the node's `archiveSize`; smaller than the
   * node's default of 10,000: 1,030 nodes in one process kept about 840,000 over 10 virtual
   * minutes, half a GB the collector marked again and again; at 1,000 each the archives still
   * grew by about 0.7 MB a virtual second all run long). A worker retires about one job a
   * virtual second, so 200 cover minutes of late news. @default 200
   */
  readonly archiveSize?: number;
  /**
   * How many escrows a worker or client node remembers (the node's `escrowMemory`; verifiers keep
   * the node's default, as they follow every escrow). A worker reads about one escrow a virtual
   * second and reads a forgotten one again if it hears the job again; at the node's 10,000 the
   * 1,000 workers' memories grew by about 0.8 MB a virtual second all run long. @default 500
   */
  readonly escrowMemory?: number;
  /**
   * Whether nodes hear peers connect and leave. The simulated network connects every pair of
   * nodes, so each node hears of every other one (a peer actor each): O(N^2) work at start-up, about
   * 4 million scheduler steps for 1000 workers, where a libp2p node keeps a bounded number of
   * connections. Without them a node knows its peers by their messages and capabilities (no
   * adversary runs here, so no peer is scored). @default true
   */
  readonly peerEvents?: boolean;
  /**
   * Whether nodes gossip their capabilities (each node's start publishes them to every other:
   * N^2 deliveries, a million for 1000 workers, each a scheduler step). Under chain settlement
   * nothing in a job's lifecycle reads them (the chain chooses the verifiers; workers subscribe
   * to the shards they can run). @default true
   */
  readonly capabilities?: boolean;
  /** Stops the run at the next step (recorded as `stopped: "aborted"`). */
  readonly signal?: AbortSignal;
}

/** The figures so far, as a progress line shows them. */
export interface ScaleProgress {
  readonly virtualMs: number;
  readonly wallMs: number;
  readonly steps: number;
  readonly submitted: number;
  readonly settled: number;
  readonly finished: number;
  readonly inFlight: number;
  readonly delivered: number;
  /** Job actors worker nodes hold for jobs they did not bid on, now. */
  readonly declinedActors: number;
  /** Live job actors over all worker nodes, now. */
  readonly workerJobActors: number;
  readonly heapMb: number;
}

/** Why a run ended. */
export type ScaleStop = "done" | "drained" | "wall-cap" | "aborted" | "steps";

/** What one scaling run measured (see the module doc for what each figure counts). */
export interface ScaleResult {
  readonly seed: number;
  readonly workers: number;
  readonly verifiers: number;
  readonly clients: number;
  readonly decliners: number;
  readonly rate: number;
  readonly durationMs: number;
  readonly maxInFlight: number;
  /** How long an execution takes, virtual ms (`ScaleOptions.workMs`); null: 20 to 150 ms. */
  readonly workMs: number | null;
  /** `done`: every job final; `drained`: the drain time ran out with jobs open. */
  readonly stopped: ScaleStop;
  readonly traceHash: string;
  readonly virtualMs: number;
  readonly wallMs: number;
  /** Wall time until the first job (nodes started, connected, capabilities heard). */
  readonly setupWallMs: number;
  /** CPU time until the first job. */
  readonly setupCpuMs: number;
  /** Whether nodes heard peers connect ({@link ScaleOptions.peerEvents}). */
  readonly peerEvents: boolean;
  /** Whether nodes gossiped their capabilities ({@link ScaleOptions.capabilities}). */
  readonly capabilities: boolean;
  readonly cpuMs: number;
  readonly steps: number;
  /** The 1-minute load average when the run started and when it ended. */
  readonly loadAverage: { readonly start: number; readonly end: number };
  readonly heapPeakMb: number;
  readonly jobs: {
    readonly submitted: number;
    readonly throttled: number;
    readonly settled: number;
    /** Settled over submitted, percent. */
    readonly settledPct: number;
    /** Final states on the client, `open` for the unfinished. */
    readonly byState: Readonly<Record<string, number>>;
    /** Most jobs open at once. */
    readonly peakInFlight: number;
    /** Submission to settlement on the client, virtual ms. */
    readonly settleMs: { readonly p50: number; readonly p99: number };
  };
  /** The network's counters over the job phase, and deliveries per job announced. */
  readonly messages: Readonly<Record<string, number>> & { readonly deliveredPerJob: number };
  /** The same counters during the start-up. */
  readonly setupMessages: Readonly<Record<string, number>>;
  readonly chain: { readonly transactions: number; readonly failed: number };
  readonly workerEvents: {
    /** Inbox deliveries of worker nodes in the job phase. */
    readonly total: number;
    /** `total` over workers x jobs announced. */
    readonly perWorkerPerJob: number;
    /** The same, by source (`network`, `chain`, `timer`, `effect`, `system`, ...). */
    readonly perWorkerPerJobBySource: Readonly<Record<string, number>>;
    /** Of them, those addressed to a job actor, per worker per job. */
    readonly jobEventsPerWorkerPerJob: number;
    /**
     * Messages worker nodes received and validated (gossip copies and direct messages; handled,
     * journaled or not), per worker per job.
     */
    readonly gossipPerWorkerPerJob: number;
    /** Inbox deliveries of a worker node during the start-up (peers, capabilities). */
    readonly setupPerWorker: number;
  };
  readonly declines: {
    /** Decline records made by worker nodes. */
    readonly records: number;
    /** Share of (worker, job) pairs declined, percent. */
    readonly declinedPct: number;
    /** Inbox deliveries addressed to a job while the worker had no actor for it, per decline. */
    readonly deliveriesPerDecline: number;
    /** Job actors held by worker nodes for jobs they did not bid on (most seen at a sample). */
    readonly actorsHeld: number;
  };
  /** Live job actors per worker node (the most seen at a sample, over all workers). */
  readonly workerJobActorsPeak: number;
  /** Money conservation and the chain's other invariants, checked at the end. */
  readonly violations: readonly Violation[];
}

/** Per-node counters of a worker. */
interface WorkerCounters {
  gossip: number;
  noActorEvents: number;
  declines: number;
}

const round = (v: number, digits = 2) => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

function checkCount(what: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new RangeError(`Invalid ${what} ${n}: must be an integer of at least ${min}`);
  }
}

/** The network's numeric counters, copied. */
function counters(net: SimNetwork): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(net.stats)) if (typeof v === "number") out[k] = v;
  return out;
}

function minus(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a)) out[k] = v - (b[k] ?? 0);
  return out;
}

/**
 * A port that counts the messages (gossip or direct) its node validates, and without
 * `capabilities` publishes no capability announcement; everything else is the simulated
 * network's port.
 */
function scalePort(
  port: NetworkPort,
  counter: WorkerCounters | undefined,
  capabilities: boolean,
): NetworkPort {
  return new Proxy(port, {
    get(target, prop) {
      if (prop === "publish" && !capabilities) {
        return (topic: Parameters<NetworkPort["publish"]>[0], ...rest: unknown[]) =>
          topic === TOPICS.capabilities
            ? Promise.resolve()
            : (target.publish as (...a: unknown[]) => Promise<void>).call(target, topic, ...rest);
      }
      if (prop === "subscribe" && counter !== undefined) {
        return (
          topic: Parameters<NetworkPort["subscribe"]>[0],
          validate: (m: GossipMessage) => ReturnType<Parameters<NetworkPort["subscribe"]>[1]>,
          deliver: (m: GossipMessage) => void,
        ) =>
          target.subscribe(topic, (m) => {
            counter.gossip++;
            return validate(m);
          }, deliver);
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Runs the scaling scenario once. */
export async function runScale(options: ScaleOptions): Promise<ScaleResult> {
  const seed = options.seed ?? SCALE_DEFAULTS.seed;
  const workerCount = options.workers;
  const verifierCount = options.verifiers ?? SCALE_DEFAULTS.verifiers;
  const workMs = options.workMs;
  const timing = scaleTiming(workMs);
  const clientCount = options.clients ?? SCALE_DEFAULTS.clients;
  const declinerCount = options.decliners ?? 0;
  const rate = options.rate ?? SCALE_DEFAULTS.rate;
  const durationMs = options.durationMs ?? SCALE_DEFAULTS.durationMs;
  const maxInFlight = options.maxInFlight ?? SCALE_DEFAULTS.maxInFlight;
  const progressEveryMs = options.progressEveryMs ?? SCALE_DEFAULTS.progressEveryMs;
  const wallCapMs = options.wallCapMs ?? null;
  const peerEvents = options.peerEvents ?? true;
  const capabilities = options.capabilities ?? true;
  checkCount("seed", seed, 0);
  checkCount("workers", workerCount, 1);
  checkCount("verifiers", verifierCount, 1);
  checkCount("clients", clientCount, 1);
  checkCount("decliners", declinerCount, 0);
  if (declinerCount > workerCount) {
    throw new RangeError(
      `Invalid decliners ${declinerCount}: at most the ${workerCount} workers`,
    );
  }
  checkCount("duration", durationMs, 1);
  checkCount("in-flight", maxInFlight, 1);
  if (workMs !== undefined) checkCount("work-ms", workMs, 1);
  checkCount("progress interval", progressEveryMs, 1);
  if (!(Number.isFinite(rate) && rate > 0 && rate <= 10_000)) {
    throw new RangeError(`Invalid rate ${rate}: must be a number of jobs per second in (0, 10000]`);
  }
  if (wallCapMs !== null && !(Number.isFinite(wallCapMs) && wallCapMs > 0)) {
    throw new RangeError(`Invalid wall-time cap ${wallCapMs}: must be a positive number of ms`);
  }

  const started = performance.now();
  const cpuStart = process.cpuUsage();
  const loadStart = Deno.loadavg()[0] ?? 0;
  const sched = new Scheduler(seed);
  const trace = new Trace({ keepTail: 0 });
  const world = sched.rng.fork();
  const profile = faultProfile("none");
  const net = new SimNetwork(sched, trace, { ...profile });
  net.peerEvents = peerEvents;
  // No node restarts in a scale run: the events every node has read are let go.
  const chain = new SimChain(sched, trace, profile.chain, { pruneEvents: true });
  const policy: JobPolicy = { ...DEFAULT_POLICY, settlement: "chain" };
  const peer = {
    heartbeatMs: 600_000,
    maxMissedHeartbeats: 3,
    initialScore: 100,
    banThreshold: 0,
    banMs: 60_000,
  };

  const clients: Node[] = [];
  const workers: { node: Node; counters: WorkerCounters }[] = [];
  const nodes: Node[] = [];
  const honestWorkers = new Set<NodeId>();
  const honestVerifiers = new Set<NodeId>();
  const honestClients = new Set<NodeId>();
  const checker = new ChainChecker(
    { honestWorkers, honestVerifiers, honestClients, wrongWorkers: new Set() },
    () => sched.now(),
  );
  const violations: Violation[] = [];
  chain.onEvent = (event) => {
    const v = checker.event(event);
    if (v !== null && violations.length < 10) {
      violations.push({ ...v, step: sched.steps, at: sched.now() });
    }
  };

  // The job phase's counters, from the first submission on.
  let jobPhase = false;
  const bySource: Record<string, number> = {};
  let workerEvents = 0;
  let workerJobEvents = 0;
  let setupWorkerEvents = 0;

  const add = (
    id: NodeId,
    roles: Role[],
    extra: Partial<NodeOptions>,
    counter?: WorkerCounters,
  ) => {
    const joined = net.join(id);
    const node = createNode({
      id,
      roles,
      policy,
      clock: sched,
      executor: new SimExecutor(
        sched,
        world.fork(),
        workMs === undefined ? undefined : [Math.floor(workMs * 0.9), Math.ceil(workMs * 1.1)],
      ),
      peer,
      capabilityIntervalMs: 0,
      retainFinishedMs: options.retainFinishedMs ?? SCALE_DEFAULTS.retainFinishedMs,
      archiveSize: options.archiveSize ?? SCALE_DEFAULTS.archiveSize,
      escrowWaitMs: 2_000,
      ...(roles.includes("verifier")
        ? {}
        : { escrowMemory: options.escrowMemory ?? SCALE_DEFAULTS.escrowMemory }),
      network: scalePort(joined, counter, capabilities),
      chain: chain.port(id),
      ...extra,
    });
    nodes.push(node);
    return node;
  };
  const pad = (i: number, w: number) => String(i + 1).padStart(w, "0");
  for (let i = 0; i < clientCount; i++) {
    const id = `client-${pad(i, 2)}`;
    honestClients.add(id);
    clients.push(add(id, ["client"], {}));
  }
  for (let i = 0; i < workerCount; i++) {
    const id = `worker-${pad(i, 4)}`;
    honestWorkers.add(id);
    const counter: WorkerCounters = { gossip: 0, noActorEvents: 0, declines: 0 };
    const node = add(id, ["worker"], {
      worker: {
        hardware: "cpu",
        stake: WORKER_STAKE,
        priceRatio: 0.55 + world.int(0, 40) / 100,
        etaMs: workMs ?? 100,
        capacity: 4,
        // Each open bid holds a slot: a worker never wins more jobs than it can run at once
        // (with more open bids than free slots, long work could miss its deadline).
        reserveSlots: true,
        fault: "none",
        // The last `decliners` workers ask more than any simulated job pays.
        ...(i >= workerCount - declinerCount ? { minPrice: 1_000_000n } : {}),
      },
    }, counter);
    workers.push({ node, counters: counter });
    node.observe((ob) => {
      if (ob.type !== "delivered" && ob.type !== "rejected") return;
      const envelope = ob.envelope;
      if (!jobPhase) {
        setupWorkerEvents++;
        return;
      }
      workerEvents++;
      bySource[envelope.source] = (bySource[envelope.source] ?? 0) + 1;
      if (!envelope.target.startsWith("job:")) return;
      workerJobEvents++;
      if (ob.type === "delivered" && ob.state === "declined") {
        counter.declines++;
        counter.noActorEvents++;
      } else if (
        node.tree.get(envelope.target) === undefined &&
        node.tree.declined(envelope.target.slice(4)) !== undefined
      ) counter.noActorEvents++;
    });
  }
  for (let i = 0; i < verifierCount; i++) {
    const id = `verifier-${pad(i, 2)}`;
    honestVerifiers.add(id);
    add(
      id,
      ["verifier"],
      workMs === undefined ? {} : { executions: { concurrency: 64, maxQueued: 256 } },
    );
  }
  const errors: string[] = [];
  for (const node of nodes) {
    sched.at(0, () => {
      node.start().catch((e: Error) => errors.push(`${node.id}: start failed: ${e.message}`));
    }, "start");
  }

  // The jobs: one every 1000 / rate virtual ms, round robin over the clients.
  const total = Math.max(1, Math.floor(durationMs * rate / 1_000));
  const submittedAt = new Map<string, number>();
  const settleTimes: number[] = [];
  const byState: Record<string, number> = {};
  let submitted = 0;
  let throttled = 0;
  let finished = 0;
  let settled = 0;
  let peakInFlight = 0;
  for (const client of clients) {
    client.observe((ob) => {
      if (ob.type !== "job.finished" || ob.owner !== client.id) return;
      const at = submittedAt.get(ob.jobId);
      if (at === undefined) return;
      submittedAt.delete(ob.jobId);
      finished++;
      byState[ob.state] = (byState[ob.state] ?? 0) + 1;
      if (ob.state === "settled") {
        settled++;
        settleTimes.push(sched.now() - at);
      }
    });
  }
  let setupMessages: Record<string, number> = {};
  let setupWallMs = 0;
  let setupCpuMs = 0;
  let setupGossip = 0;
  const jobRng = world.fork();
  let j = 0;
  const submitNext = () => {
    if (j === 0) {
      jobPhase = true;
      setupMessages = counters(net);
      setupWallMs = Math.round(performance.now() - started);
      const used = process.cpuUsage(cpuStart);
      setupCpuMs = Math.round((used.user + used.system) / 1_000);
      setupGossip = workers.reduce((n, w) => n + w.counters.gossip, 0);
    }
    const index = j++;
    if (j < total) sched.at(SCALE_START_MS + (j * 1_000) / rate, submitNext, "submit");
    if (submittedAt.size >= maxInFlight) {
      throttled++;
      return;
    }
    const client = clients[index % clients.length]!;
    const jobId = `s${seed}-job-${String(index + 1).padStart(6, "0")}`;
    try {
      const spec = { ...matmulSpec(jobRng, Math.min(4, verifierCount)), ...timing };
      client.submitJob({ spec, jobId });
      submittedAt.set(jobId, sched.now());
      submitted++;
      peakInFlight = Math.max(peakInFlight, submittedAt.size);
    } catch (e) {
      errors.push(`${client.id}: submit ${jobId} failed: ${(e as Error).message}`);
    }
  };
  sched.at(SCALE_START_MS, submitNext, "submit");
  const lastSubmit = SCALE_START_MS + ((total - 1) * 1_000) / rate;
  const until = lastSubmit + MAX_ATTEMPTS *
      (timing.bidWindowMs + timing.executionMs + timing.verificationMs) +
    5_000;

  // Samples and progress.
  let declinedActorsPeak = 0;
  let workerJobActorsPeak = 0;
  let heapPeak = 0;
  const sample = () => {
    let declinedActors = 0;
    let jobActors = 0;
    for (const { node } of workers) {
      let mine = 0;
      for (const cell of node.tree.jobs.cells()) {
        mine++;
        const c = jobContextOf(cell);
        if (c.declined !== null && c.owner !== node.id) declinedActors++;
      }
      jobActors += mine;
      workerJobActorsPeak = Math.max(workerJobActorsPeak, mine);
    }
    declinedActorsPeak = Math.max(declinedActorsPeak, declinedActors);
    const heapMb = Math.round(Deno.memoryUsage().heapUsed / 1e6);
    heapPeak = Math.max(heapPeak, heapMb);
    return { declinedActors, jobActors, heapMb };
  };
  let lastReport = performance.now();
  const report = () => {
    lastReport = performance.now();
    const s = sample();
    options.onProgress?.({
      virtualMs: sched.now(),
      wallMs: Math.round(performance.now() - started),
      steps: sched.steps,
      submitted,
      settled,
      finished,
      inFlight: submittedAt.size,
      delivered: net.stats.delivered,
      declinedActors: s.declinedActors,
      workerJobActors: s.jobActors,
      heapMb: s.heapMb,
    });
  };
  const progress = () => {
    report();
    sched.after(progressEveryMs, progress, "progress");
  };
  sched.at(progressEveryMs, progress, "progress");

  let stopped: ScaleStop = "drained";
  const outcome = await sched.run({
    until,
    maxSteps: Number.MAX_SAFE_INTEGER,
    afterStep: (_task, step) => {
      if (errors.length > 0) return true;
      if (options.signal?.aborted) {
        stopped = "aborted";
        return true;
      }
      if (
        wallCapMs !== null && step % WALL_CHECK_EVERY === 0 &&
        performance.now() - started > wallCapMs
      ) {
        stopped = "wall-cap";
        return true;
      }
      // A line every 30 s of wall time too, when virtual time crawls (a large start-up).
      if (step % WALL_CHECK_EVERY === 0 && performance.now() - lastReport > WALL_PROGRESS_MS) {
        report();
      }
      if (j >= total && submittedAt.size === 0) {
        stopped = "done";
        return true;
      }
      return false;
    },
  });
  if (outcome === "steps") stopped = "steps";
  if (errors.length > 0) throw new Error(`The scaling run failed: ${errors[0]}`);
  sample();
  const virtualMs = sched.now();
  const wallMs = Math.round(performance.now() - started);
  const cpu = process.cpuUsage(cpuStart);
  if (!jobPhase) {
    // Stopped in the start-up: all of it was start-up.
    setupWallMs = wallMs;
    setupCpuMs = Math.round((cpu.user + cpu.system) / 1_000);
    setupMessages = counters(net);
    setupGossip = workers.reduce((n, w) => n + w.counters.gossip, 0);
  }
  const totals = await chain.port("scale-observer").totals();
  const v = checker.totals(totals);
  if (v !== null) violations.push({ ...v, step: sched.steps, at: virtualMs });
  const traceHash = trace.digest();
  // The nodes are dropped, not stopped: they hold nothing outside this run (the scheduler is
  // their only clock, and it stops here), and a stop would cost a disconnection event on every
  // other node for each of them.
  chain.close();

  const open = submittedAt.size;
  if (open > 0) byState["open"] = open;
  const phase = minus(counters(net), setupMessages);
  const jobs = Math.max(1, submitted);
  const perWorkerJob = (n: number) => round(n / workerCount / jobs, 3);
  const sum = (f: (c: WorkerCounters) => number) => workers.reduce((n, w) => n + f(w.counters), 0);
  const declines = sum((c) => c.declines);
  return {
    seed,
    workers: workerCount,
    verifiers: verifierCount,
    clients: clientCount,
    decliners: declinerCount,
    rate,
    durationMs,
    maxInFlight,
    workMs: workMs ?? null,
    stopped,
    traceHash,
    virtualMs,
    wallMs,
    setupWallMs,
    setupCpuMs,
    peerEvents,
    capabilities,
    cpuMs: Math.round((cpu.user + cpu.system) / 1_000),
    steps: sched.steps,
    loadAverage: { start: round(loadStart), end: round(Deno.loadavg()[0] ?? 0) },
    heapPeakMb: heapPeak,
    jobs: {
      submitted,
      throttled,
      settled,
      settledPct: submitted === 0 ? 0 : round((100 * settled) / submitted),
      byState,
      peakInFlight,
      settleMs: {
        p50: settleTimes.length ? quantile(settleTimes, 0.5) : NaN,
        p99: settleTimes.length ? quantile(settleTimes, 0.99) : NaN,
      },
    },
    messages: { ...phase, deliveredPerJob: round((phase["delivered"] ?? 0) / jobs, 1) },
    setupMessages,
    chain: { transactions: chain.stats.transactions, failed: chain.stats.failed },
    workerEvents: {
      total: workerEvents,
      perWorkerPerJob: perWorkerJob(workerEvents),
      perWorkerPerJobBySource: Object.fromEntries(
        Object.entries(bySource).sort().map(([k, n]) => [k, perWorkerJob(n)]),
      ),
      jobEventsPerWorkerPerJob: perWorkerJob(workerJobEvents),
      gossipPerWorkerPerJob: perWorkerJob(sum((c) => c.gossip) - setupGossip),
      setupPerWorker: round(setupWorkerEvents / workerCount, 1),
    },
    declines: {
      records: declines,
      declinedPct: round((100 * declines) / workerCount / jobs),
      deliveriesPerDecline: declines === 0 ? 0 : round(sum((c) => c.noActorEvents) / declines, 2),
      actorsHeld: declinedActorsPeak,
    },
    workerJobActorsPeak,
    violations,
  };
}

const thousands = (n: number) => Math.round(n).toLocaleString("en-US");

/** One progress line of a run. */
export function formatScaleProgress(p: ScaleProgress): string {
  return `[virtual ${(p.virtualMs / 1_000).toFixed(1)} s, wall ${
    (p.wallMs / 1_000).toFixed(1)
  } s] ${p.submitted} submitted, ${p.settled} settled, ${p.inFlight} in flight, ${
    thousands(p.delivered)
  } messages delivered, ${
    thousands(p.steps)
  } steps, ${p.workerJobActors} job actors on workers (${p.declinedActors} for declined jobs), heap ${p.heapMb} MB`;
}

/** The figures of a run, one per line. */
export function formatScaleResult(r: ScaleResult): string {
  const states = Object.entries(r.jobs.byState).map(([k, n]) => `${k} ${n}`).join(", ");
  const sources = Object.entries(r.workerEvents.perWorkerPerJobBySource)
    .map(([k, n]) => `${k} ${n}`).join(", ");
  return [
    `scale: ${r.workers} workers, ${r.verifiers} verifiers, ${r.clients} clients, ${r.rate} jobs/s for ${
      r.durationMs / 1_000
    } virtual s (at most ${r.maxInFlight} in flight${
      r.workMs === null ? "" : `, ${r.workMs} ms of work a job`
    })${
      (r.peerEvents ? "" : ", no peer events") +
      (r.capabilities === false ? ", no capabilities" : "")
    }, seed ${r.seed}: ${r.stopped}`,
    `  settled          ${r.jobs.settledPct} % (${r.jobs.settled} of ${r.jobs.submitted} submitted; ${states}; ${r.jobs.throttled} throttled; at most ${r.jobs.peakInFlight} in flight; settled in p50 ${r.jobs.settleMs.p50} / p99 ${r.jobs.settleMs.p99} virtual ms)`,
    `  messages         ${r.messages.deliveredPerJob} delivered per job (${
      thousands(r.messages["delivered"] ?? 0)
    } in the job phase; ${thousands(r.setupMessages["delivered"] ?? 0)} at start-up)`,
    `  worker events    ${r.workerEvents.perWorkerPerJob} per worker per announced job (${sources}); ${r.workerEvents.gossipPerWorkerPerJob} messages received; ${r.workerEvents.setupPerWorker} per worker at start-up`,
    `  declines         ${r.declines.records} (${r.declines.declinedPct} % of worker x job), ${r.declines.deliveriesPerDecline} deliveries per declined job, ${r.declines.actorsHeld} actors held for declined jobs; at most ${r.workerJobActorsPeak} job actors on one worker`,
    `  time             wall ${(r.wallMs / 1_000).toFixed(1)} s (start-up ${
      (r.setupWallMs / 1_000).toFixed(1)
    } s), CPU ${(r.cpuMs / 1_000).toFixed(1)} s (start-up ${
      (r.setupCpuMs / 1_000).toFixed(1)
    } s), virtual ${(r.virtualMs / 1_000).toFixed(1)} s, ${
      thousands(r.steps)
    } steps, heap at most ${r.heapPeakMb} MB, load average ${r.loadAverage.start} -> ${r.loadAverage.end}`,
    `  chain            ${r.chain.transactions} transactions (${r.chain.failed} failed); ${
      r.violations.length === 0
        ? "invariants held"
        : `${r.violations.length} violations, first: ${r.violations[0]!.invariant}: ${
          r.violations[0]!.detail
        }`
    }; trace ${r.traceHash.slice(0, 16)}`,
  ].join("\n");
}
