import assert from "node:assert/strict";
import { Scheduler, type Task } from "./scheduler.ts";

/** Runs `scheduler` to the end and returns the tasks in the order they ran. */
async function runAll(scheduler: Scheduler, tasks: Task[]): Promise<Task[]> {
  const ran: Task[] = [];
  const bySeq = new Map(tasks.map((t) => [t.seq, t]));
  await scheduler.run({
    until: Infinity,
    maxSteps: tasks.length + 1,
    afterStep: (task) => {
      ran.push(bySeq.get(task.seq)!);
      return false;
    },
  });
  return ran;
}

/** The order the scheduler promises: time, then the seeded order, then arming order. */
function expectedOrder(tasks: Task[]): Task[] {
  return tasks.filter((t) => !t.cancelled).sort((a, b) =>
    a.at - b.at || a.order - b.order || a.seq - b.seq
  );
}

Deno.test("Scheduler runs tasks by time, then seeded order, then arming order, at every time", async () => {
  const scheduler = new Scheduler(7);
  const tasks: Task[] = [];
  const arm = (at: number) => tasks.push(scheduler.at(at, () => {}, "t"));
  // 3,000 tasks at one time: their seeded orders (16 bits) collide, and arming order decides.
  for (let i = 0; i < 3_000; i++) arm(10);
  // Times where `at * 65536 + order` is no longer exact (past 2^37 ms): equal keys, told apart
  // by the tasks themselves.
  for (let i = 0; i < 3_000; i++) arm(2 ** 40 + (i % 3));
  for (let i = 0; i < 300; i++) arm(2 ** 52 + 2 * (i % 2));
  for (let i = 0; i < 200; i++) arm(Infinity);
  // And ordinary ones, some cancelled.
  for (let i = 0; i < 2_000; i++) arm((i * 7_919) % 5_000);
  for (let i = 0; i < tasks.length; i += 13) scheduler.clearTimeout(tasks[i]);
  const orders = new Set(tasks.slice(0, 3_000).map((t) => t.order));
  assert.ok(orders.size < 3_000, "some orders collide");
  const ran = await runAll(scheduler, tasks);
  const expected = expectedOrder(tasks);
  assert.equal(ran.length, expected.length);
  for (let i = 0; i < ran.length; i++) {
    assert.equal(ran[i]!.seq, expected[i]!.seq, `task ${i} (at ${ran[i]!.at})`);
  }
});

Deno.test("Scheduler orders tasks whose times are too large to key exactly, by themselves", async () => {
  // Past 2^52 ms every order of one time has the same key: only the tasks tell them apart.
  for (const base of [2 ** 40, 2 ** 52, 2 ** 60]) {
    const scheduler = new Scheduler(11);
    const tasks: Task[] = [];
    for (let i = 0; i < 400; i++) tasks.push(scheduler.at(base + (i % 2) * 2 ** 12, () => {}, "t"));
    const ran = await runAll(scheduler, tasks);
    assert.deepEqual(ran.map((t) => t.seq), expectedOrder(tasks).map((t) => t.seq), `${base}`);
  }
});

Deno.test("Scheduler runs what a task arms in order with what waits", async () => {
  const scheduler = new Scheduler(3);
  const tasks: Task[] = [];
  const ran: string[] = [];
  for (let i = 0; i < 50; i++) {
    tasks.push(scheduler.at(i * 10, () => {
      ran.push(`${i}`);
      // Each arms two more, one at its own time (after it), one later.
      if (i < 20) {
        tasks.push(scheduler.after(0, () => void ran.push(`${i}+0`), "t"));
        tasks.push(scheduler.after(15, () => void ran.push(`${i}+15`), "t"));
      }
    }, "t"));
  }
  await scheduler.run({ until: Infinity, maxSteps: 1_000 });
  assert.equal(ran.length, 90);
  assert.equal(ran.indexOf("3+0"), ran.indexOf("3") + 1);
  assert.ok(ran.indexOf("3+15") > ran.indexOf("4") && ran.indexOf("3+15") < ran.indexOf("5"));
  assert.equal(scheduler.pending, 0);
});
