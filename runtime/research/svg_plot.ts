/**
 * Hand-written SVG line charts for the benchmark (no plotting dependency): one chart, linear
 * axes with "nice" ticks, one coloured polyline with point markers per series, a legend.
 *
 * ```ts
 * import { lineChart } from "./svg_plot.ts";
 *
 * const svg = lineChart({
 *   title: "Announcement latency",
 *   xLabel: "nodes",
 *   yLabel: "ms",
 *   series: [{ name: "p50", points: [[10, 4], [20, 6], [40, 9]] }],
 * });
 * if (!svg.startsWith("<svg")) throw new Error("not an SVG");
 * ```
 *
 * @module
 */

/** One line of a chart. */
export interface Series {
  readonly name: string;
  /** `[x, y]` pairs; drawn in the order given. Non-finite values are skipped. */
  readonly points: readonly (readonly [number, number])[];
  /** Draw the line dashed (a baseline). @default false */
  readonly dashed?: boolean;
}

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** @default 640 */
  readonly width?: number;
  /** @default 400 */
  readonly height?: number;
  /** Start the y axis at zero. @default true */
  readonly yFromZero?: boolean;
}

const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"];

/** Escapes text for SVG content and attributes. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** About five round tick values covering `[min, max]`. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) {
    const v = Number.isFinite(min) ? min : 0;
    return [v === 0 ? 0 : v * 0.5, v === 0 ? 1 : v * 1.5].sort((a, b) => a - b);
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ??
    10 * magnitude;
  const ticks: number[] = [];
  const first = Math.floor(min / step) * step;
  for (let v = first, i = 0; v <= max + step * 0.999 && i < 50; v += step, i++) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

function label(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  return String(Number(v.toPrecision(4)));
}

/** Renders a line chart as a standalone SVG document. */
export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  const margin = { left: 70, right: 20, top: 40, bottom: 80 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const points = options.series.flatMap((s) =>
    s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y))
  );
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y);
  const xTicks = niceTicks(Math.min(...xs, Infinity), Math.max(...xs, -Infinity));
  const yMin = options.yFromZero ?? true ? 0 : Math.min(...ys, Infinity);
  const yTicks = niceTicks(yMin, Math.max(...ys, yMin + 1));
  const x0 = xTicks[0]!, x1 = xTicks[xTicks.length - 1]!;
  const y0 = yTicks[0]!, y1 = yTicks[yTicks.length - 1]!;
  const sx = (x: number) => margin.left + ((x - x0) / (x1 - x0 || 1)) * plotW;
  const sy = (y: number) => margin.top + plotH - ((y - y0) / (y1 - y0 || 1)) * plotH;
  const f = (n: number) => n.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" ` +
    `viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${
      escapeXml(options.title)
    }</text>`,
  ];
  for (const t of yTicks) {
    out.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${f(sy(t))}" y2="${
        f(sy(t))
      }" stroke="#e5e5e5"/>`,
      `<text x="${margin.left - 6}" y="${f(sy(t) + 4)}" text-anchor="end">${label(t)}</text>`,
    );
  }
  for (const t of xTicks) {
    out.push(
      `<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${margin.top}" y2="${
        margin.top + plotH
      }" stroke="#f0f0f0"/>`,
      `<text x="${f(sx(t))}" y="${margin.top + plotH + 16}" text-anchor="middle">${
        label(t)
      }</text>`,
    );
  }
  out.push(
    `<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" ` +
      `fill="none" stroke="#444"/>`,
    `<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 34}" text-anchor="middle">${
      escapeXml(options.xLabel)
    }</text>`,
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" ` +
      `text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );
  options.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${colour}" stroke-width="2"${
          s.dashed ? ' stroke-dasharray="6 4"' : ""
        } points="${pts.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(" ")}"/>`,
      );
    }
    for (const [x, y] of pts) {
      out.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3.5" fill="${colour}"/>`);
    }
  });
  // Legend below the x label, in columns.
  const perRow = Math.max(1, Math.floor(plotW / 190));
  options.series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const lx = margin.left + (i % perRow) * 190;
    const ly = margin.top + plotH + 52 + Math.floor(i / perRow) * 16;
    out.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${colour}" ` +
        `stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
      `<text x="${lx + 28}" y="${ly}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
