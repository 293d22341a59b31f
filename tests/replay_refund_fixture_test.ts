/**
 * The recording fixture of refunds in progress (`tests/fixtures/make_refund_recording.ts`) holds
 * what the job machine does with a refund the chain refused, one that failed transiently, one
 * whose grace passed unanswered, and a job still in `refunding` when the recording ends; it
 * replays identically (as `tests/replay_fixtures_test.ts` replays every fixture), and an answer
 * edited from the chain's refusal to a transient failure diverges at that step: replay exercises
 * these paths (review R7 L-e).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  MACHINE_VERSIONS,
  parseRecording,
  rechainRecording,
  type Recording,
  type RecordingEntry,
  replay,
} from "../runtime/durability/mod.ts";

const versions =
  `job${MACHINE_VERSIONS.job}-bid${MACHINE_VERSIONS.bid}-peer${MACHINE_VERSIONS.peer}`;
const path = new URL(`./fixtures/recordings/refunds.${versions}.jsonl`, import.meta.url).pathname;

function failed(entry: RecordingEntry, code: string): boolean {
  const event = entry.event as { type: string; request?: string; code?: string };
  return event.type === "chain.tx.failed" && event.request === "chain.refund" &&
    event.code === code && entry.outcome?.status === "accepted";
}

function of(recording: Recording, jobId: string): RecordingEntry[] {
  return recording.entries.filter((e) => e.target === `job:${jobId}`);
}

Deno.test("the refunds fixture holds a refused, a transient and an unanswered refund and replays identically", async () => {
  const text = await Deno.readTextFile(path);
  const recording = parseRecording(text, { name: path });
  // j1: refused, then its grace: sent again.
  const j1 = of(recording, "j1");
  const refused = j1.findIndex((e) => failed(e, "invalid_state"));
  assert.ok(refused > 0, "j1's refund refused");
  const grace = j1[refused + 1]!;
  assert.equal((grace.event as { key?: string }).key, "refund");
  assert.match(grace.outcome?.effects ?? "", /chain\.refund/, "resent after the grace");
  // j2: failed transiently (rpc_error), then the back off: sent again.
  assert.ok(of(recording, "j2").some((e) => failed(e, "rpc_error")), "j2's refund transient");
  // j3: no answer; its grace passes: a back off, no send (uncounted), then the send.
  const j3 = of(recording, "j3").filter((e) => (e.event as { key?: string }).key === "refund");
  assert.equal(j3.length, 2);
  assert.doesNotMatch(j3[0]!.outcome?.effects ?? "", /chain\.refund/, "the grace backs off");
  assert.match(j3[1]!.outcome?.effects ?? "", /chain\.refund/, "then sends");
  // j4: refused, still refunding when the recording ends.
  const j4 = of(recording, "j4");
  assert.ok(failed(j4.at(-1)!, "invalid_state"));
  assert.equal(j4.at(-1)!.outcome?.state, "refunding");
  for (const jobId of ["j1", "j2", "j3"]) {
    assert.equal(of(recording, jobId).at(-1)!.outcome?.state ?? "expired", "expired", jobId);
  }
  const report = replay(recording, { name: path });
  assert.equal(report.divergence, null, JSON.stringify(report.divergence));
  assert.equal(report.events, recording.entries.length);
});

Deno.test("the refunds fixture with j1's refusal edited into a transient failure diverges at that step", async () => {
  const lines = (await Deno.readTextFile(path)).split("\n");
  const index = lines.findIndex((l) =>
    l.includes('"target":"job:j1"') && l.includes('"code":"invalid_state"')
  );
  assert.ok(index > 0);
  lines[index] = lines[index]!.replace('"code":"invalid_state"', '"code":"rpc_error"');
  const recording = parseRecording(rechainRecording(lines.join("\n")));
  const report = replay(recording);
  assert.equal(report.ok, false);
  assert.equal(report.divergence?.line, index + 1);
  assert.equal(report.divergence?.event, "chain.tx.failed");
});
