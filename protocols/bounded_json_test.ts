import assert, { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import fc from "fast-check";
import {
  type BoundedJsonError,
  checkBounded,
  decodeBoundedJson,
  DEFAULT_JSON_LIMITS,
  type JsonLimits,
  resolveJsonLimits,
} from "./bounded_json.ts";

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if ((error as Error).name !== "BoundedJsonError") throw error;
    return (error as BoundedJsonError).code;
  }
  return "accepted";
}

const encoder = new TextEncoder();

Deno.test("decodeBoundedJson() refuses 4,000 levels of nesting as too_deep, arrays and objects", () => {
  const arrays = "[".repeat(4000) + "]".repeat(4000);
  const objects = '{"a":'.repeat(4000) + "1" + "}".repeat(4000);
  assertEquals(codeOf(() => decodeBoundedJson(arrays)), "too_deep");
  assertEquals(codeOf(() => decodeBoundedJson(encoder.encode(objects))), "too_deep");
  // Exactly at the limit is fine; one more is not.
  const at = "[".repeat(DEFAULT_JSON_LIMITS.maxDepth) + "]".repeat(DEFAULT_JSON_LIMITS.maxDepth);
  assertEquals(codeOf(() => decodeBoundedJson(at)), "accepted");
  assertEquals(codeOf(() => decodeBoundedJson(`[${at}]`)), "too_deep");
  // A bracket inside a string is not nesting.
  assertEquals(decodeBoundedJson(JSON.stringify(["[".repeat(100)])), ["[".repeat(100)]);
});

Deno.test("decodeBoundedJson() checks the size before decoding", () => {
  const limits = { maxBytes: 16 };
  assertEquals(codeOf(() => decodeBoundedJson(new Uint8Array(17), limits)), "too_large");
  // Invalid UTF-8 of the allowed size is malformed, not too large.
  assertEquals(codeOf(() => decodeBoundedJson(new Uint8Array([0xff, 0xfe]), limits)), "malformed");
  // 6 characters, 18 bytes in UTF-8.
  assertEquals(codeOf(() => decodeBoundedJson('"€€€€"', { maxBytes: 13 })), "too_large");
  assertEquals(decodeBoundedJson('"€€€€"', { maxBytes: 14 }), "€€€€");
  assertEquals(codeOf(() => decodeBoundedJson("1".repeat(17), limits)), "too_large");
});

Deno.test("decodeBoundedJson() counts strings, array elements and keys", () => {
  const limits: Partial<JsonLimits> = { maxStringLength: 4, maxArrayLength: 3, maxKeys: 2 };
  assertEquals(decodeBoundedJson('"abcd"', limits), "abcd");
  assertEquals(codeOf(() => decodeBoundedJson('"abcde"', limits)), "string_too_long");
  // An escape counts as the one character it stands for.
  assertEquals(decodeBoundedJson('"\\u0041\\n\\"\\\\"', limits), 'A\n"\\');
  assertEquals(codeOf(() => decodeBoundedJson('{"abcde":1}', limits)), "string_too_long");
  assertEquals(decodeBoundedJson("[1,[2,3,4],300]", limits), [1, [2, 3, 4], 300]);
  assertEquals(codeOf(() => decodeBoundedJson("[1,2,3,4]", limits)), "array_too_long");
  assertEquals(codeOf(() => decodeBoundedJson("[[1,2,3,4]]", limits)), "array_too_long");
  assertEquals(decodeBoundedJson('{"a":{"c":[],"d":{}},"b":"x"}', limits), {
    a: { c: [], d: {} },
    b: "x",
  });
  assertEquals(codeOf(() => decodeBoundedJson('{"a":1,"b":2,"c":3}', limits)), "too_many_keys");
  // Duplicate keys count: JSON.parse would keep one, the sender still sent three.
  assertEquals(codeOf(() => decodeBoundedJson('{"a":1,"a":2,"a":3}', limits)), "too_many_keys");
  assertEquals(decodeBoundedJson("[]", limits), []);
  assertEquals(decodeBoundedJson("{}", limits), {});
});

Deno.test("decodeBoundedJson() names malformed input", () => {
  for (const text of ['"abc', "[1,2", "]", "[}", "{]", "{'a':1}", "", "nul", "[1,]"]) {
    assertEquals(codeOf(() => decodeBoundedJson(text)), "malformed", text);
  }
  throws(() => decodeBoundedJson("[1,2"), (error: Error) => {
    assertEquals(error.name, "BoundedJsonError");
    assertEquals(error.message.startsWith("Malformed JSON: "), true);
    return true;
  });
});

Deno.test("decodeBoundedJson() refuses limits that are not positive integers", () => {
  throws(() => decodeBoundedJson("1", { maxDepth: 0 }), RangeError);
  throws(() => decodeBoundedJson("1", { maxBytes: Number.NaN }), RangeError);
});

Deno.test("decodeBoundedJson() agrees with JSON.parse and checkBounded on any JSON (fixed seed)", () => {
  fc.assert(
    fc.property(
      fc.jsonValue({ maxDepth: 6 }),
      fc.record({
        maxDepth: fc.integer({ min: 1, max: 6 }),
        maxStringLength: fc.integer({ min: 1, max: 12 }),
        maxArrayLength: fc.integer({ min: 1, max: 6 }),
        maxKeys: fc.integer({ min: 1, max: 6 }),
      }),
      (value, limits) => {
        const text = JSON.stringify(value);
        const byText = codeOf(() => decodeBoundedJson(text, limits));
        const byValue = codeOf(() => checkBounded(JSON.parse(text), limits));
        // Both refuse the same documents (the first limit each meets may differ).
        assertEquals(byText === "accepted", byValue === "accepted", `${text} ${byText} ${byValue}`);
        if (byText === "accepted") assertEquals(decodeBoundedJson(text, limits), JSON.parse(text));
      },
    ),
    { seed: 1013, numRuns: 2000 },
  );
});

Deno.test("checkBounded() walks 100,000 levels without overflowing the stack", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assertEquals(codeOf(() => checkBounded(deep)), "too_deep");
  assertEquals(
    codeOf(() => checkBounded(deep, { maxDepth: 200_000, maxBytes: 10_000_000 })),
    "accepted",
  );
});

Deno.test("checkBounded() bounds a shared or cyclic structure by maxBytes", () => {
  // 2^30 paths through a DAG of 30 nodes: the byte budget stops the walk.
  let shared: unknown = "x";
  for (let i = 0; i < 30; i++) shared = [shared, shared];
  assertEquals(codeOf(() => checkBounded(shared, { maxDepth: 64 })), "too_large");
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assertEquals(codeOf(() => checkBounded(cyclic)), "too_deep");
  assertEquals(codeOf(() => checkBounded({ f: () => 1 })), "malformed");
  assertEquals(
    codeOf(() => checkBounded({ a: "x".repeat(20) }, { maxStringLength: 19 })),
    "string_too_long",
  );
  assertEquals(codeOf(() => checkBounded({ a: 1, b: 2 }, { maxKeys: 1 })), "too_many_keys");
  assertEquals(codeOf(() => checkBounded([1, 2], { maxArrayLength: 1 })), "array_too_long");
  assertEquals(codeOf(() => checkBounded({ amount: 10n ** 30n })), "accepted");
});

Deno.test("resolveJsonLimits() resolves frozen limits once, and checks limits that can change every time", () => {
  const frozen = Object.freeze({ maxDepth: 4 });
  const first = resolveJsonLimits(frozen);
  assert.equal(first.maxDepth, 4);
  assert.equal(resolveJsonLimits(frozen), first, "resolved once");
  assert.equal(resolveJsonLimits(), DEFAULT_JSON_LIMITS);
  const open: { maxDepth: number } = { maxDepth: 4 };
  assert.equal(resolveJsonLimits(open).maxDepth, 4);
  open.maxDepth = 0;
  assert.throws(() => resolveJsonLimits(open), RangeError);
  const bad = Object.freeze({ maxKeys: -1 });
  assert.throws(() => resolveJsonLimits(bad), RangeError);
  assert.throws(() => resolveJsonLimits(bad), RangeError, "never remembered as good");
});

Deno.test("decodeBoundedJson() checks a short document against each limit alone", () => {
  // Short enough that no string or array could be too long: nesting and keys still count.
  assertEquals(
    codeOf(() => decodeBoundedJson('{"a":1,"b":2,"c":3}', { maxKeys: 2 })),
    "too_many_keys",
  );
  assertEquals(codeOf(() => decodeBoundedJson('{"a":{"b":{}}}', { maxDepth: 2 })), "too_deep");
  assertEquals(codeOf(() => decodeBoundedJson('{"a":[[1]]}', { maxDepth: 2 })), "too_deep");
  // Each length limit alone.
  assertEquals(
    codeOf(() => decodeBoundedJson('"abcde"', { maxStringLength: 4 })),
    "string_too_long",
  );
  assertEquals(
    codeOf(() => decodeBoundedJson("[1,2,3,4]", { maxArrayLength: 3 })),
    "array_too_long",
  );
  // Within every limit: parsed, or malformed if it is not JSON.
  assertEquals(decodeBoundedJson('{"a":[1,{"b":"c:d"}]}', { maxDepth: 3, maxKeys: 3 }), {
    a: [1, { b: "c:d" }],
  });
  for (const text of ["[1,2", "]", "[}", "{'a':1}", "[1,]"]) {
    assertEquals(codeOf(() => decodeBoundedJson(text)), "malformed", text);
  }
});
