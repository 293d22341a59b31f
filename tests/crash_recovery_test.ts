/**
 * Crash recovery: a process hosting durable nodes (`tests/fixtures/crash_node.ts`) is killed
 * with SIGKILL in the middle of bidding, and in the middle of execution; restarted on the same
 * data directories and ledger file, every node restores its actors, no journal entry whose
 * delivery had begun is lost, and every open job is resumed (or re-auctioned) to a final
 * state.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SqliteJournal } from "../runtime/durability/journal.ts";
import { processMarketLock } from "./_exclusive.ts";

const fixture = new URL("./fixtures/crash_node.ts", import.meta.url).pathname;
const FINAL = ["settled", "expired", "cancelled", "refunded", "failed"];

type Line = Record<string, unknown> & { type: string };

/** A running fixture process whose stdout is read as JSON lines. */
class Run {
  readonly lines: Line[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #ended = false;

  constructor(dir: string, args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", fixture, "--dir", dir, ...args],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    this.#reader = this.#child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** Reads lines until `predicate` holds for one (returned), within `ms`. */
  async until(predicate: (line: Line) => boolean, ms: number, what: string): Promise<Line> {
    const deadline = Date.now() + ms;
    let index = 0;
    while (true) {
      for (; index < this.lines.length; index++) {
        if (predicate(this.lines[index]!)) return this.lines[index]!;
      }
      if (this.#ended) throw new Error(`The fixture exited before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left)),
      ]);
      clearTimeout(timer);
      if (chunk === "timeout") continue;
      if (chunk.done) {
        this.#ended = true;
        continue;
      }
      this.#buffer += chunk.value;
      const parts = this.#buffer.split("\n");
      this.#buffer = parts.pop()!;
      for (const part of parts) if (part.trim() !== "") this.lines.push(JSON.parse(part));
    }
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }

  async close(): Promise<void> {
    this.kill();
    await this.#reader.cancel().catch(() => {});
    await this.#child.status;
  }
}

/** The highest seq each node reported delivered. */
function deliveredSeqs(lines: readonly Line[]): Map<string, number> {
  const max = new Map<string, number>();
  for (const l of lines) {
    if (l.type !== "delivered") continue;
    const node = l["node"] as string;
    max.set(node, Math.max(max.get(node) ?? 0, l["seq"] as number));
  }
  return max;
}

async function crashAndRecover(
  args: string[],
  killWhen: (line: Line) => boolean,
  what: string,
): Promise<{ before: Run; after: Run; done: Line; recovered: Map<string, Line> }> {
  const dir = await Deno.makeTempDir({ prefix: "crash-test-" });
  const before = new Run(dir, args);
  let after: Run | undefined;
  try {
    await before.until(killWhen, 30_000, what);
    before.kill();
    await before.close();
    // No lost entries: every delivery the process reported is in its node's journal.
    for (const [node, seq] of deliveredSeqs(before.lines)) {
      const journal = SqliteJournal.open(`${dir}/${node}/journal.sqlite`, { checkpointEvery: 0 });
      try {
        assert.ok(
          journal.lastSeq >= seq,
          `${node}: journal ends at seq ${journal.lastSeq}, seq ${seq} was delivered`,
        );
        let expected = 1;
        for (const entry of journal.entries()) assert.equal(entry.seq, expected++);
      } finally {
        journal.close();
      }
    }
    after = new Run(dir, args);
    const done = await after.until((l) => l.type === "done", 45_000, "every job to finish");
    const recovered = new Map(
      after.lines.filter((l) => l.type === "recovered").map((l) => [l["node"] as string, l]),
    );
    return { before, after, done, recovered };
  } finally {
    await before.close();
    await after?.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A bid the client took: alone, or with others that came in the same turn (a batch). */
const BID_EVENTS: readonly unknown[] = ["bid.received", "bids.received"];

Deno.test("a node killed in the middle of bidding resumes its auctions", async () => {
  await using _market = await processMarketLock();
  const { before, done, recovered } = await crashAndRecover(
    ["--jobs", "2", "--bid-window-ms", "4000"],
    (l) => l.type === "delivered" && l["node"] === "client" && BID_EVENTS.includes(l["event"]),
    "the client to accept a bid",
  );
  // Killed while bidding: no client job had got past it.
  const clientStates = before.lines.filter((l) => l.type === "delivered" && l["node"] === "client")
    .map((l) => l["state"]);
  assert.ok(!clientStates.includes("assigned"), "the kill came after the bidding");
  const client = recovered.get("client")!;
  assert.ok((client["restored"] as number) >= 2, JSON.stringify(client));
  const jobs = done["jobs"] as Record<string, { state: string; firstAt: number; path: string }>;
  assert.deepEqual(Object.keys(jobs).sort(), ["job-1", "job-2"]);
  for (const [id, job] of Object.entries(jobs)) {
    assert.ok(FINAL.includes(job.state), `${id} ended in ${job.state}`);
  }
  // The job whose bid was journaled before the kill picks its winner from it and settles.
  const bidOn = before.lines.find((l) =>
    l.type === "delivered" && l["node"] === "client" && BID_EVENTS.includes(l["event"])
  )!["actor"] as string;
  assert.equal(jobs[bidOn.slice(4)]!.state, "settled", `${bidOn} settled: ${JSON.stringify(jobs)}`);
});

Deno.test("a worker killed in the middle of execution resumes it (or the job is re-auctioned)", async () => {
  await using _market = await processMarketLock();
  const { done, recovered } = await crashAndRecover(
    ["--jobs", "1", "--bid-window-ms", "300", "--exec-ms", "3000"],
    (l) => l.type === "exec.started",
    "an execution to start",
  );
  const resumed = [...recovered.values()].reduce((n, l) => n + (l["resumed"] as number), 0);
  const jobs = done["jobs"] as Record<string, { state: string; attempt: number }>;
  const job = jobs["job-1"]!;
  assert.ok(FINAL.includes(job.state), `job-1 ended in ${job.state}`);
  assert.ok(
    resumed >= 1 || job.attempt > 1,
    `the execution was resumed (${resumed}) or the job re-auctioned (attempt ${job.attempt})`,
  );
  assert.equal(job.state, "settled");
});
