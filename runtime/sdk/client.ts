/**
 * The SDK shape from the seeds: `client.infer({ modelId, input, generateProof, priority,
 * maxLatency })` on a client node, read as `result.output`, `result.confidence`,
 * `result.proofHash`, `result.onChainVerified`. It builds the job spec (the input's commitment,
 * deadlines from the latency budget and the priority, the verifier count from `verify`), submits
 * the job, follows the job actor until it is final, and reads the chain's record of the check.
 *
 * The input is the JSON tensor encoding of `onnx_executor.ts`, and it rides along with the job
 * announcement (small tensors):
 *
 * ```json
 * { "inputs": { "input": { "dims": [1, 4], "dtype": "float32", "data": [1, 2, 3, 4] } } }
 * ```
 *
 * ```ts
 * import type { ChainPort } from "../../chain/port.ts";
 * import type { Node } from "../kernel/mod.ts";
 * import { createClient, InferenceError, verifyProof } from "./mod.ts";
 *
 * // `clientNode`: a started node with the client role; `chain`: the port it was created with.
 * async function classify(clientNode: Node, chain: ChainPort, modelId: string) {
 *   const client = createClient(clientNode, { chain });
 *   try {
 *     const result = await client.infer({
 *       modelId, // hex sha-256 of the model file, held by some workers
 *       input: { inputs: { input: { dims: [1, 4], dtype: "float32", data: [1, 2, 3, 4] } } },
 *       generateProof: true, // the chain's record of the check (settlement "chain")
 *       priority: "high", // a shorter bid window; served first by workers at capacity
 *       maxPrice: 1_000n,
 *       maxLatency: 5_000,
 *     });
 *     if (result.error) throw result.error; // disputed: the quorum rejected the output
 *     const { valid, n, f } = result.confidence;
 *     console.log(result.output, `${valid}/${n} verifiers (f = ${f})`, result.cost);
 *     console.log("on chain at block", result.onChainVerified?.blockNumber);
 *     if (result.proofHash) await verifyProof(chain, result.jobId, result.proofHash);
 *   } catch (error) {
 *     if (error instanceof InferenceError) console.log(error.reason, error.detail);
 *     else throw error;
 *   }
 * }
 * console.log(typeof classify); // function
 * ```
 *
 * @module
 */
import { JOB_FINAL_STATES } from "../../machines/job_machine.ts";
import type { ChainPort } from "../../chain/port.ts";
import type { HardwareClass, JobPriority, JobSpec } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";
import { isModelHash } from "../compute/mod.ts";
import { JOB_SPEC_DEFAULTS, type Node } from "../kernel/mod.ts";
// Types only: importing onnx_executor.ts would load onnxruntime's native library.
import { ONNX_DTYPES, type OnnxDtype } from "../compute/mod.ts";
import type { OnnxJobInput, OnnxJobOutput } from "../compute/mod.ts";
import { fetchProof, ProofError } from "./proof.ts";

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
  /**
   * What the job buys (recorded in its spec, so it replays): `"high"` halves the bid window
   * derived from `maxLatency` (at most 250 ms), `"low"` doubles it (at most 1,000 ms); and a
   * worker at its limits bids on the jobs it declined as busy in order of priority, then
   * arrival. @default "normal"
   */
  readonly priority?: JobPriority;
  /**
   * Asks for the chain's record of the check: the result's `proofHash` (needs the client's
   * chain port in {@link InferenceClientOptions.chain}; null under `settlement: "legacy"`).
   * @default false
   */
  readonly generateProof?: boolean;
  /** Auctions the job may run (a silent worker triggers a re-auction). @default 2 */
  readonly maxAttempts?: number;
  /** Called at every phase change of the job. */
  readonly onProgress?: (progress: InferenceProgress) => void;
  /** Cancels the job (only possible before assignment) and rejects with the abort reason. */
  readonly signal?: AbortSignal;
}

/** How strongly a result was checked. */
export interface Confidence {
  /** `valid / n`: the share of the chosen verifiers that attested the result valid (1 unverified). */
  readonly share: number;
  /** Chosen verifiers that attested the result valid. */
  readonly valid: number;
  /** Verifiers chosen. */
  readonly n: number;
  /** Faulty verifiers tolerated: the largest f with n >= 3f + 1. */
  readonly f: number;
  readonly outcome: VerificationOutcome;
}

/** The chain's record of the verdict. */
export interface OnChainRecord {
  readonly verdict: "verified" | "disputed";
  readonly blockNumber: number;
  /** The verdict event, `block:tx:index`. */
  readonly ref: string;
}

/** What {@link InferenceClient.infer} resolves to. */
export interface InferResult {
  readonly jobId: string;
  /**
   * The final state of the job: `settled` or `refunded` (after a dispute).
   * @deprecated Read `confidence.outcome` (and `error` for a dispute); kept for one version.
   */
  readonly state: string;
  /**
   * The worker's output. After a dispute it is the output the quorum rejected: do not trust it.
   */
  readonly output: OnnxJobOutput;
  /** The worker's commitment to the output, as recorded on chain. */
  readonly commitment: string;
  /** @deprecated Same as `confidence.outcome`; kept for one version. */
  readonly verification: VerificationOutcome;
  readonly confidence: Confidence;
  /**
   * With `generateProof` under `settlement: "chain"`: the hash of the chain's record of the check
   * (see `verifyProof`); otherwise null.
   */
  readonly proofHash: string | null;
  /** The verdict the chain recorded, with its block; null without the client's chain port. */
  readonly onChainVerified: OnChainRecord | null;
  /** A dispute: an {@link InferenceError} with reason `disputed`, else null. */
  readonly error: InferenceError | null;
  /** What the client paid (0n after a dispute: the escrow was refunded). */
  readonly cost: bigint;
  /** The verifiers' verdicts, by verifier: as the chain recorded them under chain settlement, else as this node heard them. */
  readonly attestations: Readonly<Record<string, "valid" | "invalid">>;
  /** The worker that ran the job. */
  readonly worker: string;
}

/**
 * Why a job gave no trusted result: `no_bid` (no acceptable bid in any auction), `input_refused`
 * (the worker's execution failed on the input, confirmed where verified), `disputed` (the
 * verifiers' quorum rejected the result), `failed` (another failure), `timeout` (no final state
 * in time), `proof_unavailable` (the proof asked for could not be read from the chain).
 */
export type InferenceFailure =
  | "no_bid"
  | "input_refused"
  | "disputed"
  | "failed"
  | "timeout"
  | "proof_unavailable";

/** A job ended without a (trusted) result; `reason` says why and `detail` what happened. */
export class InferenceError extends Error {
  override readonly name = "InferenceError";
  readonly jobId: string;
  readonly state: string;
  readonly reason: InferenceFailure;
  /** Same as `reason`. */
  readonly code: InferenceFailure;
  readonly detail: string;

  constructor(jobId: string, state: string, detail: string, reason: InferenceFailure = "failed") {
    super(`Inference job "${jobId}" ended ${state}: ${detail}`);
    this.jobId = jobId;
    this.state = state;
    this.reason = reason;
    this.code = reason;
    this.detail = detail;
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
  /**
   * The client node's chain port (the one given to `createNode`): the SDK reads the verdict's
   * block (`onChainVerified`) and the proof (`generateProof`) from it.
   */
  readonly chain?: ChainPort;
}

/** The bid window's share of `maxLatency` and its ceiling, by priority. */
export const PRIORITY_BID_WINDOW: Readonly<
  Record<JobPriority, { readonly share: number; readonly maxMs: number }>
> = {
  high: { share: 0.05, maxMs: 250 },
  normal: { share: 0.1, maxMs: 500 },
  low: { share: 0.2, maxMs: 1_000 },
};

/** The inference SDK over a client node. */
export class InferenceClient {
  readonly node: Node;
  readonly #graceMs: number;
  readonly #chain: ChainPort | undefined;

  constructor(node: Node, options: InferenceClientOptions = {}) {
    if (!node.roles.includes("client")) {
      throw new RangeError(`Cannot make an inference client of node "${node.id}": not a client`);
    }
    this.node = node;
    this.#graceMs = options.graceMs ?? 10_000;
    this.#chain = options.chain;
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
    const priority = request.priority ?? "normal";
    if (!Object.hasOwn(PRIORITY_BID_WINDOW, priority)) {
      throw new RangeError(
        `Invalid priority ${JSON.stringify(priority)}: expected "low", "normal" or "high"`,
      );
    }
    if (request.generateProof && this.#chain === undefined) {
      throw new RangeError(
        "Cannot generate a proof: the client has no chain port (createClient(node, { chain }))",
      );
    }
    const latency = request.maxLatency;
    const window = PRIORITY_BID_WINDOW[priority];
    const bidWindowMs = request.deadlines?.bidWindowMs ??
      Math.min(window.maxMs, Math.max(20, Math.round(latency * window.share)));
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
      ...(request.priority === undefined ? {} : { priority }),
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
      let settling = false;
      const settle = () => {
        if (settling) return;
        settling = true;
        this.#outcome(jobId, request.generateProof === true).then(
          (outcome) =>
            finish(outcome instanceof Error ? outcome : undefined, outcome as InferResult),
          (error) => finish(error),
        );
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
          settle();
        }
      }));
      const timer = setTimeout(
        () =>
          finish(
            new InferenceError(
              jobId,
              node.job(jobId)?.state ?? "unknown",
              `no final state within ${budget} ms`,
              "timeout",
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
          // Zero verifiers: `bft` accepts at once (2f + 1 = -1), where `majority` would dispute;
          // the node's settlement stays (chain-decided: the chain pays an unverified job's result).
          ...(spec.verifierCount === 0 ? { policy: { ...node.policy, quorum: "bft" } } : {}),
        });
      } catch (error) {
        finish(error);
        return;
      }
      report();
      // The job may have finished synchronously (an escrow failure): look once.
      const job = node.job(jobId);
      if (job?.done) settle();
    });
  }

  async #outcome(jobId: string, generateProof: boolean): Promise<InferResult | InferenceError> {
    const job = this.node.job(jobId);
    if (job === undefined) return new InferenceError(jobId, "unknown", "the job actor is gone");
    const c = job.context;
    if (!(JOB_FINAL_STATES as readonly string[]).includes(job.state)) {
      return new InferenceError(jobId, job.state, "not final");
    }
    if (job.state !== "settled" && job.state !== "refunded") {
      if (job.state === "expired") {
        const bids = Object.keys(c.bids).length;
        const detail = bids === 0
          ? `no worker bid in ${c.attempt} auction(s)`
          : `${bids} bid(s) arrived but none was acceptable (price, stake, hardware) in ${c.attempt} auction(s)`;
        return new InferenceError(jobId, job.state, c.failure ?? detail, "no_bid");
      }
      const failure = c.failure ?? c.refundReason ?? job.state;
      const refused = failure.startsWith("execution failed");
      return new InferenceError(jobId, job.state, failure, refused ? "input_refused" : "failed");
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
    const outcome: VerificationOutcome = job.state === "refunded"
      ? "disputed"
      : c.spec.verifierCount === 0
      ? "unverified"
      : "accepted";
    // The chain's record: the verdict's block, and under chain settlement the proof.
    let proof: Awaited<ReturnType<typeof fetchProof>> | null = null;
    if (this.#chain !== undefined && c.spec.verifierCount > 0) {
      try {
        proof = await fetchProof(this.#chain, jobId);
      } catch (error) {
        if (generateProof) {
          const detail = error instanceof Error ? error.message : String(error);
          return new InferenceError(jobId, job.state, detail, "proof_unavailable");
        }
        if (!(error instanceof ProofError)) throw error;
      }
    }
    // Under chain settlement the chain's count is the truth; otherwise what the client heard.
    const chainDecided = c.policy.settlement === "chain" && proof !== null;
    if (chainDecided) {
      // The chain's record, not the gossip this node happened to hear before the verdict.
      for (const a of proof!.attestations) {
        if (c.verifiers.includes(a.verifier)) attestations[a.verifier] = a.verdict;
      }
    }
    const n = c.verifiers.length;
    const valid = chainDecided
      ? proof!.attestations.filter((a) => c.verifiers.includes(a.verifier) && a.verdict === "valid")
        .length
      : Object.values(attestations).filter((v) => v === "valid").length;
    const confidence: Confidence = {
      share: n === 0 ? (outcome === "unverified" ? 1 : 0) : valid / n,
      valid,
      n,
      f: n === 0 ? 0 : Math.floor((n - 1) / 3),
      outcome,
    };
    return {
      jobId,
      state: job.state,
      output: output.value as OnnxJobOutput,
      commitment: result.commitment,
      verification: outcome,
      confidence,
      proofHash: generateProof && chainDecided ? proof!.proofHash : null,
      onChainVerified: proof === null ? null : {
        verdict: proof.decision.name === "JobVerified" ? "verified" : "disputed",
        blockNumber: proof.decision.blockNumber,
        ref: proof.decision.ref,
      },
      error: outcome === "disputed"
        ? new InferenceError(
          jobId,
          job.state,
          `${n - valid} of ${n} chosen verifiers attested the result invalid`,
          "disputed",
        )
        : null,
      // What left the escrow for good: the worker's pay, the fee and the verifiers' share.
      cost: c.payment ? c.escrowed - c.payment.change : 0n,
      attestations,
      worker: result.worker,
    };
  }
}

/** Makes an {@link InferenceClient} over a client node. */
export function createClient(node: Node, options: InferenceClientOptions = {}): InferenceClient {
  return new InferenceClient(node, options);
}
