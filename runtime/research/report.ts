/**
 * Research outputs from any recording: the recording is replayed (without waiting) and each
 * job is read from its owner's actor (the client node that ran the auction), giving
 *
 * - a per-job timeline (text): every event the owner's job actor received, with the state it
 *   left the job in;
 * - per-phase durations (bidding, execution, verification, settlement, total) as CSV and JSON;
 * - each job's path through its machine;
 * - bid statistics: bids per job, the winning price against the median bid, and why bids were
 *   not taken (rejections recorded by the owner, declines recorded by workers);
 * - a self-contained HTML page with a timeline of jobs and phases (no network, no external
 *   files).
 *
 * `deno task replay <recording> --report <dir>` writes them all (see {@link writeReports}).
 *
 * @module
 */
import type { BidRecord, JobContext, PhaseEntry } from "../../machines/job_machine.ts";
import { encodeJson } from "../durability/mod.ts";
import { type Phase, phaseDurations, PHASES, quantile } from "./phases.ts";
import type { Recording } from "../durability/mod.ts";
import { replay, type ReplayReport } from "../durability/mod.ts";

/** One line of a job's timeline. */
export interface TimelineEntry {
  /** Virtual time, ms. */
  readonly at: number;
  readonly seq: number;
  readonly source: string;
  readonly event: string;
  /** The job's state after the event. */
  readonly state: string;
  readonly status: "accepted" | "rejected" | "crashed";
  readonly detail: string;
}

/** A span of one phase. */
export interface PhaseSpan {
  readonly phase: Exclude<Phase, "total">;
  readonly from: number;
  readonly to: number;
}

/** Bid statistics of one job. */
export interface JobBids {
  readonly count: number;
  readonly attempts: number;
  readonly winner: { readonly worker: string; readonly price: string } | null;
  /** Median price of the bids the job received (over every attempt), or null for none. */
  readonly medianPrice: string | null;
  /** Winning price over the median price, or null. */
  readonly winningOverMedian: number | null;
  /** Why bids were not taken, by `status:reason`. */
  readonly notTaken: Readonly<Record<string, number>>;
}

/** Everything reported about one job. */
export interface JobReport {
  readonly jobId: string;
  readonly owner: string;
  readonly state: string;
  readonly done: boolean;
  readonly attempts: number;
  readonly path: readonly PhaseEntry[];
  readonly phases: Partial<Record<Phase, number>>;
  readonly spans: readonly PhaseSpan[];
  readonly bids: JobBids;
  readonly payment: { readonly worker: string; readonly amount: string } | null;
  readonly refunded: string;
  readonly slashes: readonly {
    readonly worker: string;
    readonly amount: string;
    readonly reason: string;
  }[];
  readonly timeline: readonly TimelineEntry[];
}

/** The research report of a recording. */
export interface ResearchReport {
  readonly engine: string;
  readonly machines: Readonly<Record<string, number>>;
  /** Virtual time of the first entry, ms. */
  readonly start: number;
  readonly end: number;
  readonly jobs: readonly JobReport[];
  /** Worker-side declines (a worker that chose not to bid), by reason. */
  readonly declines: Readonly<Record<string, number>>;
}

function median(values: readonly bigint[]): bigint | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2n;
}

/** The spans of the phases a job went through (the same cuts as `phaseDurations`). */
export function phaseSpans(path: readonly PhaseEntry[]): PhaseSpan[] {
  const first = (state: string) => path.find((p) => p.state === state)?.at;
  const last = (state: string) => path.findLast((p) => p.state === state)?.at;
  const spans: PhaseSpan[] = [];
  const bidding = first("bidding");
  const executing = last("executing");
  const assigned = executing ?? first("refunding");
  if (bidding !== undefined && assigned !== undefined) {
    spans.push({ phase: "bidding", from: bidding, to: assigned });
  }
  const verifying = first("verifying");
  if (executing !== undefined && verifying !== undefined) {
    spans.push({ phase: "execution", from: executing, to: verifying });
  }
  const verdict = first("settling") ?? first("disputed");
  if (verifying !== undefined && verdict !== undefined) {
    spans.push({ phase: "verification", from: verifying, to: verdict });
  }
  const end = path[path.length - 1];
  if (verdict !== undefined && end !== undefined && end.at >= verdict) {
    spans.push({ phase: "settlement", from: verdict, to: end.at });
  }
  return spans;
}

function detailOf(event: Record<string, unknown>): string {
  const bid = event["bid"] as Record<string, unknown> | undefined;
  switch (event["type"]) {
    case "bid.received":
      return bid ? `${bid["worker"]} bids ${bid["price"]} (eta ${bid["etaMs"]} ms)` : "";
    case "bids.received":
      return ((event["bids"] as Record<string, unknown>[] | undefined) ?? [])
        .map((b) => `${b["worker"]} bids ${b["price"]}`).join(", ");
    case "bid.withdrawn":
      return `${event["worker"]} withdrew ${event["bidId"]}`;
    case "timer.fired":
      return `${event["key"]} deadline`;
    case "chain.worker.assigned":
      return `${event["worker"]} at ${event["price"]}, verifiers ${
        (event["verifiers"] as string[] | undefined)?.join(" ") ?? ""
      }`;
    case "chain.assignment.revoked":
      return `${event["worker"]} revoked`;
    case "chain.result.submitted":
    case "job.result.received":
      return `${event["worker"]}: ${String(event["commitment"]).slice(0, 12)}`;
    case "job.attestation.received":
      return `${event["verifier"]}: ${event["verdict"]}`;
    case "job.attestations.received":
      return ((event["attestations"] as Record<string, unknown>[] | undefined) ?? [])
        .map((a) => `${a["verifier"]}: ${a["verdict"]}`).join(", ");
    case "chain.payment.released":
      return `${event["amount"]} to ${event["worker"]} (fee ${event["fee"]})`;
    case "chain.escrow.refunded":
      return `${event["amount"]} refunded: ${event["reason"]}`;
    case "chain.worker.slashed":
      return `${event["worker"]} slashed ${event["amount"]}: ${event["reason"]}`;
    case "chain.escrow.locked":
      return `escrow ${event["amount"]}`;
    case "chain.tx.failed":
      return `${event["request"]}: ${event["code"]}`;
    case "job.submit":
      return `max price ${(event["spec"] as { maxPrice?: bigint } | undefined)?.maxPrice}`;
    default:
      return "";
  }
}

/** Replays `recording` and builds its research report. */
export function buildReport(recording: Recording): ResearchReport {
  const timelines = new Map<string, TimelineEntry[]>();
  const declines: Record<string, number> = {};
  // The last state of each owned job, kept as the replay goes: a finished job's actor may be
  // retired from the tree before the end.
  const owned = new Map<string, { state: string; done: boolean; context: JobContext }>();
  let start = Infinity;
  let end = -Infinity;
  const result = replay(recording, {
    check: false,
    onStep: ({ entry, outcome, tree }) => {
      if (entry.at < start) start = entry.at;
      if (entry.at > end) end = entry.at;
      if (entry.event.type === "bid.declined") {
        const reason = String(entry.event["reason"]);
        declines[reason] = (declines[reason] ?? 0) + 1;
      }
      if (!entry.target.startsWith("job:")) return;
      const cell = tree.get(entry.target);
      if (cell === undefined) return;
      const c = cell.snapshot.context as JobContext;
      if (c.owner !== c.self) return;
      owned.set(c.jobId, { state: cell.state, done: cell.done, context: c });
      let list = timelines.get(c.jobId);
      if (list === undefined) timelines.set(c.jobId, list = []);
      const detail = detailOf(entry.event);
      list.push({
        at: entry.at,
        seq: entry.seq,
        source: entry.source,
        event: entry.event.type,
        state: cell.state,
        status: outcome?.status ?? "accepted",
        detail: outcome?.status === "rejected" && outcome.reason
          ? `${detail}${detail ? "; " : ""}rejected: ${outcome.reason}`
          : detail,
      });
    },
  });
  const jobs: JobReport[] = [];
  for (const tree of result.trees.values()) {
    for (const cell of tree.jobs.cells()) {
      const c = cell.snapshot.context as JobContext;
      if (c.owner === c.self) {
        owned.set(c.jobId, { state: cell.state, done: cell.done, context: c });
      }
    }
  }
  for (const cell of owned.values()) {
    const c = cell.context;
    const bids = Object.values(c.bids) as BidRecord[];
    const prices = bids.map((b) => b.price);
    const med = median(prices);
    const notTaken: Record<string, number> = {};
    for (const b of bids) {
      if (b.status === "accepted" || b.status === "open") continue;
      const key = `${b.status}${b.reason ? `:${b.reason}` : ""}`;
      notTaken[key] = (notTaken[key] ?? 0) + 1;
    }
    const price = c.payment?.amount ?? c.winner?.price ?? null;
    jobs.push({
      jobId: c.jobId,
      owner: c.owner,
      state: cell.state,
      done: cell.done,
      attempts: c.attempt,
      path: c.path,
      phases: phaseDurations(c.path),
      spans: phaseSpans(c.path),
      bids: {
        count: bids.length,
        attempts: c.attempt,
        winner: c.winner ? { worker: c.winner.worker, price: String(c.winner.price) } : null,
        medianPrice: med === null ? null : String(med),
        winningOverMedian: price !== null && med !== null && med > 0n
          ? Math.round(Number((price * 10_000n) / med)) / 10_000
          : null,
        notTaken,
      },
      payment: c.payment ? { worker: c.payment.worker, amount: String(c.payment.amount) } : null,
      refunded: String(c.refunded),
      slashes: c.slashes.map((s) => ({
        worker: s.worker,
        amount: String(s.amount),
        reason: s.reason,
      })),
      timeline: timelines.get(c.jobId) ?? [],
    });
  }
  jobs.sort((a, b) => (a.path[0]?.at ?? 0) - (b.path[0]?.at ?? 0) || (a.jobId < b.jobId ? -1 : 1));
  return {
    engine: recording.header.engine,
    machines: recording.header.machines,
    start: Number.isFinite(start) ? start : 0,
    end: Number.isFinite(end) ? end : 0,
    jobs,
    declines,
  };
}

/** The per-job timelines as text. */
export function formatTimeline(report: ResearchReport): string {
  const out: string[] = [];
  for (const job of report.jobs) {
    const t0 = job.path[0]?.at ?? report.start;
    out.push(
      `${job.jobId} (owner ${job.owner}): ${job.state}, ${job.attempts} attempt(s), ${job.bids.count} bids`,
    );
    for (const e of job.timeline) {
      out.push(
        `  +${String(e.at - t0).padStart(7)} ms  #${String(e.seq).padEnd(6)} ${
          e.event.padEnd(26)
        } -> ${e.state.padEnd(10)} ${e.status === "accepted" ? "" : `[${e.status}] `}${e.detail}`,
      );
    }
    out.push("");
  }
  return out.join("\n");
}

/** Each job's path through its machine, one job per line. */
export function formatPaths(report: ResearchReport): string {
  return report.jobs.map((job) => {
    const t0 = job.path[0]?.at ?? 0;
    return `${job.jobId}: ${job.path.map((p) => `${p.state}@${p.at - t0}`).join(" -> ")}`;
  }).join("\n") + "\n";
}

/** Per-phase durations (ms) as CSV: one row per job, a column per phase. */
export function phasesCsv(report: ResearchReport): string {
  const rows = [["job", "state", "attempts", ...PHASES].join(",")];
  for (const job of report.jobs) {
    rows.push(
      [job.jobId, job.state, job.attempts, ...PHASES.map((p) => job.phases[p] ?? "")].join(","),
    );
  }
  return rows.join("\n") + "\n";
}

/** Per-phase durations as JSON: per job, and p50/p95/mean per phase. */
export function phasesJson(report: ResearchReport): string {
  const summary = Object.fromEntries(PHASES.map((p) => {
    const values = report.jobs.map((j) => j.phases[p]).filter((v): v is number => v !== undefined);
    const mean = values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
    return [p, {
      n: values.length,
      p50: values.length ? quantile(values, 0.5) : null,
      p95: values.length ? quantile(values, 0.95) : null,
      mean,
    }];
  }));
  return JSON.stringify(
    {
      summary,
      jobs: report.jobs.map((j) => ({
        job: j.jobId,
        state: j.state,
        attempts: j.attempts,
        phases: j.phases,
      })),
    },
    null,
    2,
  ) + "\n";
}

/** Bid statistics: per job and overall. */
export function bidStatistics(report: ResearchReport): Record<string, unknown> {
  const notTaken: Record<string, number> = {};
  const ratios: number[] = [];
  for (const job of report.jobs) {
    for (const [k, v] of Object.entries(job.bids.notTaken)) notTaken[k] = (notTaken[k] ?? 0) + v;
    if (job.bids.winningOverMedian !== null) ratios.push(job.bids.winningOverMedian);
  }
  const counts = report.jobs.map((j) => j.bids.count);
  return {
    jobs: report.jobs.length,
    bidsPerJob: {
      mean: counts.length ? counts.reduce((a, b) => a + b, 0) / counts.length : null,
      p50: counts.length ? quantile(counts, 0.5) : null,
      max: counts.length ? Math.max(...counts) : null,
    },
    winningOverMedian: {
      n: ratios.length,
      p50: ratios.length ? quantile(ratios, 0.5) : null,
      mean: ratios.length ? ratios.reduce((a, b) => a + b, 0) / ratios.length : null,
    },
    notTaken,
    declinedByWorkers: report.declines,
    perJob: report.jobs.map((j) => ({ job: j.jobId, ...j.bids })),
  };
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A self-contained HTML page: one row per job with its phases as coloured bars on a shared
 * time axis (drawn by an inline script from embedded JSON), and a table of the jobs.
 */
export function renderHtml(report: ResearchReport, title = "CIRO recording"): string {
  const data = report.jobs.map((j) => ({
    id: j.jobId,
    state: j.state,
    attempts: j.attempts,
    bids: j.bids.count,
    start: j.path[0]?.at ?? report.start,
    end: j.path[j.path.length - 1]?.at ?? report.start,
    spans: j.spans,
  }));
  const json = encodeJson({ start: report.start, end: report.end, jobs: data })
    .replace(/</g, "\\u003c");
  const rows = report.jobs.map((j) =>
    `<tr><td>${escape(j.jobId)}</td><td class="s-${escape(j.state)}">${
      escape(j.state)
    }</td><td>${j.attempts}</td><td>${j.bids.count}</td>${
      PHASES.map((p) => `<td>${j.phases[p] ?? ""}</td>`).join("")
    }</tr>`
  ).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escape(title)}</title>
<style>
  body { font: 13px system-ui, sans-serif; margin: 16px; color: #222; }
  h1 { font-size: 18px; }
  .legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; color: #fff; border-radius: 3px; }
  .bidding { fill: #6c8ebf; background: #6c8ebf; } .execution { fill: #d79b00; background: #d79b00; }
  .verification { fill: #9673a6; background: #9673a6; } .settlement { fill: #82b366; background: #82b366; }
  svg text { font: 11px monospace; }
  table { border-collapse: collapse; margin-top: 16px; }
  td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
  td:first-child { text-align: left; font-family: monospace; }
  .s-settled { color: #2a7a2a; } .s-refunded, .s-failed { color: #b00; } .s-expired { color: #888; }
</style>
</head>
<body>
<h1>${escape(title)}</h1>
<p>${report.jobs.length} jobs over ${
    ((report.end - report.start) / 1000).toFixed(1)
  } s of virtual time; engine ${escape(report.engine)}, machines ${
    escape(Object.entries(report.machines).map(([k, v]) => `${k} v${v}`).join(", "))
  }.</p>
<p class="legend"><span class="bidding">bidding</span><span class="execution">execution</span><span class="verification">verification</span><span class="settlement">settlement</span></p>
<div id="timeline"></div>
<table id="jobs"><thead><tr><th>job</th><th>state</th><th>attempts</th><th>bids</th>${
    PHASES.map((p) => `<th>${p} ms</th>`).join("")
  }</tr></thead>
<tbody>
${rows}
</tbody></table>
<script id="data" type="application/json">${json}</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("data").textContent);
  var ns = "http://www.w3.org/2000/svg";
  var rowH = 16, label = 110, width = 900;
  var span = Math.max(1, data.end - data.start);
  var x = function (t) { return label + ((t - data.start) / span) * (width - label - 80); };
  var svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width);
  svg.setAttribute("height", data.jobs.length * rowH + 24);
  svg.setAttribute("id", "timeline-svg");
  data.jobs.forEach(function (job, i) {
    var g = document.createElementNS(ns, "g");
    g.setAttribute("class", "job");
    g.setAttribute("data-job", job.id);
    var y = i * rowH + 4;
    var text = document.createElementNS(ns, "text");
    text.setAttribute("x", 2);
    text.setAttribute("y", y + 11);
    text.textContent = job.id;
    g.appendChild(text);
    var line = document.createElementNS(ns, "rect");
    line.setAttribute("x", x(job.start));
    line.setAttribute("y", y + 6);
    line.setAttribute("width", Math.max(1, x(job.end) - x(job.start)));
    line.setAttribute("height", 2);
    line.setAttribute("fill", "#bbb");
    g.appendChild(line);
    job.spans.forEach(function (s) {
      var r = document.createElementNS(ns, "rect");
      r.setAttribute("class", "phase " + s.phase);
      r.setAttribute("x", x(s.from));
      r.setAttribute("y", y);
      r.setAttribute("width", Math.max(1, x(s.to) - x(s.from)));
      r.setAttribute("height", rowH - 4);
      var t = document.createElementNS(ns, "title");
      t.textContent = job.id + " " + s.phase + ": " + (s.to - s.from) + " ms";
      r.appendChild(t);
      g.appendChild(r);
    });
    var end = document.createElementNS(ns, "text");
    end.setAttribute("x", x(job.end) + 4);
    end.setAttribute("y", y + 11);
    end.setAttribute("class", "s-" + job.state);
    end.textContent = job.state;
    g.appendChild(end);
    svg.appendChild(g);
  });
  var root = document.getElementById("timeline");
  root.appendChild(svg);
  root.setAttribute("data-rendered", String(data.jobs.length));
})();
</script>
</body>
</html>
`;
}

/** Writes every research output for `recording` into `dir`; returns the file names. */
export async function writeReports(
  recording: Recording,
  dir: string,
  options: { replayed?: ReplayReport; title?: string } = {},
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const report = buildReport(recording);
  const files: [string, string][] = [
    ["timeline.txt", formatTimeline(report)],
    ["paths.txt", formatPaths(report)],
    ["phases.csv", phasesCsv(report)],
    ["phases.json", phasesJson(report)],
    ["bids.json", JSON.stringify(bidStatistics(report), null, 2) + "\n"],
    ["timeline.html", renderHtml(report, options.title)],
  ];
  for (const [name, text] of files) await Deno.writeTextFile(`${dir}/${name}`, text);
  return files.map(([name]) => `${dir}/${name}`);
}
