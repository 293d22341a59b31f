/**
 * Benchmarks of the journal and replay (a script, not a timed test):
 *
 * `deno run -A runtime/replay_bench.ts [<recording.jsonl>] [--appends 5000]`
 *
 * - replay speed of a recording (default: the largest fixture): the supervisor trees driven
 *   without checks (the raw cost of the machines), and with the per-step state check; events/s
 *   and speed-up over the recorded (real) time;
 * - journal appends per second with `synchronous: "normal"` and `"full"` (each append its own
 *   transaction, with the outcome of the previous delivery), to show what the stricter
 *   durability costs.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Envelope } from "../../kernel/mod.ts";
import { MACHINE_VERSIONS, SqliteJournal } from "../../durability/mod.ts";
import { readRecording } from "../../durability/mod.ts";
import { replay } from "../../durability/mod.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { appends: { type: "string", default: "5000" }, runs: { type: "string", default: "3" } },
});
const versions =
  `job${MACHINE_VERSIONS.job}-bid${MACHINE_VERSIONS.bid}-peer${MACHINE_VERSIONS.peer}`;
const path = positionals[0] ??
  new URL(`../../../tests/fixtures/recordings/demo-6-jobs.${versions}.jsonl`, import.meta.url)
    .pathname;
const runs = Number(values.runs);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const recording = await readRecording(path);
console.log(
  `Recording ${path}: ${fmt(recording.entries.length)} events, ${recording.nodes.length} nodes`,
);
replay(recording, { check: false }); // warm up
const rates = new Map<boolean, number[]>([[false, []], [true, []]]);
const speedups = new Map<boolean, number>([[false, 0], [true, 0]]);
// Interleaved, so that garbage collection and machine load fall on both alike.
for (let i = 0; i < runs; i++) {
  for (const check of i % 2 === 0 ? [true, false] : [false, true]) {
    const r = replay(recording, { check });
    if (!r.ok) throw new Error(`Replay diverged at line ${r.divergence?.line}`);
    rates.get(check)!.push(r.eventsPerSecond);
    speedups.set(check, Math.max(speedups.get(check)!, r.speedup));
  }
}
for (const check of [false, true]) {
  const list = rates.get(check)!.sort((a, b) => a - b);
  console.log(
    `  replay ${check ? "with per-step check " : "without checks (raw)"}  best ${
      fmt(list[list.length - 1]!)
    } events/s, median ${fmt(list[Math.floor(list.length / 2)]!)} events/s, best ${
      speedups.get(check)!.toFixed(1)
    }x real time`,
  );
}

const appends = Number(values.appends);
const event = {
  type: "bid.received",
  bid: { bidId: "job-1.1.worker-01", jobId: "job-1", worker: "worker-01", price: 808n, etaMs: 100 },
};
const actor = {
  id: "job:job-1",
  state: "bidding",
  done: false,
  snapshot: { context: { jobId: "job-1", bids: {} } },
  persisted: { value: "bidding" },
};
for (const synchronous of ["normal", "full"] as const) {
  const dir = await Deno.makeTempDir({ prefix: "journal-bench-" });
  try {
    const journal = SqliteJournal.open(`${dir}/journal.sqlite`, {
      synchronous,
      checkpointEvery: 0,
    });
    const started = performance.now();
    for (let seq = 1; seq <= appends; seq++) {
      const envelope: Envelope = { seq, at: seq, source: "network", target: "job:job-1", event };
      journal.append(envelope);
      journal.delivered(envelope, { status: "accepted" }, actor);
    }
    const ms = performance.now() - started;
    journal.close();
    console.log(
      `  journal synchronous=${synchronous.toUpperCase().padEnd(6)} ${
        fmt(appends / (ms / 1000))
      } appends/s (${(ms * 1000 / appends).toFixed(1)} µs each, ${fmt(appends)} appends)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
