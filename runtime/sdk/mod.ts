/**
 * The SDK: `createClient(node).infer(...)` submits an inference job through a client node and
 * resolves with the verified output, its commitment, the verification outcome and the cost.
 *
 * ```ts
 * import { DEFAULT_VERIFIERS } from "./mod.ts";
 *
 * console.log(DEFAULT_VERIFIERS > 0); // true
 * ```
 *
 * @module
 */
export * from "./client.ts";
