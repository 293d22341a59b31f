/**
 * Time to full discovery on loopback, measured: starts 9 `deno task node` processes (a
 * bootstrap, a client, 3 workers, 4 verifiers, every one bootstrapping through the bootstrap
 * node, `capabilityIntervalMs` 1000, as `tests/convergence/kill_converge_test.ts` does), and
 * prints how long after the last process wrote its `node.json` the client tracks every other
 * node (`GET /peers` `tracked`) and knows the 4 verifiers (`GET /health` `verifiers`).
 *
 * ```sh
 * deno run -A tests/discovery/discovery_time.ts [runs=5] [timeoutMs=90000]
 * ```
 *
 * It is a measuring script, not a test (`tests/convergence/kill_converge_test.ts` waits for the
 * same discovery, up to 60 s). On a timeout it prints who is connected to whom and each node's
 * first warning; `CIRO_DISCOVERY_LOGS=<dir>` also saves every node's output there (with
 * `DEBUG=libp2p:connection-monitor*,libp2p:bootstrap*` for libp2p's own reasons).
 *
 * @module
 */
import { get, until } from "../_poll.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

interface NodeInfo {
  readonly peerId: string;
  readonly pid: number;
  readonly multiaddrs: readonly string[];
  readonly http: string;
}

interface Member {
  readonly name: string;
  readonly dataDir: string;
  readonly log: string[];
  process?: Deno.ChildProcess;
  info?: NodeInfo;
}

/** What one run measured, in ms after every node was up. */
export interface DiscoveryRun {
  /** Until the client tracked every other node and knew the 4 verifiers. */
  readonly fullMs: number;
  /** Until the client tracked every other node. */
  readonly trackedMs: number;
  /** Until the client knew the 4 verifiers (capability gossip). */
  readonly verifiersMs: number;
  /** From the first spawn until every node wrote its `node.json`. */
  readonly startupMs: number;
}

/**
 * Starts the 9 processes in a fresh directory, measures, stops them (SIGTERM) and removes the
 * directory. Throws after `timeoutMs` without full discovery, naming who is missing.
 */
export async function measureDiscovery(
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<DiscoveryRun> {
  const timeoutMs = options.timeoutMs ?? 90_000;
  const dir = await Deno.makeTempDir({ prefix: "ciro-discovery-" });
  const members: Member[] = [];
  const spawn = async (
    name: string,
    config: Record<string, unknown>,
    bootstrap: readonly string[],
  ): Promise<Member> => {
    const m: Member = { name, dataDir: `${dir}/${name}`, log: [] };
    members.push(m);
    await Deno.mkdir(m.dataDir, { recursive: true });
    const configFile = `${dir}/${name}.json`;
    await Deno.writeTextFile(
      configFile,
      JSON.stringify({
        dataDir: m.dataDir,
        listen: ["/ip4/127.0.0.1/tcp/0"],
        bootstrap,
        chain: { kind: "local", path: `${dir}/ledger.sqlite` },
        peer: { heartbeatMs: 1_000, maxMissedHeartbeats: 3, initialScore: 100 },
        network: { heartbeatMs: 1_000 },
        capabilityIntervalMs: 1_000,
        http: { host: "127.0.0.1", port: 0 },
        log: { level: "warning", format: "json" },
        ...config,
      }),
    );
    const process = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "node", "--config", configFile],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    m.process = process;
    let exited = false;
    void process.status.then(() => (exited = true));
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) m.log.push(decoder.decode(chunk));
    };
    void drain(process.stdout).catch(() => {});
    void drain(process.stderr).catch(() => {});
    m.info = await until(`${name} to write node.json`, 60_000, async () => {
      if (exited) throw new Error(`${name} exited: ${m.log.join("").slice(-2_000)}`);
      const text = await Deno.readTextFile(`${m.dataDir}/node.json`).catch(() => undefined);
      return text === undefined ? undefined : JSON.parse(text) as NodeInfo;
    });
    return m;
  };
  const began = performance.now();
  try {
    const bootstrap = await spawn("bootstrap", { roles: ["bootstrap"] }, []);
    const boot = [bootstrap.info!.multiaddrs[0]!];
    const client = await spawn("client", { roles: ["client"] }, boot);
    const worker = { roles: ["worker"], worker: { hardware: "cpu", stake: 1_000 } };
    const others = await Promise.all([
      spawn("worker-a", worker, boot),
      spawn("worker-b", worker, boot),
      spawn("worker-c", worker, boot),
      ...[1, 2, 3, 4].map((i) => spawn(`verifier-${i}`, { roles: ["verifier"] }, boot)),
    ]);
    const up = performance.now();
    let trackedAt: number | undefined;
    let verifiersAt: number | undefined;
    let seen = "";
    await until("the client to know 3 workers and 4 verifiers", timeoutMs, async () => {
      options.signal?.throwIfAborted();
      const [health, peers] = await Promise.all([
        get(`${client.info!.http}/health`),
        get(`${client.info!.http}/peers`),
      ]);
      // Heard of (their capabilities): a peer gets an actor only once the client deals with it.
      const tracked = (peers.heard as { peer: string }[]).map((p) => p.peer);
      const missing = others.filter((o) => !tracked.includes(o.info!.peerId));
      const now = performance.now();
      if (missing.length === 0) trackedAt ??= now;
      if (health.verifiers >= 4) verifiersAt ??= now;
      seen = `verifiers ${health.verifiers}, missing ${missing.map((o) => o.name).join(",")}`;
      return trackedAt !== undefined && verifiersAt !== undefined ? true : undefined;
    }).catch(async (error) => {
      // CIRO_DISCOVERY_LOGS=<dir>: every node's output, for a closer look.
      const logs = Deno.env.get("CIRO_DISCOVERY_LOGS");
      if (logs) {
        await Deno.mkdir(logs, { recursive: true });
        for (const m of members) await Deno.writeTextFile(`${logs}/${m.name}.log`, m.log.join(""));
      }
      // Who is connected to whom, to say where discovery stopped.
      const names = new Map(members.map((m) => [m.info?.peerId, m.name]));
      const links: string[] = [];
      for (const m of members) {
        const peers = await get(`${m.info!.http}/peers`).catch(() => undefined);
        const connected = (peers?.connected as string[] | undefined)?.map((p) => names.get(p) ?? p);
        const warnings = m.log.join("").split("\n").filter((l) =>
          /"level":"(warn|warning|error|fatal)"/i.test(l)
        );
        const named = (line: string) =>
          line.replace(/12D3Koo\w+/g, (id) => names.get(id) ?? id).slice(0, 300);
        links.push(
          `${m.name} -> ${connected?.join(",") ?? "?"} (${warnings.length} warnings${
            warnings.length > 0 ? `, first: ${named(warnings[0]!)}` : ""
          })`,
        );
      }
      throw new Error(
        `${(error as Error).message} (last seen: ${seen}; connections: \n  ${links.join("\n  ")})`,
      );
    });
    return {
      fullMs: Math.round(Math.max(trackedAt!, verifiersAt!) - up),
      trackedMs: Math.round(trackedAt! - up),
      verifiersMs: Math.round(verifiersAt! - up),
      startupMs: Math.round(up - began),
    };
  } finally {
    for (const m of members) {
      try {
        m.process?.kill("SIGTERM");
      } catch { /* gone */ }
    }
    await Promise.allSettled(members.map((m) => m.process?.status));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const runs = Number(Deno.args[0] ?? 5);
  const timeoutMs = Number(Deno.args[1] ?? 90_000);
  const results: DiscoveryRun[] = [];
  for (let i = 1; i <= runs; i++) {
    try {
      const run = await measureDiscovery({ timeoutMs });
      results.push(run);
      console.log(
        `run ${i}: full discovery ${run.fullMs} ms (tracked ${run.trackedMs} ms, verifiers ${run.verifiersMs} ms; startup ${run.startupMs} ms)`,
      );
    } catch (error) {
      console.log(`run ${i}: ${(error as Error).message}`);
    }
  }
  const full = results.map((r) => r.fullMs).sort((a, b) => a - b);
  if (full.length > 0) {
    console.log(
      `${full.length}/${runs} runs discovered fully: min ${full[0]} ms, median ${
        full[Math.floor(full.length / 2)]
      } ms, max ${full.at(-1)} ms`,
    );
  }
}
