/**
 * `deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>`: the research
 * reports of a recording (timeline, phases, bids, HTML timeline).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { writeReports } from "../report.ts";

if (import.meta.main) {
  const { positionals } = parseArgs({ args: Deno.args, allowPositionals: true });
  const [path, dir] = positionals;
  if (path === undefined || dir === undefined) {
    console.error("Usage: deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>");
    Deno.exit(2);
  }
  const { readRecording } = await import("../../durability/mod.ts");
  try {
    const files = await writeReports(await readRecording(path), dir, { title: path });
    console.log(files.join("\n"));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
