/**
 * `deno task devstack --workers N --verifiers M`: a local market of separate `deno task node`
 * processes on loopback sharing one local ledger file ({@link startDevstack}). Prints the
 * client's URL and the bootstrap address once the market has formed, then waits; Ctrl-C
 * (SIGINT) or SIGTERM stops every node and exits 0.
 *
 * Exit codes: 0 after a clean stop, 1 when the stack cannot start or a node dies, 2 bad usage.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { startDevstack } from "./devstack.ts";

function count(value: string): number {
  if (!/^\d{1,2}$/.test(value) || Number(value) < 1 || Number(value) > 32) {
    throw new InvalidArgumentError("must be an integer in [1, 32]");
  }
  return Number(value);
}

function port(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65_535) {
    throw new InvalidArgumentError("must be a port number in [0, 65535]");
  }
  return Number(value);
}

function chain(value: string): string {
  if (value === "local") return value;
  if (value === "evm") {
    throw new InvalidArgumentError("the EVM chain is not available in devstack yet; use local");
  }
  throw new InvalidArgumentError("must be local");
}

/** Runs `deno task devstack` with `args`; resolves with the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const program = new Command("devstack")
    .description("A local market of separate node processes on loopback, one ledger file")
    .option("--workers <n>", "workers (1 to 32)", count, 2)
    .option("--verifiers <n>", "verifiers (1 to 32)", count, 1)
    .option(
      "--chain <kind>",
      "settlement: local (a ledger file shared by the nodes)",
      chain,
      "local",
    )
    .option("--dir <dir>", "where data directories and the ledger go (default: a temp dir)")
    .option("--http-port <port>", "the client's HTTP port (0: any)", port, 0)
    .option("--log-level <level>", "the nodes' log level, printed with each node's name", "warning")
    .exitOverride();
  try {
    program.parse([...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    throw error;
  }
  const o = program.opts<
    {
      workers: number;
      verifiers: number;
      dir?: string;
      httpPort: number;
      logLevel: string;
    }
  >();
  if (!["trace", "debug", "info", "warning", "error", "fatal"].includes(o.logLevel)) {
    console.error(
      `error: option '--log-level <level>' argument '${o.logLevel}' is invalid. must be one of trace, debug, info, warning, error, fatal`,
    );
    return 2;
  }
  const abort = new AbortController();
  let signalled: (name: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => signalled = resolve);
  const handlers = (["SIGINT", "SIGTERM"] as const).map((name) =>
    [name, () => {
      abort.abort(new Error(`Received ${name}`));
      signalled(name);
    }] as const
  );
  for (const [name, handler] of handlers) Deno.addSignalListener(name, handler);
  const unlisten = () => {
    for (const [name, handler] of handlers) Deno.removeSignalListener(name, handler);
  };
  console.error(`Starting ${o.workers} workers and ${o.verifiers} verifiers…`);
  let stack;
  try {
    stack = await startDevstack({
      workers: o.workers,
      verifiers: o.verifiers,
      httpPort: o.httpPort,
      logLevel: o.logLevel,
      ...(o.dir !== undefined ? { dir: o.dir } : {}),
      onLog: (name, line) => console.error(`[${name}] ${line}`),
      signal: abort.signal,
    });
  } catch (error) {
    unlisten();
    if (abort.signal.aborted) return 0;
    console.error(`Cannot start the devstack: ${(error as Error).message}`);
    return 1;
  }
  console.log(`Client:    ${stack.clientUrl}`);
  console.log(`Bootstrap: ${stack.bootstrap}`);
  console.log(`Ledger:    ${stack.ledger}`);
  for (const node of stack.nodes) {
    console.log(`  ${node.name.padEnd(12)} ${node.http}  pid ${node.pid}  ${node.peerId}`);
  }
  console.log(
    `Ready. Try: deno task ciro --node ${stack.clientUrl} status; deno task submit --node ${stack.clientUrl} --wait`,
  );
  const died = stack.firstExit.then((name) => ({ died: name }));
  const why = await Promise.race([stopRequested, died]);
  if (typeof why !== "string") {
    unlisten();
    console.error(`Node ${why.died} exited; stopping the others`);
    await stack.stop();
    return 1;
  }
  console.error(`Received ${why}: stopping ${stack.nodes.length} nodes`);
  await stack.stop();
  unlisten();
  console.error("Stopped");
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
