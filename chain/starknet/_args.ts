/**
 * Private to the Starknet adapter: its argument checks and encodings (addresses, u256 amounts,
 * hashes, ids as `ByteArray` bytes, short strings, the Cairo `Attestation` struct), the account
 * key ({@link resolvePrivateKey}) and the attestation key derived from it.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { validateAndParseAddress } from "starknet";
import type { SignedAttestation } from "../port.ts";
import { AccountKey } from "../settlement.ts";

/** The environment variable {@link resolvePrivateKey} reads the account key from. */
export const PRIVATE_KEY_ENV = "CIRO_STARKNET_PRIVATE_KEY";
const SIGNATURE_PATTERN = /^[0-9a-f]{128}$/;
/** The Stark curve order; a private key is in `1..order-1`. */
const CURVE_ORDER = 0x0800000000000010ffffffffffffffffb781126dcae7b2321e66a241adc64d2fn;
const U256 = 2n ** 256n;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const SHORT_STRING_PATTERN = /^[\x20-\x7e]{1,31}$/;

export function checkAddress(field: string, value: string): string {
  try {
    return validateAndParseAddress(value).toLowerCase();
  } catch {
    throw new TypeError(
      `Invalid ${field}: expected a Starknet address, got ${JSON.stringify(value)}`,
    );
  }
}

export function checkCount(field: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Invalid ${field}: expected an integer of at least ${min}, got ${value}`);
  }
  return value;
}

export function checkAmount(field: string, value: bigint): bigint {
  if (typeof value !== "bigint" || value < 0n || value >= U256) {
    throw new RangeError(`Invalid ${field}: expected a u256 bigint, got ${String(value)}`);
  }
  return value;
}

export function checkHash(field: string, value: string): bigint {
  if (typeof value !== "string" || !HASH_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${field}: expected 64 lowercase hex digits, got ${JSON.stringify(value)}`,
    );
  }
  return BigInt(`0x${value}`);
}

export function checkId(field: string, value: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new TypeError(
      `Invalid ${field}: expected a non-empty string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * A `ByteArray` argument as its UTF-8 bytes: starknet.js reads a string that looks like a hex
 * number (a node id such as the account address) as that number's bytes.
 */
export function text(value: string): Uint8Array {
  return new TextEncoder().encode(value);
}

/**
 * A signed attestation as the Cairo `Attestation` struct takes it: the Ed25519 signature split
 * into `signature_r` and `signature_s` (32 bytes each, big-endian). A signature that is not 128
 * lowercase hex digits goes as zeros, which no key signs: the contract refuses it
 * (`bad_signature`), as the local ledger and the EVM do.
 */
export function cairoAttestation(a: SignedAttestation): Record<string, unknown> {
  const wellFormed = SIGNATURE_PATTERN.test(a.signature);
  return {
    job_id: text(a.jobId),
    verifier: text(a.verifier),
    attempt: BigInt(a.attempt),
    subject: text(a.subject),
    verdict: a.verdict,
    signature_r: wellFormed ? BigInt(`0x${a.signature.slice(0, 64)}`) : 0n,
    signature_s: wellFormed ? BigInt(`0x${a.signature.slice(64)}`) : 0n,
  };
}

/** The attestation key an account has by default: derived from its Stark private key. */
export function derivedAttestationKey(privateKey: string): AccountKey {
  const seed = createHash("sha256")
    .update(`ciro.starknet.attestation-key|${BigInt(privateKey).toString(16)}`)
    .digest();
  return new AccountKey(new Uint8Array(seed));
}

export function checkReason(field: string, value: string): string {
  if (typeof value !== "string" || !SHORT_STRING_PATTERN.test(value)) {
    throw new TypeError(
      `Invalid ${field}: expected a Cairo short string, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/**
 * Reads the account key: `privateKey`, else the file `privateKeyFile`, else the
 * `CIRO_STARKNET_PRIVATE_KEY` environment variable. Throws a `TypeError` that never quotes the
 * key when it is missing or not a valid Stark key.
 */
export async function resolvePrivateKey(
  options: { privateKey?: string; privateKeyFile?: string; signal?: AbortSignal },
): Promise<string> {
  let key = options.privateKey;
  let source = "privateKey";
  if (key === undefined && options.privateKeyFile !== undefined) {
    source = `key file ${options.privateKeyFile}`;
    try {
      key = (await Deno.readTextFile(
        options.privateKeyFile,
        options.signal ? { signal: options.signal } : {},
      )).trim();
    } catch (cause) {
      throw new TypeError(`Cannot read the Starknet private key: ${source} is not readable`, {
        cause,
      });
    }
  }
  if (key === undefined) {
    source = `environment variable ${PRIVATE_KEY_ENV}`;
    key = Deno.env.get(PRIVATE_KEY_ENV)?.trim();
  }
  if (key === undefined || key.length === 0) {
    throw new TypeError(
      `Missing Starknet private key: pass privateKey or privateKeyFile, or set ${PRIVATE_KEY_ENV}`,
    );
  }
  let value: bigint | undefined;
  if (/^0x[0-9a-fA-F]{1,64}$/.test(key)) value = BigInt(key);
  if (value === undefined || value <= 0n || value >= CURVE_ORDER) {
    throw new TypeError(
      `Invalid Starknet private key from ${source}: expected 0x hex between 1 and the curve order`,
    );
  }
  return key;
}
