import assert from "node:assert/strict";
import { benchEngine } from "./bench_lifecycle.ts";

Deno.test("benchEngine() with its journal settles every job and journals every event it delivers", async () => {
  const o = { jobs: 6, concurrency: 3, workers: 5, bidsPerJob: 3 };
  const r = await benchEngine({ ...o, journal: true });
  assert.equal(r.settled, 6);
  assert.equal(r.events, 6 * 14, "14 events per settled job with 3 bids, as without a journal");
  assert.ok(r.cpuMs > 0 && r.jobsPerCpuSecond > 0, JSON.stringify(r));
  // Every delivered event was journaled, and the setup's (peers, capabilities) before them.
  assert.ok((r.journaled ?? 0) >= r.events, `journaled ${r.journaled} of ${r.events}`);
  const plain = await benchEngine(o);
  assert.equal(plain.journaled, undefined, "no journal unless asked");
  assert.equal(plain.events, r.events);
});
