/**
 * `deno task devstack --workers 2 --verifiers 1` as a real program: four `deno task node`
 * processes on loopback sharing one ledger file. A job settles through the client it prints;
 * SIGTERM stops every node and the program exits 0. Bounded: 90 s for the whole test.
 */
import assert from "node:assert/strict";
import { processMarketLock } from "../_exclusive.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Json = any;

async function devstackCommand(): Promise<string[]> {
  const task: string = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`)).tasks.devstack;
  return task.split(/\s+/).slice(1);
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "deno task devstack starts node processes, settles a job through its client, stops on SIGTERM",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using _market = await processMarketLock();
    const dir = await Deno.makeTempDir({ prefix: "ciro-devstack-test-" });
    const deadline = AbortSignal.timeout(90_000);
    const child = new Deno.Command(Deno.execPath(), {
      args: [...await devstackCommand(), "--workers", "2", "--verifiers", "1", "--dir", dir],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const stderr: string[] = [];
    // Read to its end: after the process exits, its last lines may still be in the pipe.
    const stderrRead = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        stderr.push(chunk);
      }
    })().catch(() => {});
    const lines: string[] = [];
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let killed = false;
    try {
      let buffer = "";
      while (!lines.some((l) => l.startsWith("Ready."))) {
        const { done, value } = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) =>
            deadline.addEventListener("abort", () => reject(new Error("devstack never got ready")))
          ),
        ]);
        if (done) throw new Error(`devstack exited early: ${stderr.join("")}`);
        buffer += value;
        const parts = buffer.split("\n");
        buffer = parts.pop()!;
        lines.push(...parts);
      }
      const client = /^Client: +(\S+)$/m.exec(lines.join("\n"))![1]!;
      assert.match(client, /^http:\/\/127\.0\.0\.1:\d+$/);
      const bootstrap = /^Bootstrap: +(\S+)$/m.exec(lines.join("\n"))![1]!;
      assert.match(bootstrap, /^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3Koo\w+$/);
      const pids = lines.flatMap((l) => /pid (\d+)/.exec(l)?.[1] ?? []).map(Number);
      assert.equal(pids.length, 4, lines.join("\n"));
      for (const pid of pids) assert.ok(alive(pid), `node ${pid} runs`);

      const submitted = await fetch(`${client}/jobs`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          jobId: "devstack-1",
          spec: {
            kind: { type: "builtin", name: "matmul" },
            input: { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] },
            maxPrice: "1000",
            requirements: { hardware: "cpu", minStake: "100" },
            verifierCount: 1,
            // Room for a loaded machine: the bids of separate processes within 2 s.
            bidWindowMs: 2_000,
          },
        }),
      });
      assert.equal(submitted.status, 202, await submitted.text());
      let job: Json;
      while (!deadline.aborted) {
        job = await (await fetch(`${client}/jobs/devstack-1`)).json();
        if (job.done) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(job.state, "settled", JSON.stringify(job.context?.path));
      const output = await (await fetch(`${client}/jobs/devstack-1/output`)).json();
      assert.deepEqual(output.output, [[19, 22], [43, 50]]);
      // The client's /peers: every node with its roles and the address it is connected on.
      const peers = await (await fetch(`${client}/peers`)).json();
      const worker = peers.tracked.find((p: Json) => p.roles.includes("worker"));
      assert.ok(worker, JSON.stringify(peers));
      assert.match(worker.addresses[0], /^\/ip4\/127\.0\.0\.1\/tcp\/\d+/);
      assert.equal(worker.hardware, "cpu");
      const metrics = await (await fetch(`${client}/metrics`)).text();
      assert.match(metrics, /^ciro_journal_appends_total [1-9]\d*$/m);
      assert.match(metrics, /^ciro_chain_calls_total\{method="releasePayment",outcome="ok"\} 1$/m);

      // deno task submit --wait through the same client prints each phase as it comes.
      const specFile = `${dir}/job.json`;
      await Deno.writeTextFile(
        specFile,
        JSON.stringify({
          kind: { type: "builtin", name: "matmul" },
          input: { a: [[1, 0], [0, 1]], b: [[2, 3], [4, 5]] },
          maxPrice: "1000",
          requirements: { hardware: "cpu", minStake: "100" },
          bidWindowMs: 2_000,
        }),
      );
      const submit = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "-q",
          "submit",
          "--node",
          client,
          "--spec",
          specFile,
          "--verifiers",
          "1",
          "--wait",
        ],
        cwd: ROOT,
        stdin: "null",
        env: { NO_COLOR: "1" },
        signal: AbortSignal.timeout(60_000),
      }).output();
      const submitErr = new TextDecoder().decode(submit.stderr);
      assert.equal(submit.code, 0, submitErr);
      assert.match(submitErr, /\n {2}\+0ms announced\n {2}\+\d+ms bidding\n/);
      assert.match(submitErr, /\n {2}\+\d+ms settled\n/);

      child.kill("SIGTERM");
      killed = true;
      const status = await child.status;
      await stderrRead;
      assert.equal(status.code, 0, stderr.join(""));
      assert.match(stderr.join(""), /Received SIGTERM: stopping 4 nodes\nStopped\n/);
      for (const pid of pids) assert.ok(!alive(pid), `node ${pid} stopped`);
    } finally {
      await reader.cancel().catch(() => {});
      if (!killed) {
        // The devstack may have exited already (the failure being reported says why).
        try {
          child.kill("SIGTERM");
        } catch { /* already exited */ }
        await child.status;
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
