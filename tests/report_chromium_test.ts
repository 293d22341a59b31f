/**
 * The HTML timeline of a recording renders in headless Chromium (Debian's `chromium` package)
 * and shows every job. Skipped, with a message, when `/usr/bin/chromium` is absent
 * (`apt-get install -y chromium`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { runDemo } from "../runtime/demo/demo.ts";
import { MACHINE_VERSIONS } from "../runtime/durability/journal.ts";
import { readRecording, type Recording } from "../runtime/durability/recording.ts";
import { writeReports } from "../runtime/research/report.ts";

const CHROMIUM = "/usr/bin/chromium";
const present = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!present) {
  console.warn(
    `Skipping the headless Chromium test: ${CHROMIUM} is absent (apt-get install -y chromium)`,
  );
}

async function recording(tmp: string): Promise<Recording> {
  const versions =
    `job${MACHINE_VERSIONS.job}-bid${MACHINE_VERSIONS.bid}-peer${MACHINE_VERSIONS.peer}`;
  const fixture = new URL(`./fixtures/recordings/demo-3-jobs.${versions}.jsonl`, import.meta.url)
    .pathname;
  try {
    return await readRecording(fixture);
  } catch {
    // No fixture for these machine versions yet: make a recording.
  }
  const path = `${tmp}/recording.jsonl`;
  await runDemo({ jobs: 3, workers: 4, verifiers: 2, ledgerPath: ":memory:", recordPath: path });
  return readRecording(path);
}

Deno.test({
  name: "renderHtml() page renders in headless Chromium and shows every job",
  ignore: !present,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "report-chromium-" });
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 60_000);
    try {
      const rec = await recording(tmp);
      const files = await writeReports(rec, `${tmp}/out`);
      const page = files.find((f) => f.endsWith(".html"))!;
      const jobIds = [
        ...new Set(
          rec.entries.filter((e) => e.event.type === "job.submit").map((e) => e.target.slice(4)),
        ),
      ];
      assert.ok(jobIds.length > 0);
      const output = await new Deno.Command(CHROMIUM, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
          `--user-data-dir=${tmp}/profile`,
          "--dump-dom",
          `file://${page}`,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: controller.signal,
      }).output();
      const dom = new TextDecoder().decode(output.stdout);
      assert.equal(
        output.success,
        true,
        `chromium failed: ${new TextDecoder().decode(output.stderr).slice(-2000)}`,
      );
      // The inline script ran: the SVG timeline holds one row per job.
      assert.match(dom, new RegExp(`data-rendered="${jobIds.length}"`));
      assert.match(dom, /<svg[^>]*id="timeline-svg"/);
      for (const id of jobIds) {
        assert.match(dom, new RegExp(`<g class="job" data-job="${id}">`), `row of ${id}`);
      }
      assert.match(dom, /class="phase bidding"/);
    } finally {
      clearTimeout(timer);
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
