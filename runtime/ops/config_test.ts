import assert from "node:assert/strict";
import { type ConfigError, loadConfig, parseConfig } from "./config.ts";

const PEER = "12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDrp4D4FKEnNsKvZyBw";

async function withFile(content: unknown, fn: (path: string, dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "ciro-config-" });
  try {
    const path = `${dir}/node.json`;
    await Deno.writeTextFile(path, typeof content === "string" ? content : JSON.stringify(content));
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function rejects(raw: unknown, key: string, message: string) {
  assert.throws(() => parseConfig(raw), (error: Error) => {
    assert.equal(error.name, "ConfigError");
    assert.equal((error as ConfigError).key, key);
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("parseConfig() fills in every default", () => {
  const config = parseConfig({});
  assert.equal(config.dataDir, "./data");
  assert.deepEqual(config.listen, ["/ip4/127.0.0.1/tcp/0"]);
  assert.deepEqual(config.bootstrap, []);
  assert.deepEqual(config.roles, ["client"]);
  assert.deepEqual(config.chain, { kind: "local", path: "./data/ledger.sqlite" });
  assert.equal(config.worker.priceRatio, 0.8);
  assert.equal(config.worker.stake, 0n);
  assert.deepEqual(config.policy, { bidSelection: "lowest_price", quorum: "bft" });
  assert.equal(config.peer.heartbeatMs, 5_000);
  assert.deepEqual(config.http, { enabled: true, host: "127.0.0.1", port: 0 });
  assert.deepEqual(config.log, { level: "info", format: "text" });
});

Deno.test("loadConfig() names the bad key", async () => {
  await withFile({ worker: { priceRatio: 1.5 } }, async (path) => {
    await assert.rejects(loadConfig({ args: ["--config", path] }), (error: Error) => {
      assert.equal(error.name, "ConfigError");
      assert.equal(error.message, 'Invalid config "worker.priceRatio": must be in (0, 1]');
      return true;
    });
  });
});

Deno.test("parseConfig() rejects bad values with the key and the reason", () => {
  rejects({ wroker: {} }, "wroker", 'Invalid config "wroker": unknown key');
  rejects({ worker: { prize: 1 } }, "worker.prize", 'Invalid config "worker.prize": unknown key');
  rejects(
    { worker: { priceRatio: 0 } },
    "worker.priceRatio",
    'Invalid config "worker.priceRatio": must be in (0, 1]',
  );
  rejects(
    { worker: { stake: -1 } },
    "worker.stake",
    'Invalid config "worker.stake": must not be negative',
  );
  rejects(
    { worker: { stake: "1e3" } },
    "worker.stake",
    'Invalid config "worker.stake": must be a non-negative decimal integer',
  );
  rejects(
    { roles: ["client", "miner"] },
    "roles.1",
    'Invalid config "roles.1": must be one of client, worker, verifier, bootstrap',
  );
  rejects({ roles: [] }, "roles", 'Invalid config "roles": must name at least one role');
  rejects(
    { worker: { maxOpenBids: 0 } },
    "worker.maxOpenBids",
    'Invalid config "worker.maxOpenBids": must be at least 1',
  );
  rejects(
    { roles: ["worker", "worker"] },
    "roles",
    'Invalid config "roles": must not repeat a role',
  );
  rejects(
    { listen: ["127.0.0.1:4001"] },
    "listen.0",
    'Invalid config "listen.0": must be a multiaddr like /ip4/127.0.0.1/tcp/4001',
  );
  rejects(
    { bootstrap: ["/ip4/127.0.0.1/tcp/4001"] },
    "bootstrap.0",
    'Invalid config "bootstrap.0": must be a multiaddr ending in /p2p/<peer id>, like /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo…',
  );
  rejects(
    { http: { host: "0.0.0.0" } },
    "http.host",
    'Invalid config "http.host": must be a loopback address (127.0.0.1, ::1 or localhost)',
  );
  rejects(
    { http: { port: 70000 } },
    "http.port",
    'Invalid config "http.port": must be in [0, 65535]',
  );
  rejects(
    { log: { format: "xml" } },
    "log.format",
    'Invalid config "log.format": must be text or json',
  );
  rejects(
    { chain: { kind: "ethereum" } },
    "chain.kind",
    'Invalid config "chain.kind": must have "kind": "local", "starknet" or "evm"',
  );
  rejects(
    { chain: { kind: "starknet", rpcUrl: "http://127.0.0.1:5050" } },
    "chain.accountAddress",
    'Invalid config "chain.accountAddress": is required',
  );
  rejects(
    { policy: { quorum: "most" } },
    "policy.quorum",
    'Invalid config "policy.quorum": must be one of bft, majority, unanimous',
  );
  rejects(
    { peer: { heartbeatMs: 0 } },
    "peer.heartbeatMs",
    'Invalid config "peer.heartbeatMs": must be at least 1',
  );
  rejects({ dataDir: 7 }, "dataDir", 'Invalid config "dataDir": must be a path');
});

Deno.test("parseConfig() accepts bootstrap peers, amounts as strings and a starknet chain", () => {
  const config = parseConfig({
    bootstrap: [`/ip4/1.2.3.4/tcp/4001/p2p/${PEER}`],
    roles: ["worker", "verifier"],
    worker: { stake: "123456789012345678901234567890", hardware: "gpu" },
    chain: {
      kind: "starknet",
      rpcUrl: "http://127.0.0.1:5050/rpc",
      accountAddress: "0x1",
      jobManagerAddress: "0x2",
      cdcPoolAddress: "0x3",
    },
  });
  assert.equal(config.worker.stake, 123456789012345678901234567890n);
  assert.equal(config.chain.kind, "starknet");
  assert.equal(config.chain.pollMs, 2_000);
});

Deno.test("loadConfig() takes flags over env over the file, and resolves file paths", async () => {
  await withFile({
    dataDir: "node-a",
    roles: ["worker"],
    chain: { kind: "local", path: "../ledger.sqlite" },
    http: { port: 7001 },
    log: { level: "debug" },
  }, async (path, dir) => {
    const fromFile = await loadConfig({ args: ["--config", path] });
    assert.equal(fromFile.dataDir, `${dir}/node-a`);
    assert.equal(
      fromFile.chain.kind === "local" && fromFile.chain.path,
      `${dir.slice(0, dir.lastIndexOf("/"))}/ledger.sqlite`,
    );
    assert.equal(fromFile.http.port, 7001);

    const env = {
      CIRO_CONFIG: path,
      CIRO_HTTP_PORT: "7002",
      CIRO_ROLES: "verifier",
      CIRO_LOG_FORMAT: "json",
    };
    const fromEnv = await loadConfig({ env });
    assert.equal(fromEnv.http.port, 7002);
    assert.deepEqual(fromEnv.roles, ["verifier"]);
    assert.deepEqual(fromEnv.log, { level: "debug", format: "json" });

    const fromFlags = await loadConfig({
      env,
      cwd: "/srv",
      args: [
        "--http-port",
        "7003",
        "--roles",
        "client,bootstrap",
        "--data-dir",
        "x",
        "--listen",
        "/ip4/127.0.0.1/tcp/1",
        "--listen",
        "/ip4/127.0.0.1/tcp/2",
      ],
    });
    assert.equal(fromFlags.http.port, 7003);
    assert.deepEqual(fromFlags.roles, ["client", "bootstrap"]);
    assert.equal(fromFlags.dataDir, "/srv/x");
    assert.deepEqual(fromFlags.listen, ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]);
  });
});

Deno.test("loadConfig() reports unreadable files, bad JSON and unknown flags", async () => {
  await assert.rejects(
    loadConfig({ args: ["--config", "/nonexistent/ciro.json"] }),
    /Cannot read config file \/nonexistent\/ciro.json/,
  );
  await withFile("{ not json", async (path) => {
    await assert.rejects(
      loadConfig({ args: ["--config", path] }),
      (e: Error) =>
        e.name === "ConfigError" && e.message.startsWith(`Invalid config file ${path}:`),
    );
  });
  await withFile("[1]", async (path) => {
    await assert.rejects(loadConfig({ args: ["--config", path] }), /must hold a JSON object/);
  });
  await assert.rejects(
    loadConfig({ args: ["--colour"] }),
    (e: Error) => e.name === "ConfigError" && e.message.startsWith("Invalid flags:"),
  );
  await assert.rejects(
    loadConfig({ args: ["--http-port", "eighty"] }),
    /Invalid config "http.port": must be a port number, got "eighty"/,
  );
});

Deno.test("journal.acceptDivergence is off unless the file or --accept-divergence sets it", async () => {
  assert.equal(parseConfig({}).journal.acceptDivergence, false);
  assert.equal(parseConfig({ journal: { acceptDivergence: true } }).journal.acceptDivergence, true);
  rejects(
    { journal: { acceptDivergence: "yes" } },
    "journal.acceptDivergence",
    'Invalid config "journal.acceptDivergence": must be true or false',
  );
  const config = await loadConfig({ args: ["--accept-divergence"] });
  assert.equal(config.journal.acceptDivergence, true);
  assert.equal(config.journal.checkpointEvery, 256, "the other journal keys keep their defaults");
});
