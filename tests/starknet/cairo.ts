/**
 * The test double's own Cairo serialization, written from the Cairo ABI layout
 * (`core::byte_array::ByteArray`, `u256` as `low, high`, `Array<T>` as `len, ...items`) and the
 * member tables of `chain/CAIRO_INTERFACE.md`, and deliberately not from `chain/events.ts` or the
 * ABIs the adapter uses: a mistake the adapter's codec makes then shows as a decoding failure
 * instead of being shared by both sides.
 *
 * Also the SNIP-8 hash of an INVOKE v3 transaction, written from the spec of that hash, so the
 * double checks the signature over a hash it computed itself.
 *
 * @module
 */
import { hash } from "starknet";

/** A Cairo member type this layout knows. */
export type CairoType =
  | "ByteArray"
  | "u256"
  | "hash256"
  | "felt252"
  | "shortstring"
  | "bool"
  | "u8"
  | "u64"
  | "u32"
  | "Array<ByteArray>"
  | "ContractAddress"
  | "JobTerms"
  | "Attestation"
  | "Array<Attestation>";

/**
 * The members of the JobManager's structs (CAIRO_INTERFACE.md, "Chain-decided settlement"), in
 * order: a struct is its members' felts one after the other.
 */
export const STRUCT_LAYOUT: Readonly<
  Record<"JobTerms" | "Attestation", readonly (readonly [string, CairoType])[]>
> = {
  JobTerms: [
    ["verifier_count", "u8"],
    ["bid_window_ms", "u64"],
    ["execution_ms", "u64"],
    ["verification_ms", "u64"],
    ["spec_hash", "hash256"],
  ],
  Attestation: [
    ["job_id", "ByteArray"],
    ["verifier", "ByteArray"],
    ["attempt", "u64"],
    ["subject", "ByteArray"],
    ["verdict", "shortstring"],
    ["signature_r", "u256"],
    ["signature_s", "u256"],
  ],
};

/** `[engine field, Cairo type]` in member order, per event (CAIRO_INTERFACE.md, "Events"). */
export const EVENT_LAYOUT: Readonly<Record<string, readonly (readonly [string, CairoType])[]>> = {
  JobSubmitted: [
    ["jobId", "ByteArray"],
    ["client", "ByteArray"],
    ["amount", "u256"],
    ["modelHash", "hash256"],
    ["inputCommitment", "hash256"],
    ["minStake", "u256"],
    ["verifierCount", "u8"],
    ["bidWindowMs", "u64"],
    ["executionMs", "u64"],
    ["verificationMs", "u64"],
    ["specHash", "hash256"],
  ],
  WorkerAssigned: [
    ["jobId", "ByteArray"],
    ["worker", "ByteArray"],
    ["price", "u256"],
    ["verifiers", "Array<ByteArray>"],
    ["attempt", "u64"],
  ],
  AssignmentRevoked: [["jobId", "ByteArray"], ["worker", "ByteArray"]],
  ResultSubmitted: [["jobId", "ByteArray"], ["worker", "ByteArray"], ["commitment", "hash256"]],
  JobVerified: [["jobId", "ByteArray"]],
  JobDisputed: [["jobId", "ByteArray"]],
  PaymentReleased: [
    ["jobId", "ByteArray"],
    ["worker", "ByteArray"],
    ["amount", "u256"],
    ["fee", "u256"],
    ["change", "u256"],
  ],
  EscrowRefunded: [
    ["jobId", "ByteArray"],
    ["client", "ByteArray"],
    ["amount", "u256"],
    ["reason", "shortstring"],
  ],
  WorkerSlashed: [
    ["jobId", "ByteArray"],
    ["worker", "ByteArray"],
    ["amount", "u256"],
    ["reason", "shortstring"],
  ],
  WorkerStaked: [["worker", "ByteArray"], ["amount", "u256"], ["total", "u256"]],
  UnstakeRequested: [["worker", "ByteArray"], ["amount", "u256"], ["unlockAt", "u64"]],
  StakeWithdrawn: [["worker", "ByteArray"], ["amount", "u256"]],
  ReputationUpdated: [["worker", "ByteArray"], ["score", "u32"]],
  NodeRegistered: [["nodeId", "ByteArray"], ["account", "ContractAddress"]],
  FailureReported: [["jobId", "ByteArray"], ["worker", "ByteArray"], ["reason", "ByteArray"]],
  AttestationRecorded: [
    ["jobId", "ByteArray"],
    ["verifier", "ByteArray"],
    ["attempt", "u64"],
    ["verdict", "shortstring"],
  ],
  KeyRegistered: [["account", "ByteArray"], ["publicKey", "hash256"]],
  VerifierRegistered: [["verifier", "ByteArray"]],
};

/** Which contract emits each event (CAIRO_INTERFACE.md). */
export const EVENT_EMITTER: Readonly<Record<string, "jobManager" | "cdcPool">> = {
  JobSubmitted: "jobManager",
  WorkerAssigned: "jobManager",
  AssignmentRevoked: "jobManager",
  ResultSubmitted: "jobManager",
  JobVerified: "jobManager",
  JobDisputed: "jobManager",
  PaymentReleased: "jobManager",
  EscrowRefunded: "jobManager",
  WorkerSlashed: "cdcPool",
  WorkerStaked: "cdcPool",
  UnstakeRequested: "cdcPool",
  StakeWithdrawn: "cdcPool",
  ReputationUpdated: "cdcPool",
  NodeRegistered: "cdcPool",
  FailureReported: "jobManager",
  AttestationRecorded: "jobManager",
  KeyRegistered: "cdcPool",
  VerifierRegistered: "cdcPool",
};

/** External functions' inputs (CAIRO_INTERFACE.md, "JobManager" and "CDC Pool"). */
export const FUNCTION_INPUTS: Readonly<Record<string, readonly CairoType[]>> = {
  submit_job: ["ByteArray", "u256", "u256", "hash256", "hash256"],
  submit_job_with_terms: ["ByteArray", "u256", "u256", "hash256", "hash256", "JobTerms"],
  assign_worker: ["ByteArray", "ByteArray", "u256", "Array<ByteArray>"],
  revoke_assignment: ["ByteArray", "ByteArray"],
  submit_result: ["ByteArray", "hash256"],
  record_verification: ["ByteArray", "bool"],
  report_failure: ["ByteArray", "ByteArray"],
  submit_attestations: ["Array<Attestation>"],
  report_double_signing: ["Attestation", "Attestation"],
  release_payment: ["ByteArray"],
  refund: ["ByteArray", "shortstring"],
  slash_worker: ["ByteArray", "ByteArray", "shortstring"],
  register_node: ["ByteArray"],
  stake: ["u256"],
  stake_as_verifier: ["u256"],
  register_key: ["hash256"],
  request_unstake: ["u256"],
  withdraw: [],
  node_id_of: ["ContractAddress"],
  account_of: ["ByteArray"],
  stake_of: ["ByteArray"],
  reputation_of: ["ByteArray"],
  escrow_totals: [],
  escrow_of: ["ByteArray"],
  stake_totals: [],
  cdc_pool: [],
  payment_token: [],
};

/** Functions of each contract, by name. */
export const CONTRACT_FUNCTIONS = {
  jobManager: [
    "submit_job",
    "submit_job_with_terms",
    "assign_worker",
    "revoke_assignment",
    "submit_result",
    "record_verification",
    "report_failure",
    "submit_attestations",
    "report_double_signing",
    "release_payment",
    "refund",
    "slash_worker",
    "escrow_totals",
    "escrow_of",
    "cdc_pool",
    "payment_token",
  ],
  cdcPool: [
    "register_node",
    "stake",
    "stake_as_verifier",
    "register_key",
    "request_unstake",
    "withdraw",
    "node_id_of",
    "account_of",
    "stake_of",
    "reputation_of",
    "stake_totals",
  ],
} as const;

const WORD_BYTES = 31;
const LOW_MASK = (1n << 128n) - 1n;

/** A felt as the spec writes it: `0x` and lowercase hex without leading zeros. */
export function felt(value: bigint | number): string {
  return `0x${BigInt(value).toString(16)}`;
}

/** `sn_keccak(name)`: the selector of a function or event. */
export function selector(name: string): string {
  return felt(BigInt(hash.getSelectorFromName(name)));
}

function bytesToFelt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function feltToBytes(value: bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  if (value !== 0n) throw new RangeError("Word longer than its length");
  return out;
}

/** Serializes one value of `type`. */
export function encodeValue(type: CairoType, value: unknown): bigint[] {
  switch (type) {
    case "ByteArray": {
      const bytes = new TextEncoder().encode(String(value));
      const words = Math.floor(bytes.length / WORD_BYTES);
      const out = [BigInt(words)];
      for (let i = 0; i < words; i++) {
        out.push(bytesToFelt(bytes.subarray(i * WORD_BYTES, (i + 1) * WORD_BYTES)));
      }
      const rest = bytes.subarray(words * WORD_BYTES);
      out.push(bytesToFelt(rest), BigInt(rest.length));
      return out;
    }
    case "u256": {
      const n = BigInt(value as bigint);
      return [n & LOW_MASK, n >> 128n];
    }
    case "hash256":
      // An absent hash (a job submitted without a spec hash) is the zero hash.
      return encodeValue("u256", value === undefined ? 0n : BigInt(`0x${String(value)}`));
    case "shortstring":
      return [bytesToFelt(new TextEncoder().encode(String(value)))];
    case "bool":
      return [value === true ? 1n : 0n];
    case "felt252":
    case "u8":
    case "u64":
    case "u32":
    case "ContractAddress":
      return [BigInt(value as bigint | number)];
    case "Array<ByteArray>": {
      const items = value as readonly string[];
      return [BigInt(items.length), ...items.flatMap((item) => encodeValue("ByteArray", item))];
    }
    case "JobTerms":
    case "Attestation": {
      const fields = value as Readonly<Record<string, unknown>>;
      return STRUCT_LAYOUT[type].flatMap(([name, member]) => encodeValue(member, fields[name]));
    }
    case "Array<Attestation>": {
      const items = value as readonly unknown[];
      return [BigInt(items.length), ...items.flatMap((item) => encodeValue("Attestation", item))];
    }
  }
}

/** Reads felts one at a time; throws a `RangeError` past the end. */
export class FeltReader {
  #index = 0;
  constructor(readonly felts: readonly bigint[]) {}

  next(): bigint {
    const value = this.felts[this.#index++];
    if (value === undefined) throw new RangeError("Input too short");
    return value;
  }

  get done(): boolean {
    return this.#index >= this.felts.length;
  }

  read(type: CairoType): unknown {
    switch (type) {
      case "ByteArray": {
        const words = Number(this.next());
        // Ids are at most 128 characters, a failure reason 200 (at most 600 UTF-8 bytes).
        if (words > 32) throw new RangeError("ByteArray too long");
        const parts: Uint8Array[] = [];
        for (let i = 0; i < words; i++) parts.push(feltToBytes(this.next(), WORD_BYTES));
        const pending = this.next();
        const length = Number(this.next());
        if (length >= WORD_BYTES) throw new RangeError("ByteArray pending word too long");
        parts.push(feltToBytes(pending, length));
        const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let offset = 0;
        for (const part of parts) {
          bytes.set(part, offset);
          offset += part.length;
        }
        return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      }
      case "u256": {
        const low = this.next();
        const high = this.next();
        if (low > LOW_MASK || high > LOW_MASK) throw new RangeError("u256 limb out of range");
        return low + (high << 128n);
      }
      case "hash256":
        return (this.read("u256") as bigint).toString(16).padStart(64, "0");
      case "shortstring": {
        const value = this.next();
        const bytes: number[] = [];
        for (let v = value; v > 0n; v >>= 8n) bytes.unshift(Number(v & 0xffn));
        return String.fromCharCode(...bytes);
      }
      case "bool": {
        const value = this.next();
        if (value > 1n) throw new RangeError("bool out of range");
        return value === 1n;
      }
      case "u8":
        return this.#bounded(8n);
      case "u64":
        return this.#bounded(64n);
      case "u32":
        return this.#bounded(32n);
      case "felt252":
      case "ContractAddress":
        return this.next();
      case "Array<ByteArray>": {
        const length = Number(this.next());
        if (length > 64) throw new RangeError("Array too long");
        return Array.from({ length }, () => this.read("ByteArray"));
      }
      case "JobTerms":
      case "Attestation":
        return Object.fromEntries(
          STRUCT_LAYOUT[type].map(([name, member]) => [name, this.read(member)]),
        );
      case "Array<Attestation>": {
        const length = Number(this.next());
        if (length > 64) throw new RangeError("Array too long");
        return Array.from({ length }, () => this.read("Attestation"));
      }
    }
  }

  #bounded(bits: bigint): bigint {
    const value = this.next();
    if (value >> bits !== 0n) throw new RangeError(`u${bits} out of range`);
    return value;
  }
}

/** An event's `keys` and `data` from its engine fields, as the Cairo contract would emit it. */
export function encodeEvent(
  name: string,
  fields: Readonly<Record<string, unknown>>,
): { keys: string[]; data: string[] } {
  const layout = EVENT_LAYOUT[name];
  if (layout === undefined) throw new TypeError(`Unknown event: ${name}`);
  const data = layout.flatMap(([field, type]) => encodeValue(type, fields[field])).map(felt);
  return { keys: [selector(name)], data };
}

/** Resource bounds of an INVOKE v3 transaction, as bigints. */
export interface Bounds {
  readonly l1_gas: { max_amount: bigint; max_price_per_unit: bigint };
  readonly l2_gas: { max_amount: bigint; max_price_per_unit: bigint };
  readonly l1_data_gas: { max_amount: bigint; max_price_per_unit: bigint };
}

function shortFelt(text: string): bigint {
  return bytesToFelt(new TextEncoder().encode(text));
}

function poseidon(values: readonly bigint[]): bigint {
  return BigInt(hash.computePoseidonHashOnElements(values.map(felt)));
}

/**
 * The SNIP-8 hash of an INVOKE v3 transaction: `poseidon("invoke", version, sender,
 * poseidon(tip, l1_gas, l2_gas, l1_data_gas bounds), poseidon(paymaster_data), chain_id, nonce,
 * nonce_da << 32 | fee_da, poseidon(account_deployment_data), poseidon(calldata))`, each
 * resource bound packed as `name << 192 | max_amount << 128 | max_price_per_unit`.
 */
export function invokeV3Hash(tx: {
  version: bigint;
  sender: bigint;
  tip: bigint;
  bounds: Bounds;
  paymasterData: readonly bigint[];
  chainId: bigint;
  nonce: bigint;
  nonceDaMode: bigint;
  feeDaMode: bigint;
  accountDeploymentData: readonly bigint[];
  calldata: readonly bigint[];
}): bigint {
  const bound = (name: string, b: { max_amount: bigint; max_price_per_unit: bigint }) =>
    (shortFelt(name) << 192n) + (b.max_amount << 128n) + b.max_price_per_unit;
  const feeHash = poseidon([
    tx.tip,
    bound("L1_GAS", tx.bounds.l1_gas),
    bound("L2_GAS", tx.bounds.l2_gas),
    bound("L1_DATA", tx.bounds.l1_data_gas),
  ]);
  return poseidon([
    shortFelt("invoke"),
    tx.version,
    tx.sender,
    feeHash,
    poseidon(tx.paymasterData),
    tx.chainId,
    tx.nonce,
    (tx.nonceDaMode << 32n) + tx.feeDaMode,
    poseidon(tx.accountDeploymentData),
    poseidon(tx.calldata),
  ]);
}
