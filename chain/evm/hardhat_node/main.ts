/**
 * Hardhat's `hardhat node` (its EVM behind a JSON-RPC server) as a Deno program, run in its own
 * process by `startLocalEvmNode()` (`chain/evm/local_node.ts`) for `deno task chain`. It is
 * Hardhat's own `node` task, run after {@link defineV8StackTraceFormat}: without it, every call
 * that reverts is answered with a bare "Internal error" and no revert data, so no client can tell
 * what the contract refused (see `chain/evm/_stack_trace.ts`). Hardhat's log (each request, each
 * revert with its reason) goes to stdout.
 *
 * ```
 * deno run --config deno.json --allow-read --allow-write --allow-env --allow-net=127.0.0.1 \
 *   --allow-sys --allow-ffi chain/evm/hardhat_node/main.ts --port 8545 [--hostname 127.0.0.1]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { createHardhatRuntimeEnvironment } from "hardhat/hre";
import { defineV8StackTraceFormat } from "../_stack_trace.ts";

const USAGE = "Usage: hardhat_node/main.ts --port N [--hostname 127.0.0.1]";

let values;
try {
  ({ values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string" },
      hostname: { type: "string", default: "127.0.0.1" },
    },
    strict: true,
  }));
} catch (error) {
  console.error(`${(error as Error).message}\n${USAGE}`);
  Deno.exit(2);
}
const port = Number(values.port);
if (!/^[0-9]{1,5}$/.test(values.port ?? "") || port < 1 || port > 65_535) {
  console.error(`Invalid --port: expected 1 to 65535, got ${values.port}\n${USAGE}`);
  Deno.exit(2);
}
defineV8StackTraceFormat();
const hre = await createHardhatRuntimeEnvironment(
  {},
  {},
  new URL("../hardhat/", import.meta.url).pathname,
);
// Runs until the process is ended.
await hre.tasks.getTask("node").run({ hostname: values.hostname, port });
