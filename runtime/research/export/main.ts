/**
 * `deno task export <data dir | journal.sqlite> [<out.jsonl>]`: a node's journal as a recording.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { exportJournal, journalPathOf } from "../../durability/mod.ts";

const USAGE = `Usage: deno task export <data dir | journal.sqlite> [<out.jsonl>]

Writes a node's journal as a recording (JSON lines) that deno task replay reads; the default
output is beside the journal, <journal>.recording.jsonl.`;

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: { help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  if (parsed.values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const [from, to, extra] = parsed.positionals;
  if (from === undefined || extra !== undefined) {
    console.error(USAGE);
    Deno.exit(2);
  }
  const out = to ?? `${journalPathOf(from).replace(/\.sqlite$/, "")}.recording.jsonl`;
  try {
    const n = exportJournal(from, out);
    console.log(`Exported ${n} entries to ${out}`);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
