/**
 * Job traces and logs through OpenTelemetry, received by an OTLP endpoint (HTTP, JSON) on
 * loopback: a market runs in a subprocess with `OTEL_DENO=true`; each node's trace of the job has
 * a root span `job <id>` and a span per phase, children of the root, in one trace; the job log
 * lines arrive as OTLP log records.
 */
import assert from "node:assert/strict";

// deno-lint-ignore no-explicit-any
type Json = any;

const ROOT = new URL("../../", import.meta.url).pathname;

function attr(item: Json, key: string): string | undefined {
  const found = item.attributes?.find((a: Json) => a.key === key);
  return found?.value?.stringValue;
}

Deno.test({
  name: "Each node sends a trace per job with a span per phase, and its job log, over OTLP",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const traces: Json[] = [];
    const logs: Json[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      async (req) => {
        const path = new URL(req.url).pathname;
        const text = await req.text();
        if (req.headers.get("content-type")?.includes("json")) {
          if (path === "/v1/traces") traces.push(JSON.parse(text));
          if (path === "/v1/logs") logs.push(JSON.parse(text));
        } else if (path === "/v1/logs") {
          logs.push({ protobuf: text.length });
        }
        return new Response("{}", { headers: { "content-type": "application/json" } });
      },
    );
    try {
      const endpoint = `http://127.0.0.1:${server.addr.port}`;
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-all", "--quiet", "tests/cockpit/_otel_market.ts"],
        cwd: ROOT,
        stdin: "null",
        env: {
          NO_COLOR: "1",
          OTEL_DENO: "true",
          OTEL_SERVICE_NAME: "ciro-otel-test",
          OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        },
        signal: AbortSignal.timeout(90_000),
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.equal(new TextDecoder().decode(output.stdout).trim(), "settled");
      const spans = traces.flatMap((t) =>
        t.resourceSpans.flatMap((r: Json) => r.scopeSpans.flatMap((s: Json) => s.spans))
      ).filter((s: Json) => attr(s, "ciro.job.id") === "traced-1");
      const byNode = (node: string) => spans.filter((s: Json) => attr(s, "ciro.node") === node);
      assert.deepEqual(byNode("w2").map((s: Json) => s.name), [], "w2 declined: no trace");
      for (const node of ["client", "w1"]) {
        const mine = byNode(node);
        const root = mine.find((s: Json) => s.name === "job traced-1");
        assert.ok(root, `${node} has a root span: ${mine.map((s: Json) => s.name)}`);
        assert.equal(root.status?.code, 1, `${node}'s job span is OK`); // SpanStatusCode.OK
        const phases = mine.filter((s: Json) => s.name.startsWith("job."));
        const names = phases.map((s: Json) => s.name);
        for (const phase of ["job.bidding", "job.executing", "job.verifying"]) {
          assert.ok(names.includes(phase), `${node}: ${names.join(", ")}`);
        }
        for (const p of phases) {
          assert.equal(p.traceId, root.traceId, `${node} ${p.name} in the job's trace`);
          assert.equal(p.parentSpanId, root.spanId, `${node} ${p.name} is a child of the job`);
          assert.ok(BigInt(p.endTimeUnixNano) >= BigInt(p.startTimeUnixNano));
        }
      }
      assert.notEqual(byNode("client")[0].traceId, byNode("w1")[0].traceId);
      const records = logs.flatMap((l) =>
        (l.resourceLogs ?? []).flatMap((r: Json) => r.scopeLogs.flatMap((s: Json) => s.logRecords))
      );
      const bodies = records.map((r: Json) => JSON.stringify(r.body));
      assert.ok(
        bodies.some((b: string) => b.includes("Job traced-1 new -> announced (client)")),
        `log records: ${bodies.slice(0, 5).join("\n")} (${logs.length} posts)`,
      );
    } finally {
      await server.shutdown();
    }
  },
});
