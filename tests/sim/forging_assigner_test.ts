/**
 * The simulator's `forging-assigner` adversary (issue 16, the review's "high 2"): the clients'
 * chain accounts are no node ids, and a peer that reads the chain and hears announcements sends
 * each chosen verifier forged assignments before the owner's (attempt 16 with a 1 ms
 * verification window, and attempt 16 with the escrow's terms and the input). Every invariant
 * holds and every job settles: the first forgery costs its sender, the second is kept on some
 * verifiers, whose actors follow the chain's attempt.
 */
import assert from "node:assert/strict";
import { parseAdversaries, reproduceCommand, simulate } from "../../runtime/sim/mod.ts";

const SMALL = { workers: 6, verifiers: 4, jobs: 8 } as const;

Deno.test("simulate() holds every invariant against a forging assigner, its kept forgeries overridden by the chain's attempt (seeds 1, 2, 3)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-forging-" });
  try {
    let kept = 0;
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
        if (!line.includes('"job.declined"') || !line.includes('"forger-01"')) continue;
        const entry = JSON.parse(line) as { event?: { owner?: string; attempt?: number } };
        if (entry.event?.owner === "forger-01" && entry.event.attempt === 16) kept++;
      }
    }
    assert.ok(kept > 0, "some verifier kept a forgery first (the case the chain's attempt fixes)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
