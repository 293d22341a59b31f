/**
 * Traces of the jobs a node takes part in, through `@opentelemetry/api`: one trace per job on
 * each node that takes part in it (a root span `job <id>`; a job the node only heard of, or
 * declined, has none) with a child span per phase (`job.bidding`,
 * `job.executing`...), timed by the job's own path, and events for declines and slashes. With
 * `OTEL_DENO=true`, Deno's built-in exporter sends them over OTLP; without a registered tracer
 * provider the API is a no-op.
 *
 * ```ts ignore
 * import { traceJobs } from "./tracing.ts";
 *
 * const stop = traceJobs(feed, { node: "n1" });
 * ```
 *
 * @module
 */
import { ROOT_CONTEXT, type Span, SpanStatusCode, trace, type Tracer } from "@opentelemetry/api";
import { FINAL_STATES, type JobFeed, type JobUpdate } from "./job_feed.ts";

/** Options of {@link traceJobs}. */
export interface TraceJobsOptions {
  /** The node's id, an attribute of every span. */
  readonly node: string;
  /** @default trace.getTracer("ciro") */
  readonly tracer?: Tracer;
  /** Jobs traced at once; past it the oldest trace is ended. @default 10_000 */
  readonly maxOpen?: number;
}

interface OpenTrace {
  readonly root: Span;
  phase: Span | undefined;
}

/** Traces every job update of `feed`. Returns a function that ends the open spans and stops. */
export function traceJobs(feed: JobFeed, options: TraceJobsOptions): () => void {
  const tracer = options.tracer ?? trace.getTracer("ciro");
  const maxOpen = options.maxOpen ?? 10_000;
  const open = new Map<string, OpenTrace>();

  const startTrace = (update: JobUpdate): OpenTrace => {
    if (open.size >= maxOpen) {
      const [oldest, t] = open.entries().next().value!;
      t.phase?.end();
      t.root.end();
      open.delete(oldest);
    }
    const root = tracer.startSpan(`job ${update.jobId}`, {
      startTime: update.at,
      attributes: {
        "ciro.job.id": update.jobId,
        "ciro.node": options.node,
        "ciro.role": update.role,
      },
    }, ROOT_CONTEXT); // a trace of its own, not a child of whatever request is active
    const t = { root, phase: undefined };
    open.set(update.jobId, t);
    return t;
  };

  // Updates of jobs this node only heard of (an observer, or a worker that declined): kept until
  // the node takes part (then they open its trace), dropped when the job ends without it.
  const heard = new Map<string, JobUpdate[]>();
  const onUpdate = (update: JobUpdate) => {
    if (!open.has(update.jobId)) {
      if (update.role === "observer" || update.type === "declined") {
        if (update.type === "phase" && FINAL_STATES.includes(update.state)) {
          heard.delete(update.jobId);
          return;
        }
        if (update.type !== "phase") return;
        if (!heard.has(update.jobId) && heard.size >= maxOpen) {
          heard.delete(heard.keys().next().value!);
        }
        const earlier = heard.get(update.jobId) ?? [];
        if (earlier.length < 32) earlier.push(update);
        heard.set(update.jobId, earlier);
        return;
      }
      const earlier = heard.get(update.jobId) ?? [];
      heard.delete(update.jobId);
      for (const e of earlier) record({ ...e, role: update.role });
    }
    record(update);
  };
  const record = (update: JobUpdate) => {
    const t = open.get(update.jobId) ?? startTrace(update);
    if (update.type !== "phase") {
      t.root.addEvent(`job.${update.type}`, {
        "ciro.reason": update.reason ?? "",
        ...update.detail,
      }, update.at);
      return;
    }
    t.phase?.end(update.at);
    const final = FINAL_STATES.includes(update.state);
    if (final) {
      t.root.setAttributes({ "ciro.job.state": update.state, "ciro.reason": update.reason ?? "" });
      t.root.setStatus(
        update.state === "settled"
          ? { code: SpanStatusCode.OK }
          : { code: SpanStatusCode.ERROR, message: `${update.state}: ${update.reason ?? ""}` },
      );
      t.root.end(update.at);
      open.delete(update.jobId);
      return;
    }
    // Phases are children of the job's root span, in the job's own trace.
    const parent = trace.setSpan(ROOT_CONTEXT, t.root);
    t.phase = tracer.startSpan(`job.${update.state}`, {
      startTime: update.at,
      attributes: { "ciro.job.id": update.jobId, "ciro.node": options.node, ...update.detail },
    }, parent);
  };
  const unsubscribe = feed.subscribe(onUpdate);
  return () => {
    unsubscribe();
    heard.clear();
    for (const t of open.values()) {
      t.phase?.end();
      t.root.end();
    }
    open.clear();
  };
}
