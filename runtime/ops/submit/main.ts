/**
 * `deno task submit`: submits a job to a running client node through its status endpoint.
 *
 * ```sh
 * deno task submit --node http://127.0.0.1:8080             # a small builtin:matmul job
 * deno task submit --data-dir ./data/client --wait          # find the node, wait for the outcome
 * deno task submit --node http://127.0.0.1:8080 --spec job.json --json
 * ```
 *
 * Flags: `--node URL` (or `--data-dir DIR`, whose `node.json` names the URL), `--spec FILE` (a
 * job request `{ spec, jobId?, policy? }` or a bare spec, as `POST /jobs` takes it), `--job-id
 * ID`, `--max-price N` (default 1000), `--verifiers N` (default: what the node knows, at most
 * 4), `--wait` (poll until the job is final), `--timeout MS` (default 120000), `--json`.
 *
 * Exit codes: 0 submitted (with `--wait`: settled), 3 final but not settled, 2 bad usage, 1
 * any other failure.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { commitmentOf } from "../../compute/mod.ts";

/** Options of {@link submitJob}. */
export interface SubmitOptions {
  readonly signal?: AbortSignal;
}

/** What `GET /jobs/:id` answers (amounts as strings). */
export interface JobStatus {
  readonly jobId: string;
  readonly state: string;
  readonly done: boolean;
  readonly context: {
    readonly attempt: number;
    readonly winner: { readonly worker: string; readonly price: string } | null;
    readonly path: readonly { readonly state: string; readonly at: number }[];
    readonly [key: string]: unknown;
  };
}

/** The status endpoint answered with an error. */
export class SubmitError extends Error {
  override readonly name = "SubmitError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** A small `builtin:matmul` job request (2x2 integer matrices). */
export function defaultJobRequest(
  options: { maxPrice?: number; verifierCount?: number; jobId?: string } = {},
): Record<string, unknown> {
  const cell = () => Math.floor(Math.random() * 19) - 9;
  const input = {
    a: [[cell(), cell()], [cell(), cell()]],
    b: [[cell(), cell()], [cell(), cell()]],
  };
  return {
    spec: {
      kind: { type: "builtin", name: "matmul" },
      input,
      inputCommitment: commitmentOf(input),
      requirements: { hardware: "cpu", minStake: "0" },
      maxPrice: String(options.maxPrice ?? 1_000),
      bidWindowMs: 500,
      executionMs: 10_000,
      verificationMs: 10_000,
      maxAttempts: 3,
      verifierCount: options.verifierCount ?? 4,
    },
    ...(options.jobId !== undefined ? { jobId: options.jobId } : {}),
  };
}

async function http<T>(url: string, init: RequestInit, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url, { ...init, ...(signal ? { signal } : {}) });
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new SubmitError(response.status, `Unexpected answer from ${url}: ${text.slice(0, 200)}`);
  }
  if (!response.ok) {
    const error = (body as { error?: string }).error ?? `HTTP ${response.status}`;
    throw new SubmitError(response.status, `${url} refused: ${error}`);
  }
  return body as T;
}

/** Submits a job request; resolves with its id. */
export async function submitJob(
  node: string,
  request: unknown,
  options: SubmitOptions = {},
): Promise<string> {
  const { jobId } = await http<{ jobId: string }>(`${node}/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  }, options.signal);
  return jobId;
}

/** Polls `GET /jobs/:id` until the job is final. */
export async function waitForJob(
  node: string,
  jobId: string,
  options: SubmitOptions & {
    intervalMs?: number;
    /** Told each phase the job enters, as it is seen. */
    onPhase?: (phase: { state: string; at: number }, first: number) => void;
  } = {},
): Promise<JobStatus> {
  let seen = 0;
  while (true) {
    options.signal?.throwIfAborted();
    const status = await http<JobStatus>(
      `${node}/jobs/${encodeURIComponent(jobId)}`,
      {},
      options.signal,
    );
    const path = status.context?.path ?? [];
    for (; seen < path.length; seen++) options.onPhase?.(path[seen]!, path[0]!.at);
    if (status.done) return status;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, options.intervalMs ?? 200);
      options.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(options.signal?.reason);
      }, { once: true });
    });
  }
}

/** The outcome as `deno task submit --wait` prints it. */
export function formatOutcome(status: JobStatus): string {
  const { context } = status;
  const first = context.path[0]?.at ?? 0;
  const path = context.path.map((p) => `${p.state} +${p.at - first}ms`).join(" -> ");
  return [
    `Job ${status.jobId}: ${status.state}`,
    `  attempts ${context.attempt}, winner ${context.winner?.worker ?? "-"}${
      context.winner ? ` at ${context.winner.price}` : ""
    }`,
    `  path ${path}`,
    ...(context.failure ? [`  why ${context.failure}`] : []),
  ].join("\n");
}

/** The help text of `deno task submit`. */
export const USAGE = `Usage: deno task submit (--node URL | --data-dir DIR) [flags]

Submits a job to a running client node through its HTTP API.

Flags:
  --node URL        the client node's HTTP API
  --data-dir DIR    a running node's data directory; its node.json names the URL
  --spec FILE       a job request { spec, jobId?, policy? } or a bare spec (see examples/jobs/)
  --job-id ID       the job's id (default: one the node picks)
  --max-price N     the most the job pays, a non-negative integer (default 1000)
  --verifiers N     verifiers to ask, 1 to 64 (default: what the node knows, at most 4;
                    with --spec, overrides the file's verifierCount)
  --wait            follow the job until it is final, printing each phase
  --timeout MS      give up after this long (default 120000)
  --json            print JSON
  -h, --help        this help

Exit codes: 0 submitted (with --wait: settled), 1 failed, 2 bad usage, 3 final but not settled.`;

/** Runs `deno task submit` with `args`; resolves with the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args: [...args],
      options: {
        node: { type: "string" },
        "data-dir": { type: "string" },
        spec: { type: "string" },
        "job-id": { type: "string" },
        "max-price": { type: "string" },
        verifiers: { type: "string" },
        wait: { type: "boolean" },
        timeout: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    console.error(`Invalid flags: ${(error as Error).message}\n(add --help for usage)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values["max-price"] !== undefined && !/^(0|[1-9]\d{0,14})$/.test(values["max-price"])) {
    console.error(
      `Invalid --max-price "${values["max-price"]}": must be a non-negative integer`,
    );
    return 2;
  }
  if (
    values.verifiers !== undefined &&
    (!/^\d{1,2}$/.test(values.verifiers) || Number(values.verifiers) < 1 ||
      Number(values.verifiers) > 64)
  ) {
    console.error(`Invalid --verifiers "${values.verifiers}": must be an integer in [1, 64]`);
    return 2;
  }
  let node = values.node;
  if (node === undefined && values["data-dir"] !== undefined) {
    try {
      const info = JSON.parse(await Deno.readTextFile(`${values["data-dir"]}/node.json`));
      node = info.http ?? undefined;
    } catch (error) {
      console.error(`Cannot read ${values["data-dir"]}/node.json: ${(error as Error).message}`);
      return 2;
    }
  }
  if (node === undefined) {
    console.error("Missing --node URL (or --data-dir of a running node)");
    return 2;
  }
  node = node.replace(/\/+$/, "");
  const timeoutMs = Number(values.timeout ?? 120_000);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    console.error(`Invalid --timeout ${values.timeout}: must be a positive integer`);
    return 2;
  }
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    let request: unknown;
    if (values.spec !== undefined) {
      const raw = JSON.parse(await Deno.readTextFile(values.spec));
      request = raw !== null && typeof raw === "object" && "spec" in raw ? raw : { spec: raw };
      if (values["job-id"] !== undefined) {
        request = { ...(request as object), jobId: values["job-id"] };
      }
      // Flags given beside a spec file override what the file says.
      const spec = (request as { spec: unknown }).spec;
      if (spec !== null && typeof spec === "object") {
        (request as { spec: unknown }).spec = {
          ...spec,
          ...(values.verifiers !== undefined ? { verifierCount: Number(values.verifiers) } : {}),
          ...(values["max-price"] !== undefined ? { maxPrice: values["max-price"] } : {}),
        };
      }
    } else {
      let verifierCount = values.verifiers === undefined ? undefined : Number(values.verifiers);
      if (verifierCount === undefined) {
        const health = await http<{ verifiers: number }>(`${node}/health`, {}, signal);
        verifierCount = Math.max(1, Math.min(4, health.verifiers));
      }
      request = defaultJobRequest({
        verifierCount,
        ...(values["max-price"] !== undefined ? { maxPrice: Number(values["max-price"]) } : {}),
        ...(values["job-id"] !== undefined ? { jobId: values["job-id"] } : {}),
      });
    }
    const jobId = await submitJob(node, request, { signal });
    if (!values.wait) {
      console.log(values.json ? JSON.stringify({ jobId }) : `Submitted job ${jobId}`);
      return 0;
    }
    console.error(`Submitted job ${jobId}; waiting for its outcome`);
    const status = await waitForJob(node, jobId, {
      signal,
      onPhase: (phase, first) => console.error(`  +${phase.at - first}ms ${phase.state}`),
    });
    console.log(values.json ? JSON.stringify(status, null, 2) : formatOutcome(status));
    return status.state === "settled" ? 0 : 3;
  } catch (error) {
    const e = error as Error;
    console.error(
      e.name === "TimeoutError" ? `Gave up after ${timeoutMs} ms` : `Submit failed: ${e.message}`,
    );
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
