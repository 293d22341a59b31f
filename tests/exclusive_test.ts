import assert from "node:assert/strict";
import { processMarketLock } from "./_exclusive.ts";

Deno.test("the process-market lock is held by one test at a time", async () => {
  const first = await processMarketLock();
  let secondHeld = false;
  const second = processMarketLock().then((lock) => {
    secondHeld = true;
    return lock;
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(secondHeld, false, "a second holder got the lock while the first held it");
  await first[Symbol.asyncDispose]();
  await (await second)[Symbol.asyncDispose]();
  assert.equal(secondHeld, true);
});
