import assert from "node:assert/strict";
import { jobMachine } from "../machines/job_machine.ts";
import { bid, spec } from "../tests/_drive.ts";
import type { SupervisionEvent } from "./supervisor.ts";
import { Supervisor } from "./supervisor.ts";

/** The real job machine, with one action that throws on a poisoned bid (price 13). */
const fragile = jobMachine.provide({
  actions: {
    acceptBid: ({ event }) => {
      if (event.type === "bid.received" && event.bid.price === 13n) throw new Error("poisoned bid");
    },
  },
});

function setup(intensity = { maxRestarts: 2, withinMs: 1_000 }) {
  let now = 0;
  const events: SupervisionEvent[] = [];
  const restored: string[] = [];
  const common = {
    now: () => now,
    intensity,
    onSupervision: (e: SupervisionEvent) => events.push(e),
    onRestored: (cell: { id: string }) => restored.push(cell.id),
  };
  const root = new Supervisor({ name: "root", ...common });
  const jobs = new Supervisor({ name: "jobs", parent: root, ...common });
  for (const id of ["job:a", "job:b", "job:c"]) {
    jobs.spawn(id, fragile, {
      input: {
        jobId: id.slice(4),
        spec: spec(),
        owner: "me",
        self: "me",
        roles: ["client"],
        at: 0,
      },
    });
    jobs.deliver(id, { type: "chain.escrow.locked", at: 1, client: "me", amount: 100n } as never);
  }
  return { root, jobs, events, restored, tick: (ms: number) => (now += ms) };
}

const poison = (id: string) => ({
  type: "bid.received",
  at: 5,
  bid: bid("w1", 13n, { jobId: id.slice(4) }),
});

Deno.test("Supervisor restarts a crashed job actor from its snapshot; the others never notice", () => {
  const { jobs, events, restored } = setup();
  const before = { b: jobs.get("job:b")!.snapshot, c: jobs.get("job:c")!.snapshot };
  const a = jobs.get("job:a")!;
  assert.equal(a.state, "bidding");

  const outcome = jobs.deliver("job:a", poison("job:a"));
  assert.equal(outcome.status, "crashed");
  assert.equal(a.incarnation, 2, "restarted once");
  assert.equal(a.state, "bidding", "back at its last snapshot");
  assert.deepEqual(a.snapshot.context.deadlines, { bid_window: 101 });
  assert.deepEqual(restored, ["job:a"], "its deadlines get re-armed");
  assert.deepEqual(events.map((e) => e.type), ["restarted"]);
  assert.match(JSON.stringify(events[0]), /poisoned bid/);

  // The other jobs were not touched: same snapshot objects, same incarnation.
  assert.equal(jobs.get("job:b")!.snapshot, before.b);
  assert.equal(jobs.get("job:c")!.snapshot, before.c);
  assert.equal(jobs.get("job:b")!.incarnation, 1);

  // The restarted actor goes on working.
  assert.equal(jobs.deliver("job:a", { type: "job.cancel", at: 6 } as never).status, "accepted");
  assert.equal(jobs.get("job:a")!.state, "refunding");
});

Deno.test("Supervisor quarantines a child past its restart intensity and escalates to its parent", () => {
  const { jobs, events } = setup({ maxRestarts: 2, withinMs: 1_000 });
  jobs.deliver("job:a", poison("job:a"));
  jobs.deliver("job:a", poison("job:a"));
  assert.deepEqual(events.map((e) => e.type), ["restarted", "restarted"]);
  jobs.deliver("job:a", poison("job:a"));
  assert.deepEqual(events.map((e) => e.type), [
    "restarted",
    "restarted",
    "quarantined",
    "escalated",
    "supervisor.restarted",
  ]);
  assert.equal(jobs.get("job:a"), undefined);
  assert.equal(jobs.quarantined().size, 1);
  const rejected = jobs.deliver("job:a", { type: "job.cancel", at: 7 } as never);
  assert.equal(rejected.status, "rejected");
  assert.match((rejected as { reason: string }).reason, /quarantined after: poisoned bid/);
  // The parent restarted the jobs supervisor: b and c came back from their snapshots, unchanged.
  assert.equal(jobs.get("job:b")!.state, "bidding");
  assert.equal(jobs.get("job:b")!.incarnation, 2);
});

Deno.test("Supervisor counts restarts within the window only", () => {
  const { jobs, events, tick } = setup({ maxRestarts: 1, withinMs: 1_000 });
  jobs.deliver("job:a", poison("job:a"));
  tick(1_500);
  jobs.deliver("job:a", poison("job:a"));
  assert.deepEqual(events.map((e) => e.type), ["restarted", "restarted"]);
});

Deno.test("Supervisor escalation past the root's own intensity is fatal", () => {
  const { jobs, events } = setup({ maxRestarts: 1, withinMs: 10_000 });
  // Each child crashing twice quarantines it and escalates; the root allows one escalation.
  for (const id of ["job:a", "job:b"]) {
    jobs.deliver(id, poison(id));
    jobs.deliver(id, poison(id));
  }
  const types = events.map((e) => e.type);
  assert.ok(types.includes("fatal"), types.join(", "));
  const fatal = events.find((e) => e.type === "fatal") as { error: string };
  assert.match(fatal.error, /Supervisor "jobs" escalated more than 1 times/);
});

Deno.test("Supervisor keeps thousands of job actors in a Map of independent actors", () => {
  let now = 0;
  const jobs = new Supervisor({ name: "jobs", now: () => now++ });
  for (let i = 0; i < 3_000; i++) {
    jobs.spawn(`job:${i}`, jobMachine, {
      input: { jobId: String(i), spec: spec(), owner: "me", self: "me", roles: ["client"], at: 0 },
    });
  }
  assert.equal(jobs.size, 3_000);
  assert.equal(jobs.get("job:2999")!.state, "announced");
});
