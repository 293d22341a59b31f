import assert from "node:assert/strict";
import { createLibp2pHost, type Libp2pHost } from "./libp2p_host.ts";
import type { MessageOf, TOPICS } from "./messages.ts";
import {
  decodeSnapshot,
  decodeSnapshotRequest,
  encodeSnapshot,
  mergeSnapshots,
  requestSnapshots,
  serveSnapshots,
  SNAPSHOT_PROTOCOL,
  type SnapshotData,
} from "./snapshot_protocol.ts";

type Job = MessageOf<typeof TOPICS.jobs>;
type Bid = MessageOf<typeof TOPICS.bids>;

function job(jobId: string, attempt = 1): Job {
  return {
    type: "job.announce",
    jobId,
    owner: "client-1",
    attempt,
    bidWindowEndsAt: 5_000,
    spec: {
      kind: { type: "builtin", name: "matmul" },
      inputCommitment: "ab".repeat(32),
      requirements: { hardware: "cpu", minStake: 10n },
      maxPrice: 1_000_000_000_000_000_000_000n,
      bidWindowMs: 1_000,
      executionMs: 10_000,
      verificationMs: 10_000,
      maxAttempts: 3,
      verifierCount: 1,
    },
  };
}

function bid(bidId: string, jobId: string): Bid {
  return {
    type: "bid.submit",
    bidId,
    jobId,
    worker: "worker-1",
    price: 500n,
    etaMs: 2_000,
    stake: 100n,
    reputation: 700,
    hardware: "cpu",
  };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

Deno.test("encodeSnapshot() and decodeSnapshot() round-trip amounts as bigint", () => {
  const data: SnapshotData = { jobs: [job("j1")], bids: [bid("b1", "j1")] };
  const decoded = decodeSnapshot(encodeSnapshot(data));
  assert.deepEqual(decoded, data);
  assert.equal(typeof decoded.jobs[0]?.spec.maxPrice, "bigint");
});

Deno.test("decodeSnapshot() names the fault of an invalid snapshot", () => {
  const bad = new TextEncoder().encode(
    JSON.stringify(
      { jobs: [{ ...job("j1"), jobId: "" }], bids: [] },
      (_key, value) => typeof value === "bigint" ? value.toString() : value,
    ),
  );
  assert.throws(() => decodeSnapshot(bad), {
    name: "SnapshotError",
    message: /^Invalid snapshot: jobs\.0\.jobId: /,
  });
  assert.throws(() => decodeSnapshot(new Uint8Array([0xff])), {
    name: "SnapshotError",
    code: "malformed",
    message: /^Invalid snapshot: Malformed JSON: not UTF-8/,
  });
  const extra = new TextEncoder().encode(JSON.stringify({ jobs: [], bids: [], more: 1 }));
  assert.throws(() => decodeSnapshot(extra), { name: "SnapshotError", code: "unknown_field" });
  const deep = new TextEncoder().encode(
    `{"jobs":${"[".repeat(4000)}${"]".repeat(4000)},"bids":[]}`,
  );
  assert.throws(() => decodeSnapshot(deep), { name: "SnapshotError", code: "too_deep" });
});

Deno.test("decodeSnapshotRequest() accepts {} and nothing else", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  decodeSnapshotRequest(encode("{}"));
  assert.throws(() => decodeSnapshotRequest(encode('{"since":1}')), { code: "unknown_field" });
  assert.throws(() => decodeSnapshotRequest(encode("[]")), { code: "invalid" });
  assert.throws(() => decodeSnapshotRequest(encode(`{}${" ".repeat(100)}`)), {
    code: "too_large",
  });
});

Deno.test("mergeSnapshots() dedupes jobs by jobId (latest attempt) and bids by bidId (withdrawal wins)", () => {
  const withdraw: Bid = { type: "bid.withdraw", bidId: "b1", jobId: "j1", worker: "worker-1" };
  const merged = mergeSnapshots([
    { jobs: [job("j1"), job("j2")], bids: [bid("b1", "j1"), bid("b2", "j2")] },
    { jobs: [job("j1", 2), job("j3")], bids: [withdraw, bid("b2", "j2")] },
    { jobs: [job("j1")], bids: [bid("b1", "j1")] },
  ]);
  assert.deepEqual(merged.jobs.map((j) => [j.jobId, j.attempt]), [["j1", 2], ["j2", 1], ["j3", 1]]);
  assert.deepEqual(merged.bids.map((b) => [b.bidId, b.type]), [["b1", "bid.withdraw"], [
    "b2",
    "bid.submit",
  ]]);
});

Deno.test({
  name:
    "requestSnapshots() asks a third of the peers round robin and merges what a joining node gets",
  fn: async () => {
    const hosts: Libp2pHost[] = [];
    try {
      // Six serving peers with overlapping books; one of them answers with garbage.
      for (let i = 0; i < 6; i++) {
        const host = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], heartbeatMs: 0 });
        hosts.push(host);
        if (i === 5) {
          host.handle(
            SNAPSHOT_PROTOCOL,
            () => Promise.resolve(new TextEncoder().encode('{"jobs":[{}]}')),
          );
        } else {
          serveSnapshots(host, () => ({
            jobs: [job(`j${i}`), job("shared")],
            bids: [bid(`b${i}`, `j${i}`), bid("shared-bid", "shared")],
          }));
        }
      }
      const joiner = await createLibp2pHost({
        listen: ["/ip4/127.0.0.1/tcp/0"],
        bootstrap: hosts.map((host) => host.multiaddrs()[0]!),
        heartbeatMs: 0,
      });
      hosts.push(joiner);
      await waitFor(
        "the joiner to connect to all six",
        () => hosts.slice(0, 6).every((h) => joiner.peers().includes(h.self)),
      );
      const known = joiner.peers().length;
      const expected = Math.ceil(known / 3);

      const seenPeers = new Set<string>();
      const allJobs = new Set<string>();
      for (let round = 0; round < 3; round++) {
        const result = await requestSnapshots(joiner, { signal: AbortSignal.timeout(10_000) });
        assert.equal(result.asked.length, expected);
        for (const peer of result.asked) {
          assert.equal(seenPeers.has(peer), false, "round robin asks new peers first");
          seenPeers.add(peer);
        }
        const good = result.asked.filter((peer) => peer !== hosts[5]!.self);
        assert.deepEqual(
          [...result.failed],
          result.asked.filter((peer) => peer === hosts[5]!.self),
        );
        if (good.length > 0) {
          assert.equal(
            result.jobs.filter((j) => j.jobId === "shared").length,
            1,
            "deduped by jobId",
          );
          assert.equal(
            result.bids.filter((b) => b.bidId === "shared-bid").length,
            1,
            "deduped by bidId",
          );
          assert.equal(result.jobs.length, good.length + 1);
          assert.equal(result.bids.length, good.length + 1);
        }
        for (const j of result.jobs) allJobs.add(j.jobId);
      }
      assert.equal(seenPeers.size, known, "three rounds of a third cover every peer");
      assert.deepEqual([...allJobs].sort(), ["j0", "j1", "j2", "j3", "j4", "shared"]);
      const everyone = await requestSnapshots(joiner, { fraction: 1 });
      assert.equal(everyone.asked.length, known);
      assert.equal(everyone.failed.length, 1);
    } finally {
      await Promise.all(hosts.map((host) => host.stop()));
    }
  },
});

Deno.test("requestSnapshots() returns an empty snapshot without peers and checks its fraction", async () => {
  const host = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], heartbeatMs: 0 });
  try {
    assert.deepEqual(await requestSnapshots(host), { jobs: [], bids: [], asked: [], failed: [] });
    await assert.rejects(requestSnapshots(host, { fraction: 0 }), RangeError);
  } finally {
    await host.stop();
  }
});
