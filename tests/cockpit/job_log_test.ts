import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { describeUpdate } from "../../runtime/ops/mod.ts";
import { matmulSpec, startMarket } from "./_market.ts";

Deno.test("Each job update a node takes part in is one info line, with its reason", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: ["ciro", "jobs"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const market = await startMarket({ workers: [{}, { minPrice: 1_000n }] });
  try {
    const jobId = market.client.submitJob({ spec: matmulSpec(), jobId: "log-1" });
    assert.equal(await market.finished(jobId), "settled");
    await Promise.all([market.client, ...market.workers].map((n) => n.settled()));
    const lines = records.map((r) => ({ level: r.level, line: String(r.properties.line) }));
    assert.ok(lines.every((l) => l.level === "info"));
    const price = market.client.job(jobId)!.context.payment!.amount;
    const texts = lines.map((l) => l.line);
    assert.ok(texts.includes("Job log-1 new -> announced (client)"), texts.join("\n"));
    assert.ok(
      texts.some((t) => /^Job log-1 bidding -> assigned \(client\): w1 at \d+ of 1 bids$/.test(t)),
      texts.join("\n"),
    );
    assert.ok(
      texts.includes(`Job log-1 settling -> settled (client): paid ${price} to w1`) ||
        texts.includes(`Job log-1 verifying -> settled (client): paid ${price} to w1`),
      texts.join("\n"),
    );
    assert.ok(texts.includes("Job log-1 declined: price_below_floor"), texts.join("\n"));
    // One line per phase of each taking part: the client's path, no repeats.
    const clientLines = texts.filter((t) => t.startsWith("Job log-1") && t.includes("(client)"));
    const path = market.client.job(jobId)!.context.path;
    assert.equal(clientLines.length, path.length);
  } finally {
    await market.stop();
    await reset();
  }
});

Deno.test("describeUpdate() words a slash and a refund", () => {
  const base = {
    jobId: "j",
    from: null,
    at: 0,
    spentMs: null,
    role: "client" as const,
    detail: {},
  };
  assert.equal(
    describeUpdate({
      ...base,
      type: "slashed",
      state: "refunding",
      reason: "invalid_compute",
      detail: { worker: "w1", amount: "50" },
    }),
    "Job j: worker w1 slashed 50 for invalid_compute",
  );
  assert.equal(
    describeUpdate({
      ...base,
      type: "phase",
      from: "bidding",
      state: "expired",
      reason: "expired",
    }),
    "Job j bidding -> expired (client): expired",
  );
});

Deno.test("A worker slashed for a wrong result is one line on the client, with the reason", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: ["ciro", "jobs"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const market = await startMarket({ workers: [{ fault: "wrong_result" }] });
  try {
    market.client.submitJob({ spec: matmulSpec({ maxAttempts: 1 }), jobId: "cheat" });
    const state = await market.finished("cheat");
    const context = market.client.job("cheat")!.context;
    assert.ok(context.slashes.length > 0, `${state}: ${JSON.stringify(context.path)}`);
    const slash = context.slashes[0]!;
    const texts = records.map((r) => String(r.properties.line));
    assert.ok(
      texts.includes(`Job cheat: worker w1 slashed ${slash.amount} for ${slash.reason}`),
      texts.join("\n"),
    );
    assert.equal(slash.reason, "invalid_compute");
    const final = texts.find((t) =>
      t.startsWith("Job cheat") && t.includes(`-> ${state} (client)`)
    );
    assert.ok(final !== undefined, texts.join("\n"));
    const metrics = await (await fetch(`${market.url}/metrics`)).text();
    assert.match(metrics, /^ciro_slashes_total\{reason="invalid_compute"\} 1$/m);
  } finally {
    await market.stop();
    await reset();
  }
});

Deno.test("A worker that declined a job logs the decline only, not the job's phases", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: ["ciro", "jobs"], lowestLevel: "info", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const market = await startMarket({ workers: [{}, { minPrice: 1_000n }] });
  try {
    market.client.submitJob({ spec: matmulSpec(), jobId: "quiet" });
    assert.equal(await market.finished("quiet"), "settled");
    await Promise.all(market.workers.map((n) => n.settled()));
    // w2 heard the job and declined it: that is its one line about it.
    const w2 = records.filter((r) => r.properties.node === "w2").map((r) => r.properties.line);
    assert.deepEqual(w2, ["Job quiet declined: price_below_floor"]);
    const w1 = records.filter((r) => r.properties.node === "w1");
    assert.ok(w1.length >= 4, "the winner logs the phases it takes part in");
  } finally {
    await market.stop();
    await reset();
  }
});
