import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { createNode, type Node } from "../kernel/mod.ts";
import { parseJobRequest, serveStatus } from "./status_server.ts";
import { listenHttp } from "./http_server.ts";

const MATMUL = { kind: { type: "builtin", name: "matmul" }, input: { a: [[1]], b: [[2]] } };

async function withNode(
  roles: ("client" | "worker" | "verifier")[],
  fn: (url: string, node: Node) => Promise<void>,
) {
  const network = new InProcessNetwork();
  const ledger = LocalLedger.open(":memory:");
  const node = createNode({
    id: "n1",
    roles,
    network: network.join("n1"),
    chain: ledger.as("n1"),
    capabilityIntervalMs: 0,
    ...(roles.includes("worker") ? { worker: { hardware: "cpu" as const } } : {}),
  });
  await node.start();
  const server = await serveStatus(node, {
    port: 0,
    extra: () => ({ multiaddrs: ["/ip4/127.0.0.1/tcp/1"] }),
  });
  try {
    await fn(server.url, node);
  } finally {
    await server.shutdown();
    await node.stop();
    network.close();
    ledger.close();
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

async function call(url: string, init?: RequestInit): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, init);
  return { status: response.status, body: await response.json() };
}

function post(body: unknown): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  };
}

Deno.test("serveStatus() answers /health, /peers and /jobs as JSON", async () => {
  await withNode(["client"], async (url) => {
    const health = await call(`${url}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.body.status, "ok");
    assert.equal(health.body.id, "n1");
    assert.deepEqual(health.body.roles, ["client"]);
    assert.deepEqual(health.body.jobs, { total: 0, open: 0 });
    assert.deepEqual(health.body.multiaddrs, ["/ip4/127.0.0.1/tcp/1"]);
    const peers = await call(`${url}/peers`);
    assert.deepEqual(peers.body, { connected: [], tracked: [], heard: [] });
    assert.deepEqual((await call(`${url}/jobs`)).body, {
      total: 0,
      offset: 0,
      limit: 100,
      next: null,
      jobs: [],
    });
    const missing = await call(`${url}/jobs/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error, 'Unknown job "nope"');
    const wrong = await call(`${url}/health`, { method: "DELETE" });
    assert.equal(wrong.status, 405);
  });
});

Deno.test("serveStatus() submits a job on a client and shows it with bigints as strings", async () => {
  await withNode(["client"], async (url) => {
    const submitted = await call(
      `${url}/jobs`,
      post({ spec: { ...MATMUL, maxPrice: "1000" }, jobId: "job-1" }),
    );
    assert.equal(submitted.status, 202);
    assert.deepEqual(submitted.body, { jobId: "job-1" });
    const jobs = (await call(`${url}/jobs`)).body.jobs;
    assert.equal(jobs.length, 1);
    assert.equal(jobs[0].jobId, "job-1");
    const job = await call(`${url}/jobs/job-1`);
    assert.equal(job.status, 200);
    assert.equal(job.body.context.spec.maxPrice, "1000");
    assert.equal(job.body.context.spec.requirements.minStake, "0");
    const again = await call(
      `${url}/jobs`,
      post({ spec: { ...MATMUL, maxPrice: 5 }, jobId: "job-1" }),
    );
    assert.equal(again.status, 409);
  });
});

Deno.test("serveStatus() rejects a bad job naming the field, and jobs on a non-client", async () => {
  await withNode(["client"], async (url) => {
    const bad = await call(`${url}/jobs`, post({ spec: { ...MATMUL, maxPrice: -1 } }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.key, "spec.maxPrice");
    assert.equal(bad.body.error, 'Invalid job request "spec.maxPrice": must not be negative');
    const notJson = await call(`${url}/jobs`, { method: "POST", body: "{" });
    assert.equal(notJson.status, 400);
    assert.match(notJson.body.error, /^Invalid job request: /);
  });
  await withNode(["worker"], async (url) => {
    const refused = await call(`${url}/jobs`, post({ spec: { ...MATMUL, maxPrice: 10 } }));
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error, 'Cannot submit a job on node "n1": it is not a client');
  });
});

Deno.test("parseJobRequest() fills in defaults and the input commitment", () => {
  const request = parseJobRequest({ spec: { ...MATMUL, maxPrice: 10 } });
  assert.equal(request.spec.maxPrice, 10n);
  assert.equal(request.spec.inputCommitment.length, 64);
  assert.deepEqual(request.spec.requirements, { hardware: "cpu", minStake: 0n });
  assert.equal(request.spec.verifierCount, 4);
  assert.throws(
    () => parseJobRequest({ spec: { ...MATMUL, maxPrice: 1, inputCommitment: "0".repeat(64) } }),
    {
      name: "JobRequestError",
      message: 'Invalid job request "spec.inputCommitment": does not match the input',
    },
  );
  assert.throws(() => parseJobRequest({ spec: { ...MATMUL } }), {
    message: 'Invalid job request "spec.maxPrice": is required',
  });
  assert.throws(() => parseJobRequest({ spec: { ...MATMUL, maxPrice: 1, colour: "red" } }), {
    message: 'Invalid job request "spec.colour": unknown key',
  });
  assert.throws(
    () =>
      parseJobRequest({
        spec: {
          kind: { type: "onnx", modelHash: "x" },
          maxPrice: 1,
          inputCommitment: "0".repeat(64),
        },
      }),
    {
      message: 'Invalid job request "spec.kind.modelHash": must be a hex sha-256',
    },
  );
});

Deno.test("serveStatus() refuses a non-loopback host", async () => {
  await assert.rejects(() => serveStatus({} as Node, { host: "0.0.0.0" }), {
    name: "RangeError",
    message: 'Invalid status server host "0.0.0.0": must be a loopback address',
  });
});

Deno.test("listenHttp() names a taken port and refuses bad limits", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    await assert.rejects(() => listenHttp(() => new Response("ok"), { port }), {
      name: "HttpListenError",
      code: "EADDRINUSE",
      message: new RegExp(`^Cannot listen on 127\\.0\\.0\\.1:${port}: `),
    });
  } finally {
    taken.close();
  }
  await assert.rejects(() => listenHttp(() => new Response("ok"), { maxConnections: 0 }), {
    name: "RangeError",
    message: "Invalid HTTP listener maxConnections: must be a positive integer, got 0",
  });
  await assert.rejects(
    () =>
      listenHttp(() => new Response("ok"), { headersTimeoutMs: 2_000, requestTimeoutMs: 1_000 }),
    {
      name: "RangeError",
      message:
        "Invalid HTTP listener requestTimeoutMs 1000: must be at least headersTimeoutMs (2000)",
    },
  );
});
