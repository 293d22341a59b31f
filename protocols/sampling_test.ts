import assert from "node:assert/strict";
import { inSample, jobSamplePrefix, MAX_SAMPLE_BITS, samplePrefix } from "./sampling.ts";

Deno.test("inSample() is the prefixes' equality, at every depth and beyond the deepest", () => {
  let inside = 0;
  for (let w = 0; w < 64; w++) {
    for (let j = 0; j < 16; j++) {
      for (let bits = 0; bits <= MAX_SAMPLE_BITS + 2; bits++) {
        const worker = `12D3KooWworker${w}`;
        const expected =
          samplePrefix(worker, bits) === jobSamplePrefix(`job-${j}`, 1 + (w % 2), bits);
        assert.equal(
          inSample(worker, `job-${j}`, 1 + (w % 2), bits),
          expected,
          `${w} ${j} ${bits}`,
        );
        if (expected && bits > 0) inside++;
      }
    }
  }
  // Both answers occur (the check is not trivially true or false).
  assert.ok(inside > 100 && inside < 64 * 16 * (MAX_SAMPLE_BITS + 2), `${inside}`);
});
