/**
 * Compute: what a worker runs and a verifier re-runs. Executors (`builtin:matmul`, ONNX through
 * onnxruntime, loaded lazily), verifiers (re-execution with an exact or tolerant comparison),
 * a bounded pool of executions, content-addressed model stores and fetching a model from peers.
 *
 * ```ts
 * import { BuiltinExecutor, commitmentOf, ReexecutionVerifier } from "./mod.ts";
 * import type { JobSpec } from "../../machines/types.ts";
 *
 * const input = { a: [[1, 2]], b: [[3], [4]] };
 * const spec: JobSpec = {
 *   kind: { type: "builtin", name: "matmul" },
 *   input,
 *   inputCommitment: commitmentOf(input),
 *   requirements: { hardware: "cpu", minStake: 0n },
 *   maxPrice: 10n,
 *   bidWindowMs: 50,
 *   executionMs: 1_000,
 *   verificationMs: 1_000,
 *   maxAttempts: 1,
 *   verifierCount: 1,
 * };
 * const executor = new BuiltinExecutor();
 * const result = await executor.execute(spec, input);
 * const attestation = await new ReexecutionVerifier(executor).verify(spec, input, result);
 * console.log(result.output, attestation.verdict); // [[11]] "valid"
 * ```
 *
 * @module
 */
export * from "./executor.ts";
export * from "./verifier.ts";
export * from "./worker_pool.ts";
export * from "./model_store.ts";
export * from "./model_fetch.ts";
export * from "./onnx_dtypes.ts";
// Types only: onnxruntime is a native library that loads on first use (`onnx_lazy.ts`); import
// `./onnx_executor.ts` itself (this package's native entry) for `OnnxExecutor`.
export type {
  OnnxExecutorOptions,
  OnnxJobInput,
  OnnxJobOutput,
  OnnxTensorJson,
  ToleranceOptions,
} from "./onnx_executor.ts";
export * from "./onnx_lazy.ts";
export * from "./onnx_model_builder.ts";
