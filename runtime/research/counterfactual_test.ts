/**
 * Tests of counterfactual replay on a recording fixture.
 *
 * @module
 */
import assert from "node:assert/strict";
import { counterfactual, formatCounterfactual, parsePolicy } from "./counterfactual.ts";
import { readRecording } from "../durability/mod.ts";

const dir = new URL("../../tests/fixtures/recordings/", import.meta.url).pathname;
// Any fixture will do: only its operator inputs and node descriptions are used.
const fixture = `${dir}${
  [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("demo-3-jobs.")).sort()
    .pop()
}`;

Deno.test("parsePolicy() names the policies it knows", () => {
  assert.deepEqual(parsePolicy("fastest"), { bidSelection: "fastest" });
  assert.deepEqual(parsePolicy("majority"), { quorum: "majority" });
  assert.throws(() => parsePolicy("cheapest"), {
    name: "RangeError",
    message: /Unknown policy "cheapest": expected one of lowest_price, fastest, best_value, bft/,
  });
});

Deno.test("counterfactual() re-simulates the recorded inputs under another policy", async () => {
  const recording = await readRecording(fixture);
  const result = await counterfactual(recording, "fastest");
  assert.equal(result.inputs, 3);
  assert.equal(result.baseline.jobs.size, 3);
  assert.equal(result.counterfactual.jobs.size, 3);
  for (const job of result.counterfactual.jobs.values()) {
    assert.equal(job.policy.bidSelection, "fastest");
  }
  for (const job of result.baseline.jobs.values()) {
    assert.equal(job.policy.bidSelection, "lowest_price");
  }
  // Money is conserved in both worlds.
  for (const { totals: t } of [result.baseline, result.counterfactual]) {
    assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked);
  }
  const text = formatCounterfactual(result);
  assert.match(text, /^Counterfactual: bidSelection fastest/);
  assert.match(text, /jobs changed: \d+ of 3/);
});
