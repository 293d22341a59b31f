import assert from "node:assert/strict";
import { commitmentOf } from "../../runtime/compute/mod.ts";
import { matmulSpec, startMarket } from "./_market.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, body: text.startsWith("{") ? JSON.parse(text) : text };
}

/** Reads server-sent events until `end` (or `limit` events). */
async function readEvents(url: string, limit = 50): Promise<{ event: string; data: Json }[]> {
  const response = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream");
  const events: { event: string; data: Json }[] = [];
  let buffer = "";
  const decoder = new TextDecoder();
  const reader = response.body!.getReader();
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event === undefined || data === undefined) continue;
      events.push({ event, data: JSON.parse(data) });
      if (event === "end" || events.length >= limit) {
        await reader.cancel();
        return events;
      }
    }
  }
  return events;
}

Deno.test("GET /jobs pages newest first and filters by state; bad queries are 400", async () => {
  const market = await startMarket();
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(market.client.submitJob({ spec: matmulSpec(), jobId: `job-${i}` }));
      assert.equal(await market.finished(ids[i]!), "settled");
    }
    // One that nobody can take: gpu only.
    const gpu = market.client.submitJob({
      spec: matmulSpec({ requirements: { hardware: "gpu", minStake: 0n } }),
      jobId: "job-gpu",
    });
    assert.equal(await market.finished(gpu), "expired");
    const page1 = (await call(`${market.url}/jobs?limit=2`)).body;
    assert.equal(page1.total, 4);
    assert.equal(page1.next, 2);
    assert.deepEqual(page1.jobs.map((j: Json) => j.jobId), ["job-gpu", "job-2"]);
    const page2 = (await call(`${market.url}/jobs?limit=2&offset=2`)).body;
    assert.deepEqual(page2.jobs.map((j: Json) => j.jobId), ["job-1", "job-0"]);
    assert.equal(page2.next, null);
    const settled = (await call(`${market.url}/jobs?state=settled`)).body;
    assert.equal(settled.total, 3);
    const expired = (await call(`${market.url}/jobs?state=expired,cancelled`)).body;
    assert.deepEqual(expired.jobs.map((j: Json) => j.jobId), ["job-gpu"]);
    const badState = await call(`${market.url}/jobs?state=done`);
    assert.equal(badState.status, 400);
    assert.equal(badState.body.key, "state");
    assert.match(badState.body.error, /^Invalid query "state": unknown state "done"/);
    const badLimit = await call(`${market.url}/jobs?limit=0`);
    assert.equal(badLimit.status, 400);
    assert.equal(badLimit.body.error, 'Invalid query "limit": must be an integer in [1, 1000]');
    assert.equal((await call(`${market.url}/jobs?limit=1001`)).status, 400);
    assert.equal((await call(`${market.url}/jobs?offset=-1`)).status, 400);
    assert.equal((await call(`${market.url}/jobs?colour=red`)).status, 400);
    // Why nobody bid on the gpu job: one known worker, none with matching hardware.
    const described = (await call(`${market.url}/jobs/job-gpu`)).body;
    assert.deepEqual(described.market.knownWorkers, 1);
    assert.deepEqual(described.market.matchingHardware, 0);
  } finally {
    await market.stop();
  }
});

Deno.test("GET /jobs/:id/events streams a job's phases and ends when it is final", async () => {
  const market = await startMarket();
  try {
    const jobId = market.client.submitJob({
      spec: matmulSpec({ bidWindowMs: 300 }),
      jobId: "job-sse",
    });
    const events = await readEvents(`${market.url}/jobs/job-sse/events`);
    const phases = events.filter((e) => e.event === "phase").map((e) => e.data.state);
    assert.deepEqual(phases.slice(0, 2), ["announced", "bidding"]);
    assert.equal(phases.at(-1), "settled");
    assert.ok(phases.includes("executing") && phases.includes("verifying"), phases.join(","));
    const settledEvent = events.find((e) => e.event === "phase" && e.data.state === "settled")!;
    assert.equal(settledEvent.data.reason, "paid");
    assert.equal(settledEvent.data.detail.worker, "w1");
    assert.deepEqual(events.at(-1), { event: "end", data: { jobId, state: "settled" } });
    // Once finished, a new stream gives the path and the end at once.
    const again = await readEvents(`${market.url}/jobs/job-sse/events`);
    assert.equal(again.at(-1)!.event, "end");
    assert.equal((await call(`${market.url}/jobs/nope/events`)).status, 404);
  } finally {
    await market.stop();
  }
});

Deno.test("GET /jobs/:id/output answers after retirement from the bounded store", async () => {
  const market = await startMarket({ retainFinishedMs: 0, outputs: { maxEntries: 1 } });
  try {
    market.client.submitJob({ spec: matmulSpec(), jobId: "job-a" });
    assert.equal(await market.finished("job-a"), "settled");
    const retiredA = await waitFor(() => market.client.retiredJob("job-a"));
    const outA = await call(`${market.url}/jobs/job-a/output`);
    assert.equal(outA.status, 200);
    assert.deepEqual(outA.body.output, [[19, 22], [43, 50]]);
    assert.equal(outA.body.commitment, retiredA.commitment);
    // A second output pushes the first out of a store of one.
    market.client.submitJob({
      spec: matmulSpec({
        input: { a: [[2]], b: [[3]] },
        inputCommitment: commitmentOf({ a: [[2]], b: [[3]] }),
      }),
      jobId: "job-b",
    });
    assert.equal(await market.finished("job-b"), "settled");
    await waitFor(() => market.client.retiredJob("job-b"));
    assert.deepEqual((await call(`${market.url}/jobs/job-b/output`)).body.output, [[6]]);
    const gone = await call(`${market.url}/jobs/job-a/output`);
    assert.equal(gone.status, 410);
    assert.match(
      gone.body.error,
      /^Output of job "job-a" is no longer kept: commitment [0-9a-f]{64}$/,
    );
    assert.equal((await call(`${market.url}/jobs/nope/output`)).status, 404);
  } finally {
    await market.stop();
  }
});

Deno.test("GET /jobs/:id/output is 409 before the job settled", async () => {
  const market = await startMarket();
  try {
    market.client.submitJob({ spec: matmulSpec({ bidWindowMs: 5_000 }), jobId: "slow" });
    const early = await call(`${market.url}/jobs/slow/output`);
    assert.equal(early.status, 409);
    assert.match(
      early.body.error,
      /^Job "slow" has no verified output: it is (announced|bidding)$/,
    );
    assert.equal((await call(`${market.url}/jobs/slow`, { method: "DELETE" })).status, 202);
    assert.equal(await market.finished("slow"), "cancelled");
  } finally {
    await market.stop();
  }
});

Deno.test("DELETE /jobs/:id cancels before assignment only, and only on the job's client", async () => {
  const market = await startMarket();
  try {
    market.client.submitJob({ spec: matmulSpec({ bidWindowMs: 5_000 }), jobId: "to-cancel" });
    // The worker knows the job too, but is not its client.
    await waitFor(() => market.workers[0]!.job("to-cancel"));
    const notOwner = await call(`${market.workerServers[0]!.url}/jobs/to-cancel`, {
      method: "DELETE",
    });
    assert.equal(notOwner.status, 409);
    assert.equal(notOwner.body.error, 'Cannot cancel job "to-cancel": only its client can');
    const cancelled = await call(`${market.url}/jobs/to-cancel`, { method: "DELETE" });
    assert.equal(cancelled.status, 202);
    assert.deepEqual(cancelled.body, { jobId: "to-cancel", cancelRequested: true });
    assert.equal(await market.finished("to-cancel"), "cancelled");
    const late = await call(`${market.url}/jobs/to-cancel`, { method: "DELETE" });
    assert.equal(late.status, 409);
    assert.equal(late.body.error, 'Cannot cancel job "to-cancel": it is cancelled');
    assert.equal((await call(`${market.url}/jobs/nope`, { method: "DELETE" })).status, 404);
    const put = await fetch(`${market.url}/jobs/x`, { method: "PUT" });
    assert.equal(put.status, 405);
    assert.equal(put.headers.get("allow"), "GET, DELETE");
    await put.body?.cancel();
  } finally {
    await market.stop();
  }
});

Deno.test("The API refuses a streamed body past its limit, a malformed URI, and too many requests", async () => {
  const market = await startMarket({ limits: { maxBodyBytes: 1_000, maxInFlight: 2 } });
  try {
    // Chunked (no content-length): counted while it streams.
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 10) return controller.close();
        sent++;
        controller.enqueue(new TextEncoder().encode(" ".repeat(500)));
      },
    });
    const big = await call(`${market.url}/jobs`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" },
    });
    assert.equal(big.status, 413);
    assert.equal(big.body.error, "Job request too large: exceeds 1000 bytes");
    const declared = await call(`${market.url}/jobs`, {
      method: "POST",
      body: " ".repeat(2_000),
    });
    assert.equal(declared.status, 413);
    const deep = await call(`${market.url}/jobs`, {
      method: "POST",
      body: "[".repeat(400) + "]".repeat(400),
    });
    assert.equal(deep.status, 400);
    assert.equal(deep.body.code, "too_deep");
    assert.match(deep.body.error, /^Invalid job request: /);
    const notJson = await call(`${market.url}/jobs`, { method: "POST", body: '{"spec": ' });
    assert.equal(notJson.status, 400);
    assert.equal(notJson.body.code, "malformed");
    const malformed = await call(`${market.url}/jobs/%E0%A4%A`);
    assert.equal(malformed.status, 400);
    assert.equal(malformed.body.error, "Malformed URI: /jobs/%E0%A4%A");
    // Two open event streams fill the server; the third request is turned away.
    market.client.submitJob({ spec: matmulSpec({ bidWindowMs: 10_000 }), jobId: "open" });
    const streams = [1, 2].map(() => new AbortController());
    const responses = await Promise.all(
      streams.map((a) => fetch(`${market.url}/jobs/open/events`, { signal: a.signal })),
    );
    for (const r of responses) assert.equal(r.status, 200);
    const full = await fetch(`${market.url}/health`);
    assert.equal(full.status, 503);
    assert.equal(full.headers.get("retry-after"), "1");
    assert.match((await full.json()).error, /^Too many requests in flight: at most 2$/);
    for (const r of responses) await r.body!.cancel();
    // Once the streams close, requests are served again.
    await waitFor(async () => (await fetch(`${market.url}/health`).then(async (r) => {
      await r.body?.cancel();
      return r.status === 200 ? true : undefined;
    })));
    market.client.cancelJob("open");
  } finally {
    await market.stop();
  }
});

Deno.test("POST /jobs is 408 when the body does not arrive in time, however it is sent", async () => {
  const market = await startMarket({ limits: { bodyTimeoutMs: 300, shutdownGraceMs: 200 } });
  try {
    for (const declared of [false, true]) {
      const stalled = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"spec": '));
          // ...and nothing more: the rest never comes.
        },
      });
      const started = Date.now();
      const response = await fetch(`${market.url}/jobs`, {
        method: "POST",
        body: stalled,
        headers: declared ? { "content-length": "100" } : {},
        signal: AbortSignal.timeout(10_000),
      });
      assert.equal(response.status, 408, `content-length declared: ${declared}`);
      assert.equal(
        (await response.json()).error,
        "Request body too slow: not received within 300 ms",
      );
      assert.ok(Date.now() - started < 5_000);
      await stalled.cancel().catch(() => {});
    }
    assert.deepEqual(market.client.jobs(), []);
  } finally {
    await market.stop();
  }
});

/** Polls `probe` until it returns a value (at most 10 s). */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("Condition not met within 10 s");
}

Deno.test("GET /openapi.json documents every route, its request parts generated from the zod schemas", async () => {
  const market = await startMarket();
  try {
    const doc = (await call(`${market.url}/openapi.json`)).body;
    assert.equal(doc.openapi, "3.1.0");
    assert.deepEqual(Object.keys(doc.paths).sort(), [
      "/health",
      "/jobs",
      "/jobs/{id}",
      "/jobs/{id}/events",
      "/jobs/{id}/output",
      "/metrics",
      "/money",
      "/openapi.json",
      "/peers",
      "/ui/",
    ]);
    // Every documented GET without a parameter answers (none is a 404 of the router).
    for (const [path, item] of Object.entries(doc.paths) as [string, Json][]) {
      if (path.includes("{") || item.get === undefined) continue;
      const response = await fetch(`${market.url}${path}`);
      await response.body?.cancel();
      assert.equal(response.status, 200, path);
    }
    const body = doc.paths["/jobs"].post.requestBody.content["application/json"].schema;
    assert.deepEqual(body.properties.spec.required, ["kind", "maxPrice"]);
    assert.equal(body.properties.spec.properties.verifierCount.default, 4);
    assert.equal(body.additionalProperties, false);
    const params = doc.paths["/jobs"].get.parameters;
    assert.deepEqual(params.map((p: Json) => p.name), ["state", "owner", "limit", "offset"]);
    const limit = params.find((p: Json) => p.name === "limit");
    assert.equal(limit.schema.pattern, "^\\d{1,9}$");
    assert.equal(limit.description, "jobs per page, 1 to 1000 (default 100)");
  } finally {
    await market.stop();
  }
});
