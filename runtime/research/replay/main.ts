/**
 * `deno task replay <recording.jsonl>`: replays a recording and says whether every step
 * reproduced; `--policy` replays it under another job policy, `--report DIR` writes reports.
 *
 * @module
 */
import { parseArgs } from "node:util";

const count = (n: number) => Math.round(n).toLocaleString("en-US");

const USAGE =
  `Usage: deno task replay <recording.jsonl> [--policy <name>] [--report <dir>] [--quiet]

Replays a recording and says whether every step reproduced (exit 0) or where it diverged (1).

Flags:
  --policy NAME   simulate the recorded jobs again under another policy (a counterfactual)
  --report DIR    write the research reports (timeline, phases, bids) to DIR
  --quiet         no progress on stderr
  -h, --help      this help`;

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      allowPositionals: true,
      options: {
        policy: { type: "string" },
        report: { type: "string" },
        quiet: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  const { positionals, values } = parsed;
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const path = positionals[0];
  if (path === undefined) {
    console.error(USAGE);
    Deno.exit(2);
  }
  if (values.policy !== undefined) {
    const { parsePolicy } = await import("../counterfactual.ts");
    try {
      parsePolicy(values.policy);
    } catch (error) {
      console.error(`${(error as Error).message}\n(add --help for usage)`);
      Deno.exit(2);
    }
  }
  const { readRecording, replay, formatReplay } = await import("../../durability/mod.ts");
  const { configureLogging } = await import("../../kernel/mod.ts");
  configureLogging({ level: "error" });
  try {
    const recording = await readRecording(path);
    if (values.policy !== undefined) {
      const { counterfactual, formatCounterfactual } = await import("../counterfactual.ts");
      const result = await counterfactual(recording, values.policy, {
        onProgress: (message) => {
          if (!values.quiet) console.error(message);
        },
      });
      console.log(formatCounterfactual(result));
      Deno.exit(0);
    }
    const tty = Deno.stderr.isTerminal();
    const report = replay(recording, {
      name: path,
      progressEvery: 50_000,
      onProgress: (done, total) => {
        if (values.quiet) return;
        const text = `replayed ${count(done)} of ${count(total)} events`;
        if (tty) Deno.stderr.writeSync(new TextEncoder().encode(`\r${text}`));
        else console.error(text);
      },
    });
    if (tty && !values.quiet && report.events >= 50_000) console.error();
    console.log(formatReplay(report, path));
    if (values.report !== undefined && report.ok) {
      const { writeReports } = await import("../report.ts");
      const files = await writeReports(recording, values.report, { replayed: report });
      console.log(`Reports: ${files.join(", ")}`);
    }
    Deno.exit(report.ok ? 0 : 1);
  } catch (error) {
    const e = error as Error;
    const known = ["RecordingError", "ReplayVersionError", "JournalError", "RangeError"];
    console.error(known.includes(e.name) ? e.message : `Replay failed: ${e.message}`);
    Deno.exit(1);
  }
}

await main();
