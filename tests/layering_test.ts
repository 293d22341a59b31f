/**
 * The package layering, checked on the real import graph (`deno info --json`):
 *
 * - the outer packages point one way: `machines/` imports no other package; `actors/`,
 *   `protocols/` and `chain/` import only `machines/`; none of them imports `runtime/`;
 * - `runtime/` is made of sub-packages in a fixed order ({@link LAYERS}); a sub-package imports
 *   only sub-packages before it, and only through their `mod.ts`;
 * - programs are `main.ts` files: no other module of `runtime/` reads `import.meta.main`.
 *
 * Tests (`*_test.ts`) are free to reach inside a package.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** The sub-packages of `runtime/`, lowest first: each may import only those before it. */
export const LAYERS = [
  "compute",
  "kernel",
  "durability",
  "research",
  "sdk",
  "ops",
  "demo",
  "sim",
  "bench",
] as const;

/**
 * Entry points other than `mod.ts`: modules that load a native library, kept out of `mod.ts` so
 * that importing the package does not load it.
 */
const NATIVE_ENTRIES: readonly string[] = ["runtime/compute/onnx_executor.ts"];

/** What each outer package may import besides itself. */
const OUTER: Record<string, readonly string[]> = {
  machines: [],
  actors: ["machines"],
  protocols: ["machines"],
  chain: ["machines"],
};

/** An import: from a module to a module, both relative to the repository root. */
export interface Edge {
  readonly from: string;
  readonly to: string;
}

function packageOf(path: string): { outer: string; sub?: string } | undefined {
  const parts = path.split("/");
  if (parts.length < 2) return undefined;
  const outer = parts[0]!;
  if (outer === "runtime") return parts.length >= 3 ? { outer, sub: parts[1]! } : { outer };
  return outer in OUTER ? { outer } : undefined;
}

/** Every edge that breaks the layering, with the rule it breaks. */
export function violations(edges: readonly Edge[]): string[] {
  const out: string[] = [];
  for (const { from, to } of edges) {
    if (from.endsWith("_test.ts") || from.startsWith("tests/")) continue;
    const a = packageOf(from);
    const b = packageOf(to);
    if (a === undefined || b === undefined) continue;
    if (a.outer !== "runtime") {
      if (b.outer !== a.outer && !OUTER[a.outer]!.includes(b.outer)) {
        out.push(`${from} -> ${to}: ${a.outer}/ may not import ${b.outer}/`);
      }
      continue;
    }
    if (b.outer !== "runtime") continue; // runtime/ composes the outer packages
    if (a.sub === undefined || b.sub === undefined) {
      out.push(`${from} -> ${to}: every module of runtime/ lives in a sub-package`);
      continue;
    }
    if (a.sub === b.sub) continue;
    const ra = (LAYERS as readonly string[]).indexOf(a.sub);
    const rb = (LAYERS as readonly string[]).indexOf(b.sub);
    if (ra < 0 || rb < 0) {
      out.push(`${from} -> ${to}: runtime/${ra < 0 ? a.sub : b.sub}/ is not in LAYERS`);
    } else if (rb >= ra) {
      out.push(`${from} -> ${to}: runtime/${a.sub}/ may not import runtime/${b.sub}/ (upward)`);
    } else if (to !== `runtime/${b.sub}/mod.ts` && !NATIVE_ENTRIES.includes(to)) {
      out.push(`${from} -> ${to}: import runtime/${b.sub}/ through its mod.ts`);
    }
  }
  return out;
}

/** The local import edges reachable from `entries`, from `deno info --json`. */
async function importEdges(entries: readonly string[]): Promise<Edge[]> {
  const dir = await Deno.makeTempDir({ dir: root, prefix: "_layering" });
  try {
    const entry = join(dir, "all.ts");
    await Deno.writeTextFile(
      entry,
      entries.map((e) => `import "${relative(dir, join(root, e))}";`).join("\n") + "\n",
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr)}`);
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
      }[];
    };
    const local = (s: string | undefined) =>
      s?.startsWith("file://") ? relative(root, fileURLToPath(s)) : undefined;
    const edges: Edge[] = [];
    for (const m of info.modules) {
      const from = local(m.specifier);
      if (from === undefined || from.startsWith("_layering")) continue;
      for (const d of m.dependencies ?? []) {
        for (const to of [local(d.code?.specifier), local(d.type?.specifier)]) {
          if (to !== undefined) edges.push({ from, to });
        }
      }
    }
    return edges;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(root, dir))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...sources(path));
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) out.push(path);
  }
  return out;
}

Deno.test("the packages import one way, and runtime/ sub-packages only through mod.ts", async () => {
  const files = ["machines", "actors", "protocols", "chain", "runtime"].flatMap(sources);
  const edges = await importEdges(files);
  assert.ok(edges.length > 100, `the graph was walked (${edges.length} edges)`);
  assert.deepEqual(violations(edges), []);
});

Deno.test("every runtime/ sub-package has a mod.ts with a module doc and an example", async () => {
  const subs = [...Deno.readDirSync(join(root, "runtime"))].filter((e) => e.isDirectory);
  for (const sub of subs) {
    assert.ok((LAYERS as readonly string[]).includes(sub.name), `${sub.name} is in LAYERS`);
    const text = await Deno.readTextFile(join(root, "runtime", sub.name, "mod.ts"));
    assert.match(text, /^\/\*\*\n/, `runtime/${sub.name}/mod.ts opens with a module doc`);
    assert.match(text, /```ts/, `runtime/${sub.name}/mod.ts has an example`);
    assert.match(text, /@module/, `runtime/${sub.name}/mod.ts is a module doc`);
  }
  const loose = [...Deno.readDirSync(join(root, "runtime"))].filter((e) => e.isFile);
  assert.deepEqual(loose.map((e) => e.name), [], "no module sits loose in runtime/");
});

Deno.test("programs are main.ts files: no library module of runtime/ reads import.meta.main", async () => {
  const offenders: string[] = [];
  for (const file of sources("runtime")) {
    if (file.endsWith("/main.ts")) continue;
    if ((await Deno.readTextFile(join(root, file))).includes("import.meta.main")) {
      offenders.push(file);
    }
  }
  assert.deepEqual(offenders, []);
});

Deno.test("the layering check catches an upward import, a deep import and an outer import (it can fail)", async () => {
  const probeDir = await Deno.makeTempDir({ dir: join(root, "runtime", "kernel"), prefix: "_p" });
  try {
    const probe = join(probeDir, "probe.ts");
    await Deno.writeTextFile(
      probe,
      `import "../../demo/mod.ts";\nimport "../../compute/executor.ts";\nexport const x = 1;\n`,
    );
    const found = violations(await importEdges([relative(root, probe)]));
    assert.ok(found.some((v) => v.includes("(upward)")), found.join("\n"));
    assert.ok(found.some((v) => v.includes("through its mod.ts")), found.join("\n"));
  } finally {
    await Deno.remove(probeDir, { recursive: true });
  }
  assert.deepEqual(
    violations([{ from: "chain/x.ts", to: "protocols/y.ts" }]).length,
    1,
    "chain/ may not import protocols/",
  );
  assert.deepEqual(
    violations([{ from: "actors/tree.ts", to: "runtime/kernel/mod.ts" }]).length,
    1,
    "actors/ may not import runtime/",
  );
});
