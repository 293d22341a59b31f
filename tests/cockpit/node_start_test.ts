import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { parseConfig } from "../../runtime/ops/mod.ts";
import { startNode } from "../../runtime/ops/node/main.ts";

const PEER = "12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDrp4D4FKEnNsKvZyBw";

async function startWith(bootstrap: string[], warnMs: number) {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (r) => records.push(r) },
    loggers: [
      { category: ["ciro", "cli"], lowestLevel: "warning", sinks: ["memory"] },
      { category: ["logtape", "meta"], lowestLevel: "error", sinks: [] },
    ],
  });
  const dir = await Deno.makeTempDir({ prefix: "ciro-node-start-" });
  const config = parseConfig({
    dataDir: dir,
    roles: ["client"],
    bootstrap,
    http: { enabled: false },
    capabilityIntervalMs: 0,
  });
  const running = await startNode(config, { bootstrapWarnMs: warnMs });
  return {
    records,
    async stop() {
      await running.stop();
      await reset();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test({
  name: "startNode() warns when no bootstrap peer is reachable",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const node = await startWith([`/ip4/127.0.0.1/tcp/9/p2p/${PEER}`], 300);
    try {
      const deadline = Date.now() + 10_000;
      while (node.records.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const messages = node.records.map((r) => r.message.join(""));
      assert.ok(
        messages.some((m) =>
          m.startsWith("No peer connected 300 ms after start: check that a bootstrap peer is") &&
          m.includes(`/ip4/127.0.0.1/tcp/9/p2p/${PEER}`)
        ),
        messages.join("\n"),
      );
    } finally {
      await node.stop();
    }
  },
});

Deno.test({
  name: "startNode() does not warn without bootstrap peers",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const node = await startWith([], 100);
    try {
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(node.records.map((r) => r.message.join("")), []);
    } finally {
      await node.stop();
    }
  },
});
