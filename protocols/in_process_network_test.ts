import assert from "node:assert/strict";
import { InProcessNetwork, MAX_FRAME_BYTES } from "./in_process_network.ts";
import type { GossipMessage, NetworkPort, PeerEvent } from "./network_port.ts";
import { TOPICS, WireError } from "./messages.ts";
import { RejectionLog } from "./rejection_log.ts";

const TOPIC = TOPICS.health;
const bytes = (text: string) => new TextEncoder().encode(text);
const text = (data: Uint8Array) => new TextDecoder().decode(data);

/** A clock the test moves. */
function clock() {
  let at = 1_000_000;
  return { now: () => at, advance: (ms: number) => void (at += ms) };
}

/** Lets queued deliveries and peer events run. */
async function drain(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
}

async function started(network: InProcessNetwork, ...ids: string[]): Promise<NetworkPort[]> {
  const ports = ids.map((id) => network.join(id));
  for (const port of ports) await port.start();
  await drain();
  return ports;
}

Deno.test("InProcessNetwork ignores a sender over its rate limit before validating, and not the others", async () => {
  const time = clock();
  const network = new InProcessNetwork({
    now: time.now,
    rateLimit: { capacity: 5, refillPerSecond: 1 },
  });
  const [victim, flooder, honest] = await started(network, "victim", "flooder", "honest");
  const validated: string[] = [];
  const delivered: string[] = [];
  victim!.subscribe(TOPIC, (m) => {
    validated.push(m.from);
    return "accept";
  }, (m) => delivered.push(`${m.from}:${text(m.data)}`));
  for (let i = 0; i < 20; i++) await flooder!.publish(TOPIC, bytes(`f${i}`));
  await honest!.publish(TOPIC, bytes("h0"));
  await drain();
  assert.equal(delivered.filter((d) => d.startsWith("flooder:")).length, 5);
  assert.ok(delivered.includes("honest:h0"));
  assert.equal(validated.filter((f) => f === "flooder").length, 5, "over the limit: not validated");
  assert.equal(network.stats.rateLimited, 15);
  time.advance(2_000); // two tokens back
  for (let i = 0; i < 5; i++) await flooder!.publish(TOPIC, bytes(`g${i}`));
  await drain();
  assert.equal(delivered.filter((d) => d.startsWith("flooder:g")).length, 2);
  await Promise.all([victim!.stop(), flooder!.stop(), honest!.stop()]);
});

Deno.test("InProcessNetwork bounds each sender's queue and delivers round robin: a burst does not delay another sender", async () => {
  const turns: (() => void)[] = [];
  const network = new InProcessNetwork({
    ingress: { perPeer: 4, batch: 100, schedule: (run) => turns.push(run) },
  });
  const [victim, flooder, honest] = await started(network, "victim", "flooder", "honest");
  const delivered: string[] = [];
  victim!.subscribe(TOPIC, () => "accept", (m) => delivered.push(`${m.from}:${text(m.data)}`));
  for (let i = 0; i < 10; i++) await flooder!.publish(TOPIC, bytes(`f${i}`));
  await honest!.publish(TOPIC, bytes("h0"));
  assert.equal(network.stats.queueFull, 6, "what does not fit the flooder's queue is dropped");
  while (turns.length > 0) turns.shift()!();
  assert.deepEqual(delivered.slice(0, 2), ["flooder:f0", "honest:h0"]);
  assert.equal(delivered.length, 5);
  await Promise.all([victim!.stop(), flooder!.stop(), honest!.stop()]);
});

Deno.test("InProcessNetwork refuses a frame past the transport limit at publish", async () => {
  const network = new InProcessNetwork();
  const [a] = await started(network, "a", "b");
  await assert.rejects(() => a!.publish(TOPIC, new Uint8Array(MAX_FRAME_BYTES + 1)), {
    name: "RangeError",
    message: `Cannot publish on "${TOPIC}": ${
      MAX_FRAME_BYTES + 1
    } bytes exceeds ${MAX_FRAME_BYTES}`,
  });
  await a!.stop();
});

Deno.test("InProcessNetwork logs each rejection with its code, bans past the budget both ways, and lets the pair reconnect when the ban ends", async () => {
  const time = clock();
  const logs = new Map<string, RejectionLog>();
  const network = new InProcessNetwork({
    now: time.now,
    maxRejections: 3,
    banMs: 60_000,
    rejectionLog: (node) => {
      const log = new RejectionLog({ now: time.now });
      logs.set(node, log);
      return log;
    },
  });
  const [victim, rogue] = await started(network, "victim", "rogue");
  const events: { at: string; event: PeerEvent }[] = [];
  victim!.onPeerEvent((event) => events.push({ at: "victim", event }));
  rogue!.onPeerEvent((event) => events.push({ at: "rogue", event }));
  const delivered: GossipMessage[] = [];
  const heardByRogue: GossipMessage[] = [];
  victim!.subscribe(TOPIC, (m) => {
    if (text(m.data) === "bad") throw new WireError(TOPIC, 'Unknown field "x"', "unknown_field");
    return text(m.data) === "meh" ? "reject" : "accept";
  }, (m) => delivered.push(m));
  rogue!.subscribe(TOPIC, () => "accept", (m) => heardByRogue.push(m));
  victim!.handle("/test/1", (request) => Promise.resolve(request));

  await rogue!.publish(TOPIC, bytes("bad"));
  await rogue!.publish(TOPIC, bytes("meh"));
  await rogue!.publish(TOPIC, bytes("bad"));
  await drain();
  assert.equal(network.isBanned("victim", "rogue"), false, "three rejections are within budget");
  assert.deepEqual(logs.get("victim")!.stats().byCode, { unknown_field: 2, invalid: 1 });
  assert.equal(logs.get("victim")!.stats().logged, 3, "each rejection written at warn");

  await rogue!.publish(TOPIC, bytes("bad"));
  await drain();
  assert.equal(network.isBanned("victim", "rogue"), true, "the fourth one bans");
  assert.ok(events.some((e) => e.at === "victim" && e.event.type === "disconnected"));
  assert.ok(events.some((e) => e.at === "rogue" && e.event.type === "disconnected"));
  assert.deepEqual(victim!.peers(), []);
  // Nothing passes either way while the ban stands.
  await rogue!.publish(TOPIC, bytes("good"));
  await victim!.publish(TOPIC, bytes("to the rogue"));
  await drain();
  assert.equal(delivered.length, 0);
  assert.equal(heardByRogue.length, 0);
  assert.ok(network.stats.banned >= 2);
  await assert.rejects(() => rogue!.request("victim", "/test/1", bytes("x")), {
    message: 'Cannot reach peer "victim": not connected',
  });

  time.advance(60_001);
  await rogue!.publish(TOPIC, bytes("good"));
  await drain();
  assert.equal(delivered.length, 1, "after the ban the rogue is heard again");
  assert.ok(events.some((e) => e.at === "victim" && e.event.type === "connected"));
  assert.deepEqual(victim!.peers(), ["rogue"]);
  assert.equal(text(await rogue!.request("victim", "/test/1", bytes("x"))), "x");
  await Promise.all([victim!.stop(), rogue!.stop()]);
});

Deno.test("InProcessNetwork rate-limits the rejection log per peer: a flood of bad messages writes a few lines", async () => {
  const time = clock();
  let log: RejectionLog | undefined;
  const network = new InProcessNetwork({
    now: time.now,
    maxRejections: 1_000,
    rejectionLog: () => log ??= new RejectionLog({ now: time.now }),
  });
  const [victim, rogue] = await started(network, "victim", "rogue");
  victim!.subscribe(TOPIC, () => "reject", () => {});
  for (let i = 0; i < 100; i++) await rogue!.publish(TOPIC, bytes(`${i}`));
  await drain();
  assert.deepEqual(log!.stats(), { byCode: { invalid: 100 }, logged: 5, suppressed: 95 });
  await Promise.all([victim!.stop(), rogue!.stop()]);
});

Deno.test("InProcessNetwork's ban() is the node's own: the peer is disconnected and refused", async () => {
  const network = new InProcessNetwork();
  const [victim, peer] = await started(network, "victim", "peer");
  const seen: PeerEvent[] = [];
  peer!.onPeerEvent((e) => seen.push(e));
  victim!.ban!("peer", "the peer actor's score fell below the threshold", 10_000);
  await drain();
  assert.deepEqual(seen, [{ type: "disconnected", peer: "victim" }]);
  assert.deepEqual(peer!.peers(), []);
  assert.equal(network.stats.bans, 1);
  await Promise.all([victim!.stop(), peer!.stop()]);
});

Deno.test("InProcessNetwork admits direct requests per peer: past the concurrency a request is refused, an oversized one counts against its sender", async () => {
  const network = new InProcessNetwork({
    direct: { perPeerConcurrency: 1 },
    maxRequestBytes: 16,
    maxRejections: 1,
  });
  const [server, client] = await started(network, "server", "client");
  const gate = Promise.withResolvers<void>();
  server!.handle("/slow/1", async (request) => {
    await gate.promise;
    return request;
  });
  const first = client!.request("server", "/slow/1", bytes("one"));
  await assert.rejects(() => client!.request("server", "/slow/1", bytes("two")), {
    message: /^Refused: busy: /,
  });
  gate.resolve();
  assert.equal(text(await first), "one");
  assert.equal(network.stats.directRefused, 1);
  await assert.rejects(() => client!.request("server", "/slow/1", new Uint8Array(17)), {
    message: "Refused: too_large: request of 17 bytes exceeds 16",
  });
  await assert.rejects(() => client!.request("server", "/slow/1", new Uint8Array(17)));
  assert.equal(network.isBanned("server", "client"), true, "the second oversized request bans");
  await Promise.all([server!.stop(), client!.stop()]);
});

Deno.test("InProcessNetwork counts a rejection its validator reported through the port's reject once, with the validator's code", async () => {
  const time = clock();
  let log: RejectionLog | undefined;
  const network = new InProcessNetwork({
    now: time.now,
    maxRejections: 2,
    rejectionLog: () => log ??= new RejectionLog({ now: time.now }),
  });
  const [victim, rogue] = await started(network, "victim", "rogue");
  // As the node's ingress does: it reports the rule it found, then rejects.
  victim!.subscribe(TOPIC, (m) => {
    victim!.reject!(m.from, m.topic, "rule_violation", "Bid from a peer that is not its worker");
    return "reject";
  }, () => {});
  await rogue!.publish(TOPIC, bytes("1"));
  await rogue!.publish(TOPIC, bytes("2"));
  await drain();
  assert.deepEqual(log!.stats().byCode, { rule_violation: 2 });
  assert.equal(network.isBanned("victim", "rogue"), false, "two rejections, within a budget of 2");
  await rogue!.publish(TOPIC, bytes("3"));
  await drain();
  assert.equal(network.isBanned("victim", "rogue"), true);
  await Promise.all([victim!.stop(), rogue!.stop()]);
});
