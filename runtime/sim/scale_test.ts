import assert from "node:assert/strict";
import { runScale, type ScaleProgress } from "./scale.ts";

Deno.test("runScale() settles a small market's jobs and counts what each job cost", async () => {
  const progress: ScaleProgress[] = [];
  const options = {
    seed: 7,
    workers: 6,
    verifiers: 4,
    clients: 2,
    rate: 2,
    durationMs: 5_000,
    progressEveryMs: 2_000,
    onProgress: (p: ScaleProgress) => void progress.push(p),
  };
  const r = await runScale(options);
  assert.equal(r.stopped, "done");
  assert.equal(r.jobs.submitted, 10);
  assert.equal(r.jobs.throttled, 0);
  assert.equal(r.jobs.settledPct, 100, JSON.stringify(r.jobs.byState));
  assert.deepEqual(r.violations, []);
  // Every job is announced to every worker and heard by gossip: at least one delivery per
  // worker per job, and every worker journals at least its announcement (or its decline).
  assert.ok(r.messages.deliveredPerJob >= 6, `${r.messages.deliveredPerJob}`);
  assert.ok(r.workerEvents.gossipPerWorkerPerJob >= 1);
  assert.ok(r.workerEvents.perWorkerPerJob >= 1);
  assert.ok((r.workerEvents.perWorkerPerJobBySource["network"] ?? 0) >= 1);
  assert.equal(r.declines.actorsHeld, 0);
  assert.ok(r.workerJobActorsPeak >= 1);
  assert.ok(r.setupMessages["delivered"]! > 0, "the start-up is counted apart");
  // A progress line every 2 virtual s while it ran, in order.
  assert.ok(progress.length >= 2);
  assert.deepEqual(
    progress.map((p) => p.virtualMs).slice(0, 2),
    [2_000, 4_000],
  );
  assert.ok(progress.at(-1)!.settled <= r.jobs.settled);
  // One seed, one run.
  const again = await runScale({ ...options, onProgress: () => {} });
  assert.equal(again.traceHash, r.traceHash);
  assert.equal(again.messages.deliveredPerJob, r.messages.deliveredPerJob);
});

Deno.test("runScale(): a worker that declines a job handles one delivery for it and holds no actor", async () => {
  const r = await runScale({ seed: 5, workers: 5, decliners: 3, rate: 2, durationMs: 3_000 });
  assert.equal(r.decliners, 3);
  assert.equal(r.jobs.settledPct, 100, JSON.stringify(r.jobs.byState));
  assert.ok(r.declines.records >= 3 * r.jobs.submitted, `${r.declines.records} declines`);
  // The decline itself and nothing else: protocol v2 journals chain news only of jobs a node has
  // a role in (under v1 the job's 7 chain events came too: 8 in all).
  assert.equal(r.declines.deliveriesPerDecline, 1);
  assert.equal(r.declines.actorsHeld, 0);
});

Deno.test("runScale() without peer events and capability gossip: a quiet start-up, jobs settle all the same", async () => {
  const base = { seed: 2, workers: 5, rate: 2, durationMs: 2_000 };
  const mesh = await runScale(base);
  const quiet = await runScale({ ...base, peerEvents: false, capabilities: false });
  assert.equal(mesh.peerEvents, true);
  assert.equal(quiet.peerEvents, false);
  // Without capability gossip, the start-up delivers nothing; with it, nodes hear each other.
  assert.equal(quiet.setupMessages["delivered"], 0);
  // (a node that starts early misses the announcements of those that start before it listens)
  assert.ok(mesh.setupMessages["delivered"]! >= (10 * 9) / 2, `${mesh.setupMessages["delivered"]}`);
  assert.equal(quiet.jobs.settledPct, 100, JSON.stringify(quiet.jobs.byState));
  // With peer events, a worker hears each of the other 9 nodes connect and identify itself, but
  // journals nothing for them until it deals with them (no job yet at start-up): quiet peers.
  assert.ok(
    mesh.workerEvents.setupPerWorker - quiet.workerEvents.setupPerWorker < 2,
    `${mesh.workerEvents.setupPerWorker} against ${quiet.workerEvents.setupPerWorker}`,
  );
});

Deno.test("runScale() skips a submission due while maxInFlight jobs are open", async () => {
  const r = await runScale({ seed: 3, workers: 3, rate: 20, durationMs: 1_000, maxInFlight: 2 });
  assert.equal(r.jobs.submitted + r.jobs.throttled, 20);
  assert.ok(r.jobs.throttled > 0, "20 jobs in 1 s with 2 in flight: some are skipped");
  assert.ok(r.jobs.peakInFlight <= 2, `${r.jobs.peakInFlight}`);
  assert.equal(r.jobs.settled, r.jobs.submitted);
});

Deno.test("runScale() stops at its wall-time cap and says so", async () => {
  const r = await runScale({ seed: 1, workers: 4, rate: 10, durationMs: 60_000, wallCapMs: 1 });
  assert.equal(r.stopped, "wall-cap");
  assert.ok(r.virtualMs < 60_000);
});

Deno.test("runScale() stops when its signal is aborted", async () => {
  const controller = new AbortController();
  controller.abort();
  const r = await runScale({ workers: 2, durationMs: 60_000, signal: controller.signal });
  assert.equal(r.stopped, "aborted");
});

Deno.test("runScale() refuses a market it cannot run, naming the option", async () => {
  for (
    const [options, message] of [
      [{ workers: 0 }, /Invalid workers 0/],
      [{ workers: 2, verifiers: 0 }, /Invalid verifiers 0/],
      [{ workers: 2, clients: 1.5 }, /Invalid clients 1.5/],
      [{ workers: 2, rate: 0 }, /Invalid rate 0/],
      [{ workers: 2, maxInFlight: 0 }, /Invalid in-flight 0/],
      [{ workers: 2, decliners: 3 }, /Invalid decliners 3: at most the 2 workers/],
      [{ workers: 2, wallCapMs: -1 }, /Invalid wall-time cap -1/],
    ] as const
  ) {
    await assert.rejects(runScale(options), (e: Error) => {
      assert.equal(e.name, "RangeError");
      assert.match(e.message, message);
      return true;
    });
  }
});
