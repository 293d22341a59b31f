/**
 * Private to the Starknet adapter: sending a transaction so that it executes at most once. See the
 * adapter's module doc ("Transactions") for the rule; {@link TxSender} is where it lives: one
 * transaction at a time, the nonce kept only between a receipt and the next send, a send whose
 * outcome is unknown followed by its hash and sent again identical, never re-signed.
 *
 * @module
 */
import { type Account, type Call, hash, type RpcProvider } from "starknet";
import { getLogger } from "@logtape/logtape";
import { ChainError, type TxReceipt } from "../port.ts";
import {
  abortable,
  backoff,
  canonicalFelt,
  classify,
  delay,
  firstLine,
  panicCode,
  type Rpc,
  RPC_TX_NOT_FOUND,
  rpcCode,
  sameFelt,
  type Settings,
  withRetries,
} from "./_rpc.ts";

const logger = getLogger(["ciro", "chain", "starknet"]);

/** Status reads that find no trace of a sent transaction before it is sent again, identical. */
const UNKNOWN_POLLS_BEFORE_RESEND = 3;

/** A signed INVOKE v3 transaction as the spec writes it (`INVOKE_TXN_V3`). */
interface SignedInvoke {
  readonly sender_address: string;
  readonly calldata: string[];
  readonly version: string;
  readonly signature: string[];
  readonly nonce: string;
  readonly resource_bounds: Record<
    "l1_gas" | "l2_gas" | "l1_data_gas",
    { max_amount: string; max_price_per_unit: string }
  >;
  readonly tip: string;
  readonly paymaster_data: string[];
  readonly account_deployment_data: string[];
  readonly nonce_data_availability_mode: string;
  readonly fee_data_availability_mode: string;
}

/** Sends an account's transactions, one at a time, each executing at most once. */
export class TxSender {
  readonly #settings: Settings;
  readonly #provider: RpcProvider;
  readonly #signer: Account;
  readonly #rpc: Rpc;
  #queue: Promise<unknown> = Promise.resolve();
  #nonce: bigint | undefined;

  constructor(settings: Settings, provider: RpcProvider, signer: Account, rpc: Rpc) {
    this.#settings = settings;
    this.#provider = provider;
    this.#signer = signer;
    this.#rpc = rpc;
  }

  /** Settles when the transaction in flight, if any, has. */
  async drain(): Promise<void> {
    await this.#queue.catch(() => {});
  }

  /** Sends one transaction at a time per adapter, so nonces stay in order. */
  send(action: string, calls: Call[], signal: AbortSignal): Promise<TxReceipt> {
    const run = this.#queue.then(() => this.#sendNow(action, calls, signal));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #sendNow(action: string, calls: Call[], signal: AbortSignal): Promise<TxReceipt> {
    const { maxAttempts, tip } = this.#settings;
    for (let attempt = 1;; attempt++) {
      signal.throwIfAborted();
      const nonce = this.#nonce ?? await this.#readNonce(signal);
      let estimate: Awaited<ReturnType<Account["estimateInvokeFee"]>>;
      let signed: SignedInvoke;
      try {
        estimate = await withRetries(
          `estimate the fee to ${action}`,
          () => this.#signer.estimateInvokeFee(calls, { nonce, tip }),
          maxAttempts,
          this.#settings.backoffMs,
          signal,
        );
        signed = await this.#signer.getSignedTransaction(calls, {
          nonce,
          tip,
          resourceBounds: estimate.resourceBounds,
        }) as SignedInvoke;
      } catch (error) {
        const failure = (error as { name?: unknown })?.name === "ChainError"
          ? undefined
          : classify(error);
        if (failure?.kind === "nonce" && attempt < maxAttempts) {
          this.#nonce = undefined;
          continue;
        }
        if (failure?.kind === "execution") {
          throw new ChainError(
            failure.code ?? "reverted",
            `Cannot ${action}: the contract refused it${
              failure.code === undefined ? "" : ` with ${JSON.stringify(failure.code)}`
            }`,
            { cause: error },
          );
        }
        throw this.#rpc.asChainError(action, error);
      }
      const txHash = this.#txHash(signed);
      // From the first send on, the cached nonce is unknown until this transaction's receipt:
      // a failure (eviction, lost answer, timeout) leaves it unset, so the next call reads it.
      this.#nonce = undefined;
      let outcome: TxReceipt | "stale_nonce";
      try {
        outcome = await this.#deliver(action, signed, txHash, signal);
      } catch (error) {
        throw this.#rpc.asChainError(action, error);
      }
      if (outcome !== "stale_nonce") {
        this.#nonce = nonce + 1n;
        return outcome;
      }
      // The node refused the nonce and no copy of this transaction ever reached it: safe to sign
      // again with the account's current nonce.
      this.#nonce = undefined;
      logger.warn("Nonce {nonce} refused for {action}; reading it again", {
        nonce: nonce.toString(),
        action,
      });
      if (attempt >= maxAttempts) {
        throw new ChainError(
          "rpc_error",
          `Cannot ${action}: gave up after ${maxAttempts} attempts: nonce ${nonce} refused`,
        );
      }
    }
  }

  /** The transaction hash of `signed`, computed here (SNIP-8), before it is sent. */
  #txHash(signed: SignedInvoke): string {
    const bounds = (name: "l1_gas" | "l2_gas" | "l1_data_gas") => ({
      max_amount: BigInt(signed.resource_bounds[name].max_amount),
      max_price_per_unit: BigInt(signed.resource_bounds[name].max_price_per_unit),
    });
    const da = (mode: string) => (mode === "L2" ? 1 : 0);
    return canonicalFelt(hash.calculateInvokeTransactionHash({
      senderAddress: signed.sender_address,
      version: signed.version,
      compiledCalldata: signed.calldata,
      chainId: this.#settings.chainId as never,
      nonce: signed.nonce,
      accountDeploymentData: signed.account_deployment_data,
      nonceDataAvailabilityMode: da(signed.nonce_data_availability_mode) as never,
      feeDataAvailabilityMode: da(signed.fee_data_availability_mode) as never,
      resourceBounds: {
        l1_gas: bounds("l1_gas"),
        l2_gas: bounds("l2_gas"),
        l1_data_gas: bounds("l1_data_gas"),
      },
      tip: signed.tip,
      paymasterData: signed.paymaster_data,
    } as never));
  }

  /**
   * Sends `signed` and follows its hash until it has a receipt. Never signs anything: a send
   * whose outcome is unknown (the response was lost) is followed by looking the hash up, and, if
   * the node does not know it, by sending the identical transaction again (same hash, same
   * nonce: it can execute at most once). Error 59 (duplicate) means the node has it; error 52
   * (nonce) after a send that may have arrived means it possibly executed: look it up. Only a
   * 52 on a transaction no copy of which can have reached the node returns `"stale_nonce"`.
   */
  async #deliver(
    action: string,
    signed: SignedInvoke,
    txHash: string,
    signal: AbortSignal,
  ): Promise<TxReceipt | "stale_nonce"> {
    const { maxAttempts, pollMs, txTimeoutMs, backoffMs } = this.#settings;
    const deadline = Date.now() + txTimeoutMs;
    let mayHaveArrived = false;
    let seen = false;
    let nonceTaken = false;
    let send = true;
    let sends = 0;
    let unknown = 0;
    for (;;) {
      signal.throwIfAborted();
      if (send) {
        send = false;
        if (sends >= maxAttempts) {
          throw new ChainError(
            "rpc_error",
            `Cannot ${action}: transaction ${txHash} was sent ${sends} times and the node does not know it`,
          );
        }
        if (sends > 0) await delay(backoff(backoffMs, sends + 1), signal);
        sends++;
        try {
          const { transaction_hash: answered } = await abortable(
            this.#provider.invokeSignedTx(signed as never),
            signal,
          );
          if (!sameFelt(answered, txHash)) {
            throw new ChainError(
              "rpc_error",
              `Cannot ${action}: the node answered transaction hash ${answered}, computed ${txHash}`,
            );
          }
          mayHaveArrived = true;
          logger.debug("Sent {action} as {txHash} (nonce {nonce})", {
            action,
            txHash,
            nonce: signed.nonce,
          });
        } catch (error) {
          if ((error as { name?: unknown })?.name === "ChainError") throw error;
          signal.throwIfAborted();
          const failure = classify(error);
          switch (failure.kind) {
            case "nonce":
              if (!mayHaveArrived) return "stale_nonce";
              nonceTaken = true;
              logger.warn(
                "Nonce refused after a send of {txHash} that may have arrived: {detail}",
                {
                  txHash,
                  detail: failure.detail,
                },
              );
              break;
            case "duplicate":
              mayHaveArrived = true;
              seen = true;
              break;
            case "transient":
              mayHaveArrived = true;
              logger.warn("The send of {txHash} may have failed; looking it up: {detail}", {
                txHash,
                detail: failure.detail,
              });
              break;
            case "execution":
              throw new ChainError(
                failure.code ?? "reverted",
                `Cannot ${action}: ${failure.detail}`,
                {
                  cause: error,
                },
              );
            case "fatal":
              if (!mayHaveArrived) {
                throw new ChainError("rpc_error", `Cannot ${action}: ${failure.detail}`, {
                  cause: error,
                });
              }
              nonceTaken = true;
          }
        }
      }
      const status = await this.#status(txHash, signal);
      if (status === undefined) {
        unknown++;
        if (nonceTaken && unknown > maxAttempts) {
          throw new ChainError(
            "rpc_error",
            `Cannot ${action}: the outcome of transaction ${txHash} is unknown: its nonce ${signed.nonce} is used and the node does not know the transaction; not signing again`,
          );
        }
        // Unknown after it was seen: evicted from the mempool. Unknown for a while after a send:
        // lost. Either way the identical transaction may be sent again.
        if (!nonceTaken && (seen || unknown >= UNKNOWN_POLLS_BEFORE_RESEND)) {
          send = true;
          seen = false;
          unknown = 0;
          continue;
        }
      } else if (status === "RECEIVED" || status === "CANDIDATE") {
        seen = true;
        unknown = 0;
      } else {
        return await this.#receipt(action, txHash, signal);
      }
      if (Date.now() > deadline) {
        throw new ChainError(
          "rpc_error",
          `Cannot ${action}: no receipt for transaction ${txHash} after ${txTimeoutMs} ms`,
        );
      }
      await delay(Math.max(pollMs, 1), signal);
    }
  }

  /** The finality status of `txHash`, or `undefined` when the node does not know it. */
  async #status(txHash: string, signal: AbortSignal): Promise<string | undefined> {
    try {
      const status = await withRetries(
        `read the status of ${txHash}`,
        () => this.#provider.getTransactionStatus(txHash),
        this.#settings.maxAttempts,
        this.#settings.backoffMs,
        signal,
      );
      return (status as { finality_status?: string }).finality_status;
    } catch (error) {
      if (rpcCode(error) === RPC_TX_NOT_FOUND) return undefined;
      throw error;
    }
  }

  async #readNonce(signal: AbortSignal): Promise<bigint> {
    const nonce = await this.#rpc.call(
      "read the account nonce",
      () => this.#provider.getNonceForAddress(this.#settings.accountAddress, "pre_confirmed"),
      signal,
    );
    return BigInt(nonce);
  }

  async #receipt(action: string, txHash: string, signal: AbortSignal): Promise<TxReceipt> {
    const receipt = await this.#rpc.call(
      `read the receipt of ${txHash}`,
      () => this.#provider.getTransactionReceipt(txHash),
      signal,
    );
    const value = receipt as unknown as {
      execution_status?: string;
      revert_reason?: string;
      block_number?: number;
    };
    if (value.execution_status === "REVERTED") {
      const code = panicCode(value.revert_reason ?? "");
      throw new ChainError(
        code ?? "reverted",
        `Cannot ${action}: transaction ${txHash} reverted${
          code === undefined
            ? `: ${firstLine(value.revert_reason ?? "no reason")}`
            : ` with ${JSON.stringify(code)}`
        }`,
      );
    }
    if (typeof value.block_number !== "number") {
      throw new ChainError(
        "rpc_error",
        `Cannot ${action}: the receipt of ${txHash} has no block number`,
      );
    }
    return { txHash, blockNumber: value.block_number };
  }
}
