/** The simulated network: latency from the seed, loss, partitions and bans. */
import assert from "node:assert/strict";
import { TOPICS } from "../../protocols/messages.ts";
import { Scheduler, SimNetwork, Trace } from "../../runtime/sim/mod.ts";

async function pair(faults = { latencyMs: [1, 5] as const, loss: 0, duplicate: 0 }) {
  const sched = new Scheduler(1);
  const net = new SimNetwork(sched, new Trace(), faults);
  const a = net.join("a");
  const b = net.join("b");
  const heard: string[] = [];
  a.subscribe(TOPICS.health, () => "accept", (m) => void heard.push(m.from));
  await a.start();
  await b.start();
  const send = async () => {
    await b.publish(TOPICS.health, new Uint8Array([1]));
    sched.after(100, () => {}, "tick"); // time moves on 100 ms
    await sched.run({ until: sched.now() + 100, maxSteps: 1_000 });
  };
  return { sched, net, a, heard, send };
}

Deno.test("SimNetwork delivers a publish after a latency drawn from the seed", async () => {
  const { heard, send, sched } = await pair();
  await send();
  assert.deepEqual(heard, ["b"]);
  assert.ok(sched.now() >= 1);
});

Deno.test("SimNetwork drops what a banned peer sends until the ban ends", async () => {
  const { a, heard, send, net } = await pair();
  a.ban!("b", "test", 50);
  await send();
  assert.deepEqual(heard, [], "banned");
  assert.equal(net.stats.dropped, 1);
  await send(); // 100 ms later: the ban is over
  assert.deepEqual(heard, ["b"]);
});

Deno.test("SimNetwork loses every copy across a partition, none once healed", async () => {
  const { heard, send, net } = await pair();
  net.partition(new Map([["a", 0], ["b", 1]]));
  await send();
  assert.deepEqual(heard, []);
  net.heal();
  await send();
  assert.deepEqual(heard, ["b"]);
});
