/**
 * Real ONNX execution with onnxruntime-node: the {@link OnnxExecutor} runs jobs of kind
 * `{ type: "onnx", modelHash }` on the CPU, loading models from a {@link ModelStore} and keeping
 * a bounded LRU cache of inference sessions. Also here: {@link toleranceComparator}, which lets
 * a verifier accept float noise in a recomputed ONNX output, and {@link CompositeExecutor},
 * which routes each job kind to the executor that supports it.
 *
 * Input and output are plain JSON, so they can be journaled and hashed:
 *
 * ```json
 * { "inputs": { "input": { "dims": [1, 4], "dtype": "float32", "data": [1, 2, 3, 4] } } }
 * { "outputs": { "output": { "dims": [1, 2], "dtype": "float32", "data": [0.25, -1.5] } } }
 * ```
 *
 * Float32 values read back as JS numbers are exact, so the canonical JSON of an output, and its
 * commitment, is stable across runs on the same build.
 *
 * ```ts
 * import { OnnxExecutor } from "./onnx_executor.ts";
 * import { MemoryModelStore } from "./model_store.ts";
 * import { buildLinearModel } from "./onnx_model_builder.ts";
 *
 * const store = new MemoryModelStore();
 * const modelHash = await store.put(buildLinearModel({ inputSize: 2, outputSize: 1, seed: 7 }));
 * await using executor = new OnnxExecutor(store);
 * const spec = {
 *   kind: { type: "onnx", modelHash },
 *   inputCommitment: "",
 *   requirements: { hardware: "cpu", minStake: 0n },
 *   maxPrice: 1n,
 *   bidWindowMs: 1,
 *   executionMs: 1,
 *   verificationMs: 1,
 *   maxAttempts: 1,
 *   verifierCount: 1,
 * } as const;
 * const input = { inputs: { input: { dims: [1, 2], dtype: "float32", data: [1, 2] } } };
 * const { output, commitment } = await executor.execute(spec, input);
 * console.assert(commitment.length === 64, output);
 * ```
 *
 * Run `deno run -A runtime/onnx_executor.ts --bench` to measure session creation and
 * inference latency of a 64->128->10 MLP.
 *
 * @module
 */
import { abortable } from "./_abort.ts";
import { InferenceSession, Tensor } from "onnxruntime-node";
import type { JobKind, JobSpec } from "../../machines/types.ts";
import {
  commitmentOf,
  type ExecuteOptions,
  ExecutionError,
  type ExecutionResult,
  type ExecutorPort,
} from "./executor.ts";
import type { ResultComparator } from "./verifier.ts";
import { isModelHash, type ModelStore } from "./model_store.ts";

import { ONNX_DTYPES, type OnnxDtype } from "./onnx_dtypes.ts";

export { ONNX_DTYPES, type OnnxDtype };

/** A tensor in job JSON: row-major `data` with `dims.reduce(×)` elements. */
export interface OnnxTensorJson {
  readonly dims: readonly number[];
  readonly dtype: OnnxDtype;
  /**
   * The values. 64-bit integers beyond the safe range travel as decimal strings; `bool`
   * takes 0/1 (or `true`/`false` on input).
   */
  readonly data: readonly (number | string | boolean)[];
}

/** The input of an ONNX job. */
export interface OnnxJobInput {
  readonly inputs: Readonly<Record<string, OnnxTensorJson>>;
}

/** The output of an ONNX job: every model output, by name (sorted). */
export interface OnnxJobOutput {
  readonly outputs: Readonly<Record<string, OnnxTensorJson>>;
}

/** Options of {@link OnnxExecutor}. */
export interface OnnxExecutorOptions {
  /** How many inference sessions stay loaded (least recently used go first). @default 4 */
  readonly maxSessions?: number;
  /** Threads onnxruntime uses inside one operator. @default 1 */
  readonly intraOpNumThreads?: number;
  /** Graph optimizations onnxruntime applies when loading a model. @default "all" */
  readonly graphOptimizationLevel?: "disabled" | "basic" | "extended" | "all";
}

interface CachedSession {
  readonly ready: Promise<InferenceSession>;
  /** Runs in flight; an evicted session is released when this drops to 0. */
  users: number;
  evicted: boolean;
}

const INTEGER_RANGES: Partial<Record<OnnxDtype, readonly [number, number]>> = {
  int8: [-128, 127],
  uint8: [0, 255],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  bool: [0, 1],
};

/** Runs ONNX jobs on the CPU with onnxruntime-node. */
export class OnnxExecutor implements ExecutorPort, AsyncDisposable {
  readonly #store: ModelStore;
  readonly #maxSessions: number;
  readonly #sessionOptions: InferenceSession.SessionOptions;
  /** Insertion order is recency order: the first key is the least recently used. */
  readonly #sessions = new Map<string, CachedSession>();
  #closed = false;

  constructor(store: ModelStore, options: OnnxExecutorOptions = {}) {
    const maxSessions = options.maxSessions ?? 4;
    const threads = options.intraOpNumThreads ?? 1;
    if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
      throw new RangeError(`Invalid maxSessions: expected a positive integer, got ${maxSessions}`);
    }
    if (!Number.isSafeInteger(threads) || threads < 1) {
      throw new RangeError(
        `Invalid intraOpNumThreads: expected a positive integer, got ${threads}`,
      );
    }
    this.#store = store;
    this.#maxSessions = maxSessions;
    this.#sessionOptions = {
      executionProviders: ["cpu"],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      graphOptimizationLevel: options.graphOptimizationLevel ?? "all",
      // Failures come back as ExecutionError with onnxruntime's message; no second copy on stderr.
      logSeverityLevel: 4,
    };
  }

  supports(kind: JobKind): boolean {
    return kind.type === "onnx";
  }

  /** Hashes of the models whose sessions are loaded, least recently used first. */
  get loadedModels(): string[] {
    return [...this.#sessions.keys()];
  }

  /**
   * Runs the job's model on `input` ({@link OnnxJobInput}) and returns an
   * {@link OnnxJobOutput}. Rejects with `ExecutionError` on a bad input or a model
   * onnxruntime cannot load, and with `ModelNotFoundError` or `ModelIntegrityError` from the
   * store. An abort rejects at once; a run already inside onnxruntime finishes in the
   * background and its result is dropped.
   */
  async execute(
    spec: JobSpec,
    input: unknown,
    options: ExecuteOptions = {},
  ): Promise<ExecutionResult> {
    const { signal } = options;
    signal?.throwIfAborted();
    if (this.#closed) throw new ExecutionError("Cannot execute job: the ONNX executor is closed");
    const kind = spec.kind;
    if (kind.type !== "onnx") {
      throw new ExecutionError(`Cannot execute job kind ${JSON.stringify(kind)}: not an ONNX job`);
    }
    if (!isModelHash(kind.modelHash)) {
      throw new ExecutionError(
        `Invalid ONNX job: model hash must be 64 lowercase hex digits, got ${
          JSON.stringify(kind.modelHash)
        }`,
      );
    }
    const entry = this.#acquire(kind.modelHash);
    let inFlight: Promise<unknown> | undefined;
    try {
      const session = await abortable(entry.ready, signal);
      const feeds = toFeeds(session, input);
      const run = session.run(feeds, { logSeverityLevel: 4 }).catch((error: unknown) => {
        throw new ExecutionError(`Cannot run ONNX model ${kind.modelHash}: ${messageOf(error)}`, {
          cause: error,
        });
      });
      inFlight = run;
      const results = await abortable(run, signal);
      const output = toOutput(results);
      return { output, commitment: commitmentOf(output) };
    } finally {
      // After an abort the run goes on inside onnxruntime: keep its session until it ends.
      const release = () => this.#release(entry);
      if (inFlight === undefined) release();
      else void inFlight.then(release, release);
    }
  }

  /** Releases every loaded session; later executions reject. */
  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#sessions.entries()];
    this.#sessions.clear();
    for (const [, entry] of entries) {
      entry.evicted = true;
      if (entry.users === 0) await releaseSession(entry);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #acquire(hash: string): CachedSession {
    let entry = this.#sessions.get(hash);
    if (entry !== undefined) {
      this.#sessions.delete(hash); // re-insert: most recently used
    } else {
      const ready = this.#load(hash);
      const created: CachedSession = { ready, users: 0, evicted: false };
      entry = created;
      // A failed load is not cached: the next execution tries again.
      ready.catch(() => {
        if (this.#sessions.get(hash) === created) this.#sessions.delete(hash);
      });
    }
    this.#sessions.set(hash, entry);
    entry.users++;
    this.#evict();
    return entry;
  }

  #release(entry: CachedSession): void {
    entry.users--;
    if (entry.evicted && entry.users === 0) void releaseSession(entry);
  }

  #evict(): void {
    for (const [hash, entry] of this.#sessions) {
      if (this.#sessions.size <= this.#maxSessions) break;
      this.#sessions.delete(hash);
      entry.evicted = true;
      if (entry.users === 0) void releaseSession(entry);
    }
  }

  /**
   * Loads a session. The load is shared by every execution waiting for the model, so it takes
   * no caller's signal: an abort only stops that caller waiting.
   */
  async #load(hash: string): Promise<InferenceSession> {
    // The store's errors (not found, integrity) pass through with their own names.
    const bytes = await this.#store.get(hash);
    try {
      return await InferenceSession.create(bytes, this.#sessionOptions);
    } catch (error) {
      throw new ExecutionError(`Cannot load ONNX model ${hash}: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }
}

async function releaseSession(entry: CachedSession): Promise<void> {
  try {
    await (await entry.ready).release();
  } catch {
    // A session that failed to load has nothing to release.
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// --- input ---------------------------------------------------------------------------------

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function isDtype(value: unknown): value is OnnxDtype {
  return typeof value === "string" && (ONNX_DTYPES as readonly string[]).includes(value);
}

function invalid(detail: string): ExecutionError {
  return new ExecutionError(`Invalid ONNX input: ${detail}`);
}

/** Checks `input` against the session's inputs and builds the feeds. */
function toFeeds(session: InferenceSession, input: unknown): Record<string, Tensor> {
  if (!isRecord(input) || !isRecord(input.inputs)) {
    throw invalid(`expected { inputs: { <name>: { dims, dtype, data } } }`);
  }
  const given = input.inputs;
  const expected = new Map(session.inputMetadata.map((m) => [m.name, m]));
  for (const name of Object.keys(given)) {
    if (!expected.has(name)) {
      throw invalid(
        `unknown input "${name}", the model takes ${JSON.stringify(session.inputNames)}`,
      );
    }
  }
  const feeds: Record<string, Tensor> = {};
  for (const [name, meta] of expected) {
    if (!Object.hasOwn(given, name)) throw invalid(`missing input "${name}"`);
    if (!meta.isTensor) throw invalid(`input "${name}" is not a tensor, which is not supported`);
    feeds[name] = toTensor(name, given[name], meta.type, meta.shape);
  }
  return feeds;
}

function toTensor(
  name: string,
  value: unknown,
  expectedType: Tensor.Type,
  expectedShape: readonly (number | string)[],
): Tensor {
  if (!isRecord(value)) throw invalid(`input "${name}" must be an object { dims, dtype, data }`);
  const { dims, dtype, data } = value;
  if (!isDtype(dtype)) {
    throw invalid(
      `input "${name}" has dtype ${JSON.stringify(dtype)}, expected one of ${
        ONNX_DTYPES.join(", ")
      }`,
    );
  }
  if (dtype !== expectedType) {
    throw invalid(`input "${name}" has dtype "${dtype}" but the model expects "${expectedType}"`);
  }
  if (!Array.isArray(dims) || !dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalid(`input "${name}" dims must be an array of non-negative integers`);
  }
  if (expectedShape.length > 0) {
    const mismatch = dims.length !== expectedShape.length ||
      expectedShape.some((d, i) => typeof d === "number" && d >= 0 && d !== dims[i]);
    if (mismatch) {
      throw invalid(
        `input "${name}" has dims ${JSON.stringify(dims)} but the model expects ${
          JSON.stringify(expectedShape)
        }`,
      );
    }
  }
  if (!Array.isArray(data)) throw invalid(`input "${name}" data must be an array`);
  const count = (dims as number[]).reduce((a, b) => a * b, 1);
  if (data.length !== count) {
    throw invalid(
      `input "${name}" has ${data.length} elements but dims ${JSON.stringify(dims)} need ${count}`,
    );
  }
  return new Tensor(dtype, toTypedArray(name, dtype, data), dims as number[]);
}

function toTypedArray(name: string, dtype: OnnxDtype, data: readonly unknown[]) {
  const bad = (i: number) =>
    invalid(
      `input "${name}" element ${i} is ${JSON.stringify(data[i])}, not a valid ${dtype} value`,
    );
  switch (dtype) {
    case "float32":
    case "float64": {
      const out = dtype === "float32"
        ? new Float32Array(data.length)
        : new Float64Array(data.length);
      data.forEach((x, i) => {
        if (typeof x !== "number") throw bad(i);
        out[i] = x;
      });
      return out;
    }
    case "int64":
    case "uint64": {
      const out = dtype === "int64"
        ? new BigInt64Array(data.length)
        : new BigUint64Array(data.length);
      const [min, max] = dtype === "int64" ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
      data.forEach((x, i) => {
        let v: bigint;
        if (typeof x === "number" && Number.isSafeInteger(x)) v = BigInt(x);
        else if (typeof x === "string" && /^-?\d+$/.test(x)) v = BigInt(x);
        else throw bad(i);
        if (v < min || v > max) throw bad(i);
        out[i] = v;
      });
      return out;
    }
    default: {
      const [min, max] = INTEGER_RANGES[dtype]!;
      const out = dtype === "int8"
        ? new Int8Array(data.length)
        : dtype === "int16"
        ? new Int16Array(data.length)
        : dtype === "uint16"
        ? new Uint16Array(data.length)
        : dtype === "int32"
        ? new Int32Array(data.length)
        : dtype === "uint32"
        ? new Uint32Array(data.length)
        : new Uint8Array(data.length);
      data.forEach((x, i) => {
        const v = dtype === "bool" && typeof x === "boolean" ? Number(x) : x;
        if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw bad(i);
        out[i] = v;
      });
      return out;
    }
  }
}

// --- output --------------------------------------------------------------------------------

function toOutput(results: InferenceSession.OnnxValueMapType): OnnxJobOutput {
  const outputs: Record<string, OnnxTensorJson> = {};
  for (const name of Object.keys(results).sort()) {
    const value = results[name]!;
    if (!(value instanceof Tensor) && !("dims" in value && "type" in value)) {
      throw new ExecutionError(`Cannot read ONNX output "${name}": not a tensor`);
    }
    const tensor = value as Tensor;
    if (!isDtype(tensor.type)) {
      throw new ExecutionError(
        `Cannot read ONNX output "${name}": dtype "${tensor.type}" is not supported`,
      );
    }
    const data = Array.from(
      tensor.data as ArrayLike<number | bigint>,
      (x) =>
        typeof x === "bigint" ? (Number.isSafeInteger(Number(x)) ? Number(x) : x.toString()) : x,
    );
    outputs[name] = { dims: [...tensor.dims], dtype: tensor.type, data };
    tensor.dispose();
  }
  return { outputs };
}

// --- comparison and routing ----------------------------------------------------------------

/** Tolerances of {@link toleranceComparator}. */
export interface ToleranceOptions {
  /** Absolute tolerance. @default 1e-5 */
  readonly atol?: number;
  /** Relative tolerance, times the recomputed value's magnitude. @default 1e-4 */
  readonly rtol?: number;
}

function parseOutput(output: unknown): Map<string, OnnxTensorJson> | undefined {
  if (!isRecord(output) || !isRecord(output.outputs)) return undefined;
  const out = new Map<string, OnnxTensorJson>();
  for (const [name, t] of Object.entries(output.outputs)) {
    if (!isRecord(t) || !isDtype(t.dtype) || !Array.isArray(t.dims) || !Array.isArray(t.data)) {
      return undefined;
    }
    out.set(name, t as unknown as OnnxTensorJson);
  }
  return out;
}

/** JSON (and so the commitment) carries NaN and the infinities as null: compare them so too. */
function finiteOrNull(x: unknown): unknown {
  return typeof x === "number" && !Number.isFinite(x) ? null : x;
}

function floatClose(rawA: unknown, rawB: unknown, atol: number, rtol: number): boolean {
  const a = finiteOrNull(rawA);
  const b = finiteOrNull(rawB);
  if (typeof a !== "number" || typeof b !== "number") return a === b;
  return Math.abs(a - b) <= atol + rtol * Math.abs(a);
}

/**
 * A comparator for ONNX jobs that accepts float noise: the claimed output must name the same
 * tensors with the same dims and dtypes as the recomputed one, and each float element must be
 * within `atol + rtol * |recomputed|` of it; integer and bool elements must be equal. The
 * claimed commitment must be the commitment of the claimed output. Other job kinds fall back to
 * commitment equality.
 */
export function toleranceComparator(options: ToleranceOptions = {}): ResultComparator {
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-4;
  if (!(atol >= 0) || !(rtol >= 0)) {
    throw new RangeError(
      `Invalid tolerance: atol and rtol must be non-negative, got ${atol} and ${rtol}`,
    );
  }
  return (spec, recomputed, claimed) => {
    if (spec.kind.type !== "onnx") return recomputed.commitment === claimed.commitment;
    if (commitmentOf(claimed.output) !== claimed.commitment) return false;
    if (recomputed.commitment === claimed.commitment) return true;
    const mine = parseOutput(recomputed.output);
    const theirs = parseOutput(claimed.output);
    if (mine === undefined || theirs === undefined || mine.size !== theirs.size) return false;
    for (const [name, a] of mine) {
      const b = theirs.get(name);
      if (b === undefined || a.dtype !== b.dtype || a.data.length !== b.data.length) return false;
      if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i])) return false;
      const isFloat = a.dtype === "float32" || a.dtype === "float64";
      for (let i = 0; i < a.data.length; i++) {
        const ok = isFloat ? floatClose(a.data[i], b.data[i], atol, rtol) : a.data[i] === b.data[i];
        if (!ok) return false;
      }
    }
    return true;
  };
}

// The executor that routes by kind lives beside the builtin one (no native library needed).
export { CompositeExecutor } from "./executor.ts";
