/**
 * A local market of separate node processes on loopback, like Bacalhau's devstack: one
 * client+bootstrap node, `workers` workers and `verifiers` verifiers, each a `deno task node`
 * process with its own data directory, all settling on one local ledger file. Resolves once the
 * client is connected to every node and knows every verifier; `stop()` sends SIGTERM to every
 * process (SIGKILL after a grace period) and waits for them.
 *
 * ```ts ignore
 * import { startDevstack } from "./devstack.ts";
 *
 * const stack = await startDevstack({ workers: 2, verifiers: 1 });
 * console.log(stack.clientUrl, stack.bootstrap);
 * await stack.stop();
 * ```
 *
 * @module
 */

/** Options of {@link startDevstack}. */
export interface DevstackOptions {
  /** Client nodes, 1 to 32; the first is also the bootstrap, the others bootstrap from it. @default 1 */
  readonly clients?: number;
  /** Workers to start, 1 to 32. @default 2 */
  readonly workers?: number;
  /** Verifiers to start, 1 to 32. @default 1 */
  readonly verifiers?: number;
  /** Where data directories and the ledger go. @default a new temporary directory */
  readonly dir?: string;
  /** The client's HTTP port (0: any). @default 0 */
  readonly httpPort?: number;
  /** Each worker's stake. @default 1000 */
  readonly stake?: number;
  /** Log level of the nodes. @default "warning" */
  readonly logLevel?: string;
  /** How long to wait for the market to form, ms. @default 60_000 */
  readonly readyTimeoutMs?: number;
  /**
   * How many nodes start at once after the first client (each counts until it wrote its
   * `node.json`): a loaded machine cannot start 30 processes together. @default all at once
   */
  readonly startConcurrency?: number;
  /** More config for a node, merged over the stack's own (e.g. `{ worker: { capacity: 4 } }`). */
  readonly nodeConfig?: (name: string, roles: readonly string[]) => Record<string, unknown>;
  /** Told each line a node logs, with the node's name. */
  readonly onLog?: (name: string, line: string) => void;
  readonly signal?: AbortSignal;
}

/** One node process of the stack. */
export interface DevstackNode {
  readonly name: string;
  readonly roles: readonly string[];
  readonly dataDir: string;
  readonly pid: number;
  readonly peerId: string;
  readonly http: string;
  readonly multiaddrs: readonly string[];
}

/** A running stack. */
export interface Devstack {
  readonly dir: string;
  readonly ledger: string;
  readonly clientUrl: string;
  /** Every client's status URL, the first client's first. */
  readonly clientUrls: readonly string[];
  /** The bootstrap address other nodes (and yours) dial: `/ip4/127.0.0.1/tcp/…/p2p/…`. */
  readonly bootstrap: string;
  readonly nodes: readonly DevstackNode[];
  /** Resolves when every process has exited (after `stop()`, or if they die). */
  readonly exited: Promise<void>;
  /** Resolves with the name of the first node whose process exits. */
  readonly firstExit: Promise<string>;
  /** Stops every process: SIGTERM, then SIGKILL after `graceMs`. Safe to call twice. */
  stop(options?: { graceMs?: number }): Promise<void>;
}

/** The stack could not be started. */
export class DevstackError extends Error {
  override readonly name = "DevstackError";
  readonly code: "node_exited" | "not_ready" | "bad_option";
  constructor(code: DevstackError["code"], message: string) {
    super(message);
    this.code = code;
  }
}

const ROOT = new URL("../../../", import.meta.url).pathname;

/** The command line of `deno task node`, read from deno.json so that the two never differ. */
async function nodeCommand(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const task = String(config.tasks?.node ?? "");
  const parts = task.split(/\s+/).filter((p) => p !== "");
  if (parts[0] !== "deno" || parts[1] !== "run") {
    throw new DevstackError("bad_option", `Unexpected "node" task in deno.json: ${task}`);
  }
  return parts.slice(1);
}

interface Proc {
  readonly name: string;
  readonly roles: readonly string[];
  readonly dataDir: string;
  readonly child: Deno.ChildProcess;
  exited: boolean;
  readonly status: Promise<Deno.CommandStatus>;
  readonly tail: string[];
}

function checkCount(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1 || value > 32) {
    throw new DevstackError(
      "bad_option",
      `Invalid ${name} ${value}: must be an integer in [1, 32]`,
    );
  }
}

async function until<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    const value = await probe().catch((error) => {
      if ((error as Error).name === "DevstackError") throw error;
      return undefined;
    });
    if (value !== undefined) return value;
    // Not faster: the client answers these polls too, and 30 processes starve it on 2 cores.
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new DevstackError("not_ready", `Timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function getJson(url: string) {
  const response = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  if (!response.ok) {
    await response.body?.cancel();
    return undefined;
  }
  return await response.json();
}

/** Starts a stack; stop it with `stack.stop()`. */
export async function startDevstack(options: DevstackOptions = {}): Promise<Devstack> {
  const clients = options.clients ?? 1;
  const workers = options.workers ?? 2;
  const verifiers = options.verifiers ?? 1;
  checkCount("clients", clients);
  checkCount("workers", workers);
  checkCount("verifiers", verifiers);
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "ciro-devstack-" });
  await Deno.mkdir(dir, { recursive: true });
  const ledger = `${dir}/ledger.sqlite`;
  const command = await nodeCommand();
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const procs: Proc[] = [];
  const decoder = new TextDecoder();

  const spawn = async (
    name: string,
    roles: string[],
    bootstrap: readonly string[],
    extra: Record<string, unknown> = {},
  ): Promise<DevstackNode> => {
    // A lane of a staggered start must not start a node once the stack is being stopped.
    if (stopping !== undefined) {
      throw new DevstackError("not_ready", `Not starting ${name}: stopping`);
    }
    const dataDir = `${dir}/${name}`;
    await Deno.mkdir(dataDir, { recursive: true });
    // A stale node.json (a stack started before in this directory) must not be taken as ours.
    await Deno.remove(`${dataDir}/node.json`).catch(() => {});
    const configFile = `${dir}/${name}.json`;
    await Deno.writeTextFile(
      configFile,
      JSON.stringify(
        {
          dataDir,
          roles,
          listen: ["/ip4/127.0.0.1/tcp/0"],
          bootstrap,
          chain: { kind: "local", path: ledger },
          peer: { heartbeatMs: 1_000 },
          network: { heartbeatMs: 1_000 },
          capabilityIntervalMs: 2_000,
          log: { level: options.logLevel ?? "warning", format: "text" },
          ...extra,
          ...options.nodeConfig?.(name, roles),
        },
        null,
        2,
      ) + "\n",
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [...command, "--config", configFile],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const tail: string[] = [];
    const proc: Proc = {
      name,
      roles,
      dataDir,
      child,
      exited: false,
      tail,
      status: child.status.then((s) => {
        proc.exited = true;
        return s;
      }),
    };
    procs.push(proc);
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      let partial = "";
      for await (const chunk of stream) {
        partial += decoder.decode(chunk, { stream: true });
        const lines = partial.split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 20) tail.shift();
          options.onLog?.(name, line);
        }
      }
    };
    void drain(child.stdout).catch(() => {});
    void drain(child.stderr).catch(() => {});
    const info = await until(`${name} to start`, timeoutMs, options.signal, async () => {
      if (proc.exited) {
        throw new DevstackError(
          "node_exited",
          `Node ${name} exited while starting: ${tail.join("\n") || "(no output)"}`,
        );
      }
      const text = await Deno.readTextFile(`${dataDir}/node.json`).catch(() => undefined);
      return text === undefined ? undefined : JSON.parse(text);
    });
    return {
      name,
      roles,
      dataDir,
      pid: info.pid,
      peerId: info.peerId,
      http: info.http,
      multiaddrs: info.multiaddrs,
    };
  };

  let stopping: Promise<void> | undefined;
  const stop = ({ graceMs = 10_000 }: { graceMs?: number } = {}) =>
    stopping ??= (async () => {
      for (const p of procs) {
        if (!p.exited) {
          try {
            p.child.kill("SIGTERM");
          } catch { /* already gone */ }
        }
      }
      const timer = setTimeout(() => {
        for (const p of procs) {
          if (!p.exited) {
            try {
              p.child.kill("SIGKILL");
            } catch { /* already gone */ }
          }
        }
      }, graceMs);
      await Promise.all(procs.map((p) => p.status));
      clearTimeout(timer);
    })();

  try {
    const client = await spawn("client", ["client", "bootstrap"], [], {
      http: { host: "127.0.0.1", port: options.httpPort ?? 0 },
    });
    const bootstrap = client.multiaddrs.find((a) => a.includes("/p2p/")) ??
      `${client.multiaddrs[0]}/p2p/${client.peerId}`;
    const stake = options.stake ?? 1_000;
    const starts: (() => Promise<DevstackNode>)[] = [
      ...Array.from(
        { length: clients - 1 },
        (_, i) => () =>
          spawn(`client-${i + 2}`, ["client"], [bootstrap], {
            http: { host: "127.0.0.1", port: 0 },
          }),
      ),
      ...Array.from(
        { length: workers },
        (_, i) => () =>
          spawn(`worker-${i + 1}`, ["worker"], [bootstrap], {
            worker: { hardware: "cpu", stake, priceRatio: 0.5 + 0.1 * (i % 5), etaMs: 200 },
          }),
      ),
      ...Array.from(
        { length: verifiers },
        (_, i) => () => spawn(`verifier-${i + 1}`, ["verifier"], [bootstrap]),
      ),
    ];
    // At most startConcurrency lanes, each starting one node after another, in order.
    const others: DevstackNode[] = [];
    let next = 0;
    const lanes = Math.max(1, Math.min(options.startConcurrency ?? starts.length, starts.length));
    await Promise.all(Array.from({ length: lanes }, async () => {
      while (next < starts.length) {
        const i = next++;
        others[i] = await starts[i]!();
      }
    }));
    const allClients = [client, ...others.filter((n) => n.roles.includes("client"))];
    const ids = others.map((n) => n.peerId);
    await until("the client to connect to every node", timeoutMs, options.signal, async () => {
      const peers = await getJson(`${client.http}/peers`);
      const health = await getJson(`${client.http}/health`);
      return peers !== undefined && ids.every((id) => peers.connected.includes(id)) &&
          health.verifiers >= verifiers
        ? true
        : undefined;
    });
    // Connected is not enough: gossip flows once subscriptions are exchanged. Ready when every
    // client has heard every other node's capabilities and every worker every client's, over
    // gossip.
    for (const c of allClients) {
      const want = [client, ...others].filter((n) => n !== c).map((n) => n.peerId);
      await until(`${c.name} to hear every node`, timeoutMs, options.signal, async () => {
        const peers = await getJson(`${c.http}/peers`);
        const heard = new Set((peers?.heard ?? []).map((p: { peer: string }) => p.peer));
        return want.every((id) => heard.has(id)) ? true : undefined;
      });
    }
    for (const worker of others.filter((n) => n.roles.includes("worker"))) {
      await until(`${worker.name} to hear the clients`, timeoutMs, options.signal, async () => {
        const peers = await getJson(`${worker.http}/peers`);
        const heard = (peers?.heard ?? []).map((p: { peer: string }) => p.peer);
        return peers?.connected.includes(client.peerId) &&
            allClients.every((c) => heard.includes(c.peerId))
          ? true
          : undefined;
      });
    }
    return {
      dir,
      ledger,
      clientUrl: client.http,
      clientUrls: allClients.map((c) => c.http),
      bootstrap,
      nodes: [client, ...others],
      exited: Promise.all(procs.map((p) => p.status)).then(() => {}),
      firstExit: Promise.race(procs.map((p) => p.status.then(() => p.name))),
      stop,
    };
  } catch (error) {
    await stop({ graceMs: 3_000 });
    throw error;
  }
}
