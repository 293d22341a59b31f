import assert from "node:assert/strict";
import {
  benchEngine,
  benchLedger,
  benchMachines,
  marketBidders,
  steadyRate,
} from "./bench_lifecycle.ts";
import { DEFAULT_SAMPLE_BIDDERS, inSample, sampleBitsFor } from "../../protocols/sampling.ts";

Deno.test("benchEngine() with its journal settles every job and journals every event it delivers", async () => {
  const o = { jobs: 6, concurrency: 3, workers: 5, bidsPerJob: 3 };
  const r = await benchEngine({ ...o, journal: true });
  assert.equal(r.settled, 6);
  // 10 events per settled job with 3 bids and 3 attestations (each job's bids arrive in one turn
  // and enter as one event, its attestations too: runtime/kernel/batcher.ts), as without a
  // journal, and 2 per worker the first time it bids: its peer actor (connected, identified),
  // which a peer gets once the client deals with it (quiet peers, runtime/kernel/ingress.ts).
  assert.equal(r.events, 6 * 10 + 2 * o.workers);
  assert.ok(r.cpuMs > 0 && r.jobsPerCpuSecond > 0, JSON.stringify(r));
  // Every delivered event was journaled, and the setup's (peers, capabilities) before them.
  assert.ok((r.journaled ?? 0) >= r.events, `journaled ${r.journaled} of ${r.events}`);
  const plain = await benchEngine(o);
  assert.equal(plain.journaled, undefined, "no journal unless asked");
  // The market's own work is measured apart: part of the CPU, never more.
  assert.ok(plain.marketCpuMs !== undefined && plain.marketCpuMs > 0, JSON.stringify(plain));
  assert.ok(plain.marketCpuMs <= plain.cpuMs + 1, JSON.stringify(plain));
  assert.ok((plain.clientJobsPerCpuSecond ?? 0) >= plain.jobsPerCpuSecond, JSON.stringify(plain));
  // So are the client's chain calls (the embedded ledger's transactions and reads).
  assert.ok(plain.chainCpuMs !== undefined && plain.chainCpuMs > 0, JSON.stringify(plain));
  assert.ok(plain.chainCpuMs + plain.marketCpuMs <= plain.cpuMs + 1, JSON.stringify(plain));
  assert.ok(
    (plain.engineJobsPerCpuSecond ?? 0) >= (plain.clientJobsPerCpuSecond ?? 0),
    JSON.stringify(plain),
  );
  assert.equal(plain.events, r.events);
});

Deno.test("benchEngine() with the chain in a child process settles every job, with the same events", async () => {
  const o = { jobs: 6, concurrency: 3, workers: 5, bidsPerJob: 3 };
  const r = await benchEngine({ ...o, chainProcess: true });
  assert.equal(r.settled, 6, JSON.stringify(r));
  assert.equal(r.events, 6 * 10 + 2 * o.workers);
  assert.ok(r.chainCpuMs !== undefined && r.chainCpuMs >= 0, JSON.stringify(r));
  // The chain's process is another process: it tells its own CPU time, and its main thread's.
  assert.ok(r.chainProcessCpuMs !== undefined && r.chainProcessCpuMs >= 0, JSON.stringify(r));
  assert.ok(r.chainThread !== undefined && r.chainThread.cpuMs >= 0, JSON.stringify(r));
  assert.ok(r.chainThread.cpuMs + r.chainThread.offCpuMs >= r.wallMs - 1, JSON.stringify(r));
  assert.ok(
    r.clientThread !== undefined && r.clientThread.cpuMs <= r.cpuMs + 20,
    JSON.stringify(r),
  );
  assert.equal(r.stages, undefined, "no stages unless asked");
  const inProcess = await benchEngine(o);
  assert.equal(inProcess.chainProcessCpuMs, undefined, "no chain process unless asked");
});

Deno.test("benchEngine() with chainCpuProfDir writes a CPU profile of the chain's process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench-chain-prof-" });
  try {
    const o = { jobs: 3, concurrency: 3, workers: 5, bidsPerJob: 3 };
    const r = await benchEngine({ ...o, chainProcess: true, chainCpuProfDir: dir });
    assert.equal(r.settled, 3, JSON.stringify(r));
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.equal(files.length, 1, JSON.stringify(files));
    assert.match(files[0]!, /\.cpuprofile$/);
    const profile = JSON.parse(await Deno.readTextFile(`${dir}/${files[0]}`));
    assert.ok(Array.isArray(profile.nodes) && profile.nodes.length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("benchEngine() with a warm-up runs it on the same node first and measures only the jobs after it", async () => {
  const o = { jobs: 4, concurrency: 2, workers: 5, bidsPerJob: 3 };
  const r = await benchEngine({ ...o, warmUp: 3, stages: true });
  // The 3 warm-up jobs settle too, but only the 4 after them count.
  assert.equal(r.jobs, 4);
  assert.equal(r.settled, 4, JSON.stringify(r));
  // Fewer events than 4 whole jobs' and their peers' first contact: the peer actors were made
  // in the warm-up, and the jobs in flight at its end had begun.
  assert.ok(r.events > 0 && r.events < 4 * 10 + 2 * o.workers, JSON.stringify(r));
  // The steps of the measured jobs only, each at most once a job.
  for (const stage of r.stages!) assert.ok(stage.n >= 1 && stage.n <= 4, JSON.stringify(stage));
  await assert.rejects(() => benchEngine({ ...o, warmUp: -1 }), RangeError);
  await assert.rejects(() => benchEngine({ ...o, warmUp: 1.5 }), RangeError);
});

Deno.test("benchEngine() with stages times each step of a job, in order, once per job", async () => {
  const o = { jobs: 6, concurrency: 3, workers: 5, bidsPerJob: 3 };
  const r = await benchEngine({ ...o, stages: true });
  assert.equal(r.settled, 6, JSON.stringify(r));
  assert.deepEqual(r.stages?.map((s) => s.step), [
    "chain chain.escrow.locked",
    "network bids.received",
    "timer timer.fired",
    "chain chain.worker.assigned",
    "network job.result.received",
    "chain chain.result.submitted",
    "network job.attestations.received",
    "chain chain.job.verified",
    "chain chain.payment.released",
  ]);
  for (const stage of r.stages!) {
    assert.equal(stage.n, 6, JSON.stringify(stage));
    assert.ok(stage.meanMs >= 0, JSON.stringify(stage));
  }
  // The bid window (50 ms) is the least a job waits between its bids and the window's end.
  const window = r.stages!.find((s) => s.step === "timer timer.fired")!;
  const bids = r.stages!.find((s) => s.step === "network bids.received")!;
  assert.ok(window.meanMs + bids.meanMs >= 49, JSON.stringify(r.stages));
});

Deno.test("benchMachines() sends each job's bids and attestations as one event each, or one by one", () => {
  const o = { jobs: 8, concurrency: 3, workers: 5, bidsPerJob: 3 };
  for (const kind of ["raw", "tree"] as const) {
    const batched = benchMachines(kind, o);
    const single = benchMachines(kind, { ...o, batch: false });
    assert.equal(batched.settled, 8, `${kind}: ${JSON.stringify(batched)}`);
    assert.equal(single.settled, 8, `${kind}: ${JSON.stringify(single)}`);
    assert.equal(batched.events, 8 * 10, kind);
    assert.equal(single.events, 8 * 14, kind);
  }
});

Deno.test("steadyRate() counts only the settlements while every slot was in flight", () => {
  // 10 jobs, 2 in flight: the window runs from the 2nd settlement (at 10 ms) to the 8th (at
  // 110 ms), 6 jobs in 100 ms; the slow start and the slow last one are left out.
  const at = [0, 10, 20, 30, 50, 90, 100, 110, 120, 200];
  assert.equal(steadyRate(at, 2), 60);
  assert.equal(steadyRate(at, 5), null, "no window: jobs not more than twice concurrency");
  assert.equal(steadyRate(at, 4), 33, "the 4th (30 ms) to the 6th (90 ms): 2 jobs in 60 ms");
  assert.equal(steadyRate([5, 5, 5, 5, 5], 1), null, "no time between them");
  const r = benchMachines("raw", { jobs: 12, concurrency: 3, workers: 5, bidsPerJob: 3 });
  assert.ok(r.steadyJobsPerSecond !== null && r.steadyJobsPerSecond > 0, JSON.stringify(r));
});

Deno.test("benchEngine() bids from each job's sample when the market is large enough to sample", async () => {
  // 64 workers: the client samples a share of them; a bid from outside is refused.
  const o = { jobs: 6, concurrency: 3, workers: 64, bidsPerJob: 3 };
  const market = marketBidders(o);
  assert.equal(market.bits, sampleBitsFor(64, DEFAULT_SAMPLE_BIDDERS));
  assert.ok(market.bits > 0);
  for (let i = 0; i < o.jobs; i++) {
    const bidders = market.of(i);
    assert.ok(bidders.length > 0 && bidders.length <= 3);
    for (const w of bidders) {
      assert.ok(inSample(w, `job-${i}`, 1, market.bits), `${w} bids on job-${i}`);
    }
  }
  const problems: string[] = [];
  const r = await benchEngine({
    ...o,
    onProgress: (m) => m.includes("problems") && problems.push(m),
  });
  assert.deepEqual(problems, []);
  assert.equal(r.settled, 6);
});

Deno.test("benchLedger() commits 5 transactions a job and hands the subscriber every event", async () => {
  const r = await benchLedger({ jobs: 20 });
  assert.equal(r.transactions, 100);
  assert.equal(r.events, 50 + 6 * 20, "50 stakes, then 6 events a job");
  assert.ok(r.cpuUsPerJob > 0 && r.wallUsPerJob > 0, JSON.stringify(r));
});
