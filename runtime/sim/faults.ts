/**
 * Fault profiles, as data: what the simulated network, chain and nodes suffer, and when it
 * heals. `--faults NAME` picks one.
 *
 * @module
 */

/** What the simulated world does wrong, and until when. */
export interface FaultProfile {
  readonly name: FaultProfileName;
  /** One-way latency of a link, drawn uniformly per message, virtual ms. */
  readonly latencyMs: readonly [number, number];
  /** Chance a message (gossip copy, request or answer) is lost. */
  readonly loss: number;
  /** Chance a gossip copy is delivered twice. */
  readonly duplicate: number;
  /** Partitions: every `everyMs` the nodes split in two random halves for `lengthMs`. */
  readonly partitions: { readonly everyMs: number; readonly lengthMs: number } | null;
  /** Crashes: every `everyMs` one random node crashes and restarts from its journal after `downMs`. */
  readonly crashes: { readonly everyMs: number; readonly downMs: number } | null;
  readonly chain: ChainFaults;
}

/** How the simulated chain confirms and reorganizes. */
export interface ChainFaults {
  /** A block every so often: transactions are included at the next block, virtual ms. */
  readonly blockMs: number;
  /** How long after its block an event is handed to the nodes (confirmation delay). */
  readonly confirmMs: number;
  /** Chance, per block and node, of a reorg as the node sees it. */
  readonly reorgChance: number;
  /** The reorg's depth: the events handed over again, at most. */
  readonly reorgDepth: number;
  /** How long confirmations are held back after a reorg, virtual ms. */
  readonly reorgHoldMs: number;
}

/** The named profiles. */
export const FAULT_PROFILE_NAMES = [
  "none",
  "lossy",
  "partitions",
  "crashes",
  "chain-reorgs",
  "all",
] as const;

/** A profile's name. */
export type FaultProfileName = (typeof FAULT_PROFILE_NAMES)[number];

const CALM_CHAIN: ChainFaults = {
  blockMs: 20,
  confirmMs: 10,
  reorgChance: 0,
  reorgDepth: 0,
  reorgHoldMs: 0,
};

const REORG_CHAIN: ChainFaults = {
  blockMs: 20,
  confirmMs: 40,
  reorgChance: 0.02,
  reorgDepth: 4,
  reorgHoldMs: 200,
};

/** The profile of a name; throws a `RangeError` naming the choices. */
export function faultProfile(name: string): FaultProfile {
  const base = {
    latencyMs: [1, 8] as const,
    loss: 0,
    duplicate: 0,
    partitions: null,
    crashes: null,
    chain: CALM_CHAIN,
  };
  switch (name) {
    case "none":
      return { name, ...base };
    case "lossy":
      return { name, ...base, latencyMs: [1, 40], loss: 0.01, duplicate: 0.02 };
    case "partitions":
      return { name, ...base, partitions: { everyMs: 3_000, lengthMs: 400 } };
    case "crashes":
      return { name, ...base, crashes: { everyMs: 2_000, downMs: 300 } };
    case "chain-reorgs":
      return { name, ...base, chain: REORG_CHAIN };
    case "all":
      return {
        name,
        latencyMs: [1, 40],
        loss: 0.01,
        duplicate: 0.02,
        partitions: { everyMs: 3_000, lengthMs: 400 },
        crashes: { everyMs: 2_000, downMs: 300 },
        chain: REORG_CHAIN,
      };
    default:
      throw new RangeError(
        `Unknown fault profile "${name}": expected one of ${FAULT_PROFILE_NAMES.join(", ")}`,
      );
  }
}
