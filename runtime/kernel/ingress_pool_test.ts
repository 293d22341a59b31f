import assert from "node:assert/strict";
import { ActorTree } from "../../actors/tree.ts";
import { encodeMessage, TOPICS } from "../../protocols/messages.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import { Ingress } from "./ingress.ts";

Deno.test("Ingress.verifierPool() follows capability gossip, departures and this node's own roles", () => {
  const tree = new ActorTree({ self: "me", roles: ["client"], now: () => 0, onEffect: () => {} });
  const ingress = new Ingress({
    self: "me",
    tree,
    network: {} as NetworkPort,
    submit: () => {},
    onRejected: () => {},
    escrowSeen: () => true,
  });
  const capabilities = (node: string, roles: string[]) => {
    const data = encodeMessage(TOPICS.capabilities, {
      type: "node.capabilities",
      node,
      roles,
      hardware: "cpu",
      models: [],
    } as never);
    const message = { topic: TOPICS.capabilities, from: node, data };
    assert.equal(ingress.validate(message), "accept");
    ingress.receive(message);
  };
  capabilities("v2", ["verifier"]);
  capabilities("v1", ["verifier"]);
  capabilities("w1", ["worker"]);
  assert.deepEqual(ingress.verifierPool(), ["v1", "v2"], "sorted, workers left out");
  const pool = ingress.verifierPool();
  pool.push("mallory");
  assert.deepEqual(ingress.verifierPool(), ["v1", "v2"], "a caller's copy is its own");

  capabilities("w1", ["worker", "verifier"]);
  assert.deepEqual(ingress.verifierPool(), ["v1", "v2", "w1"], "a node that becomes a verifier");
  capabilities("v2", ["worker"]);
  assert.deepEqual(ingress.verifierPool(), ["v1", "w1"], "a node that stops verifying");
  ingress.peerEvent({ type: "disconnected", peer: "v1" });
  assert.deepEqual(ingress.verifierPool(), ["w1"], "a verifier that left");
  ingress.setOwn({ roles: ["client", "verifier"], hardware: "cpu" });
  assert.deepEqual(ingress.verifierPool(), ["me", "w1"], "this node's own roles");
});
