import assert from "node:assert/strict";
import type { AddressedEvent } from "../../machines/address.ts";
import { MAX_BATCH } from "../../machines/job_machine.ts";
import { Batcher } from "./batcher.ts";

function manual() {
  const submitted: AddressedEvent[] = [];
  let flush: (() => void) | undefined;
  const batcher = new Batcher({
    submit: (a) => submitted.push(a),
    schedule: (f) => flush = f,
  });
  return { batcher, submitted, run: () => flush?.() };
}

const bidFor = (job: string, worker: string): AddressedEvent => ({
  target: `job:${job}`,
  event: { type: "bid.received", bid: { bidId: `${job}.${worker}`, worker } },
});

Deno.test("Batcher gathers one turn's bids and attestations by job, and submits one alone as it came", () => {
  const { batcher, submitted, run } = manual();
  batcher.add(bidFor("a", "w1"));
  batcher.add(bidFor("b", "w1"));
  batcher.add(bidFor("a", "w2"));
  batcher.add({
    target: "job:a",
    event: { type: "job.attestation.received", verifier: "v1", verdict: "valid" },
  });
  batcher.add({
    target: "job:a",
    event: { type: "job.attestation.received", verifier: "v2", verdict: "valid" },
  });
  assert.equal(submitted.length, 0, "nothing before the end of the turn");
  run();
  assert.deepEqual(submitted, [
    {
      target: "job:a",
      event: {
        type: "bids.received",
        bids: [{ bidId: "a.w1", worker: "w1" }, { bidId: "a.w2", worker: "w2" }],
      },
    },
    bidFor("b", "w1"),
    {
      target: "job:a",
      event: {
        type: "job.attestations.received",
        attestations: [{ verifier: "v1", verdict: "valid" }, { verifier: "v2", verdict: "valid" }],
      },
    },
  ]);
  assert.equal(batcher.batches, 2);
  run();
  assert.equal(submitted.length, 3, "a flush submits what is pending once");
});

Deno.test("Batcher splits a burst larger than MAX_BATCH", () => {
  const { batcher, submitted, run } = manual();
  for (let i = 0; i < 2 * MAX_BATCH + 1; i++) batcher.add(bidFor("a", `w${i}`));
  run();
  assert.deepEqual(
    submitted.map((s) => (s.event["bids"] as unknown[] | undefined)?.length ?? 1),
    [MAX_BATCH, MAX_BATCH, 1],
  );
  assert.equal(submitted[2]!.event.type, "bid.received");
});

Deno.test("Batcher flushes at the end of the turn by default, and refuses what it does not gather", async () => {
  const submitted: AddressedEvent[] = [];
  const batcher = new Batcher({ submit: (a) => submitted.push(a) });
  batcher.add(bidFor("a", "w1"));
  batcher.add(bidFor("a", "w2"));
  await Promise.resolve();
  assert.equal(submitted.length, 1);
  assert.throws(
    () => batcher.add({ target: "job:a", event: { type: "bid.withdrawn" } }),
    { name: "TypeError", message: /Cannot batch "bid.withdrawn"/ },
  );
});
