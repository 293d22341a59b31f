/**
 * HTTP abuse against a real node's status server on a real socket: a client that sends its
 * headers a line at a time and never finishes them (slowloris), one that connects and sends
 * nothing, one that goes quiet on a kept-alive connection, and one that opens far more
 * connections than the cap. Each is closed within its bound (a deadline plus a wide margin for a
 * loaded machine), and honest requests keep being answered while the attack goes on.
 *
 * (A body past its limit while it streams, a body that never arrives, and a malformed URI are in
 * `tests/cockpit/http_api_test.ts`; `GET /jobs/%ff%fe` is here too.)
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../../chain/local_ledger.ts";
import { InProcessNetwork } from "../../protocols/in_process_network.ts";
import { createNode, type Node } from "../../runtime/kernel/mod.ts";
import { serveStatus, type StatusLimits, type StatusServer } from "../../runtime/ops/mod.ts";

/** What every bound below is allowed on top of its deadline on a loaded 2-core machine. */
const MARGIN_MS = 4_000;

async function withServer(
  limits: StatusLimits,
  fn: (server: StatusServer, node: Node) => Promise<void>,
): Promise<void> {
  const network = new InProcessNetwork();
  const ledger = LocalLedger.open(":memory:");
  const node = createNode({
    id: "victim",
    roles: ["client"],
    network: network.join("victim"),
    chain: ledger.as("victim"),
    capabilityIntervalMs: 0,
  });
  await node.start();
  const server = await serveStatus(node, { limits: { shutdownGraceMs: 200, ...limits } });
  try {
    await fn(server, node);
  } finally {
    await server.shutdown();
    await node.stop();
    network.close();
    ledger.close();
  }
}

/** A raw TCP connection to the server. */
async function connect(server: StatusServer): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port: server.port });
}

/**
 * Reads `conn` until the server closes it (or `withinMs` passes); what it sent and when it
 * closed, ms after `since`.
 */
async function untilClosed(
  conn: Deno.Conn,
  since: number,
  withinMs: number,
): Promise<{ text: string; closedAfterMs: number | undefined }> {
  const decoder = new TextDecoder();
  let text = "";
  const buffer = new Uint8Array(4_096);
  const timer = setTimeout(() => conn.close(), withinMs);
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return { text, closedAfterMs: Date.now() - since };
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
    }
  } catch (error) {
    // Reset by the server, or closed by the timer above.
    if ((error as Error).name === "BadResource" || (error as Error).name === "Interrupted") {
      return { text, closedAfterMs: undefined };
    }
    return { text, closedAfterMs: Date.now() - since };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

async function healthy(server: StatusServer): Promise<number> {
  const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(MARGIN_MS) });
  await response.body?.cancel();
  return response.status;
}

Deno.test("adversarial HTTP: headers sent a line at a time are cut at the header deadline, honest requests answered meanwhile", async () => {
  const headersTimeoutMs = 600;
  await withServer({ headersTimeoutMs }, async (server) => {
    const encoder = new TextEncoder();
    const slow = await connect(server);
    const started = Date.now();
    await slow.write(encoder.encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    // One more header line every 100 ms, never the blank line that ends them.
    let trickling = true;
    const trickle = (async () => {
      for (let i = 0; trickling && i < 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        try {
          await slow.write(encoder.encode(`X-Slow-${i}: ${"a".repeat(10)}\r\n`));
        } catch {
          return; // the server closed it
        }
      }
    })();
    const silent = await connect(server); // connects and sends nothing at all
    // Honest requests are answered while both hold their connections.
    for (let i = 0; i < 3; i++) assert.equal(await healthy(server), 200);
    const [slowEnd, silentEnd] = await Promise.all([
      untilClosed(slow, started, headersTimeoutMs + MARGIN_MS),
      untilClosed(silent, started, headersTimeoutMs + MARGIN_MS),
    ]);
    trickling = false;
    await trickle;
    for (const [name, end] of [["slow", slowEnd], ["silent", silentEnd]] as const) {
      assert.ok(end.closedAfterMs !== undefined, `${name} connection still open after the bound`);
      assert.ok(
        end.closedAfterMs >= headersTimeoutMs - 50,
        `${name} closed before the deadline: ${end.closedAfterMs} ms`,
      );
      assert.match(end.text, /^(HTTP\/1\.1 408 Request Timeout|)/, `${name}: ${end.text}`);
    }
    assert.match(slowEnd.text, /^HTTP\/1\.1 408 /);
    assert.equal(await healthy(server), 200);
  });
});

Deno.test("adversarial HTTP: a kept-alive connection that goes quiet is closed at the idle deadline", async () => {
  const idleTimeoutMs = 300;
  await withServer({ idleTimeoutMs }, async (server) => {
    const conn = await connect(server);
    await conn.write(new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const started = Date.now();
    const end = await untilClosed(conn, started, idleTimeoutMs + MARGIN_MS);
    assert.match(end.text, /^HTTP\/1\.1 200 OK/);
    assert.ok(end.closedAfterMs !== undefined, "the idle connection was never closed");
    assert.ok(end.closedAfterMs >= idleTimeoutMs - 50, `closed too early: ${end.closedAfterMs}`);
  });
});

Deno.test("adversarial HTTP: connections past the cap close the oldest idle ones, honest requests answered at once", async () => {
  const maxConnections = 8;
  // A header deadline far past the test: only the cap can close these connections.
  await withServer({ maxConnections, headersTimeoutMs: 60_000 }, async (server) => {
    const started = Date.now();
    const attackers: Deno.TcpConn[] = [];
    for (let i = 0; i < 40; i++) attackers.push(await connect(server));
    let closed = 0;
    const ends = attackers.map((conn) =>
      untilClosed(conn, started, MARGIN_MS).then((end) => {
        if (end.closedAfterMs !== undefined) closed++;
      })
    );
    // An honest request among them is answered (it evicts the oldest idle attacker).
    for (let i = 0; i < 5; i++) assert.equal(await healthy(server), 200);
    // Every attacker but the newest few is closed to make room, long before any deadline.
    const want = attackers.length - maxConnections;
    const deadline = Date.now() + MARGIN_MS;
    while (closed < want && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(
      closed >= want,
      `only ${closed} of ${attackers.length} idle connections closed`,
    );
    for (const conn of attackers) {
      try {
        conn.close();
      } catch { /* closed by the server */ }
    }
    await Promise.all(ends);
    const stats = server.stats();
    assert.ok(stats.evicted >= attackers.length - maxConnections, JSON.stringify(stats));
    assert.ok(stats.open <= maxConnections, JSON.stringify(stats));
  });
});

Deno.test("adversarial HTTP: when every connection under the cap is busy, a newcomer is closed, and served once one frees", async () => {
  const maxConnections = 2;
  await withServer({ maxConnections }, async (server) => {
    // Two requests in progress: their headers are in, their bodies never finish.
    const busy: Deno.TcpConn[] = [];
    for (let i = 0; i < maxConnections; i++) {
      const conn = await connect(server);
      await conn.write(
        new TextEncoder().encode(
          "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
            'Content-Length: 100\r\n\r\n{"spec": ',
        ),
      );
      busy.push(conn);
    }
    const deadline = Date.now() + MARGIN_MS;
    while (server.stats().open < maxConnections && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await assert.rejects(() => healthy(server));
    assert.ok(server.stats().refused >= 1, JSON.stringify(server.stats()));
    for (const conn of busy) conn.close();
    let status = 0;
    while (status !== 200 && Date.now() < deadline + MARGIN_MS) {
      status = await healthy(server).catch(() => 0);
      if (status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(status, 200);
  });
});

Deno.test("adversarial HTTP: GET /jobs/%ff%fe is a 400 naming the path, not a 500", async () => {
  await withServer({}, async (server) => {
    const response = await fetch(`${server.url}/jobs/%ff%fe`);
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), { error: "Malformed URI: /jobs/%ff%fe" });
  });
});
