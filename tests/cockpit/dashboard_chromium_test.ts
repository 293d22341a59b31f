/**
 * The dashboard (`/ui`) in headless Chromium (Debian's `chromium`) against a running in-process
 * market: it shows every job with its state, the timeline chart (uPlot, a time axis), the peers
 * and the ledger's money. Skipped, with a message, when `/usr/bin/chromium` is absent. Set
 * `CIRO_SCREENSHOT_DIR` to keep the screenshot it takes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { matmulSpec, startMarket } from "./_market.ts";

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
    `Skipping the dashboard's Chromium test: ${CHROMIUM} is absent (apt-get install -y chromium)`,
  );
}

function chromium(tmp: string, extra: string[], url: string) {
  return new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      `--user-data-dir=${tmp}/profile`,
      "--window-size=1400,1000",
      "--virtual-time-budget=8000",
      ...extra,
      url,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(90_000),
  }).output();
}

Deno.test({
  name: "The dashboard shows jobs with states, a timeline, peers and money in headless Chromium",
  ignore: !present,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const tmp = await Deno.makeTempDir({ prefix: "ciro-dashboard-" });
    const market = await startMarket({ workers: [{}, {}] });
    try {
      for (const id of ["dash-1", "dash-2"]) {
        market.client.submitJob({ spec: matmulSpec(), jobId: id });
        assert.equal(await market.finished(id), "settled");
      }
      market.client.submitJob({
        spec: matmulSpec({ requirements: { hardware: "gpu", minStake: 0n } }),
        jobId: "dash-gpu",
      });
      assert.equal(await market.finished("dash-gpu"), "expired");
      const totals = await market.client.chainTotals();
      const output = await chromium(tmp, ["--dump-dom"], `${market.url}/ui/`);
      const dom = new TextDecoder().decode(output.stdout);
      assert.ok(output.success, new TextDecoder().decode(output.stderr).slice(-2_000));
      assert.match(dom, /<body data-ready="true">/, "the page never loaded its data");
      assert.match(dom, /<span id="node-id">client<\/span>/);
      for (
        const [id, state] of [["dash-1", "settled"], ["dash-2", "settled"], [
          "dash-gpu",
          "expired",
        ]] as const
      ) {
        assert.match(dom, new RegExp(`<tr data-job="${id}" data-state="${state}">`), id);
      }
      // The chart: uPlot drew into the timeline, with a time axis and the three series.
      assert.match(dom, /<div id="timeline" data-points="\d+">/);
      assert.ok(Number(/data-points="(\d+)"/.exec(dom)![1]) >= 3);
      assert.match(dom, /class="uplot/);
      assert.match(dom, /<div class="u-label">Time<\/div>/);
      for (const series of ["open", "settled", "ended otherwise"]) {
        assert.match(dom, new RegExp(`<div class="u-label">${series}</div>`), series);
      }
      assert.equal(dom.match(/<div class="u-axis"/g)?.length, 2);
      for (const peer of ["w1", "w2", "v1"]) {
        assert.match(dom, new RegExp(`<tr data-peer="${peer}" data-state="\\w+">`), peer);
      }
      assert.ok(totals.paid > 0n);
      assert.match(dom, new RegExp(`<dd data-key="paid">${totals.paid}</dd>`));
      assert.match(dom, new RegExp(`<dd data-key="escrowed">${totals.escrowed}</dd>`));
      assert.match(dom, /<dd data-key="shown">3 of 3<\/dd>/);
      const dir = Deno.env.get("CIRO_SCREENSHOT_DIR") ?? tmp;
      const shot = await chromium(tmp, [`--screenshot=${dir}/dashboard.png`], `${market.url}/ui/`);
      assert.ok(shot.success);
      assert.ok((await Deno.stat(`${dir}/dashboard.png`)).size > 10_000);
    } finally {
      await market.stop();
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
