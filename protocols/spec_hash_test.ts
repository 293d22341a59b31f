import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { JobSpec } from "../machines/types.ts";
import { canonicalSpec, specHashesKept, specHashOf } from "./spec_hash.ts";
import { withStandardProto } from "../tests/_standard_proto.ts";

const SPEC: JobSpec = {
  kind: { type: "builtin", name: "matmul" },
  input: { b: [[1]], a: [[2]] },
  inputCommitment: "c".repeat(64),
  requirements: { hardware: "cpu", minStake: 7n },
  maxPrice: 2n ** 70n,
  bidWindowMs: 1_000,
  executionMs: 5_000,
  verificationMs: 6_000,
  maxAttempts: 2,
  verifierCount: 1,
};

Deno.test("specHashOf() is the sha-256 of the spec's JSON with sorted keys and bigints as decimal strings", () => {
  const canonical = canonicalSpec(SPEC);
  assert.equal(
    canonical,
    '{"bidWindowMs":1000,"executionMs":5000,"input":{"a":[[2]],"b":[[1]]},' +
      `"inputCommitment":"${"c".repeat(64)}","kind":{"name":"matmul","type":"builtin"},` +
      '"maxAttempts":2,"maxPrice":"1180591620717411303424",' +
      '"requirements":{"hardware":"cpu","minStake":"7"},"verificationMs":6000,"verifierCount":1}',
  );
  assert.equal(specHashOf(SPEC), createHash("sha256").update(canonical).digest("hex"));
  // Key order and absent fields do not matter; every value does.
  const reordered = JSON.parse(JSON.stringify(SPEC, (_k, v) => typeof v === "bigint" ? `${v}` : v));
  const same = {
    ...reordered,
    maxPrice: SPEC.maxPrice,
    requirements: { minStake: 7n, hardware: "cpu" },
    priority: undefined,
  } as JobSpec;
  assert.equal(specHashOf(same), specHashOf(SPEC));
  for (
    const changed of [
      { ...SPEC, maxAttempts: 1 },
      { ...SPEC, priority: "high" as const },
      { ...SPEC, requirements: { hardware: "gpu" as const, minStake: 7n } },
      { ...SPEC, input: { a: [[2]], b: [[2]] } },
      { ...SPEC, kind: { type: "onnx" as const, modelHash: "a".repeat(64) } },
    ]
  ) assert.notEqual(specHashOf(changed), specHashOf(SPEC), JSON.stringify(changed.kind));
});

Deno.test("specHashOf() keeps the hashes of at most 1,024 recent specs, short ones only, each its own", () => {
  const sha256 = (spec: JobSpec) => createHash("sha256").update(canonicalSpec(spec)).digest("hex");
  // A long encoding is hashed each time, not kept; one just under the length is.
  const long = { ...SPEC, input: { a: "x".repeat(4_096) } };
  const before = specHashesKept();
  assert.ok(before < 1_000);
  for (const maxPrice of [10_000n, 10_001n, 10_000n]) {
    assert.equal(specHashOf({ ...long, maxPrice }), sha256({ ...long, maxPrice }));
  }
  assert.equal(specHashesKept(), before);
  const short = { ...SPEC, input: { a: "x".repeat(3_700) } };
  assert.ok(canonicalSpec(short).length <= 4_096);
  assert.equal(specHashOf(short), sha256(short));
  assert.equal(specHashOf(short), sha256(short));
  assert.equal(specHashesKept(), before + 1);
  const specs = Array.from({ length: 2_000 }, (_, i) => ({ ...SPEC, maxPrice: BigInt(i) }));
  // Twice over: the second pass meets evicted and kept ones alike.
  for (let pass = 0; pass < 2; pass++) {
    for (const spec of specs) assert.equal(specHashOf(spec), sha256(spec));
    assert.equal(specHashesKept(), 1_024);
  }
});

for (const host of ["Deno's", "the standard"]) {
  Deno.test(`specHashOf() keeps an own __proto__ key in the input (${host} __proto__ setter): specs that differ only there hash apart`, () => {
    const run = host === "Deno's" ? (body: () => void) => body() : withStandardProto;
    run(() => {
      const withProto = (json: string) => ({ ...SPEC, input: JSON.parse(json) }) as JobSpec;
      const plain = withProto('{"a":[[2]],"b":[[1]]}');
      const hidden = withProto('{"a":[[2]],"b":[[1]],"__proto__":{"c":[[3]]}}');
      const other = withProto('{"a":[[2]],"b":[[1]],"__proto__":{"c":[[4]]}}');
      const nested = withProto('{"a":[[2]],"b":[[1]],"m":[{"__proto__":{}}]}');
      assert.ok(Object.hasOwn(hidden.input as object, "__proto__"), "JSON.parse makes an own key");
      assert.match(canonicalSpec(hidden), /"input":\{"__proto__":\{"c":\[\[3\]\]\},"a":/);
      const hashes = [plain, hidden, other, nested].map(specHashOf);
      assert.equal(new Set(hashes).size, 4, "each its own hash");
      assert.notEqual(specHashOf(nested), specHashOf(withProto('{"a":[[2]],"b":[[1]],"m":[{}]}')));
      // The encoding is the text JSON.parse read the key from: parsed again, it hashes alike.
      assert.equal(specHashOf(withProto(JSON.stringify(hidden.input))), specHashOf(hidden));
    });
  });
}
