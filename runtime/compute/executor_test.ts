import assert from "node:assert/strict";
import { canonicalJson, commitmentOf } from "./executor.ts";
import { withStandardProto } from "../../tests/_standard_proto.ts";

for (const host of ["Deno's", "the standard"]) {
  Deno.test(`commitmentOf() keeps an own __proto__ key (${host} __proto__ setter): values that differ only there commit apart (review R6 L5)`, () => {
    const run = host === "Deno's" ? (body: () => void) => body() : withStandardProto;
    run(() => {
      const plain = JSON.parse('{"a":1}');
      const hidden = JSON.parse('{"a":1,"__proto__":{"b":2}}');
      const other = JSON.parse('{"a":1,"__proto__":{"b":3}}');
      const nested = JSON.parse('[{"x":{"__proto__":{}}}]');
      assert.ok(Object.hasOwn(hidden, "__proto__"), "JSON.parse makes an own key");
      assert.equal(canonicalJson(hidden), '{"__proto__":{"b":2},"a":1}');
      const commitments = [plain, hidden, other].map(commitmentOf);
      assert.equal(new Set(commitments).size, 3, "each its own commitment");
      assert.notEqual(commitmentOf(nested), commitmentOf(JSON.parse('[{"x":{}}]')));
      // The encoding is the text JSON.parse read the key from: parsed again, it commits alike.
      assert.equal(commitmentOf(JSON.parse(canonicalJson(hidden))), commitmentOf(hidden));
    });
  });
}

Deno.test("canonicalJson() sorts keys, writes bigints as decimal strings and typed arrays as arrays", () => {
  assert.equal(canonicalJson({ b: 2n, a: [new Uint8Array([1, 2])] }), '{"a":[[1,2]],"b":"2"}');
});
