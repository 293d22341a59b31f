/**
 * `deno task node`: the operator's command. Loads the config ({@link loadConfig}: file, then
 * `CIRO_*` env, then flags), the Ed25519 identity from the data directory (so the peer id
 * survives restarts), starts a libp2p host (listening, dialing the bootstrap peers), the chain
 * port (the local ledger file, or Starknet), and the node; logs its multiaddrs; serves the
 * loopback status endpoint ({@link serveStatus}); and writes `<dataDir>/node.json` (peer id,
 * pid, multiaddrs, status URL) for scripts and `deno task submit --data-dir`. SIGINT or SIGTERM
 * stops the status server, the node, the host and the chain, removes `node.json`, and exits 0.
 *
 * The data directory is checked and locked first ({@link checkDataDir}, {@link lockDataDir}): a
 * directory that does not exist, or that has a journal but no identity key, is refused unless
 * `--init` asks for a new node; a directory another process holds is refused, naming its pid.
 *
 * Exit codes: 0 after a clean shutdown, 2 for a bad config, 1 for any other failure to start.
 *
 * @module
 */
import { LocalLedger } from "../../../chain/local_ledger.ts";
import type { ChainPort } from "../../../chain/port.ts";
import type { JobPolicy } from "../../../machines/policies.ts";
import { createLibp2pHost, type Libp2pHost } from "../../../protocols/libp2p_host.ts";
import { loadOrCreateIdentity } from "../../../protocols/identity.ts";
import type { Capability } from "../../../protocols/capability_index.ts";
import { loadConfig, type NodeConfig, USAGE } from "../config.ts";
import { logger } from "../../kernel/mod.ts";
import { dispose } from "@logtape/logtape";
import { configureOperatorLogging, otelRequested } from "../logging.ts";
import type { Node } from "../../kernel/mod.ts";
import { checkDataDir, lockDataDir, openDurableNode } from "../../durability/mod.ts";
import { serveStatus, type StatusServer } from "../status_server.ts";
import { Cockpit } from "../cockpit.ts";
import { instrumentChain, timeAppends } from "../metrics.ts";

/** The file the running node describes itself in, inside its data directory. */
export const NODE_INFO_FILE = "node.json";

/** What `<dataDir>/node.json` holds while the node runs. */
export interface NodeInfo {
  readonly peerId: string;
  readonly pid: number;
  readonly roles: readonly string[];
  readonly multiaddrs: readonly string[];
  /** The status endpoint, `http://127.0.0.1:PORT`, or null when it is off. */
  readonly http: string | null;
}

/** A started node with everything it owns. */
export interface RunningNode {
  readonly node: Node;
  readonly host: Libp2pHost;
  readonly status: StatusServer | undefined;
  readonly info: NodeInfo;
  /** Stops everything, in order; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The host's `isBonded`, answered by the node once it exists: authors that hold nothing at stake
 * on chain draw on the host's small unbonded budget (`network.unbondedRateLimit`). The host is
 * made before the node, but delivers nothing before the node subscribes at start; until then
 * every author counts as bonded.
 */
export function bondedBy(
  node: () => Pick<Node, "isBonded"> | undefined,
): (peer: string) => boolean {
  return (peer) => node()?.isBonded(peer) ?? true;
}

/** Starts a node from a validated config. */
export async function startNode(
  config: NodeConfig,
  options: {
    signal?: AbortSignal;
    /** How long after start a node with bootstrap peers but no connection warns. @default 10_000 */
    bootstrapWarnMs?: number;
    /** Make a new node: create a missing data directory, or a new identity beside a journal. */
    init?: boolean;
  } = {},
): Promise<RunningNode> {
  const log = logger("cli");
  const checked = checkDataDir(config.dataDir, { init: options.init ?? false });
  if (checked.created) log.info("Created data directory {dir}", { dir: config.dataDir });
  const lock = lockDataDir(config.dataDir);
  if (lock.tookOverFrom !== null) {
    log.warn("Took over the lock of {dir} from process {pid}, which is gone", {
      dir: config.dataDir,
      pid: lock.tookOverFrom,
    });
  }
  let host: Libp2pHost;
  // The node, once made: the host asks it who is bonded.
  const made: { node?: Node } = {};
  try {
    const privateKey = await loadOrCreateIdentity(config.dataDir);
    const net = config.network;
    host = await createLibp2pHost({
      privateKey,
      listen: config.listen,
      bootstrap: config.bootstrap,
      trustedRanges: net.trustedRanges,
      heartbeatMs: net.heartbeatMs,
      maxRejections: net.maxRejections,
      banMs: net.banMs,
      requestTimeoutMs: net.requestTimeoutMs,
      rateLimit: net.rateLimit,
      // Verifiers bond at start (verifier.stake), workers with worker.stake, clients by escrow.
      isBonded: bondedBy(() => made.node),
      unbondedRateLimit: net.unbondedRateLimit,
    });
  } catch (error) {
    lock.release();
    throw error;
  }
  // Undone in reverse: the lock is released last.
  const undo: (() => Promise<void> | void)[] = [() => lock.release(), () => host.stop()];
  const unwind = async () => {
    for (const step of undo.splice(0).reverse()) {
      try {
        await step();
      } catch (error) {
        log.warn("Shutdown step failed: {error}", { error: (error as Error).message });
      }
    }
  };
  try {
    const chain = await openChain(config, host.self, options.signal);
    undo.push(chain.close);
    // Chain calls and journal appends are measured for /metrics; the cockpit is made once the
    // node exists, so the decorators report through this late-bound reference.
    const late: { cockpit?: Cockpit } = {};
    const port = instrumentChain(chain.port, {
      chainCall: (method, outcome, seconds) =>
        late.cockpit?.metrics.chainCall(method, outcome, seconds),
    });
    // The node journals to its data directory and, restarted on it, comes back where it was.
    const durable = await openDurableNode({
      id: host.self,
      roles: config.roles,
      network: host,
      chain: port,
      policy: config.policy as JobPolicy,
      peer: config.peer,
      capabilityIntervalMs: config.capabilityIntervalMs,
      sampling: {
        bidders: config.sampling.bidders,
        ...(config.sampling.bits !== undefined ? { bits: config.sampling.bits } : {}),
      },
      retainFinishedMs: config.jobs.retainFinishedMs,
      archiveSize: config.jobs.archiveSize,
      ...(config.roles.includes("worker") ? { worker: config.worker } : {}),
      ...(config.roles.includes("verifier") ? { verifierStake: config.verifier.stake } : {}),
      dataDir: config.dataDir,
      synchronous: config.journal.synchronous,
      checkpointEvery: config.journal.checkpointEvery,
      acceptDivergence: config.journal.acceptDivergence,
      onRepair: (message) => log.warn("{message}", { message }),
    });
    const node = made.node = durable.node;
    const cockpit = late.cockpit = new Cockpit(node, {
      chain: chain.port,
      ...(config.roles.includes("worker") ? { capacity: config.worker.capacity } : {}),
    });
    const untime = timeAppends(durable.journal, cockpit.metrics);
    undo.push(() => {
      untime();
      cockpit.close();
    });
    if (durable.restored > 0) {
      log.info(
        "Recovered {restored} actors ({replayed} journal entries after the last checkpoint)",
        {
          restored: durable.restored,
          replayed: durable.replayed,
        },
      );
    }
    const resumed = await durable.start(options.signal ? { signal: options.signal } : {});
    if (resumed.length > 0) {
      log.info("Resumed {count} effects in flight", { count: resumed.length });
    }
    undo.push(() => durable.stop());
    // Joining: ask a third of the peers for what is open, once connections have formed.
    if (config.bootstrap.length > 0) {
      const join = setTimeout(() => {
        node.requestSnapshot(options.signal ? { signal: options.signal } : {}).then(
          (got) => log.info("Join snapshot: {jobs} open jobs, {bids} bids from {asked} peers", got),
          (error) => log.warn("Join snapshot failed: {error}", { error: (error as Error).message }),
        );
      }, 1_000);
      undo.push(() => clearTimeout(join));
    }
    // A bootstrap peer that cannot be reached leaves the node alone: say so.
    if (config.bootstrap.length > 0) {
      const warnMs = options.bootstrapWarnMs ?? 10_000;
      const check = setTimeout(() => {
        if (host.peers().length > 0) return;
        log.warn(
          "No peer connected {ms} ms after start: check that a bootstrap peer is reachable ({addresses})",
          { ms: warnMs, addresses: config.bootstrap.join(", ") },
        );
      }, warnMs);
      undo.push(() => clearTimeout(check));
    }
    // Workers and verifiers advertise what they offer in the DHT capability index.
    const offered: Capability[] = config.roles
      .filter((r): r is "worker" | "verifier" => r === "worker" || r === "verifier")
      .map((role) => ({ type: "role", role }));
    if (config.roles.includes("worker")) {
      offered.push({ type: "hardware", hardware: config.worker.hardware });
    }
    for (const capability of offered) {
      host.capabilities.advertise(capability, options.signal ? { signal: options.signal } : {})
        .catch((error) =>
          log.warn("Cannot advertise {key}: {error}", {
            key: JSON.stringify(capability),
            error: (error as Error).message,
          })
        );
    }
    const status = config.http.enabled
      ? await serveStatus(node, {
        cockpit,
        host: config.http.host,
        port: config.http.port,
        connected: () => host.peers(),
        peerAddresses: () => {
          const addresses = new Map<string, string[]>();
          for (const connection of host.libp2p.getConnections()) {
            const peer = connection.remotePeer.toString();
            addresses.set(peer, [...(addresses.get(peer) ?? []), connection.remoteAddr.toString()]);
          }
          return addresses;
        },
        extra: () => ({ multiaddrs: host.multiaddrs(), network: host.stats() }),
      })
      : undefined;
    if (status) undo.push(() => status.shutdown());
    const info: NodeInfo = {
      peerId: host.self,
      pid: Deno.pid,
      roles: config.roles,
      multiaddrs: host.multiaddrs(),
      http: status?.url ?? null,
    };
    const infoPath = `${config.dataDir}/${NODE_INFO_FILE}`;
    const tmp = `${infoPath}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(info, null, 2) + "\n");
    await Deno.rename(tmp, infoPath);
    undo.push(() => Deno.remove(infoPath).catch(() => {}));
    log.info("Node {peerId} started as {roles}", {
      peerId: host.self,
      roles: config.roles.join(","),
    });
    for (const address of info.multiaddrs) log.info("Listening on {address}", { address });
    if (status) log.info("Status endpoint on {url}", { url: status.url });
    let stopping: Promise<void> | undefined;
    return { node, host, status, info, stop: () => stopping ??= unwind() };
  } catch (error) {
    await unwind();
    throw error;
  }
}

async function openChain(
  config: NodeConfig,
  nodeId: string,
  signal: AbortSignal | undefined,
): Promise<{ port: ChainPort; close: () => Promise<void> | void }> {
  const chain = config.chain;
  if (chain.kind === "local") {
    const ledger = LocalLedger.open(chain.path);
    return { port: ledger.as(nodeId), close: () => ledger.close() };
  }
  if (chain.kind === "evm") {
    const { EvmChain } = await import("../../../chain/evm/evm_adapter.ts");
    const { readDeployment } = await import("../../../chain/evm/local_node.ts");
    const deployment = await readDeployment(chain.deployment);
    const port = await EvmChain.connect({
      nodeId,
      rpcUrl: chain.rpcUrl ?? deployment.rpcUrl,
      chainId: deployment.chainId,
      addresses: deployment,
      confirmations: chain.confirmations,
      pollMs: chain.pollMs,
      ...(chain.privateKeyFile !== undefined ? { privateKeyFile: chain.privateKeyFile } : {}),
    });
    return { port, close: () => port.close() };
  }
  const { StarknetChain } = await import("../../../chain/starknet_adapter.ts");
  const port = await StarknetChain.connect({
    rpcUrl: chain.rpcUrl,
    accountAddress: chain.accountAddress,
    jobManagerAddress: chain.jobManagerAddress,
    cdcPoolAddress: chain.cdcPoolAddress,
    nodeId,
    confirmations: chain.confirmations,
    pollMs: chain.pollMs,
    ...(chain.privateKeyFile !== undefined ? { privateKeyFile: chain.privateKeyFile } : {}),
    ...(chain.tokenAddress !== undefined ? { tokenAddress: chain.tokenAddress } : {}),
    ...(signal ? { signal } : {}),
  });
  return { port, close: () => port.close() };
}

/** Runs `deno task node` with `args`; resolves with the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  // `--init` is for one start (a new node), never part of a config.
  const init = args.includes("--init");
  let config: NodeConfig;
  try {
    config = await loadConfig({
      args: args.filter((a) => a !== "--init"),
      env: Deno.env.toObject(),
    });
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  // Logs go to stderr, and with OTEL_DENO=true also over OTLP (Deno exports the job traces).
  await configureOperatorLogging(config.log, { otel: otelRequested(Deno.env.toObject()) });
  const log = logger("cli");
  const abort = new AbortController();
  let signalled: (name: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => signalled = resolve);
  const handlers: [Deno.Signal, () => void][] = (["SIGINT", "SIGTERM"] as const).map((
    name,
  ) => [name, () => {
    abort.abort(new Error(`Received ${name}`));
    signalled(name);
  }]);
  for (const [name, handler] of handlers) Deno.addSignalListener(name, handler);
  let running: RunningNode;
  try {
    running = await startNode(config, { signal: abort.signal, init });
  } catch (error) {
    for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
    if (abort.signal.aborted) return 0;
    log.fatal("Cannot start the node: {error}", { error: (error as Error).message });
    await dispose();
    return 1;
  }
  // A journal that refuses an append stops the node loudly: nothing more is taken in, /health
  // says why, and the process exits 1 so a supervisor sees it (and restarts it on its journal).
  let journalFailed = false;
  running.node.observe((o) => {
    if (o.type !== "journal.failed") return;
    journalFailed = true;
    log.fatal("The journal failed; stopping: {error}", { error: o.error.message });
    signalled("journal failure");
  });
  const name = await stopRequested;
  if (!journalFailed) log.info("Received {signal}: shutting down", { signal: name });
  await running.stop();
  for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  log.info("Stopped");
  await dispose();
  return journalFailed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
