import assert from "node:assert/strict";
import { Driver } from "../tests/_drive.ts";
import { peerMachine } from "./peer_machine.ts";

const config = {
  heartbeatMs: 1_000,
  maxMissedHeartbeats: 3,
  initialScore: 100,
  banThreshold: 0,
  banMs: 60_000,
};
const active = () => {
  const d = new Driver(peerMachine, { peerId: "p1", at: 0, config });
  d.send({ type: "peer.connected", at: 10 });
  d.send({ type: "peer.identified", at: 20, protocols: ["/ciro/snapshot/1.0.0"] });
  return d;
};

Deno.test("peerMachine() goes discovered -> connected -> active and arms a heartbeat deadline", () => {
  const d = new Driver(peerMachine, { peerId: "p1", at: 0, config });
  assert.equal(d.state, "discovered");
  d.send({ type: "peer.connected", at: 10 });
  assert.equal(d.state, "connected");
  d.send({ type: "peer.identified", at: 20, protocols: ["/x"] });
  assert.equal(d.state, "active");
  assert.deepEqual(d.context.protocols, ["/x"]);
  assert.deepEqual(d.context.deadlines, { heartbeat: 1_520 });
  assert.deepEqual(d.emitted("timer.arm"), [{ type: "timer.arm", key: "heartbeat", at: 1_520 }]);
  d.send({ type: "peer.heartbeat", at: 900, rttMs: 3 });
  assert.equal(d.context.deadlines.heartbeat, 2_400);
  assert.equal(d.context.rttMs, 3);
});

Deno.test("peerMachine() turns suspect on missed heartbeats and disconnects after too many", () => {
  const d = active();
  d.send({ type: "timer.fired", at: 1_520, key: "heartbeat", due: 1_520 });
  assert.equal(d.state, "suspect");
  assert.equal(d.context.missedHeartbeats, 1);
  d.send({ type: "peer.heartbeat", at: 1_600, rttMs: 1 });
  assert.equal(d.state, "active");
  assert.equal(d.context.missedHeartbeats, 0);

  d.send({ type: "timer.fired", at: 3_100, key: "heartbeat", due: 3_100 });
  const due2 = d.context.deadlines.heartbeat;
  d.send({ type: "timer.fired", at: due2, key: "heartbeat", due: due2 });
  assert.equal(d.state, "suspect");
  assert.equal(d.context.missedHeartbeats, 2);
  const due3 = d.context.deadlines.heartbeat;
  const effects = d.send({ type: "timer.fired", at: due3, key: "heartbeat", due: due3 });
  assert.equal(d.state, "disconnected");
  assert.deepEqual(effects.filter((e) => e.type === "peer.withdraw_bids"), [{
    type: "peer.withdraw_bids",
    peer: "p1",
  }]);
  d.send({ type: "peer.connected", at: 9_000 });
  assert.equal(d.state, "connected");
});

Deno.test("peerMachine() ignores a stale heartbeat deadline", () => {
  const d = active();
  d.send({ type: "peer.heartbeat", at: 900, rttMs: 3 });
  assert.equal(d.can({ type: "timer.fired", at: 1_520, key: "heartbeat", due: 1_520 }), false);
});

Deno.test("peerMachine() is banned when its score falls below the threshold, and the ban lifts", () => {
  const d = active();
  for (let i = 0; i < 10; i++) {
    d.send({ type: "peer.scored", at: 100 + i, delta: -10, reason: `bad message ${i}` });
  }
  assert.equal(d.state, "active", "score 0 is not below threshold 0");
  const effects = d.send({ type: "peer.scored", at: 200, delta: -10, reason: "forged bid" });
  assert.equal(d.state, "banned");
  assert.equal(d.context.score, -10);
  assert.equal(d.context.offences.at(-1), "forged bid");
  assert.equal(effects.filter((e) => e.type === "peer.disconnect").length, 1);
  assert.equal(effects.filter((e) => e.type === "peer.withdraw_bids").length, 1);
  assert.deepEqual(d.context.deadlines, { ban: 60_200 });
  assert.equal(d.can({ type: "peer.connected", at: 300 }), false);
  d.send({ type: "timer.fired", at: 60_200, key: "ban", due: 60_200 });
  assert.equal(d.state, "disconnected");
  assert.equal(d.context.score, 100);
});
