/**
 * The invariants, each with a name, checked as the run goes: the chain's after every step that
 * made a block (and on each chain event), the nodes' views every `VIEW_CHECK_MS` of virtual
 * time, the journals at the end. The first violation stops the seed and names the invariant,
 * the step, the node and the job.
 *
 * @module
 */
import type { ChainEvent, LedgerTotals } from "../../chain/port.ts";
import type { NodeId } from "../../machines/types.ts";

/** The invariants' names. */
export const INVARIANTS = [
  "money-conserved",
  "stake-conserved",
  "settled-once",
  "honest-not-slashed",
  "honest-client-pays-accepted",
  "liveness",
  "chain-agreement",
  "journal-replays",
] as const;

/** An invariant's name. */
export type InvariantName = (typeof INVARIANTS)[number];

/** A broken invariant: which, where, and what was seen. */
export interface Violation {
  readonly invariant: InvariantName;
  readonly step: number;
  readonly at: number;
  readonly node: NodeId | null;
  readonly job: string | null;
  readonly detail: string;
}

/** Who is honest, and who returns wrong results (the payment check). */
export interface Cast {
  readonly honestWorkers: ReadonlySet<NodeId>;
  readonly honestVerifiers: ReadonlySet<NodeId>;
  readonly honestClients: ReadonlySet<NodeId>;
  readonly wrongWorkers: ReadonlySet<NodeId>;
}

/** What the chain says of one job. */
export interface ChainJob {
  readonly client: NodeId;
  readonly submittedAt: number;
  worker: NodeId | null;
  verified: boolean;
  disputed: boolean;
  paid: number;
  refunded: number;
  /** Virtual time of the payment or refund, if any. */
  finalAt: number | null;
}

/** Follows the chain's events and checks the chain's invariants. */
export class ChainChecker {
  readonly jobs = new Map<string, ChainJob>();
  readonly #cast: Cast;
  readonly #now: () => number;

  constructor(cast: Cast, now: () => number) {
    this.#cast = cast;
    this.#now = now;
  }

  /** Takes in one chain event; returns the violation it shows, if any. */
  event(event: ChainEvent): Omit<Violation, "step" | "at"> | null {
    const now = this.#now();
    if (event.name === "JobSubmitted") {
      this.jobs.set(event.jobId, {
        client: event.client,
        submittedAt: now,
        worker: null,
        verified: false,
        disputed: false,
        paid: 0,
        refunded: 0,
        finalAt: null,
      });
      return null;
    }
    if (!("jobId" in event)) return null;
    const job = this.jobs.get(event.jobId);
    if (job === undefined) return null;
    const at = { node: null, job: event.jobId };
    switch (event.name) {
      case "WorkerAssigned":
        job.worker = event.worker;
        return null;
      case "JobVerified":
        job.verified = true;
        return null;
      case "JobDisputed":
        job.disputed = true;
        return null;
      case "PaymentReleased":
      case "EscrowRefunded": {
        if (event.name === "PaymentReleased") job.paid++;
        else job.refunded++;
        job.finalAt ??= now;
        if (job.paid + job.refunded > 1) {
          return {
            invariant: "settled-once",
            ...at,
            detail: `paid ${job.paid} and refunded ${job.refunded} times`,
          };
        }
        if (
          event.name === "PaymentReleased" && this.#cast.honestClients.has(job.client) &&
          (this.#cast.wrongWorkers.has(event.worker) || !job.verified)
        ) {
          return {
            invariant: "honest-client-pays-accepted",
            ...at,
            node: job.client,
            detail: `client ${job.client} paid ${event.worker}, whose result was wrong`,
          };
        }
        return null;
      }
      case "WorkerSlashed":
        if (
          this.#cast.honestWorkers.has(event.worker) || this.#cast.honestVerifiers.has(event.worker)
        ) {
          return {
            invariant: "honest-not-slashed",
            ...at,
            node: event.worker,
            detail: `${event.worker} slashed ${event.amount} for ${event.reason}`,
          };
        }
        return null;
      default:
        return null;
    }
  }

  /** The ledger's identities; the violation, if one breaks. */
  totals(t: LedgerTotals): Omit<Violation, "step" | "at"> | null {
    if (t.escrowed !== t.paid + t.fees + t.refunded + t.locked) {
      return {
        invariant: "money-conserved",
        node: null,
        job: null,
        detail:
          `escrowed ${t.escrowed} != paid ${t.paid} + fees ${t.fees} + refunded ${t.refunded} + locked ${t.locked}`,
      };
    }
    if (t.staked !== t.bonded + t.slashed + t.withdrawn) {
      return {
        invariant: "stake-conserved",
        node: null,
        job: null,
        detail:
          `staked ${t.staked} != bonded ${t.bonded} + slashed ${t.slashed} + withdrawn ${t.withdrawn}`,
      };
    }
    return null;
  }
}
