/**
 * Replay compliance: every recording fixture in `tests/fixtures/recordings/` replays
 * identically (or, if made with other machine versions, says exactly which it needs); a
 * recording made now by the demo replays identically; an edited recording diverges at the
 * edited step; truncated, reordered, foreign and old-version files fail with clear errors
 * naming the line or sequence number.
 *
 * @module
 */
import assert from "node:assert/strict";
import { runDemo } from "../runtime/demo/demo.ts";
import { MACHINE_VERSIONS } from "../runtime/durability/journal.ts";
import {
  parseRecording,
  readRecording,
  rechainRecording,
  type Recording,
} from "../runtime/durability/recording.ts";
import { replay } from "../runtime/durability/replay.ts";

const dir = new URL("./fixtures/recordings/", import.meta.url).pathname;
const fixtures = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".jsonl")).map((e) =>
  `${dir}${e.name}`
).sort();

function current(recording: Recording): boolean {
  return Object.entries(MACHINE_VERSIONS).every(([k, v]) => recording.header.machines[k] === v);
}

Deno.test("replay() replays every recording fixture identically", async () => {
  assert.ok(fixtures.length >= 2, `expected recording fixtures in ${dir}`);
  let replayed = 0;
  let refused = 0;
  for (const path of fixtures) {
    const recording = await readRecording(path);
    if (!current(recording)) {
      assert.throws(() => replay(recording, { name: path }), {
        name: "ReplayVersionError",
        message: /it needs \w+ machine version \d+, this engine has version \d+/,
      });
      refused++;
      continue;
    }
    const report = replay(recording, { name: path });
    assert.equal(report.divergence, null, `${path} diverged: ${JSON.stringify(report.divergence)}`);
    assert.equal(report.events, recording.entries.length);
    assert.ok(report.checked > 0);
    replayed++;
  }
  console.log(
    `${replayed} fixtures replayed, ${refused} refused as made by other machine versions`,
  );
});

async function freshRecording(): Promise<{ text: string; path: string }> {
  for (const fixture of fixtures) {
    const text = await Deno.readTextFile(fixture);
    if (current(parseRecording(text))) return { text, path: fixture };
  }
  // The fixtures are from older machines: make a recording now.
  const tmp = await Deno.makeTempDir({ prefix: "replay-test-" });
  const path = `${tmp}/recording.jsonl`;
  await runDemo({ jobs: 2, workers: 3, verifiers: 1, ledgerPath: ":memory:", recordPath: path });
  return { text: await Deno.readTextFile(path), path };
}

Deno.test("replay() replays a recording made by the demo identically", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "replay-test-" });
  try {
    const path = `${tmp}/recording.jsonl`;
    const summary = await runDemo({
      jobs: 2,
      workers: 3,
      verifiers: 1,
      ledgerPath: ":memory:",
      recordPath: path,
    });
    assert.equal(summary.recordPath, path);
    const recording = await readRecording(path);
    assert.equal(recording.nodes.length, 5);
    assert.deepEqual(recording.header.machines, MACHINE_VERSIONS);
    const report = replay(recording);
    assert.equal(report.ok, true, JSON.stringify(report.divergence));
    assert.equal(report.checked, recording.entries.length);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("replay() reports the first divergence at the edited step", async () => {
  const { text } = await freshRecording();
  const lines = text.split("\n");
  // Edit the price of the first bid the client heard (alone, or with others in one event).
  const index = lines.findIndex((l) =>
    l.startsWith('{"node":"client"') && /"type":"bids?\.received"/.test(l) &&
    l.includes('"outcome":{"status":"accepted"')
  );
  assert.ok(index > 0, "the recording holds a bid the client accepted");
  const edited = lines[index]!.replace(
    /"price":\{"\$bigint":"(\d+)"\}/,
    (_m, p) => `"price":{"$bigint":"${BigInt(p) - 1n}"}`,
  );
  assert.notEqual(edited, lines[index]);
  lines[index] = edited;
  // The edit rechained, so that it reaches replay (unchained, parsing names it: recording_test).
  const recording = parseRecording(rechainRecording(lines.join("\n")));
  const seq = recording.entries.find((e) => e.line === index + 1)!.seq;
  const report = replay(recording);
  assert.equal(report.ok, false);
  assert.equal(report.divergence?.line, index + 1);
  assert.equal(report.divergence?.node, "client");
  assert.equal(report.divergence?.seq, seq);
  assert.equal(report.divergence?.event, JSON.parse(lines[index]!).event.type);
  assert.notEqual(report.divergence?.expected.hash, report.divergence?.actual.hash);
  assert.equal(report.divergence?.expected.state, report.divergence?.actual.state);
});

Deno.test("parseRecording() names the line of truncated, reordered and foreign files", async () => {
  const { text } = await freshRecording();
  const lines = text.trimEnd().split("\n");
  // Cut mid-line: the last line is not JSON.
  const cut = text.slice(0, Math.floor(text.length / 2));
  const cutLine = cut.split("\n").length;
  assert.throws(() => parseRecording(cut, { name: "cut" }), {
    name: "RecordingError",
    message: new RegExp(`line ${cutLine} is not valid JSON \\(the file looks truncated\\)`),
  });
  // Cut at a line boundary: no end line.
  const whole = lines.slice(0, 100).join("\n") + "\n";
  assert.throws(() => parseRecording(whole, { name: "short" }), {
    name: "RecordingError",
    message: /Recording "short" is truncated: it ends at line 100 without its end line/,
  });
  // Two entries of one node swapped.
  const a = lines.findIndex((l) => l.startsWith('{"node":"client","seq":5,'));
  const b = lines.findIndex((l) => l.startsWith('{"node":"client","seq":6,'));
  const swapped = [...lines];
  swapped[a] = lines[b]!;
  swapped[b] = lines[a]!;
  assert.throws(() => parseRecording(rechainRecording(swapped.join("\n"))), {
    name: "RecordingError",
    message: new RegExp(
      `line ${a + 1}: seq 6 of node "client" follows seq 4: entries 5..5 are missing`,
    ),
  });
  // An entry dropped.
  const dropped = lines.filter((_l, i) => i !== b);
  assert.throws(() => parseRecording(rechainRecording(dropped.join("\n"))), {
    name: "RecordingError",
    message: /seq 7 of node "client" follows seq 5/,
  });
  // Foreign files.
  assert.throws(() => parseRecording("hello\n"), {
    name: "RecordingError",
    message: /Not a CIRO recording: line 1 .* is not JSON/,
  });
  assert.throws(() => parseRecording('{"format":"something"}\n'), {
    name: "RecordingError",
    message: /Not a CIRO recording: line 1 .* has no "format": "ciro.recording" header/,
  });
  const future = lines[0]!.replace(/"version":\d+/, '"version":9');
  assert.throws(() => parseRecording([future, ...lines.slice(1)].join("\n")), {
    name: "RecordingError",
    message: /Unsupported recording format version 9 .*\(line 1\): this engine reads versions 1, 2/,
  });
});

Deno.test("replay() says which machine version an old recording needs", async () => {
  const { text } = await freshRecording();
  const lines = text.split("\n");
  lines[0] = lines[0]!.replace(/"job":\d+/, '"job":0');
  const recording = parseRecording(rechainRecording(lines.join("\n")));
  assert.throws(() => replay(recording, { name: "old.jsonl" }), {
    name: "ReplayVersionError",
    message: new RegExp(
      `Cannot replay "old.jsonl" .*: it needs job machine version 0, this engine has version ${MACHINE_VERSIONS.job}`,
    ),
  });
});
