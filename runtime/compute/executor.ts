/**
 * The executor port and its first implementation: the built-in `matmul` job kind, a
 * deterministic matrix product that needs no model file. ONNX models plug in as another
 * {@link ExecutorPort} (see `onnx_executor.ts`).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { JobKind, JobSpec } from "../../machines/types.ts";

/** What an execution produces: the output and a commitment (hex sha-256) to it. */
export interface ExecutionResult {
  readonly output: unknown;
  readonly commitment: string;
}

/** Options every execution takes. */
export interface ExecuteOptions {
  readonly signal?: AbortSignal;
}

/** Runs a job's computation. */
export interface ExecutorPort {
  /** Whether this executor can run jobs of `kind`. */
  supports(kind: JobKind): boolean;
  execute(spec: JobSpec, input: unknown, options?: ExecuteOptions): Promise<ExecutionResult>;
}

/** A job's input or output did not have the shape its kind needs. */
export class ExecutionError extends Error {
  override readonly name = "ExecutionError";
}

/**
 * JSON with sorted keys and `bigint` as decimal strings: the bytes a commitment covers. An own
 * `__proto__` key (`JSON.parse` makes one as any other key) is encoded as any other key, whatever
 * the host's `__proto__` setter does (null-prototype copies, as `protocols/spec_hash.ts`): two
 * values that differ only there commit apart (review R6 L5).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object" && !ArrayBuffer.isView(value)) {
    // No prototype: an own `__proto__` key is set as a key, not as the copy's prototype.
    const out: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(value).sort()) {
      out[key] = sortKeys((value as Record<string, unknown>)[key]);
    }
    return out;
  }
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  return value;
}

/** Hex sha-256 of a string or bytes. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The commitment to a value: sha-256 of its canonical JSON. */
export function commitmentOf(value: unknown): string {
  return sha256Hex(canonicalJson(value));
}

/** Input of a `builtin:matmul` job: two integer matrices. */
export interface MatmulInput {
  readonly a: readonly (readonly number[])[];
  readonly b: readonly (readonly number[])[];
}

function checkMatrix(name: string, m: unknown): number[][] {
  if (!Array.isArray(m) || m.length === 0) {
    throw new ExecutionError(`Invalid matmul input: "${name}" must be a non-empty array of rows`);
  }
  const width = Array.isArray(m[0]) ? m[0].length : 0;
  for (const [i, row] of m.entries()) {
    if (!Array.isArray(row) || row.length !== width || width === 0) {
      throw new ExecutionError(
        `Invalid matmul input: "${name}" row ${i} must have ${width} numbers`,
      );
    }
    for (const x of row) {
      if (!Number.isSafeInteger(x)) {
        throw new ExecutionError(
          `Invalid matmul input: "${name}" row ${i} holds ${x}, not a safe integer`,
        );
      }
    }
  }
  return m as number[][];
}

/** The integer matrix product `a × b`, exact (bigint accumulation, returned as numbers when safe). */
export function matmul(input: unknown): (number | string)[][] {
  const { a: rawA, b: rawB } = (input ?? {}) as Partial<MatmulInput>;
  const a = checkMatrix("a", rawA);
  const b = checkMatrix("b", rawB);
  const inner = a[0]!.length;
  if (b.length !== inner) {
    throw new ExecutionError(
      `Invalid matmul input: a is ${a.length}x${inner} but b has ${b.length} rows`,
    );
  }
  const cols = b[0]!.length;
  return a.map((row) => {
    const out: (number | string)[] = [];
    for (let j = 0; j < cols; j++) {
      let sum = 0n;
      for (let k = 0; k < inner; k++) sum += BigInt(row[k]!) * BigInt(b[k]![j]!);
      out.push(
        sum >= BigInt(Number.MIN_SAFE_INTEGER) && sum <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(sum)
          : sum.toString(),
      );
    }
    return out;
  });
}

/** The built-in executor: runs `builtin:matmul` jobs. */
export class BuiltinExecutor implements ExecutorPort {
  supports(kind: JobKind): boolean {
    return kind.type === "builtin" && kind.name === "matmul";
  }

  execute(spec: JobSpec, input: unknown, options: ExecuteOptions = {}): Promise<ExecutionResult> {
    options.signal?.throwIfAborted();
    if (!this.supports(spec.kind)) {
      return Promise.reject(
        new ExecutionError(`Cannot execute job kind ${JSON.stringify(spec.kind)}: not built in`),
      );
    }
    try {
      const output = matmul(input);
      return Promise.resolve({ output, commitment: commitmentOf(output) });
    } catch (error) {
      return Promise.reject(error);
    }
  }
}

/** Routes each job to the first executor that supports its kind. */
export class CompositeExecutor implements ExecutorPort {
  readonly #executors: readonly ExecutorPort[];

  constructor(executors: readonly ExecutorPort[]) {
    this.#executors = [...executors];
  }

  supports(kind: JobKind): boolean {
    return this.#executors.some((e) => e.supports(kind));
  }

  execute(spec: JobSpec, input: unknown, options: ExecuteOptions = {}): Promise<ExecutionResult> {
    const executor = this.#executors.find((e) => e.supports(spec.kind));
    if (executor === undefined) {
      return Promise.reject(
        new ExecutionError(
          `Cannot execute job kind ${JSON.stringify(spec.kind)}: no executor supports it`,
        ),
      );
    }
    return executor.execute(spec, input, options);
  }
}
