import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import {
  CockpitMetrics,
  instrumentChain,
  instrumentJournal,
  JobFeed,
} from "../../runtime/ops/mod.ts";
import { matmulSpec, startMarket } from "./_market.ts";

/** The value of one sample in a Prometheus text exposition, or undefined. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const found = Object.fromEntries(
      [...(match[2] ?? "").matchAll(/([a-z_]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
    );
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(match[3]);
  }
  return undefined;
}

async function metricsOf(url: string): Promise<string> {
  const response = await fetch(`${url}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  return await response.text();
}

Deno.test("GET /metrics counts jobs, phases, bids, chain calls and journal appends of a settled job", async () => {
  const market = await startMarket({ workers: [{}, { minPrice: 1_000n }] });
  try {
    const jobId = market.client.submitJob({ spec: matmulSpec(), jobId: "m1" });
    assert.equal(await market.finished(jobId), "settled");
    await market.client.settled();
    // Timers (peer heartbeats) may append while the scrape is in flight: bracket it.
    const before = market.journal.entries.length;
    const text = await metricsOf(market.url);
    const after = market.journal.entries.length;
    assert.equal(sample(text, "ciro_jobs", { state: "settled" }), 1);
    for (const phase of ["announced", "bidding", "assigned", "executing", "verifying"]) {
      assert.equal(sample(text, "ciro_job_phase_seconds_count", { phase }), 1, phase);
    }
    assert.equal(sample(text, "ciro_job_bids_count"), 1);
    assert.equal(sample(text, "ciro_job_bids_sum"), 1);
    assert.equal(sample(text, "ciro_job_outcomes_total", { state: "settled", reason: "paid" }), 1);
    assert.equal(sample(text, "ciro_chain_calls_total", { method: "submitJob", outcome: "ok" }), 1);
    assert.equal(
      sample(text, "ciro_chain_calls_total", { method: "assignWorker", outcome: "ok" }),
      1,
    );
    assert.equal(sample(text, "ciro_chain_call_seconds_count", { method: "submitJob" }), 1);
    const appends = sample(text, "ciro_journal_appends_total")!;
    assert.ok(before > 5 && before <= appends && appends <= after, `${before} ${appends} ${after}`);
    assert.equal(sample(text, "ciro_journal_append_seconds_count"), appends);
    const peers = market.client.peers();
    assert.ok(peers.length > 0);
    for (const state of new Set(peers.map((p) => p.state))) {
      const count = peers.filter((p) => p.state === state).length;
      assert.equal(sample(text, "ciro_peers", { state }), count, state);
    }
    // The worker that won: stake from the chain, earnings heard, capacity.
    const w1 = await metricsOf(market.workerServers[0]!.url);
    assert.equal(sample(w1, "ciro_worker_stake"), 100);
    assert.equal(sample(w1, "ciro_worker_capacity"), 2);
    const price = Number(market.client.job(jobId)!.context.payment!.amount);
    assert.ok(price > 0);
    assert.equal(sample(w1, "ciro_worker_earnings_total"), price);
    // The worker whose floor is above the job's price declined it, and says why.
    const w2 = await metricsOf(market.workerServers[1]!.url);
    assert.equal(sample(w2, "ciro_bid_declines_total", { reason: "price_below_floor" }), 1);
    assert.equal(sample(w1, "ciro_bid_declines_total", { reason: "price_below_floor" }), undefined);
    // /health has the same worker figures.
    const health = await (await fetch(`${market.workerServers[0]!.url}/health`)).json();
    assert.deepEqual(health.worker, {
      stake: "100",
      reputation: health.worker.reputation,
      earnings: String(price),
      capacity: 2,
    });
    assert.equal(typeof health.worker.reputation, "number");
  } finally {
    await market.stop();
  }
});

Deno.test("GET /metrics counts refused inputs by event type", async () => {
  const market = await startMarket();
  try {
    market.client.cancelJob("no-such-job");
    const text = await metricsOf(market.url);
    assert.equal(sample(text, "ciro_rejected_events_total", { event: "job.cancel" }), 1);
  } finally {
    await market.stop();
  }
});

Deno.test("instrumentChain() counts a refused call under the chain error's code", async () => {
  const ledger = LocalLedger.open(":memory:");
  const calls: [string, string][] = [];
  const port = instrumentChain(ledger.as("c"), {
    chainCall: (method, outcome) => calls.push([method, outcome]),
  });
  try {
    await assert.rejects(port.releasePayment({ jobId: "nope" }), { name: "ChainError" });
    assert.equal(await port.stakeOf("c"), 0n);
    assert.deepEqual(calls, [["releasePayment", "unknown_job"], ["stakeOf", "ok"]]);
    assert.equal(port.account, "c");
  } finally {
    ledger.close();
  }
});

Deno.test("CockpitMetrics keeps one registry per node", async () => {
  const fake = {
    id: "n",
    roles: ["client" as const],
    jobs: () => [],
    job: () => undefined,
    peers: () => [{ peer: "p", state: "alive", score: 7 }],
    observe: () => () => {},
  };
  const a = new CockpitMetrics(fake, { feed: new JobFeed(fake) });
  const b = new CockpitMetrics({ ...fake, peers: () => [] }, { feed: new JobFeed(fake) });
  a.chainCall("stake", "ok", 0.01);
  assert.equal(sample(await a.text(), "ciro_peer_score", { peer: "p" }), 7);
  assert.equal(sample(await b.text(), "ciro_peer_score", { peer: "p" }), undefined);
  assert.equal(sample(await b.text(), "ciro_chain_calls_total", { method: "stake" }), undefined);
  assert.equal(sample(await a.text(), "ciro_chain_calls_total", { method: "stake" }), 1);
});

Deno.test("instrumentJournal() times appends and passes every other member through", () => {
  const calls: string[] = [];
  class Sink {
    seq = 1;
    nextSeq() {
      return this.seq;
    }
    append(envelope: { seq: number }) {
      this.seq = envelope.seq + 1;
      calls.push(`append ${envelope.seq}`);
    }
    delivered() {
      calls.push("delivered");
    }
    retired(actor: string) {
      calls.push(`retired ${actor}`);
    }
    flush() {
      calls.push("flush");
    }
  }
  const sink = new Sink();
  const timed: number[] = [];
  const journal = instrumentJournal(sink as never, { journalAppend: (s) => timed.push(s) });
  journal.append({ seq: 1 } as never);
  journal.append({ seq: 2 } as never);
  journal.delivered?.({} as never, { status: "accepted" }, undefined);
  journal.retired?.("job:j1", {});
  (journal as unknown as Sink).flush();
  assert.equal(journal.nextSeq(), 3);
  assert.deepEqual(calls, ["append 1", "append 2", "delivered", "retired job:j1", "flush"]);
  assert.equal(timed.length, 2);
});
