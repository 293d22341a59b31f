import assert from "node:assert/strict";
import { type Envelope, Inbox, MemoryJournal } from "./inbox.ts";

const clock = {
  now: () => 5,
  setTimeout: () => 0,
  clearTimeout: () => {},
};

Deno.test("Inbox delivers what a delivery submits after it, in order", () => {
  const seen: string[] = [];
  const inbox: Inbox = new Inbox({
    clock,
    deliver: (envelope) => {
      seen.push(envelope.event.type);
      if (envelope.event.type === "a") {
        inbox.submit("system", "x", { type: "a.1" });
        inbox.submit("system", "x", { type: "a.2" });
      }
      if (envelope.event.type === "a.1") inbox.submit("system", "x", { type: "a.1.1" });
    },
  });
  inbox.submit("system", "x", { type: "a" });
  inbox.submit("system", "x", { type: "b" });
  assert.deepEqual(seen, ["a", "a.1", "a.2", "a.1.1", "b"]);
  assert.equal(inbox.submitted, 5);
});

Deno.test("Inbox drops a delivery that threw and those before it, and delivers the rest next", () => {
  const seen: string[] = [];
  const inbox: Inbox = new Inbox({
    clock,
    deliver: (envelope) => {
      seen.push(envelope.event.type);
      if (envelope.event.type === "a") {
        inbox.submit("system", "x", { type: "a.1" });
        inbox.submit("system", "x", { type: "boom" });
        inbox.submit("system", "x", { type: "a.3" });
        inbox.submit("system", "x", { type: "a.4" });
      }
      if (envelope.event.type === "boom") throw new Error("boom");
    },
  });
  assert.throws(() => inbox.submit("system", "x", { type: "a" }), { message: "boom" });
  assert.deepEqual(seen, ["a", "a.1", "boom"]);
  // The next submission delivers what waited, then itself; nothing is delivered twice.
  inbox.submit("system", "x", { type: "c" });
  assert.deepEqual(seen, ["a", "a.1", "boom", "a.3", "a.4", "c"]);
  inbox.submit("system", "x", { type: "d" });
  assert.deepEqual(seen.slice(6), ["d"]);
});

Deno.test("MemoryJournal keeps the last `limit` entries, none by default in an inbox", () => {
  const kept = new MemoryJournal({ limit: 2 });
  const none = new MemoryJournal({ limit: 0 });
  const envelope = (seq: number): Envelope => ({
    seq,
    at: 0,
    source: "system",
    target: "x",
    event: { type: "e" },
  });
  for (const seq of [1, 2, 3]) {
    kept.append(envelope(seq));
    none.append(envelope(seq));
  }
  assert.deepEqual(kept.entries.map((e) => e.seq), [2, 3]);
  assert.deepEqual(none.entries, []);
  assert.equal(kept.nextSeq(), 4);
  assert.equal(none.nextSeq(), 4);
});
