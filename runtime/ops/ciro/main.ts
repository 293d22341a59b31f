/**
 * `deno task ciro`: the operator's CLI over a node's HTTP API (`npm:commander`).
 *
 * ```sh
 * deno task ciro --data-dir ./data/a jobs list --state settled,expired --limit 20
 * deno task ciro --node http://127.0.0.1:8701 jobs describe job-1
 * deno task ciro --data-dir ./data/a jobs watch job-1      # live phases until final
 * deno task ciro --data-dir ./data/a jobs output job-1
 * deno task ciro --data-dir ./data/a jobs cancel job-1
 * deno task ciro --data-dir ./data/a peers
 * deno task ciro --data-dir ./data/a status
 * deno task ciro completion >> ~/.bashrc                   # bash completion
 * ```
 *
 * The node is `--node URL`, or `--data-dir DIR` whose `node.json` names it, or `CIRO_NODE`.
 * `--json` prints the API's JSON as it is. Exit codes: 0 ok, 1 failed (the node refused or
 * cannot be reached), 2 bad usage, 3 the job ended without settling (`watch`) or has no output.
 *
 * @module
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { JOB_STATES } from "../job_feed.ts";

/** Where the CLI writes (tests capture it). */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly signal?: AbortSignal;
}

/** Exit codes of `deno task ciro`. */
export const EXIT = { ok: 0, failed: 1, usage: 2, notSettled: 3 } as const;

/** The node answered with an error, or could not be reached. */
export class CliError extends Error {
  override readonly name = "CliError";
  readonly code: "unreachable" | "refused" | "bad_answer";
  readonly exitCode: number;
  constructor(code: CliError["code"], message: string, exitCode: number = EXIT.failed) {
    super(message);
    this.code = code;
    this.exitCode = exitCode;
  }
}

// deno-lint-ignore no-explicit-any
type Json = any;

function positiveInt(max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
      throw new InvalidArgumentError(`must be an integer in [1, ${max}]`);
    }
    return Number(value);
  };
}

function nonNegativeInt(value: string): number {
  if (!/^\d{1,9}$/.test(value)) throw new InvalidArgumentError("must be a non-negative integer");
  return Number(value);
}

function stateList(value: string): string {
  for (const state of value.split(",")) {
    if (!JOB_STATES.includes(state)) {
      throw new InvalidArgumentError(`unknown state "${state}"; one of ${JOB_STATES.join(", ")}`);
    }
  }
  return value;
}

async function resolveNode(options: { node?: string; dataDir?: string }, io: CliIo) {
  if (options.node !== undefined) return options.node.replace(/\/+$/, "");
  const dataDir = options.dataDir ?? io.env?.CIRO_DATA_DIR;
  if (dataDir !== undefined) {
    let info: Json;
    try {
      info = JSON.parse(await Deno.readTextFile(`${dataDir}/node.json`));
    } catch (error) {
      throw new CliError(
        "unreachable",
        `Cannot read ${dataDir}/node.json (is the node running?): ${(error as Error).message}`,
        EXIT.usage,
      );
    }
    if (typeof info.http !== "string") {
      throw new CliError("unreachable", `Node in ${dataDir} has no HTTP endpoint`);
    }
    return info.http.replace(/\/+$/, "");
  }
  const env = io.env?.CIRO_NODE;
  if (env !== undefined && env !== "") return env.replace(/\/+$/, "");
  throw new CliError("unreachable", "Missing --node URL (or --data-dir DIR, or CIRO_NODE)", 2);
}

async function request(
  url: string,
  init: RequestInit = {},
  signal?: AbortSignal,
): Promise<{ status: number; body: Json }> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: signal ?? AbortSignal.timeout(30_000) });
  } catch (error) {
    throw new CliError("unreachable", `Cannot reach ${url}: ${(error as Error).message}`);
  }
  const text = await response.text();
  let body: Json;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CliError("bad_answer", `Unexpected answer from ${url}: ${text.slice(0, 200)}`);
  }
  if (!response.ok) {
    throw new CliError("refused", `${body?.error ?? `HTTP ${response.status}`}`);
  }
  return { status: response.status, body };
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

function since(first: number, at: number): string {
  return `+${at - first}ms`;
}

/** `jobs describe` as text: timeline, bids, verifiers, payment, and why nobody bid. */
export function formatJob(job: Json): string {
  const lines: string[] = [`Job ${job.jobId}: ${job.state}${job.retired ? " (retired)" : ""}`];
  if (job.declined) {
    const d = job.declined;
    lines.push(`Owner: ${d.owner}; attempt ${d.attempt}; this node declined: ${d.reason}`);
    if (job.chainState) lines.push(`On chain: ${job.chainState}`);
    return lines.join("\n");
  }
  if (job.retired) {
    const s = job.summary;
    const first = s.path[0]?.at ?? 0;
    lines.push("Timeline:");
    for (const p of s.path) lines.push(`  ${since(first, p.at).padStart(9)}  ${p.state}`);
    lines.push(`Winner: ${s.winner ?? "-"}; bids: ${s.bids}; attempts: ${s.attempt}`);
    lines.push(`Paid: ${s.paid} (fee ${s.fee}); refunded: ${s.refunded}`);
    for (const slash of s.slashes) {
      lines.push(`Slashed: ${slash.worker} ${slash.amount} for ${slash.reason}`);
    }
    if (s.failure) lines.push(`Failure: ${s.failure}`);
    if (s.commitment) lines.push(`Output commitment: ${s.commitment}`);
    return lines.join("\n");
  }
  const c = job.context;
  const first = c.path[0]?.at ?? 0;
  lines.push(
    `Owner: ${c.owner}; max price ${c.spec.maxPrice}; ${c.spec.requirements.hardware}, min stake ${c.spec.requirements.minStake}`,
  );
  lines.push("Timeline:");
  for (const p of c.path) lines.push(`  ${since(first, p.at).padStart(9)}  ${p.state}`);
  const bids = Object.values(c.bids) as Json[];
  lines.push(`Bids (${bids.length}):`);
  if (bids.length > 0) {
    lines.push(
      table([
        ["  worker", "price", "eta ms", "status", "reason"],
        ...bids.map((b) => [
          `  ${b.worker}`,
          String(b.price),
          String(b.etaMs ?? "-"),
          b.status,
          b.reason ?? "",
        ]),
      ]),
    );
  }
  if (c.winner) lines.push(`Winner: ${c.winner.worker} at ${c.winner.price}`);
  if (c.verifiers.length > 0) {
    const verdicts = c.verifiers.map((v: string) =>
      `${v}: ${c.attestations[v]?.verdict ?? "pending"}`
    );
    lines.push(`Verifiers: ${verdicts.join(", ")}`);
  }
  if (c.payment) {
    lines.push(
      `Payment: ${c.payment.amount} to ${c.payment.worker} (fee ${c.payment.fee}, change ${c.payment.change})`,
    );
  }
  if (c.refunded !== "0") lines.push(`Refunded: ${c.refunded} (${c.refundReason ?? "-"})`);
  for (const slash of c.slashes) {
    lines.push(`Slashed: ${slash.worker} ${slash.amount} for ${slash.reason}`);
  }
  if (c.failure) lines.push(`Failure: ${c.failure}`);
  const m = job.market;
  if (m !== undefined && bids.length === 0) {
    lines.push(
      `Why nobody bid: ${m.knownWorkers} known workers, ${m.matchingHardware} with ${c.spec.requirements.hardware}` +
        (m.matchingStake !== null && m.matchingStake !== undefined
          ? `, ${m.matchingStake} of them with stake >= ${c.spec.requirements.minStake}`
          : "") +
        (c.declined ? `; this node declined: ${c.declined.reason}` : ""),
    );
  }
  if (m !== undefined && Object.keys(m.refused).length > 0) {
    lines.push(
      `Bids refused: ${Object.entries(m.refused).map(([r, n]) => `${r} ${n}`).join(", ")}`,
    );
  }
  if (c.declined && bids.length > 0) lines.push(`This node declined: ${c.declined.reason}`);
  return lines.join("\n");
}

/** Builds the command tree; actions report their exit code through `done`. */
function program(io: CliIo, done: (code: number) => void): Command {
  const root = new Command("ciro")
    .description("Operate a CIRO node through its HTTP API")
    .option("--node <url>", "the node's HTTP API (env CIRO_NODE)")
    .option("--data-dir <dir>", "a running node's data directory; its node.json names the URL")
    .option("--json", "print the API's JSON")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, "")),
      writeErr: (s) => io.err(s.replace(/\n$/, "")),
    })
    .showHelpAfterError("(add --help for usage)");
  const global = () => root.opts<{ node?: string; dataDir?: string; json?: boolean }>();
  const print = (value: Json, text: () => string) =>
    io.out(global().json ? JSON.stringify(value, null, 2) : text());

  const jobs = root.command("jobs").description("List, inspect, follow and cancel jobs")
    .exitOverride();
  jobs.command("list").description("Jobs the node knows, newest first")
    .option("--state <states>", "only these states, comma-separated", stateList)
    .option("--owner <id>", "only jobs this node id submitted")
    .option("--limit <n>", "jobs per page (1 to 1000)", positiveInt(1_000), 20)
    .option("--offset <n>", "skip this many", nonNegativeInt, 0)
    .action(async (o: { state?: string; owner?: string; limit: number; offset: number }) => {
      const node = await resolveNode(global(), io);
      const query = new URLSearchParams({ limit: String(o.limit), offset: String(o.offset) });
      if (o.state !== undefined) query.set("state", o.state);
      if (o.owner !== undefined) query.set("owner", o.owner);
      const { body } = await request(`${node}/jobs?${query}`, {}, io.signal);
      print(body, () => {
        const rows = body.jobs.map((j: Json) => {
          const first = j.path[0]?.at ?? 0;
          const last = j.path.at(-1)?.at ?? first;
          return [j.jobId, j.state, j.owner, String(j.bids), j.winner ?? "-", `${last - first}ms`];
        });
        const shown = `${body.offset + 1}-${body.offset + body.jobs.length} of ${body.total}`;
        const next = body.next !== null ? `; next page: --offset ${body.next}` : "";
        return [
          table([["JOB", "STATE", "OWNER", "BIDS", "WINNER", "AGE"], ...rows]),
          body.jobs.length === 0 ? `No jobs (of ${body.total})` : `${shown}${next}`,
        ].filter((s) => s !== "").join("\n");
      });
      done(EXIT.ok);
    });
  jobs.command("describe").description(
    "A job's timeline, bids with prices, verifiers and verdicts, payment, and why nobody bid",
  ).argument("<id>", "job id").action(async (id: string) => {
    const node = await resolveNode(global(), io);
    const { body } = await request(`${node}/jobs/${encodeURIComponent(id)}`, {}, io.signal);
    print(body, () => formatJob(body));
    done(EXIT.ok);
  });
  jobs.command("cancel").description("Cancel a job (its client only, before assignment)")
    .argument("<id>", "job id").action(async (id: string) => {
      const node = await resolveNode(global(), io);
      const { body } = await request(
        `${node}/jobs/${encodeURIComponent(id)}`,
        { method: "DELETE" },
        io.signal,
      );
      print(body, () => `Cancel requested for job ${id}`);
      done(EXIT.ok);
    });
  jobs.command("output").description("A settled job's verified output")
    .argument("<id>", "job id").action(async (id: string) => {
      const node = await resolveNode(global(), io);
      const url = `${node}/jobs/${encodeURIComponent(id)}/output`;
      let response: Response;
      try {
        response = await fetch(url, { signal: io.signal ?? AbortSignal.timeout(30_000) });
      } catch (error) {
        throw new CliError("unreachable", `Cannot reach ${url}: ${(error as Error).message}`);
      }
      const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      if (response.status === 409 || response.status === 410) {
        io.err(body.error);
        done(EXIT.notSettled);
        return;
      }
      if (!response.ok) throw new CliError("refused", body.error ?? `HTTP ${response.status}`);
      print(body, () => JSON.stringify(body.output));
      done(EXIT.ok);
    });
  jobs.command("watch").description("Follow a job's phases live until it is final")
    .argument("<id>", "job id").action(async (id: string) => {
      const node = await resolveNode(global(), io);
      const state = await watch(`${node}/jobs/${encodeURIComponent(id)}/events`, io, global().json);
      done(state === "settled" ? EXIT.ok : EXIT.notSettled);
    });
  root.command("peers").description("Peers the node is connected to and tracks").action(
    async () => {
      const node = await resolveNode(global(), io);
      const { body } = await request(`${node}/peers`, {}, io.signal);
      const connected = new Set<string>(body.connected);
      print(body, () =>
        table([
          ["PEER", "STATE", "SCORE", "ROLES", "HARDWARE", "CONNECTED", "ADDRESS"],
          ...body.tracked.map((p: Json) => [
            p.peer,
            p.state,
            String(p.score),
            p.roles.join(",") || "-",
            p.hardware ?? "-",
            connected.has(p.peer) ? "yes" : "no",
            p.addresses?.[0] ?? "-",
          ]),
        ]));
      done(EXIT.ok);
    },
  );
  root.command("status").description("The node's health: roles, peers, jobs, stake").action(
    async () => {
      const node = await resolveNode(global(), io);
      const { body } = await request(`${node}/health`, {}, io.signal);
      print(body, () => {
        const lines = [
          `Node ${body.id} (${body.roles.join(", ")}), up ${Math.round(body.uptimeMs / 1000)} s`,
          `Peers ${body.peers}, verifiers ${body.verifiers}, jobs ${body.jobs.total} (${body.jobs.open} open)`,
        ];
        if (body.worker) {
          const w = body.worker;
          lines.push(
            `Worker: stake ${w.stake ?? "?"}, reputation ${
              w.reputation ?? "?"
            }, earnings ${w.earnings}, capacity ${w.capacity ?? "?"}`,
          );
        }
        return lines.join("\n");
      });
      done(EXIT.ok);
    },
  );
  root.command("completion").description("Print a bash completion script").action(() => {
    io.out(COMPLETION);
    done(EXIT.ok);
  });
  for (const command of [root, ...root.commands, ...jobs.commands]) command.exitOverride();
  return root;
}

/** Follows `url` (server-sent events); prints each update; resolves with the final state. */
async function watch(url: string, io: CliIo, json: boolean | undefined): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, io.signal ? { signal: io.signal } : {});
  } catch (error) {
    throw new CliError("unreachable", `Cannot reach ${url}: ${(error as Error).message}`);
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new CliError("refused", body.error ?? `HTTP ${response.status}`);
  }
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let first: number | undefined;
  let final = "unknown";
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event === undefined || data === undefined) continue;
        const update = JSON.parse(data);
        if (event === "end") {
          final = update.state;
          if (json) io.out(JSON.stringify({ type: "end", ...update }));
          else io.out(`Job ${update.jobId} ended: ${update.state}`);
          return final;
        }
        if (json) {
          io.out(JSON.stringify(update));
          continue;
        }
        first ??= update.at;
        const when = `+${update.at - first!}ms`.padStart(9);
        const reason = update.reason ? `: ${update.reason}` : "";
        const detail = update.detail && Object.keys(update.detail).length > 0
          ? ` (${Object.entries(update.detail).map(([k, v]) => `${k} ${v}`).join(", ")})`
          : "";
        io.out(
          event === "phase"
            ? `${when}  ${update.state}${reason}${detail}`
            : `${when}  ${event}${reason}${detail}`,
        );
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  throw new CliError("bad_answer", `The event stream ended before the job did (last: ${final})`);
}

const COMPLETION = `# bash completion for deno task ciro
_ciro() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  case "$prev" in
    ciro) COMPREPLY=($(compgen -W "jobs peers status completion --node --data-dir --json --help" -- "$cur")) ;;
    jobs) COMPREPLY=($(compgen -W "list describe cancel output watch --help" -- "$cur")) ;;
    --state) COMPREPLY=($(compgen -W "${JOB_STATES.join(" ")}" -- "$cur")) ;;
    --data-dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
    *) COMPREPLY=($(compgen -W "--state --owner --limit --offset --help" -- "$cur")) ;;
  esac
}
complete -F _ciro ciro`;

/** Runs `deno task ciro` with `args`; resolves with the exit code. */
export async function main(args: readonly string[], io?: CliIo): Promise<number> {
  const out: CliIo = io ?? {
    out: (s) => console.log(s),
    err: (s) => console.error(s),
    env: Deno.env.toObject(),
  };
  let code: number | undefined;
  const root = program(out, (c) => code = c);
  try {
    await root.parseAsync([...args], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Asked-for help exits 0; everything else commander refuses (a missing subcommand or
      // argument, an unknown option, a bad value) is bad usage, already explained on stderr.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (error instanceof CliError) {
      out.err(error.message);
      return error.exitCode;
    }
    out.err(`Failed: ${(error as Error).message}`);
    return EXIT.failed;
  }
  if (code === undefined) {
    // A bare group (`ciro` or `ciro jobs`) without a subcommand.
    out.err(root.helpInformation().trimEnd());
    return EXIT.usage;
  }
  return code;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
