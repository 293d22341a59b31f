import assert from "node:assert/strict";
import type { Logger } from "@logtape/logtape";
import { RejectionLog } from "./rejection_log.ts";

function recorder() {
  const lines: Record<string, unknown>[] = [];
  const logger = {
    warn: (_message: string, properties: Record<string, unknown>) => lines.push(properties),
  } as unknown as Logger;
  return { lines, logger };
}

Deno.test("RejectionLog writes a peer's first rejections, then one per interval with the count it skipped", () => {
  let now = 0;
  const { lines, logger } = recorder();
  const log = new RejectionLog({ perPeerBurst: 2, perPeerPerSecond: 1, logger, now: () => now });
  for (let i = 0; i < 10; i++) log.reject("rogue", "/ciro/bids/1", "too_deep", `n${i}`);
  assert.equal(lines.length, 2);
  assert.deepEqual(lines[0], {
    peer: "rogue",
    where: "/ciro/bids/1",
    code: "too_deep",
    detail: "n0",
    suppressed: 0,
  });
  now = 1_000;
  log.reject("rogue", "/ciro/bids/1", "malformed", "n10");
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!["suppressed"], 8);
  // Another peer has its own budget.
  log.reject("honest-but-wrong", "/ciro/jobs/1", "invalid", "x");
  assert.equal(lines.length, 4);
  assert.deepEqual(log.stats(), {
    byCode: { too_deep: 10, malformed: 1, invalid: 1 },
    logged: 4,
    suppressed: 8,
  });
});

Deno.test("RejectionLog bounds the lines of many peers together", () => {
  const { lines, logger } = recorder();
  const log = new RejectionLog({ totalBurst: 5, totalPerSecond: 0, logger, now: () => 0 });
  for (let i = 0; i < 100; i++) log.reject(`key-${i}`, "/ciro/bids/1", "invalid", "x");
  assert.equal(lines.length, 5);
  assert.equal(log.stats().suppressed, 95);
});
