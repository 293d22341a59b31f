/**
 * Chain event -> actor event: the one place where what the chain says becomes what a job
 * actor hears. Both adapters (local ledger, Starknet) produce the same {@link ChainEvent}s, so
 * this module is shared.
 *
 * @module
 */
import type { ChainEvent } from "./port.ts";

/** An actor event addressed to an actor, before the inbox stamps it. */
export interface Addressed {
  readonly target: string;
  readonly event: { readonly type: string; readonly [key: string]: unknown };
}

/**
 * The actor events a chain event becomes. Stake, unstake, withdrawal and reputation events
 * address no actor (the node keeps them in its directory); they translate to nothing here.
 */
export function chainEventToActorEvents(event: ChainEvent): Addressed[] {
  const ref = `${event.blockNumber}:${event.txHash}:${event.eventIndex}`;
  switch (event.name) {
    case "JobSubmitted":
      return [job(event.jobId, {
        type: "chain.escrow.locked",
        client: event.client,
        amount: event.amount,
        ref,
      })];
    case "WorkerAssigned":
      return [job(event.jobId, {
        type: "chain.worker.assigned",
        worker: event.worker,
        price: event.price,
        verifiers: [...event.verifiers],
        ref,
      })];
    case "AssignmentRevoked":
      return [job(event.jobId, { type: "chain.assignment.revoked", worker: event.worker, ref })];
    case "ResultSubmitted":
      return [job(event.jobId, {
        type: "chain.result.submitted",
        worker: event.worker,
        commitment: event.commitment,
        ref,
      })];
    case "JobVerified":
      return [job(event.jobId, { type: "chain.job.verified", ref })];
    case "JobDisputed":
      return [job(event.jobId, { type: "chain.job.disputed", ref })];
    case "PaymentReleased":
      return [job(event.jobId, {
        type: "chain.payment.released",
        worker: event.worker,
        amount: event.amount,
        fee: event.fee,
        change: event.change,
        ref,
      })];
    case "EscrowRefunded":
      return [
        job(event.jobId, {
          type: "chain.escrow.refunded",
          amount: event.amount,
          reason: event.reason,
          ref,
        }),
      ];
    case "WorkerSlashed":
      return [job(event.jobId, {
        type: "chain.worker.slashed",
        worker: event.worker,
        amount: event.amount,
        reason: event.reason,
        ref,
      })];
    case "WorkerStaked":
    case "UnstakeRequested":
    case "StakeWithdrawn":
    case "ReputationUpdated":
      return [];
  }
}

function job(jobId: string, event: Addressed["event"]): Addressed {
  return { target: `job:${jobId}`, event };
}
