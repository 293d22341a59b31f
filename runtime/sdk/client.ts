/**
 * The SDK shape from the seeds: `client.infer({ modelId, input, verify, maxPrice, maxLatency })`
 * on a client node. It builds the job spec (the input's commitment, deadlines from the latency
 * budget, the verifier count from `verify`), submits the job, follows the job actor until it is
 * final, and resolves to the output, its commitment, the verification outcome and the cost.
 *
 * The input is the JSON tensor encoding of `onnx_executor.ts`, and it rides along with the job
 * announcement (small tensors):
 *
 * ```json
 * { "inputs": { "input": { "dims": [1, 4], "dtype": "float32", "data": [1, 2, 3, 4] } } }
 * ```
 *
 * ```ts ignore
 * import { InferenceClient } from "./client.ts";
 *
 * const client = new InferenceClient(clientNode); // a started node with the client role
 * const result = await client.infer({
 *   modelId, // hex sha-256 of the model file, held by some workers
 *   input: { inputs: { input: { dims: [1, 4], dtype: "float32", data: [1, 2, 3, 4] } } },
 *   verify: 4, // verifiers (n >= 3f + 1); false for an unverified job
 *   maxPrice: 1_000n,
 *   maxLatency: 5_000,
 *   onProgress: (p) => console.log(p.phase),
 * });
 * console.log(result.output, result.verification, result.cost);
 * ```
 *
 * @module
 */
import { JOB_FINAL_STATES } from "../../machines/job_machine.ts";
import type { HardwareClass, JobSpec } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";
import { isModelHash } from "../compute/mod.ts";
import { JOB_SPEC_DEFAULTS, type Node } from "../kernel/mod.ts";
// Types only: importing onnx_executor.ts would load onnxruntime's native library.
import { ONNX_DTYPES, type OnnxDtype } from "../compute/mod.ts";
import type { OnnxJobInput, OnnxJobOutput } from "../compute/mod.ts";

const DTYPES: readonly OnnxDtype[] = ONNX_DTYPES;

/** How a job's result was judged. */
export type VerificationOutcome = "accepted" | "disputed" | "unverified";

/** A phase change of a job followed by {@link InferenceClient.infer}. */
export interface InferenceProgress {
  readonly jobId: string;
  /** The job machine's state just entered (`bidding`, `executing`, `verifying`, ...). */
  readonly phase: string;
  /** The auction round (1, then 2 after a re-auction, ...). */
  readonly attempt: number;
  /** Milliseconds since `infer()` was called. */
  readonly elapsedMs: number;
}

/** What {@link InferenceClient.infer} takes. */
export interface InferRequest {
  /** The model's content hash (hex sha-256 of the `.onnx` file). */
  readonly modelId: string;
  /** The input tensors, JSON-encoded (see the module doc). */
  readonly input: OnnxJobInput;
  /**
   * `true` (4 verifiers, tolerating f = 1 faulty one), a verifier count, or `false` for an
   * unverified job. @default true
   */
  readonly verify?: boolean | number;
  /** Most the client pays; it is escrowed until the job settles. */
  readonly maxPrice: bigint;
  /**
   * The latency budget, ms, split into the job's deadlines: 10 % bidding (at least 20 ms, at
   * most 500 ms), the rest shared between execution (60 %) and verification (40 %).
   */
  readonly maxLatency: number;
  /** Overrides of the deadlines derived from `maxLatency`. */
  readonly deadlines?: {
    readonly bidWindowMs?: number;
    readonly executionMs?: number;
    readonly verificationMs?: number;
  };
  /** @default "cpu" */
  readonly hardware?: HardwareClass;
  /** Stake a worker must hold to be assigned. @default 0n */
  readonly minStake?: bigint;
  /** Auctions the job may run (a silent worker triggers a re-auction). @default 2 */
  readonly maxAttempts?: number;
  /** Called at every phase change of the job. */
  readonly onProgress?: (progress: InferenceProgress) => void;
  /** Cancels the job (only possible before assignment) and rejects with the abort reason. */
  readonly signal?: AbortSignal;
}

/** What {@link InferenceClient.infer} resolves to. */
export interface InferResult {
  readonly jobId: string;
  /** The final state of the job: `settled` or `refunded` (after a dispute). */
  readonly state: string;
  /**
   * The worker's output. After a dispute it is the output the quorum rejected: do not trust it.
   */
  readonly output: OnnxJobOutput;
  /** The worker's commitment to the output, as recorded on chain. */
  readonly commitment: string;
  readonly verification: VerificationOutcome;
  /** What the client paid (0n after a dispute: the escrow was refunded). */
  readonly cost: bigint;
  /** The verifiers' verdicts, by verifier. */
  readonly attestations: Readonly<Record<string, "valid" | "invalid">>;
  /** The worker that ran the job. */
  readonly worker: string;
}

/** A job ended without a result: it expired, failed, or was cancelled. */
export class InferenceError extends Error {
  override readonly name = "InferenceError";
  readonly jobId: string;
  readonly state: string;

  constructor(jobId: string, state: string, detail: string) {
    super(`Inference job "${jobId}" ended ${state}: ${detail}`);
    this.jobId = jobId;
    this.state = state;
  }
}

/** Verifiers used when `verify` is `true`: n = 4 tolerates f = 1 faulty verifier. */
export const DEFAULT_VERIFIERS: number = JOB_SPEC_DEFAULTS.verifierCount;

/** Checks the JSON tensor encoding; throws `TypeError` naming the first problem. */
export function checkOnnxInput(input: unknown): asserts input is OnnxJobInput {
  const bad = (detail: string) => new TypeError(`Invalid ONNX input: ${detail}`);
  const record = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === "object" && !Array.isArray(v);
  if (!record(input) || !record(input.inputs) || Object.keys(input.inputs).length === 0) {
    throw bad("expected { inputs: { <name>: { dims, dtype, data } } }");
  }
  for (const [name, t] of Object.entries(input.inputs)) {
    if (!record(t)) throw bad(`input "${name}" must be an object { dims, dtype, data }`);
    if (!(DTYPES as readonly unknown[]).includes(t.dtype)) {
      throw bad(`input "${name}" has dtype ${JSON.stringify(t.dtype)}`);
    }
    const dims = t.dims;
    if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`input "${name}" dims must be an array of non-negative integers`);
    }
    const count = dims.reduce((a: number, b: number) => a * b, 1);
    if (!Array.isArray(t.data) || t.data.length !== count) {
      throw bad(
        `input "${name}" has ${Array.isArray(t.data) ? t.data.length : "no"} elements but dims ${
          JSON.stringify(dims)
        } need ${count}`,
      );
    }
  }
}

/** Options of {@link InferenceClient}. */
export interface InferenceClientOptions {
  /** Milliseconds of margin past the job's last deadline before `infer()` gives up waiting. @default 10_000 */
  readonly graceMs?: number;
}

/** The inference SDK over a client node. */
export class InferenceClient {
  readonly node: Node;
  readonly #graceMs: number;

  constructor(node: Node, options: InferenceClientOptions = {}) {
    if (!node.roles.includes("client")) {
      throw new RangeError(`Cannot make an inference client of node "${node.id}": not a client`);
    }
    this.node = node;
    this.#graceMs = options.graceMs ?? 10_000;
  }

  /** The job spec `infer()` submits for `request` (exposed for tests and custom submission). */
  specFor(request: InferRequest): JobSpec {
    if (!isModelHash(request.modelId)) {
      throw new TypeError(
        `Invalid modelId: expected 64 lowercase hex digits, got ${JSON.stringify(request.modelId)}`,
      );
    }
    checkOnnxInput(request.input);
    if (!(request.maxLatency > 0) || !Number.isFinite(request.maxLatency)) {
      throw new RangeError(`Invalid maxLatency ${request.maxLatency}: must be a positive number`);
    }
    if (request.maxPrice <= 0n) {
      throw new RangeError(`Invalid maxPrice ${request.maxPrice}: must be positive`);
    }
    const verify = request.verify ?? true;
    const verifierCount = verify === true ? DEFAULT_VERIFIERS : verify === false ? 0 : verify;
    if (!Number.isSafeInteger(verifierCount) || verifierCount < 0 || verifierCount > 64) {
      throw new RangeError(`Invalid verify ${verify}: expected a boolean or a count in 0..64`);
    }
    const latency = request.maxLatency;
    const bidWindowMs = request.deadlines?.bidWindowMs ??
      Math.min(500, Math.max(20, Math.round(latency * 0.1)));
    const rest = Math.max(2, latency - bidWindowMs);
    return {
      kind: { type: "onnx", modelHash: request.modelId },
      input: request.input,
      inputCommitment: commitmentOf(request.input),
      requirements: { hardware: request.hardware ?? "cpu", minStake: request.minStake ?? 0n },
      maxPrice: request.maxPrice,
      bidWindowMs,
      executionMs: request.deadlines?.executionMs ?? Math.max(1, Math.round(rest * 0.6)),
      verificationMs: request.deadlines?.verificationMs ?? Math.max(1, Math.round(rest * 0.4)),
      maxAttempts: request.maxAttempts ?? 2,
      verifierCount,
    };
  }

  /**
   * Runs one inference through the market. Resolves when the job settles (`accepted` or
   * `unverified`) or is refunded after a dispute (`disputed`); rejects with
   * {@link InferenceError} when it expires, fails or is cancelled, with `TypeError` or
   * `RangeError` on a bad request, and with the abort reason when `signal` aborts.
   */
  infer(request: InferRequest): Promise<InferResult> {
    let spec: JobSpec;
    try {
      spec = this.specFor(request);
      request.signal?.throwIfAborted();
    } catch (error) {
      return Promise.reject(error);
    }
    const node = this.node;
    const started = performance.now();
    // Worst case: every attempt runs its bid window and execution, then one verification.
    const budget = spec.maxAttempts * (spec.bidWindowMs + spec.executionMs) +
      spec.verificationMs + this.#graceMs;
    return new Promise<InferResult>((resolve, reject) => {
      let jobId = "";
      let lastPhase = "";
      const cleanup: (() => void)[] = [];
      const finish = (error: unknown, result?: InferResult) => {
        for (const undo of cleanup.splice(0)) undo();
        if (error === undefined) resolve(result!);
        else reject(error);
      };
      const report = () => {
        const job = node.job(jobId);
        if (job === undefined || job.state === lastPhase) return;
        lastPhase = job.state;
        try {
          request.onProgress?.({
            jobId,
            phase: job.state,
            attempt: job.context.attempt,
            elapsedMs: performance.now() - started,
          });
        } catch {
          // An observer's failure is not the job's.
        }
      };
      cleanup.push(node.observe((o) => {
        if (jobId === "") return;
        if (o.type === "delivered" && o.actor === `job:${jobId}`) report();
        if (o.type === "job.finished" && o.jobId === jobId) {
          report();
          const outcome = this.#outcome(jobId);
          finish(outcome instanceof Error ? outcome : undefined, outcome as InferResult);
        }
      }));
      const timer = setTimeout(
        () =>
          finish(
            new InferenceError(
              jobId,
              node.job(jobId)?.state ?? "unknown",
              `no final state within ${budget} ms`,
            ),
          ),
        budget,
      );
      cleanup.push(() => clearTimeout(timer));
      if (request.signal) {
        const signal = request.signal;
        const onAbort = () => {
          if (jobId !== "") node.cancelJob(jobId);
          finish(signal.reason);
        };
        signal.addEventListener("abort", onAbort, { once: true });
        cleanup.push(() => signal.removeEventListener("abort", onAbort));
      }
      try {
        jobId = node.submitJob({
          spec,
          // Zero verifiers: `bft` accepts at once (2f + 1 = -1), where `majority` would dispute.
          ...(spec.verifierCount === 0
            ? { policy: { bidSelection: "lowest_price", quorum: "bft" } }
            : {}),
        });
      } catch (error) {
        finish(error);
        return;
      }
      report();
      // The job may have finished synchronously (an escrow failure): look once.
      const job = node.job(jobId);
      if (job?.done) {
        const outcome = this.#outcome(jobId);
        finish(outcome instanceof Error ? outcome : undefined, outcome as InferResult);
      }
    });
  }

  #outcome(jobId: string): InferResult | InferenceError {
    const job = this.node.job(jobId);
    if (job === undefined) return new InferenceError(jobId, "unknown", "the job actor is gone");
    const c = job.context;
    if (!(JOB_FINAL_STATES as readonly string[]).includes(job.state)) {
      return new InferenceError(jobId, job.state, "not final");
    }
    if (job.state !== "settled" && job.state !== "refunded") {
      const detail = c.failure ??
        (job.state === "expired" ? "no acceptable bid arrived" : c.refundReason ?? job.state);
      return new InferenceError(jobId, job.state, detail);
    }
    const result = c.result;
    const output = result ? c.outputs[result.worker] : undefined;
    if (result === null || output === undefined) {
      return new InferenceError(jobId, job.state, "the worker's output never reached the client");
    }
    const attestations: Record<string, "valid" | "invalid"> = {};
    for (const v of c.verifiers) {
      const a = c.attestations[v];
      if (a) attestations[v] = a.verdict;
    }
    return {
      jobId,
      state: job.state,
      output: output.value as OnnxJobOutput,
      commitment: result.commitment,
      verification: job.state === "refunded"
        ? "disputed"
        : c.spec.verifierCount === 0
        ? "unverified"
        : "accepted",
      cost: c.payment ? c.payment.amount + c.payment.fee : 0n,
      attestations,
      worker: result.worker,
    };
  }
}

/** Makes an {@link InferenceClient} over a client node. */
export function createClient(node: Node, options: InferenceClientOptions = {}): InferenceClient {
  return new InferenceClient(node, options);
}
