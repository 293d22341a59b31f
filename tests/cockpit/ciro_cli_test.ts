import assert from "node:assert/strict";
import { main } from "../../runtime/ops/ciro/main.ts";
import { matmulSpec, startMarket } from "./_market.ts";

async function ciro(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    env: {},
    signal: AbortSignal.timeout(20_000),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

Deno.test("ciro jobs list, describe, output, watch and status against a running market", async () => {
  const market = await startMarket({ workers: [{}, { minPrice: 1_000n }] });
  const node = ["--node", market.url];
  try {
    market.client.submitJob({ spec: matmulSpec(), jobId: "cli-1" });
    const watched = await ciro(...node, "jobs", "watch", "cli-1");
    assert.equal(watched.code, 0, watched.err);
    const lines = watched.out.split("\n");
    assert.match(lines[0]!, /^ +\+0ms {2}announced$/);
    assert.ok(
      lines.some((l) => /^ +\+\d+ms {2}settled: paid \(worker w1, amount \d+, fee \d+\)$/.test(l)),
      watched.out,
    );
    assert.equal(lines.at(-1), "Job cli-1 ended: settled");

    const list = await ciro(...node, "jobs", "list", "--state", "settled");
    assert.equal(list.code, 0);
    assert.match(
      list.out,
      /^JOB +STATE +OWNER +BIDS +WINNER +AGE\ncli-1 +settled +client +1 +w1 +\d+ms\n1-1 of 1$/,
    );

    const described = await ciro(...node, "jobs", "describe", "cli-1");
    assert.equal(described.code, 0);
    // The winning bid's price; the payment is less the chosen verifiers' share.
    const price = market.client.job("cli-1")!.context.winner!.price;
    const paid = market.client.job("cli-1")!.context.payment!.amount;
    assert.match(described.out, /^Job cli-1: settled\n/);
    assert.match(described.out, /Timeline:\n +\+0ms {2}announced\n/);
    assert.match(described.out, new RegExp(`\\n +w1 +${price} +\\d+ +accepted\\n`));
    assert.match(described.out, /\nVerifiers: v1: valid\n/);
    assert.match(
      described.out,
      new RegExp(`\\nPayment: ${paid} to w1 \\(fee \\d+, change \\d+\\)`),
    );

    const output = await ciro(...node, "jobs", "output", "cli-1");
    assert.deepEqual({ code: output.code, out: output.out }, { code: 0, out: "[[19,22],[43,50]]" });
    const json = await ciro(...node, "--json", "jobs", "output", "cli-1");
    assert.deepEqual(JSON.parse(json.out).output, [[19, 22], [43, 50]]);

    const status = await ciro(...node, "status");
    assert.equal(status.code, 0);
    assert.match(
      status.out,
      /^Node client \(client\), up \d+ s\nPeers \d+, verifiers 1, jobs 1 \(0 open\)$/,
    );
    const workerStatus = await ciro("--node", market.workerServers[0]!.url, "status");
    assert.match(
      workerStatus.out,
      new RegExp(`\\nWorker: stake 100, reputation \\d+, earnings ${paid}, capacity 2$`),
    );
    const peers = await ciro(...node, "peers");
    assert.equal(peers.code, 0);
    assert.match(peers.out, /^PEER +STATE +SCORE +ROLES +HARDWARE +CONNECTED +ADDRESS\n/);
    assert.match(peers.out, /\nw1 +\w+ +\d+ +worker +cpu +no +-/);
  } finally {
    await market.stop();
  }
});

Deno.test("ciro says why nobody bid, exits 3 for a job that did not settle, and cancels", async () => {
  const market = await startMarket({ workers: [{ minPrice: 1_000n }] });
  const node = ["--node", market.url];
  try {
    market.client.submitJob({ spec: matmulSpec(), jobId: "nobody" });
    const watched = await ciro(...node, "jobs", "watch", "nobody");
    assert.equal(watched.code, 3);
    assert.equal(watched.out.split("\n").at(-1), "Job nobody ended: expired");
    const described = await ciro(...node, "jobs", "describe", "nobody");
    assert.match(described.out, /\nBids \(0\):\n/);
    assert.match(
      described.out,
      /\nWhy nobody bid: 1 known workers, 1 with cpu, 1 of them with stake >= 10$/,
    );
    // A job asking more stake than any worker holds: the stake read from the chain says why.
    market.client.submitJob({
      spec: matmulSpec({ requirements: { hardware: "cpu", minStake: 1_000n } }),
      jobId: "rich",
    });
    assert.equal(await market.finished("rich"), "expired");
    const rich = await ciro(...node, "jobs", "describe", "rich");
    assert.match(
      rich.out,
      /\nWhy nobody bid: 1 known workers, 1 with cpu, 0 of them with stake >= 1000$/,
    );
    const json = JSON.parse((await ciro(...node, "--json", "jobs", "describe", "rich")).out);
    assert.deepEqual(
      [json.market.matchingHardware, json.market.matchingStake, json.market.stakeChecked],
      [1, 0, 1],
    );
    const worker = await ciro("--node", market.workerServers[0]!.url, "jobs", "describe", "nobody");
    assert.match(worker.out, /this node declined: price_below_floor/);
    const noOutput = await ciro(...node, "jobs", "output", "nobody");
    assert.equal(noOutput.code, 3);
    assert.equal(noOutput.err, 'Job "nobody" has no verified output: it is expired');

    market.client.submitJob({ spec: matmulSpec({ bidWindowMs: 10_000 }), jobId: "to-cancel" });
    const cancel = await ciro(...node, "jobs", "cancel", "to-cancel");
    assert.deepEqual(cancel, { code: 0, out: "Cancel requested for job to-cancel", err: "" });
    assert.equal(await market.finished("to-cancel"), "cancelled");
    const again = await ciro(...node, "jobs", "cancel", "to-cancel");
    assert.deepEqual(again, {
      code: 1,
      out: "",
      err: 'Cannot cancel job "to-cancel": it is cancelled',
    });
    const missing = await ciro(...node, "jobs", "describe", "nope");
    assert.deepEqual(missing, { code: 1, out: "", err: 'Unknown job "nope"' });
  } finally {
    await market.stop();
  }
});

Deno.test("ciro exits 2 for bad usage, 1 when the node cannot be reached, 0 for --help", async () => {
  assert.equal((await ciro("--help")).code, 0);
  for (const command of ["jobs", "peers", "status", "completion"]) {
    const help = await ciro(command, "--help");
    assert.equal(help.code, 0, command);
    assert.match(help.out, new RegExp(`^Usage: ciro ${command}`));
  }
  for (const command of ["list", "describe", "cancel", "output", "watch"]) {
    assert.equal((await ciro("jobs", command, "--help")).code, 0, command);
  }
  const cases: string[][] = [
    [],
    ["jobs"],
    ["jobs", "describe"],
    ["jobs", "list", "--limit", "abc"],
    ["jobs", "list", "--state", "done"],
    ["jobs", "list", "--colour"],
    ["fly"],
    ["jobs", "list"],
  ];
  for (const args of cases) {
    const result = await ciro(...args);
    assert.equal(result.code, 2, args.join(" "));
    assert.ok(result.err.length > 0 && !result.err.includes("    at "), result.err);
  }
  const bad = await ciro("jobs", "list", "--limit", "abc");
  assert.match(
    bad.err,
    /^error: option '--limit <n>' argument 'abc' is invalid\. must be an integer in \[1, 1000\]/,
  );
  const unreachable = await ciro("--node", "http://127.0.0.1:9", "status");
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.err, /^Cannot reach http:\/\/127\.0\.0\.1:9\/health: /);
  const completion = await ciro("completion");
  assert.match(completion.out, /complete -F _ciro ciro$/);
});
