/**
 * Private to the Starknet adapter: {@link StarknetChainOptions} and their checks.
 *
 * @module
 */
import type { NodeId } from "../../machines/types.ts";
import type { CursorStore } from "../event_cursor.ts";
import type { AccountKey } from "../settlement.ts";
import { checkAddress, checkAmount, checkCount, checkId } from "./_args.ts";
import { canonicalFelt, type Settings } from "./_rpc.ts";

/** Options of `StarknetChain.connect`. */
export interface StarknetChainOptions {
  /** The JSON-RPC endpoint (spec 0.9 or 0.10). */
  readonly rpcUrl: string;
  /** The account contract that signs (an OpenZeppelin or Argent account, Cairo 1). */
  readonly accountAddress: string;
  /**
   * The account's Stark private key, `0x` hex.
   * @default {undefined} read from `privateKeyFile`, else from `CIRO_STARKNET_PRIVATE_KEY`
   */
  readonly privateKey?: string;
  /** A file holding the private key (`0x` hex, surrounding whitespace ignored). */
  readonly privateKeyFile?: string;
  readonly jobManagerAddress: string;
  readonly cdcPoolAddress: string;
  /**
   * The ERC-20 the contracts pull escrow and stake in. When set, `submitJob` and `stake` send
   * `approve(spender, amount)` in the same multicall.
   * @default {undefined} no approval (the token is approved out of band)
   */
  readonly tokenAddress?: string;
  /**
   * The node id this account stands for in events and calls.
   * @default {the account address, 0x + 64 lowercase hex digits}
   */
  readonly nodeId?: NodeId;
  /**
   * Register `nodeId` in the CDC Pool on connect if the account has none.
   * @default {true}
   */
  readonly register?: boolean;
  /** Blocks below the latest before an event is delivered. @default {2} */
  readonly confirmations?: number;
  /** `chunk_size` of each `starknet_getEvents` page. @default {100} */
  readonly chunkSize?: number;
  /** Poll interval of subscriptions and of transaction receipts, ms. @default {2000} */
  readonly pollMs?: number;
  /** How long to wait for a transaction's receipt, ms. @default {300000} */
  readonly txTimeoutMs?: number;
  /** Attempts per RPC call or transaction before giving up. @default {5} */
  readonly maxAttempts?: number;
  /** First retry delay, doubled each attempt (capped at 30 s), ms. @default {250} */
  readonly backoffMs?: number;
  /** Transaction tip, in fri. @default {0n} */
  readonly tip?: bigint;
  /** How many blocks below the confirmed head a subscription re-checks for reorgs. @default {16} */
  readonly reorgWindow?: number;
  /**
   * Where subscriptions keep their cursor and resume from. Give each concurrent subscription its
   * own store.
   * @default {undefined} each subscription keeps its cursor in memory and starts at `from`
   */
  readonly cursorStore?: CursorStore;
  /**
   * The Ed25519 key this account signs attestations with (registered with `registerKey`).
   * @default {a key derived from the account's private key (sha-256 of a domain tag and it)}
   */
  readonly attestationKey?: AccountKey;
  /** Aborts `connect` itself. */
  readonly signal?: AbortSignal;
}

/**
 * The options checked, defaults filled: the node's origin (for messages), the account address
 * (0x + 64 hex digits), the node id, and the
 * settings that do not depend on the node (its spec version and chain id are read at connect).
 * Throws a `TypeError` or `RangeError` naming the option.
 */
export function checkOptions(options: StarknetChainOptions): {
  origin: string;
  accountAddress: string;
  nodeId: NodeId;
  base: Omit<Settings, "addressList" | "chainId" | "specVersion">;
} {
  let origin: string;
  try {
    origin = new URL(options.rpcUrl).origin;
  } catch {
    throw new TypeError("Invalid rpcUrl: expected an absolute URL");
  }
  const accountAddress = checkAddress("accountAddress", options.accountAddress);
  const jobManagerAddress = checkAddress("jobManagerAddress", options.jobManagerAddress);
  const cdcPoolAddress = checkAddress("cdcPoolAddress", options.cdcPoolAddress);
  const tokenAddress = options.tokenAddress === undefined
    ? undefined
    : checkAddress("tokenAddress", options.tokenAddress);
  const nodeId = checkId("nodeId", options.nodeId ?? accountAddress);
  const tip = checkAmount("tip", options.tip ?? 0n);
  // Addresses travel as canonical felts (the spec's FELT pattern refuses leading zeros).
  const base = {
    rpcOrigin: origin,
    accountAddress: canonicalFelt(accountAddress),
    jobManagerAddress: canonicalFelt(jobManagerAddress),
    cdcPoolAddress: canonicalFelt(cdcPoolAddress),
    tokenAddress: tokenAddress === undefined ? undefined : canonicalFelt(tokenAddress),
    confirmations: checkCount("confirmations", options.confirmations ?? 2, 0),
    chunkSize: checkCount("chunkSize", options.chunkSize ?? 100, 1),
    pollMs: checkCount("pollMs", options.pollMs ?? 2000, 0),
    txTimeoutMs: checkCount("txTimeoutMs", options.txTimeoutMs ?? 300_000, 1),
    maxAttempts: checkCount("maxAttempts", options.maxAttempts ?? 5, 1),
    backoffMs: checkCount("backoffMs", options.backoffMs ?? 250, 0),
    tip,
    reorgWindow: checkCount("reorgWindow", options.reorgWindow ?? 16, 1),
  };
  return { origin, accountAddress, nodeId, base };
}
