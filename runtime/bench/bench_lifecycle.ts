/**
 * Lifecycle throughput in one process: one client node's engine under market load, beside the
 * same job machine driven without the engine.
 *
 * - **engine**: a real {@link Node} (inbox, supervisor tree, ports) owning `concurrency` jobs at
 *   a time, on an in-memory {@link LocalLedger}. Its network port is a {@link MarketPort}: the
 *   market's `workers` worker identities and 4 verifiers live at the boundary. Each announcement
 *   the client publishes is answered by `bidsPerJob` signed-off bids (wire messages, decoded and
 *   validated like libp2p gossip); each assignment by the winner's result on the ledger and in
 *   gossip; each job reaching `verifying` by 3 valid attestations (a BFT quorum of 4). Every
 *   worker identity is also a peer actor of the client. Jobs settled per second, wall clock,
 *   and per CPU second of the process (steadier on a shared machine). What the market's peers
 *   do is kept out of the timed work where it can be: the bids are encoded before the clock
 *   starts, and the market reads the client's announcements and assignments with a plain
 *   `JSON.parse` (decoding is the receiving peer's work; the client's own decoding of what it
 *   hears is timed, as is the ledger, which the client's transactions drive).
 * - **tree**: the same events delivered straight to an {@link ActorTree} (no inbox, no journal,
 *   no ports, no ledger, no wire codec), virtual time.
 * - **raw**: the same events sent to plain XState actors of `jobMachine` (`createActor`), no
 *   tree, virtual time.
 *
 * @module
 */
import process from "node:process";
import { fileURLToPath } from "node:url";
import { createActor } from "xstate";
import { ActorTree } from "../../actors/tree.ts";
import { LocalLedger } from "../../chain/local_ledger.ts";
import type { ChainPort } from "../../chain/port.ts";
import { RemoteChain } from "../../chain/remote.ts";
import { type JobInput, jobMachine } from "../../machines/job_machine.ts";
import { DEFAULT_PEER_CONFIG } from "../../machines/peer_machine.ts";
import { DEFAULT_POLICY } from "../../machines/policies.ts";
import type { BidOffer, EffectRequest, JobSpec, NodeId } from "../../machines/types.ts";
import {
  encodeMessage,
  type OutgoingOf,
  type Topic,
  topicFamily,
  TOPICS,
} from "../../protocols/messages.ts";
import type {
  GossipMessage,
  NetworkPort,
  PeerEvent,
  ValidationResult,
} from "../../protocols/network_port.ts";
import {
  DEFAULT_SAMPLE_BIDDERS,
  jobSamplePrefix,
  sampleBitsFor,
  samplePrefix,
} from "../../protocols/sampling.ts";
import { commitmentOf } from "../compute/mod.ts";
import { describeNode, SqliteJournal } from "../durability/mod.ts";
import { createNode, type Node } from "../kernel/mod.ts";
import {
  parseSchedstat,
  type ThreadShare,
  threadShare,
  type ThreadTime,
  threadTime,
} from "./thread_time.ts";

const VERIFIERS = ["verifier-1", "verifier-2", "verifier-3", "verifier-4"];
const INPUT = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
const OUTPUT = [[19, 22], [43, 50]];
const COMMITMENT = commitmentOf(OUTPUT);

/**
 * The job every lifecycle benchmark runs: matmul, 50 ms bid window, 4 verifiers. Its execution
 * and verification deadlines (60 s) never fire in the benchmark: the engine runs on the wall
 * clock, and on a loaded machine 500 jobs in flight can take more than 5 s each.
 */
export function lifecycleSpec(): JobSpec {
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(INPUT),
    input: INPUT,
    requirements: { hardware: "cpu", minStake: 10n },
    maxPrice: 1_000n,
    bidWindowMs: 50,
    executionMs: 60_000,
    verificationMs: 60_000,
    maxAttempts: 1,
    verifierCount: 4,
  };
}

/**
 * The heartbeat interval of the client's peers in the engine benchmark: 60 s, not the host's
 * default 5 s, which with 1000 peers is 200 events a second whatever the job rate (a constant load
 * apart from the jobs measured; at 2,000 jobs/s it would be 0.5 % of the events, at 100 jobs/s
 * 10 %).
 */
export const PEER_HEARTBEAT_MS = 60_000;

/** The name of worker `i` of the simulated market. */
export function workerName(i: number): string {
  return `worker-${String(i).padStart(4, "0")}`;
}

/**
 * Who bids on job `i` of the market (its first attempt): `bidsPerJob` workers of the job's sample
 * (protocol v2, `protocols/sampling.ts`: an owner refuses a bid from outside it), taken in turn
 * within the sample so that every worker bids; the whole market when it is too small to sample.
 * `bits` is how deep the client samples a market of `workers` (the node's default: aimed at
 * {@link DEFAULT_SAMPLE_BIDDERS}, by the workers the chain shows staked).
 */
export function marketBidders(
  o: { readonly workers: number; readonly bidsPerJob: number },
): { readonly bits: number; readonly of: (i: number) => string[] } {
  const bits = sampleBitsFor(o.workers, DEFAULT_SAMPLE_BIDDERS);
  const samples = new Map<string, { workers: string[]; next: number }>();
  for (let w = 0; w < o.workers; w++) {
    const prefix = samplePrefix(workerName(w), bits);
    let sample = samples.get(prefix);
    if (sample === undefined) samples.set(prefix, sample = { workers: [], next: 0 });
    sample.workers.push(workerName(w));
  }
  const of = (i: number) => {
    const sample = samples.get(jobSamplePrefix(`job-${i}`, 1, bits));
    if (sample === undefined) return [];
    const n = Math.min(o.bidsPerJob, sample.workers.length);
    const bidders: string[] = [];
    for (let b = 0; b < n; b++) {
      bidders.push(sample.workers[sample.next++ % sample.workers.length]!);
    }
    return bidders;
  };
  return { bits, of };
}

function bidOf(jobId: string, attempt: number, worker: string, i: number): BidOffer {
  return {
    bidId: `${jobId}.${attempt}.${worker}`,
    jobId,
    worker,
    price: 500n + BigInt((i * 37) % 400),
    etaMs: 100,
    stake: 100n,
    reputation: 500,
    hardware: "cpu",
  };
}

interface Sub {
  readonly validate: (message: GossipMessage) => ValidationResult;
  readonly deliver: (message: GossipMessage) => void;
}

/**
 * The client's network port in the market simulation: what the client publishes goes to
 * `onPublish` (the simulated market), and the market's messages come back through
 * {@link MarketPort.inject}: encoded, then validated and delivered in a microtask, as the
 * in-process network does.
 */
export class MarketPort implements NetworkPort {
  readonly self: NodeId;
  readonly #subs = new Map<Topic, Set<Sub>>();
  readonly #listeners = new Set<(event: PeerEvent) => void>();
  readonly #peers: NodeId[] = [];
  #running = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  /** What the client publishes (`to` undefined) or sends to peer `to`. */
  onPublish: (topic: Topic, data: Uint8Array, to?: NodeId) => void = () => {};

  constructor(self: NodeId) {
    this.self = self;
  }

  start(): Promise<void> {
    this.#running = true;
    // Every connected peer answers a heartbeat each PEER_HEARTBEAT_MS, as the libp2p host's ping
    // does: without them every worker would be lost after three missed, and its bids withdrawn.
    this.#heartbeat = setInterval(() => {
      for (const peer of this.#peers) {
        for (const listener of this.#listeners) listener({ type: "heartbeat", peer, rttMs: 1 });
      }
    }, PEER_HEARTBEAT_MS);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.#running = false;
    clearInterval(this.#heartbeat);
    return Promise.resolve();
  }

  publish(topic: Topic, data: Uint8Array): Promise<void> {
    if (this.#running) this.onPublish(topic, data);
    return Promise.resolve();
  }

  send(peer: NodeId, topic: Topic, data: Uint8Array): Promise<void> {
    if (this.#running) this.onPublish(topic, data, peer);
    return Promise.resolve();
  }

  subscribe(
    topic: Topic,
    validate: Sub["validate"],
    deliver: Sub["deliver"],
  ): () => void {
    let set = this.#subs.get(topic);
    if (set === undefined) this.#subs.set(topic, set = new Set());
    const sub = { validate, deliver };
    set.add(sub);
    return () => set.delete(sub);
  }

  handle(): void {}

  request(peer: NodeId): Promise<Uint8Array> {
    return Promise.reject(new Error(`Cannot reach peer "${peer}": the market port has no streams`));
  }

  peers(): NodeId[] {
    return [...this.#peers];
  }

  onPeerEvent(listener: (event: PeerEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** A peer connects and identifies itself. */
  connect(peer: NodeId): void {
    this.#peers.push(peer);
    for (const listener of this.#listeners) {
      listener({ type: "connected", peer });
      listener({ type: "identified", peer, protocols: [] });
    }
  }

  /** A message from `from` on `topic`, delivered in a microtask like gossip. */
  inject<T extends Topic>(topic: T, from: NodeId, message: OutgoingOf<T>): void {
    this.injectBytes(topic, from, encodeMessage(topic, message));
  }

  /** An encoded message from `from` on `topic` (see {@link MarketPort.inject}). */
  injectBytes(topic: Topic, from: NodeId, data: Uint8Array): void {
    queueMicrotask(() => {
      if (!this.#running) return;
      for (const sub of this.#subs.get(topic) ?? []) {
        if (sub.validate({ topic, from, data }) === "accept") sub.deliver({ topic, from, data });
      }
    });
  }
}

/** Options of the lifecycle benchmarks. */
export interface LifecycleOptions {
  /** Jobs run in all. @default 2000 */
  readonly jobs?: number;
  /** Jobs in flight at once. @default 500 */
  readonly concurrency?: number;
  /** Worker identities in the market. @default 1000 */
  readonly workers?: number;
  /** Bids each job receives (from workers taken in turn). @default 8 */
  readonly bidsPerJob?: number;
  /**
   * The engine only: the node journals to a SQLite file in a temporary directory, as
   * `deno task node` does to its data directory (appends, outcomes with state hashes, snapshot
   * checkpoints). @default false
   */
  readonly journal?: boolean;
  /**
   * The engine only: the ledger runs in a child process (`runtime/bench/chain/main.ts`) and the
   * client and the market reach it through `chain/remote.ts`, as a node reaches a chain node:
   * the client's process then pays for encoding its calls and decoding the answers and the
   * events, not for executing the transactions. Off, the ledger runs in the client's process.
   * @default false
   */
  readonly chainProcess?: boolean;
  /**
   * With `chainProcess`: write a V8 CPU profile of the chain's process to this directory (its
   * `--cpu-prof`), for `deno task bench --summarize`.
   */
  readonly chainCpuProfDir?: string;
  /**
   * The engine only: jobs run first, on the same node and chain process and with the same jobs
   * in flight, before the measured `jobs` (whose measurement starts when the last of these
   * finishes, with the slots still full): a steady state, the code compiled by both processes'
   * JIT and their heaps grown, as a node that has run a while. @default 0
   */
  readonly warmUp?: number;
  /**
   * The engine only: time each job's steps (see {@link LifecycleResult.stages}); costs the
   * client an observation per delivery. @default false
   */
  readonly stages?: boolean;
  /** The engine only: the node's `retainFinishedMs` (its default otherwise). */
  readonly retainFinishedMs?: number | null;
  /**
   * The raw and tree baselines: each job's bids and its attestations are sent as one event each
   * (`bids.received`, `job.attestations.received`), as the engine's ingress batches what arrives
   * together (`runtime/kernel/batcher.ts`); false sends them one by one (before job machine
   * version 6). @default true
   */
  readonly batch?: boolean;
  readonly onProgress?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** What one lifecycle run measured. */
export interface LifecycleResult {
  readonly jobs: number;
  readonly settled: number;
  readonly concurrency: number;
  readonly workers: number;
  readonly bidsPerJob: number;
  readonly wallMs: number;
  readonly jobsPerSecond: number;
  /** Actor events delivered (engine: by the inbox; tree and raw: sent). */
  readonly events: number;
  readonly eventsPerSecond: number;
  /** CPU time the process used during the run (every thread: the collector's too), ms. */
  readonly cpuMs: number;
  /** Jobs settled per CPU second: less swayed than wall time by other load on the machine. */
  readonly jobsPerCpuSecond: number;
  /**
   * Jobs settled per second (wall) while `concurrency` were in flight throughout: between the
   * `concurrency`-th and the `(jobs - concurrency)`-th settlement, so the ramp up and the drain
   * are left out. Null when `jobs` is not more than twice `concurrency`.
   */
  readonly steadyJobsPerSecond: number | null;
  /** The engine with `journal`: entries its journal holds at the end (setup included). */
  readonly journaled?: number;
  /**
   * The engine: the part of `cpuMs` spent in the simulated market's own work, measured around it
   * (its peers parsing the client's messages, encoding results and attestations, and the winners'
   * result transactions on the shared ledger); approximate, the process's other threads count too.
   */
  readonly marketCpuMs?: number;
  /** The engine: jobs settled per CPU second of the client alone (`cpuMs - marketCpuMs`). */
  readonly clientJobsPerCpuSecond?: number;
  /**
   * The engine: the part of `cpuMs` spent inside the client's calls to its chain port (the
   * embedded ledger executing its transactions and reads), measured around each call. The
   * ledger's subscription polls (reading back the events the client's sync then translates) run
   * on the ledger's own timer and are not in it: they count as the client's.
   */
  readonly chainCpuMs?: number;
  /**
   * The engine: jobs settled per CPU second of the client without its chain calls
   * (`cpuMs - marketCpuMs - chainCpuMs`): the engine's own rate, as if the chain ran elsewhere.
   */
  readonly engineJobsPerCpuSecond?: number;
  /**
   * The engine with `chainProcess`: the CPU time of the chain's process during the run (its
   * transactions, the market's included, and the serving of calls and events), ms, as the
   * process tells it (a `stats` request, `chain/remote.ts`).
   */
  readonly chainProcessCpuMs?: number;
  /**
   * The engine: where the client's main thread's wall time went during the run, ms: on a CPU,
   * and off it (idle: waiting on a timer, the market, the chain's answers; or queued for a core,
   * which `queuedMs` tells where `/proc` can be read). `cpuMs` is the process's, every thread.
   */
  readonly clientThread?: ThreadShare;
  /** The engine with `chainProcess`: the same for the chain process's main thread. */
  readonly chainThread?: ThreadShare;
  /**
   * The engine with `stages`: for each step of a job (the source and type of the event that
   * ended it), the mean wall time from the job's previous delivered event to it, ms, and how many
   * were timed; in the order first seen. Their sum is a job's mean time in flight.
   */
  readonly stages?: readonly {
    readonly step: string;
    readonly n: number;
    readonly meanMs: number;
  }[];
}

/**
 * `port` with the time of every method call it serves added to `spent.ms`: the synchronous part
 * of the call (the embedded ledger does its work before it returns its promise), measured with
 * the monotonic clock.
 */
function timedPort<T extends object>(port: T, spent: { ms: number }): T {
  // One wrapper per method, not one per call (a closure per property read was the client's cost).
  const wrapped = new Map<PropertyKey, { value: unknown; timed: unknown }>();
  return new Proxy(port, {
    get(target, key) {
      const value = Reflect.get(target, key, target);
      if (typeof value !== "function") return value;
      const known = wrapped.get(key);
      if (known?.value === value) return known.timed;
      const timed = (...args: unknown[]) => {
        const before = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          spent.ms += performance.now() - before;
        }
      };
      wrapped.set(key, { value, timed });
      return timed;
    },
  });
}

/** The process's CPU time so far (user and system, every thread), ms. */
export function cpuTimeMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** See {@link LifecycleResult.steadyJobsPerSecond}; `settledAt` in settlement order, ms. */
export function steadyRate(settledAt: readonly number[], concurrency: number): number | null {
  const from = concurrency - 1;
  const to = settledAt.length - concurrency - 1;
  if (from < 0 || to <= from) return null;
  const ms = settledAt[to]! - settledAt[from]!;
  return ms > 0 ? Math.round((to - from) / (ms / 1000)) : null;
}

function result(
  o: Required<
    Omit<
      LifecycleOptions,
      | "onProgress"
      | "signal"
      | "journal"
      | "batch"
      | "chainProcess"
      | "chainCpuProfDir"
      | "warmUp"
      | "retainFinishedMs"
      | "stages"
    >
  >,
  settled: number,
  wallMs: number,
  events: number,
  cpuMs: number,
  settledAt: readonly number[],
): LifecycleResult {
  return {
    jobs: o.jobs,
    settled,
    concurrency: o.concurrency,
    workers: o.workers,
    bidsPerJob: o.bidsPerJob,
    wallMs: Math.round(wallMs),
    jobsPerSecond: Math.round(settled / (wallMs / 1000)),
    events,
    eventsPerSecond: Math.round(events / (wallMs / 1000)),
    cpuMs: Math.round(cpuMs),
    jobsPerCpuSecond: Math.round(settled / (cpuMs / 1000)),
    steadyJobsPerSecond: steadyRate(settledAt, o.concurrency),
  };
}

function defaults(options: LifecycleOptions) {
  const o = {
    jobs: options.jobs ?? 2_000,
    concurrency: options.concurrency ?? 500,
    workers: options.workers ?? 1_000,
    bidsPerJob: options.bidsPerJob ?? 8,
  };
  for (const [key, value] of Object.entries(o)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`Invalid ${key} ${value}: must be a positive integer`);
    }
  }
  if (o.bidsPerJob > o.workers) {
    throw new RangeError(`Invalid bidsPerJob ${o.bidsPerJob}: more than ${o.workers} workers`);
  }
  return o;
}

/** The engine: one client node owning `concurrency` jobs at a time under market load. */
export async function benchEngine(options: LifecycleOptions = {}): Promise<LifecycleResult> {
  const o = defaults(options);
  const warmUp = options.warmUp ?? 0;
  if (!Number.isInteger(warmUp) || warmUp < 0) {
    throw new RangeError(`Invalid warmUp ${warmUp}: must be a non-negative integer`);
  }
  // Jobs run in all: the warm-up's, then the measured ones.
  const total = warmUp + o.jobs;
  const progress = options.onProgress ?? (() => {});
  const chain = options.chainProcess
    ? await chainProcess(options.chainCpuProfDir)
    : inProcessChain();
  const port = new MarketPort("client");
  const chainSpent = { ms: 0 };
  const nodeOptions = {
    id: "client",
    roles: ["client" as const],
    network: port,
    chain: timedPort(chain.as("client"), chainSpent),
    capabilityIntervalMs: 0,
    peer: { ...DEFAULT_PEER_CONFIG, heartbeatMs: PEER_HEARTBEAT_MS },
    ...(options.retainFinishedMs === undefined
      ? {}
      : { retainFinishedMs: options.retainFinishedMs }),
    // The market's verifiers attest by gossip and the owner counts them, as the raw and tree
    // baselines do (the same machine path): not the node's default, chain-decided settlement.
    policy: { ...DEFAULT_POLICY, settlement: "legacy" as const },
  };
  const dir = options.journal ? await Deno.makeTempDir({ prefix: "bench-journal-" }) : undefined;
  const journal = dir === undefined
    ? undefined
    : SqliteJournal.open(`${dir}/journal.sqlite`, { node: describeNode(nodeOptions) });
  const node: Node = createNode({ ...nodeOptions, ...(journal ? { journal } : {}) });
  const workerPorts = new Map<string, ChainPort>();
  try {
    await Promise.all(Array.from({ length: o.workers }, (_, i) => {
      const name = workerName(i);
      const worker = chain.as(name);
      workerPorts.set(name, worker);
      return worker.stake({ amount: 100n });
    }));
    await node.start();
    for (let i = 0; i < o.workers; i++) {
      port.connect(workerName(i));
      port.inject(TOPICS.capabilities, workerName(i), {
        type: "node.capabilities",
        node: workerName(i),
        roles: ["worker"],
        hardware: "cpu",
        models: [],
      });
    }
    for (const v of VERIFIERS) {
      port.inject(TOPICS.capabilities, v, {
        type: "node.capabilities",
        node: v,
        roles: ["verifier"],
        hardware: "cpu",
        models: [],
      });
    }
    await new Promise((r) => setTimeout(r, 10));
    progress(`engine: ${o.workers} workers connected (${node.peers().length} peer actors)`);

    const failures: string[] = [];
    // The bids of job `i` (its first attempt), encoded by their workers before the clock starts.
    const bidders = marketBidders(o);
    const bidsOf = (i: number) =>
      bidders.of(i).map((worker, b): [NodeId, Uint8Array] => {
        const bid = bidOf(`job-${i}`, 1, worker, i * o.bidsPerJob + b);
        return [worker, encodeMessage(TOPICS.bids, { type: "bid.submit", ...bid })];
      });
    const encodedBids = Array.from({ length: total }, (_, i) => bidsOf(i));
    const decoder = new TextDecoder();
    // The time of the market's own work in the run (its peers' parsing, encoding and chain
    // transactions), measured around it with the monotonic clock: the work is synchronous on this
    // thread, so its elapsed time is its CPU time (more if the thread is preempted during it). Not
    // with `process.cpuUsage()`: two system calls per market call cost the client 5 % of the run.
    // The client's handling of what the market sends is not in it.
    let marketCpuMs = 0;
    const market = (work: () => void) => {
      const before = performance.now();
      try {
        work();
      } finally {
        marketCpuMs += performance.now() - before;
      }
    };
    // The simulated market, answering what the client publishes or sends to its peers (`to`).
    // Its peers read the client's messages with a plain parse: decoding is their work.
    const answer = (topic: Topic, data: Uint8Array, to?: NodeId) => {
      if (topicFamily(topic) === TOPICS.jobs) {
        // A sampled job goes on its sample's topic and on the shard's watch topic: one answer.
        if (topic.endsWith("/all")) return;
        const m = JSON.parse(decoder.decode(data)) as {
          jobId: string;
          attempt: number;
          sample?: number;
        };
        const i = Number(m.jobId.slice(4));
        for (const [worker, bytes] of encodedBids[i] ?? []) {
          port.injectBytes(TOPICS.bids, worker, bytes);
        }
        if (m.attempt !== 1 || encodedBids[i] === undefined || (m.sample ?? 0) !== bidders.bits) {
          failures.push(
            `unexpected announcement of ${m.jobId}, attempt ${m.attempt}, sample ${m.sample ?? 0}`,
          );
        }
      } else if (topic === TOPICS.assignments) {
        // Sent to the winner and to each chosen verifier: the winner answers.
        if (to !== undefined && VERIFIERS.includes(to)) return;
        const m = JSON.parse(decoder.decode(data)) as { jobId: string; worker: NodeId };
        if (to !== undefined && to !== m.worker) return;
        const chain = workerPorts.get(m.worker)!;
        void chain.submitResult({ jobId: m.jobId, commitment: COMMITMENT }).catch((e) =>
          failures.push(`submitResult ${m.jobId}: ${(e as Error).message}`)
        );
        port.inject(TOPICS.results, m.worker, {
          type: "job.result",
          jobId: m.jobId,
          worker: m.worker,
          commitment: COMMITMENT,
          output: OUTPUT,
        });
      }
    };
    port.onPublish = (topic, data, to) => {
      // What no peer of the market answers is left before the clock (the client's copy of an
      // announcement on the shard's watch topic, its assignments to the verifiers, its other
      // messages): reading the clock twice a message cost the client more than the check.
      if (
        topicFamily(topic) === TOPICS.jobs ? topic.endsWith("/all") : topic !== TOPICS.assignments
      ) {
        return;
      }
      if (to !== undefined && VERIFIERS.includes(to)) return;
      market(() => answer(topic, data, to));
    };
    let settled = 0;
    let finished = 0;
    let submitted = 0;
    const settledAt: number[] = [];
    let wake: () => void = () => {};
    const attested = new Set<string>();
    // A job's steps: the time from its previous delivered event to each (options.stages).
    const lastAt = new Map<string, number>();
    const stages = new Map<string, { n: number; ms: number }>();
    // Where the measurement starts: before the first job, or when the warm-up's last finishes.
    let mark:
      | {
        readonly delivered: number;
        readonly marketCpuMs: number;
        readonly chainMs: number;
        readonly chain: ReturnType<BenchChain["stats"]>;
        readonly thread: ThreadTime;
        readonly started: number;
        readonly cpu: number;
      }
      | undefined;
    const startMeasuring = () => {
      // The warm-up's steps are not counted; their order (a job's, first seen) is kept.
      for (const stage of stages.values()) stage.n = stage.ms = 0;
      mark = {
        delivered: node.stats.delivered,
        marketCpuMs,
        chainMs: chainSpent.ms,
        chain: chain.stats(),
        thread: threadTime(),
        started: performance.now(),
        cpu: cpuTimeMs(),
      };
    };
    if (options.stages) {
      node.observe((ob) => {
        if (ob.type !== "delivered" || !ob.actor.startsWith("job:")) return;
        const now = performance.now();
        const before = lastAt.get(ob.actor);
        lastAt.set(ob.actor, now);
        if (before === undefined) return;
        const step = `${ob.envelope.source} ${ob.envelope.event.type}`;
        let stage = stages.get(step);
        if (stage === undefined) stages.set(step, stage = { n: 0, ms: 0 });
        stage.n++;
        stage.ms += now - before;
      });
    }
    node.observe((ob) => {
      if (ob.type === "delivered" && ob.state === "verifying" && !attested.has(ob.actor)) {
        attested.add(ob.actor);
        const jobId = ob.actor.slice(4);
        const context = node.job(jobId)?.context;
        const worker = context?.result?.worker ?? "";
        market(() => {
          for (const v of (context?.verifiers ?? []).slice(0, 3)) {
            port.inject(TOPICS.attestations, v, {
              type: "job.attest",
              jobId,
              verifier: v,
              verdict: "valid",
              commitment: COMMITMENT,
              worker,
              claimed: COMMITMENT,
            });
          }
        });
      } else if (ob.type === "job.finished") {
        finished++;
        if (ob.state !== "settled") failures.push(`${ob.jobId} ended ${ob.state}`);
        else if (finished > warmUp) {
          settled++;
          settledAt.push(performance.now());
        }
        attested.delete(`job:${ob.jobId}`);
        lastAt.delete(`job:${ob.jobId}`);
        if (finished % Math.max(1, Math.floor(total / 10)) === 0) {
          progress(
            `engine: ${finished}/${total} jobs finished${finished <= warmUp ? " (warm-up)" : ""}`,
          );
        }
        if (finished === warmUp) startMeasuring();
        wake();
      }
    });
    const spec = lifecycleSpec();
    if (warmUp === 0) startMeasuring();
    // A bound for a run that hangs, wide enough for a loaded machine.
    const deadline = Date.now() + Math.max(120_000, 100 * total);
    while (finished < total) {
      options.signal?.throwIfAborted();
      if (Date.now() > deadline) {
        throw new Error(`Lifecycle bench timed out: ${finished} of ${total} jobs finished`);
      }
      while (submitted < total && submitted - finished < o.concurrency) {
        node.submitJob({ spec, jobId: `job-${submitted++}` });
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const m = mark!;
    const wallMs = performance.now() - m.started;
    const cpuMs = cpuTimeMs() - m.cpu;
    const threadAfter = threadTime();
    const runMarketCpuMs = marketCpuMs - m.marketCpuMs;
    const runChainMs = chainSpent.ms - m.chainMs;
    const [chainBefore, chainAfter] = [await m.chain, await chain.stats()];
    const clientThread = threadShare(m.thread, threadAfter, wallMs);
    const chainThread = chainBefore?.thread && chainAfter?.thread
      ? threadShare(chainBefore.thread, chainAfter.thread, wallMs)
      : undefined;
    if (failures.length > 0) {
      progress(`engine: ${failures.length} problems, first: ${failures[0]}`);
    }
    await node.settled();
    const r = {
      ...result(o, settled, wallMs, node.stats.delivered - m.delivered, cpuMs, settledAt),
      marketCpuMs: Math.round(runMarketCpuMs),
      clientJobsPerCpuSecond: Math.round(settled / ((cpuMs - runMarketCpuMs) / 1000)),
      chainCpuMs: Math.round(runChainMs),
      engineJobsPerCpuSecond: Math.round(settled / ((cpuMs - runMarketCpuMs - runChainMs) / 1000)),
      ...(chainBefore !== undefined && chainAfter !== undefined
        ? { chainProcessCpuMs: Math.round(chainAfter.cpuMs - chainBefore.cpuMs) }
        : {}),
      clientThread,
      ...(chainThread === undefined ? {} : { chainThread }),
      ...(options.stages
        ? {
          stages: [...stages].filter(([, { n }]) => n > 0).map(([step, { n, ms }]) => ({
            step,
            n,
            meanMs: Math.round((ms / n) * 10) / 10,
          })),
        }
        : {}),
    };
    return journal === undefined ? r : { ...r, journaled: journal.lastSeq };
  } finally {
    await node.stop();
    journal?.close();
    await chain.close();
    if (dir !== undefined) await Deno.remove(dir, { recursive: true });
  }
}

/** Where the engine benchmark's ledger runs: ports by account, and its end. */
interface BenchChain {
  as(account: NodeId): ChainPort;
  /**
   * The chain process's CPU time so far, ms, and its main thread's time where it tells it;
   * undefined in process.
   */
  stats(): Promise<{ cpuMs: number; thread?: ThreadTime } | undefined>;
  close(): Promise<void>;
}

function inProcessChain(): BenchChain {
  const ledger = LocalLedger.open(":memory:");
  return {
    as: (account) => ledger.as(account),
    stats: () => Promise.resolve(undefined),
    close: () => Promise.resolve(ledger.close()),
  };
}

/** The ledger in a child process (`runtime/bench/chain/main.ts`), over its stdin and stdout. */
async function chainProcess(cpuProfDir?: string): Promise<BenchChain> {
  const main = fileURLToPath(new URL("./chain/main.ts", import.meta.url));
  const profile = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`];
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", ...profile, main],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let remote: RemoteChain;
  try {
    remote = await RemoteChain.connect({ readable: child.stdout, writable: child.stdin });
  } catch (error) {
    child.kill();
    await child.status;
    throw error;
  }
  return {
    as: (account) => remote.as(account),
    stats: async () => {
      const stats = await remote.stats() as { cpuMs?: unknown; thread?: unknown } | null;
      const cpuMs = stats?.cpuMs;
      if (typeof cpuMs !== "number") return undefined;
      const t = stats?.thread as Partial<ThreadTime> | null | undefined;
      if (typeof t?.cpuMs !== "number") return { cpuMs };
      // The child reads no /proc (Deno opens it only with --allow-all); this process may.
      const queuedMs = typeof t.queuedMs === "number" ? t.queuedMs : childQueuedMs(child.pid);
      return {
        cpuMs,
        thread: queuedMs === undefined ? { cpuMs: t.cpuMs } : { cpuMs: t.cpuMs, queuedMs },
      };
    },
    close: async () => {
      await remote.close();
      const status = await child.status;
      if (!status.success) throw new Error(`The chain process exited with ${status.code}`);
    },
  };
}

/** The time process `pid`'s main thread waited for a core, ms, where `/proc` can be read. */
function childQueuedMs(pid: number): number | undefined {
  try {
    return parseSchedstat(Deno.readTextFileSync(`/proc/${pid}/task/${pid}/schedstat`))?.queuedMs;
  } catch {
    return undefined;
  }
}

/** What {@link benchLedger} measured. */
export interface LedgerBenchResult {
  readonly jobs: number;
  /** Transactions committed: 5 a job. */
  readonly transactions: number;
  /** Events the subscriber was handed. */
  readonly events: number;
  /** CPU time of the process per job (every thread), microseconds. */
  readonly cpuUsPerJob: number;
  /** Wall time per job, microseconds. */
  readonly wallUsPerJob: number;
}

/**
 * The embedded ledger alone, in the engine benchmark's flow: `jobs` jobs (default 5000), each
 * submitted, assigned with 4 named verifiers, given a result by its worker, verified and released
 * (5 transactions, 6 events), on an in-memory {@link LocalLedger} with one subscriber (the
 * client's chain sync), 50 staked workers. Its cost per job, CPU and wall.
 */
export async function benchLedger(
  options: { readonly jobs?: number; readonly signal?: AbortSignal } = {},
): Promise<LedgerBenchResult> {
  const jobs = options.jobs ?? 5_000;
  if (!Number.isInteger(jobs) || jobs < 1) {
    throw new RangeError(`Invalid jobs ${jobs}: must be a positive integer`);
  }
  const ledger = LocalLedger.open(":memory:");
  try {
    const client = ledger.as("client");
    const workers = [];
    for (let i = 0; i < 50; i++) {
      const port = ledger.as(workerName(i));
      await port.stake({ amount: 100n });
      workers.push({ name: workerName(i), port });
    }
    let events = 0;
    const stop = client.subscribe(() => events++);
    const started = performance.now();
    const cpuStarted = cpuTimeMs();
    for (let i = 0; i < jobs; i++) {
      const jobId = `job-${i}`;
      const worker = workers[i % workers.length]!;
      await client.submitJob({
        jobId,
        amount: 1_000n,
        minStake: 10n,
        modelHash: COMMITMENT,
        inputCommitment: COMMITMENT,
      });
      await client.assignWorker({ jobId, worker: worker.name, price: 600n, verifiers: VERIFIERS });
      await worker.port.submitResult({ jobId, commitment: COMMITMENT });
      await client.recordVerification({ jobId, accepted: true });
      await client.releasePayment({ jobId });
      // Let the subscription poll, as the engine's event loop does between deliveries.
      if (i % 50 === 49) {
        options.signal?.throwIfAborted();
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    // The subscriber catches up (a stake is 1 event, a job 6): a bounded wait.
    for (let wait = 0; events < workers.length + 6 * jobs && wait < 100; wait++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const wallMs = performance.now() - started;
    const cpuMs = cpuTimeMs() - cpuStarted;
    stop();
    return {
      jobs,
      transactions: 5 * jobs,
      events,
      cpuUsPerJob: Math.round((cpuMs * 1000) / jobs),
      wallUsPerJob: Math.round((wallMs * 1000) / jobs),
    };
  } finally {
    ledger.close();
  }
}

/** The events one settled job hears on its owner, in order (virtual time from `at`). */
function* lifecycleEvents(
  jobId: string,
  index: number,
  bidders: readonly string[],
  read: () => { deadlines: Record<string, number>; verifiers: readonly string[] },
  winner: () => { worker: string; price: bigint },
  at: number,
  batch: boolean,
): Generator<{ type: string; at: number; [key: string]: unknown }> {
  yield { type: "chain.escrow.locked", at, client: "client", amount: 1_000n };
  const first = index * bidders.length;
  const bids = bidders.map((worker, b) => bidOf(jobId, 1, worker, first + b));
  if (batch && bids.length > 1) yield { type: "bids.received", at: at + 1, bids };
  else for (const bid of bids) yield { type: "bid.received", at: at + 1, bid };
  const due = read().deadlines["bid_window"]!;
  yield { type: "timer.fired", at: due, key: "bid_window", due };
  const w = winner();
  yield {
    type: "chain.worker.assigned",
    at: due + 1,
    worker: w.worker,
    price: w.price,
    verifiers: [...VERIFIERS],
  };
  yield {
    type: "job.result.received",
    at: due + 2,
    worker: w.worker,
    commitment: COMMITMENT,
    output: OUTPUT,
  };
  yield { type: "chain.result.submitted", at: due + 3, worker: w.worker, commitment: COMMITMENT };
  const attestations = read().verifiers.slice(0, 3).map((verifier) => ({
    verifier,
    verdict: "valid",
    commitment: COMMITMENT,
    worker: w.worker,
    claimed: COMMITMENT,
  }));
  if (batch && attestations.length > 1) {
    yield { type: "job.attestations.received", at: due + 4, attestations };
  } else {
    for (const a of attestations) yield { type: "job.attestation.received", at: due + 4, ...a };
  }
  yield { type: "chain.job.verified", at: due + 5 };
  const fee = w.price / 100n;
  yield {
    type: "chain.payment.released",
    at: due + 6,
    worker: w.worker,
    amount: w.price - fee,
    fee,
    change: 1_000n - w.price,
  };
}

/**
 * The same lifecycle without the engine: `kind` `"raw"` sends each job's events to a plain
 * XState actor of `jobMachine`; `"tree"` delivers them to an {@link ActorTree} (supervision and
 * routing, no inbox, journal or ports). `concurrency` jobs are live at once, advanced one event
 * each in turn.
 */
export function benchMachines(
  kind: "raw" | "tree",
  options: LifecycleOptions = {},
): LifecycleResult {
  const o = defaults(options);
  const batch = options.batch ?? true;
  const spec = lifecycleSpec();
  let now = 0;
  const assigns = new Map<string, EffectRequest & { type: "chain.assign" }>();
  const onEffect = (actorId: string, effect: EffectRequest) => {
    if (effect.type === "chain.assign") assigns.set(actorId, effect);
  };
  const tree = kind === "tree"
    ? new ActorTree({ self: "client", roles: ["client"], now: () => now, onEffect })
    : undefined;
  let settled = 0;
  const settledAt: number[] = [];
  let events = 0;
  let seq = 0;
  const market = marketBidders(o);
  const bidders = Array.from({ length: o.jobs }, (_, i) => market.of(i));
  const started = performance.now();
  const cpuStarted = cpuTimeMs();
  let next = 0;
  interface Live {
    readonly id: string;
    readonly steps: Iterator<{ type: string; at: number }>;
    readonly send: (e: { type: string; at: number }) => void;
    readonly state: () => { value: unknown; done: boolean };
    readonly stop: () => void;
  }
  const start = (index: number): Live => {
    const jobId = `job-${index}`;
    const id = `job:${jobId}`;
    const input: JobInput = {
      jobId,
      spec,
      owner: "client",
      self: "client",
      roles: ["client"],
      at: now,
      policy: DEFAULT_POLICY,
      verifierPool: VERIFIERS,
    };
    // deno-lint-ignore no-explicit-any
    let snapshotOf: () => any;
    let send: Live["send"];
    let stop: () => void;
    if (tree) {
      tree.deliver({
        seq: ++seq,
        at: now,
        source: "operator",
        target: id,
        event: { type: "job.submit", spec, verifierPool: VERIFIERS, policy: DEFAULT_POLICY },
      });
      const cell = () => tree.get(id)!;
      snapshotOf = () => cell().snapshot;
      send = (e) => {
        now = e.at;
        tree.deliver({ seq: ++seq, at: e.at, source: "network", target: id, event: e });
      };
      stop = () => {}; // the node keeps finished job actors too
    } else {
      const actor = createActor(jobMachine, { input });
      actor.on("*", (effect) => onEffect(id, effect as unknown as EffectRequest));
      actor.start();
      snapshotOf = () => actor.getSnapshot();
      send = (e) => actor.send(e as never);
      stop = () => actor.stop();
    }
    events++;
    const read = () => snapshotOf().context;
    const winner = () => {
      const a = assigns.get(id)!;
      return { worker: a.worker, price: a.price };
    };
    return {
      id,
      steps: lifecycleEvents(jobId, index, bidders[index]!, read, winner, now, batch),
      send,
      state: () => {
        const s = snapshotOf();
        return { value: s.value, done: s.status === "done" };
      },
      stop,
    };
  };
  const live: Live[] = [];
  while (next < o.jobs && live.length < o.concurrency) live.push(start(next++));
  let guard = o.jobs * (o.bidsPerJob + 20) + 10;
  while (live.length > 0 && guard-- > 0) {
    for (let i = 0; i < live.length; i++) {
      const job = live[i]!;
      const step = job.steps.next();
      if (!step.done) {
        job.send(step.value);
        events++;
        continue;
      }
      const s = job.state();
      if (s.done && s.value === "settled") {
        settled++;
        settledAt.push(performance.now());
      }
      assigns.delete(job.id);
      job.stop();
      if (next < o.jobs) live[i] = start(next++);
      else {
        live[i] = live[live.length - 1]!;
        live.pop();
        i--;
      }
    }
  }
  const wallMs = performance.now() - started;
  return result(o, settled, wallMs, events, cpuTimeMs() - cpuStarted, settledAt);
}
