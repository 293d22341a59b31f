import assert from "node:assert/strict";
import { decodeMessage, encodeMessage, TOPICS } from "./messages.ts";
import { RuleViolation, wireToActorEvents } from "./translate.ts";

const rules = { verifiersOf: () => undefined };

Deno.test("wireToActorEvents() makes a bid bid.received with every field of it but its type, in order", () => {
  const bytes = encodeMessage(TOPICS.bids, {
    type: "bid.submit",
    bidId: "j1.1.w1",
    jobId: "j1",
    worker: "w1",
    price: 500n,
    etaMs: 100,
    stake: 7n,
    reputation: 12,
    hardware: "gpu",
  });
  const message = decodeMessage(TOPICS.bids, bytes);
  const [addressed, ...rest] = wireToActorEvents(TOPICS.bids, message, "w1", rules);
  assert.equal(rest.length, 0);
  const { type: _type, ...expected } = message;
  assert.equal(addressed!.target, "job:j1");
  assert.deepEqual(addressed!.event, { type: "bid.received", bid: expected });
  assert.deepEqual(Object.keys(addressed!.event["bid"] as object), Object.keys(expected));
  assert.throws(
    () => wireToActorEvents(TOPICS.bids, message, "w2", rules),
    (e: Error) =>
      e instanceof RuleViolation && /names worker "w1" but came from "w2"/.test(e.message),
  );
});
