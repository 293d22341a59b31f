/**
 * The scaling curve: the simulator's scaling scenario (`runScale` in `runtime/sim/scale.ts`) for
 * 20 to 1000 workers at a fixed job rate, as JSON (one curve per protocol version) and as one SVG
 * plot of every curve: wall time (and CPU time) of a run, and events per worker node per
 * announced job, against the number of workers, both axes logarithmic.
 *
 * The plot is hand-written SVG: the project's `lineChart` (`runtime/research/svg_plot.ts`) has
 * linear axes only, and uPlot, the charting library in `deno.json`, draws on a DOM canvas.
 *
 * ```ts
 * import { scalingSvg } from "./scaling.ts";
 *
 * const svg = scalingSvg([]);
 * if (!svg.startsWith("<svg")) throw new Error("not an SVG");
 * ```
 *
 * @module
 */
import { escapeXml } from "../research/mod.ts";
import { runScale, type ScaleProgress, type ScaleResult } from "../sim/mod.ts";

/** The network sizes of the curve (workers). */
export const SCALING_SIZES: readonly number[] = [20, 100, 200, 500, 1000];
/** Jobs submitted per virtual second, at every size. */
export const SCALING_RATE = 10;
/**
 * Virtual time of job submissions at each size, ms: shorter for the larger networks, so that
 * today's protocol (whose cost per job grows with the square of the network) ends at all.
 */
export function scalingDurationMs(workers: number): number {
  if (workers <= 20) return 10_000;
  if (workers <= 100) return 2_000;
  if (workers <= 200) return 1_000;
  return 500;
}

/** One protocol version's curve. */
export interface ScalingCurve {
  /** What was measured, e.g. `v1 (6ee9208)`. */
  readonly label: string;
  readonly points: readonly ScaleResult[];
}

/** Options of {@link runScalingCurve}. */
export interface ScalingOptions {
  /** @default {@link SCALING_SIZES} */
  readonly sizes?: readonly number[];
  /** @default {@link SCALING_RATE} */
  readonly rate?: number;
  /** Virtual time of submissions for a size. @default {@link scalingDurationMs} */
  readonly durationMs?: (workers: number) => number;
  /** Wall-time cap of each run, ms (a run past it is recorded as `wall-cap`). @default null */
  readonly wallCapMs?: number | null;
  /** @default 4 */
  readonly verifiers?: number;
  /** @default 1 */
  readonly clients?: number;
  /** Whether nodes hear peers connect (`ScaleOptions.peerEvents`). @default true */
  readonly peerEvents?: boolean;
  /** Whether nodes gossip capabilities (`ScaleOptions.capabilities`). @default true */
  readonly capabilities?: boolean;
  readonly onProgress?: (workers: number, progress: ScaleProgress) => void;
  /** Told each point as it is measured (to save it before the next, longer one). */
  readonly onPoint?: (point: ScaleResult) => void | Promise<void>;
  readonly signal?: AbortSignal;
}

/** Runs the scaling scenario at each size, one after the other. */
export async function runScalingCurve(options: ScalingOptions = {}): Promise<ScaleResult[]> {
  const points: ScaleResult[] = [];
  for (const workers of options.sizes ?? SCALING_SIZES) {
    options.signal?.throwIfAborted();
    const point = await runScale({
      workers,
      verifiers: options.verifiers ?? 4,
      clients: options.clients ?? 1,
      rate: options.rate ?? SCALING_RATE,
      durationMs: (options.durationMs ?? scalingDurationMs)(workers),
      wallCapMs: options.wallCapMs ?? null,
      peerEvents: options.peerEvents ?? true,
      capabilities: options.capabilities ?? true,
      ...(options.onProgress ? { onProgress: (p) => options.onProgress!(workers, p) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
    points.push(point);
    await options.onPoint?.(point);
  }
  return points;
}

/** `curve` with `point` in place of the point of the same size, sorted by size. */
export function withPoint(curve: ScalingCurve, point: ScaleResult): ScalingCurve {
  const points = curve.points.filter((p) => p.workers !== point.workers);
  points.push(point);
  points.sort((a, b) => a.workers - b.workers);
  return { ...curve, points };
}

/** Reads a curve written by {@link runScalingCurve}'s program; throws naming what is wrong. */
export function parseCurve(text: string, source: string): ScalingCurve {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`Cannot read curve ${source}: ${(error as Error).message}`);
  }
  const curve = value as Partial<ScalingCurve>;
  if (
    typeof curve !== "object" || curve === null || typeof curve.label !== "string" ||
    !Array.isArray(curve.points) ||
    !curve.points.every((p) => typeof p?.workers === "number" && typeof p?.wallMs === "number")
  ) {
    throw new TypeError(
      `Cannot read curve ${source}: expected { label, points: [{ workers, wallMs, ... }] }`,
    );
  }
  return curve as ScalingCurve;
}

/**
 * Wall and CPU time of the job phase of a run (from the first submission on) per job submitted,
 * ms: the start-up (nodes connecting and hearing each other's capabilities) is left out. NaN for
 * CPU where the run recorded no start-up CPU time.
 */
export function jobPhaseMs(p: ScaleResult): { wall: number; cpu: number } {
  const jobs = Math.max(1, p.jobs.submitted);
  return {
    wall: (p.wallMs - p.setupWallMs) / jobs,
    cpu: typeof p.setupCpuMs === "number" ? (p.cpuMs - p.setupCpuMs) / jobs : NaN,
  };
}

const COLOURS = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd"];

interface PanelSeries {
  readonly name: string;
  readonly colour: string;
  readonly dashed: boolean;
  /** `[workers, value, open]`: open marks a lower bound (a run stopped at its wall-time cap). */
  readonly points: readonly (readonly [number, number, boolean])[];
}

const f = (n: number) => n.toFixed(1);

function decadeTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min / 1.0001 && v <= max * 1.0001) ticks.push(v);
    }
  }
  return ticks;
}

function tickLabel(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(Number(v.toPrecision(3)));
}

/** One log-log panel at (`left`, `top`). */
function panel(
  out: string[],
  at: { left: number; top: number; width: number; height: number },
  title: string,
  yLabel: string,
  xs: readonly number[],
  series: readonly PanelSeries[],
): void {
  const values = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y) =>
    y > 0 && Number.isFinite(y)
  );
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...values, 1)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...values, 10)));
  const xMin = Math.min(...xs, 20) / 1.3;
  const xMax = Math.max(...xs, 1000) * 1.3;
  const { left, top, width, height } = at;
  const sx = (x: number) =>
    left + ((Math.log10(x) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin))) * width;
  const sy = (y: number) =>
    top + height -
    ((Math.log10(y) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * height;
  out.push(
    `<text x="${f(left + width / 2)}" y="${top - 10}" text-anchor="middle" font-weight="bold">${
      escapeXml(title)
    }</text>`,
  );
  for (const t of decadeTicks(yMin, yMax)) {
    out.push(
      `<line x1="${left}" x2="${left + width}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="${
        Number.isInteger(Math.log10(t)) ? "#d0d0d0" : "#f0f0f0"
      }"/>`,
      `<text x="${left - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${tickLabel(t)}</text>`,
    );
  }
  for (const t of xs) {
    out.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${top}" y2="${top + height}" stroke="#f0f0f0"/>`,
      `<text x="${f(sx(t))}" y="${top + height + 16}" text-anchor="middle">${t}</text>`,
    );
  }
  out.push(
    `<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#444"/>`,
    `<text x="${f(left + width / 2)}" y="${
      top + height + 34
    }" text-anchor="middle">workers (log scale)</text>`,
    `<text transform="translate(${left - 48} ${f(top + height / 2)}) rotate(-90)" ` +
      `text-anchor="middle">${escapeXml(yLabel)}</text>`,
  );
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => x > 0 && y > 0 && Number.isFinite(y));
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${s.colour}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="6 4"' : ""
        } points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")}"/>`,
      );
    }
    for (const [x, y, open] of pts) {
      out.push(
        open
          ? `<circle cx="${f(sx(x))}" cy="${
            f(sy(y))
          }" r="4.5" fill="white" stroke="${s.colour}" stroke-width="2"/>` +
            `<text x="${f(sx(x) - 6)}" y="${
              f(sy(y) - 8)
            }" text-anchor="end" fill="${s.colour}">over cap</text>`
          : `<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3.5" fill="${s.colour}"/>`,
      );
    }
  }
}

/**
 * The SVG plot of `curves`: wall and CPU time of each run (left), events per worker per
 * announced job, journaled and messages received (right). A run stopped at its wall-time
 * cap is an open marker labelled "over cap": its time is a lower bound, its per-job figures
 * are those of the jobs it reached.
 */
export function scalingSvg(curves: readonly ScalingCurve[], note = ""): string {
  const width = 1000;
  // The header's size is set once the legends and notes below the panels are laid out.
  const out: string[] = [
    "",
    "",
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">` +
    `Scaling in the simulator: ${SCALING_RATE} jobs/s, no faults, one process</text>`,
  ];
  const xs = [...new Set(curves.flatMap((c) => c.points.map((p) => p.workers)))].sort((a, b) =>
    a - b
  );
  const open = (p: ScaleResult) => p.stopped === "wall-cap";
  const timeSeries: PanelSeries[] = [];
  const eventSeries: PanelSeries[] = [];
  const messageSeries: PanelSeries[] = [];
  curves.forEach((c, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    // Runs that reached no job (stopped in the start-up) have no per-job figure: named below.
    const ran = c.points.filter((p) => p.jobs.submitted > 0);
    timeSeries.push(
      {
        name: `${c.label}: wall`,
        colour,
        dashed: false,
        points: ran.map((p) => [p.workers, jobPhaseMs(p).wall, open(p)] as const),
      },
      {
        name: `${c.label}: CPU`,
        colour,
        dashed: true,
        points: ran.map((p) => [p.workers, jobPhaseMs(p).cpu, open(p)] as const),
      },
    );
    eventSeries.push(
      {
        name: `${c.label}: journaled`,
        colour,
        dashed: false,
        points: ran.map((p) => [p.workers, p.workerEvents.perWorkerPerJob, open(p)] as const),
      },
      {
        name: `${c.label}: messages received`,
        colour,
        dashed: true,
        points: ran.map((p) => [p.workers, p.workerEvents.gossipPerWorkerPerJob, open(p)] as const),
      },
    );
    messageSeries.push({
      name: `${c.label}: messages delivered`,
      colour,
      dashed: false,
      points: ran.map((p) => [p.workers, p.messages.deliveredPerJob, open(p)] as const),
    });
  });
  const at = (left: number) => ({ left, top: 70, width: 250, height: 300 });
  panel(out, at(75), "Time per job, job phase (ms)", "ms per job (log scale)", xs, timeSeries);
  panel(
    out,
    at(410),
    "The network, per job",
    "messages delivered (log scale)",
    xs,
    messageSeries,
  );
  panel(
    out,
    at(745),
    "Per worker node, per job",
    "events or messages (log scale)",
    xs,
    eventSeries,
  );
  // Each panel's legend under it.
  const columns = [[75, timeSeries], [410, messageSeries], [745, eventSeries]] as const;
  const rows = Math.max(...columns.map(([, series]) => series.length));
  for (const [left, series] of columns) {
    series.forEach((s, i) => {
      const ly = 432 + i * 18;
      out.push(
        `<line x1="${left}" x2="${left + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.colour}" ` +
          `stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
        `<text x="${left + 28}" y="${ly}">${escapeXml(s.name)}</text>`,
      );
    });
  }
  const unreached = curves.flatMap((c) =>
    c.points.filter((p) => p.jobs.submitted === 0).map((p) =>
      `${c.label}: ${p.workers} workers stopped at the wall-time cap (${
        Math.round(p.wallMs / 1_000)
      } s) before its first job`
    )
  );
  const text = [...unreached, ...(note === "" ? [] : note.split("\n"))].join("\n");
  const lines = text === "" ? [] : text.split("\n");
  // Tall enough for every legend row and note line (560 at least, as before).
  const height = Math.max(560, Math.ceil(432 + rows * 18 + 8 + lines.length * 15 + 10));
  out[0] = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`;
  out[1] = `<rect width="${width}" height="${height}" fill="white"/>`;
  if (lines.length > 0) {
    lines.forEach((line, i) => {
      out.push(
        `<text x="75" y="${432 + rows * 18 + 8 + i * 15}" fill="#555">${escapeXml(line)}</text>`,
      );
    });
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

/** The curves' figures as a Markdown table, one row per curve and size. */
export function scalingTable(curves: readonly ScalingCurve[]): string {
  const rows = [
    "| version | workers | jobs (virtual s) | stopped | settled | messages per job | events per worker per job (journaled / messages received) | deliveries per decline | actors for declined jobs | wall s (start-up) | CPU s (start-up) | per job: wall / CPU ms | load |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const c of curves) {
    for (const p of c.points) {
      rows.push(
        `| ${c.label} | ${p.workers} | ${p.jobs.submitted} (${p.durationMs / 1_000}) | ${
          p.stopped === "wall-cap" ? "**over cap**" : p.stopped
        } | ${p.jobs.settledPct} % | ${p.messages.deliveredPerJob} | ${p.workerEvents.perWorkerPerJob} / ${p.workerEvents.gossipPerWorkerPerJob} | ${p.declines.deliveriesPerDecline} | ${p.declines.actorsHeld} | ${
          (p.wallMs / 1_000).toFixed(1)
        } (${(p.setupWallMs / 1_000).toFixed(1)}) | ${(p.cpuMs / 1_000).toFixed(1)} (${
          typeof p.setupCpuMs === "number" ? (p.setupCpuMs / 1_000).toFixed(1) : "-"
        }) | ${
          p.jobs.submitted === 0
            ? "-"
            : `${Math.round(jobPhaseMs(p).wall)} / ${
              Number.isNaN(jobPhaseMs(p).cpu) ? "-" : Math.round(jobPhaseMs(p).cpu)
            }`
        } | ${p.loadAverage.start} -> ${p.loadAverage.end} |`,
      );
    }
  }
  return rows.join("\n");
}
