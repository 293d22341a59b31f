/**
 * Finished job actors are retired: a node that runs for days must not keep every job it ever
 * saw in memory. Retirement enters through the inbox (a `timer.fired` with the key `retire`), so
 * it is journaled, survives a restart and replays identically; what is left of a job is a
 * compact summary in a bounded archive, and late news about it is refused instead of creating a
 * new actor.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorTree, RETIRE_KEY } from "../actors/tree.ts";
import { LocalLedger } from "../chain/local_ledger.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { loadConfig } from "../runtime/ops/config.ts";
import { runDemo } from "../runtime/demo/demo.ts";
import { readRecording } from "../runtime/durability/recording.ts";
import { openDurableNode } from "../runtime/durability/recovery.ts";
import { buildReport } from "../runtime/research/report.ts";
import { replay } from "../runtime/durability/replay.ts";
import { spec } from "./_drive.ts";

function treeWith(archiveSize?: number): ActorTree {
  return new ActorTree({
    self: "client",
    roles: ["client"],
    now: () => 0,
    ...(archiveSize === undefined ? {} : { archiveSize }),
    onEffect: () => {},
  });
}

let seq = 0;
function deliver(tree: ActorTree, target: string, event: { type: string; [k: string]: unknown }) {
  return tree.deliver({ seq: ++seq, at: 1_000 + seq, source: "test", target, event });
}

/** Submits job `id` and cancels it through the chain, so its actor is final. */
function finishedJob(tree: ActorTree, id: string): void {
  deliver(tree, `job:${id}`, { type: "job.submit", spec: spec(), verifierPool: ["v1"] });
  deliver(tree, `job:${id}`, { type: "chain.escrow.refunded", reason: "cancelled", amount: 100n });
  assert.equal(tree.get(`job:${id}`)?.state, "cancelled");
}

Deno.test("the tree retires only finished jobs, keeps a summary, and refuses late news", () => {
  const tree = treeWith();
  try {
    deliver(tree, "job:open", { type: "job.submit", spec: spec(), verifierPool: ["v1"] });
    const early = deliver(tree, "job:open", { type: "timer.fired", key: RETIRE_KEY, due: 0 });
    assert.equal(early.status, "rejected");
    assert.match((early as { reason: string }).reason, /job "open" is not finished \(announced\)/);
    assert.ok(tree.get("job:open"), "an open job is never retired");

    finishedJob(tree, "j1");
    const retired = deliver(tree, "job:j1", { type: "timer.fired", key: RETIRE_KEY, due: 0 });
    assert.equal(retired.status, "accepted");
    assert.equal(tree.get("job:j1"), undefined, "the actor is gone");
    const summary = tree.retired("j1");
    assert.equal(summary?.state, "cancelled");
    assert.equal(summary?.refunded, 100n);
    assert.deepEqual(summary?.path.map((p) => p.state), ["announced", "cancelled"]);

    // Late news: an announcement would otherwise create a fresh observer actor for it.
    const late = deliver(tree, "job:j1", {
      type: "job.announced",
      spec: spec(),
      owner: "someone-else",
    });
    assert.equal(late.status, "rejected");
    assert.match(
      (late as { reason: string }).reason,
      /job "j1" finished \(cancelled\) and was retired/,
    );
    assert.equal(tree.get("job:j1"), undefined);
    const again = deliver(tree, "job:j1", { type: "job.submit", spec: spec(), verifierPool: [] });
    assert.equal(again.status, "rejected", "a retired job id cannot be submitted again");
    const twice = deliver(tree, "job:j1", { type: "timer.fired", key: RETIRE_KEY, due: 0 });
    assert.equal(twice.status, "rejected");
  } finally {
    tree.stop();
  }
});

Deno.test("the archive is bounded: the oldest retired job goes first", () => {
  const tree = treeWith(2);
  try {
    for (const id of ["a", "b", "c"]) {
      finishedJob(tree, id);
      deliver(tree, `job:${id}`, { type: "timer.fired", key: RETIRE_KEY, due: 0 });
    }
    assert.deepEqual([...tree.archive()].map((r) => r.jobId), ["b", "c"]);
    assert.equal(tree.retired("a"), undefined);
    assert.equal(tree.jobs.size, 0);
  } finally {
    tree.stop();
  }
  assert.throws(() => treeWith(-1), /Invalid archiveSize -1: must be a non-negative integer/);
});

Deno.test("a demo with retirement keeps few actors, replays identically, and reports every job", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-retire-" });
  try {
    const recordPath = `${dir}/recording.jsonl`;
    const summary = await runDemo({
      jobs: 12,
      workers: 6,
      verifiers: 4,
      concurrency: 6,
      ledgerPath: `${dir}/ledger.sqlite`,
      recordPath,
      retainFinishedMs: 0,
      timeoutMs: 120_000,
      // Room for a loaded machine: a 120 ms bid window can close before any bid is heard.
      timing: { bidWindowMs: 600, executionMs: 2_000, verificationMs: 4_000 },
    });
    assert.equal(Object.values(summary.byState).reduce((a, b) => a + b, 0), 12);
    // A node holds an actor only for a job it has a role in (owner, bidder, chosen verifier): at
    // most 11 nodes x 12 jobs. Finished ones retire at once (retainFinishedMs 0); the summary is
    // taken when the client's jobs are final, while other nodes may still await the chain's
    // last events, so some of theirs can still be live then.
    const { live, retired } = summary.jobActors;
    assert.ok(live + retired <= 11 * 12, JSON.stringify(summary.jobActors));
    assert.ok(retired >= 12, JSON.stringify(summary.jobActors));
    assert.ok(summary.moneyConserved && summary.stakeConserved);

    const recording = await readRecording(recordPath);
    assert.ok(
      recording.entries.some((e) => e.event.type === "timer.fired" && e.event["key"] === "retire"),
      "retirement is journaled",
    );
    const result = replay(recording);
    assert.ok(result.ok, JSON.stringify(result.divergence));
    const report = buildReport(recording);
    assert.equal(report.jobs.length, 12, "retired jobs are still in the research report");
    assert.ok(report.jobs.every((j) => j.done));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retired jobs survive a restart as summaries, not as actors (clean stop and crash)", async () => {
  for (const crash of [false, true]) {
    const dir = await Deno.makeTempDir({ prefix: "ciro-retire-durable-" });
    const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
    try {
      const open = () =>
        openDurableNode({
          id: "client",
          roles: ["client"],
          network: new InProcessNetwork().join("client"),
          chain: ledger.as("client"),
          dataDir: `${dir}/data`,
          retainFinishedMs: 20,
          capabilityIntervalMs: 0,
        });
      const first = await open();
      await first.start();
      // Nobody bids: the job expires after its window, then its actor is retired.
      const jobId = first.node.submitJob({ spec: spec({ bidWindowMs: 30, verifierCount: 0 }) });
      for (let i = 0; i < 200 && first.node.retiredJob(jobId) === undefined; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(first.node.retiredJob(jobId)?.state, "expired", `${jobId} (crash: ${crash})`);
      assert.equal(first.node.job(jobId), undefined);
      if (crash) {
        // Abandon it as a kill would: no stop, no final checkpoint.
        await first.node.stop();
      } else {
        await first.stop();
      }

      const second = await open();
      try {
        assert.equal(second.node.job(jobId), undefined, "not restored as an actor");
        assert.equal(second.node.retiredJob(jobId)?.state, "expired");
        assert.equal(second.node.jobs().find((j) => j.jobId === jobId)?.retired, true);
      } finally {
        await second.stop();
      }
      if (crash) first.journal.close();
    } finally {
      ledger.close();
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("jobs.retainFinishedMs and jobs.archiveSize are validated with the key named", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-retire-config-" });
  try {
    const path = `${dir}/node.json`;
    await Deno.writeTextFile(path, JSON.stringify({ jobs: { retainFinishedMs: -5 } }));
    await assert.rejects(
      () => loadConfig({ args: ["--config", path], env: {} }),
      /jobs\.retainFinishedMs/,
    );
    await Deno.writeTextFile(path, JSON.stringify({ jobs: { archiveSize: 1.5 } }));
    await assert.rejects(
      () => loadConfig({ args: ["--config", path], env: {} }),
      /jobs\.archiveSize/,
    );
    await Deno.writeTextFile(path, JSON.stringify({ jobs: { retainFinishedMs: null } }));
    const config = await loadConfig({ args: ["--config", path], env: {} });
    assert.equal(config.jobs.retainFinishedMs, null);
    assert.equal(config.jobs.archiveSize, 10_000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
