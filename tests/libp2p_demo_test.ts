/**
 * The demo's market over real libp2p hosts on loopback (one host per node, in one process): it
 * finishes every job and conserves money; its recording replays identically (the recording's
 * stream lines carry each node's chain account, which differs from its peer id over libp2p);
 * and `deno task demo --network libp2p` exits by itself when it is done.
 */
import assert from "node:assert/strict";
import config from "../deno.json" with { type: "json" };
import { runDemo } from "../runtime/demo/demo.ts";
import { readRecording } from "../runtime/durability/recording.ts";
import { replay } from "../runtime/durability/replay.ts";
import { processMarketLock } from "./_exclusive.ts";

Deno.test({
  name: "runDemo() over libp2p finishes every job, conserves money, and its recording replays",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using _market = await processMarketLock();
    const dir = await Deno.makeTempDir({ prefix: "libp2p-demo-" });
    try {
      const recordPath = `${dir}/recording.jsonl`;
      const summary = await runDemo({
        network: "libp2p",
        jobs: 6,
        workers: 5,
        verifiers: 4,
        concurrency: 3,
        ledgerPath: ":memory:",
        recordPath,
        timeoutMs: 90_000,
      });
      const finished = Object.values(summary.byState).reduce((a, b) => a + b, 0);
      assert.equal(finished, 6, JSON.stringify(summary.byState));
      assert.ok(summary.moneyConserved && summary.stakeConserved);
      assert.equal(summary.totals.locked, 0n);
      assert.ok(summary.totals.escrowed > 0n);
      assert.ok(
        (summary.byState["settled"] ?? 0) + (summary.byState["refunded"] ?? 0) > 0,
        JSON.stringify(summary.byState),
      );
      const recording = await readRecording(recordPath);
      assert.equal(recording.nodes.length, 10);
      // Over libp2p a node's id is its peer id; the client's ledger account is "client".
      const client = recording.nodes.find((n) => n.roles.includes("client"))!;
      assert.match(client.id, /^12D3KooW/);
      assert.equal(client.account, "client");
      const report = replay(recording, { name: recordPath });
      assert.equal(report.divergence, null, JSON.stringify(report.divergence));
      assert.equal(report.checked, recording.entries.filter((e) => e.outcome !== null).length);
      assert.ok(report.checked > 100);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "deno task demo --network libp2p exits by itself when it is done",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using _market = await processMarketLock();
    const dir = await Deno.makeTempDir({ prefix: "libp2p-demo-exit-" });
    const [deno, ...args] = config.tasks.demo.split(" ");
    assert.equal(deno, "deno");
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...args,
        "--network",
        "libp2p",
        "--jobs",
        "2",
        "--workers",
        "3",
        "--verifiers",
        "1",
        "--record",
        `${dir}/recording.jsonl`,
        "--json",
      ],
      cwd: new URL("../", import.meta.url).pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Generous: the market takes a few seconds; a process that hangs never exits at all.
    const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
    try {
      const output = await child.output();
      assert.equal(output.signal, null, "the demo had to be killed: it did not exit by itself");
      assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
      const summary = JSON.parse(new TextDecoder().decode(output.stdout));
      assert.equal(summary.moneyConserved, true);
    } finally {
      clearTimeout(timer);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
