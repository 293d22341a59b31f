/** `deno task simulate`: exit status 0 / 1 / 2, the reproducing command, JSON lines. */
import assert from "node:assert/strict";

const main = new URL("../../runtime/sim/main.ts", import.meta.url).pathname;

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", main, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

Deno.test("simulate: exit 0 and a trace hash when the seed holds", async () => {
  const { code, out } = await run("--seed", "2", "--workers", "4", "--jobs", "3");
  assert.equal(code, 0, out);
  assert.match(out, /^seed 2 ok +[0-9a-f]{16} /);
});

Deno.test("simulate: exit 1, the broken invariant and the command that reproduces it", async () => {
  const { code, out } = await run(
    "--seed",
    "5",
    "--workers",
    "6",
    "--jobs",
    "8",
    "--adversaries",
    "sybil-verifiers",
    "--settlement",
    "legacy",
    "--no-shrink",
    "--json",
  );
  assert.equal(code, 1, out);
  const line = JSON.parse(out.trim().split("\n")[0]!);
  assert.equal(line.violations[0].invariant, "honest-not-slashed");
  assert.equal(
    line.reproduce,
    "deno task simulate --seed 5 --workers 6 --jobs 8 --adversaries sybil-verifiers --settlement legacy",
  );
});

Deno.test("simulate: exit 2 naming the bad option", async () => {
  for (
    const [args, message] of [
      [["--faults", "chaos"], /Unknown fault profile "chaos"/],
      [["--seeds", "9..3"], /Invalid --seeds "9..3"/],
      [["--workers", "0"], /Invalid --workers "0"/],
      [["--adversaries", "gremlins"], /Unknown adversary "gremlins"/],
      [["--settlement", "client"], /Invalid --settlement "client": must be chain or legacy/],
      [["--frobnicate"], /frobnicate/],
    ] as const
  ) {
    const { code, err } = await run(...args);
    assert.equal(code, 2, args.join(" "));
    assert.match(err, message);
  }
});
