/**
 * The simulator's `front-runner` adversary (issue 16; review R5's high 1): a peer that reads the
 * chain every 2 ms and announces each job it sees escrowed as its own, with an input of its own,
 * before the owner can. A worker that reads escrows on demand reads the job's escrow before it
 * takes an announcement of it, so the forgery is refused at the wire, costs its sender, and the
 * owner's own announcement, which comes after, is taken: every invariant holds and every job
 * settles. (Without the read first, a worker made an actor from the forgery, dropped it when its
 * read answered, and sat the real job out: chain-agreement broke on seeds 1, 2, 4 and 5 of 5.)
 */
import assert from "node:assert/strict";
import { parseAdversaries, reproduceCommand, simulate } from "../../runtime/sim/mod.ts";

const SMALL = { workers: 6, verifiers: 4, jobs: 8 } as const;

Deno.test("simulate() holds every invariant against a front-runner, whose forgeries cost it and take no job (seeds 1, 2, 4)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ciro-front-runner-" });
  try {
    let charged = 0;
    for (const seed of [1, 2, 4]) {
      const recordPath = `${dir}/seed-${seed}.jsonl`;
      const options = { seed, ...SMALL, adversaries: parseAdversaries("front-runner") };
      const result = await simulate({ ...options, recordPath });
      assert.deepEqual(result.violations, [], reproduceCommand(options));
      assert.equal(
        result.jobs["settled"],
        SMALL.jobs,
        `seed ${seed}: ${JSON.stringify(result.jobs)}`,
      );
      for (const line of (await Deno.readTextFile(recordPath)).split("\n")) {
        if (line.includes('"peer.scored"') && line.includes('"peer:front-runner-01"')) charged++;
        // No worker ever followed a job as the front-runner's.
        if (line.includes('"job.announced"') && line.includes('"owner":"front-runner-01"')) {
          assert.fail(`a worker took a forged announcement: ${line.slice(0, 200)}`);
        }
      }
    }
    assert.ok(charged > 0, "the forgeries cost their sender");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
