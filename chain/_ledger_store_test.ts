/**
 * Tests of the ledger store's own helpers (`chain/_ledger_store.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringifyArgs } from "./_ledger_store.ts";

/** What a transaction's hash covered before the fast path: the replacer on every value. */
function withReplacer(value: unknown): string {
  return JSON.stringify(value, (_key, v) => typeof v === "bigint" ? v.toString() : v);
}

Deno.test("stringifyArgs() gives the replacer's bytes for any value, bigints anywhere", () => {
  fc.assert(
    fc.property(
      fc.anything({
        withBigInt: true,
        withNullPrototype: true,
        withObjectString: true,
        withSparseArray: true,
        withBoxedValues: true,
        withDate: true,
        withMap: true,
        withSet: true,
        withTypedArray: true,
        withUnicodeString: true,
        maxDepth: 5,
      }),
      (value) => {
        assert.equal(stringifyArgs(value), withReplacer(value));
      },
    ),
    { numRuns: 2_000 },
  );
  const cases: unknown[] = [
    { jobId: "j1", amount: 10n, nested: [1n, { x: -5n }], none: undefined },
    JSON.parse('{"__proto__": {"a": 1}, "b": 2}'),
    { toJSON: () => ({ a: 1n }) },
    [undefined, () => 1, Symbol("s"), 2n],
    { when: new Date(0), amount: 3n },
    Object.assign(Object.create(null), { a: 1n }),
  ];
  for (const value of cases) assert.equal(stringifyArgs(value), withReplacer(value));
  // Deeper than the fast path walks: the replacer, the same bytes.
  let deep: unknown = 1n;
  for (let i = 0; i < 100; i++) deep = { d: deep };
  assert.equal(stringifyArgs(deep), withReplacer(deep));
  // A cycle is the replacer's TypeError, as before.
  const cycle: Record<string, unknown> = { a: 1n };
  cycle.self = cycle;
  assert.throws(() => stringifyArgs(cycle), TypeError);
});
