/**
 * The simulator's `forging-assigner` adversary (issue 16, the review's "high 2"): the clients'
 * chain accounts are no node ids, and a peer that reads the chain and hears announcements sends
 * each chosen verifier forged assignments before the owner's (attempt 16 with a 1 ms
 * verification window; the escrow's terms and the input; an ONNX kind with the zero model hash;
 * `maxAttempts` 1), and announces the job again as its own with another input. Every invariant
 * holds and every job settles: each forged assignment's spec is not the one whose hash the escrow
 * holds, so none is kept and each costs its sender; the re-announcement is let by.
 */
import assert from "node:assert/strict";
import { parseAdversaries, reproduceCommand, simulate } from "../../runtime/sim/mod.ts";

const SMALL = { workers: 6, verifiers: 4, jobs: 8 } as const;

Deno.test("simulate() holds every invariant against a forging assigner, none of its forgeries kept, each charged (seeds 1, 2, 3)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-forging-" });
  try {
    let kept = 0;
    let charged = 0;
    for (const seed of [1, 2, 3]) {
      const recordPath = `${dir}/seed-${seed}.jsonl`;
      const options = { seed, ...SMALL, adversaries: parseAdversaries("forging-assigner") };
      const result = await simulate({ ...options, recordPath });
      assert.deepEqual(result.violations, [], reproduceCommand(options));
      assert.equal(
        result.jobs["settled"],
        SMALL.jobs,
        `seed ${seed}: ${JSON.stringify(result.jobs)}`,
      );
      for (const line of (await Deno.readTextFile(recordPath)).split("\n")) {
        if (line.includes('"peer.scored"') && line.includes('"peer:forger-01"')) charged++;
        if (!line.includes('"job.declined"') || !line.includes('"forger-01"')) continue;
        const entry = JSON.parse(line) as { event?: { owner?: string; reason?: string } };
        if (entry.event?.owner === "forger-01" && entry.event.reason === "awaiting_chain") kept++;
      }
    }
    assert.equal(kept, 0, "no forgery kept: the escrow's spec hash is the owner's spec's");
    assert.ok(charged > 0, "the forgeries cost their sender");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
