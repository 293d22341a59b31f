/**
 * `deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>`: the research
 * reports of a recording (timeline, phases, bids, HTML timeline).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { writeReports } from "../report.ts";

const USAGE = "Usage: deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>";

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
  const [path, dir] = parsed.positionals;
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
