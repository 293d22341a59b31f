/**
 * Every task answers `--help` (exit 0, usage on stdout, `diagrams` writing nothing) and bad
 * usage with exit 2 and a message, never a stack trace. Runs the real tasks as subprocesses.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

async function task(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", ...args],
    cwd: ROOT,
    stdin: "null",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(60_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

const TASKS = [
  "demo",
  "replay",
  "export",
  "bench",
  "submit",
  "diagrams",
  "node",
  "ciro",
  "devstack",
];

Deno.test("Every task answers --help with its usage and exit 0; diagrams writes nothing", async () => {
  const docs = new Map<string, string>();
  for await (const entry of Deno.readDir(`${ROOT}docs`)) {
    if (entry.isFile) docs.set(entry.name, await Deno.readTextFile(`${ROOT}docs/${entry.name}`));
  }
  const stat = () =>
    Promise.all(
      [...docs.keys()].map(async (n) => (await Deno.stat(`${ROOT}docs/${n}`)).mtime?.getTime()),
    );
  const before = await stat();
  for (const name of TASKS) {
    const result = await task(name, "--help");
    assert.equal(result.code, 0, `${name}: ${result.stderr}`);
    assert.match(result.stdout, /^Usage: /, name);
    assert.doesNotMatch(result.stderr, /\n\s+at /, name);
  }
  assert.deepEqual(await stat(), before, "diagrams --help touched docs/");
});

Deno.test("Bad usage exits 2 with a message and no stack trace, in every task", async () => {
  const cases: [string[], RegExp][] = [
    [["demo", "--workers", "-1"], /^Option '--workers' argument is ambiguous/],
    [["demo", "--workers", "2"], /Invalid --workers 2: need at least 3/],
    [["demo", "--log-level", "loud"], /^Invalid --log-level "loud": must be one of trace/],
    [["demo", "--jobs", "abc"], /^Invalid --jobs "abc": must be a positive integer/],
    [
      ["submit", "--max-price", "abc"],
      /^Invalid --max-price "abc": must be a non-negative integer/,
    ],
    [["submit", "--node", "http://127.0.0.1:9", "--verifiers", "x"], /^Invalid --verifiers "x"/],
    [["submit", "--colour"], /^Invalid flags: Unknown option '--colour'/],
    [["replay", "x.jsonl", "--policy", "cheapest"], /^Unknown policy "cheapest": expected one of/],
    [["replay"], /^Usage: deno task replay/],
    [["export"], /^Usage: deno task export/],
    [["bench", "--fast"], /^Unknown option '--fast'/],
    [["bench", "--engine", "--jobs", "0"], /^Invalid --jobs 0: expected an integer from 1/],
    [["diagrams", "now"], /^Unexpected argument "now"/],
    [["node", "--log-level", "loud"], /^Invalid config "log.level": must be one of trace/],
    [["node", "--http-port", "x"], /^Invalid config "http.port": must be a port number/],
    [["devstack", "--workers", "0"], /^error: option '--workers <n>' argument '0' is invalid/],
    [["devstack", "--chain", "evm"], /the EVM chain is not available in devstack yet/],
    [
      ["ciro", "jobs", "list", "--limit", "x"],
      /^error: option '--limit <n>' argument 'x' is invalid/,
    ],
  ];
  for (const [args, message] of cases) {
    const result = await task(...args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr.trim(), message, args.join(" "));
    assert.doesNotMatch(result.stderr, /\n\s+at /, args.join(" "));
  }
});

Deno.test("deno task bench --engine --chain-process runs with the task's own permissions (it spawns the chain's process)", async () => {
  const result = await task("bench", "--engine", "--chain-process", "--jobs", "20");
  assert.equal(result.code, 0, result.stderr);
  const line = result.stdout.trim().split("\n").at(-1)!;
  const r = JSON.parse(line) as { settled: number; jobs: number };
  assert.equal(r.jobs, 20, line);
  assert.equal(r.settled, 20, line);
});
