import assert from "node:assert/strict";
import { DIAGRAMMED, mermaidOf, pageOf } from "../runtime/research/diagrams.ts";

Deno.test("docs/ diagrams are generated from the current machines (run `deno task diagrams`)", async () => {
  for (const [name, machine] of Object.entries(DIAGRAMMED)) {
    const path = new URL(`../docs/${name}.md`, import.meta.url);
    assert.equal(await Deno.readTextFile(path), pageOf(name, machine), `docs/${name}.md is stale`);
  }
});

Deno.test("mermaidOf() draws every state and the guarded transitions", () => {
  const text = mermaidOf(DIAGRAMMED["job_machine"]!);
  for (
    const state of [
      "announced",
      "bidding",
      "assigned",
      "executing",
      "reassigning",
      "verifying",
      "settling",
      "disputed",
      "settled",
      "expired",
      "cancelled",
      "refunded",
      "failed",
    ]
  ) {
    assert.match(text, new RegExp(`\\b${state}\\b`), state);
  }
  assert.match(text, /executing --> reassigning: timer.fired \[and\(executionDue, isOwner\)\]/);
  assert.match(text, /settled --> \[\*\]/);
});
