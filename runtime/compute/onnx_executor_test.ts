/**
 * Tests of the ONNX executor on real onnxruntime sessions over models the tests build: results
 * against a plain TypeScript reference, determinism of commitments, input validation, model
 * integrity, the tolerance comparator, routing, and the session cache.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { JobKind, JobSpec } from "../../machines/types.ts";
import { BuiltinExecutor, commitmentOf, type ExecutionResult } from "./executor.ts";
import { DirectoryModelStore, MemoryModelStore } from "./model_store.ts";
import {
  CompositeExecutor,
  OnnxExecutor,
  type OnnxJobOutput,
  toleranceComparator,
} from "./onnx_executor.ts";
import {
  buildAddConstantModel,
  buildLinearModel,
  buildMlpModel,
  type DenseLayer,
  encodeModel,
  encodeRawData,
  linearWeights,
  type MlpModelOptions,
  mlpWeights,
} from "./onnx_model_builder.ts";
import { ReexecutionVerifier } from "./verifier.ts";

function specFor(kind: JobKind): JobSpec {
  return {
    kind,
    inputCommitment: "0".repeat(64),
    requirements: { hardware: "cpu", minStake: 0n },
    maxPrice: 100n,
    bidWindowMs: 1_000,
    executionMs: 1_000,
    verificationMs: 1_000,
    maxAttempts: 1,
    verifierCount: 1,
  };
}

const onnxSpec = (modelHash: string) => specFor({ type: "onnx", modelHash });

function dense(layer: DenseLayer, x: readonly number[]): number[] {
  const out: number[] = [];
  for (let j = 0; j < layer.outputs; j++) {
    let sum = layer.bias[j]!;
    for (let k = 0; k < layer.inputs; k++) sum += x[k]! * layer.weight[k * layer.outputs + j]!;
    out.push(sum);
  }
  return out;
}

/** The MLP in plain TS (float64 arithmetic on the float32 weights and inputs). */
function referenceMlp(options: MlpModelOptions, batch: readonly (readonly number[])[]): number[][] {
  const { layer1, layer2 } = mlpWeights(options);
  return batch.map((row) =>
    dense(layer2, dense(layer1, row.map(Math.fround)).map((h) => Math.max(0, h)))
  );
}

function inputFor(rows: readonly (readonly number[])[]) {
  return {
    inputs: {
      input: { dims: [rows.length, rows[0]!.length], dtype: "float32", data: rows.flat() },
    },
  };
}

function rowsOf(batch: number, width: number, seed: number): number[][] {
  return Array.from(
    { length: batch },
    (_, b) => Array.from({ length: width }, (_, i) => Math.sin(seed + b * width + i)),
  );
}

function outputOf(result: ExecutionResult) {
  return (result.output as OnnxJobOutput).outputs;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

const mlp: MlpModelOptions = { inputSize: 64, hiddenSize: 128, outputSize: 10, seed: 42 };

Deno.test("OnnxExecutor.execute() matches a reference MLP", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildMlpModel(mlp));
  await using executor = new OnnxExecutor(store);
  const rows = rowsOf(3, mlp.inputSize, 1);
  const result = await executor.execute(onnxSpec(hash), inputFor(rows));
  const outputs = outputOf(result);
  assert.deepEqual(Object.keys(outputs), ["output"]);
  const out = outputs.output!;
  assert.equal(out.dtype, "float32");
  assert.deepEqual(out.dims, [3, 10]);
  const expected = referenceMlp(mlp, rows).flat();
  assert.equal(out.data.length, expected.length);
  out.data.forEach((x, i) => {
    assert.equal(typeof x, "number");
    assert.ok(
      Math.abs((x as number) - expected[i]!) <= 1e-5,
      `element ${i}: ${x} vs ${expected[i]}`,
    );
  });
  assert.equal(result.commitment, commitmentOf(result.output));
});

Deno.test("OnnxExecutor.execute() commitments agree across runs and instances", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildMlpModel(mlp));
  await using first = new OnnxExecutor(store);
  await using second = new OnnxExecutor(store, { intraOpNumThreads: 2 });
  const input = inputFor(rowsOf(8, mlp.inputSize, 2));
  const results = [
    await first.execute(onnxSpec(hash), input),
    await first.execute(onnxSpec(hash), input),
    await second.execute(onnxSpec(hash), input),
  ];
  assert.equal(new Set(results.map((r) => r.commitment)).size, 1);
  assert.deepEqual(results[0]!.output, results[2]!.output);
});

Deno.test("OnnxExecutor.execute() rejects bad inputs with specific errors", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildLinearModel({ inputSize: 3, outputSize: 2, seed: 1 }));
  await using executor = new OnnxExecutor(store);
  const run = (input: unknown) => executor.execute(onnxSpec(hash), input);
  const tensor = (over: Record<string, unknown>) => ({
    inputs: { input: { dims: [1, 3], dtype: "float32", data: [1, 2, 3], ...over } },
  });
  const cases: [unknown, RegExp][] = [
    [null, /^Invalid ONNX input: expected \{ inputs/],
    [{ inputs: [] }, /expected \{ inputs/],
    [{ inputs: {} }, /: missing input "input"$/],
    [
      { inputs: { input: { dims: [1, 3], dtype: "float32", data: [1, 2, 3] }, extra: {} } },
      /: unknown input "extra", the model takes \["input"\]$/,
    ],
    [tensor({ data: [1, 2] }), /: input "input" has 2 elements but dims \[1,3\] need 3$/],
    [
      tensor({ dtype: "int64" }),
      /: input "input" has dtype "int64" but the model expects "float32"$/,
    ],
    [
      tensor({ dtype: "complex64" }),
      /: input "input" has dtype "complex64", expected one of float32/,
    ],
    [tensor({ dims: [3] }), /: input "input" has dims \[3\] but the model expects \["batch",3\]$/],
    [tensor({ dims: [1, 4], data: [1, 2, 3, 4] }), /expects \["batch",3\]$/],
    [tensor({ dims: [1, -3] }), /dims must be an array of non-negative integers$/],
    [tensor({ data: [1, "2", 3] }), /: input "input" element 1 is "2", not a valid float32 value$/],
    [tensor({ data: "123" }), /data must be an array$/],
  ];
  for (const [input, message] of cases) {
    await assert.rejects(run(input), { name: "ExecutionError", message }, JSON.stringify(input));
  }
});

Deno.test("OnnxExecutor.execute() runs int64 models", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildAddConstantModel({ size: 4, constant: 5 }));
  await using executor = new OnnxExecutor(store);
  const input = {
    inputs: { x: { dims: [4], dtype: "int64", data: [1, -2, "9007199254740993", 0] } },
  };
  const result = await executor.execute(onnxSpec(hash), input);
  assert.deepEqual(result.output, {
    outputs: { y: { dims: [4], dtype: "int64", data: [6, 3, "9007199254740998", 5] } },
  });
  await assert.rejects(
    executor.execute(onnxSpec(hash), {
      inputs: { x: { dims: [4], dtype: "int64", data: [1, 2, 3, 0.5] } },
    }),
    { name: "ExecutionError", message: /element 3 is 0.5, not a valid int64 value$/ },
  );
});

Deno.test("OnnxExecutor.execute() refuses a tampered model file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "onnx_executor_test_" });
  try {
    const store = new DirectoryModelStore(dir);
    const bytes = buildLinearModel({ inputSize: 3, outputSize: 2, seed: 1 });
    const hash = await store.put(bytes);
    // Same structure, one bit of the first weight flipped: a valid model that computes
    // something else.
    const weights = encodeRawData(
      "float32",
      linearWeights({ inputSize: 3, outputSize: 2, seed: 1 }).weight,
    );
    const at = indexOf(bytes, weights);
    assert.ok(at > 0);
    const tampered = bytes.slice();
    tampered[at + 2]! ^= 0x40;
    const input = inputFor([[1, 2, 3]]);
    const memory = new MemoryModelStore();
    await using unchecked = new OnnxExecutor(memory);
    const [honest, changed] = await Promise.all(
      [bytes, tampered].map(async (b) =>
        (await unchecked.execute(onnxSpec(await memory.put(b)), input)).commitment
      ),
    );
    assert.notEqual(
      honest,
      changed,
      "onnxruntime runs the tampered model and computes something else",
    );
    await Deno.writeFile(store.pathOf(hash), tampered);
    await using executor = new OnnxExecutor(store);
    await assert.rejects(executor.execute(onnxSpec(hash), input), { name: "ModelIntegrityError" });
    assert.deepEqual(executor.loadedModels, [], "a failed load is not cached");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("OnnxExecutor.execute() rejects unknown, malformed and unloadable models", async () => {
  const store = new MemoryModelStore();
  await using executor = new OnnxExecutor(store);
  const input = inputFor([[1, 2, 3]]);
  const unknown = "ab".repeat(32);
  await assert.rejects(executor.execute(onnxSpec(unknown), input), {
    name: "ModelNotFoundError",
    message: `Model not found: ${unknown}`,
  });
  await assert.rejects(executor.execute(onnxSpec("../model"), input), {
    name: "ExecutionError",
    message: /^Invalid ONNX job: model hash must be 64 lowercase hex digits/,
  });
  const junk = await store.put(new TextEncoder().encode("definitely not protobuf"));
  await assert.rejects(executor.execute(onnxSpec(junk), input), {
    name: "ExecutionError",
    message: new RegExp(`^Cannot load ONNX model ${junk}: `),
  });
  // Inputs that pass validation but that the graph cannot compute: [2,3] + [3,3].
  const add = await store.put(encodeModel({
    graphName: "add",
    nodes: [{ opType: "Add", inputs: ["a", "b"], outputs: ["c"] }],
    inputs: [{ name: "a", elemType: "float32", shape: ["n", 3] }, {
      name: "b",
      elemType: "float32",
      shape: ["m", 3],
    }],
    outputs: [{ name: "c", elemType: "float32", shape: ["k", 3] }],
  }));
  const tensor = (rows: number) => ({
    dims: [rows, 3],
    dtype: "float32",
    data: new Array(rows * 3).fill(1),
  });
  await assert.rejects(
    executor.execute(onnxSpec(add), { inputs: { a: tensor(2), b: tensor(3) } }),
    {
      name: "ExecutionError",
      message: new RegExp(`^Cannot run ONNX model ${add}: `),
    },
  );
  assert.equal(
    (await executor.execute(onnxSpec(add), { inputs: { a: tensor(3), b: tensor(3) } })).commitment
      .length,
    64,
  );
  await assert.rejects(executor.execute(specFor({ type: "builtin", name: "matmul" }), {}), {
    name: "ExecutionError",
    message: /not an ONNX job$/,
  });
});

Deno.test("OnnxExecutor.execute() respects an AbortSignal", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildLinearModel({ inputSize: 3, outputSize: 2, seed: 1 }));
  await using executor = new OnnxExecutor(store);
  const input = inputFor([[1, 2, 3]]);
  await assert.rejects(executor.execute(onnxSpec(hash), input, { signal: AbortSignal.abort() }), {
    name: "AbortError",
  });
  const controller = new AbortController();
  const pending = executor.execute(onnxSpec(hash), input, { signal: controller.signal });
  const sharing = executor.execute(onnxSpec(hash), input);
  controller.abort();
  await assert.rejects(pending, { name: "AbortError" });
  // Another execution waiting on the same session load is not aborted with it.
  assert.equal((await sharing).commitment.length, 64);
  // The executor still works afterwards.
  assert.equal((await executor.execute(onnxSpec(hash), input)).commitment.length, 64);
});

Deno.test("OnnxExecutor keeps a bounded LRU cache of sessions", async () => {
  const store = new MemoryModelStore();
  const hashes = [];
  for (const seed of [1, 2, 3]) {
    hashes.push(await store.put(buildLinearModel({ inputSize: 3, outputSize: 2, seed })));
  }
  const [a, b, c] = hashes as [string, string, string];
  const executor = new OnnxExecutor(store, { maxSessions: 2 });
  const input = inputFor([[1, 2, 3]]);
  await executor.execute(onnxSpec(a), input);
  await executor.execute(onnxSpec(b), input);
  await executor.execute(onnxSpec(a), input);
  assert.deepEqual(executor.loadedModels, [b, a]);
  await executor.execute(onnxSpec(c), input);
  assert.deepEqual(executor.loadedModels, [a, c]);
  // Concurrent runs on one model share a session.
  await Promise.all([1, 2, 3].map(() => executor.execute(onnxSpec(b), input)));
  assert.deepEqual(executor.loadedModels, [c, b]);
  await executor.close();
  assert.deepEqual(executor.loadedModels, []);
  await assert.rejects(executor.execute(onnxSpec(a), input), {
    name: "ExecutionError",
    message: /is closed$/,
  });
  assert.throws(() => new OnnxExecutor(store, { maxSessions: 0 }), { name: "RangeError" });
});

Deno.test("toleranceComparator() accepts float noise and rejects a wrong output", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildMlpModel(mlp));
  await using executor = new OnnxExecutor(store);
  const spec = onnxSpec(hash);
  const recomputed = await executor.execute(spec, inputFor(rowsOf(2, mlp.inputSize, 3)));
  const compare = toleranceComparator({ atol: 1e-5, rtol: 1e-4 });
  const claimedWith = (edit: (data: number[]) => void, dims?: number[]): ExecutionResult => {
    const out = outputOf(recomputed).output!;
    const data = [...out.data] as number[];
    edit(data);
    const output = { outputs: { output: { ...out, dims: dims ?? [...out.dims], data } } };
    return { output, commitment: commitmentOf(output) };
  };
  assert.equal(compare(spec, recomputed, recomputed), true);
  const noisy = claimedWith((d) => d.forEach((x, i) => d[i] = Math.fround(x * (1 + 1e-6)) + 1e-7));
  assert.notEqual(noisy.commitment, recomputed.commitment);
  assert.equal(compare(spec, recomputed, noisy), true);
  assert.equal(compare(spec, recomputed, claimedWith((d) => d[3] = d[3]! + 0.01)), false);
  assert.equal(compare(spec, recomputed, claimedWith((d) => d.reverse())), false);
  assert.equal(compare(spec, recomputed, claimedWith(() => {}, [20])), false, "different dims");
  assert.equal(compare(spec, recomputed, claimedWith((d) => d.pop())), false, "fewer elements");
  const renamed = { outputs: { logits: outputOf(recomputed).output } };
  assert.equal(
    compare(spec, recomputed, { output: renamed, commitment: commitmentOf(renamed) }),
    false,
  );
  assert.equal(
    compare(spec, recomputed, { output: noisy.output, commitment: recomputed.commitment }),
    false,
  );
  assert.equal(
    compare(spec, recomputed, { output: "garbage", commitment: commitmentOf("garbage") }),
    false,
  );
  // NaN and the infinities travel as null in JSON.
  const withNaN = (second: number) => {
    const output = { outputs: { y: { dims: [2], dtype: "float32", data: [NaN, second] } } };
    return { output, commitment: commitmentOf(output) };
  };
  const overJson = (r: ExecutionResult): ExecutionResult => ({
    ...r,
    output: JSON.parse(JSON.stringify(r.output)),
  });
  assert.equal(compare(spec, withNaN(1), overJson(withNaN(1 + 1e-7))), true);
  assert.equal(compare(spec, withNaN(1), overJson(withNaN(2))), false);
  // Other kinds: commitments must be equal.
  const builtin = specFor({ type: "builtin", name: "matmul" });
  assert.equal(compare(builtin, recomputed, recomputed), true);
  assert.equal(compare(builtin, recomputed, noisy), false);
  // Through the verifier.
  const verifier = new ReexecutionVerifier(executor, { compare });
  const input = inputFor(rowsOf(2, mlp.inputSize, 3));
  assert.equal((await verifier.verify(spec, input, noisy)).verdict, "valid");
  const wrong = claimedWith((d) => d[0] = 42);
  assert.equal((await verifier.verify(spec, input, wrong)).verdict, "invalid");
});

Deno.test("CompositeExecutor routes each kind to an executor that supports it", async () => {
  const store = new MemoryModelStore();
  const hash = await store.put(buildLinearModel({ inputSize: 2, outputSize: 1, seed: 1 }));
  await using onnx = new OnnxExecutor(store);
  const composite = new CompositeExecutor([new BuiltinExecutor(), onnx]);
  const matmul = specFor({ type: "builtin", name: "matmul" });
  assert.equal(composite.supports(matmul.kind), true);
  assert.equal(composite.supports(onnxSpec(hash).kind), true);
  assert.deepEqual((await composite.execute(matmul, { a: [[2]], b: [[3]] })).output, [[6]]);
  const result = await composite.execute(onnxSpec(hash), inputFor([[1, 2]]));
  assert.deepEqual(Object.keys(outputOf(result)), ["output"]);
  const builtinOnly = new CompositeExecutor([new BuiltinExecutor()]);
  assert.equal(builtinOnly.supports(onnxSpec(hash).kind), false);
  await assert.rejects(builtinOnly.execute(onnxSpec(hash), {}), {
    name: "ExecutionError",
    message:
      /^Cannot execute job kind \{"type":"onnx","modelHash":"[0-9a-f]{64}"\}: no executor supports it$/,
  });
});
