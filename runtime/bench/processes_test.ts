import assert from "node:assert/strict";
import {
  checkProcessBenchOptions,
  formatProcessBench,
  jobTimes,
  PROCESS_BENCH_DEFAULTS,
  residentSet,
} from "./processes.ts";
import { main } from "./processes/main.ts";

const bid = (attempt: number, receivedAt: number) => ({ attempt, receivedAt });

Deno.test("jobTimes() measures announcement to the first bid of attempt 1, and submission to final", () => {
  const times = jobTimes({
    state: "settled",
    context: {
      path: [
        { state: "announced", at: 1_000 },
        { state: "bidding", at: 1_040 },
        { state: "assigned", at: 3_100 },
        { state: "settled", at: 5_500 },
      ],
      // Out of order, and a re-auction's bid (attempt 2) earlier than any of attempt 1's.
      bids: { b1: bid(1, 1_300), b2: bid(1, 1_180), b3: bid(2, 1_050) },
    },
  });
  assert.deepEqual(times, { announceToBidMs: 140, wallMs: 4_500 });
});

Deno.test("jobTimes() says nothing it does not know: no bid, not final, a retired summary", () => {
  assert.deepEqual(
    jobTimes({
      state: "expired",
      context: {
        path: [{ state: "announced", at: 0 }, { state: "bidding", at: 10 }, {
          state: "expired",
          at: 2_010,
        }],
        bids: {},
      },
    }),
    { wallMs: 2_010 },
  );
  assert.deepEqual(
    jobTimes({
      state: "executing",
      context: {
        path: [{ state: "announced", at: 0 }, { state: "bidding", at: 10 }, {
          state: "executing",
          at: 900,
        }],
        bids: { b: bid(1, 50) },
      },
    }),
    { announceToBidMs: 40 },
  );
  assert.deepEqual(jobTimes({ state: "settled" }), {});
});

Deno.test("checkProcessBenchOptions() fills the defaults and refuses figures out of range, naming them", () => {
  const o = checkProcessBenchOptions({});
  assert.equal(o.jobs, PROCESS_BENCH_DEFAULTS.jobs);
  assert.equal(o.clients + o.workers + o.verifiers >= 30, true, "the default run is 30 processes");
  assert.throws(
    () => checkProcessBenchOptions({ workers: 33 }),
    { name: "RangeError", message: "Invalid workers 33: must be an integer in [1, 32]" },
  );
  assert.throws(
    () => checkProcessBenchOptions({ concurrency: 0 }),
    { name: "RangeError", message: "Invalid concurrency 0: must be an integer in [1, 500]" },
  );
  assert.throws(
    () => checkProcessBenchOptions({ jobs: 1.5 }),
    { name: "RangeError", message: /^Invalid jobs 1.5/ },
  );
  assert.throws(
    () => checkProcessBenchOptions({ verifiers: 2, verifierCount: 3 }),
    {
      name: "RangeError",
      message: "Invalid verifierCount 3: more than the 2 verifier nodes",
    },
  );
});

Deno.test("bench:processes refuses bad usage with exit code 2 before starting anything", async () => {
  const cases: [string[], RegExp][] = [
    [["--workers", "40"], /Invalid workers 40: must be an integer in \[1, 32\]/],
    [["--jobs", "-3"], /must be a non-negative integer/],
    [["--verifiers", "1", "--verifier-count", "4"], /Invalid verifierCount 4: more than/],
    [["--bogus"], /unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const err: string[] = [];
    const code = await main(args, { out: () => {}, err: (t) => err.push(t) });
    assert.equal(code, 2, args.join(" "));
    assert.match(err.join("\n"), message, args.join(" "));
  }
});

Deno.test("residentSet() reads a live process's RSS and peak, and nothing of a gone one", async () => {
  const own = await residentSet(Deno.pid).catch((error) => error as Error);
  // Deno reads /proc/<pid>/status only with every permission; the suite runs with --allow-all.
  assert.ok(!(own instanceof Error), String(own));
  assert.ok(own !== undefined && own.rss > 1_000_000 && own.peak >= own.rss);
  assert.equal(await residentSet(2 ** 22 + 1), undefined);
});

Deno.test("formatProcessBench() prints every figure the issue asks for", () => {
  const text = formatProcessBench({
    options: checkProcessBenchOptions({}),
    processes: 30,
    formationMs: 61_000,
    jobsWallMs: 100_000,
    outcomes: { rejected: 0, settled: 198, failed: 2, unfinished: 0 },
    announceToBid: { n: 200, p50: 350, p99: 1_200, mean: 400, max: 1_300 },
    jobWall: { n: 200, p50: 6_000, p99: 20_000, mean: 7_000, max: 21_000 },
    settledPerSecond: 1.98,
    rss: { peakTotal: 4 * 2 ** 30, peakProcess: 200 * 2 ** 20, sumOfPeaks: 5 * 2 ** 30 },
    load: { before: [1, 2, 3], max1: 12.5, after: [10, 8, 4] },
  });
  for (
    const want of [
      "Processes: 30",
      "settled 198, failed 2",
      "Announcement to first bid: p50 350 ms, p99 1200 ms",
      "Job wall time (submitted to final): p50 6000 ms, p99 20000 ms",
      "jobs: 100.0 s",
      "all nodes 4096 MB",
      "1-min max 12.5",
    ]
  ) assert.ok(text.includes(want), `${want} in:\n${text}`);
});
