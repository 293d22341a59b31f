/**
 * A node's metrics in the Prometheus text format (`GET /metrics`), on `prom-client`'s registry
 * (one registry per node, never the process-wide default, so several nodes in one process do not
 * mix). What is measured, all names prefixed `ciro_`:
 *
 * - `jobs{state}`: jobs the node knows (live and archived) by state.
 * - `job_phase_seconds{phase}`: time a job spent in each phase on this node (histogram).
 * - `job_bids`: bids a job the node owns had when it finished (histogram).
 * - `bid_declines_total{reason}`: jobs this node's worker did not bid on, by reason.
 * - `bid_rejections_total{reason}`: bids the node's jobs refused, by reason.
 * - `rejected_events_total{event}`: inputs the node's actors refused, by event type.
 * - `job_outcomes_total{state,reason}`, `slashes_total{reason}`.
 * - `peers{state}` and `peer_score{peer}`.
 * - `journal_appends_total`, `journal_append_seconds` (a wrapped journal, see
 *   {@link instrumentJournal}).
 * - `chain_calls_total{method,outcome}`, `chain_call_seconds{method}` (a {@link ChainPort}
 *   decorator, {@link instrumentChain}); `outcome` is `ok` or the chain error's code.
 * - `worker_stake`, `worker_reputation` (read from the chain port when scraped),
 *   `worker_earnings_total` (payments to this node heard on its jobs), `worker_capacity`.
 *
 * ```ts ignore
 * import { CockpitMetrics, instrumentChain } from "./metrics.ts";
 *
 * const metrics = new CockpitMetrics(node, { feed });
 * const chain = instrumentChain(ledger.as("w1"), metrics);
 * console.log(await metrics.text());
 * ```
 *
 * @module
 */
import client from "prom-client";
import type { ChainPort } from "../../chain/port.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { NodeId, Role } from "../../machines/types.ts";
import type { Envelope, JobSummary, JournalSink, NodeObservation } from "../kernel/mod.ts";
import { FINAL_STATES, type JobFeed, type JobUpdate } from "./job_feed.ts";

/** What the metrics read from a node (a `Node` satisfies it). */
export interface MetricsSource {
  readonly id: NodeId;
  readonly roles: readonly Role[];
  jobs(): JobSummary[];
  job(jobId: string): { state: string; done: boolean; context: JobContext } | undefined;
  peers(): { peer: NodeId; state: string; score: number }[];
  observe(observer: (observation: NodeObservation) => void): () => void;
}

/** Options of {@link CockpitMetrics}. */
export interface CockpitMetricsOptions {
  /** The node's job feed (phases, declines, slashes). */
  readonly feed: JobFeed;
  /** Where the worker's stake and reputation are read when scraped. @default none */
  readonly chain?: Pick<ChainPort, "stakeOf" | "reputationOf">;
  /** The worker's capacity (jobs at once), when the node is a worker. */
  readonly capacity?: number;
  /** How long a scrape waits for a chain read, ms. @default 2_000 */
  readonly chainReadTimeoutMs?: number;
}

const SECONDS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const CHAIN_SECONDS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const JOURNAL_SECONDS = [0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5];

/** The registry of one node's metrics. */
export class CockpitMetrics {
  readonly registry: client.Registry;
  readonly #chainCalls: client.Counter<"method" | "outcome">;
  readonly #chainSeconds: client.Histogram<"method">;
  readonly #journalAppends: client.Counter;
  readonly #journalSeconds: client.Histogram;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(source: MetricsSource, options: CockpitMetricsOptions) {
    const registry = new client.Registry();
    this.registry = registry;
    const registers = [registry];
    const timeoutMs = options.chainReadTimeoutMs ?? 2_000;
    new client.Gauge({
      name: "ciro_jobs",
      help: "Jobs the node knows (live and archived), by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const job of source.jobs()) this.inc({ state: job.state });
      },
    });
    const phase = new client.Histogram({
      name: "ciro_job_phase_seconds",
      help: "Time a job spent in a phase on this node",
      labelNames: ["phase"],
      buckets: SECONDS,
      registers,
    });
    const bids = new client.Histogram({
      name: "ciro_job_bids",
      help: "Bids a job this node owns had when it finished",
      buckets: [0, 1, 2, 3, 5, 8, 13, 21, 34],
      registers,
    });
    const declines = new client.Counter({
      name: "ciro_bid_declines_total",
      help: "Jobs this node's worker did not bid on, by reason",
      labelNames: ["reason"],
      registers,
    });
    const rejections = new client.Counter({
      name: "ciro_bid_rejections_total",
      help: "Bids refused by jobs this node owns, by reason",
      labelNames: ["reason"],
      registers,
    });
    const outcomes = new client.Counter({
      name: "ciro_job_outcomes_total",
      help: "Jobs that reached a final state on this node, by state and reason",
      labelNames: ["state", "reason"],
      registers,
    });
    const slashes = new client.Counter({
      name: "ciro_slashes_total",
      help: "Slashes heard on this node's jobs, by reason",
      labelNames: ["reason"],
      registers,
    });
    const rejected = new client.Counter({
      name: "ciro_rejected_events_total",
      help: "Inputs this node's actors refused, by event type",
      labelNames: ["event"],
      registers,
    });
    const earnings = new client.Counter({
      name: "ciro_worker_earnings_total",
      help: "Payments to this node's worker heard on its jobs (token units)",
      registers,
    });
    new client.Gauge({
      name: "ciro_peers",
      help: "Peers the node tracks, by state",
      labelNames: ["state"],
      registers,
      collect() {
        this.reset();
        for (const peer of source.peers()) this.inc({ state: peer.state });
      },
    });
    new client.Gauge({
      name: "ciro_peer_score",
      help: "Score of each tracked peer",
      labelNames: ["peer"],
      registers,
      collect() {
        this.reset();
        for (const peer of source.peers()) this.set({ peer: peer.peer }, peer.score);
      },
    });
    if (options.capacity !== undefined) {
      const capacity = options.capacity;
      new client.Gauge({
        name: "ciro_worker_capacity",
        help: "Jobs this node's worker commits to at once",
        registers,
        collect() {
          this.set(capacity);
        },
      });
    }
    const chain = options.chain;
    if (chain !== undefined && source.roles.some((r) => r === "worker" || r === "verifier")) {
      new client.Gauge({
        name: "ciro_worker_stake",
        help: "Stake this node holds on chain (token units)",
        registers,
        async collect() {
          const stake = await chain.stakeOf(source.id, { signal: AbortSignal.timeout(timeoutMs) })
            .catch(() => undefined);
          if (stake !== undefined) this.set(Number(stake));
        },
      });
      new client.Gauge({
        name: "ciro_worker_reputation",
        help: "Reputation the chain records for this node",
        registers,
        async collect() {
          const reputation = await chain.reputationOf(source.id, {
            signal: AbortSignal.timeout(timeoutMs),
          }).catch(() => undefined);
          if (reputation !== undefined) this.set(reputation);
        },
      });
    }
    this.#chainCalls = new client.Counter({
      name: "ciro_chain_calls_total",
      help: "Chain port calls, by method and outcome (ok or the error code)",
      labelNames: ["method", "outcome"],
      registers,
    });
    this.#chainSeconds = new client.Histogram({
      name: "ciro_chain_call_seconds",
      help: "Chain port call latency, by method",
      labelNames: ["method"],
      buckets: CHAIN_SECONDS,
      registers,
    });
    this.#journalAppends = new client.Counter({
      name: "ciro_journal_appends_total",
      help: "Envelopes appended to the journal",
      registers,
    });
    this.#journalSeconds = new client.Histogram({
      name: "ciro_journal_append_seconds",
      help: "Journal append latency",
      buckets: JOURNAL_SECONDS,
      registers,
    });

    const onUpdate = (update: JobUpdate) => {
      if (update.type === "declined") {
        declines.inc({ reason: update.reason ?? "unknown" });
        return;
      }
      if (update.type === "slashed") {
        slashes.inc({ reason: update.reason ?? "unknown" });
        return;
      }
      if (update.from !== null && update.spentMs !== null) {
        phase.observe({ phase: update.from }, Math.max(0, update.spentMs) / 1000);
      }
      if (!FINAL_STATES.includes(update.state)) return;
      outcomes.inc({ state: update.state, reason: update.reason ?? "none" });
      if (update.reason === "paid" && update.detail.worker === source.id) {
        earnings.inc(Number(update.detail.amount ?? "0"));
      }
      if (update.role !== "client") return;
      const job = source.job(update.jobId);
      if (job === undefined) return;
      const records = Object.values(job.context.bids);
      bids.observe(records.length);
      for (const bid of records) {
        if (bid.status === "rejected") rejections.inc({ reason: bid.reason ?? "unknown" });
      }
    };
    this.#unsubscribe.push(options.feed.subscribe(onUpdate));
    this.#unsubscribe.push(source.observe((o) => {
      if (o.type === "rejected") rejected.inc({ event: o.envelope.event.type });
    }));
  }

  /** Records one chain call. */
  chainCall(method: string, outcome: string, seconds: number): void {
    this.#chainCalls.inc({ method, outcome });
    this.#chainSeconds.observe({ method }, seconds);
  }

  /** Records one journal append. */
  journalAppend(seconds: number): void {
    this.#journalAppends.inc();
    this.#journalSeconds.observe(seconds);
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** The exposition's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops listening to the node and the feed. */
  close(): void {
    for (const stop of this.#unsubscribe.splice(0)) stop();
  }
}

/** Where {@link instrumentChain} reports (a {@link CockpitMetrics} is one). */
export interface ChainCallRecorder {
  chainCall(method: string, outcome: string, seconds: number): void;
}

/** Where {@link instrumentJournal} and {@link timeAppends} report (a {@link CockpitMetrics}). */
export interface JournalRecorder {
  journalAppend(seconds: number): void;
}

/** Anything with a journal's `append` (a {@link JournalSink} or the durable node's journal). */
export interface Appender {
  append(envelope: Envelope): void;
}

/**
 * A {@link JournalSink} that times each append into `metrics`; every other member of `sink`
 * (`nextSeq`, `delivered`, `retired`, and whatever the interface grows) passes through.
 */
export function instrumentJournal(sink: JournalSink, metrics: JournalRecorder): JournalSink {
  const target = sink as unknown as Record<string, unknown>;
  const decorated: Record<string, unknown> = {};
  for (const key of memberNames(sink)) {
    const value = target[key];
    if (typeof value === "function") decorated[key] = value.bind(sink);
    else Object.defineProperty(decorated, key, { get: () => target[key], enumerable: true });
  }
  decorated.append = (envelope: Envelope) => {
    const started = performance.now();
    sink.append(envelope);
    metrics.journalAppend((performance.now() - started) / 1000);
  };
  return decorated as unknown as JournalSink;
}

/**
 * Times the appends of a journal the node already holds (the durable node opens its own): its
 * `append` method is wrapped on that one object. Returns a function that puts it back.
 */
export function timeAppends(journal: Appender, metrics: JournalRecorder): () => void {
  const original = journal.append;
  journal.append = function (this: Appender, envelope: Envelope) {
    const started = performance.now();
    original.call(this, envelope);
    metrics.journalAppend((performance.now() - started) / 1000);
  };
  return () => {
    journal.append = original;
  };
}

/** Members passed through untimed: they are not chain calls. */
const UNTIMED: ReadonlySet<string> = new Set(["subscribe", "close"]);

/**
 * A {@link ChainPort} that counts and times every call of `port` that returns a promise into
 * `metrics`, by method name, with `ok` or the chain error's `code` as the outcome. It wraps
 * whatever methods the port has, so it follows the port's interface as it grows; everything else
 * (`account`, `subscribe`, `close`) passes through.
 */
export function instrumentChain(port: ChainPort, metrics: ChainCallRecorder): ChainPort {
  const target = port as unknown as Record<string, unknown>;
  const decorated: Record<string, unknown> = {};
  for (const key of memberNames(port)) {
    const value = target[key];
    if (typeof value !== "function") {
      Object.defineProperty(decorated, key, { get: () => target[key], enumerable: true });
      continue;
    }
    const method = value as (...args: unknown[]) => unknown;
    decorated[key] = UNTIMED.has(key) ? method.bind(port) : (...args: unknown[]) => {
      const started = performance.now();
      const result = method.apply(port, args);
      if (!(result instanceof Promise)) return result;
      return result.then(
        (value) => {
          metrics.chainCall(key, "ok", (performance.now() - started) / 1000);
          return value;
        },
        (error) => {
          const e = error as { code?: unknown; name?: string };
          const outcome = typeof e.code === "string" ? e.code : e.name ?? "error";
          metrics.chainCall(key, outcome, (performance.now() - started) / 1000);
          throw error;
        },
      );
    };
  }
  return decorated as unknown as ChainPort;
}

/** Own and inherited member names of an object (not `Object.prototype`'s, not `constructor`). */
function memberNames(object: object): string[] {
  const names = new Set<string>();
  for (
    let at: object | null = object;
    at !== null && at !== Object.prototype;
    at = Object.getPrototypeOf(at)
  ) {
    for (const name of Object.getOwnPropertyNames(at)) {
      if (name !== "constructor") names.add(name);
    }
  }
  return [...names];
}
