/**
 * The chain in a process of its own: serves a local ledger on stdin and stdout
 * (`chain/remote.ts`'s protocol), for the engine benchmark's `--chain-process` and for anyone who
 * wants the ledger's work out of a node's process. Ends when stdin ends.
 *
 *     deno run --allow-read --allow-write runtime/bench/chain/main.ts [--ledger PATH]
 *
 * `PATH` defaults to `:memory:`. Nothing but the protocol is written to stdout; refused lines
 * are reported on stderr. A `stats` request is answered with the process's CPU time so far and
 * its main thread's time on the CPU and waiting for one (`thread_time.ts`).
 *
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { LocalLedger } from "../../../chain/local_ledger.ts";
import { serveChain } from "../../../chain/remote.ts";
import { threadTime } from "../thread_time.ts";

if (import.meta.main) {
  let ledgerPath: string;
  try {
    const { values } = parseArgs({
      args: Deno.args,
      options: { ledger: { type: "string", default: ":memory:" } },
      strict: true,
    });
    ledgerPath = values.ledger;
  } catch (error) {
    console.error(
      `${(error as Error).message}\nusage: runtime/bench/chain/main.ts [--ledger PATH]`,
    );
    Deno.exit(2);
  }
  const ledger = LocalLedger.open(ledgerPath);
  try {
    await serveChain(ledger, { readable: Deno.stdin.readable, writable: Deno.stdout.writable }, {
      onRefused: (why) => console.error(`chain server: refused: ${why}`),
      // The benchmark reads this process's CPU time, and its main thread's, around its run.
      stats: () => {
        const { user, system } = process.cpuUsage();
        return { cpuMs: (user + system) / 1000, thread: threadTime() };
      },
    });
  } finally {
    ledger.close();
  }
}
