import assert from "node:assert/strict";
import { type CpuProfile, formatProfileSummary, summarizeProfile } from "./cpu_profile.ts";

const ROOT = "file:///repo/";
const frame = (functionName: string, url = "", lineNumber = 0) => ({
  functionName,
  url,
  lineNumber,
});

/** root -> deliver (tree.ts) -> send (xstate) ; deliver -> run (native sqlite) ; idle ; gc. */
const PROFILE: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame("(root)"), children: [2, 5, 6] },
    { id: 2, callFrame: frame("deliver", `${ROOT}actors/tree.ts`, 9), children: [3, 4] },
    {
      id: 3,
      callFrame: frame(
        "send",
        `${ROOT}node_modules/.deno/xstate@5.33.3/node_modules/xstate/dist/x.js`,
        1,
      ),
    },
    { id: 4, callFrame: frame("run") },
    { id: 5, callFrame: frame("(idle)") },
    { id: 6, callFrame: frame("(garbage collector)") },
  ],
  samples: [2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6],
  timeDeltas: [1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
};

Deno.test("summarizeProfile() ranks self time and gives a native's time to its caller's layer", () => {
  const s = summarizeProfile(PROFILE, { root: ROOT });
  assert.equal(s.totalMs, 11);
  assert.equal(s.idleMs, 4);
  assert.deepEqual(s.functions.map((f) => [f.name, f.ms]), [
    ["run", 3],
    ["send npm:xstate:2", 2],
    ["deliver actors/tree.ts:10", 1],
    ["(garbage collector)", 1],
  ]);
  assert.deepEqual(s.layers.map((l) => [l.name, l.ms, l.percent]), [
    ["actors/tree.ts", 4, 57.1],
    ["npm:xstate", 2, 28.6],
    ["(garbage collector)", 1, 14.3],
  ]);
  assert.equal(summarizeProfile(PROFILE, { root: ROOT, limit: 1 }).functions.length, 1);
  const text = formatProfileSummary(s);
  assert.match(text, /sampled 11 ms, idle 4 ms/);
  assert.match(text, /57\.1 %\s+4 ms {2}actors\/tree\.ts/);
});

Deno.test("summarizeProfile() refuses what is not a CPU profile, saying why", () => {
  assert.throws(
    () => summarizeProfile({} as CpuProfile),
    { name: "TypeError", message: "Invalid CPU profile: expected nodes and samples" },
  );
  assert.throws(
    () => summarizeProfile({ ...PROFILE, timeDeltas: [1] }),
    { name: "TypeError", message: "Invalid CPU profile: 11 samples but 1 time deltas" },
  );
  assert.throws(
    () => summarizeProfile({ ...PROFILE, samples: [9], timeDeltas: [1] }),
    { name: "TypeError", message: "Invalid CPU profile: no node 9" },
  );
});
