/**
 * The README's SDK example is the module doc of `runtime/sdk/client.ts`, which `deno test --doc`
 * type-checks (and runs): this test fails when the two differ, so the README's copy stays checked.
 *
 * @module
 */
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

/** The first ```ts block after `heading` in markdown `text`. */
function readmeExample(text: string, heading: string): string {
  const section = text.slice(text.indexOf(heading));
  const match = section.match(/```ts(?: ignore)?\n([\s\S]*?)\n```/);
  assert.ok(match, `no ts block under ${heading}`);
  return match[1]!;
}

/** The ```ts block of a module doc, without the comment's ` * ` prefixes. */
function moduleDocExample(source: string): string {
  const match = source.match(/ \* ```ts\n([\s\S]*?)\n \* ```\n/);
  assert.ok(match, "no ts block in the module doc");
  return match[1]!.split("\n").map((l) => l.replace(/^ \* ?/, "")).join("\n");
}

Deno.test("the README's SDK example is the type-checked one in runtime/sdk/client.ts", async () => {
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const client = await Deno.readTextFile(new URL("runtime/sdk/client.ts", root));
  const example = moduleDocExample(client);
  assert.match(example, /generateProof: true/);
  assert.match(example, /priority: "high"/);
  assert.equal(readmeExample(readme, "## ONNX inference and the SDK"), example);
});
