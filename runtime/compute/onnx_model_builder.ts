/**
 * Writes small ONNX models (`ModelProto` bytes) by hand-encoding protobuf, so tests and the
 * demo can run real onnxruntime sessions without Python, the `onnx` package or a download.
 *
 * The low level is {@link encodeModel}: a graph of nodes, initializers (as `raw_data`), and
 * typed inputs and outputs. On top sit ready-made models: {@link buildMlpModel} (MatMul, Add,
 * Relu, MatMul, Add) and {@link buildLinearModel} (MatMul, Add) with float32 weights drawn from
 * a seeded PRNG ({@link mlpWeights}, {@link linearWeights} give the same weights back, for
 * reference computations), and {@link buildAddConstantModel} for integer tensors.
 *
 * Everything here is deterministic: the same options give the same bytes, hence the same
 * content hash.
 *
 * ```ts
 * import { buildMlpModel } from "./onnx_model_builder.ts";
 *
 * const bytes = buildMlpModel({ inputSize: 4, hiddenSize: 8, outputSize: 2, seed: 1 });
 * console.assert(bytes.length > 0);
 * ```
 *
 * @module
 */

/** ONNX `TensorProto.DataType` codes for the element types this module writes. */
export const ONNX_DATA_TYPE = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
  uint32: 12,
  uint64: 13,
} as const;

/** An element type name, as onnxruntime-node spells it. */
export type OnnxElementType = keyof typeof ONNX_DATA_TYPE;

/** A dimension: a fixed size, or a symbolic name such as `"batch"`. */
export type OnnxDim = number | string;

/** A typed graph input or output (`ValueInfoProto` with a tensor type). */
export interface OnnxValueInfo {
  readonly name: string;
  readonly elemType: OnnxElementType;
  readonly shape: readonly OnnxDim[];
}

/** A constant tensor stored in the graph (`TensorProto` with `raw_data`). */
export interface OnnxInitializer {
  readonly name: string;
  readonly elemType: OnnxElementType;
  readonly dims: readonly number[];
  /** The values, row-major; integers for the integer types, 0/1 for `bool`. */
  readonly values: ArrayLike<number> | readonly bigint[];
}

/** A node attribute: an integer, a float, a string, or lists of integers or floats. */
export type OnnxAttributeValue =
  | { readonly int: number | bigint }
  | { readonly float: number }
  | { readonly string: string }
  | { readonly ints: readonly (number | bigint)[] }
  | { readonly floats: readonly number[] };

/** An operator application (`NodeProto`). */
export interface OnnxNode {
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly name?: string;
  readonly domain?: string;
  readonly attributes?: Readonly<Record<string, OnnxAttributeValue>>;
}

/** A whole model, described as plain data. */
export interface OnnxModelDescription {
  readonly graphName: string;
  readonly nodes: readonly OnnxNode[];
  readonly initializers?: readonly OnnxInitializer[];
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  /** @default 8 */
  readonly irVersion?: number;
  /** The default-domain opset. @default 17 */
  readonly opsetVersion?: number;
  /** @default "ciro-engine" */
  readonly producerName?: string;
  readonly docString?: string;
}

// --- a tiny protobuf writer --------------------------------------------------------------

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

/** Appends protobuf fields to a growing list of byte chunks. */
class ProtoWriter {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;

  #push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#length += bytes.length;
  }

  #rawVarint(value: number | bigint): void {
    // int64 semantics: negative values take ten bytes, as two's complement.
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.#push(Uint8Array.from(out));
  }

  #tag(field: number, wire: number): void {
    this.#rawVarint((field << 3) | wire);
  }

  varint(field: number, value: number | bigint): this {
    this.#tag(field, WIRE_VARINT);
    this.#rawVarint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.#tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setFloat32(0, value, true);
    this.#push(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, WIRE_LEN);
    this.#rawVarint(value.length);
    this.#push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}

// --- ONNX messages (field numbers from onnx/onnx.proto) ----------------------------------

const ATTRIBUTE_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

function elementSize(type: OnnxElementType): number {
  switch (type) {
    case "bool":
    case "int8":
    case "uint8":
      return 1;
    case "int16":
    case "uint16":
      return 2;
    case "float32":
    case "int32":
    case "uint32":
      return 4;
    case "float64":
    case "int64":
    case "uint64":
      return 8;
  }
}

/** Little-endian raw bytes of `values` as `type`: the `raw_data` of a `TensorProto`. */
export function encodeRawData(
  type: OnnxElementType,
  values: ArrayLike<number> | readonly bigint[],
): Uint8Array {
  const size = elementSize(type);
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    const at = i * size;
    switch (type) {
      case "float32":
        view.setFloat32(at, Number(v), true);
        break;
      case "float64":
        view.setFloat64(at, Number(v), true);
        break;
      case "int8":
        view.setInt8(at, Number(v));
        break;
      case "uint8":
      case "bool":
        view.setUint8(at, Number(v));
        break;
      case "int16":
        view.setInt16(at, Number(v), true);
        break;
      case "uint16":
        view.setUint16(at, Number(v), true);
        break;
      case "int32":
        view.setInt32(at, Number(v), true);
        break;
      case "uint32":
        view.setUint32(at, Number(v), true);
        break;
      case "int64":
        view.setBigInt64(at, BigInt(v), true);
        break;
      case "uint64":
        view.setBigUint64(at, BigInt(v), true);
        break;
    }
  }
  return bytes;
}

function writeTensor(w: ProtoWriter, t: OnnxInitializer): void {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== t.values.length) {
    throw new RangeError(
      `Invalid initializer "${t.name}": dims ${
        JSON.stringify(t.dims)
      } need ${count} values, got ${t.values.length}`,
    );
  }
  for (const d of t.dims) w.varint(1, d); // dims
  w.varint(2, ONNX_DATA_TYPE[t.elemType]); // data_type
  w.string(8, t.name); // name
  w.bytes(9, encodeRawData(t.elemType, t.values)); // raw_data
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name); // name
  w.message(2, (type) =>
    // type: TypeProto
    type.message(1, (tensor) => { // tensor_type: TypeProto.Tensor
      tensor.varint(1, ONNX_DATA_TYPE[v.elemType]); // elem_type
      tensor.message(2, (shape) => { // shape: TensorShapeProto
        for (const d of v.shape) {
          shape.message(1, (dim) => { // dim: Dimension
            if (typeof d === "number") dim.varint(1, d); // dim_value
            else dim.string(2, d); // dim_param
          });
        }
      });
    }));
}

function writeAttribute(w: ProtoWriter, name: string, value: OnnxAttributeValue): void {
  w.string(1, name);
  if ("int" in value) w.varint(3, value.int).varint(20, ATTRIBUTE_TYPE.int);
  else if ("float" in value) w.float(2, value.float).varint(20, ATTRIBUTE_TYPE.float);
  else if ("string" in value) w.string(4, value.string).varint(20, ATTRIBUTE_TYPE.string);
  else if ("ints" in value) {
    for (const i of value.ints) w.varint(8, i);
    w.varint(20, ATTRIBUTE_TYPE.ints);
  } else {
    for (const f of value.floats) w.float(7, f);
    w.varint(20, ATTRIBUTE_TYPE.floats);
  }
}

function writeNode(w: ProtoWriter, node: OnnxNode): void {
  for (const i of node.inputs) w.string(1, i);
  for (const o of node.outputs) w.string(2, o);
  if (node.name !== undefined) w.string(3, node.name);
  w.string(4, node.opType);
  for (const [name, value] of Object.entries(node.attributes ?? {})) {
    w.message(5, (a) => writeAttribute(a, name, value));
  }
  if (node.domain !== undefined) w.string(7, node.domain);
}

/** Encodes a model description as ONNX `ModelProto` bytes. */
export function encodeModel(model: OnnxModelDescription): Uint8Array {
  const w = new ProtoWriter();
  w.varint(1, model.irVersion ?? 8); // ir_version
  w.string(2, model.producerName ?? "ciro-engine"); // producer_name
  if (model.docString !== undefined) w.string(6, model.docString); // doc_string
  w.message(7, (g) => { // graph: GraphProto
    for (const node of model.nodes) g.message(1, (n) => writeNode(n, node));
    g.string(2, model.graphName);
    for (const init of model.initializers ?? []) g.message(5, (t) => writeTensor(t, init));
    for (const input of model.inputs) g.message(11, (v) => writeValueInfo(v, input));
    for (const output of model.outputs) g.message(12, (v) => writeValueInfo(v, output));
  });
  w.message(8, (o) => { // opset_import: OperatorSetIdProto
    o.string(1, "");
    o.varint(2, model.opsetVersion ?? 17);
  });
  return w.finish();
}

// --- seeded weights ----------------------------------------------------------------------

/** A seeded PRNG (mulberry32): returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uniformWeights(next: () => number, count: number, scale: number): Float32Array {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

function checkSize(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Invalid ${name}: expected a positive integer, got ${value}`);
  }
}

/** A dense layer's parameters: `weight` is `[inputs, outputs]` row-major, `bias` is `[outputs]`. */
export interface DenseLayer {
  readonly inputs: number;
  readonly outputs: number;
  readonly weight: Float32Array;
  readonly bias: Float32Array;
}

function denseLayer(next: () => number, inputs: number, outputs: number): DenseLayer {
  const scale = 1 / Math.sqrt(inputs);
  return {
    inputs,
    outputs,
    weight: uniformWeights(next, inputs * outputs, scale),
    bias: uniformWeights(next, outputs, scale),
  };
}

function denseInitializers(prefix: string, layer: DenseLayer): OnnxInitializer[] {
  return [
    {
      name: `${prefix}.weight`,
      elemType: "float32",
      dims: [layer.inputs, layer.outputs],
      values: layer.weight,
    },
    { name: `${prefix}.bias`, elemType: "float32", dims: [layer.outputs], values: layer.bias },
  ];
}

function denseNodes(prefix: string, input: string, output: string): OnnxNode[] {
  return [
    {
      opType: "MatMul",
      name: `${prefix}.matmul`,
      inputs: [input, `${prefix}.weight`],
      outputs: [`${prefix}.mm`],
    },
    {
      opType: "Add",
      name: `${prefix}.add`,
      inputs: [`${prefix}.mm`, `${prefix}.bias`],
      outputs: [output],
    },
  ];
}

/** Options of {@link buildMlpModel} and {@link mlpWeights}. */
export interface MlpModelOptions {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly outputSize: number;
  /** Seed of the weights' PRNG. */
  readonly seed: number;
  /** Name of the graph input, shaped `[batch, inputSize]`. @default "input" */
  readonly inputName?: string;
  /** Name of the graph output, shaped `[batch, outputSize]`. @default "output" */
  readonly outputName?: string;
}

/** The weights {@link buildMlpModel} stores for `options`: two dense layers. */
export function mlpWeights(
  options: MlpModelOptions,
): { readonly layer1: DenseLayer; readonly layer2: DenseLayer } {
  checkSize("inputSize", options.inputSize);
  checkSize("hiddenSize", options.hiddenSize);
  checkSize("outputSize", options.outputSize);
  const next = seededRandom(options.seed);
  const layer1 = denseLayer(next, options.inputSize, options.hiddenSize);
  const layer2 = denseLayer(next, options.hiddenSize, options.outputSize);
  return { layer1, layer2 };
}

/**
 * A two-layer perceptron: `output = relu(input · W1 + b1) · W2 + b2`, float32, with a symbolic
 * batch dimension.
 */
export function buildMlpModel(options: MlpModelOptions): Uint8Array {
  const { layer1, layer2 } = mlpWeights(options);
  const input = options.inputName ?? "input";
  const output = options.outputName ?? "output";
  return encodeModel({
    graphName: "mlp",
    docString:
      `MLP ${options.inputSize}->${options.hiddenSize}->${options.outputSize}, seed ${options.seed}`,
    nodes: [
      ...denseNodes("fc1", input, "fc1.out"),
      { opType: "Relu", name: "relu", inputs: ["fc1.out"], outputs: ["hidden"] },
      ...denseNodes("fc2", "hidden", output),
    ],
    initializers: [...denseInitializers("fc1", layer1), ...denseInitializers("fc2", layer2)],
    inputs: [{ name: input, elemType: "float32", shape: ["batch", options.inputSize] }],
    outputs: [{ name: output, elemType: "float32", shape: ["batch", options.outputSize] }],
  });
}

/** Options of {@link buildLinearModel} and {@link linearWeights}. */
export interface LinearModelOptions {
  readonly inputSize: number;
  readonly outputSize: number;
  /** Seed of the weights' PRNG. */
  readonly seed: number;
  /** @default "input" */
  readonly inputName?: string;
  /** @default "output" */
  readonly outputName?: string;
}

/** The weights {@link buildLinearModel} stores for `options`. */
export function linearWeights(options: LinearModelOptions): DenseLayer {
  checkSize("inputSize", options.inputSize);
  checkSize("outputSize", options.outputSize);
  return denseLayer(seededRandom(options.seed), options.inputSize, options.outputSize);
}

/** A single dense layer: `output = input · W + b`, float32, with a symbolic batch dimension. */
export function buildLinearModel(options: LinearModelOptions): Uint8Array {
  const layer = linearWeights(options);
  const input = options.inputName ?? "input";
  const output = options.outputName ?? "output";
  return encodeModel({
    graphName: "linear",
    nodes: denseNodes("fc", input, output),
    initializers: denseInitializers("fc", layer),
    inputs: [{ name: input, elemType: "float32", shape: ["batch", options.inputSize] }],
    outputs: [{ name: output, elemType: "float32", shape: ["batch", options.outputSize] }],
  });
}

/** Options of {@link buildAddConstantModel}. */
export interface AddConstantModelOptions {
  /** @default "int64" */
  readonly elemType?: "int32" | "int64" | "float32" | "float64";
  /** Length of the 1-D input and output. */
  readonly size: number;
  /** Added to every element. */
  readonly constant: number;
}

/** `y = x + c` on a 1-D tensor of `size` elements: a model for integer dtypes. */
export function buildAddConstantModel(options: AddConstantModelOptions): Uint8Array {
  checkSize("size", options.size);
  const elemType = options.elemType ?? "int64";
  const values = elemType === "int64" ? [BigInt(options.constant)] : [options.constant];
  return encodeModel({
    graphName: "add_constant",
    nodes: [{ opType: "Add", name: "add", inputs: ["x", "c"], outputs: ["y"] }],
    initializers: [{ name: "c", elemType, dims: [1], values }],
    inputs: [{ name: "x", elemType, shape: [options.size] }],
    outputs: [{ name: "y", elemType, shape: [options.size] }],
  });
}
