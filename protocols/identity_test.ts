import assert from "node:assert/strict";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { generateKeyPair, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import { IDENTITY_FILE, loadOrCreateIdentity } from "./identity.ts";

const posix = Deno.build.os !== "windows";

Deno.test("loadOrCreateIdentity() creates a 0600 Ed25519 key and returns it again on restart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dataDir = `${dir}/node/data`;
    const first = await loadOrCreateIdentity(dataDir);
    assert.equal(first.type, "Ed25519");
    if (posix) {
      const info = await Deno.stat(`${dataDir}/${IDENTITY_FILE}`);
      assert.equal((info.mode ?? 0) & 0o777, 0o600);
    }
    const second = await loadOrCreateIdentity(dataDir);
    assert.equal(peerIdFromPrivateKey(second).toString(), peerIdFromPrivateKey(first).toString());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "loadOrCreateIdentity() refuses a key file readable by others",
  ignore: !posix,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await loadOrCreateIdentity(dir);
      await Deno.chmod(`${dir}/${IDENTITY_FILE}`, 0o644);
      await assert.rejects(loadOrCreateIdentity(dir), (error: Error) => {
        assert.equal(error.name, "IdentityError");
        assert.match(error.message, /accessible to group or others: .* has mode 0644/);
        return true;
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("loadOrCreateIdentity() refuses a key that is not Ed25519 or not a key", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/${IDENTITY_FILE}`;
    await Deno.writeFile(path, privateKeyToProtobuf(await generateKeyPair("secp256k1")), {
      mode: 0o600,
    });
    await assert.rejects(loadOrCreateIdentity(dir), {
      name: "IdentityError",
      message: /not Ed25519/,
    });
    await Deno.writeFile(path, new Uint8Array([1, 2, 3]), { mode: 0o600 });
    await assert.rejects(loadOrCreateIdentity(dir), {
      name: "IdentityError",
      message: /not a libp2p private key/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
