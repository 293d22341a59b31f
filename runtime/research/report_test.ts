/**
 * Tests of the research outputs, on a recording fixture.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MACHINE_VERSIONS } from "../durability/mod.ts";
import { readRecording } from "../durability/mod.ts";
import {
  bidStatistics,
  buildReport,
  formatPaths,
  formatTimeline,
  phasesCsv,
  phasesJson,
  renderHtml,
} from "./report.ts";

const versions =
  `job${MACHINE_VERSIONS.job}-bid${MACHINE_VERSIONS.bid}-peer${MACHINE_VERSIONS.peer}`;
const fixture = new URL(
  `../tests/fixtures/recordings/demo-6-jobs.${versions}.jsonl`,
  import.meta.url,
).pathname;

Deno.test("buildReport() gives timelines, phases, paths and bid statistics of every job", async () => {
  try {
    Deno.statSync(fixture);
  } catch {
    console.warn(`Skipping: no fixture ${fixture} (deno run -A tests/fixtures/make_recordings.ts)`);
    return;
  }
  const recording = await readRecording(fixture);
  const report = buildReport(recording);
  assert.equal(report.jobs.length, 6);
  for (const job of report.jobs) {
    assert.equal(job.owner, "client");
    assert.ok(job.timeline.length > 0);
    assert.equal(job.timeline[0]!.event, "job.submit");
    assert.equal(job.path[job.path.length - 1]!.state, job.state);
  }
  const text = formatTimeline(report);
  assert.match(text, /^job-0001 \(owner client\): \w+, \d+ attempt\(s\), \d+ bids$/m);
  assert.match(text, /bid\.received\s+-> bidding\s+worker-\d+ bids \d+/);
  const csv = phasesCsv(report).trimEnd().split("\n");
  assert.equal(csv[0], "job,state,attempts,bidding,execution,verification,settlement,total");
  assert.equal(csv.length, 7);
  const json = JSON.parse(phasesJson(report));
  assert.equal(json.jobs.length, 6);
  assert.equal(json.summary.total.n, 6);
  assert.match(formatPaths(report), /^job-0001: announced@0 -> bidding@\d+/);
  const bids = bidStatistics(report) as { jobs: number; notTaken: Record<string, number> };
  assert.equal(bids.jobs, 6);
  assert.ok(Object.keys(bids.notTaken).length > 0);
  const html = renderHtml(report);
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /<(script|link|img)[^>]+(src|href)=/);
});
