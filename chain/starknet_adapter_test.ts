/**
 * Unit tests of the Starknet adapter that need no node: the checked-in ABIs agree with the event
 * codec (`chain/events.ts`) as starknet.js reads them, every port call has its ABI function,
 * key loading, and option checks. The end-to-end tests are in
 * `tests/starknet_adapter_integration_test.ts` and `tests/starknet/transport_test.ts` (sends,
 * spec versions, and the schema check of all traffic).
 *
 * @module
 */
import assert from "node:assert/strict";
import { CallData, Contract, events as starknetEvents, hash } from "starknet";
import { encodeChainEvent, EVENT_SELECTORS } from "./events.ts";
import type { ChainEvent, ChainEventName } from "./port.ts";
import { PRIVATE_KEY_ENV, resolvePrivateKey, StarknetChain } from "./starknet_adapter.ts";
import jobManagerAbi from "./abi/job_manager.json" with { type: "json" };
import cdcPoolAbi from "./abi/cdc_pool.json" with { type: "json" };

type Abi = ConstructorParameters<typeof Contract>[0]["abi"];

const meta = { blockNumber: 5, blockHash: "0x5", txHash: "0x6", eventIndex: 0 };
const h1 = "0a".repeat(32);
const h2 = "ff".repeat(32);

/** One sample of every event, with the ABI member names the values must show up under. */
const SAMPLES: readonly [ChainEvent, Record<string, unknown>][] = [
  [
    {
      ...meta,
      name: "JobSubmitted",
      jobId: "job-é-1",
      client: "12D3KooWClient",
      amount: 2n ** 200n + 7n,
      modelHash: h1,
      inputCommitment: h2,
      minStake: 2n ** 130n + 1n,
      verifierCount: 4,
      bidWindowMs: 2_000,
      executionMs: 30_000,
      verificationMs: 45_000,
      specHash: h2,
    },
    {
      job_id: "job-é-1",
      client: "12D3KooWClient",
      amount: 2n ** 200n + 7n,
      model_hash: BigInt(`0x${h1}`),
      input_commitment: BigInt(`0x${h2}`),
      min_stake: 2n ** 130n + 1n,
      verifier_count: 4n,
      bid_window_ms: 2_000n,
      execution_ms: 30_000n,
      verification_ms: 45_000n,
      spec_hash: BigInt(`0x${h2}`),
    },
  ],
  [
    {
      ...meta,
      name: "WorkerAssigned",
      jobId: "j",
      worker: "w".repeat(40),
      price: 9n,
      verifiers: ["v1", "v2", ""],
      attempt: 3,
    },
    { job_id: "j", worker: "w".repeat(40), price: 9n, verifiers: ["v1", "v2", ""], attempt: 3n },
  ],
  [{ ...meta, name: "AssignmentRevoked", jobId: "j", worker: "w" }, { job_id: "j", worker: "w" }],
  [
    { ...meta, name: "ResultSubmitted", jobId: "j", worker: "w", commitment: h2 },
    { job_id: "j", worker: "w", commitment: BigInt(`0x${h2}`) },
  ],
  [{ ...meta, name: "JobVerified", jobId: "j" }, { job_id: "j" }],
  [{ ...meta, name: "JobDisputed", jobId: "j" }, { job_id: "j" }],
  [
    { ...meta, name: "PaymentReleased", jobId: "j", worker: "w", amount: 90n, fee: 1n, change: 9n },
    { job_id: "j", worker: "w", amount: 90n, fee: 1n, change: 9n },
  ],
  [
    {
      ...meta,
      name: "EscrowRefunded",
      jobId: "j",
      client: "c",
      amount: 100n,
      reason: "disputed",
    },
    { job_id: "j", client: "c", amount: 100n, reason: BigInt(`0x${toHex("disputed")}`) },
  ],
  [
    {
      ...meta,
      name: "WorkerSlashed",
      jobId: "j",
      worker: "w",
      amount: 50n,
      reason: "invalid_compute",
    },
    { job_id: "j", worker: "w", amount: 50n, reason: BigInt(`0x${toHex("invalid_compute")}`) },
  ],
  [
    { ...meta, name: "WorkerStaked", worker: "w", amount: 5n, total: 15n },
    { worker: "w", amount: 5n, total: 15n },
  ],
  [
    { ...meta, name: "UnstakeRequested", worker: "w", amount: 5n, unlockAt: 1_700_000_000_000 },
    { worker: "w", amount: 5n, unlock_at: 1_700_000_000_000n },
  ],
  [
    { ...meta, name: "StakeWithdrawn", worker: "w", amount: 5n },
    { worker: "w", amount: 5n },
  ],
  [
    { ...meta, name: "ReputationUpdated", worker: "w", score: 510 },
    { worker: "w", score: 510n },
  ],
  [
    { ...meta, name: "FailureReported", jobId: "j", worker: "w", reason: "shape [2] is not [4]" },
    { job_id: "j", worker: "w", reason: "shape [2] is not [4]" },
  ],
  [
    {
      ...meta,
      name: "AttestationRecorded",
      jobId: "j",
      verifier: "v",
      attempt: 2,
      verdict: "valid",
    },
    { job_id: "j", verifier: "v", attempt: 2n, verdict: BigInt(`0x${toHex("valid")}`) },
  ],
  [
    { ...meta, name: "KeyRegistered", account: "v", publicKey: h1 },
    { account: "v", public_key: BigInt(`0x${h1}`) },
  ],
  [{ ...meta, name: "VerifierRegistered", verifier: "v" }, { verifier: "v" }],
];

function toHex(text: string): string {
  return [...new TextEncoder().encode(text)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function parseWithAbi(abi: Abi, raw: ReturnType<typeof encodeChainEvent>) {
  const parsed = starknetEvents.parseEvents(
    [raw as never],
    starknetEvents.getAbiEvents(abi),
    CallData.getAbiStruct(abi),
    CallData.getAbiEnum(abi),
    new CallData(abi).parser,
  );
  return parsed[0];
}

function eventNames(abi: Abi): Set<string> {
  return new Set(
    (abi as { type: string; name: string; kind?: string }[])
      .filter((item) => item.type === "event" && item.kind === "struct")
      .map((item) => item.name.split("::").at(-1)!),
  );
}

Deno.test("ABIs decode every event the codec encodes, field by field", () => {
  const jm = jobManagerAbi as Abi;
  const pool = cdcPoolAbi as Abi;
  const covered = new Set<ChainEventName>();
  for (const [event, expected] of SAMPLES) {
    const abi = eventNames(jm).has(event.name) ? jm : pool;
    assert.ok(eventNames(abi).has(event.name), `no ABI declares ${event.name}`);
    const module = abi === jm ? "ciro::job_manager::JobManager" : "ciro::cdc_pool::CDCPool";
    const parsed = parseWithAbi(abi, encodeChainEvent(event, "0x1234"));
    assert.ok(parsed !== undefined, `starknet.js did not parse ${event.name}`);
    const fields = parsed[`${module}::${event.name}`] as Record<string, unknown> | undefined;
    assert.ok(fields !== undefined, `starknet.js parsed ${event.name} under another name`);
    assert.deepEqual({ ...fields }, expected, event.name);
    covered.add(event.name);
  }
  assert.equal(covered.size, Object.keys(EVENT_SELECTORS).length);
});

Deno.test("ABIs: event selectors are the codec's, and each event is declared once", () => {
  const declared = [...eventNames(jobManagerAbi as Abi), ...eventNames(cdcPoolAbi as Abi)];
  for (const name of Object.keys(EVENT_SELECTORS) as ChainEventName[]) {
    assert.equal(declared.filter((d) => d === name).length, 1, name);
    assert.equal(EVENT_SELECTORS[name], hash.getSelectorFromName(name));
  }
});

Deno.test("ABIs declare the functions the adapter calls", () => {
  const functions = (abi: unknown) =>
    new Set(
      (abi as { type: string; items?: { name: string }[] }[])
        .filter((item) => item.type === "interface")
        .flatMap((item) => item.items ?? [])
        .map((fn) => fn.name),
    );
  const jm = functions(jobManagerAbi);
  const pool = functions(cdcPoolAbi);
  for (
    const name of [
      "submit_job",
      "assign_worker",
      "revoke_assignment",
      "submit_result",
      "record_verification",
      "release_payment",
      "refund",
      "slash_worker",
      "escrow_totals",
      "escrow_of",
      "submit_job_with_terms",
      "report_failure",
      "submit_attestations",
      "report_double_signing",
    ]
  ) assert.ok(jm.has(name), `JobManager lacks ${name}`);
  for (
    const name of [
      "register_node",
      "stake",
      "request_unstake",
      "withdraw",
      "stake_of",
      "reputation_of",
      "node_id_of",
      "stake_totals",
      "stake_as_verifier",
      "register_key",
    ]
  ) assert.ok(pool.has(name), `CDC Pool lacks ${name}`);
  // starknet.js compiles the adapter's positional arguments with these ABIs.
  const contract = new Contract({ abi: jobManagerAbi as Abi, address: "0x1" });
  const call = contract.populate("assign_worker", ["j", "w", 7n, ["a", "bc"]]);
  assert.deepEqual((call.calldata as string[]).map(String), [
    "0",
    String(BigInt("0x6a")),
    "1",
    "0",
    String(BigInt("0x77")),
    "1",
    "7",
    "0",
    "2",
    "0",
    String(BigInt("0x61")),
    "1",
    "0",
    String(BigInt("0x6263")),
    "2",
  ]);
});

Deno.test("ABIs: a job's terms and an attestation are structs of their members in order", () => {
  const contract = new Contract({ abi: jobManagerAbi as Abi, address: "0x1" });
  const felts = (fn: string, args: unknown[]) =>
    (contract.populate(fn, args as never).calldata as string[]).map(String);
  const j = String(BigInt("0x6a"));
  assert.deepEqual(
    felts("submit_job_with_terms", ["j", 1n, 0n, 5n, 6n, {
      verifier_count: 4,
      bid_window_ms: 60_000,
      execution_ms: 7,
      verification_ms: 8,
      spec_hash: 2n ** 128n + 9n,
    }]),
    ["0", j, "1", "1", "0", "0", "0", "5", "0", "6", "0", "4", "60000", "7", "8", "9", "1"],
  );
  const attestation = {
    job_id: "j",
    verifier: "v",
    attempt: 2n,
    subject: "s",
    verdict: "valid",
    signature_r: 3n,
    signature_s: 2n ** 128n + 4n,
  };
  const one = [
    "0",
    j,
    "1",
    "0",
    String(BigInt("0x76")),
    "1",
    "2",
    "0",
    String(BigInt("0x73")),
    "1",
    String(BigInt("0x76616c6964")),
    "3",
    "0",
    "4",
    "1",
  ];
  assert.deepEqual(felts("submit_attestations", [[attestation]]), ["1", ...one]);
  assert.deepEqual(felts("report_double_signing", [attestation, attestation]), [...one, ...one]);
});

Deno.test("ABIs: escrow_of answers a JobEscrow of client, spec hash and status, in order", () => {
  const parsed = new CallData(jobManagerAbi as Abi).parse("escrow_of", [
    "0",
    String(BigInt("0x6331")),
    "2",
    "9",
    "1",
    String(BigInt("0x70616964")),
  ]) as Record<string, unknown>;
  assert.deepEqual(parsed, {
    client: "c1",
    spec_hash: 2n ** 128n + 9n,
    status: BigInt("0x70616964"),
  });
});

Deno.test("resolvePrivateKey() reads the option, a key file, or the environment", async () => {
  const dir = await Deno.makeTempDir();
  const previous = Deno.env.get(PRIVATE_KEY_ENV);
  try {
    assert.equal(await resolvePrivateKey({ privateKey: "0xabc" }), "0xabc");
    await Deno.writeTextFile(`${dir}/key`, "  0x1234\n");
    assert.equal(await resolvePrivateKey({ privateKeyFile: `${dir}/key` }), "0x1234");
    Deno.env.set(PRIVATE_KEY_ENV, "0x42");
    assert.equal(await resolvePrivateKey({}), "0x42");
    Deno.env.delete(PRIVATE_KEY_ENV);
    await assert.rejects(resolvePrivateKey({}), {
      name: "TypeError",
      message: /^Missing Starknet private key: /,
    });
    const secret = "0x" + "f".repeat(64);
    await assert.rejects(resolvePrivateKey({ privateKey: secret }), (error: Error) => {
      assert.equal(error.name, "TypeError");
      assert.match(error.message, /^Invalid Starknet private key from privateKey: /);
      assert.equal(error.message.includes("f".repeat(16)), false);
      return true;
    });
    await assert.rejects(resolvePrivateKey({ privateKeyFile: `${dir}/missing` }), {
      name: "TypeError",
      message: /is not readable$/,
    });
  } finally {
    if (previous === undefined) Deno.env.delete(PRIVATE_KEY_ENV);
    else Deno.env.set(PRIVATE_KEY_ENV, previous);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("StarknetChain.connect() rejects bad options before any request", async () => {
  const base = {
    rpcUrl: "http://127.0.0.1:9/rpc",
    accountAddress: "0x1",
    privateKey: "0x1",
    jobManagerAddress: "0x2",
    cdcPoolAddress: "0x3",
  };
  await assert.rejects(StarknetChain.connect({ ...base, rpcUrl: "not a url" }), TypeError);
  await assert.rejects(StarknetChain.connect({ ...base, accountAddress: "0xzz" }), {
    name: "TypeError",
    message: /^Invalid accountAddress: /,
  });
  await assert.rejects(StarknetChain.connect({ ...base, confirmations: -1 }), RangeError);
  await assert.rejects(StarknetChain.connect({ ...base, chunkSize: 0 }), RangeError);
});
