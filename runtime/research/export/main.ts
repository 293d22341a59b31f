/**
 * `deno task export <data dir | journal.sqlite> [<out.jsonl>]`: a node's journal as a recording.
 *
 * @module
 */
import { positionalsOrExit } from "../_cli.ts";
import { exportJournal, journalPathOf } from "../../durability/mod.ts";

const USAGE = `Usage: deno task export <data dir | journal.sqlite> [<out.jsonl>]

Writes a node's journal as a recording (JSON lines) that deno task replay reads; the default
output is beside the journal, <journal>.recording.jsonl.`;

if (import.meta.main) {
  const [from, to] = positionalsOrExit(Deno.args, USAGE, { min: 1, max: 2 }) as [
    string,
    string | undefined,
  ];
  const out = to ?? `${journalPathOf(from).replace(/\.sqlite$/, "")}.recording.jsonl`;
  try {
    const n = exportJournal(from, out);
    console.log(`Exported ${n} entries to ${out}`);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
