/**
 * The data directory rules on real node processes, started with the `deno run` command line of
 * `deno task node` (the one the README gives for supervisors): a missing directory is refused
 * without `--init`; a second process on a directory refuses to start, naming the holder's pid;
 * after the holder is killed with SIGKILL the next start takes the lock over and names the dead
 * pid; a journal whose identity key is gone is refused without `--init`.
 *
 * @module
 */
import assert from "node:assert/strict";
import config from "../../deno.json" with { type: "json" };
import type { NodeInfo } from "../../runtime/ops/node/main.ts";
import { processMarketLock } from "../_exclusive.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

/** `deno task node`'s command line, run directly (no task wrapper process). */
export function nodeCommandArgs(): string[] {
  const [deno, ...args] = config.tasks.node.split(" ");
  assert.equal(deno, "deno");
  return args;
}

interface Proc {
  readonly child: Deno.ChildProcess;
  readonly log: string[];
  readonly status: Promise<Deno.CommandStatus>;
}

function start(args: string[]): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...nodeCommandArgs(), ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) log.push(decoder.decode(chunk));
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  return { child, log, status: drained.then(() => child.status) };
}

async function started(proc: Proc, dataDir: string): Promise<NodeInfo> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const text = await Deno.readTextFile(`${dataDir}/node.json`).catch(() => undefined);
    if (text !== undefined) {
      const info = JSON.parse(text) as NodeInfo;
      if (info.pid === proc.child.pid) return info;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`The node did not start within 30 s: ${proc.log.join("")}`);
}

/** Expects `proc` to refuse to start: exit 1 within 30 s with `message` in its log. */
async function refused(proc: Proc, message: RegExp): Promise<void> {
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    proc.child.kill("SIGKILL");
  }, 30_000);
  const status = await proc.status.finally(() => clearTimeout(timer));
  assert.ok(!killed, `the node started instead of refusing: ${proc.log.join("").slice(-1_000)}`);
  assert.equal(status.code, 1, proc.log.join(""));
  assert.match(proc.log.join(""), message);
}

Deno.test({
  name:
    "deno task node: the data directory is checked and locked (missing, second process, SIGKILL, lost identity)",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using _market = await processMarketLock();
    const dir = await Deno.makeTempDir({ prefix: "ciro-data-dir-" });
    const dataDir = `${dir}/node`;
    const args = [
      "--data-dir",
      dataDir,
      "--ledger",
      `${dir}/ledger.sqlite`,
      "--listen",
      "/ip4/127.0.0.1/tcp/0",
      "--roles",
      "client",
      "--http-port",
      "0",
      "--log-format",
      "json",
    ];
    const running: Proc[] = [];
    try {
      await refused(start(args), /Data directory .*node\\" does not exist: start with --init/);
      const first = start([...args, "--init"]);
      running.push(first);
      const info = await started(first, dataDir);
      await refused(
        start(args),
        new RegExp(`Data directory .* is in use by process ${first.child.pid}`),
      );
      first.child.kill("SIGKILL");
      await first.status;
      const second = start(args);
      running.push(second);
      const again = await started(second, dataDir);
      assert.equal(again.peerId, info.peerId, "the same identity");
      assert.match(
        second.log.join(""),
        new RegExp(`Took over the lock of .* from process ${first.child.pid}, which is gone`),
      );
      second.child.kill("SIGTERM");
      assert.equal((await second.status).code, 0);
      await Deno.remove(`${dataDir}/identity.key`);
      await refused(start(args), /has a journal but no identity key/);
    } finally {
      for (const p of running) {
        try {
          p.child.kill("SIGKILL");
        } catch { /* exited */ }
        await p.status;
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
