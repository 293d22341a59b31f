/**
 * The Starknet settlement adapter: {@link StarknetChain} implements the {@link ChainPort} against
 * the JobManager and CDC Pool Cairo contracts (interface: `chain/CAIRO_INTERFACE.md`, ABIs:
 * `chain/abi/*.json`) through starknet.js 10.8 (`RpcProvider`, `Account`, `Contract`; JSON-RPC
 * spec 0.9 or 0.10).
 *
 * Transactions. Calls from one adapter are sent one at a time: the adapter keeps the account's
 * next nonce (read from the pre-confirmed block at first), estimates the fee
 * (`starknet_estimateFee`; a refusal, error 41, fails with the Cairo panic and sends nothing),
 * signs once and computes the transaction hash itself, sends it
 * (`starknet_addInvokeTransaction`) and follows the hash (`starknet_getTransactionStatus`, then
 * the receipt). A send whose outcome is unknown (the answer was lost, the node does not know the
 * hash, the transaction was evicted from the mempool) is never signed again with another nonce:
 * the identical signed transaction is sent again (same hash, so it executes at most once), error
 * 59 means the node has it, and error 52 after a send that may have arrived means "possibly
 * executed": the hash is looked up until the node knows it or `maxAttempts` reads say it does
 * not, and the call fails with `rpc_error` rather than guess. Only a 52 for a transaction no copy
 * of which can have reached the node is re-signed with the nonce read again. The cached nonce is
 * dropped at the first send and set only after a receipt, so a failure leaves no gap. A transient
 * failure (network, HTTP 5xx, `UNEXPECTED_ERROR`) of a read is retried with exponential backoff,
 * at most `maxAttempts` times. A call the contract refuses fails with a {@link ChainError} whose
 * code is the Cairo panic string (`duplicate_job`, `invalid_state`, ...); one that reverts for
 * another reason is `reverted`; an RPC failure is `rpc_error`. Felts go out canonical (`0x`
 * without leading zeros, the spec's FELT pattern), `ByteArray` arguments as UTF-8 bytes.
 *
 * Identity. Events and calls name nodes by their {@link NodeId} (a libp2p peer id), as a Cairo
 * `ByteArray`; the CDC Pool binds each account to one node id (`register_node`), and
 * {@link StarknetChain.connect} registers the account's node id if it is not yet.
 *
 * Events. {@link StarknetChain.eventsSince} and {@link StarknetChain.subscribe} read the two
 * contracts' events with `starknet_getEvents` (the event selectors as `keys`, `chunk_size` and
 * `continuation_token` pagination), only up to `latest - confirmations`. The request follows the
 * node's `starknet_specVersion`: both contract addresses as a list from 0.10.1; before, no address
 * (one is all 0.9 and 0.10.0 allow) and `from_address` checked here. A node that answers error 34
 * (too many keys in a filter) gets the selectors split into several filters, merged in chain order
 * (by `transaction_index` and `event_index` from 0.10; on 0.9 by the block's transaction list and
 * the transaction's receipt). A {@link ChainEvent}'s `eventIndex` is its position among the two
 * contracts' events in its block, so `{ blockNumber, eventIndex + 1 }` is the cursor after it, as
 * with the local ledger; an event's identity is `(block hash, transaction hash, event_index)`,
 * with, on 0.9 (no `event_index`), this adapter's ordinal of the event in its transaction. A
 * subscription:
 *
 * - starts at `from`, else where the `cursorStore` option left off (so a restarted node resumes),
 *   else at block 0, and saves its cursor after every delivered event;
 * - remembers `(block number, block hash)` of the blocks it processed (those with events and the
 *   confirmed head of each poll, within `reorgWindow` blocks) and re-checks them every poll with
 *   `starknet_getBlockWithTxHashes`: the newest first (a block hash commits to its parent's, so
 *   if it still matches the older ones do), and on a mismatch all of them, oldest first; then it
 *   rolls its cursor back to the last block that still matches, reports the revoked events to
 *   `onReorg`, and reads the new chain again. The confirmed head is only remembered if its hash
 *   is the same before and after the events up to it were read;
 * - delivers each event identity at most once;
 * - skips events of the pre-confirmed block (no `block_hash`/`block_number`) until they are in
 *   a confirmed block.
 *
 * Keys. The account key comes from `privateKey`, `privateKeyFile`, or the
 * `CIRO_STARKNET_PRIVATE_KEY` environment variable; it lives only inside the starknet.js signer
 * held in a private field, and no message, log line or `JSON.stringify` of the adapter shows it.
 *
 * Chain-decided settlement. A job submitted with a `verifierCount` goes as
 * `submit_job_with_terms`; verifiers bond with `stake({ role: "verifier" })`
 * (`stake_as_verifier`) and register the Ed25519 key they attest with (`registerKey`, the
 * `attestationKey` option, by default derived from the account key); `signAttestation` signs a
 * statement off chain and anyone relays it with `submitAttestations`; `reportDoubleSigning` and
 * `reportFailure` complete the set (see `chain/CAIRO_INTERFACE.md`). They are sent like every
 * other call, so each executes at most once.
 *
 * ```ts ignore
 * import { StarknetChain } from "./starknet_adapter.ts";
 *
 * const chain = await StarknetChain.connect({
 *   rpcUrl: "https://starknet-sepolia.example/rpc/v0_10",
 *   accountAddress: "0x0123...",
 *   privateKeyFile: "/etc/ciro/starknet.key",
 *   jobManagerAddress: "0x0456...",
 *   cdcPoolAddress: "0x0789...",
 * });
 * const stop = chain.subscribe((event) => console.log(event.name));
 * await chain.stake({ amount: 1_000n });
 * stop();
 * await chain.close();
 * ```
 *
 * Files: this one is the public entry (options, the calls, views and subscriptions); the sending
 * rule is `starknet/_sender.ts`, event reading `starknet/_events.ts` and `starknet/_subscription.ts`,
 * request retries and error classification `starknet/_rpc.ts`, argument checks `starknet/_args.ts`.
 *
 * @module
 */
import { Account, type Call, Contract, RpcProvider } from "starknet";
import { getLogger } from "@logtape/logtape";
import type { NodeId, RefundReason, SlashReason, Verdict } from "../machines/types.ts";
import {
  type ChainCallOptions,
  type ChainCursor,
  ChainError,
  type ChainEvent,
  type ChainPort,
  ESCROW_STATUSES,
  type EscrowRecord,
  escrowRecordOf,
  type EscrowStatus,
  type LedgerTotals,
  NO_SPEC_HASH,
  type SignedAttestation,
  type TxReceipt,
} from "./port.ts";
import {
  checkAttestation,
  checkCount as checkBounded,
  checkId as checkPortId,
  checkSubmission,
  type JobSubmission,
  MAX_FAILURE_REASON,
  MAX_ID_LENGTH,
  MAX_VERIFIERS,
} from "./_args.ts";
import { type AccountKey, isPublicKey } from "./settlement.ts";
import { checkCursor, type CursorStore } from "./event_cursor.ts";
import {
  cairoAttestation,
  checkAmount,
  checkCount,
  checkHash,
  checkId,
  checkReason,
  derivedAttestationKey,
  resolvePrivateKey,
  text,
} from "./starknet/_args.ts";
import { parseVersion, Rpc, type Settings, withRetries } from "./starknet/_rpc.ts";
import { TxSender } from "./starknet/_sender.ts";
import { checkOptions, type StarknetChainOptions } from "./starknet/_options.ts";
import { EventReader } from "./starknet/_events.ts";
import { type StarknetSubscribeOptions, Subscription } from "./starknet/_subscription.ts";
import jobManagerAbi from "./abi/job_manager.json" with { type: "json" };
import cdcPoolAbi from "./abi/cdc_pool.json" with { type: "json" };

export { PRIVATE_KEY_ENV, resolvePrivateKey } from "./starknet/_args.ts";
export type { StarknetChainOptions } from "./starknet/_options.ts";
export type { ReorgNotice, StarknetSubscribeOptions } from "./starknet/_subscription.ts";

const logger = getLogger(["ciro", "chain", "starknet"]);

type Abi = ConstructorParameters<typeof Contract>[0]["abi"];

/** A `felt252` short string's text (its bytes, most significant first; 0 is empty). */
function shortText(value: bigint): string {
  let text = "";
  for (let v = value; v > 0n; v >>= 8n) text = String.fromCharCode(Number(v & 0xffn)) + text;
  return text;
}

/** The statuses `escrow_of` answers (`chain/CAIRO_INTERFACE.md`): `'none'` for no such job. */
const JOB_STATUSES: ReadonlySet<string> = new Set(ESCROW_STATUSES);

/** The {@link ChainPort} on Starknet. Create it with {@link StarknetChain.connect}. */
export class StarknetChain implements ChainPort {
  /** The node id this adapter signs as. */
  readonly account: NodeId;
  /** The account contract's address, 0x + 64 lowercase hex digits. */
  readonly address: string;

  readonly #settings: Settings;
  readonly #rpc: Rpc;
  readonly #sender: TxSender;
  readonly #reader: EventReader;
  readonly #jobManager: Contract;
  readonly #cdcPool: Contract;
  readonly #cursorStore: CursorStore | undefined;
  readonly #attestationKey: AccountKey;
  readonly #closing = new AbortController();
  readonly #subscriptions = new Set<() => void>();
  readonly #loops = new Set<Promise<void>>();
  #closed = false;

  private constructor(
    nodeId: NodeId,
    settings: Settings,
    provider: RpcProvider,
    signer: Account,
    cursorStore: CursorStore | undefined,
    attestationKey: AccountKey,
  ) {
    this.account = nodeId;
    this.#attestationKey = attestationKey;
    this.address = `0x${BigInt(settings.accountAddress).toString(16).padStart(64, "0")}`;
    this.#settings = settings;
    this.#rpc = new Rpc(settings, this.#closing.signal);
    this.#sender = new TxSender(settings, provider, signer, this.#rpc);
    this.#reader = new EventReader(settings, provider, this.#rpc);
    this.#cursorStore = cursorStore;
    this.#jobManager = new Contract({
      abi: jobManagerAbi as Abi,
      address: settings.jobManagerAddress,
      providerOrAccount: provider,
    });
    this.#cdcPool = new Contract({
      abi: cdcPoolAbi as Abi,
      address: settings.cdcPoolAddress,
      providerOrAccount: provider,
    });
  }

  /**
   * Connects to the node, checks its spec version and chain, and registers the account's node
   * id in the CDC Pool if needed. Fails with a `TypeError`/`RangeError` for bad options and a
   * {@link ChainError} (`rpc_error`, or `not_authorized` when the account is bound to another
   * node id) otherwise.
   */
  static async connect(options: StarknetChainOptions): Promise<StarknetChain> {
    const signal = options.signal;
    const { origin, accountAddress, nodeId, base } = checkOptions(options);
    const privateKey = await resolvePrivateKey({
      ...(options.privateKey !== undefined && { privateKey: options.privateKey }),
      ...(options.privateKeyFile !== undefined && { privateKeyFile: options.privateKeyFile }),
      ...(signal !== undefined && { signal }),
    });
    const retry = <T>(action: string, body: () => Promise<T>) =>
      withRetries(action, body, base.maxAttempts, base.backoffMs, signal);
    const probe = new RpcProvider({ nodeUrl: options.rpcUrl });
    const spec = String(
      await retry(`read the spec version of ${origin}`, () => probe.getSpecVersion()),
    );
    const version = parseVersion(spec);
    if (version === undefined || version[0] !== 0 || (version[1] !== 9 && version[1] !== 10)) {
      throw new ChainError(
        "rpc_error",
        `Cannot connect to ${origin}: it speaks JSON-RPC spec ${spec}, expected 0.9 or 0.10`,
      );
    }
    const addressList = version[1] > 10 || (version[1] === 10 && version[2] >= 1);
    const provider = new RpcProvider({
      nodeUrl: options.rpcUrl,
      specVersion: version[1] === 9 ? "0.9.0" : "0.10.0",
    });
    const chainId = String(
      await retry(`read the chain id of ${origin}`, () => provider.getChainId()),
    );
    const signer = new Account({
      provider,
      address: base.accountAddress,
      signer: privateKey,
      cairoVersion: "1",
    });
    const chain = new StarknetChain(
      nodeId,
      { ...base, addressList, chainId, specVersion: spec },
      provider,
      signer,
      options.cursorStore,
      options.attestationKey ?? derivedAttestationKey(privateKey),
    );
    const registered = await chain.#view(
      "read the account's node id",
      chain.#cdcPool,
      "node_id_of",
      [accountAddress],
      signal,
    );
    const current = String(registered);
    if (current === "") {
      if (options.register ?? true) {
        await chain.#sender.send(
          `register node ${JSON.stringify(nodeId)}`,
          [chain.#cdcPool.populate("register_node", [text(nodeId)])],
          chain.#signal(signal),
        );
      }
    } else if (current !== nodeId) {
      throw new ChainError(
        "not_authorized",
        `Cannot connect as node ${
          JSON.stringify(nodeId)
        }: account ${accountAddress} is registered as ${JSON.stringify(current)}`,
      );
    }
    logger.info("Connected to Starknet at {origin} (spec {spec}) as {nodeId}", {
      origin,
      spec,
      nodeId,
    });
    return chain;
  }

  /** Only public, non-secret facts: what `JSON.stringify` shows. */
  toJSON(): Record<string, unknown> {
    return {
      account: this.account,
      address: this.address,
      rpc: this.#settings.rpcOrigin,
      jobManagerAddress: this.#settings.jobManagerAddress,
      cdcPoolAddress: this.#settings.cdcPoolAddress,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Transactions

  /**
   * Escrows a job: `submit_job` for a job without terms (legacy, the client's verdict), or
   * `submit_job_with_terms` for one with a `verifierCount` (the chain decides its outcome).
   */
  submitJob(job: JobSubmission, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(`submit job ${JSON.stringify(job.jobId)}`, options, () => {
      const checked = checkSubmission(job);
      const calls: Call[] = [];
      if (this.#settings.tokenAddress !== undefined) {
        calls.push(this.#approve(this.#settings.jobManagerAddress, checked.amount));
      }
      const args = [
        text(checked.jobId),
        checked.amount,
        checked.minStake,
        BigInt(`0x${checked.modelHash}`),
        BigInt(`0x${checked.inputCommitment}`),
      ];
      calls.push(
        checked.chainDecided
          ? this.#jobManager.populate("submit_job_with_terms", [...args, {
            verifier_count: checked.verifierCount,
            bid_window_ms: checked.bidWindowMs,
            execution_ms: checked.executionMs,
            verification_ms: checked.verificationMs,
            spec_hash: BigInt(`0x${checked.specHash ?? NO_SPEC_HASH}`),
          }])
          : this.#jobManager.populate("submit_job", args),
      );
      return calls;
    });
  }

  /**
   * Assigns the job to `worker`. For a job with terms the chain chooses the verifiers
   * (`verifiers` must be absent or empty); a legacy job takes the client's list.
   */
  assignWorker(
    assignment: { jobId: string; worker: NodeId; price: bigint; verifiers?: readonly NodeId[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `assign job ${JSON.stringify(assignment.jobId)} to ${JSON.stringify(assignment.worker)}`,
      options,
      () => [
        this.#jobManager.populate("assign_worker", [
          text(checkId("jobId", assignment.jobId)),
          text(checkId("worker", assignment.worker)),
          checkAmount("price", assignment.price),
          // Positional arguments: starknet.js 10.8 refuses `Array<ByteArray>` in object form.
          (assignment.verifiers ?? []).map((v, i) => text(checkId(`verifiers[${i}]`, v))),
        ]),
      ],
    );
  }

  revokeAssignment(
    revocation: { jobId: string; worker: NodeId },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `revoke ${JSON.stringify(revocation.worker)} from job ${JSON.stringify(revocation.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("revoke_assignment", [
          text(checkId("jobId", revocation.jobId)),
          text(checkId("worker", revocation.worker)),
        ]),
      ],
    );
  }

  submitResult(
    result: { jobId: string; commitment: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `submit the result of job ${JSON.stringify(result.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("submit_result", [
          text(checkId("jobId", result.jobId)),
          checkHash("commitment", result.commitment),
        ]),
      ],
    );
  }

  recordVerification(
    outcome: { jobId: string; accepted: boolean },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `record the verification of job ${JSON.stringify(outcome.jobId)}`,
      options,
      () => {
        if (typeof outcome.accepted !== "boolean") {
          throw new TypeError(
            `Invalid accepted: expected a boolean, got ${typeof outcome.accepted}`,
          );
        }
        return [
          this.#jobManager.populate("record_verification", [
            text(checkId("jobId", outcome.jobId)),
            outcome.accepted,
          ]),
        ];
      },
    );
  }

  /** The assigned worker reports that the job fails on its input (`report_failure`). */
  reportFailure(
    failure: { jobId: string; reason: string },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `report the failure of job ${JSON.stringify(failure.jobId)}`,
      options,
      () => {
        const reason = failure.reason;
        if (
          typeof reason !== "string" || reason.length === 0 || reason.length > MAX_FAILURE_REASON
        ) {
          throw new RangeError(
            `Invalid failure reason: expected 1 to ${MAX_FAILURE_REASON} characters`,
          );
        }
        return [
          this.#jobManager.populate("report_failure", [
            text(checkId("jobId", failure.jobId)),
            text(reason),
          ]),
        ];
      },
    );
  }

  /** Registers this account's Ed25519 attestation key in the CDC Pool (`register_key`, once). */
  registerKey(key: { publicKey: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact("register the attestation key", options, () => {
      if (!isPublicKey(key.publicKey)) {
        throw new TypeError(
          "Invalid public key: expected an Ed25519 key as 64 lowercase hex digits",
        );
      }
      return [this.#cdcPool.populate("register_key", [BigInt(`0x${key.publicKey}`)])];
    });
  }

  /** The Ed25519 public key (64 hex digits) this adapter signs attestations with. */
  accountPublicKey(options?: ChainCallOptions): Promise<string> {
    options?.signal?.throwIfAborted();
    return Promise.resolve(this.#attestationKey.publicKey);
  }

  /** Signs a statement with the attestation key (no transaction). */
  signAttestation(
    statement: { jobId: string; attempt: number; subject: string; verdict: Verdict },
    options?: ChainCallOptions,
  ): Promise<SignedAttestation> {
    try {
      options?.signal?.throwIfAborted();
      this.#checkOpen("sign an attestation");
      const jobId = checkId("job id", statement.jobId);
      const attempt = checkBounded("attempt", statement.attempt, 1);
      if (typeof statement.subject !== "string" || statement.subject.length > MAX_ID_LENGTH) {
        throw new TypeError(`Invalid subject: expected at most ${MAX_ID_LENGTH} characters`);
      }
      if (statement.verdict !== "valid" && statement.verdict !== "invalid") {
        throw new TypeError(`Invalid verdict: expected "valid" or "invalid"`);
      }
      return Promise.resolve(
        this.#attestationKey.sign(this.account, {
          jobId,
          attempt,
          subject: statement.subject,
          verdict: statement.verdict,
        }),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Relays signed attestations (`submit_attestations`, anyone may); the contract checks each
   * signature against the verifier's registered key and counts them.
   */
  submitAttestations(
    batch: { attestations: readonly SignedAttestation[] },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    const first = batch?.attestations?.[0]?.jobId;
    return this.#transact(`submit attestations of job ${JSON.stringify(first)}`, options, () => {
      const list = batch.attestations;
      if (!Array.isArray(list) || list.length === 0 || list.length > MAX_VERIFIERS) {
        throw new RangeError(`Invalid attestations: expected 1 to ${MAX_VERIFIERS} of them`);
      }
      const checked = list.map((a, i) => checkAttestation(`attestations[${i}]`, a));
      return [this.#jobManager.populate("submit_attestations", [checked.map(cairoAttestation)])];
    });
  }

  /** Evidence of double signing (`report_double_signing`): two conflicting statements. */
  reportDoubleSigning(
    evidence: { first: SignedAttestation; second: SignedAttestation },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `report double signing on job ${JSON.stringify(evidence?.first?.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("report_double_signing", [
          cairoAttestation(checkAttestation("first", evidence.first)),
          cairoAttestation(checkAttestation("second", evidence.second)),
        ]),
      ],
    );
  }

  releasePayment(release: { jobId: string }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(
      `release the payment of job ${JSON.stringify(release.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("release_payment", [text(checkId("jobId", release.jobId))]),
      ],
    );
  }

  refund(
    refund: { jobId: string; reason: RefundReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(`refund job ${JSON.stringify(refund.jobId)}`, options, () => [
      this.#jobManager.populate("refund", [
        text(checkId("jobId", refund.jobId)),
        checkReason("reason", refund.reason),
      ]),
    ]);
  }

  slash(
    slash: { jobId: string; worker: NodeId; reason: SlashReason },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(
      `slash ${JSON.stringify(slash.worker)} on job ${JSON.stringify(slash.jobId)}`,
      options,
      () => [
        this.#jobManager.populate("slash_worker", [
          text(checkId("jobId", slash.jobId)),
          text(checkId("worker", slash.worker)),
          checkReason("reason", slash.reason),
        ]),
      ],
    );
  }

  /** Bonds stake (`stake`); `role: "verifier"` also registers a verifier (`stake_as_verifier`). */
  stake(
    stake: { amount: bigint; role?: "worker" | "verifier" },
    options?: ChainCallOptions,
  ): Promise<TxReceipt> {
    return this.#transact(`stake ${stake.amount}`, options, () => {
      const amount = checkAmount("amount", stake.amount);
      const role = stake.role ?? "worker";
      if (role !== "worker" && role !== "verifier") {
        throw new TypeError(
          `Invalid role: expected "worker" or "verifier", got ${JSON.stringify(String(role))}`,
        );
      }
      const calls: Call[] = [];
      if (this.#settings.tokenAddress !== undefined) {
        calls.push(this.#approve(this.#settings.cdcPoolAddress, amount));
      }
      calls.push(
        this.#cdcPool.populate(role === "verifier" ? "stake_as_verifier" : "stake", [amount]),
      );
      return calls;
    });
  }

  requestUnstake(request: { amount: bigint }, options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact(`request to unstake ${request.amount}`, options, () => [
      this.#cdcPool.populate("request_unstake", [checkAmount("amount", request.amount)]),
    ]);
  }

  withdraw(options?: ChainCallOptions): Promise<TxReceipt> {
    return this.#transact("withdraw unbonded stake", options, () => [
      this.#cdcPool.populate("withdraw", []),
    ]);
  }

  #approve(spender: string, amount: bigint): Call {
    // The ERC-20 `approve(spender: ContractAddress, amount: u256)`, without an ABI.
    return {
      contractAddress: this.#settings.tokenAddress!,
      entrypoint: "approve",
      calldata: [
        spender,
        `0x${(amount % 2n ** 128n).toString(16)}`,
        `0x${(amount >> 128n).toString(16)}`,
      ],
    };
  }

  #transact(
    action: string,
    options: ChainCallOptions | undefined,
    build: () => Call[],
  ): Promise<TxReceipt> {
    try {
      this.#checkOpen(action);
      const calls = build();
      return this.#sender.send(action, calls, this.#signal(options?.signal));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Views

  async stakeOf(worker: NodeId, options?: ChainCallOptions): Promise<bigint> {
    this.#checkOpen("read a stake");
    const value = await this.#view(
      `read the stake of ${JSON.stringify(worker)}`,
      this.#cdcPool,
      "stake_of",
      [text(checkId("worker", worker))],
      options?.signal,
    );
    return BigInt(value as bigint);
  }

  async reputationOf(worker: NodeId, options?: ChainCallOptions): Promise<number> {
    this.#checkOpen("read a reputation");
    const value = await this.#view(
      `read the reputation of ${JSON.stringify(worker)}`,
      this.#cdcPool,
      "reputation_of",
      [text(checkId("worker", worker))],
      options?.signal,
    );
    return Number(value as bigint);
  }

  /**
   * Job `jobId`'s escrow as the JobManager holds it at the confirmed head (`latest -
   * confirmations`, the block this adapter's events are read up to; `escrow_of` called with that
   * `block_id`): undefined for a job it does not know there (status `'none'`, or no confirmed
   * block yet), the spec hash absent where it is 0, ended once the job is `'paid'` or
   * `'refunded'`. An escrow or an ending that only unconfirmed blocks hold is not read yet: a node
   * reads no escrow its event stream has not shown, nor one a reorg within the confirmations can
   * undo. An answer with another status, or a known job without a client, is an `rpc_error`
   * naming it. `latest`: read at the latest block instead (an escrow still unconfirmed shows).
   */
  async escrowOf(
    jobId: string,
    options?: ChainCallOptions & { readonly latest?: boolean },
  ): Promise<EscrowRecord | undefined> {
    this.#checkOpen("read an escrow");
    const id = checkPortId("job id", jobId);
    const confirmed = options?.latest === true
      ? "latest"
      : await this.#reader.safeHead(this.#signal(options?.signal));
    if (confirmed !== "latest" && confirmed < 0) return undefined;
    const value = await this.#view(
      `read the escrow of ${JSON.stringify(id)}`,
      this.#jobManager,
      "escrow_of",
      [text(id)],
      options?.signal,
      confirmed,
    ) as { client?: unknown; spec_hash?: unknown; status?: unknown };
    const status = typeof value.status === "bigint" ? shortText(value.status) : "";
    const malformed = (detail: string) =>
      new ChainError(
        "rpc_error",
        `Cannot read the escrow of ${JSON.stringify(id)}: the node answered ${detail}`,
      );
    if (!JOB_STATUSES.has(status)) throw malformed(`an unknown status ${JSON.stringify(status)}`);
    if (status === "none") return undefined;
    const client = value.client;
    if (typeof client !== "string" || client === "") throw malformed("a job without a client");
    return escrowRecordOf(id, {
      client,
      specHash: BigInt(value.spec_hash as bigint).toString(16).padStart(64, "0"),
      status: status as EscrowStatus,
    });
  }

  async totals(options?: ChainCallOptions): Promise<LedgerTotals> {
    this.#checkOpen("read the totals");
    const escrow = await this.#view(
      "read the escrow totals",
      this.#jobManager,
      "escrow_totals",
      [],
      options?.signal,
    ) as Record<string, bigint>;
    const stake = await this.#view(
      "read the stake totals",
      this.#cdcPool,
      "stake_totals",
      [],
      options?.signal,
    ) as Record<string, bigint>;
    const big = (record: Record<string, bigint>, key: string) => BigInt(record[key] ?? 0n);
    return {
      escrowed: big(escrow, "escrowed"),
      paid: big(escrow, "paid"),
      fees: big(escrow, "fees"),
      refunded: big(escrow, "refunded"),
      locked: big(escrow, "locked"),
      staked: big(stake, "staked"),
      slashed: big(stake, "slashed"),
      withdrawn: big(stake, "withdrawn"),
      bonded: big(stake, "bonded"),
    };
  }

  #view(
    action: string,
    contract: Contract,
    method: string,
    args: unknown[],
    signal: AbortSignal | undefined,
    block: number | "latest" = "latest",
  ): Promise<unknown> {
    return this.#rpc.call(
      action,
      () => contract.call(method, args as never, { blockIdentifier: block }),
      this.#signal(signal),
    );
  }

  // -------------------------------------------------------------------------------------------
  // Events

  /**
   * Confirmed events at or after `from` (at most `limit`, default 1000) and the cursor to
   * continue from: after the last event returned, or past the confirmed head when the read
   * reached it.
   */
  async eventsSince(
    from: ChainCursor,
    options?: ChainCallOptions & { limit?: number },
  ): Promise<{ events: ChainEvent[]; next: ChainCursor }> {
    this.#checkOpen("read events");
    checkCursor(from);
    const limit = checkCount("limit", options?.limit ?? 1000, 1);
    const signal = this.#signal(options?.signal);
    const safe = await this.#reader.safeHead(signal);
    const events: ChainEvent[] = [];
    let next = from;
    if (safe < from.blockNumber) return { events, next };
    let complete = true;
    await this.#reader.scan(from, safe, signal, (item) => {
      if (events.length >= limit) {
        complete = false;
        return false;
      }
      if (item.event !== undefined) events.push(item.event);
      next = { blockNumber: item.cursor.blockNumber, eventIndex: item.cursor.eventIndex + 1 };
      return true;
    });
    if (complete) next = { blockNumber: safe + 1, eventIndex: 0 };
    return { events, next };
  }

  /**
   * Polls every `pollMs` and calls `handler` with each confirmed event in order, exactly once
   * per event identity (see the module doc), from `from` or the cursor store. After a
   * reorg it calls `onReorg`, then delivers the new chain's events. A handler that throws is
   * logged and the next event delivered; a failed poll is logged and retried. Returns the
   * unsubscribe.
   */
  subscribe(
    handler: (event: ChainEvent) => void,
    options: StarknetSubscribeOptions = {},
  ): () => void {
    this.#checkOpen("subscribe");
    const pollMs = checkCount("pollMs", options.pollMs ?? this.#settings.pollMs, 0);
    if (options.from !== undefined) checkCursor(options.from);
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, this.#closing.signal]);
    const unsubscribe = () => {
      stop.abort(new DOMException("The subscription was stopped", "AbortError"));
      this.#subscriptions.delete(unsubscribe);
    };
    this.#subscriptions.add(unsubscribe);
    const subscription = new Subscription(
      this.#reader,
      this.#cursorStore,
      handler,
      options,
      signal,
    );
    const loop = subscription.run(pollMs);
    this.#loops.add(loop);
    void loop.finally(() => this.#loops.delete(loop));
    return unsubscribe;
  }

  /** Stops every subscription and pending wait. The adapter refuses calls afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const unsubscribe of [...this.#subscriptions]) unsubscribe();
    this.#closing.abort(new DOMException("The adapter is closed", "AbortError"));
    await this.#sender.drain();
    // Wait for the poll loops, so their last cursor save is done when close() resolves.
    await Promise.allSettled([...this.#loops]);
  }

  #signal(signal: AbortSignal | undefined): AbortSignal {
    return signal === undefined
      ? this.#closing.signal
      : AbortSignal.any([signal, this.#closing.signal]);
  }

  #checkOpen(action: string): void {
    if (this.#closed) throw new ChainError("rpc_error", `Cannot ${action}: the adapter is closed`);
  }
}
