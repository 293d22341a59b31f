/**
 * Machines must stay pure for replay: nothing under machines/ may reach the runtime, the
 * boundary (protocols/, chain/, actors/) or an effectful package, directly or transitively.
 * The import graph comes from `deno info --json`, like Temporal's build check.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const FORBIDDEN = [
  /\/runtime\//,
  /\/protocols\//,
  /\/chain\//,
  /\/actors\//,
  /libp2p/,
  /starknet/,
  /onnxruntime/,
  /^node:(fs|net|http|https|child_process|sqlite|crypto|os|dgram|worker_threads)/,
];

async function importGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info failed for ${entry}: ${new TextDecoder().decode(out.stderr)}`);
  }
  // Every module reached, local files and npm entry points alike (`npm:/xstate@5.33.3`).
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier);
}

/** Why `specifiers` break the rule, if they do. */
function violations(specifiers: string[]): string[] {
  return specifiers.filter((s) => FORBIDDEN.some((re) => re.test(s)));
}

Deno.test("machines/ imports nothing from runtime, boundary or effectful packages", async () => {
  const entries = [...Deno.readDirSync(join(root, "machines"))]
    .filter((e) => e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts"))
    .map((e) => join(root, "machines", e.name));
  assert.ok(entries.length >= 4, "the machines are found");
  for (const entry of entries) {
    const graph = await importGraph(entry);
    assert.deepEqual(violations(graph), [], `${entry} reaches forbidden modules`);
    if (entry.endsWith("_machine.ts")) {
      assert.ok(
        graph.some((s) => s.includes("xstate")),
        `${entry} is walked through its npm imports`,
      );
    }
  }
});

Deno.test("the purity check catches a forbidden import (it can fail)", async () => {
  const dir = await Deno.makeTempDir({ dir: join(root, "machines"), prefix: "_probe" });
  try {
    const probe = join(dir, "impure.ts");
    await Deno.writeTextFile(
      probe,
      `import "../../runtime/kernel/clock.ts";\nexport const x = 1;\n`,
    );
    const found = violations(await importGraph(probe));
    assert.ok(
      found.some((s) => s.includes("/runtime/kernel/clock.ts")),
      `found: ${found.join(", ")}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
