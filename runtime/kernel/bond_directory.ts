/**
 * Who holds something at stake on chain, as the network's ingress asks it (synchronously, for
 * every message): a peer is "bonded" when the chain shows it staked (worker or verifier) or, since
 * this node started, escrowed a job (a client): one whose `JobSubmitted` this node read, or, where
 * it reads escrows on demand (`ChainPort.escrowOf`), one whose escrow it read as it heard one of
 * the client's announcements (the ingress reads each before it triages it). Fresh identities hold nothing, so a flood of keys
 * draws on the small budget the host keeps for unbonded authors.
 *
 * The answer is cached per peer for `ttlMs`; a peer not known yet counts as bonded while its stake
 * is looked up (once), so an honest peer is never throttled by this node's ignorance after a
 * restart, and a fresh key costs one lookup.
 *
 * @module
 */
import type { ChainEvent, ChainPort } from "../../chain/port.ts";
import type { NodeId } from "../../machines/types.ts";
import type { Clock } from "./clock.ts";

/** Peers remembered at most (oldest out). */
const MEMORY = 10_000;

/** Options of a {@link BondDirectory}. */
export interface BondDirectoryOptions {
  readonly chain: ChainPort;
  readonly clock: Clock;
  /** How long an answer is trusted, ms. @default 60_000 */
  readonly ttlMs?: number;
}

/** Bonds and escrows, by peer. */
export class BondDirectory {
  readonly #o: BondDirectoryOptions;
  readonly #known = new Map<NodeId, { readonly bonded: boolean; readonly at: number }>();
  /** Accounts that escrowed, staked or registered as a verifier since this node started. */
  readonly #participants = new Set<NodeId>();
  readonly #lookups = new Set<NodeId>();
  /**
   * The stake each account the chain showed staking holds: its total at its last `WorkerStaked`,
   * less the slashes (`WorkerSlashed`) and withdrawals (`StakeWithdrawn`) since; and the accounts
   * registered as verifiers.
   */
  readonly #staked = new Map<NodeId, bigint>();
  readonly #verifiers = new Set<NodeId>();
  /** Workers' reputations as the chain last reported them (`ReputationUpdated`). */
  readonly #reputations = new Map<NodeId, number>();

  constructor(options: BondDirectoryOptions) {
    this.#o = options;
  }

  /** Whether `peer` holds something at stake (see the module doc). */
  isBonded(peer: NodeId): boolean {
    if (this.#participants.has(peer)) return true;
    const known = this.#known.get(peer);
    const fresh = known !== undefined && this.#o.clock.now() - known.at < (this.#o.ttlMs ?? 60_000);
    if (!fresh) this.#lookup(peer);
    return known?.bonded ?? true;
  }

  /** Worker `peer`'s reputation as the chain last reported it since this node started. */
  reputationOf(peer: NodeId): number | undefined {
    return this.#reputations.get(peer);
  }

  /**
   * Whether the chain showed `worker` staking at least `minStake` as a worker (not registered as
   * a verifier) since this node started reading it (at most 10,000 accounts remembered).
   */
  stakedWorker(worker: NodeId, minStake: bigint): boolean {
    const stake = this.#staked.get(worker);
    return stake !== undefined && stake >= minStake && !this.#verifiers.has(worker);
  }

  /** How many accounts {@link BondDirectory.stakedWorker} says yes for. */
  stakedWorkers(minStake: bigint): number {
    let count = 0;
    for (const id of this.#staked.keys()) if (this.stakedWorker(id, minStake)) count++;
    return count;
  }

  /** A chain event: its client, worker or verifier has something at stake. */
  saw(event: ChainEvent): void {
    switch (event.name) {
      case "ReputationUpdated":
        this.#reputations.delete(event.worker);
        this.#reputations.set(event.worker, event.score);
        if (this.#reputations.size > MEMORY) {
          this.#reputations.delete(this.#reputations.keys().next().value!);
        }
        return;
      case "WorkerStaked":
        this.#staked.delete(event.worker);
        this.#staked.set(event.worker, event.total);
        if (this.#staked.size > MEMORY) this.#staked.delete(this.#staked.keys().next().value!);
        return this.#participant(event.worker);
      case "WorkerSlashed":
      case "StakeWithdrawn": {
        // Stake that left since the last total: a slashed worker may hold less than a job's
        // minimum now, and an owner must not count it among the workers it samples for.
        const held = this.#staked.get(event.worker);
        if (held !== undefined) {
          this.#staked.set(event.worker, held > event.amount ? held - event.amount : 0n);
        }
        return;
      }
      case "VerifierRegistered":
        remember(this.#verifiers, event.verifier);
        return this.#participant(event.verifier);
      case "JobSubmitted":
        // On every node for every job: an account already known costs one lookup.
        return this.#participant(event.client);
    }
  }

  /** The chain shows `client` escrowed a job (read on demand, not from its `JobSubmitted`). */
  escrowed(client: NodeId): void {
    this.#participant(client);
  }

  #participant(who: NodeId): void {
    if (this.#participants.has(who)) return;
    this.#participants.add(who);
    if (this.#participants.size > MEMORY) {
      this.#participants.delete(this.#participants.values().next().value!);
    }
  }

  #lookup(peer: NodeId): void {
    if (this.#lookups.has(peer)) return;
    this.#lookups.add(peer);
    this.#o.chain.stakeOf(peer).then(
      (stake) => this.#remember(peer, stake > 0n),
      () => {}, // unknown: asked again next time
    ).finally(() => this.#lookups.delete(peer));
  }

  #remember(peer: NodeId, bonded: boolean): void {
    this.#known.delete(peer);
    this.#known.set(peer, { bonded, at: this.#o.clock.now() });
    if (this.#known.size > MEMORY) this.#known.delete(this.#known.keys().next().value!);
  }
}

/** Adds `id` to `set`, the oldest out past {@link MEMORY}. */
function remember(set: Set<NodeId>, id: NodeId): void {
  set.delete(id);
  set.add(id);
  if (set.size > MEMORY) set.delete(set.values().next().value!);
}
