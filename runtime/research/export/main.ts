/**
 * `deno task export <data dir | journal.sqlite> [<out.jsonl>]`: a node's journal as a recording.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { exportJournal, journalPathOf } from "../../durability/mod.ts";

if (import.meta.main) {
  const { positionals } = parseArgs({ args: Deno.args, allowPositionals: true });
  const [from, to] = positionals;
  if (from === undefined) {
    console.error("Usage: deno task export <data dir | journal.sqlite> [<out.jsonl>]");
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
