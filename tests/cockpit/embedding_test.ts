/**
 * Embedding from another project, as the README shows it: a temporary directory with its own
 * `deno.json` mapping `@ciro/engine` to this repository's `mod.ts` runs the README's embedding
 * example (extracted from the README, unchanged) as a subprocess, and the job settles.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

Deno.test({
  name: "The README's embedding example runs from a project outside the repository",
  sanitizeResources: false,
  fn: async () => {
    const readme = await Deno.readTextFile(new URL("README.md", ROOT));
    const section = readme.slice(readme.indexOf("## Embedding"));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block !== undefined, "the Embedding section has a ts block");
    assert.match(block, /from "@ciro\/engine"/);
    const dir = await Deno.makeTempDir({ prefix: "ciro-embed-" });
    try {
      await Deno.writeTextFile(
        `${dir}/deno.json`,
        JSON.stringify({ imports: { "@ciro/engine": new URL("mod.ts", ROOT).href } }),
      );
      await Deno.writeTextFile(`${dir}/main.ts`, block);
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "--quiet", "main.ts"],
        cwd: dir,
        stdin: "null",
        env: { NO_COLOR: "1" },
        signal: AbortSignal.timeout(120_000),
      }).output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.match(stdout, /^client-\S+ settled \[ \[ 19, 22 \], \[ 43, 50 \] \]\n$/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
