/**
 * What an operator sees of one node, built on its public API only: the {@link JobFeed} (each
 * phase change, decline and slash), the {@link OutputStore} (settled outputs, kept after the
 * job's actor is retired), the {@link CockpitMetrics}, and one info log line per update of a job
 * the node takes part in (category `ciro.jobs`), with the reason where there is one, and a trace
 * per job with a span per phase ({@link traceJobs}, `@opentelemetry/api`).
 *
 * ```ts ignore
 * import { Cockpit } from "./cockpit.ts";
 *
 * const cockpit = new Cockpit(node, { chain, capacity: 2 });
 * await serveStatus(node, { cockpit });
 * ```
 *
 * @module
 */
import type { ChainPort } from "../../chain/port.ts";
import { logger } from "../kernel/mod.ts";
import { type FeedSource, JobFeed, type JobUpdate } from "./job_feed.ts";
import { CockpitMetrics, type MetricsSource } from "./metrics.ts";
import { OutputStore, type OutputStoreOptions } from "./output_store.ts";
import { traceJobs } from "./tracing.ts";

/** Options of {@link Cockpit}. */
export interface CockpitOptions {
  /** Where the worker's stake and reputation are read. @default none */
  readonly chain?: Pick<ChainPort, "stakeOf" | "reputationOf">;
  /** The worker's capacity, when the node is a worker. */
  readonly capacity?: number;
  /** Bounds of the output store. */
  readonly outputs?: OutputStoreOptions;
  /** Log one info line per job update. @default true */
  readonly log?: boolean;
}

/** The worker's figures for `/health` and the dashboard (amounts as decimal strings). */
export interface WorkerStatus {
  readonly stake: string | null;
  readonly reputation: number | null;
  readonly earnings: string;
  readonly capacity: number | null;
}

/** One line for an operator, as the log prints it. */
export function describeUpdate(update: JobUpdate): string {
  const d = update.detail;
  if (update.type === "declined") return `Job ${update.jobId} declined: ${update.reason}`;
  if (update.type === "slashed") {
    return `Job ${update.jobId}: worker ${d.worker} slashed ${d.amount} for ${update.reason}`;
  }
  const head = `Job ${update.jobId} ${update.from ?? "new"} -> ${update.state} (${update.role})`;
  if (update.reason === "paid") return `${head}: paid ${d.amount} to ${d.worker}`;
  if (update.state === "assigned" && d.worker !== undefined) {
    return `${head}: ${d.worker} at ${d.price} of ${d.bids} bids`;
  }
  return update.reason !== null ? `${head}: ${update.reason}` : head;
}

/** A node's feed, kept outputs, metrics and job log. */
export class Cockpit {
  readonly source: FeedSource & MetricsSource;
  readonly feed: JobFeed;
  readonly outputs: OutputStore;
  readonly metrics: CockpitMetrics;
  readonly #chain: CockpitOptions["chain"];
  readonly #capacity: number | undefined;
  #earnings = 0n;
  readonly #stop: (() => void)[] = [];

  constructor(source: FeedSource & MetricsSource, options: CockpitOptions = {}) {
    this.source = source;
    this.feed = new JobFeed(source);
    this.outputs = new OutputStore(options.outputs);
    this.#chain = options.chain;
    this.#capacity = options.capacity;
    this.metrics = new CockpitMetrics(source, {
      feed: this.feed,
      ...(options.chain !== undefined ? { chain: options.chain } : {}),
      ...(options.capacity !== undefined ? { capacity: options.capacity } : {}),
    });
    this.#stop.push(traceJobs(this.feed, { node: source.id }));
    const log = logger("jobs");
    this.#stop.push(this.feed.subscribe((update) => {
      if (update.type === "phase" && update.state === "settled") {
        const job = source.job(update.jobId);
        const result = job?.context.result;
        const output = result ? job!.context.outputs[result.worker] : undefined;
        if (result && output !== undefined && output.commitment === result.commitment) {
          this.outputs.put(update.jobId, result.commitment, output.value);
        }
        if (update.reason === "paid" && update.detail.worker === source.id) {
          this.#earnings += BigInt(update.detail.amount ?? "0");
        }
      }
      if (options.log !== false && update.role !== "observer") {
        log.info("{line}", { line: describeUpdate(update), node: source.id, ...update });
      }
    }));
  }

  /** Stake, reputation (from the chain port), earnings heard and capacity of this worker. */
  async workerStatus(signal: AbortSignal = AbortSignal.timeout(2_000)): Promise<WorkerStatus> {
    const chain = this.#chain;
    const [stake, reputation] = chain === undefined ? [undefined, undefined] : await Promise.all([
      chain.stakeOf(this.source.id, { signal }).catch(() => undefined),
      chain.reputationOf(this.source.id, { signal }).catch(() => undefined),
    ]);
    return {
      stake: stake === undefined ? null : stake.toString(),
      reputation: reputation ?? null,
      earnings: this.#earnings.toString(),
      capacity: this.#capacity ?? null,
    };
  }

  /** A node's stake on chain, or undefined when there is no chain port or it cannot be read. */
  stakeOf(
    node: string,
    signal: AbortSignal = AbortSignal.timeout(2_000),
  ): Promise<bigint | undefined> {
    return this.#chain?.stakeOf(node, { signal }).catch(() => undefined) ??
      Promise.resolve(undefined);
  }

  /** Stops observing the node. */
  close(): void {
    for (const stop of this.#stop.splice(0)) stop();
    this.metrics.close();
    this.feed.close();
  }
}
