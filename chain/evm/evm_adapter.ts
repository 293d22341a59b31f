/**
 * The EVM settlement adapter: {@link EvmChain} implements the {@link ChainPort} against the
 * Solidity JobManager and CDC Pool (`chain/evm/contracts/`, artifacts in `chain/evm/artifacts/`)
 * through viem, over any EIP-1193 provider: Hardhat's EVM in process, or a JSON-RPC endpoint.
 *
 * Transactions. Calls from one adapter are sent one at a time. Each is first estimated
 * (`eth_estimateGas`): a call the contract refuses fails there with a {@link ChainError} whose
 * code is the contract's `Refused(code, reason)` and nothing is sent. An estimate that fails
 * without revert data is run again as `eth_call` with an explicit gas limit for the reason; a
 * node that gives none is the failure named (`rpc_error`, "without a revert reason", with the
 * JSON-RPC code). Then it is signed once
 * with the account's next nonce (read from the pending block the first time, then kept), and
 * the signed bytes are sent. A send whose outcome is unknown (the answer was lost, the node
 * fails) is never signed again with another nonce: the identical bytes are sent again (same
 * hash, so it executes at most once), and "already known" or "nonce too low" after a send that
 * may have arrived means the node has it. A transaction that is not mined within
 * `receiptTimeoutMs` is sent again, identical, at most `maxAttempts` times in all, then the call
 * fails with `rpc_error` naming its hash (the kept nonce is dropped, so the next call reads it
 * again). A receipt with status `reverted` is `reverted`.
 *
 * Identity. Calls and events name nodes by their {@link NodeId}; the CDC Pool binds each
 * account to one node id (`registerNode`), keyed by `keccak256(nodeId)`, and {@link EvmChain.connect}
 * registers the account's node id if it has none, and approves the two contracts to move its
 * tokens. Jobs are keyed by `keccak256(jobId)`; `JobSubmitted` carries the id.
 *
 * Events. {@link EvmChain.eventsSince} reads both contracts' logs with `eth_getLogs`, at most
 * `logBlockRange` blocks a request, only up to `latest - confirmations`. An event's `eventIndex`
 * is its position among the port's events of the two contracts in its block (as with the other
 * adapters), so `{ blockNumber, eventIndex + 1 }` is the cursor after it. A subscription starts
 * at `from`, else where its `cursorStore` left off, else at the deployment block; it remembers
 * the hashes of the blocks it read (within `reorgWindow`) and re-checks them every poll; on a
 * mismatch it rolls its cursor back to the newest block that still matches, reports the events
 * of the dropped blocks that the new chain does not carry again to `onReorg`, and reads again.
 * An event is delivered once per (transaction hash, position among the port's events of the
 * transaction): a transaction that a reorg drops and that comes back later in another block is not
 * delivered again (it was reported to `onReorg` when it was dropped).
 *
 * Attestations are signed by the verifier's account (secp256k1) over EIP-712 typed data
 * `Attestation(bytes32 job, uint64 attempt, bytes32 subject, bool valid)` and checked by the
 * JobManager with `ecrecover`; `accountPublicKey()` is the account's address. Where the EVM differs
 * from the local ledger is listed once, in the README ("Settlement on an EVM").
 *
 * Keys. The account key comes from `privateKey`, `privateKeyFile`, or the `CIRO_EVM_PRIVATE_KEY`
 * environment variable; it lives only in viem's local account held in a private field.
 *
 * @module
 */
import {
  type Abi,
  type Address,
  createPublicClient,
  custom,
  decodeErrorResult,
  decodeEventLog,
  type EIP1193Provider,
  encodeFunctionData,
  getAddress,
  type Hex,
  http,
  keccak256,
  type Log,
  type PublicClient,
  toBytes,
} from "viem";
import { type LocalAccount, privateKeyToAccount } from "viem/accounts";
import { getLogger } from "@logtape/logtape";
import type { NodeId, RefundReason, SlashReason, Verdict } from "../../machines/types.ts";
import {
  type ChainCallOptions,
  type ChainCursor,
  ChainError,
  type ChainErrorCode,
  type ChainEvent,
  type ChainPort,
  ESCROW_STATUSES,
  type EscrowRecord,
  escrowRecordOf,
  type JobTerms,
  type LedgerTotals,
  NO_SPEC_HASH,
  type SignedAttestation,
  type TxReceipt,
} from "../port.ts";
import {
  checkAttestation,
  checkBigint,
  checkCount,
  checkHash,
  checkId,
  checkSubmission,
  HASH_PATTERN,
  MAX_FAILURE_REASON,
  MAX_ID_LENGTH,
  MAX_VERIFIERS,
  q,
  U256,
} from "../_args.ts";
import { type BlockRef, checkCursor, type CursorStore } from "../event_cursor.ts";
import cdcPoolArtifact from "./artifacts/CdcPool.json" with { type: "json" };
import jobManagerArtifact from "./artifacts/JobManager.json" with {
  type: "json",
};
import tokenArtifact from "./artifacts/CiroToken.json" with { type: "json" };

const logger = getLogger(["ciro", "chain", "evm"]);

/** The environment variable {@link EvmChain.connect} reads the account key from. */
export const EVM_PRIVATE_KEY_ENV = "CIRO_EVM_PRIVATE_KEY";

/** The ABIs of the three contracts. */
export const EVM_ABIS: { token: Abi; cdcPool: Abi; jobManager: Abi } = {
  token: tokenArtifact.abi as Abi,
  cdcPool: cdcPoolArtifact.abi as Abi,
  jobManager: jobManagerArtifact.abi as Abi,
};

/** Where the contracts are deployed. */
export interface EvmAddresses {
  readonly token: Address;
  readonly cdcPool: Address;
  readonly jobManager: Address;
  /** The block of the first deployment transaction: where event reading starts. */
  readonly deployBlock: number;
}

/** Options of {@link EvmChain.connect}. */
export interface EvmChainOptions {
  /** The node id this account acts as (registered in the CDC Pool). */
  readonly nodeId: NodeId;
  /** An EIP-1193 provider (Hardhat's in-process EVM); else `rpcUrl`. */
  readonly provider?: EIP1193Provider;
  /** A JSON-RPC endpoint, used when no `provider` is given. Config key `chain.rpcUrl`. */
  readonly rpcUrl?: string;
  /** The chain id the endpoint must report. Config key `chain.chainId`. */
  readonly chainId: number;
  readonly addresses: EvmAddresses;
  /**
   * The account's secp256k1 private key, `0x` and 64 hex digits.
   * @default {undefined} read from `privateKeyFile`, else from `CIRO_EVM_PRIVATE_KEY`
   */
  readonly privateKey?: Hex;
  /** A file holding the private key (surrounding whitespace ignored). */
  readonly privateKeyFile?: string;
  /**
   * Blocks an event must be below the head before it is read.
   * @default {0}
   */
  readonly confirmations?: number;
  /**
   * Sends of one signed transaction, and reads of a failing request, at most.
   * @default {4}
   */
  readonly maxAttempts?: number;
  /**
   * How long a sent transaction may stay unmined before it is sent again, ms.
   * @default {30000}
   */
  readonly receiptTimeoutMs?: number;
  /**
   * Blocks per `eth_getLogs` request.
   * @default {1000}
   */
  readonly logBlockRange?: number;
  /**
   * How often a subscription and a receipt wait poll, ms.
   * @default {50}
   */
  readonly pollMs?: number;
  /**
   * Blocks a subscription keeps to re-check for reorgs.
   * @default {64}
   */
  readonly reorgWindow?: number;
}

/** Options of {@link EvmChain.subscribe}. */
export interface EvmSubscribeOptions {
  readonly from?: ChainCursor;
  readonly pollMs?: number;
  /** Where the subscription keeps its cursor, so a restarted node resumes. */
  readonly cursorStore?: CursorStore;
  /** Told of delivered events that a reorg dropped and the new chain does not carry. */
  readonly onReorg?: (revoked: readonly ChainEvent[]) => void;
  /** Told of each failed poll (the subscription keeps polling). @default a warning logged */
  readonly onError?: (error: unknown) => void;
}

const REFUND_REASONS: readonly RefundReason[] = [
  "expired",
  "cancelled",
  "disputed",
  "failed",
];
const SLASH_REASONS: readonly SlashReason[] = [
  "invalid_compute",
  "downtime",
  "double_signing",
  "coordinated_attack",
];
/** Every code of the port: a contract's `Refused(code, ...)` maps to it (else `reverted`). */
const CHAIN_CODES: ReadonlySet<string> = new Set(
  Object.keys(
    {
      unknown_job: true,
      duplicate_job: true,
      invalid_state: true,
      not_authorized: true,
      insufficient_stake: true,
      insufficient_balance: true,
      invalid_amount: true,
      still_unbonding: true,
      stake_locked: true,
      rpc_error: true,
      reverted: true,
      not_enough_verifiers: true,
      bad_signature: true,
      no_key: true,
      not_chosen: true,
      duplicate_attestation: true,
      wrong_attempt: true,
      deadline_passed: true,
      deadline_not_passed: true,
      no_evidence: true,
      wrong_subject: true,
      unsupported_format: true,
    } satisfies Record<ChainErrorCode, true>,
  ),
);
/** The escrow's terms as `JobSubmitted` carries them (the contract's `Terms`, decoded by viem). */
function termsOf(value: unknown): {
  verifierCount: number;
  bidWindowMs: number;
  executionMs: number;
  verificationMs: number;
  specHash?: string;
} {
  const t = value as Record<string, unknown>;
  const specHash = (t["specHash"] as string).slice(2).toLowerCase();
  return {
    verifierCount: Number(t["verifierCount"]),
    bidWindowMs: Number(t["bidWindowMs"]),
    executionMs: Number(t["executionMs"]),
    verificationMs: Number(t["verificationMs"]),
    // The zero hash: the job was submitted without one.
    ...(specHash === NO_SPEC_HASH ? {} : { specHash }),
  };
}

const PORT_EVENTS: ReadonlySet<string> = new Set([
  "FailureReported",
  "AttestationRecorded",
  "KeyRegistered",
  "VerifierRegistered",
  "JobSubmitted",
  "WorkerAssigned",
  "AssignmentRevoked",
  "ResultSubmitted",
  "JobVerified",
  "JobDisputed",
  "PaymentReleased",
  "EscrowRefunded",
  "WorkerSlashed",
  "WorkerStaked",
  "UnstakeRequested",
  "StakeWithdrawn",
  "ReputationUpdated",
]);
const ATTESTATION_TYPES = {
  Attestation: [
    { name: "job", type: "bytes32" },
    { name: "attempt", type: "uint64" },
    { name: "subject", type: "bytes32" },
    { name: "valid", type: "bool" },
  ],
} as const;
const ZERO_KEY = `0x${"0".repeat(64)}`;
/** The most gas one transaction may have (EIP-7825, in force on Hardhat 3's default hardfork). */
const TX_GAS_CAP = 16_777_216n;

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

/** The key the contracts give a node id or a job id. */
export function idKey(id: string): Hex {
  return keccak256(toBytes(id));
}

/**
 * The bytes32 an attestation's subject is signed as: a result commitment (64 hex digits) as
 * itself, anything else (the failure subject `"failed"`) as its keccak-256.
 */
export function subjectKey(subject: string): Hex {
  return HASH_PATTERN.test(subject) ? `0x${subject}` : keccak256(toBytes(subject));
}

/** A decoded log with what ordering and identity need. */
interface PortLog {
  readonly name: string;
  readonly args: Record<string, unknown>;
  readonly blockNumber: number;
  readonly blockHash: string;
  readonly txHash: string;
  readonly logIndex: number;
}

/**
 * The settlement port on an EVM, bound to one account and its node id.
 *
 * ```ts ignore
 * const chain = await EvmChain.connect({ nodeId, provider, chainId: 31337, addresses, privateKey });
 * await chain.stake({ amount: 1_000n });
 * ```
 */
export class EvmChain implements ChainPort {
  readonly account: NodeId;
  readonly address: Address;
  readonly addresses: EvmAddresses;
  readonly #client: PublicClient;
  readonly #signer: LocalAccount;
  readonly #chainId: number;
  readonly #confirmations: number;
  readonly #maxAttempts: number;
  readonly #receiptTimeoutMs: number;
  readonly #logBlockRange: number;
  readonly #pollMs: number;
  readonly #reorgWindow: number;
  readonly #jobIds = new Map<string, string>();
  readonly #nodeIds = new Map<string, string>();
  readonly #subscriptions = new Set<() => void>();
  readonly #closing = new AbortController();
  #queue: Promise<unknown> = Promise.resolve();
  #nonce: number | undefined;
  #closed = false;

  private constructor(
    options: EvmChainOptions,
    client: PublicClient,
    signer: LocalAccount,
  ) {
    this.account = options.nodeId;
    this.address = signer.address;
    this.addresses = options.addresses;
    this.#client = client;
    this.#signer = signer;
    this.#chainId = options.chainId;
    this.#confirmations = count("confirmations", options.confirmations ?? 0, 0);
    this.#maxAttempts = count("maxAttempts", options.maxAttempts ?? 4, 1);
    this.#receiptTimeoutMs = count(
      "receiptTimeoutMs",
      options.receiptTimeoutMs ?? 30_000,
      1,
    );
    this.#logBlockRange = count(
      "logBlockRange",
      options.logBlockRange ?? 1000,
      1,
    );
    this.#pollMs = count("pollMs", options.pollMs ?? 50, 1);
    this.#reorgWindow = count("reorgWindow", options.reorgWindow ?? 64, 1);
  }

  /**
   * Connects, checks the endpoint and the contracts, registers the node id and approves the
   * contracts. Refuses with a {@link ChainError} naming the config key of what is wrong.
   */
  static async connect(options: EvmChainOptions): Promise<EvmChain> {
    checkId("nodeId", options.nodeId);
    if (!Number.isSafeInteger(options.chainId) || options.chainId <= 0) {
      throw new RangeError(
        `Invalid chain.chainId: expected a positive integer, got ${options.chainId}`,
      );
    }
    const addresses = checkAddresses(options.addresses);
    const signer = privateKeyToAccount(await readKey(options));
    let transport;
    if (options.provider !== undefined) transport = custom(options.provider, { retryCount: 0 });
    else if (typeof options.rpcUrl === "string" && options.rpcUrl.length > 0) {
      transport = http(options.rpcUrl, { retryCount: 0, timeout: 10_000 });
    } else {throw new TypeError(
        "Invalid chain.rpcUrl: expected a provider or a JSON-RPC URL",
      );}
    const client = createPublicClient({ transport }) as PublicClient;
    const chain = new EvmChain({ ...options, addresses }, client, signer);
    let chainId: number;
    try {
      chainId = await client.getChainId();
    } catch (cause) {
      throw new ChainError(
        "rpc_error",
        `Cannot connect to the EVM at chain.rpcUrl ${
          JSON.stringify(options.rpcUrl ?? "(provider)")
        }: ${firstLine(cause)}`,
        { cause },
      );
    }
    if (chainId !== options.chainId) {
      throw new ChainError(
        "rpc_error",
        `Cannot use the EVM: chain.chainId is ${options.chainId} but the endpoint reports ${chainId}`,
      );
    }
    await chain.#checkContracts();
    await chain.#enrol();
    return chain;
  }

  async #checkContracts(): Promise<void> {
    const { token, cdcPool, jobManager } = this.addresses;
    for (
      const [key, address] of Object.entries({ token, cdcPool, jobManager })
    ) {
      const code = await this.#client.getCode({ address: address as Address });
      if (code === undefined || code === "0x") {
        throw new ChainError(
          "rpc_error",
          `Cannot use the contracts: chain.addresses.${key} ${address} holds no code`,
        );
      }
    }
    const expect = async (
      key: string,
      address: Address,
      abi: Abi,
      functionName: string,
      want: Address,
    ) => {
      let got: unknown;
      try {
        got = await this.#client.readContract({ address, abi, functionName });
      } catch (cause) {
        throw new ChainError(
          "rpc_error",
          `Cannot use the contracts: chain.addresses.${key} ${address} does not have the ${key} ABI (${functionName}() fails)`,
          { cause },
        );
      }
      if (typeof got !== "string" || getAddress(got) !== want) {
        throw new ChainError(
          "rpc_error",
          `Cannot use the contracts: chain.addresses.${key} ${address} answers ${functionName}() = ${
            String(got)
          }, expected ${want}`,
        );
      }
    };
    await expect(
      "jobManager",
      jobManager,
      EVM_ABIS.jobManager,
      "pool",
      cdcPool,
    );
    await expect("jobManager", jobManager, EVM_ABIS.jobManager, "token", token);
    await expect("cdcPool", cdcPool, EVM_ABIS.cdcPool, "manager", jobManager);
    await expect("cdcPool", cdcPool, EVM_ABIS.cdcPool, "token", token);
  }

  async #enrol(): Promise<void> {
    const key = await this.#read(
      this.addresses.cdcPool,
      EVM_ABIS.cdcPool,
      "keyOf",
      [
        this.address,
      ],
    ) as Hex;
    const want = idKey(this.account);
    if (key === ZERO_KEY) {
      await this.#transact(
        "registerNode",
        this.addresses.cdcPool,
        EVM_ABIS.cdcPool,
        [
          this.account,
        ],
      );
    } else if (key !== want) {
      throw new ChainError(
        "not_authorized",
        `Cannot act as node ${
          JSON.stringify(this.account)
        }: account ${this.address} is registered to another node id`,
      );
    }
    for (const spender of [this.addresses.jobManager, this.addresses.cdcPool]) {
      const allowance = await this.#read(
        this.addresses.token,
        EVM_ABIS.token,
        "allowance",
        [
          this.address,
          spender,
        ],
      ) as bigint;
      if (allowance < U256 / 2n) {
        await this.#transact("approve", this.addresses.token, EVM_ABIS.token, [
          spender,
          U256 - 1n,
        ]);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Calls

  submitJob(
    job: {
      jobId: string;
      amount: bigint;
      minStake: bigint;
      modelHash: string;
      inputCommitment: string;
    } & JobTerms,
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("submitJob", options, () => {
      const s = checkSubmission(job);
      const { jobId, amount, minStake, modelHash, inputCommitment } = s;
      const terms = {
        // Without terms the job is under the legacy client-driven rules (see chain/port.ts).
        chainDecided: s.chainDecided,
        verifierCount: s.verifierCount,
        bidWindowMs: BigInt(s.bidWindowMs),
        executionMs: BigInt(s.executionMs),
        verificationMs: BigInt(s.verificationMs),
        specHash: `0x${s.specHash ?? NO_SPEC_HASH}`,
      };
      return this.#manager("submitJob", jobId, [
        jobId,
        amount,
        minStake,
        `0x${modelHash}`,
        `0x${inputCommitment}`,
        terms,
      ]);
    });
  }

  assignWorker(
    assignment: {
      jobId: string;
      worker: NodeId;
      price: bigint;
      verifiers?: readonly NodeId[];
    },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("assignWorker", options, () => {
      const jobId = checkId("job id", assignment.jobId);
      const worker = checkId("worker", assignment.worker);
      const price = checkBigint("price", assignment.price);
      if (assignment.verifiers !== undefined && !Array.isArray(assignment.verifiers)) {
        throw new TypeError("Invalid verifiers: expected an array");
      }
      const named = (assignment.verifiers ?? []).map((v, i) => checkId(`verifiers[${i}]`, v));
      if (price < 0n || price >= U256) {
        throw new ChainError(
          "invalid_amount",
          `Cannot assign job ${q(jobId)}: price must be a u256, got ${price}`,
        );
      }
      return this.#manager("assignWorker", jobId, [
        idKey(jobId),
        idKey(worker),
        price,
        named,
      ]);
    });
  }

  revokeAssignment(
    revocation: { jobId: string; worker: NodeId },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("revokeAssignment", options, () => {
      const jobId = checkId("job id", revocation.jobId);
      const worker = checkId("worker", revocation.worker);
      return this.#manager("revokeAssignment", jobId, [
        idKey(jobId),
        idKey(worker),
      ]);
    });
  }

  submitResult(
    result: { jobId: string; commitment: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("submitResult", options, () => {
      const jobId = checkId("job id", result.jobId);
      const commitment = checkHash("commitment", result.commitment);
      return this.#manager("submitResult", jobId, [
        idKey(jobId),
        `0x${commitment}`,
      ]);
    });
  }

  /** Legacy: the client's verdict, for a job submitted without terms only. */
  recordVerification(
    outcome: { jobId: string; accepted: boolean },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("recordVerification", options, () => {
      const jobId = checkId("job id", outcome.jobId);
      if (typeof outcome.accepted !== "boolean") {
        throw new TypeError(`Invalid accepted: expected a boolean, got ${typeof outcome.accepted}`);
      }
      return this.#manager("recordVerification", jobId, [idKey(jobId), outcome.accepted]);
    });
  }

  reportFailure(
    failure: { jobId: string; reason: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("reportFailure", options, () => {
      const jobId = checkId("job id", failure.jobId);
      const reason = failure.reason;
      if (typeof reason !== "string" || reason.length === 0 || reason.length > MAX_FAILURE_REASON) {
        throw new RangeError(
          `Invalid failure reason: expected 1 to ${MAX_FAILURE_REASON} characters`,
        );
      }
      return this.#manager("reportFailure", jobId, [idKey(jobId), reason]);
    });
  }

  /**
   * On an EVM the attestation key is the account itself (secp256k1): `publicKey` must be
   * {@link EvmChain.accountPublicKey}, the account's address as 40 lowercase hex digits.
   */
  registerKey(key: { publicKey: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call("registerKey", options, () => {
      if (key.publicKey !== this.#publicKey()) {
        throw new TypeError(
          "Invalid public key: on an EVM it is the account's address, 40 lowercase hex digits",
        );
      }
      return this.#pool("registerKey", []);
    });
  }

  /** The account's address, 40 lowercase hex digits: the key attestations are checked against. */
  accountPublicKey(options?: ChainCallOptions): Promise<string> {
    options?.signal?.throwIfAborted();
    return Promise.resolve(this.#publicKey());
  }

  #publicKey(): string {
    return this.address.slice(2).toLowerCase();
  }

  /** Signs EIP-712 typed data `Attestation(job, attempt, subject, valid)`: 65 bytes, 130 hex digits. */
  async signAttestation(
    statement: { jobId: string; attempt: number; subject: string; verdict: Verdict },
    options?: ChainCallOptions,
  ): Promise<SignedAttestation> {
    options?.signal?.throwIfAborted();
    this.#checkOpen("signAttestation");
    const jobId = checkId("job id", statement.jobId);
    const attempt = checkCount("attempt", statement.attempt, 1, 2 ** 32 - 1);
    if (typeof statement.subject !== "string" || statement.subject.length > MAX_ID_LENGTH) {
      throw new TypeError(`Invalid subject: expected at most ${MAX_ID_LENGTH} characters`);
    }
    if (statement.verdict !== "valid" && statement.verdict !== "invalid") {
      throw new TypeError(`Invalid verdict: expected "valid" or "invalid"`);
    }
    const signature = await this.#signer.signTypedData({
      domain: {
        name: "CIRO JobManager",
        version: "1",
        chainId: this.#chainId,
        verifyingContract: this.addresses.jobManager,
      },
      types: ATTESTATION_TYPES,
      primaryType: "Attestation",
      message: {
        job: idKey(jobId),
        attempt: BigInt(attempt),
        subject: subjectKey(statement.subject),
        valid: statement.verdict === "valid",
      },
    });
    return {
      jobId,
      attempt,
      subject: statement.subject,
      verdict: statement.verdict,
      verifier: this.account,
      signature: signature.slice(2).toLowerCase(),
    };
  }

  submitAttestations(
    batch: { attestations: readonly SignedAttestation[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("submitAttestations", options, () => {
      const list = batch.attestations;
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_VERIFIERS) {
        throw new RangeError(`Invalid attestations: expected 1 to ${MAX_VERIFIERS} of them`);
      }
      const checked = list.map((a, i) => checkAttestation(`attestations[${i}]`, a));
      return this.#manager("submitAttestations", (checked[0] as SignedAttestation).jobId, [
        checked.map(encodeAttestation),
      ]);
    });
  }

  reportDoubleSigning(
    evidence: { first: SignedAttestation; second: SignedAttestation },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("reportDoubleSigning", options, () => {
      const first = checkAttestation("first", evidence.first);
      const second = checkAttestation("second", evidence.second);
      return this.#manager("reportDoubleSigning", first.jobId, [
        encodeAttestation(first),
        encodeAttestation(second),
      ]);
    });
  }

  releasePayment(
    release: { jobId: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("releasePayment", options, () => {
      const jobId = checkId("job id", release.jobId);
      return this.#manager("releasePayment", jobId, [idKey(jobId)]);
    });
  }

  refund(
    refund: { jobId: string; reason: RefundReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("refund", options, () => {
      const jobId = checkId("job id", refund.jobId);
      const reason = REFUND_REASONS.indexOf(refund.reason);
      if (reason < 0) {
        throw new TypeError(
          `Invalid refund reason: ${JSON.stringify(refund.reason)}`,
        );
      }
      return this.#manager("refund", jobId, [idKey(jobId), reason]);
    });
  }

  slash(
    slash: { jobId: string; worker: NodeId; reason: SlashReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("slash", options, () => {
      const jobId = checkId("job id", slash.jobId);
      const worker = checkId("worker", slash.worker);
      const reason = SLASH_REASONS.indexOf(slash.reason);
      if (reason < 0) {
        throw new TypeError(
          `Invalid slash reason: ${JSON.stringify(slash.reason)}`,
        );
      }
      return this.#manager("slash", jobId, [
        idKey(jobId),
        idKey(worker),
        reason,
      ]);
    });
  }

  stake(
    stake: { amount: bigint; role?: "worker" | "verifier" },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("stake", options, () => {
      const amount = checkBigint("amount", stake.amount);
      const role = stake.role ?? "worker";
      if (role !== "worker" && role !== "verifier") {
        throw new TypeError(
          `Invalid role: expected "worker" or "verifier", got ${q(String(role))}`,
        );
      }
      if (amount <= 0n) {
        throw new ChainError(
          "invalid_amount",
          `Cannot stake for ${q(this.account)}: amount must be positive, got ${amount}`,
        );
      }
      return this.#pool("stake", [amount, role === "verifier"]);
    });
  }

  requestUnstake(
    request: { amount: bigint },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#call("requestUnstake", options, () => {
      const amount = checkBigint("amount", request.amount);
      if (amount <= 0n) {
        throw new ChainError(
          "invalid_amount",
          `Cannot unstake for ${q(this.account)}: amount must be positive, got ${amount}`,
        );
      }
      return this.#pool("requestUnstake", [amount]);
    });
  }

  withdraw(options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#call("withdraw", options, () => this.#pool("withdraw", []));
  }

  async stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint> {
    options?.signal?.throwIfAborted();
    this.#checkOpen("stakeOf");
    return await this.#read(
      this.addresses.cdcPool,
      EVM_ABIS.cdcPool,
      "bondedOf",
      [
        idKey(checkId("worker", worker)),
      ],
    ) as bigint;
  }

  async reputationOf(
    worker: NodeId,
    options?: ChainCallOptions,
  ): Promise<number> {
    options?.signal?.throwIfAborted();
    this.#checkOpen("reputationOf");
    return Number(
      await this.#read(
        this.addresses.cdcPool,
        EVM_ABIS.cdcPool,
        "reputationOf",
        [
          idKey(checkId("worker", worker)),
        ],
      ),
    );
  }

  /**
   * Job `jobId`'s escrow as the JobManager holds it at the confirmed head (`latest -
   * confirmations`, the block this adapter's events are read up to; its `escrowOf` view):
   * undefined for a job it does not know there (status `None`, or no confirmed block since the
   * deployment), the spec hash absent where it is zero, ended once the job is paid or refunded.
   * An escrow or an ending that only unconfirmed blocks hold is not read yet: a node reads no
   * escrow its event stream has not shown, nor one a reorg within the confirmations can undo.
   * `latest`: read at the latest block instead (an escrow still unconfirmed shows).
   */
  async escrowOf(
    jobId: string,
    options?: ChainCallOptions & { readonly latest?: boolean },
  ): Promise<EscrowRecord | undefined> {
    options?.signal?.throwIfAborted();
    this.#checkOpen("escrowOf");
    const key = idKey(checkId("job id", jobId));
    const confirmed = options?.latest === true
      ? await this.#confirmedHead() + this.#confirmations
      : await this.#confirmedHead();
    if (confirmed < this.addresses.deployBlock) return undefined;
    const [client, specHash, status] = await this.#read(
      this.addresses.jobManager,
      EVM_ABIS.jobManager,
      "escrowOf",
      [key],
      confirmed,
    ) as readonly [Hex, Hex, number];
    // The JobManager's `Status` enum, by its value.
    const state = ESCROW_STATUSES[status];
    if (state === undefined) {
      throw new ChainError(
        "rpc_error",
        `Cannot read escrowOf: job ${q(jobId)} has an unknown status ${status}`,
      );
    }
    if (state === "none") return undefined;
    return escrowRecordOf(jobId, {
      client: await this.#nodeId(client, `the escrow of ${q(jobId)}`),
      specHash: specHash.slice(2).toLowerCase(),
      status: state,
    });
  }

  /** The token balance of a node's account (0 for a node id with no account). */
  async balanceOf(node: NodeId): Promise<bigint> {
    const account = await this.#read(
      this.addresses.cdcPool,
      EVM_ABIS.cdcPool,
      "accountOf",
      [
        idKey(checkId("node", node)),
      ],
    ) as Address;
    return await this.#read(this.addresses.token, EVM_ABIS.token, "balanceOf", [
      account,
    ]) as bigint;
  }

  async totals(options?: ChainCallOptions): Promise<LedgerTotals> {
    options?.signal?.throwIfAborted();
    this.#checkOpen("totals");
    const m = (name: string) =>
      this.#read(
        this.addresses.jobManager,
        EVM_ABIS.jobManager,
        name,
        [],
      ) as Promise<bigint>;
    const p = (name: string) =>
      this.#read(this.addresses.cdcPool, EVM_ABIS.cdcPool, name, []) as Promise<
        bigint
      >;
    const [escrowed, paid, fees, refunded, locked, staked, slashed, withdrawn] = await Promise.all([
      m("totalEscrowed"),
      m("totalPaid"),
      m("totalFees"),
      m("totalRefunded"),
      m("totalLocked"),
      p("totalStaked"),
      p("totalSlashed"),
      p("totalWithdrawn"),
    ]);
    return {
      escrowed,
      paid,
      fees,
      refunded,
      locked,
      staked,
      slashed,
      withdrawn,
      bonded: staked - slashed - withdrawn,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Events

  async eventsSince(
    from: ChainCursor,
    options: ChainCallOptions & { limit?: number } = {},
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }> {
    checkCursor(from);
    this.#checkOpen("eventsSince");
    const limit = count("limit", options.limit ?? 1000, 1);
    const head = await this.#confirmedHead();
    const events: ChainEvent[] = [];
    let next = from;
    let start = Math.max(from.blockNumber, this.addresses.deployBlock);
    while (start <= head && events.length < limit) {
      options.signal?.throwIfAborted();
      const end = Math.min(head, start + this.#logBlockRange - 1);
      const logs = await this.#logs(start, end);
      for (const event of await this.#decodeAll(logs)) {
        if (
          event.blockNumber === from.blockNumber &&
          event.eventIndex < from.eventIndex
        ) continue;
        events.push(event);
        next = {
          blockNumber: event.blockNumber,
          eventIndex: event.eventIndex + 1,
        };
        if (events.length >= limit) break;
      }
      if (events.length < limit) next = { blockNumber: end + 1, eventIndex: 0 };
      start = end + 1;
    }
    return { events, next };
  }

  subscribe(
    handler: (event: ChainEvent) => void,
    options: EvmSubscribeOptions = {},
  ): () => void {
    this.#checkOpen("subscribe");
    const pollMs = count("pollMs", options.pollMs ?? this.#pollMs, 1);
    if (options.from !== undefined) checkCursor(options.from);
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.#closing.signal]);
    const unsubscribe = () => {
      stop.abort();
      this.#subscriptions.delete(unsubscribe);
    };
    this.#subscriptions.add(unsubscribe);
    void (async () => {
      const stored = options.from === undefined ? await options.cursorStore?.load() : undefined;
      let cursor: ChainCursor = options.from ?? stored?.cursor ??
        { blockNumber: this.addresses.deployBlock, eventIndex: 0 };
      let recent: BlockRef[] = [...(stored?.recentBlocks ?? [])];
      const delivered = new Map<string, ChainEvent>();
      while (!signal.aborted) {
        try {
          // Re-check the remembered blocks, newest first; on a mismatch find the newest match.
          const newest = recent.at(-1);
          if (newest !== undefined && !(await this.#sameBlock(newest))) {
            let keep = 0;
            for (let i = recent.length - 2; i >= 0; i--) {
              if (await this.#sameBlock(recent[i] as BlockRef)) {
                keep = i + 1;
                break;
              }
            }
            const dropped = recent.slice(keep);
            recent = recent.slice(0, keep);
            const last = recent.at(-1);
            cursor = last === undefined
              ? { blockNumber: this.addresses.deployBlock, eventIndex: 0 }
              : { blockNumber: last.blockNumber + 1, eventIndex: 0 };
            const first = dropped[0] as BlockRef;
            const gone = [...delivered.values()].filter((e) => e.blockNumber >= first.blockNumber);
            const { events: again } = await this.eventsSince(cursor, {
              limit: 1_000_000,
            });
            const still = new Set(again.map(identity));
            const revoked = gone.filter((e) => !still.has(identity(e)));
            if (revoked.length > 0) options.onReorg?.(revoked);
          }
          const { events, next } = await this.eventsSince(cursor, {
            limit: 256,
            signal,
          });
          for (const event of events) {
            if (signal.aborted) return;
            const id = identity(event);
            if (!delivered.has(id)) {
              delivered.set(id, event);
              handler(event);
            }
            rememberBlock(recent, event, this.#reorgWindow);
          }
          const headRef = next.blockNumber > 0
            ? await this.#blockRef(next.blockNumber - 1)
            : undefined;
          if (headRef !== undefined) {
            rememberBlock(recent, headRef, this.#reorgWindow);
          }
          cursor = next;
          await options.cursorStore?.save({ cursor, recentBlocks: recent });
          for (const [id, event] of delivered) {
            if (event.blockNumber < cursor.blockNumber - this.#reorgWindow) {
              delivered.delete(id);
            }
          }
        } catch (error) {
          if (signal.aborted) return;
          if (options.onError !== undefined) options.onError(error);
          else {
            logger.warn("Polling EVM events failed; retrying in {pollMs} ms: {error}", {
              pollMs,
              error: firstLine(error),
            });
          }
        }
        await sleep(pollMs, signal);
      }
    })();
    return unsubscribe;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#closing.abort();
      for (const unsubscribe of [...this.#subscriptions]) unsubscribe();
    }
    return Promise.resolve();
  }

  /** No key in any rendering of the adapter. */
  toJSON(): Record<string, unknown> {
    return {
      kind: "evm",
      account: this.account,
      address: this.address,
      chainId: this.#chainId,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  #checkOpen(method: string): void {
    if (this.#closed) {
      throw new ChainError(
        "rpc_error",
        `Cannot call ${method} as ${q(this.account)}: the adapter is closed`,
      );
    }
  }

  #call(
    method: string,
    options: ChainCallOptions | undefined,
    body: () => Promise<TxReceipt>,
  ): Promise<TxReceipt> {
    const run = async () => {
      options?.signal?.throwIfAborted();
      this.#checkOpen(method);
      return await body();
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #manager(method: string, jobId: string, args: unknown[]): Promise<TxReceipt> {
    return this.#transact(
      method,
      this.addresses.jobManager,
      EVM_ABIS.jobManager,
      args,
      jobId,
    );
  }

  #pool(method: string, args: unknown[]): Promise<TxReceipt> {
    return this.#transact(
      method,
      this.addresses.cdcPool,
      EVM_ABIS.cdcPool,
      args,
    );
  }

  async #transact(
    method: string,
    to: Address,
    abi: Abi,
    args: unknown[],
    jobId?: string,
  ): Promise<TxReceipt> {
    const what = `Cannot ${method}${jobId === undefined ? "" : ` job ${q(jobId)}`} as ${
      q(this.account)
    }`;
    const data = encodeFunctionData({ abi, functionName: method, args });
    let gas: bigint;
    try {
      gas = await this.#client.estimateGas({ account: this.address, to, data });
    } catch (error) {
      throw await this.#refusal(what, error, to, data);
    }
    const nonce = this.#nonce ?? await this.#client.getTransactionCount({
      address: this.address,
      blockTag: "pending",
    });
    this.#nonce = undefined;
    const fees = await this.#client.estimateFeesPerGas();
    const raw = await this.#signer.signTransaction({
      chainId: this.#chainId,
      type: "eip1559",
      to,
      data,
      nonce,
      // Room for the state to change between the estimate and the execution: an attestation
      // estimated before another one landed may be the one that decides (and slashes). Unused
      // gas is not charged.
      gas: gas * 2n + 200_000n < TX_GAS_CAP ? gas * 2n + 200_000n : max(gas, TX_GAS_CAP),
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    });
    const hash = keccak256(raw);
    let mayHaveArrived = false;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      try {
        await this.#client.request({
          method: "eth_sendRawTransaction",
          params: [raw],
        });
        mayHaveArrived = true;
      } catch (error) {
        const text = allText(error).toLowerCase();
        const known = /already known|known transaction|already imported|nonce too low/.test(
          text,
        );
        if (known && mayHaveArrived) {
          // The node has it (or has mined it): follow the hash.
        } else if (/nonce too low/.test(text) && !mayHaveArrived) {
          // Our kept nonce was stale and nothing of this transaction reached the node.
          throw new ChainError(
            "rpc_error",
            `${what}: nonce ${nonce} is already used; retry the call`,
            {
              cause: error,
            },
          );
        } else if (isTransportError(error)) {
          mayHaveArrived = true; // the answer may have been lost
          continue;
        } else {
          throw new ChainError(
            "rpc_error",
            `${what}: the node refused the transaction: ${allText(error).slice(0, 300)}`,
            {
              cause: error,
            },
          );
        }
      }
      const receipt = await this.#waitReceipt(hash);
      if (receipt === undefined) continue; // not mined in time: send the same bytes again
      this.#nonce = nonce + 1;
      if (receipt.status !== "success") {
        throw new ChainError(
          "reverted",
          `${what}: transaction ${hash} reverted`,
        );
      }
      return { txHash: hash, blockNumber: Number(receipt.blockNumber) };
    }
    throw new ChainError(
      "rpc_error",
      `${what}: transaction ${hash} (nonce ${nonce}) was not mined after ${this.#maxAttempts} sends`,
    );
  }

  /**
   * A failed estimate as a {@link ChainError}. Without revert data (some nodes drop it from
   * `eth_estimateGas`, or fail the estimate on gas alone), the call is run once more with
   * `eth_call` and an explicit gas limit, the block's, for its revert reason; a node that
   * gives none either way is named as the failure (`rpc_error`), not the contract.
   */
  async #refusal(what: string, error: unknown, to: Address, data: Hex): Promise<ChainError> {
    if (revertData(error) !== undefined || isTransportError(error)) return refusal(what, error);
    let again: unknown;
    try {
      const block = await this.#client.getBlock({ blockTag: "latest" });
      const gas = block.gasLimit < TX_GAS_CAP ? block.gasLimit : TX_GAS_CAP;
      await this.#client.call({ account: this.address, to, data, gas });
      // The call runs with all the gas a transaction may have: the estimate alone failed.
      return new ChainError(
        "rpc_error",
        `${what}: the node failed to estimate its gas, and the call succeeds with ${gas} gas: ${
          firstLine(error)
        }`,
        { cause: error },
      );
    } catch (second) {
      again = second;
    }
    if (revertData(again) !== undefined) return refusal(what, again);
    if (isTransportError(again)) return refusal(what, again);
    const code = rpcCode(error);
    return new ChainError(
      "rpc_error",
      `${what}: the node failed the call without a revert reason${
        code === undefined ? "" : ` (JSON-RPC ${code})`
      }: ${firstLine(error)}`,
      { cause: error },
    );
  }

  async #waitReceipt(hash: Hex) {
    const deadline = Date.now() + this.#receiptTimeoutMs;
    for (;;) {
      try {
        return await this.#client.getTransactionReceipt({ hash });
      } catch (error) {
        if (
          !/could not be found|not found/i.test(firstLine(error)) &&
          !isTransportError(error)
        ) {
          throw new ChainError(
            "rpc_error",
            `Cannot read the receipt of ${hash}: ${firstLine(error)}`,
            {
              cause: error,
            },
          );
        }
      }
      if (Date.now() >= deadline) return undefined;
      await sleep(this.#pollMs, this.#closing.signal);
    }
  }

  async #read(
    address: Address,
    abi: Abi,
    functionName: string,
    args: unknown[],
    blockNumber?: number,
  ): Promise<unknown> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#client.readContract({
          address,
          abi,
          functionName,
          args,
          ...(blockNumber === undefined ? {} : { blockNumber: BigInt(blockNumber) }),
        });
      } catch (error) {
        if (!isTransportError(error) || attempt >= this.#maxAttempts) {
          throw new ChainError(
            "rpc_error",
            `Cannot read ${functionName}: ${firstLine(error)}`,
            {
              cause: error,
            },
          );
        }
        await sleep(this.#pollMs * 2 ** attempt, this.#closing.signal);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Event decoding

  async #confirmedHead(): Promise<number> {
    const head = Number(await this.#client.getBlockNumber({ cacheTime: 0 }));
    return head - this.#confirmations;
  }

  async #blockRef(blockNumber: number): Promise<BlockRef | undefined> {
    const block = await this.#client.getBlock({
      blockNumber: BigInt(blockNumber),
    }).catch(() => undefined);
    return block?.hash === null || block === undefined
      ? undefined
      : { blockNumber, blockHash: block.hash };
  }

  async #sameBlock(ref: BlockRef): Promise<boolean> {
    const now = await this.#blockRef(ref.blockNumber);
    return now?.blockHash === ref.blockHash;
  }

  async #logs(fromBlock: number, toBlock: number): Promise<Log[]> {
    return await this.#client.getLogs({
      address: [this.addresses.jobManager, this.addresses.cdcPool],
      fromBlock: BigInt(fromBlock),
      toBlock: BigInt(toBlock),
    });
  }

  async #decodeAll(logs: Log[]): Promise<ChainEvent[]> {
    const decoded: PortLog[] = [];
    for (const log of logs) {
      const abi = getAddress(log.address) === this.addresses.jobManager
        ? EVM_ABIS.jobManager
        : EVM_ABIS.cdcPool;
      let event;
      try {
        event = decodeEventLog({
          abi,
          data: log.data,
          topics: log.topics as [Hex, ...Hex[]],
        });
      } catch {
        continue; // not one of ours (another ABI's event at this address)
      }
      if (!PORT_EVENTS.has(event.eventName ?? "")) continue;
      if (
        log.blockHash === null || log.blockNumber === null ||
        log.transactionHash === null
      ) continue;
      decoded.push({
        name: String(event.eventName),
        args: event.args as unknown as Record<string, unknown>,
        blockNumber: Number(log.blockNumber),
        blockHash: log.blockHash,
        txHash: log.transactionHash,
        logIndex: log.logIndex ?? 0,
      });
    }
    decoded.sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);
    const events: ChainEvent[] = [];
    let block = -1;
    let ordinal = 0;
    let tx = "";
    let inTx = 0;
    for (const log of decoded) {
      if (log.blockNumber !== block) {
        block = log.blockNumber;
        ordinal = 0;
      }
      inTx = log.txHash === tx ? inTx + 1 : 0;
      tx = log.txHash;
      const event = await this.#toChainEvent(log, ordinal++);
      IDENTITY.set(event, `${log.txHash}:${inTx}`);
      events.push(event);
    }
    return events;
  }

  async #jobId(key: Hex): Promise<string> {
    const known = this.#jobIds.get(key);
    if (known !== undefined) return known;
    const logs = await this.#client.getLogs({
      address: this.addresses.jobManager,
      event: EVM_ABIS.jobManager.find((e) =>
        e.type === "event" && e.name === "JobSubmitted"
      ) as never,
      args: { job: key } as never,
      fromBlock: BigInt(this.addresses.deployBlock),
    });
    const first = logs[0] as unknown as { args: { jobId: string } } | undefined;
    if (first === undefined) {
      throw new ChainError(
        "rpc_error",
        `Cannot decode an event: no JobSubmitted for job key ${key}`,
      );
    }
    this.#jobIds.set(key, first.args.jobId);
    return first.args.jobId;
  }

  async #nodeId(key: Hex, what = "an event"): Promise<string> {
    const known = this.#nodeIds.get(key);
    if (known !== undefined) return known;
    const id = await this.#read(
      this.addresses.cdcPool,
      EVM_ABIS.cdcPool,
      "nodeIdOf",
      [key],
    ) as string;
    if (id === "") {
      throw new ChainError(
        "rpc_error",
        `Cannot decode ${what}: node key ${key} is not registered`,
      );
    }
    this.#nodeIds.set(key, id);
    return id;
  }

  async #toChainEvent(log: PortLog, eventIndex: number): Promise<ChainEvent> {
    const meta = {
      blockNumber: log.blockNumber,
      blockHash: log.blockHash,
      txHash: log.txHash,
      eventIndex,
    };
    const a = log.args;
    const hex = (v: unknown) => (v as string).slice(2).toLowerCase();
    if (log.name === "JobSubmitted") {
      this.#jobIds.set(a["job"] as string, a["jobId"] as string);
    }
    const jobId = "job" in a ? await this.#jobId(a["job"] as Hex) : "";
    switch (log.name) {
      case "JobSubmitted":
        return {
          ...meta,
          name: "JobSubmitted",
          jobId,
          client: await this.#nodeId(a["client"] as Hex),
          amount: a["amount"] as bigint,
          modelHash: hex(a["modelHash"]),
          inputCommitment: hex(a["inputCommitment"]),
          minStake: a["minStake"] as bigint,
          ...termsOf(a["terms"]),
        };
      case "WorkerAssigned": {
        const verifiers: NodeId[] = [...(a["named"] as readonly string[])];
        for (const key of a["verifiers"] as readonly Hex[]) verifiers.push(await this.#nodeId(key));
        return {
          ...meta,
          name: "WorkerAssigned",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
          price: a["price"] as bigint,
          verifiers,
          attempt: Number(a["attempt"]),
        };
      }
      case "FailureReported":
        return {
          ...meta,
          name: "FailureReported",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
          reason: a["reason"] as string,
        };
      case "AttestationRecorded":
        return {
          ...meta,
          name: "AttestationRecorded",
          jobId,
          verifier: await this.#nodeId(a["verifier"] as Hex),
          attempt: Number(a["attempt"]),
          verdict: a["valid"] === true ? "valid" : "invalid",
        };
      case "KeyRegistered":
        return {
          ...meta,
          name: "KeyRegistered",
          account: await this.#nodeId(a["node"] as Hex),
          publicKey: hex(a["account"]),
        };
      case "VerifierRegistered":
        return {
          ...meta,
          name: "VerifierRegistered",
          verifier: await this.#nodeId(a["verifier"] as Hex),
        };
      case "AssignmentRevoked":
        return {
          ...meta,
          name: "AssignmentRevoked",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
        };
      case "ResultSubmitted":
        return {
          ...meta,
          name: "ResultSubmitted",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
          commitment: hex(a["commitment"]),
        };
      case "JobVerified":
        return { ...meta, name: "JobVerified", jobId };
      case "JobDisputed":
        return { ...meta, name: "JobDisputed", jobId };
      case "PaymentReleased":
        return {
          ...meta,
          name: "PaymentReleased",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
          amount: a["amount"] as bigint,
          fee: a["fee"] as bigint,
          change: a["change"] as bigint,
        };
      case "EscrowRefunded":
        return {
          ...meta,
          name: "EscrowRefunded",
          jobId,
          client: await this.#nodeId(a["client"] as Hex),
          amount: a["amount"] as bigint,
          reason: REFUND_REASONS[Number(a["reason"])] as RefundReason,
        };
      case "WorkerSlashed":
        return {
          ...meta,
          name: "WorkerSlashed",
          jobId,
          worker: await this.#nodeId(a["worker"] as Hex),
          amount: a["amount"] as bigint,
          reason: SLASH_REASONS[Number(a["reason"])] as SlashReason,
        };
      case "WorkerStaked":
        return {
          ...meta,
          name: "WorkerStaked",
          worker: await this.#nodeId(a["worker"] as Hex),
          amount: a["amount"] as bigint,
          total: a["total"] as bigint,
        };
      case "UnstakeRequested":
        return {
          ...meta,
          name: "UnstakeRequested",
          worker: await this.#nodeId(a["worker"] as Hex),
          amount: a["amount"] as bigint,
          unlockAt: Number(a["unlockAt"]),
        };
      case "StakeWithdrawn":
        return {
          ...meta,
          name: "StakeWithdrawn",
          worker: await this.#nodeId(a["worker"] as Hex),
          amount: a["amount"] as bigint,
        };
      default:
        return {
          ...meta,
          name: "ReputationUpdated",
          worker: await this.#nodeId(a["worker"] as Hex),
          score: Number(a["score"]),
        };
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** An event's identity: its transaction and its place among the port's events of that transaction. */
const IDENTITY = new WeakMap<ChainEvent, string>();

function identity(event: ChainEvent): string {
  return IDENTITY.get(event) ?? `${event.txHash}:${event.name}:${event.eventIndex}`;
}

function rememberBlock(
  recent: BlockRef[],
  ref: BlockRef,
  window: number,
): void {
  const last = recent.at(-1);
  if (last !== undefined && last.blockNumber >= ref.blockNumber) {
    if (last.blockNumber === ref.blockNumber) recent[recent.length - 1] = ref;
    return;
  }
  recent.push({ blockNumber: ref.blockNumber, blockHash: ref.blockHash });
  while (
    recent.length > 0 &&
    (recent[0] as BlockRef).blockNumber < ref.blockNumber - window
  ) {
    recent.shift();
  }
}

/** A refused estimate as a {@link ChainError}: the contract's `Refused(code, reason)`, else `reverted`. */
function refusal(what: string, error: unknown): ChainError {
  const data = revertData(error);
  if (data !== undefined) {
    for (const abi of [EVM_ABIS.jobManager, EVM_ABIS.cdcPool, EVM_ABIS.token]) {
      try {
        const decoded = decodeErrorResult({ abi, data });
        if (decoded.errorName === "Refused") {
          const [code, reason] = decoded.args as [string, string];
          return new ChainError(
            CHAIN_CODES.has(code) ? code as ChainErrorCode : "reverted",
            `${what}: ${reason}`,
            { cause: error },
          );
        }
      } catch {
        // try the next ABI
      }
    }
    return new ChainError(
      "reverted",
      `${what}: the contract reverted (${data.slice(0, 10)})`,
      { cause: error },
    );
  }
  if (isTransportError(error)) {
    return new ChainError("rpc_error", `${what}: ${firstLine(error)}`, {
      cause: error,
    });
  }
  return new ChainError("reverted", `${what}: ${firstLine(error)}`, {
    cause: error,
  });
}

function revertData(error: unknown): Hex | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (
    typeof current === "object" && current !== null && !seen.has(current)
  ) {
    seen.add(current);
    const data = (current as { data?: unknown }).data;
    if (
      typeof data === "string" && /^0x[0-9a-fA-F]{8,}$/.test(data)
    ) return data as Hex;
    if (typeof data === "object" && data !== null) {
      const inner = (data as { data?: unknown }).data;
      if (
        typeof inner === "string" && /^0x[0-9a-fA-F]{8,}$/.test(inner)
      ) return inner as Hex;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The JSON-RPC error code along an error's causes (-32603 for a node's internal error). */
function rpcCode(error: unknown): number | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (typeof current === "object" && current !== null && !seen.has(current)) {
    seen.add(current);
    const code = (current as { code?: unknown }).code;
    if (typeof code === "number") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function isTransportError(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (
    typeof current === "object" && current !== null && !seen.has(current)
  ) {
    seen.add(current);
    const name = (current as { name?: unknown }).name;
    if (
      name === "HttpRequestError" || name === "TimeoutError" ||
      name === "TypeError"
    ) return true;
    const message = String((current as { message?: unknown }).message ?? "");
    if (
      /fetch failed|connection refused|econnrefused|network|socket/i.test(
        message,
      )
    ) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Every message and detail along an error's causes, for matching a node's wording. */
function allText(error: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (typeof current === "object" && current !== null && !seen.has(current)) {
    seen.add(current);
    for (const key of ["message", "details", "shortMessage"]) {
      const value = (current as Record<string, unknown>)[key];
      if (typeof value === "string") parts.push(value);
    }
    current = (current as { cause?: unknown }).cause;
  }
  return parts.join(" | ");
}

function firstLine(error: unknown): string {
  const text = error instanceof Error
    ? ((error as { shortMessage?: string }).shortMessage ?? error.message)
    : String(error);
  const first = text.split("\n")[0] ?? "";
  // viem keeps what the node said in `details` (an internal error's is the reason).
  const details = error instanceof Error ? (error as { details?: unknown }).details : undefined;
  return typeof details === "string" && details !== "" && !first.includes(details)
    ? `${first} (${details.split("\n")[0]})`
    : first;
}

async function readKey(options: EvmChainOptions): Promise<Hex> {
  let key: string | undefined;
  let where: string;
  if (options.privateKey !== undefined) {
    key = options.privateKey;
    where = "chain.privateKey";
  } else if (options.privateKeyFile !== undefined) {
    where = `chain.privateKeyFile ${JSON.stringify(options.privateKeyFile)}`;
    try {
      key = (await Deno.readTextFile(options.privateKeyFile)).trim();
    } catch (cause) {
      throw new TypeError(`Cannot read the EVM key: ${where} cannot be read`, {
        cause,
      });
    }
  } else {
    where = `the ${EVM_PRIVATE_KEY_ENV} environment variable`;
    key = Deno.env.get(EVM_PRIVATE_KEY_ENV);
  }
  if (key === undefined || !/^0x[0-9a-fA-F]{64}$/.test(key)) {
    // The value itself is never in the message.
    throw new TypeError(
      `Invalid EVM key: ${where} must hold 0x and 64 hex digits`,
    );
  }
  return key as Hex;
}

function checkAddresses(addresses: EvmAddresses): EvmAddresses {
  if (typeof addresses !== "object" || addresses === null) {
    throw new TypeError(
      "Invalid chain.addresses: expected token, cdcPool, jobManager, deployBlock",
    );
  }
  const one = (key: "token" | "cdcPool" | "jobManager"): Address => {
    const value = addresses[key];
    if (typeof value !== "string" || !/^0x[0-9a-fA-F]{40}$/.test(value)) {
      throw new TypeError(
        `Invalid chain.addresses.${key}: expected a 20-byte hex address, got ${
          JSON.stringify(value)
        }`,
      );
    }
    return getAddress(value);
  };
  if (
    !Number.isSafeInteger(addresses.deployBlock) || addresses.deployBlock < 0
  ) {
    throw new TypeError(
      `Invalid chain.addresses.deployBlock: expected a block number, got ${addresses.deployBlock}`,
    );
  }
  return {
    token: one("token"),
    cdcPool: one("cdcPool"),
    jobManager: one("jobManager"),
    deployBlock: addresses.deployBlock,
  };
}

/** The contract's `Attestation` tuple; a signature that is not hex goes as empty bytes. */
function encodeAttestation(a: SignedAttestation) {
  return {
    job: idKey(a.jobId),
    verifier: idKey(a.verifier),
    attempt: BigInt(a.attempt),
    subject: subjectKey(a.subject),
    valid: a.verdict === "valid",
    signature: (/^([0-9a-fA-F]{2})*$/.test(a.signature) ? `0x${a.signature}` : "0x") as Hex,
  };
}

function count(what: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(
      `Invalid ${what}: expected an integer of at least ${min}, got ${value}`,
    );
  }
  return value;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    signal.addEventListener("abort", done, { once: true });
  });
}
