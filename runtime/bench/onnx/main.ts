/**
 * `deno run -A runtime/onnx_bench.ts [--jobs N]`: inference latency per job through the market
 * and the verification overhead. One process hosts a client, 2 workers and 4 verifiers on the
 * in-process network and an in-memory local ledger; every node serves the same generated MLP
 * (64 -> 128 -> 10, batch 8). It runs N jobs one at a time with `verify: false` and N with
 * `verify: 4`, interleaved, and reports the job time (`infer()` call to final state) and the
 * raw `OnnxExecutor.execute()` time. The bid window (20 ms) and the ledger's event polling
 * (25 ms) are part of every job's time.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LocalLedger } from "../../../chain/local_ledger.ts";
import { InProcessNetwork } from "../../../protocols/in_process_network.ts";
import { InferenceClient, type InferRequest } from "../../sdk/mod.ts";
import { MemoryModelStore } from "../../compute/mod.ts";
import { createNode, type Node } from "../../kernel/mod.ts";
import { OnnxExecutor } from "../../compute/onnx_executor.ts";
import { buildMlpModel } from "../../compute/mod.ts";
import { quantile } from "../../research/mod.ts";

const args = parseArgs({ args: Deno.args, options: { jobs: { type: "string", default: "30" } } });
const jobs = Number(args.values.jobs);
const MLP = { inputSize: 64, hiddenSize: 128, outputSize: 10, seed: 42 };
const bytes = buildMlpModel(MLP);
const ledger = LocalLedger.open(":memory:");
const network = new InProcessNetwork();
const nodes: Node[] = [];
const store = async () => {
  const s = new MemoryModelStore();
  await s.put(bytes);
  return s;
};
const modelId = await (await store()).put(bytes);
const add = (
  id: string,
  roles: ("client" | "worker" | "verifier")[],
  models?: MemoryModelStore,
) => {
  const node = createNode({
    id,
    roles,
    network: network.join(id),
    chain: ledger.as(id),
    capabilityIntervalMs: 0,
    ...(models ? { models } : {}),
    ...(roles.includes("worker")
      ? { worker: { hardware: "cpu" as const, stake: 1_000n, etaMs: 50 } }
      : {}),
  });
  nodes.push(node);
  return node;
};
const client = add("client", ["client"]);
for (const id of ["w1", "w2"]) add(id, ["worker"], await store());
for (const id of ["v1", "v2", "v3", "v4"]) add(id, ["verifier"], await store());
for (const n of nodes) await n.start();
for (const n of nodes) await n.announceCapabilities();
await new Promise((r) => setTimeout(r, 20));

const sdk = new InferenceClient(client);
const input = (i: number) => ({
  inputs: {
    input: {
      dims: [8, 64],
      dtype: "float32" as const,
      data: Array.from({ length: 8 * 64 }, (_, k) => Math.fround(Math.sin(k + i))),
    },
  },
});
const base: Omit<InferRequest, "input"> = {
  modelId,
  maxPrice: 1_000n,
  maxLatency: 5_000,
  deadlines: { bidWindowMs: 20, executionMs: 2_000, verificationMs: 3_000 },
};
const times = { unverified: [] as number[], verified: [] as number[] };
const phases = { executing: [] as number[], verifying: [] as number[] };
for (let i = 0; i < jobs + 2; i++) {
  for (const verify of [false, 4] as const) {
    let entered = 0;
    let last = "";
    const start = performance.now();
    const result = await sdk.infer({
      ...base,
      input: input(i),
      verify,
      onProgress: (p) => {
        if (last === "executing") phases.executing.push(p.elapsedMs - entered);
        if (last === "verifying") phases.verifying.push(p.elapsedMs - entered);
        last = p.phase;
        entered = p.elapsedMs;
      },
    });
    const ms = performance.now() - start;
    if (result.state !== "settled") throw new Error(`Job ${result.jobId} ended ${result.state}`);
    if (i >= 2) (verify ? times.verified : times.unverified).push(ms); // 2 warm-up rounds
  }
}

const raw: number[] = [];
{
  await using executor = new OnnxExecutor(await store());
  const spec = {
    kind: { type: "onnx" as const, modelHash: modelId },
    inputCommitment: "",
    requirements: { hardware: "cpu" as const, minStake: 0n },
    maxPrice: 1n,
    bidWindowMs: 1,
    executionMs: 1,
    verificationMs: 1,
    maxAttempts: 1,
    verifierCount: 0,
  };
  await executor.execute(spec, input(0));
  for (let i = 0; i < 200; i++) {
    const start = performance.now();
    await executor.execute(spec, input(i));
    raw.push(performance.now() - start);
  }
}
for (const n of nodes) await n.stop();
ledger.close();

const fmt = (xs: number[]) =>
  `p50 ${quantile(xs, 0.5).toFixed(1)} ms  p95 ${quantile(xs, 0.95).toFixed(1)} ms  n ${xs.length}`;
const p50 = (xs: number[]) => quantile(xs, 0.5);
console.log(
  `MLP ${MLP.inputSize}->${MLP.hiddenSize}->${MLP.outputSize}, batch 8, ${bytes.length} bytes`,
);
console.log(`OnnxExecutor.execute() alone      ${fmt(raw)}`);
console.log(`job, unverified (verify: false)   ${fmt(times.unverified)}`);
console.log(`job, verified (4 verifiers, bft)  ${fmt(times.verified)}`);
console.log(`  executing phase                 ${fmt(phases.executing)}`);
console.log(`  verifying phase                 ${fmt(phases.verifying)}`);
console.log(
  `verification overhead (p50)       +${
    (p50(times.verified) - p50(times.unverified)).toFixed(1)
  } ms (${((p50(times.verified) / p50(times.unverified) - 1) * 100).toFixed(0)} %)`,
);
