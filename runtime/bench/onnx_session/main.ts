/**
 * `deno run -A runtime/bench/onnx_session/main.ts`: onnxruntime session creation and inference
 * latency on a generated MLP.
 *
 * @module
 */
import { InferenceSession, Tensor } from "onnxruntime-node";
import type { JobSpec } from "../../../machines/types.ts";
import { OnnxExecutor } from "../../compute/onnx_executor.ts";

async function bench(): Promise<void> {
  const { buildMlpModel } = await import("../../compute/mod.ts");
  const { MemoryModelStore } = await import("../../compute/mod.ts");
  const [inputSize, hiddenSize, outputSize] = [64, 128, 10];
  const bytes = buildMlpModel({ inputSize, hiddenSize, outputSize, seed: 42 });
  const sessionOptions: InferenceSession.SessionOptions = {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  };
  const creations: number[] = [];
  for (let i = 0; i < 20; i++) {
    const start = performance.now();
    const session = await InferenceSession.create(bytes, sessionOptions);
    creations.push(performance.now() - start);
    await session.release();
  }
  const store = new MemoryModelStore();
  const modelHash = await store.put(bytes);
  await using executor = new OnnxExecutor(store);
  const spec: JobSpec = {
    kind: { type: "onnx", modelHash },
    inputCommitment: "",
    requirements: { hardware: "cpu", minStake: 0n },
    maxPrice: 1n,
    bidWindowMs: 1,
    executionMs: 1,
    verificationMs: 1,
    maxAttempts: 1,
    verifierCount: 1,
  };
  const report = (label: string, ms: number[]) => {
    const sorted = [...ms].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(3);
    console.log(`${label}: n=${ms.length} p50=${at(0.5)} ms p90=${at(0.9)} ms min=${at(0)} ms`);
  };
  console.log(
    `MLP ${inputSize}->${hiddenSize}->${outputSize}, ${bytes.length} bytes, intraOpNumThreads=1`,
  );
  console.log(
    `first session creation (cold, sets up the onnxruntime environment): ${
      creations[0]!.toFixed(3)
    } ms`,
  );
  report("session creation (InferenceSession.create), warm", creations.slice(1));
  for (const batch of [1, 32]) {
    const data = Array.from({ length: batch * inputSize }, (_, i) => Math.sin(i));
    const input = { inputs: { input: { dims: [batch, inputSize], dtype: "float32", data } } };
    await executor.execute(spec, input); // warm-up (and the cached session's load)
    const runs: number[] = [];
    for (let i = 0; i < 500; i++) {
      const start = performance.now();
      await executor.execute(spec, input);
      runs.push(performance.now() - start);
    }
    report(`execute(), batch ${batch} (validation + run + commitment)`, runs);
    const session = await InferenceSession.create(bytes, sessionOptions);
    const feeds = { input: new Tensor("float32", Float32Array.from(data), [batch, inputSize]) };
    const raw: number[] = [];
    for (let i = 0; i < 500; i++) {
      const start = performance.now();
      await session.run(feeds);
      raw.push(performance.now() - start);
    }
    report(`session.run() alone, batch ${batch}`, raw);
    await session.release();
  }
}

await bench();
