/**
 * Replay throughput on a recording made in the same run: the demo market (`runDemo` with
 * `recordPath`, every node's journal in one JSON Lines file) is recorded, read back and replayed
 * with `replay()` (the code path of `deno task replay` and `runtime/replay_bench.ts`), without
 * and with the per-step state check.
 *
 * @module
 */
import { runDemo } from "../demo/mod.ts";
import { readRecording } from "../durability/mod.ts";
import { replay } from "../durability/mod.ts";

/** Options of {@link benchReplay}. */
export interface ReplayBenchOptions {
  /** Demo jobs recorded. @default 60 */
  readonly jobs?: number;
  /** Replays of each kind (the best is reported). @default 3 */
  readonly runs?: number;
  readonly onProgress?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/** What {@link benchReplay} measured. */
export interface ReplayBenchResult {
  readonly jobs: number;
  readonly nodes: number;
  readonly events: number;
  /** Wall time of the recorded demo, ms. */
  readonly recordedWallMs: number;
  /** Virtual time the recording spans, ms. */
  readonly virtualMs: number;
  readonly raw: { readonly eventsPerSecond: number; readonly speedup: number };
  readonly checked: { readonly eventsPerSecond: number; readonly speedup: number };
}

/** Records a demo run, then replays it `runs` times each without and with checks. */
export async function benchReplay(options: ReplayBenchOptions = {}): Promise<ReplayBenchResult> {
  const jobs = options.jobs ?? 60;
  const runs = options.runs ?? 3;
  const progress = options.onProgress ?? (() => {});
  const dir = await Deno.makeTempDir({ prefix: "ciro-bench-replay-" });
  try {
    const recordPath = `${dir}/demo.jsonl`;
    const demo = await runDemo({
      jobs,
      recordPath,
      ledgerPath: `${dir}/ledger.sqlite`,
      timeoutMs: 120_000,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    progress(`replay: recorded ${jobs} demo jobs in ${demo.wallMs} ms`);
    const recording = await readRecording(recordPath);
    replay(recording, { check: false }); // warm up
    const best = {
      raw: { eventsPerSecond: 0, speedup: 0 },
      checked: { eventsPerSecond: 0, speedup: 0 },
    };
    let report = replay(recording, { check: true });
    for (let i = 0; i < runs; i++) {
      options.signal?.throwIfAborted();
      for (const check of i % 2 === 0 ? [true, false] : [false, true]) {
        report = replay(recording, { check });
        if (!report.ok) {
          throw new Error(`Replay diverged at line ${report.divergence?.line}`);
        }
        const slot = check ? best.checked : best.raw;
        if (report.eventsPerSecond > slot.eventsPerSecond) {
          slot.eventsPerSecond = Math.round(report.eventsPerSecond);
          slot.speedup = Math.round(report.speedup * 10) / 10;
        }
      }
    }
    progress(`replay: ${report.events} events replayed ${runs * 2} times`);
    return {
      jobs,
      nodes: report.nodes,
      events: report.events,
      recordedWallMs: demo.wallMs,
      virtualMs: Math.round(report.virtualMs),
      ...best,
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
