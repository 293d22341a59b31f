// The node's dashboard: polls the node's own HTTP API (same origin) and draws with uPlot.
"use strict";

const FINAL = ["settled", "expired", "cancelled", "refunded", "failed"];
const STATES = [
  "announced",
  "bidding",
  "assigned",
  "executing",
  "reassigning",
  "verifying",
  "settling",
  "disputed",
  "refunding",
  ...FINAL,
];
const POLL_MS = 2000;
let chart = null;
let selected = null;
let stateFilter = "";

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

function stateBadge(state) {
  const kind = FINAL.includes(state) ? state : "open";
  return el("span", { class: `state state-${kind}` }, state);
}

function pairs(target, entries) {
  target.replaceChildren();
  for (const [key, value] of entries) {
    target.append(el("dt", {}, key), el("dd", { "data-key": key }, value));
  }
}

async function get(path) {
  const response = await fetch(path, { cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function renderHealth(health) {
  $("node-id").textContent = health.id;
  $("node-summary").textContent =
    `${health.roles.join(", ")} · up ${Math.round(health.uptimeMs / 1000)} s · ` +
    `${health.peers} peers · ${health.verifiers} verifiers`;
  if (health.worker) {
    const w = health.worker;
    pairs($("worker"), [
      ["stake", w.stake ?? "?"],
      ["reputation", w.reputation ?? "?"],
      ["earnings", w.earnings],
      ["capacity", w.capacity ?? "?"],
    ]);
  }
}

function renderMoney(money) {
  pairs($("money"), [
    ["escrowed", money.escrowed],
    ["paid", money.paid],
    ["fees", money.fees],
    ["refunded", money.refunded],
    ["locked", money.locked],
    ["staked", money.staked],
    ["slashed", money.slashed],
  ]);
}

function renderJobs(page) {
  const counts = {};
  for (const job of page.jobs) counts[job.state] = (counts[job.state] ?? 0) + 1;
  pairs($("job-counts"), [
    ["shown", `${page.jobs.length} of ${page.total}`],
    ...Object.entries(counts).sort(),
  ]);
  const body = $("jobs").querySelector("tbody");
  body.replaceChildren(...page.jobs.map((job) => {
    const first = job.path[0]?.at ?? 0;
    const last = job.path.at(-1)?.at ?? first;
    const row = el(
      "tr",
      { "data-job": job.jobId, "data-state": job.state },
      el("td", {}, job.jobId),
      el("td", {}, stateBadge(job.state)),
      el("td", {}, job.owner),
      el("td", {}, job.bids),
      el("td", {}, job.winner ?? "–"),
      el("td", {}, `${last - first} ms`),
    );
    row.addEventListener("click", () => {
      selected = job.jobId;
      refreshJob();
    });
    return row;
  }));
  $("jobs-more").textContent = page.next !== null
    ? `${page.total - page.jobs.length} more not shown`
    : "";
}

/** Jobs by state over time, from the jobs' own paths: open, settled, ended otherwise. */
function timelineData(jobs) {
  const events = [];
  for (const job of jobs) {
    job.path.forEach((entry, i) =>
      events.push({ at: entry.at, job: job.jobId, state: entry.state, first: i === 0 })
    );
  }
  events.sort((a, b) => a.at - b.at);
  const now = {};
  const xs = [], open = [], settled = [], other = [];
  for (const e of events) {
    now[e.job] = e.state;
    const t = e.at / 1000;
    const values = Object.values(now);
    const row = [
      values.filter((s) => !FINAL.includes(s)).length,
      values.filter((s) => s === "settled").length,
      values.filter((s) => FINAL.includes(s) && s !== "settled").length,
    ];
    if (xs.length > 0 && xs[xs.length - 1] === t) {
      open[open.length - 1] = row[0];
      settled[settled.length - 1] = row[1];
      other[other.length - 1] = row[2];
    } else {
      xs.push(t);
      open.push(row[0]);
      settled.push(row[1]);
      other.push(row[2]);
    }
  }
  return [xs, open, settled, other];
}

function renderTimeline(jobs) {
  const data = timelineData(jobs);
  const target = $("timeline");
  target.setAttribute("data-points", String(data[0].length));
  if (chart === null) {
    chart = new uPlot(
      {
        width: Math.max(600, target.clientWidth - 16),
        height: 220,
        scales: { x: { time: true } },
        axes: [{ label: "time" }, { label: "jobs" }],
        series: [
          {},
          {
            label: "open",
            stroke: "#d39e00",
            width: 2,
            points: { show: false },
            paths: uPlot.paths.stepped({ align: 1 }),
          },
          {
            label: "settled",
            stroke: "#2b8a3e",
            width: 2,
            points: { show: false },
            paths: uPlot.paths.stepped({ align: 1 }),
          },
          {
            label: "ended otherwise",
            stroke: "#c92a2a",
            width: 2,
            points: { show: false },
            paths: uPlot.paths.stepped({ align: 1 }),
          },
        ],
      },
      data,
      target,
    );
  } else {
    chart.setData(data);
  }
}

function renderPeers(peers) {
  const connected = new Set(peers.connected);
  const body = $("peers").querySelector("tbody");
  body.replaceChildren(...peers.tracked.map((p) =>
    el(
      "tr",
      { "data-peer": p.peer, "data-state": p.state },
      el("td", {}, p.peer),
      el("td", {}, p.state),
      el("td", {}, p.score),
      el("td", {}, p.roles.join(", ") || "–"),
      el("td", {}, p.hardware ?? "–"),
      el("td", {}, connected.has(p.peer) ? "yes" : "no"),
    )
  ));
}

async function refreshJob() {
  if (selected === null) return;
  const job = await get(`/jobs/${encodeURIComponent(selected)}`);
  $("job-title").textContent = `${job.jobId}: ${job.state}`;
  const path = job.retired ? job.summary.path : job.context.path;
  const first = path[0]?.at ?? 0;
  $("job-path").replaceChildren(
    ...path.map((p) => el("li", {}, `+${p.at - first} ms  ${p.state}`)),
  );
  const c = job.context;
  const detail = job.retired ? job.summary : {
    maxPrice: c.spec.maxPrice,
    bids: Object.values(c.bids).map((b) =>
      `${b.worker} ${b.price} ${b.status}${b.reason ? ` (${b.reason})` : ""}`
    ),
    winner: c.winner,
    verifiers: c.verifiers.map((v) => `${v}: ${c.attestations[v]?.verdict ?? "pending"}`),
    payment: c.payment,
    refunded: c.refunded,
    slashes: c.slashes,
    declined: c.declined,
    market: job.market,
  };
  $("job-detail").textContent = JSON.stringify(detail, null, 2);
}

async function refresh() {
  try {
    const query = new URLSearchParams({ limit: "200" });
    if (stateFilter !== "") query.set("state", stateFilter);
    const [health, page, all, peers, money] = await Promise.all([
      get("/health"),
      get(`/jobs?${query}`),
      get("/jobs?limit=1000"),
      get("/peers"),
      get("/money"),
    ]);
    renderHealth(health);
    renderJobs(page);
    renderTimeline(all.jobs);
    renderPeers(peers);
    renderMoney(money);
    await refreshJob();
    $("error").hidden = true;
    document.body.setAttribute("data-ready", "true");
  } catch (error) {
    $("error").hidden = false;
    $("error").textContent = `Cannot reach the node: ${error.message}`;
  }
}

for (const state of STATES) $("state-filter").append(el("option", { value: state }, state));
$("state-filter").addEventListener("change", (e) => {
  stateFilter = e.target.value;
  refresh();
});
refresh();
setInterval(refresh, POLL_MS);
