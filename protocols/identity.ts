/**
 * The node's network identity: an Ed25519 key kept in `<dataDir>/identity.key` (the libp2p
 * protobuf encoding, file mode 0600), so the peer id survives restarts. Like ssh, a key file
 * that group or others can read is refused rather than used: the key signs every gossip
 * message and bid, and a copy of it lets anyone speak as this node.
 *
 * ```ts ignore
 * import { loadOrCreateIdentity } from "./identity.ts";
 * import { peerIdFromPrivateKey } from "@libp2p/peer-id";
 *
 * const key = await loadOrCreateIdentity("./data/node-a");
 * console.log(peerIdFromPrivateKey(key).toString()); // the same on every start
 * ```
 *
 * @module
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";

/** The file name of the key inside the data directory. */
export const IDENTITY_FILE = "identity.key";

/** The identity key file exists but cannot be used (unsafe permissions, bad content). */
export class IdentityError extends Error {
  override readonly name = "IdentityError";
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.path = path;
  }
}

/**
 * Loads the Ed25519 key from `<dataDir>/identity.key`, or creates the directory (mode 0700) and
 * a new key (mode 0600) when there is none. Throws {@link IdentityError} when the file is
 * readable or writable by group or others, or does not hold an Ed25519 key.
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<PrivateKey> {
  const path = `${dataDir.replace(/\/+$/, "")}/${IDENTITY_FILE}`;
  try {
    return await loadIdentity(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const key = await generateKeyPair("Ed25519");
  try {
    await Deno.writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, createNew: true });
  } catch (error) {
    // Another process created it first: use theirs, so both agree on the peer id.
    if (error instanceof Deno.errors.AlreadyExists) return await loadIdentity(path);
    throw error;
  }
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  return key;
}

async function loadIdentity(path: string): Promise<PrivateKey> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new IdentityError(path, `Identity key is not a file: ${path}`);
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
    throw new IdentityError(
      path,
      `Identity key file is accessible to group or others: ${path} has mode ${mode}; run "chmod 600 ${path}"`,
    );
  }
  const bytes = await Deno.readFile(path);
  let key: PrivateKey;
  try {
    key = privateKeyFromProtobuf(bytes);
  } catch (error) {
    throw new IdentityError(path, `Identity key file is not a libp2p private key: ${path}`, {
      cause: error,
    });
  }
  if (key.type !== "Ed25519") {
    throw new IdentityError(path, `Identity key is not Ed25519: ${path} holds a ${key.type} key`);
  }
  return key;
}
