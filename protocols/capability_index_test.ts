import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { capabilityCid, capabilityKey } from "./capability_index.ts";
import { createLibp2pHost } from "./libp2p_host.ts";

Deno.test("capabilityKey() namespaces models, hardware and roles", () => {
  assert.equal(
    capabilityKey({ type: "model", hash: "ab".repeat(32) }),
    `ciro:cap:model:${"ab".repeat(32)}`,
  );
  assert.equal(capabilityKey({ type: "hardware", hardware: "gpu" }), "ciro:cap:hw:gpu");
  assert.equal(capabilityKey({ type: "role", role: "worker" }), "ciro:cap:role:worker");
  assert.throws(() => capabilityKey({ type: "model", hash: "AB" }), TypeError);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => capabilityKey({ type: "role", role: "admin" as any }), TypeError);
});

Deno.test("capabilityCid() is a CIDv1 (raw) of the sha-256 of the key", async () => {
  const cid = await capabilityCid({ type: "hardware", hardware: "gpu" });
  assert.equal(cid.version, 1);
  assert.equal(cid.code, 0x55);
  assert.equal(cid.multihash.code, 0x12);
  const expected = createHash("sha256").update("ciro:cap:hw:gpu").digest("hex");
  assert.equal(
    Array.from(cid.multihash.digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    expected,
  );
  assert.equal(
    cid.toString(),
    (await capabilityCid({ type: "hardware", hardware: "gpu" })).toString(),
    "deterministic",
  );
});

Deno.test("CapabilityIndex.findProviders() checks its limit", async () => {
  const host = await createLibp2pHost({ listen: ["/ip4/127.0.0.1/tcp/0"], heartbeatMs: 0 });
  try {
    await assert.rejects(
      host.capabilities.findProviders({ type: "hardware", hardware: "cpu" }, { limit: 0 }),
      RangeError,
    );
  } finally {
    await host.stop();
  }
});
