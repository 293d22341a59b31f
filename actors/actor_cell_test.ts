import assert from "node:assert/strict";
import { assign, createActor, emit, setup, spawnChild } from "xstate";
import { jobMachine } from "../machines/job_machine.ts";
import { peerMachine } from "../machines/peer_machine.ts";
import { bid, spec } from "../tests/_drive.ts";
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

Deno.test("ActorCell runs the job machine as XState's actor does: snapshots and effects, step by step", () => {
  const input = {
    jobId: "j1",
    spec: spec(),
    owner: "me",
    self: "me",
    roles: ["client" as const],
    at: 0,
  };
  const effects: unknown[] = [];
  const fresh = new ActorCell("job:j1", jobMachine, {
    onEffect: (_, e) => effects.push(e),
    input,
  });
  const actor = createActor(jobMachine, { input });
  const actorEffects: unknown[] = [];
  actor.on("*", (e) => actorEffects.push(e));
  actor.start();
  const same = (what: string) => {
    assert.deepEqual(fresh.persisted, actor.getPersistedSnapshot(), what);
    assert.deepEqual(effects, actorEffects, what);
  };
  same("start");
  const due = () => (fresh.snapshot.context as { deadlines: Record<string, number> }).deadlines;
  const steps: (() => { type: string; [k: string]: unknown })[] = [
    () => ({ type: "no.such.event", at: 1 }),
    () => ({ type: "chain.escrow.locked", at: 1, client: "me", amount: 1_000n }),
    () => ({
      type: "bids.received",
      at: 2,
      bids: [bid("w1", 50n), bid("w2", 40n), bid("w3", 10_000n), bid("w1", 45n)],
    }),
    () => ({ type: "bid.received", at: 3, bid: bid("w4", 30n) }),
    () => ({ type: "timer.fired", at: 4, key: "execution", due: 4 }),
    () => ({
      type: "timer.fired",
      at: due()["bid_window"]!,
      key: "bid_window",
      due: due()["bid_window"]!,
    }),
    () => {
      const winner =
        (fresh.snapshot.context as { winner: { worker: string; price: bigint } }).winner;
      const verifiers = (fresh.snapshot.context as { verifiers: string[] }).verifiers;
      return {
        type: "chain.worker.assigned",
        at: 5_000,
        worker: winner.worker,
        price: winner.price,
        verifiers,
      };
    },
    // On to its final state: the result, the verifiers' quorum, the chain's verdict and payment.
    () => {
      const winner = (fresh.snapshot.context as { winner: { worker: string } }).winner;
      return {
        type: "job.result.received",
        at: 5_001,
        worker: winner.worker,
        commitment: "c".repeat(64),
        output: [[1]],
      };
    },
    () => {
      const winner = (fresh.snapshot.context as { winner: { worker: string } }).winner;
      return {
        type: "chain.result.submitted",
        at: 5_002,
        worker: winner.worker,
        commitment: "c".repeat(64),
      };
    },
    () => {
      const context = fresh.snapshot.context as {
        winner: { worker: string };
        verifiers: string[];
      };
      return {
        type: "job.attestations.received",
        at: 5_003,
        attestations: context.verifiers.map((verifier) => ({
          verifier,
          verdict: "valid",
          commitment: "c".repeat(64),
          worker: context.winner.worker,
          claimed: "c".repeat(64),
        })),
      };
    },
    () => ({ type: "chain.job.verified", at: 5_004 }),
    () => {
      const winner = (fresh.snapshot.context as { winner: { worker: string } }).winner;
      return {
        type: "chain.payment.released",
        at: 5_005,
        worker: winner.worker,
        amount: 1n,
        fee: 1n,
        change: 1n,
      };
    },
    // A finished actor takes nothing more, on either.
    () => ({ type: "chain.job.verified", at: 5_006 }),
  ];
  for (const [i, step] of steps.entries()) {
    const event = step();
    effects.length = 0;
    actorEffects.length = 0;
    const outcome = fresh.deliver(event);
    actor.send(event as never);
    same(`step ${i}: ${event.type} (${outcome.status})`);
    assert.equal(fresh.snapshot.status, actor.getSnapshot().status, `step ${i}: status`);
  }
  assert.equal(fresh.state, "settled", "the job ran to its end");
  assert.equal(fresh.done, true);
  assert.deepEqual(fresh.snapshot.output, actor.getSnapshot().output);
  actor.stop();
  fresh.stop();
});

Deno.test("ActorCell runs the peer machine as XState's actor does, to its ban", () => {
  const input = { peerId: "p1", at: 0 };
  const effects: unknown[] = [];
  const cell = new ActorCell("peer:p1", peerMachine, {
    onEffect: (_, e) => effects.push(e),
    input,
  });
  const actor = createActor(peerMachine, { input });
  const actorEffects: unknown[] = [];
  actor.on("*", (e) => actorEffects.push(e));
  actor.start();
  const events = [
    { type: "peer.connected", at: 1 },
    { type: "peer.identified", at: 2, protocols: ["/ciro/msg/2.0.0"] },
    { type: "peer.heartbeat", at: 3, rttMs: 4 },
    { type: "timer.fired", at: 60_000, key: "heartbeat", due: 60_000 },
    { type: "peer.scored", at: 60_001, delta: -5, reason: "bad bid" },
    { type: "peer.disconnected", at: 60_002 },
    { type: "peer.connected", at: 60_003 },
    { type: "peer.scored", at: 60_004, delta: -1_000, reason: "forged signature" },
    { type: "peer.heartbeat", at: 60_005, rttMs: 4 },
  ];
  for (const [i, event] of events.entries()) {
    effects.length = 0;
    actorEffects.length = 0;
    const outcome = cell.deliver(event);
    actor.send(event as never);
    assert.deepEqual(cell.persisted, actor.getPersistedSnapshot(), `step ${i}: ${event.type}`);
    assert.deepEqual(effects, actorEffects, `step ${i}: ${event.type} (${outcome.status})`);
  }
  assert.equal(cell.state, "banned");
  actor.stop();
  cell.stop();
});

Deno.test("ActorCell refuses XState's own events (xstate.stop, xstate.error.*) and stays as it was", () => {
  const machine = setup({}).createMachine({
    initial: "a",
    states: { a: { on: { go: "b" } }, b: {} },
  });
  const cell = new ActorCell("job:x", machine, { onEffect: () => {} });
  for (const type of ["xstate.stop", "xstate.init", "xstate.error.actor.child"]) {
    const outcome = cell.deliver({ type, error: new Error("injected") } as { type: string });
    assert.equal(outcome.status, "rejected", type);
    assert.match(
      (outcome as { reason: string }).reason,
      /XState's own events are reserved/,
      type,
    );
    assert.equal(cell.crashed, false, type);
    assert.equal(cell.snapshot.status, "active", type);
  }
  assert.equal(cell.deliver({ type: "go" }).status, "accepted");
  assert.equal(cell.state, "b");
  cell.stop();
});

Deno.test("ActorCell runs a machine with a delayed transition on XState's actor, and refuses to spawn without one", () => {
  const delayed = setup({}).createMachine({
    initial: "waiting",
    states: { waiting: { after: { 60_000: "late" } }, late: {} },
  });
  const cell = new ActorCell("job:d", delayed, { onEffect: () => {} });
  assert.equal(cell.state, "waiting");
  cell.stop();

  const spawning = setup({ actors: { child: delayed } }).createMachine({
    initial: "idle",
    states: { idle: { on: { go: { actions: spawnChild("child", { id: "c" }) } } } },
  });
  const parent = new ActorCell("job:s", spawning, { onEffect: () => {} });
  const outcome = parent.deliver({ type: "go" });
  assert.equal(outcome.status, "crashed");
  assert.match(
    String((outcome as { error: Error }).error?.message),
    /Cannot spawn an actor in an actor cell's direct run/,
  );
});
