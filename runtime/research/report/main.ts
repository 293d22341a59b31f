/**
 * `deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>`: the research
 * reports of a recording (timeline, phases, bids, HTML timeline).
 *
 * @module
 */
import { positionalsOrExit } from "../_cli.ts";
import { writeReports } from "../report.ts";

const USAGE = "Usage: deno run -A runtime/research/report/main.ts <recording.jsonl> <out dir>";

if (import.meta.main) {
  const [path, dir] = positionalsOrExit(Deno.args, USAGE, { min: 2, max: 2 }) as [string, string];
  const { readRecording } = await import("../../durability/mod.ts");
  try {
    const files = await writeReports(await readRecording(path), dir, { title: path });
    console.log(files.join("\n"));
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
