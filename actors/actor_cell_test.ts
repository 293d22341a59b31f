import assert from "node:assert/strict";
import { assign, emit, setup } from "xstate";
import { ActorCell } from "./actor_cell.ts";

/** A small machine: `go` moves on when allowed, `note` is taken without a target nor actions. */
function counted() {
  const calls = { allowed: 0 };
  const machine = setup({
    types: {} as {
      context: { n: number };
      events: { type: "go"; ok: boolean } | { type: "note" } | { type: "boom" };
      emitted: { type: "timer.arm"; key: string; at: number };
    },
    guards: {
      allowed: ({ event }) => {
        calls.allowed++;
        return event.type === "go" && event.ok;
      },
    },
  }).createMachine({
    context: { n: 0 },
    initial: "idle",
    states: {
      idle: {
        on: {
          go: {
            guard: "allowed",
            target: "busy",
            actions: [
              assign({ n: ({ context }) => context.n + 1 }),
              emit({ type: "timer.arm", key: "k", at: 5 }),
            ],
          },
          // Taken, changes nothing: an observer letting another worker's bid by.
          note: {},
        },
      },
      busy: {
        on: {
          boom: {
            actions: () => {
              throw new Error("kaboom");
            },
          },
        },
      },
    },
  });
  return { machine, calls };
}

Deno.test("ActorCell.deliver() refuses what no transition takes, with the state, and evaluates each guard once", () => {
  const { machine, calls } = counted();
  const effects: unknown[] = [];
  const cell = new ActorCell("job:x", machine, { onEffect: (_, e) => effects.push(e) });
  const refused = cell.deliver({ type: "go", ok: false } as never);
  assert.deepEqual(refused, {
    status: "rejected",
    code: "not_accepted",
    reason: '"go" is not accepted in state idle',
  });
  assert.equal(calls.allowed, 1, "the guard ran once, by the step itself");
  assert.equal(cell.state, "idle");
  assert.deepEqual(effects, []);
  assert.deepEqual(cell.deliver({ type: "busy" } as never).status, "rejected", "unknown event");

  assert.deepEqual(cell.deliver({ type: "go", ok: true } as never), { status: "accepted" });
  assert.equal(calls.allowed, 2);
  assert.equal(cell.state, "busy");
  assert.deepEqual(effects, [{ type: "timer.arm", key: "k", at: 5 }]);
  assert.equal((cell.persisted as unknown as { context: { n: number } }).context.n, 1);
  assert.equal(
    cell.deliver({ type: "note" } as never).status,
    "rejected",
    "busy does not take note",
  );
});

Deno.test("ActorCell.deliver() accepts an event a targetless transition without actions takes", () => {
  const { machine } = counted();
  const cell = new ActorCell("job:x", machine, { onEffect: () => {} });
  const before = cell.snapshot;
  assert.deepEqual(cell.deliver({ type: "note" } as never), { status: "accepted" });
  assert.equal(cell.state, "idle");
  assert.deepEqual(cell.snapshot.context, before.context);
});

Deno.test("ActorCell.deliver() reports a crash and restarts from the last persisted snapshot", () => {
  const { machine } = counted();
  const cell = new ActorCell("job:x", machine, { onEffect: () => {} });
  cell.deliver({ type: "go", ok: true } as never);
  const outcome = cell.deliver({ type: "boom" } as never);
  assert.equal(outcome.status, "crashed");
  assert.equal(cell.crashed, true);
  assert.equal(cell.deliver({ type: "note" } as never).status, "rejected");
  cell.restart();
  assert.equal(cell.incarnation, 2);
  assert.equal(cell.state, "busy");
  assert.equal(cell.snapshot.context.n, 1);
  assert.equal(cell.logic, machine, "the cell's logic is the machine it was given");
});
