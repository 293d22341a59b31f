import assert from "node:assert/strict";
import type { ScaleResult } from "../sim/mod.ts";
import {
  jobPhaseMs,
  parseCurve,
  type ScalingCurve,
  scalingDurationMs,
  scalingSvg,
  scalingTable,
  withPoint,
} from "./scaling.ts";

/** A point of a curve with the figures the plot and the table read. */
function point(workers: number, wallMs: number, stopped: ScaleResult["stopped"]): ScaleResult {
  return {
    workers,
    wallMs,
    cpuMs: wallMs / 2,
    setupWallMs: wallMs / 10,
    setupCpuMs: wallMs / 20,
    stopped,
    durationMs: scalingDurationMs(workers),
    loadAverage: { start: 1, end: 2 },
    jobs: { submitted: 10, settledPct: 100 },
    messages: { deliveredPerJob: workers * 3 },
    workerEvents: { perWorkerPerJob: 12, gossipPerWorkerPerJob: workers / 4 },
    declines: { deliveriesPerDecline: 9, actorsHeld: 0 },
  } as unknown as ScaleResult;
}

/** A run stopped at its cap in the start-up. */
function unreached(workers: number): ScaleResult {
  const p = point(workers, 600_000, "wall-cap");
  return { ...p, jobs: { ...p.jobs, submitted: 0 } };
}

Deno.test("jobPhaseMs() leaves the start-up out and divides by the jobs", () => {
  const p = { ...point(20, 10_000, "done"), setupCpuMs: 1_000 };
  assert.deepEqual(jobPhaseMs(p), { wall: (10_000 - 1_000) / 10, cpu: (5_000 - 1_000) / 10 });
});

Deno.test("withPoint() replaces the point of the same size and keeps them sorted", () => {
  let curve: ScalingCurve = { label: "v1", points: [point(100, 5_000, "done")] };
  curve = withPoint(curve, point(20, 1_000, "done"));
  curve = withPoint(curve, point(100, 7_000, "done"));
  assert.deepEqual(curve.points.map((p) => [p.workers, p.wallMs]), [[20, 1_000], [100, 7_000]]);
});

Deno.test("parseCurve() names what is wrong with a curve file", () => {
  assert.throws(() => parseCurve("{", "a.json"), /Cannot read curve a\.json: /);
  assert.throws(
    () => parseCurve('{"label":"v1","points":[{"workers":"20"}]}', "b.json"),
    /Cannot read curve b\.json: expected \{ label, points/,
  );
  const ok = parseCurve(JSON.stringify({ label: "v1", points: [point(20, 1, "done")] }), "c");
  assert.equal(ok.points.length, 1);
});

Deno.test("scalingSvg() draws each curve and marks a run stopped at its cap", () => {
  const v1: ScalingCurve = {
    label: "v1",
    points: [point(20, 30_000, "done"), point(1000, 900_000, "wall-cap")],
  };
  const v2: ScalingCurve = { label: "v2", points: [point(20, 2_000, "done"), unreached(500)] };
  const svg = scalingSvg([v1, v2], "a note");
  assert.ok(svg.startsWith("<svg"));
  assert.equal(svg.match(/over cap/g)?.length, 5, "five series (three panels) at v1's last point");
  for (const name of ["v1: wall", "v1: CPU", "v2: journaled", "v2: messages received"]) {
    assert.ok(svg.includes(name), name);
  }
  assert.ok(svg.includes("a note"));
  assert.ok(
    svg.includes("v2: 500 workers stopped at the wall-time cap (600 s) before its first job"),
  );
  const table = scalingTable([v1, v2]);
  assert.equal(table.split("\n").length, 2 + 4);
  assert.match(table, /\| v1 \| 1000 \| 10 \(0\.5\) \| \*\*over cap\*\* \|/);
});

Deno.test("scalingSvg() is tall enough for every legend row and note line", () => {
  const curves: ScalingCurve[] = ["a", "b", "c", "d", "e", "f"].map((label) => ({
    label,
    points: [point(20, 2_000, "done")],
  }));
  const svg = scalingSvg(curves, "one\ntwo");
  const height = Number(svg.match(/^<svg [^>]*height="(\d+)"/)![1]);
  const lowest = Math.max(
    ...[...svg.matchAll(/<text [^>]*y="([\d.]+)"/g)].map((m) => Number(m[1])),
  );
  assert.ok(lowest + 4 <= height, `the lowest text (${lowest}) fits in ${height}`);
});
