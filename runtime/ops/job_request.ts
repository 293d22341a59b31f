/**
 * A job request as JSON gives it (`POST /jobs`, `deno task submit --spec`, `deno task ciro`):
 * validated with zod, amounts as integers or decimal strings, defaults filled in, and the input
 * commitment computed when only the input is given. A bad request throws a
 * {@link JobRequestError} naming the field.
 *
 * ```ts
 * import { parseJobRequest } from "./job_request.ts";
 *
 * const request = parseJobRequest({
 *   spec: { kind: { type: "builtin", name: "matmul" }, input: { a: [[1]], b: [[2]] }, maxPrice: 10 },
 * });
 * console.log(request.spec.verifierCount, request.spec.maxPrice); // 4 10n
 * ```
 *
 * @module
 */
import { z } from "zod";
import type { JobPolicy } from "../../machines/policies.ts";
import { BID_SELECTION_POLICIES, QUORUM_POLICIES } from "../../machines/policies.ts";
import { type JobSpec, MAX_VERIFIERS } from "../../machines/types.ts";
import { commitmentOf } from "../compute/mod.ts";
import { JOB_SPEC_DEFAULTS, type JobRequest } from "../kernel/mod.ts";

/** A job request that failed validation; `key` names the field. */
export class JobRequestError extends Error {
  override readonly name = "JobRequestError";
  readonly code = "invalid_job_request";
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.key = key;
  }
}

const amount = z.union([
  z.number().int("must be an integer").nonnegative("must not be negative").refine(
    Number.isSafeInteger,
    "must be a safe integer; write larger amounts as a decimal string",
  ),
  z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "must be a non-negative decimal integer"),
], { error: "must be a non-negative integer or a decimal string" }).transform((v) => BigInt(v));
const ms = z.number({ error: "must be a number of milliseconds" }).int("must be an integer").min(
  1,
  "must be at least 1",
).max(2 ** 31 - 1, "must be at most 2147483647");
const hash = z.string().regex(/^[0-9a-f]{64}$/, "must be a hex sha-256");

const specSchema = z.strictObject({
  kind: z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("builtin"), name: z.literal("matmul") }),
    z.strictObject({ type: z.literal("onnx"), modelHash: hash }),
  ], { error: 'must be {"type": "builtin", "name": "matmul"} or {"type": "onnx", "modelHash"}' }),
  inputCommitment: hash.optional(),
  input: z.unknown().optional(),
  // The defaults are the node's (JOB_SPEC_DEFAULTS), as submitJob and the SDK fill them.
  requirements: z.strictObject({
    hardware: z.enum(["cpu", "gpu"], { error: "must be cpu or gpu" }).default(
      JOB_SPEC_DEFAULTS.requirements.hardware,
    ),
    minStake: amount.default(JOB_SPEC_DEFAULTS.requirements.minStake),
  }).default({ ...JOB_SPEC_DEFAULTS.requirements }),
  maxPrice: amount,
  bidWindowMs: ms.default(JOB_SPEC_DEFAULTS.bidWindowMs),
  executionMs: ms.default(JOB_SPEC_DEFAULTS.executionMs),
  verificationMs: ms.default(JOB_SPEC_DEFAULTS.verificationMs),
  maxAttempts: z.number().int("must be an integer").min(1, "must be in [1, 16]").max(
    16,
    "must be in [1, 16]",
  ).default(JOB_SPEC_DEFAULTS.maxAttempts),
  verifierCount: z.number().int("must be an integer").min(0, `must be in [0, ${MAX_VERIFIERS}]`)
    .max(MAX_VERIFIERS, `must be in [0, ${MAX_VERIFIERS}]`).default(
      JOB_SPEC_DEFAULTS.verifierCount,
    ),
  priority: z.enum(["low", "normal", "high"], { error: "must be low, normal or high" }).optional(),
});

export const JOB_REQUEST_SCHEMA = z.strictObject({
  spec: specSchema,
  jobId: z.string().min(1).max(100).regex(
    /^[A-Za-z0-9._\-]+$/,
    "must be 1 to 100 letters, digits, '.', '_' or '-'",
  ).optional(),
  policy: z.strictObject({
    bidSelection: z.enum(BID_SELECTION_POLICIES as [string, ...string[]], {
      error: `must be one of ${BID_SELECTION_POLICIES.join(", ")}`,
    }),
    quorum: z.enum(QUORUM_POLICIES as [string, ...string[]], {
      error: `must be one of ${QUORUM_POLICIES.join(", ")}`,
    }),
  }).optional(),
});

/**
 * Validates a job request as JSON gives it (amounts as integers or decimal strings). Fills in
 * defaults (cpu, min stake 0, bid window 500 ms, execution and verification 10 s, 3 attempts,
 * 4 verifiers) and the input commitment when only the input is given. Throws
 * {@link JobRequestError} naming the field.
 */
export function parseJobRequest(raw: unknown): JobRequest {
  const result = JOB_REQUEST_SCHEMA.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      const key = [...path, issue.keys[0] ?? ""].join(".");
      throw new JobRequestError(key, `Invalid job request "${key}": unknown key`);
    }
    const key = path.join(".");
    let value: unknown = raw;
    for (const part of path) {
      value = value !== null && typeof value === "object"
        ? (value as Record<string, unknown>)[part]
        : undefined;
    }
    const message = value === undefined
      ? "is required"
      : issue.code === "invalid_type" && issue.message.startsWith("Invalid input")
      ? `must be a ${issue.expected}`
      : issue.message;
    throw new JobRequestError(key, `Invalid job request "${key}": ${message}`);
  }
  const { spec, jobId, policy } = result.data;
  const { inputCommitment, input, priority, ...rest } = spec;
  let commitment = inputCommitment;
  if (input !== undefined) {
    const actual = commitmentOf(input);
    if (commitment !== undefined && commitment !== actual) {
      throw new JobRequestError(
        "spec.inputCommitment",
        'Invalid job request "spec.inputCommitment": does not match the input',
      );
    }
    commitment = actual;
  }
  if (commitment === undefined) {
    throw new JobRequestError(
      "spec.inputCommitment",
      'Invalid job request "spec.inputCommitment": is required when no input is given',
    );
  }
  const full: JobSpec = {
    ...rest,
    inputCommitment: commitment,
    ...(input !== undefined ? { input } : {}),
    ...(priority !== undefined ? { priority } : {}),
  };
  return {
    spec: full,
    ...(jobId !== undefined ? { jobId } : {}),
    ...(policy !== undefined ? { policy: policy as JobPolicy } : {}),
  };
}
