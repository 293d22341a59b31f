/**
 * `deno task scaling`: the scaling curve. Runs the simulator's scaling scenario for 20, 100,
 * 200, 500 and 1000 workers at 10 jobs per virtual second, saves each point in `--out` as it is
 * measured (merged with the points already there), then draws every curve given with `--curves`
 * into one SVG (`--plot`) and prints the table.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatScaleProgress, formatScaleResult } from "../../sim/mod.ts";
import {
  parseCurve,
  runScalingCurve,
  SCALING_SIZES,
  type ScalingCurve,
  scalingSvg,
  scalingTable,
  withPoint,
} from "../scaling.ts";

const USAGE = `Usage: deno task scaling [options]

Runs the simulator's scaling scenario (deno task simulate --scale) for each size at 10 jobs per
virtual second (10 virtual s of jobs at 20 workers, 2 at 100, 1 at 200, 0.5 at 500 and 1000),
saves each point in --out as it comes, then plots every curve of --curves into --plot.

Options:
  --label TEXT     the curve's name, e.g. "v2 (abc1234)" (required unless --plot-only)
  --out FILE       the curve's JSON; points already there are kept unless measured again
  --sizes LIST     comma-separated worker counts (default ${SCALING_SIZES.join(",")})
  --wall-cap S     stop a run past S wall seconds; it is recorded and plotted as "over cap"
  --no-peer-events nodes do not hear every other node connect (the simulated network's full
                   mesh costs O(N^2) at start-up; see deno task simulate --help)
  --no-capabilities nodes do not gossip capabilities at start-up (N^2 deliveries)
  --add FILE       add a point from a JSON result of deno task simulate --scale --json to --out
                   (instead of running)
  --curves LIST    comma-separated curve files to plot (default: --out)
  --plot FILE      the SVG to write (default docs/scaling.svg)
  --note TEXT      a line of text under the plot's legend (\\n for more lines)
  --plot-only      only plot --curves and print the table
  -h, --help       this help`;

class UsageError extends Error {
  override readonly name = "UsageError";
}

async function readCurve(path: string): Promise<ScalingCurve | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return parseCurve(text, path);
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        label: { type: "string" },
        out: { type: "string" },
        sizes: { type: "string" },
        "wall-cap": { type: "string" },
        add: { type: "string" },
        curves: { type: "string" },
        plot: { type: "string", default: "docs/scaling.svg" },
        note: { type: "string", default: "" },
        "plot-only": { type: "boolean", default: false },
        "no-peer-events": { type: "boolean", default: false },
        "no-capabilities": { type: "boolean", default: false },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  let sizes = SCALING_SIZES;
  let wallCapMs: number | null = null;
  try {
    if (!values["plot-only"]) {
      if (values.out === undefined) throw new UsageError("Missing --out: the curve's JSON file");
      if (values.label === undefined) throw new UsageError("Missing --label: the curve's name");
    }
    if (values.sizes !== undefined) {
      sizes = values.sizes.split(",").map((s) => Number(s.trim()));
      const bad = sizes.find((n) => !Number.isSafeInteger(n) || n < 1);
      if (bad !== undefined || sizes.length === 0) {
        throw new UsageError(
          `Invalid --sizes "${values.sizes}": expected comma-separated worker counts`,
        );
      }
    }
    if (values["wall-cap"] !== undefined) {
      const s = Number(values["wall-cap"]);
      if (!(Number.isFinite(s) && s > 0)) {
        throw new UsageError(
          `Invalid --wall-cap "${values["wall-cap"]}": must be positive seconds`,
        );
      }
      wallCapMs = s * 1_000;
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`${error.message}\n(add --help for usage)`);
    return 2;
  }

  if (!values["plot-only"]) {
    const out = values.out!;
    let curve: ScalingCurve = { ...(await readCurve(out) ?? { points: [] }), label: values.label! };
    const save = async () => {
      await Deno.writeTextFile(out, JSON.stringify(curve, null, 1) + "\n");
    };
    if (values.add !== undefined) {
      const point = JSON.parse(await Deno.readTextFile(values.add));
      if (typeof point?.workers !== "number" || typeof point?.wallMs !== "number") {
        console.error(
          `Cannot add ${values.add}: not a result of deno task simulate --scale --json`,
        );
        return 2;
      }
      curve = withPoint(curve, point);
      await save();
      console.log(formatScaleResult(point));
    } else {
      await runScalingCurve({
        sizes,
        wallCapMs,
        peerEvents: !values["no-peer-events"],
        capabilities: !values["no-capabilities"],
        onProgress: (workers, p) => console.error(`${workers} workers ${formatScaleProgress(p)}`),
        onPoint: async (point) => {
          curve = withPoint(curve, point);
          await save();
          console.log(formatScaleResult(point));
        },
      });
    }
  }
  const files = (values.curves ?? values.out ?? "").split(",").map((s) => s.trim())
    .filter((s) => s !== "");
  const curves: ScalingCurve[] = [];
  for (const file of files) {
    const curve = await readCurve(file);
    if (curve === undefined) console.error(`No curve at ${file}: left out of the plot`);
    else curves.push(curve);
  }
  await Deno.writeTextFile(values.plot, scalingSvg(curves, values.note.replaceAll("\\n", "\n")));
  console.log(`\n${scalingTable(curves)}\n\nwrote ${values.plot}`);
  return 0;
}

Deno.exit(await main());
