/**
 * Tests of the recording chain (format version 3): a recording the demo makes parses and its
 * chain holds; an edit in any field of any line (the header, a stream, an event an actor
 * ignored, an outcome's reason, the end line) is named at its line; the same edit rechained
 * reaches replay, which does not see an ignored field (so the chain is what catches it); a
 * version 1 recording still reads, unchained.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runDemo } from "../demo/mod.ts";
import {
  parseRecording,
  READABLE_RECORDING_VERSIONS,
  rechainRecording,
  RECORDING_VERSION,
} from "./recording.ts";
import { replay } from "./replay.ts";

async function demoRecording(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "recording-test-" });
  try {
    const path = `${dir}/recording.jsonl`;
    await runDemo({ jobs: 2, workers: 3, verifiers: 1, ledgerPath: ":memory:", recordPath: path });
    return await Deno.readTextFile(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const text = demoRecording();

/** `lines` with line `index` changed by `edit` (which must change it). */
function edited(lines: readonly string[], index: number, edit: (line: string) => string): string {
  const out = [...lines];
  const line = edit(lines[index]!);
  assert.notEqual(line, lines[index], `the edit changes line ${index + 1}`);
  out[index] = line;
  return out.join("\n");
}

Deno.test("parseRecording() checks the chain of a version 3 recording and names the edited line", async () => {
  const lines = (await text).split("\n");
  assert.equal(RECORDING_VERSION, 3);
  const recording = parseRecording(lines.join("\n"));
  assert.equal(recording.header.version, 3);
  assert.equal("c" in recording.header, false);
  const find = (test: (l: string) => boolean) => {
    const i = lines.findIndex(test);
    assert.ok(i >= 0);
    return i;
  };
  // An event the addressed actor refused: replay compares only outcomes, so only the chain
  // sees an edit in it.
  const ignored = find((l) => l.startsWith('{"node"') && l.includes('"status":"rejected"'));
  const cases: [string, number, (l: string) => string][] = [
    [
      "the header",
      0,
      (l) => l.replace(/"created":"[^"]+"/, '"created":"2000-01-01T00:00:00.000Z"'),
    ],
    [
      "a stream line",
      find((l) => l.startsWith('{"stream"')),
      (l) => l.replace('"roles":[', '"roles":["bootstrap",'),
    ],
    [
      "an ignored event",
      ignored,
      (l) => l.replace(/"at":(\d+)/, (_m, at) => `"at":${Number(at) + 1}`),
    ],
    ["a rejection reason", ignored, (l) => l.replace(/"reason":"/, '"reason":"x')],
    ["the end line", lines.length - 2, (l) => l.replace(/"entries":(\d+)/, '"entries":$1 ')],
  ];
  for (const [what, index, edit] of cases) {
    assert.throws(() => parseRecording(edited(lines, index, edit), { name: "edited" }), {
      name: "RecordingError",
      line: index + 1,
      message: new RegExp(
        `line ${
          index + 1
        }: its chain checksum does not match \\(the line, or the chain before it, was edited\\)`,
      ),
    }, what);
  }
  // The ignored event's edit, rechained, replays as OK: the per-step check cannot see it.
  const rechained = parseRecording(rechainRecording(edited(lines, ignored, cases[2]![2])));
  assert.equal(replay(rechained).ok, true);
  // A line with its chain member removed.
  assert.throws(
    () => parseRecording(edited(lines, 1, (l) => l.replace(/,"c":"[0-9a-f]{32}"\}$/, "}"))),
    { name: "RecordingError", line: 2, message: /line 2 has no chain checksum "c" at its end/ },
  );
});

Deno.test("parseRecording() still reads version 1 recordings, unchained", async () => {
  assert.deepEqual(READABLE_RECORDING_VERSIONS, [1, 2, 3]);
  const fixture = new URL(
    "../../tests/fixtures/recordings/demo-3-jobs.job3-bid1-peer1.jsonl",
    import.meta.url,
  );
  const old = await Deno.readTextFile(fixture);
  const recording = parseRecording(old);
  assert.equal(recording.header.version, 1);
  assert.ok(recording.entries.length > 0);
  assert.equal(rechainRecording(old), old);
});
