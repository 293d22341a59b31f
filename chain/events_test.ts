/**
 * Tests of the chain event codec: property round trips for every event, the exact layout of
 * ids, amounts, commitments and reasons (checked against starknet.js), and every decode error.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { byteArray, hash, shortString } from "starknet";
import {
  type ChainDecodeError,
  decodeChainEvent,
  encodeChainEvent,
  EVENT_SELECTORS,
  type RawStarknetEvent,
} from "./events.ts";
import type { ChainEvent } from "./port.ts";

const ADDRESS = "0x4c0ca1";

const id = fc.oneof(
  fc.string({ minLength: 1, maxLength: 128 }),
  fc.stringMatching(/^[A-Za-z0-9._:\-]{1,128}$/),
  // libp2p peer ids: 52 characters of base58
  fc.stringMatching(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/),
);
const u256 = fc.bigInt({ min: 0n, max: 2n ** 256n - 1n });
const sha = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) =>
  Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
);
const meta = fc.record({
  blockNumber: fc.nat(),
  blockHash: fc.stringMatching(/^0x[0-9a-f]{64}$/),
  txHash: fc.stringMatching(/^0x[0-9a-f]{64}$/),
  eventIndex: fc.nat({ max: 1000 }),
});
const safeNat = fc.nat({ max: Number.MAX_SAFE_INTEGER });

const chainEvent: fc.Arbitrary<ChainEvent> = fc.oneof(
  fc.record({
    name: fc.constant("JobSubmitted" as const),
    jobId: id,
    client: id,
    amount: u256,
    modelHash: sha,
    inputCommitment: sha,
    minStake: u256,
    verifierCount: fc.integer({ min: 0, max: 64 }),
    bidWindowMs: fc.integer({ min: 1, max: 2 ** 40 }),
    executionMs: fc.integer({ min: 1, max: 2 ** 40 }),
    verificationMs: fc.integer({ min: 1, max: 2 ** 40 }),
  }),
  fc.record({
    name: fc.constant("WorkerAssigned" as const),
    jobId: id,
    worker: id,
    price: u256,
    verifiers: fc.array(id, { maxLength: 8 }),
    attempt: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
  }),
  fc.record({ name: fc.constant("AssignmentRevoked" as const), jobId: id, worker: id }),
  fc.record({
    name: fc.constant("ResultSubmitted" as const),
    jobId: id,
    worker: id,
    commitment: sha,
  }),
  fc.record({ name: fc.constant("JobVerified" as const), jobId: id }),
  fc.record({ name: fc.constant("JobDisputed" as const), jobId: id }),
  fc.record({
    name: fc.constant("PaymentReleased" as const),
    jobId: id,
    worker: id,
    amount: u256,
    fee: u256,
    change: u256,
  }),
  fc.record({
    name: fc.constant("EscrowRefunded" as const),
    jobId: id,
    client: id,
    amount: u256,
    reason: fc.constantFrom("expired", "cancelled", "disputed", "failed" as const),
  }),
  fc.record({
    name: fc.constant("WorkerSlashed" as const),
    jobId: id,
    worker: id,
    amount: u256,
    reason: fc.constantFrom(
      "invalid_compute",
      "downtime",
      "double_signing",
      "coordinated_attack" as const,
    ),
  }),
  fc.record({ name: fc.constant("WorkerStaked" as const), worker: id, amount: u256, total: u256 }),
  fc.record({
    name: fc.constant("UnstakeRequested" as const),
    worker: id,
    amount: u256,
    unlockAt: safeNat,
  }),
  fc.record({ name: fc.constant("StakeWithdrawn" as const), worker: id, amount: u256 }),
  fc.record({ name: fc.constant("ReputationUpdated" as const), worker: id, score: safeNat }),
  fc.record({
    name: fc.constant("FailureReported" as const),
    jobId: id,
    worker: id,
    reason: fc.string({ maxLength: 80 }),
  }),
  fc.record({
    name: fc.constant("AttestationRecorded" as const),
    jobId: id,
    verifier: id,
    attempt: safeNat,
    verdict: fc.constantFrom("valid", "invalid" as const),
  }),
  fc.record({ name: fc.constant("KeyRegistered" as const), account: id, publicKey: sha }),
  fc.record({ name: fc.constant("VerifierRegistered" as const), verifier: id }),
).chain((body) => meta.map((m) => ({ ...m, ...body }) as ChainEvent));

const base = { blockNumber: 3, blockHash: "0xb", txHash: "0xt", eventIndex: 1 };
const SHA_A = "00".repeat(31) + "01";
const SHA_B = "ff".repeat(32);

function expectDecodeError(raw: RawStarknetEvent, code: string, pattern: RegExp): void {
  assert.throws(() => decodeChainEvent(raw), (error: unknown) => {
    assert.ok(error instanceof Error);
    assert.equal(error.name, "ChainDecodeError");
    assert.equal((error as ChainDecodeError).code, code);
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\.$/);
    return true;
  });
}

Deno.test("encodeChainEvent() and decodeChainEvent() round-trip every event", () => {
  fc.assert(
    fc.property(chainEvent, (event) => {
      const raw = encodeChainEvent(event, ADDRESS);
      assert.equal(raw.keys.length, 1);
      assert.equal(raw.keys[0], EVENT_SELECTORS[event.name]);
      for (const felt of raw.data) assert.match(felt, /^0x[0-9a-f]+$/);
      assert.deepEqual(decodeChainEvent(raw, { fromAddress: ADDRESS }), event);
      // A JSON round trip (how the local ledger stores events) changes nothing.
      const stored = JSON.parse(JSON.stringify(raw)) as RawStarknetEvent;
      assert.deepEqual(decodeChainEvent(stored), event);
    }),
    { numRuns: 500 },
  );
});

Deno.test("decodeChainEvent() rejects every strict prefix of a valid event as truncated", () => {
  fc.assert(
    fc.property(chainEvent, (event) => {
      const raw = encodeChainEvent(event, ADDRESS);
      for (let n = 0; n < raw.data.length; n++) {
        const cut = { ...raw, data: raw.data.slice(0, n) };
        assert.throws(() => decodeChainEvent(cut), (error: unknown) => {
          assert.equal((error as Error).name, "ChainDecodeError");
          // A cut inside a byte array can look like a shorter, valid byte array followed by
          // too little data; either way the decoder must not accept it.
          return true;
        });
      }
    }),
    { numRuns: 100 },
  );
});

Deno.test("EVENT_SELECTORS are starknet_keccak of the event names", () => {
  assert.equal(Object.keys(EVENT_SELECTORS).length, 17);
  for (const [name, selector] of Object.entries(EVENT_SELECTORS)) {
    assert.equal(selector, hash.getSelectorFromName(name));
    assert.equal(BigInt(selector), BigInt(hash.starknetKeccak(name)));
  }
  assert.equal(new Set(Object.values(EVENT_SELECTORS)).size, 17);
});

Deno.test("encodeChainEvent() writes ids as Cairo ByteArrays like starknet.js", () => {
  for (
    const text of [
      "j1",
      "",
      "a".repeat(31),
      "a".repeat(62),
      "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
      "x".repeat(128),
    ]
  ) {
    const raw = encodeChainEvent({ ...base, name: "JobVerified", jobId: text }, ADDRESS);
    const expected = byteArray.byteArrayFromString(text);
    assert.deepEqual(
      raw.data.map(BigInt),
      [
        BigInt(expected.data.length),
        ...expected.data.map(BigInt),
        BigInt(expected.pending_word),
        BigInt(expected.pending_word_len),
      ],
    );
    assert.equal(raw.data.length, Math.floor(text.length / 31) + 3);
  }
});

Deno.test("encodeChainEvent() writes u256 as low then high and reasons as short strings", () => {
  const amount = 2n ** 128n * 7n + 5n;
  const raw = encodeChainEvent({
    ...base,
    name: "EscrowRefunded",
    jobId: "j",
    client: "c",
    amount,
    reason: "expired",
  }, ADDRESS);
  // j: [0, 'j', 1], c: [0, 'c', 1], amount: [5, 7], reason
  assert.deepEqual(raw.data.slice(6), ["0x5", "0x7", shortString.encodeShortString("expired")]);
  const submitted = encodeChainEvent({
    ...base,
    name: "JobSubmitted",
    jobId: "j",
    client: "c",
    amount: 1n,
    modelHash: SHA_A,
    inputCommitment: SHA_B,
    minStake: 2n ** 128n + 3n,
    verifierCount: 4,
    bidWindowMs: 2_000,
    executionMs: 30_000,
    verificationMs: 45_000,
  }, ADDRESS);
  // ..., amount, modelHash, inputCommitment, then the escrow's terms: minStake as a u256
  // (low, high), the count and the three durations as one felt each.
  assert.deepEqual(submitted.data.slice(6), [
    "0x1",
    "0x0",
    "0x1",
    "0x0",
    `0x${"ff".repeat(16)}`,
    `0x${"ff".repeat(16)}`,
    "0x3",
    "0x1",
    "0x4",
    "0x7d0",
    "0x7530",
    "0xafc8",
    // No spec hash: the zero hash (low, high).
    "0x0",
    "0x0",
  ]);
  // A spec hash as a u256 (low, high), decoded back; the zero hash decodes as absent.
  const specHash = "12".repeat(16) + "34".repeat(16);
  const withHash = encodeChainEvent(
    { ...(decodeChainEvent(submitted)), specHash } as never,
    ADDRESS,
  );
  assert.deepEqual(withHash.data.slice(-2), [`0x${"34".repeat(16)}`, `0x${"12".repeat(16)}`]);
  assert.equal((decodeChainEvent(withHash) as { specHash?: string }).specHash, specHash);
  assert.equal("specHash" in decodeChainEvent(submitted), false);
  assert.equal(submitted.block_number, 3);
  assert.equal(submitted.block_hash, "0xb");
  assert.equal(submitted.transaction_hash, "0xt");
  assert.equal(submitted.event_index, 1);
  assert.equal(submitted.from_address, ADDRESS);
});

Deno.test("encodeChainEvent() names the field that does not fit its Cairo type", () => {
  assert.throws(
    () =>
      encodeChainEvent({
        ...base,
        name: "StakeWithdrawn",
        worker: "w",
        amount: 2n ** 256n,
      }, ADDRESS),
    { name: "RangeError", message: /field "amount": .* is not a u256/ },
  );
  assert.throws(
    () => encodeChainEvent({ ...base, name: "StakeWithdrawn", worker: "w", amount: -1n }, ADDRESS),
    { name: "RangeError", message: /field "amount"/ },
  );
  assert.throws(
    () =>
      encodeChainEvent({
        ...base,
        name: "ResultSubmitted",
        jobId: "j",
        worker: "w",
        commitment: "ABC",
      }, ADDRESS),
    { name: "TypeError", message: /field "commitment": expected 64 lowercase hex digits/ },
  );
  assert.throws(
    () =>
      encodeChainEvent({ ...base, name: "ReputationUpdated", worker: "w", score: 1.5 }, ADDRESS),
    { name: "RangeError", message: /field "score"/ },
  );
  assert.throws(
    () =>
      encodeChainEvent(
        { ...base, name: "UnknownEvent" } as unknown as ChainEvent,
        ADDRESS,
      ),
    { name: "TypeError", message: /unknown name "UnknownEvent"/ },
  );
});

Deno.test("decodeChainEvent() rejects an unknown selector, naming it", () => {
  const raw = encodeChainEvent({ ...base, name: "JobVerified", jobId: "j1" }, ADDRESS);
  const selector = hash.getSelectorFromName("SomethingElse");
  expectDecodeError({ ...raw, keys: [selector] }, "unknown_selector", new RegExp(selector));
  expectDecodeError({ ...raw, keys: [] }, "unknown_selector", /has no keys/);
  expectDecodeError({ ...raw, keys: ["not hex"] }, "unknown_selector", /"not hex"/);
});

Deno.test("decodeChainEvent() accepts a zero-padded selector", () => {
  const raw = encodeChainEvent({ ...base, name: "JobVerified", jobId: "j1" }, ADDRESS);
  const padded = `0x${(raw.keys[0] ?? "").slice(2).padStart(64, "0")}`;
  assert.equal(decodeChainEvent({ ...raw, keys: [padded] }).name, "JobVerified");
});

Deno.test("decodeChainEvent() rejects an event from another contract", () => {
  const raw = encodeChainEvent({ ...base, name: "JobVerified", jobId: "j1" }, ADDRESS);
  assert.equal(decodeChainEvent(raw, { fromAddress: "0x004C0CA1" }).name, "JobVerified");
  assert.throws(() => decodeChainEvent(raw, { fromAddress: "0x1" }), {
    name: "ChainDecodeError",
    code: "wrong_contract",
    message: /comes from 0x4c0ca1, expected 0x1/,
  });
});

Deno.test("decodeChainEvent() rejects truncated and trailing data", () => {
  const raw = encodeChainEvent({
    ...base,
    name: "PaymentReleased",
    jobId: "j1",
    worker: "w1",
    amount: 9n,
    fee: 1n,
    change: 0n,
  }, ADDRESS);
  expectDecodeError(
    { ...raw, data: raw.data.slice(0, -1) },
    "truncated",
    /PaymentReleased field "change": data ends at felt 11/,
  );
  expectDecodeError({ ...raw, data: [...raw.data, "0x0"] }, "trailing_data", /1 felts left/);
  expectDecodeError(
    { ...raw, data: ["0xffff", ...raw.data.slice(1)] },
    "truncated",
    /field "jobId": byte array claims 65535 words/,
  );
  const assigned = encodeChainEvent({
    ...base,
    name: "WorkerAssigned",
    jobId: "j",
    worker: "w",
    price: 1n,
    verifiers: [],
    attempt: 2,
  }, ADDRESS);
  assert.equal(assigned.data.at(-1), "0x2", "the attempt is the last felt");
  expectDecodeError(
    { ...assigned, data: [...assigned.data.slice(0, -2), "0x64", "0x2"] },
    "truncated",
    /field "verifiers": array claims 100 elements/,
  );
});

Deno.test("decodeChainEvent() rejects felts and values that do not fit", () => {
  const raw = encodeChainEvent(
    { ...base, name: "StakeWithdrawn", worker: "w", amount: 1n },
    ADDRESS,
  );
  // data: [0, 'w', 1, low, high]
  expectDecodeError(
    { ...raw, data: ["12", ...raw.data.slice(1)] },
    "invalid_felt",
    /field "worker": felt 0 is not 0x hex: "12"/,
  );
  expectDecodeError(
    {
      ...raw,
      data: [
        ...raw.data.slice(0, 3),
        `0x${(2n ** 251n + 17n * 2n ** 192n + 1n).toString(16)}`,
        "0x0",
      ],
    },
    "invalid_felt",
    /not below the field prime/,
  );
  expectDecodeError(
    { ...raw, data: [...raw.data.slice(0, 3), `0x${(2n ** 128n).toString(16)}`, "0x0"] },
    "invalid_value",
    /field "amount": u256 limb exceeds 128 bits/,
  );
  expectDecodeError(
    { ...raw, data: ["0x0", "0x77", "0x1f", ...raw.data.slice(3)] },
    "invalid_value",
    /pending word length 31 exceeds 30/,
  );
  expectDecodeError(
    { ...raw, data: ["0x0", "0x7777", "0x1", ...raw.data.slice(3)] },
    "invalid_value",
    /pending word exceeds 1 bytes/,
  );
  expectDecodeError(
    { ...raw, data: ["0x0", "0xff", "0x1", ...raw.data.slice(3)] },
    "invalid_value",
    /field "worker": not valid UTF-8/,
  );
  const refunded = encodeChainEvent({
    ...base,
    name: "EscrowRefunded",
    jobId: "j",
    client: "c",
    amount: 1n,
    reason: "failed",
  }, ADDRESS);
  expectDecodeError(
    { ...refunded, data: [...refunded.data.slice(0, -1), shortString.encodeShortString("bored")] },
    "invalid_value",
    /unknown refund reason "bored"/,
  );
  const slashed = encodeChainEvent({
    ...base,
    name: "WorkerSlashed",
    jobId: "j",
    worker: "w",
    amount: 1n,
    reason: "downtime",
  }, ADDRESS);
  expectDecodeError(
    { ...slashed, data: [...slashed.data.slice(0, -1), "0x0"] },
    "invalid_value",
    /unknown slash reason ""/,
  );
  const score = encodeChainEvent(
    { ...base, name: "ReputationUpdated", worker: "w", score: 1 },
    ADDRESS,
  );
  expectDecodeError(
    { ...score, data: [...score.data.slice(0, -1), `0x${(2n ** 60n).toString(16)}`] },
    "invalid_value",
    /field "score": .* is not a safe integer/,
  );
});
