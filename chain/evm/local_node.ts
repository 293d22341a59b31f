/**
 * A local EVM node in a separate process: Hardhat's `hardhat node` (the same EVM as in process,
 * as a JSON-RPC server, run by `chain/evm/hardhat_node/main.ts`), listening on loopback only, and the deployment file that `deno task
 * chain` writes and `deno task node` reads (`chain.kind: "evm"`, `chain.deployment`).
 *
 * @module
 */
import type { Address } from "viem";
import type { EvmAddresses } from "./evm_adapter.ts";

/** What `deno task chain` writes: where the node is and where the contracts are. */
export interface EvmDeployment extends EvmAddresses {
  readonly rpcUrl: string;
  readonly chainId: number;
}

/** A running Hardhat node child process. */
export interface LocalEvmNode {
  readonly url: string;
  readonly pid: number;
  close(): Promise<void>;
}

/** A deployment file that is missing or malformed. */
export class DeploymentFileError extends Error {
  override readonly name = "DeploymentFileError";
  readonly code = "bad_deployment";
}

/** Options of {@link startLocalEvmNode}. */
export interface LocalEvmNodeOptions {
  /** The JSON-RPC port on 127.0.0.1. */
  readonly port: number;
  /**
   * How long the node may take to answer `eth_chainId`, ms.
   * @default {60000}
   */
  readonly startTimeoutMs?: number;
  /**
   * A file Hardhat's log goes to (each request, and each revert with its reason); it grows with
   * every request.
   * @default {undefined} the log is dropped
   */
  readonly logFile?: string;
  readonly signal?: AbortSignal;
}

const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Starts Hardhat's node on `127.0.0.1:<port>` in a child process (`chain/evm/hardhat_node/main.ts`:
 * `hardhat node` with the stack trace format Hardhat needs to report reverts) and waits (at most
 * `startTimeoutMs`) until it answers `eth_chainId`.
 */
export async function startLocalEvmNode(options: LocalEvmNodeOptions): Promise<LocalEvmNode> {
  const port = options.port;
  if (!Number.isSafeInteger(port) || port < 1 || port > 65_535) {
    throw new RangeError(`Invalid port: expected 1 to 65535, got ${port}`);
  }
  const url = `http://127.0.0.1:${port}`;
  const log = options.logFile === undefined
    ? undefined
    : await Deno.open(options.logFile, { create: true, append: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--config",
      `${ROOT}deno.json`,
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net=127.0.0.1",
      "--allow-sys",
      "--allow-ffi",
      `${ROOT}chain/evm/hardhat_node/main.ts`,
      "--hostname",
      "127.0.0.1",
      "--port",
      `${port}`,
    ],
    cwd: `${ROOT}chain/evm/hardhat/`,
    stdin: "null",
    stdout: log === undefined ? "null" : "piped",
    stderr: "piped",
  }).spawn();
  const logged = log === undefined ? Promise.resolve() : (async () => {
    try {
      for await (const chunk of child.stdout) await log.write(chunk);
    } finally {
      log.close();
    }
  })();
  const stderr: string[] = [];
  const drained = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      if (stderr.length < 200) stderr.push(chunk);
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const close = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await status;
    await drained.catch(() => {});
    await logged.catch(() => {});
  };
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  for (;;) {
    if (options.signal?.aborted) {
      await close();
      options.signal.throwIfAborted();
    }
    if (exited) {
      await drained.catch(() => {});
      await logged.catch(() => {});
      throw new Error(
        `Cannot start hardhat node on ${url}: it exited: ${stderr.join("").slice(0, 500)}`,
      );
    }
    try {
      const answer = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
      });
      if (answer.ok) {
        await answer.body?.cancel();
        return { url, pid: child.pid, close };
      }
      await answer.body?.cancel();
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await close();
      throw new Error(`Cannot start hardhat node on ${url}: no answer within the start timeout`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/** Reads and checks a deployment file; a missing key or a bad value names the key. */
export async function readDeployment(path: string): Promise<EvmDeployment> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (cause) {
    throw new DeploymentFileError(
      `Cannot read the EVM deployment file ${path}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  const o = raw as Record<string, unknown>;
  const bad = (key: string, want: string) =>
    new DeploymentFileError(`Invalid EVM deployment file ${path}: "${key}" must be ${want}`);
  if (typeof o !== "object" || o === null) throw bad("(root)", "a JSON object");
  for (const key of ["token", "cdcPool", "jobManager"]) {
    if (typeof o[key] !== "string" || !ADDRESS.test(o[key] as string)) {
      throw bad(key, "a 20-byte 0x address");
    }
  }
  if (!Number.isSafeInteger(o["deployBlock"]) || (o["deployBlock"] as number) < 0) {
    throw bad("deployBlock", "a block number");
  }
  if (!Number.isSafeInteger(o["chainId"]) || (o["chainId"] as number) < 1) {
    throw bad("chainId", "a positive integer");
  }
  if (typeof o["rpcUrl"] !== "string" || !/^https?:\/\//.test(o["rpcUrl"] as string)) {
    throw bad("rpcUrl", "an http(s) URL");
  }
  return {
    rpcUrl: o["rpcUrl"] as string,
    chainId: o["chainId"] as number,
    token: o["token"] as Address,
    cdcPool: o["cdcPool"] as Address,
    jobManager: o["jobManager"] as Address,
    deployBlock: o["deployBlock"] as number,
  };
}
