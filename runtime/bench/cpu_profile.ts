/**
 * Summaries of a V8 CPU profile (the `.cpuprofile` that `deno run --cpu-prof` writes): the
 * functions with the most self time, and the time of each layer of the engine (a sample's time
 * goes to the deepest frame in this repository or in an npm package, so time spent in a native
 * or a built-in counts for the code that called it). `deno task bench --summarize FILE` prints
 * them; `docs/profile.md` shows how they were taken.
 *
 * @module
 */

/** A call frame as V8 records it. */
interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

/** The parts of a `.cpuprofile` read here. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: CallFrame;
    readonly children?: readonly number[];
  }[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One row of a summary: what, and its time. */
export interface ProfileRow {
  readonly name: string;
  readonly ms: number;
  /** Share of the busy time (idle excluded), percent. */
  readonly percent: number;
}

/** What {@link summarizeProfile} found. */
export interface ProfileSummary {
  /** Sampled time, ms. */
  readonly totalMs: number;
  /** Sampled time the process was idle, ms. */
  readonly idleMs: number;
  /** Functions by self time, most first. */
  readonly functions: readonly ProfileRow[];
  /** Files (and npm packages) by time, natives and built-ins counted for their caller. */
  readonly layers: readonly ProfileRow[];
}

const SPECIAL = new Set(["(idle)", "(garbage collector)", "(program)", "(root)"]);

/** A frame's file, relative to the repository, or `npm:<package>`; empty for natives. */
function fileOf(url: string, root: string): string {
  const npm = /node_modules\/\.deno\/([^/]+)\//.exec(url);
  if (npm) return `npm:${npm[1]!.replace(/@[^@]*$/, "").replace("+", "/")}`;
  if (root !== "" && url.startsWith(root)) return url.slice(root.length);
  return url.startsWith("file://") ? url.slice("file://".length) : "";
}

/**
 * Summarizes `profile`: the top `limit` functions by self time and the layers. `root` is the
 * repository's file URL prefix (`file:///work/main/`), cut from the names.
 */
export function summarizeProfile(
  profile: CpuProfile,
  options: { root?: string; limit?: number } = {},
): ProfileSummary {
  const root = options.root ?? "";
  const limit = options.limit ?? 25;
  if (!Array.isArray(profile?.nodes) || !Array.isArray(profile?.samples)) {
    throw new TypeError("Invalid CPU profile: expected nodes and samples");
  }
  if (profile.samples.length !== profile.timeDeltas?.length) {
    throw new TypeError(
      `Invalid CPU profile: ${profile.samples.length} samples but ${profile.timeDeltas?.length} time deltas`,
    );
  }
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + profile.timeDeltas[i]!));
  let total = 0;
  let idle = 0;
  const functions = new Map<string, number>();
  const layers = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) throw new TypeError(`Invalid CPU profile: no node ${id}`);
    total += us;
    if (frame.functionName === "(idle)") {
      idle += us;
      continue;
    }
    const file = fileOf(frame.url, root);
    add(
      functions,
      file === ""
        ? frame.functionName
        : `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`,
      us,
    );
    let layer = SPECIAL.has(frame.functionName) ? frame.functionName : "";
    for (let at: number | undefined = id; layer === "" && at !== undefined; at = parent.get(at)) {
      layer = fileOf(byId.get(at)!.callFrame.url, root);
    }
    add(layers, layer || "(native, no caller in the profile)", us);
  }
  const busy = total - idle;
  const rows = (m: Map<string, number>, n: number): ProfileRow[] =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, us]) => ({
      name,
      ms: Math.round(us / 1000),
      percent: busy > 0 ? Math.round((1000 * us) / busy) / 10 : 0,
    }));
  return {
    totalMs: Math.round(total / 1000),
    idleMs: Math.round(idle / 1000),
    functions: rows(functions, limit),
    layers: rows(layers, limit),
  };
}

/** The summary as text: two tables, functions then layers. */
export function formatProfileSummary(summary: ProfileSummary): string {
  const table = (title: string, rows: readonly ProfileRow[]) => [
    title,
    ...rows.map((r) =>
      `${r.percent.toFixed(1).padStart(5)} %  ${String(r.ms).padStart(6)} ms  ${r.name}`
    ),
  ];
  return [
    `sampled ${summary.totalMs} ms, idle ${summary.idleMs} ms; shares are of the busy time`,
    "",
    ...table("self time by function", summary.functions),
    "",
    ...table("time by layer (natives and built-ins count for their caller)", summary.layers),
  ].join("\n");
}
