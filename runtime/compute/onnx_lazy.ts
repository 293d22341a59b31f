/**
 * ONNX for a node without loading onnxruntime until a node runs its first ONNX job: importing
 * `onnxruntime-node` loads a native library (and needs `--allow-ffi`), which a node that only
 * runs `builtin:matmul` jobs should not pay for. {@link LazyOnnxExecutor} imports
 * `onnx_executor.ts` on first use; {@link toleranceVerifier} re-executes and compares ONNX
 * outputs with a per-model float tolerance (exact commitments for other kinds).
 *
 * @module
 */
import type { JobKind, JobSpec } from "../../machines/types.ts";
import type { ExecuteOptions, ExecutionResult, ExecutorPort } from "./executor.ts";
import type { ModelStore } from "./model_store.ts";
import type { OnnxExecutor, OnnxExecutorOptions, ToleranceOptions } from "./onnx_executor.ts";
import {
  type Attestation,
  exactComparator,
  type ResultComparator,
  type VerifierPort,
} from "./verifier.ts";

/** An {@link OnnxExecutor} created (and onnxruntime loaded) on the first ONNX job. */
export class LazyOnnxExecutor implements ExecutorPort, AsyncDisposable {
  readonly #store: ModelStore;
  readonly #options: OnnxExecutorOptions;
  #executor: Promise<OnnxExecutor> | undefined;

  constructor(store: ModelStore, options: OnnxExecutorOptions = {}) {
    this.#store = store;
    this.#options = options;
  }

  supports(kind: JobKind): boolean {
    return kind.type === "onnx";
  }

  async execute(
    spec: JobSpec,
    input: unknown,
    options: ExecuteOptions = {},
  ): Promise<ExecutionResult> {
    options.signal?.throwIfAborted();
    this.#executor ??= import("./onnx_executor.ts").then((m) =>
      new m.OnnxExecutor(this.#store, this.#options)
    );
    return (await this.#executor).execute(spec, input, options);
  }

  /** Releases the sessions, if onnxruntime was ever loaded. */
  async close(): Promise<void> {
    const executor = this.#executor;
    this.#executor = undefined;
    if (executor) await (await executor).close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A verifier that re-runs the job with `executor` and compares: ONNX outputs within the float
 * tolerance of their model (`tolerances[modelHash]`, else `tolerances["*"]`, else
 * `{ atol: 1e-5, rtol: 1e-4 }`; see `toleranceComparator`), other kinds by exact commitment.
 */
export function toleranceVerifier(
  executor: ExecutorPort,
  tolerances: Readonly<Record<string, ToleranceOptions>> = {},
): VerifierPort {
  let comparator: Promise<ResultComparator> | undefined;
  const load = async (): Promise<ResultComparator> => {
    const { toleranceComparator } = await import("./onnx_executor.ts");
    const byModel = new Map(
      Object.entries(tolerances).map(([hash, t]) => [hash, toleranceComparator(t)]),
    );
    const fallback = byModel.get("*") ?? toleranceComparator();
    return (spec, recomputed, claimed) =>
      spec.kind.type === "onnx"
        ? (byModel.get(spec.kind.modelHash) ?? fallback)(spec, recomputed, claimed)
        : exactComparator(spec, recomputed, claimed);
  };
  return {
    async verify(spec, input, claimed, options = {}): Promise<Attestation> {
      const recomputed = await executor.execute(spec, input, options);
      const compare = spec.kind.type === "onnx" ? await (comparator ??= load()) : exactComparator;
      return {
        verdict: compare(spec, recomputed, claimed) ? "valid" : "invalid",
        commitment: recomputed.commitment,
      };
    },
  };
}
