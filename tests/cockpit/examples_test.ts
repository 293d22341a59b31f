/**
 * The files in `examples/`: every config loads, together they set every config key the
 * README's configuration table names, every job spec is a valid request, and one settles on a
 * market through `POST /jobs`.
 */
import assert from "node:assert/strict";
import { checkOnnxInput } from "../../runtime/sdk/mod.ts";
import { loadConfig, parseJobRequest } from "../../runtime/ops/mod.ts";
import { startMarket } from "./_market.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const EXAMPLES = `${ROOT}examples`;

// deno-lint-ignore no-explicit-any
type Json = any;

function keysOf(value: Json, prefix = ""): string[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return [prefix];
  return [
    ...(prefix === "" ? [] : [prefix]),
    ...Object.entries(value).flatMap(([k, v]) => keysOf(v, prefix === "" ? k : `${prefix}.${k}`)),
  ];
}

/** The config keys the README's configuration table names (`peer.*` rows expanded). */
async function readmeKeys(): Promise<string[]> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const start = readme.indexOf("| key ");
  assert.ok(start > 0, "README has a configuration table");
  const lines = readme.slice(start).split("\n");
  const end = lines.findIndex((l) => !l.startsWith("|"));
  const rows = lines.slice(0, end).filter((l) => l.startsWith("| `"));
  const keys: string[] = [];
  for (const row of rows) {
    const [keyCell, meaning] = row.split("|").slice(1, 3).map((c) => c.trim());
    for (const [, key] of keyCell!.matchAll(/`([A-Za-z.*]+)`/g)) {
      if (!key!.endsWith(".*")) {
        keys.push(key!);
        continue;
      }
      // `peer.*`: the names listed first in the meaning column, as `name`.
      const group = key!.slice(0, -2);
      for (const [, sub] of meaning!.matchAll(/`([A-Za-z]+)`/g)) keys.push(`${group}.${sub}`);
    }
  }
  return keys;
}

Deno.test("Every example config loads, and together they set every key the README names", async () => {
  const seen = new Set<string>();
  for (const name of ["client", "worker", "verifier"]) {
    const path = `${EXAMPLES}/${name}.json`;
    const config = await loadConfig({ args: ["--config", path] });
    assert.ok(config.roles.includes(name as "client"), name);
    assert.equal(config.dataDir, `${ROOT}data/${name === "client" ? "client" : `${name}-1`}`);
    assert.deepEqual(config.chain, { kind: "local", path: `${ROOT}data/ledger.sqlite` });
    for (const key of keysOf(JSON.parse(await Deno.readTextFile(path)))) seen.add(key);
  }
  const worker = await loadConfig({ args: ["--config", `${EXAMPLES}/worker.json`] });
  assert.equal(worker.worker.maxOpenBids, 8);
  assert.equal(worker.worker.stake, 1000n);
  const keys = await readmeKeys();
  assert.ok(keys.length >= 30, `README keys: ${keys.join(", ")}`);
  const missing = keys.filter((k) => !seen.has(k) && k !== "chain");
  assert.deepEqual(missing, [], `keys the README names that no example sets`);
});

Deno.test("Every example job spec is a valid request", async () => {
  for await (const entry of Deno.readDir(`${EXAMPLES}/jobs`)) {
    const raw = JSON.parse(await Deno.readTextFile(`${EXAMPLES}/jobs/${entry.name}`));
    const request = parseJobRequest("spec" in raw ? raw : { spec: raw });
    assert.equal(request.spec.inputCommitment.length, 64, entry.name);
    if (request.spec.kind.type === "onnx") checkOnnxInput(request.spec.input);
  }
});

Deno.test("examples/jobs/matmul.json settles through POST /jobs", async () => {
  const market = await startMarket();
  try {
    const body = await Deno.readTextFile(`${EXAMPLES}/jobs/matmul.json`);
    const response = await fetch(`${market.url}/jobs`, { method: "POST", body });
    assert.equal(response.status, 202);
    const { jobId } = await response.json();
    assert.equal(jobId, "example-matmul");
    assert.equal(await market.finished(jobId), "settled");
    const minimal = await Deno.readTextFile(`${EXAMPLES}/jobs/matmul-minimal.json`);
    const second = await fetch(`${market.url}/jobs`, {
      method: "POST",
      body: JSON.stringify({ spec: JSON.parse(minimal) }),
    });
    assert.equal(second.status, 202);
    assert.equal(await market.finished((await second.json()).jobId), "settled");
  } finally {
    await market.stop();
  }
});
