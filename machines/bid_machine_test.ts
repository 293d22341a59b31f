import assert from "node:assert/strict";
import { bid, Driver } from "../tests/_drive.ts";
import { bidMachine } from "./bid_machine.ts";

const fresh = () => new Driver(bidMachine, { offer: bid("w1", 40n), receivedAt: 10 });

Deno.test("bidMachine() starts submitted and reaches each final state once", () => {
  const cases = [
    [{ type: "bid.accept", at: 20 }, "accepted", null],
    [{ type: "bid.reject", at: 20, reason: "outbid" }, "rejected", "outbid"],
    [{ type: "bid.expire", at: 20 }, "expired", null],
    [{ type: "bid.withdraw", at: 20 }, "withdrawn", null],
  ] as const;
  for (const [event, state, reason] of cases) {
    const d = fresh();
    assert.equal(d.state, "submitted");
    d.send(event);
    assert.equal(d.state, state);
    assert.equal(d.snapshot.status, "done");
    assert.equal(d.context.decidedAt, 20);
    assert.equal(d.context.reason, reason);
  }
});

Deno.test("bidMachine() cannot be decided twice", () => {
  const d = fresh();
  d.send({ type: "bid.accept", at: 20 });
  assert.equal(d.can({ type: "bid.withdraw", at: 21 }), false);
  assert.equal(d.can({ type: "bid.reject", at: 21, reason: "outbid" }), false);
});
