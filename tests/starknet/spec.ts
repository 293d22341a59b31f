/**
 * The official Starknet JSON-RPC specification as a checker: the OpenRPC documents checked in
 * under `tests/fixtures/starknet-specs/<version>/` (from starkware-libs/starknet-specs, see the
 * README there), compiled with Ajv, validate one request's params, one result, or one error
 * object against what the named method of that spec version allows.
 *
 * The OpenRPC `$ref`s are resolved here: each document is registered with Ajv under its own id,
 * the write API's references to `./api/starknet_api_openrpc.json` are pointed at the read API's
 * id, and a method's `errors` (references to `components/errors`) are looked up by JSON pointer.
 *
 * @module
 */
import { Ajv, type ValidateFunction } from "ajv";

/** The spec versions checked in. */
export const SPEC_VERSIONS = ["0.9.0", "0.10.0", "0.10.3"] as const;
/** One of {@link SPEC_VERSIONS}. */
export type SpecVersion = typeof SPEC_VERSIONS[number];

/** The JSON-RPC 2.0 errors any method may return. */
const JSON_RPC_ERRORS: ReadonlyMap<number, string> = new Map([
  [-32700, "Parse error"],
  [-32600, "Invalid Request"],
  [-32601, "Method not found"],
  [-32602, "Invalid params"],
  [-32603, "Internal error"],
]);

interface OpenRpcParam {
  name: string;
  required?: boolean;
  schema: unknown;
}

interface OpenRpcError {
  code: number;
  message: string;
  data?: unknown;
}

interface OpenRpcMethod {
  name: string;
  params: OpenRpcParam[];
  result?: { schema: unknown };
  errors?: ({ $ref: string } | OpenRpcError)[];
}

interface OpenRpcDocument {
  info: { version: string };
  methods: OpenRpcMethod[];
  components: Record<string, Record<string, unknown>>;
}

interface CompiledMethod {
  readonly params: { name: string; required: boolean; validate: ValidateFunction }[];
  readonly result: ValidateFunction | undefined;
  readonly errors: Map<number, { message: string; data: ValidateFunction | undefined }>;
}

const FIXTURES = new URL("../fixtures/starknet-specs/", import.meta.url);

function rewriteRefs(value: unknown, from: string, to: string): unknown {
  if (Array.isArray(value)) return value.map((v) => rewriteRefs(v, from, to));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    out[key] = key === "$ref" && typeof v === "string" && v.startsWith(from)
      ? to + v.slice(from.length)
      : rewriteRefs(v, from, to);
  }
  return out;
}

function pointer(doc: unknown, ref: string): unknown {
  let node = doc;
  for (const part of ref.replace(/^#?\//, "").split("/")) {
    node = (node as Record<string, unknown> | undefined)?.[part.replace(/~1/g, "/")];
  }
  if (node === undefined) throw new Error(`Unresolved $ref: ${ref}`);
  return node;
}

/**
 * An error's `data` as a JSON schema: the documents write a bare type name (`"data": "string"`)
 * for some, and `"required": "revert_error"` (not a list) for error 40; both are read as meant.
 * Its `#/...` references point into the document `docId`.
 */
function dataSchema(data: unknown, docId: string): object {
  if (typeof data === "string") return { type: data };
  const schema = rewriteRefs(data, "#/", `${docId}#/`) as Record<string, unknown>;
  if (typeof schema.required === "string") schema.required = [schema.required];
  return schema;
}

/**
 * Whether the only failures are `oneOf`s that more than one branch passed: the documents' block
 * schemas are open objects, so a confirmed block also passes the pre-confirmed block's schema and
 * `oneOf` fails for every real block. Such a value is valid as meant.
 */
function ambiguous(validate: ValidateFunction): boolean {
  const errors = validate.errors ?? [];
  return errors.length > 0 &&
    errors.every((e) =>
      e.keyword === "oneOf" &&
      Array.isArray((e.params as { passingSchemas?: unknown }).passingSchemas)
    );
}

function describe(validate: ValidateFunction): string {
  return (validate.errors ?? []).slice(0, 3).map((e) => `${e.instancePath || "/"} ${e.message}`)
    .join("; ");
}

/**
 * One spec version's methods, ready to check traffic. Load it with {@link StarknetSpec.load}.
 */
export class StarknetSpec {
  readonly version: SpecVersion;
  readonly #methods = new Map<string, CompiledMethod>();

  private constructor(version: SpecVersion, read: OpenRpcDocument, write: OpenRpcDocument) {
    this.version = version;
    const ajv = new Ajv({ strict: false, validateSchema: false, allErrors: true });
    const readId = `starknet-api-${version}`;
    const writeId = `starknet-write-api-${version}`;
    ajv.addSchema({ ...read, $id: readId } as never);
    const writeDoc = rewriteRefs(write, "./api/starknet_api_openrpc.json#", `${readId}#`);
    ajv.addSchema({ ...(writeDoc as object), $id: writeId } as never);
    for (const [doc, id] of [[read, readId], [write, writeId]] as const) {
      doc.methods.forEach((method, m) => {
        const errors = new Map<number, { message: string; data: ValidateFunction | undefined }>();
        method.errors?.forEach((entry, e) => {
          let error = entry as OpenRpcError;
          let base = `${id}#/methods/${m}/errors/${e}`;
          if ("$ref" in entry) {
            const [file, ref] = entry.$ref.split("#") as [string, string];
            const target = file === "" ? doc : read;
            error = pointer(target, ref) as OpenRpcError;
            base = `${file === "" ? id : readId}#${ref}`;
          }
          errors.set(error.code, {
            message: error.message,
            data: error.data === undefined
              ? undefined
              : ajv.compile(dataSchema(error.data, base.slice(0, base.indexOf("#")))),
          });
        });
        this.#methods.set(method.name, {
          params: method.params.map((param, p) => ({
            name: param.name,
            required: param.required === true,
            validate: ajv.compile({ $ref: `${id}#/methods/${m}/params/${p}/schema` }),
          })),
          result: method.result === undefined
            ? undefined
            : ajv.compile({ $ref: `${id}#/methods/${m}/result/schema` }),
          errors,
        });
      });
    }
  }

  /** Reads and compiles the documents of `version`. */
  static async load(version: SpecVersion): Promise<StarknetSpec> {
    const read = async (name: string) =>
      JSON.parse(await Deno.readTextFile(new URL(`${version}/${name}`, FIXTURES)));
    return new StarknetSpec(
      version,
      await read("starknet_api_openrpc.json"),
      await read("starknet_write_api.json"),
    );
  }

  /** Whether the spec has `method`. */
  has(method: string): boolean {
    return this.#methods.has(method);
  }

  /** Problems of a request's `params` (by name or by position); empty when it is valid. */
  checkParams(method: string, params: unknown): string[] {
    const spec = this.#methods.get(method);
    if (spec === undefined) return [`${method} is not a method of spec ${this.version}`];
    const problems: string[] = [];
    const byName = Array.isArray(params)
      ? Object.fromEntries(spec.params.map((p, i) => [p.name, params[i]]))
      : (params ?? {}) as Record<string, unknown>;
    if (Array.isArray(params) && params.length > spec.params.length) {
      problems.push(`${method}: ${params.length} params, the spec has ${spec.params.length}`);
    }
    for (const name of Object.keys(byName)) {
      if (byName[name] !== undefined && !spec.params.some((p) => p.name === name)) {
        problems.push(`${method}: unknown param ${name}`);
      }
    }
    for (const param of spec.params) {
      const value = byName[param.name];
      if (value === undefined) {
        if (param.required) problems.push(`${method}: missing param ${param.name}`);
      } else if (!param.validate(value)) {
        problems.push(`${method}: param ${param.name}: ${describe(param.validate)}`);
      }
    }
    return problems;
  }

  /** Problems of a method's result; empty when it is valid. */
  checkResult(method: string, result: unknown): string[] {
    const validate = this.#methods.get(method)?.result;
    if (validate === undefined) return [`${method} has no result in spec ${this.version}`];
    return validate(result) || ambiguous(validate)
      ? []
      : [`${method}: result: ${describe(validate)}`];
  }

  /**
   * Problems of an error object returned by `method`: its code must be one the method lists (or
   * a JSON-RPC 2.0 error), its message the spec's, and its data the spec's shape.
   */
  checkError(method: string, error: { code: number; message: string; data?: unknown }): string[] {
    const standard = JSON_RPC_ERRORS.get(error.code);
    if (standard !== undefined) {
      return error.message.startsWith(standard)
        ? []
        : [`${method}: error ${error.code}: message ${JSON.stringify(error.message)}`];
    }
    const spec = this.#methods.get(method)?.errors.get(error.code);
    if (spec === undefined) {
      return [`${method}: error ${error.code} is not one the method may return`];
    }
    const problems: string[] = [];
    if (error.message !== spec.message) {
      problems.push(
        `${method}: error ${error.code}: message ${JSON.stringify(error.message)}, the spec says ${
          JSON.stringify(spec.message)
        }`,
      );
    }
    if (spec.data === undefined && error.data !== undefined) {
      problems.push(`${method}: error ${error.code} has data, the spec has none`);
    }
    if (spec.data !== undefined && error.data !== undefined && !spec.data(error.data)) {
      problems.push(`${method}: error ${error.code}: data: ${describe(spec.data)}`);
    }
    return problems;
  }
}
