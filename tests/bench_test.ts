/**
 * The benchmark harness in its smallest configuration: not timed, only that every figure is a
 * sane number and every SVG plot is well-formed XML.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type BenchConfig,
  formatTable,
  plots,
  runBench,
  writeResults,
} from "../runtime/bench/bench.ts";
import { benchEngine, benchMachines } from "../runtime/bench/bench_lifecycle.ts";
import { lineChart, niceTicks } from "../runtime/research/svg_plot.ts";

/** Throws unless `xml` is well-formed: balanced tags, quoted attributes, escaped text. */
function assertWellFormedXml(xml: string): void {
  const token = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+="[^"<]*")*)\s*(\/?)>/y;
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const text = xml.slice(i, lt === -1 ? xml.length : lt);
    assert.ok(!/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(text), `unescaped & in ${text}`);
    if (lt === -1) break;
    if (stack.length === 0) assert.equal(text.trim(), "", `text outside the root: ${text}`);
    token.lastIndex = lt;
    const m = token.exec(xml);
    assert.ok(m, `malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`);
    const [, close, name, , selfClose] = m;
    if (close) assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
    i = token.lastIndex;
  }
  assert.deepEqual(stack, [], "unclosed elements");
  assert.equal(roots, 1, "one root element");
}

Deno.test("lineChart() draws well-formed SVG, even with odd data", () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  const svg = lineChart({
    title: 'a <b> & "c"',
    xLabel: "x",
    yLabel: "y",
    series: [
      { name: "one", points: [[1, 2], [2, NaN], [3, 1e6]] },
      { name: "flat & dashed", points: [[5, 5]], dashed: true },
      { name: "empty", points: [] },
    ],
  });
  assertWellFormedXml(svg);
  assert.match(svg, /a &lt;b&gt; &amp; &quot;c&quot;/);
});

Deno.test("benchMachines() and benchEngine() settle every job of a tiny market", async () => {
  const o = { jobs: 12, concurrency: 4, workers: 6, bidsPerJob: 3 };
  for (const kind of ["raw", "tree"] as const) {
    const r = benchMachines(kind, o);
    assert.equal(r.settled, 12, kind);
    assert.ok(r.jobsPerSecond > 0, `${kind}: ${JSON.stringify(r)}`);
    // 10 a job: its 3 bids arrive together and enter as one event, its 3 attestations too.
    assert.equal(r.events, 12 * 10, `${kind}: 10 events per settled job with 3 bids`);
  }
  const e = await benchEngine(o);
  assert.equal(e.settled, 12);
  // The same 10 events per job, and 2 per worker the first time it bids: its peer actor
  // (connected, identified), which a peer gets once the client deals with it (quiet peers).
  assert.equal(e.events, 12 * 10 + 2 * o.workers, "the owner hears the same 10 events per job");
  assert.ok(e.jobsPerSecond > 0);
});

Deno.test({
  name: "runBench() runs every benchmark at its smallest and writes JSON and SVG",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const config: BenchConfig = {
      quick: true,
      nodes: [3],
      announcements: 2,
      lookups: 1,
      k: [2],
      workers: 6,
      jobs: 12,
      concurrency: 4,
      sweep: [2],
      bidsPerJob: 3,
      memoryActors: 20,
      memoryBids: [0, 2],
      replayJobs: 3,
      replayRuns: 1,
    };
    const r = await runBench(config);
    const [n] = r.network;
    assert.equal(n?.nodes, 3);
    assert.equal(n.announceAll.n, 2);
    assert.equal(n.announceEach.n, 4, "two workers per job");
    for (const s of [n.announceAll, n.announceEach, n.rawAll, n.rawEach]) {
      assert.ok(s.p50 >= 0 && s.p99 >= s.p50 && Number.isFinite(s.p99), JSON.stringify(s));
    }
    assert.ok(n.ratioP50 > 0);
    assert.deepEqual(n.discovery.map((d) => [d.k, d.found]), [[2, 2]]);
    assert.equal(r.lifecycle.engine.settled, 12);
    assert.equal(r.lifecycle.raw.settled, 12);
    assert.equal(r.lifecycle.remote.settled, 12, "the engine with its chain in a child process");
    assert.ok(r.lifecycle.overhead > 0);
    assert.deepEqual(r.lifecycle.sweep.map((s) => s.engine.concurrency), [2, 4]);
    for (const m of r.memory) {
      for (const v of [m.jobInTree, m.jobRaw, m.peerInTree, m.peerRaw, m.retiredJob]) {
        assert.ok(Number.isFinite(v), JSON.stringify(m));
      }
    }
    assert.ok(r.replay.events > 0 && r.replay.raw.eventsPerSecond > 0);
    assert.ok(r.replay.raw.speedup > 0);
    const table = formatTable(r);
    assert.match(table, /announce -> all workers bidding, 3 nodes/);
    assert.match(table, /heap per peer actor/);
    assert.match(table, /the chain in its own process: per CPU second of the client's process/);
    // Where the client's wall time went: its main thread on and off a CPU, a figure each.
    assert.match(table, /the client's main thread on \/ off a CPU \(ms\) +[\d,]+ \/ [\d,]+/);
    const dir = await Deno.makeTempDir({ prefix: "bench-test-" });
    try {
      const written = await writeResults(r, dir);
      assert.equal(written.length, 1 + Object.keys(plots(r)).length);
      const json = JSON.parse(await Deno.readTextFile(`${dir}/bench.json`));
      assert.equal(json.lifecycle.engine.settled, 12);
      for (const path of written.filter((p) => p.endsWith(".svg"))) {
        const svg = await Deno.readTextFile(path);
        assertWellFormedXml(svg);
        assert.match(svg, /<polyline|<circle/, `${path} draws data`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
