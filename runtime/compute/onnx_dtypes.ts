/**
 * The element types of the JSON tensor encoding, in a module of their own so that code which
 * only checks tensors (the client SDK) does not load onnxruntime.
 *
 * @module
 */

/** Element types accepted in inputs and produced in outputs. */
export const ONNX_DTYPES = [
  "float32",
  "float64",
  "int8",
  "uint8",
  "int16",
  "uint16",
  "int32",
  "uint32",
  "int64",
  "uint64",
  "bool",
] as const;

/** An element type of the JSON tensor encoding. */
export type OnnxDtype = typeof ONNX_DTYPES[number];
