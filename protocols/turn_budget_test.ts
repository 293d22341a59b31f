import assert from "node:assert/strict";
import { TurnBudget } from "./turn_budget.ts";

/** A budget on a scheduler the test drives. */
function manual(perTurn: number) {
  const turns: (() => void)[] = [];
  const budget = new TurnBudget({ perTurn, schedule: (run) => turns.push(run) });
  /** Runs everything scheduled so far, like one turn of the event loop's timers. */
  const turn = () => turns.splice(0).forEach((run) => run());
  return { budget, turn };
}

Deno.test("TurnBudget.pace() hands values back at once until the turn's budget is used", async () => {
  const { budget, turn } = manual(2);
  assert.equal(budget.pace("a"), "a");
  assert.equal(budget.pace("b"), "b");
  const c = budget.pace("c");
  assert.ok(c instanceof Promise, "past the budget: a promise");
  let resolved: string | undefined;
  void c.then((value) => resolved = value);
  await Promise.resolve();
  assert.equal(resolved, undefined, "not within the same turn");
  turn();
  assert.equal(await c, "c");
  assert.equal(budget.deferred, 1);
  // A later turn has a budget of its own (c counted against the turn that handed it back).
  turn();
  assert.equal(budget.pace("d"), "d");
  assert.equal(budget.pace("e"), "e");
  assert.ok(budget.pace("f") instanceof Promise);
});

Deno.test("TurnBudget hands back at most perTurn waiting values per turn, first in first out", async () => {
  const { budget, turn } = manual(2);
  budget.pace(0);
  budget.pace(0);
  const order: number[] = [];
  const later = [1, 2, 3, 4, 5].map((n) =>
    Promise.resolve(budget.pace(n)).then((v) => order.push(v))
  );
  await Promise.resolve();
  assert.deepEqual(order, []);
  assert.equal(budget.waiting, 5);
  turn();
  await Promise.resolve();
  assert.deepEqual(order, [1, 2]);
  // While values wait, a new one queues behind them even if this turn had budget left.
  const late = budget.pace(6);
  assert.ok(late instanceof Promise);
  turn();
  await Promise.resolve();
  assert.deepEqual(order, [1, 2, 3, 4]);
  turn();
  turn();
  await Promise.all([...later, late]);
  assert.deepEqual(order, [1, 2, 3, 4, 5]);
  assert.equal(await late, 6);
});

Deno.test("TurnBudget rejects a budget that is not a positive integer", () => {
  assert.throws(() => new TurnBudget({ perTurn: 0 }), RangeError);
  assert.throws(() => new TurnBudget({ perTurn: 1.5 }), RangeError);
});
