/**
 * Tests of the hand-written ONNX encoder: the bytes decode as the intended `ModelProto`
 * (read back with a tiny protobuf reader here, independent of the writer), the seeded weights
 * are deterministic, and onnxruntime accepts the models.
 *
 * @module
 */
import assert from "node:assert/strict";
import { InferenceSession } from "onnxruntime-node";
import {
  buildAddConstantModel,
  buildLinearModel,
  buildMlpModel,
  encodeModel,
  encodeRawData,
  mlpWeights,
  seededRandom,
} from "./onnx_model_builder.ts";

type Field = { field: number; wire: number; value: bigint | Uint8Array };

/** Reads one level of protobuf fields. */
function readFields(bytes: Uint8Array): Field[] {
  const fields: Field[] = [];
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const byte = bytes[at++];
      assert.ok(byte !== undefined, "truncated varint");
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (at < bytes.length) {
    const tag = Number(varint());
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 0) fields.push({ field, wire, value: varint() });
    else if (wire === 2) {
      const length = Number(varint());
      fields.push({ field, wire, value: bytes.subarray(at, at + length) });
      at += length;
    } else if (wire === 5) {
      fields.push({ field, wire, value: bytes.subarray(at, at + 4) });
      at += 4;
    } else assert.fail(`unexpected wire type ${wire}`);
  }
  return fields;
}

const text = (f: Field | undefined) => new TextDecoder().decode(f?.value as Uint8Array);
const sub = (f: Field | undefined) => readFields(f?.value as Uint8Array);
const all = (fields: Field[], n: number) => fields.filter((f) => f.field === n);
const one = (fields: Field[], n: number) => fields.find((f) => f.field === n);

Deno.test("buildMlpModel() writes a ModelProto with the expected graph", () => {
  const bytes = buildMlpModel({ inputSize: 3, hiddenSize: 5, outputSize: 2, seed: 9 });
  const model = readFields(bytes);
  assert.equal(one(model, 1)?.value, 8n); // ir_version
  const opset = sub(one(model, 8));
  assert.equal(one(opset, 2)?.value, 17n);
  const graph = sub(one(model, 7));
  assert.equal(text(one(graph, 2)), "mlp");
  const ops = all(graph, 1).map((n) => text(one(sub(n), 4)));
  assert.deepEqual(ops, ["MatMul", "Add", "Relu", "MatMul", "Add"]);
  const inits = all(graph, 5).map((t) => {
    const fields = sub(t);
    return {
      name: text(one(fields, 8)),
      dims: all(fields, 1).map((d) => Number(d.value)),
      type: one(fields, 2)?.value,
      bytes: (one(fields, 9)?.value as Uint8Array).length,
    };
  });
  assert.deepEqual(inits, [
    { name: "fc1.weight", dims: [3, 5], type: 1n, bytes: 60 },
    { name: "fc1.bias", dims: [5], type: 1n, bytes: 20 },
    { name: "fc2.weight", dims: [5, 2], type: 1n, bytes: 40 },
    { name: "fc2.bias", dims: [2], type: 1n, bytes: 8 },
  ]);
  // The first weight's raw bytes are the first value of the seeded weights.
  const w1 = sub(all(graph, 5)[0]);
  const raw = one(w1, 9)?.value as Uint8Array;
  const first = new DataView(raw.buffer, raw.byteOffset).getFloat32(0, true);
  assert.equal(
    first,
    mlpWeights({ inputSize: 3, hiddenSize: 5, outputSize: 2, seed: 9 }).layer1.weight[0],
  );
  // input: name, then tensor type with shape [batch, 3]
  const input = sub(one(graph, 11));
  assert.equal(text(one(input, 1)), "input");
  const tensorType = sub(one(sub(one(input, 2)), 1));
  assert.equal(one(tensorType, 1)?.value, 1n);
  const dims = all(sub(one(tensorType, 2)), 1).map((d) => sub(d)[0]);
  assert.equal(dims[0]?.field, 2); // dim_param
  assert.equal(text(dims[0]), "batch");
  assert.deepEqual([dims[1]?.field, dims[1]?.value], [1, 3n]); // dim_value
});

Deno.test("buildMlpModel() is deterministic in its seed", () => {
  const options = { inputSize: 4, hiddenSize: 6, outputSize: 3, seed: 1 };
  assert.deepEqual(buildMlpModel(options), buildMlpModel(options));
  assert.notDeepEqual(buildMlpModel(options), buildMlpModel({ ...options, seed: 2 }));
  const a = seededRandom(5);
  const b = seededRandom(5);
  for (let i = 0; i < 10; i++) {
    const x = a();
    assert.equal(x, b());
    assert.ok(x >= 0 && x < 1);
  }
});

Deno.test("encodeModel() writes negative int64 varints and node attributes", () => {
  const bytes = encodeModel({
    graphName: "g",
    nodes: [{
      opType: "Flatten",
      inputs: ["x"],
      outputs: ["y"],
      attributes: { axis: { int: -1 } },
    }],
    inputs: [{ name: "x", elemType: "float32", shape: [2, 3] }],
    outputs: [{ name: "y", elemType: "float32", shape: [2, 3] }],
  });
  const node = sub(one(sub(one(readFields(bytes), 7)), 1));
  const attribute = sub(one(node, 5));
  assert.equal(text(one(attribute, 1)), "axis");
  assert.equal(BigInt.asIntN(64, one(attribute, 3)?.value as bigint), -1n);
  assert.equal(one(attribute, 20)?.value, 2n); // AttributeType.INT
});

Deno.test("encodeRawData() writes little-endian values", () => {
  assert.deepEqual([...encodeRawData("int64", [-2n])], [
    0xfe,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
  ]);
  assert.deepEqual([...encodeRawData("int32", [258])], [2, 1, 0, 0]);
  assert.deepEqual([...encodeRawData("float32", [1])], [0, 0, 0x80, 0x3f]);
});

Deno.test("buildMlpModel() rejects sizes that are not positive integers", () => {
  assert.throws(() => buildMlpModel({ inputSize: 0, hiddenSize: 1, outputSize: 1, seed: 1 }), {
    name: "RangeError",
    message: /inputSize/,
  });
});

Deno.test("onnxruntime loads the built models", async () => {
  const models = {
    mlp: buildMlpModel({ inputSize: 4, hiddenSize: 8, outputSize: 2, seed: 3 }),
    linear: buildLinearModel({ inputSize: 4, outputSize: 2, seed: 3 }),
    add: buildAddConstantModel({ size: 3, constant: 5 }),
  };
  for (const bytes of Object.values(models)) {
    const session = await InferenceSession.create(bytes);
    assert.equal(session.inputNames.length, 1);
    assert.equal(session.outputNames.length, 1);
    await session.release();
  }
});
