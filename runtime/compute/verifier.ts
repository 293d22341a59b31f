/**
 * The verifier port: a verifier re-runs a job and attests whether the worker's claimed result
 * is right. The first implementation re-executes with an {@link ExecutorPort} and compares.
 *
 * @module
 */
import type { JobSpec, Verdict } from "../../machines/types.ts";
import type { ExecuteOptions, ExecutionResult, ExecutorPort } from "./executor.ts";

/** A verifier's answer: its verdict and the commitment it computed itself. */
export interface Attestation {
  readonly verdict: Verdict;
  readonly commitment: string;
}

/** Re-runs a job and judges a claimed result. */
export interface VerifierPort {
  verify(
    spec: JobSpec,
    input: unknown,
    claimed: ExecutionResult,
    options?: ExecuteOptions,
  ): Promise<Attestation>;
}

/** Decides whether a recomputed result matches a claimed one. */
export type ResultComparator = (
  spec: JobSpec,
  recomputed: ExecutionResult,
  claimed: ExecutionResult,
) => boolean;

/** Exact comparison: the commitments must be equal (right for deterministic job kinds). */
export const exactComparator: ResultComparator = (_spec, recomputed, claimed) =>
  recomputed.commitment === claimed.commitment;

/** Verifies by re-execution. */
export class ReexecutionVerifier implements VerifierPort {
  readonly #executor: ExecutorPort;
  readonly #compare: ResultComparator;

  constructor(executor: ExecutorPort, options: { compare?: ResultComparator } = {}) {
    this.#executor = executor;
    this.#compare = options.compare ?? exactComparator;
  }

  async verify(
    spec: JobSpec,
    input: unknown,
    claimed: ExecutionResult,
    options: ExecuteOptions = {},
  ): Promise<Attestation> {
    const recomputed = await this.#executor.execute(spec, input, options);
    return {
      verdict: this.#compare(spec, recomputed, claimed) ? "valid" : "invalid",
      commitment: recomputed.commitment,
    };
  }
}
