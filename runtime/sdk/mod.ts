/**
 * The SDK: `createClient(node, { chain }).infer(...)` submits an inference job through a client
 * node and resolves with the output, how strongly it was checked (`confidence`), the chain's
 * record of the check (`onChainVerified`, `proofHash`) and the cost; `verifyProof` checks a
 * proof hash against the chain.
 *
 * ```ts
 * import { DEFAULT_VERIFIERS, PRIORITY_BID_WINDOW } from "./mod.ts";
 *
 * console.log(DEFAULT_VERIFIERS > 0); // true
 * console.log(PRIORITY_BID_WINDOW.high.maxMs < PRIORITY_BID_WINDOW.low.maxMs); // true
 * ```
 *
 * @module
 */
export * from "./client.ts";
export * from "./proof.ts";
