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
        attempt: event.attempt,
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
    case "FailureReported":
      return [job(event.jobId, {
        type: "chain.execution.failed",
        worker: event.worker,
        reason: event.reason,
        ref,
      })];
    case "AttestationRecorded":
      return [job(event.jobId, {
        type: "chain.attestation.recorded",
        verifier: event.verifier,
        attempt: event.attempt,
        verdict: event.verdict,
        ref,
      })];
    case "KeyRegistered":
    case "VerifierRegistered":
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

/**
 * Whether the actor event a chain event became (`event`) confirms the transaction `effect`
 * asked for: the escrow lock by `chain.escrow.locked`, the assignment and the revocation by
 * theirs for the same worker, the result, the verification record (legacy) by the verdict it recorded, the failure report,
 * a verifier's attestation by its record,
 * the release, the refund, and a slash of the same worker for the same reason. A node that sees
 * the confirmation of a transaction it has not heard back from (it crashed, the answer was lost)
 * does not send it again.
 */
export function confirmsTransaction(
  event: { readonly type: string; readonly [key: string]: unknown },
  effect: { readonly type: string; readonly [key: string]: unknown },
): boolean {
  switch (event.type) {
    case "chain.escrow.locked":
      return effect.type === "chain.escrow.lock";
    case "chain.worker.assigned":
      return effect.type === "chain.assign" && effect["worker"] === event["worker"];
    case "chain.assignment.revoked":
      return effect.type === "chain.assignment.revoke" && effect["worker"] === event["worker"];
    case "chain.result.submitted":
      return effect.type === "chain.result.submit";
    case "chain.job.verified":
      return effect.type === "chain.verification.record" && effect["accepted"] === true;
    case "chain.job.disputed":
      return effect.type === "chain.verification.record" && effect["accepted"] === false;
    case "chain.execution.failed":
      return effect.type === "chain.failure.report";
    case "chain.attestation.recorded":
      return effect.type === "chain.attest" && effect["verifier"] === event["verifier"];
    case "chain.payment.released":
      return effect.type === "chain.release";
    case "chain.escrow.refunded":
      return effect.type === "chain.refund";
    case "chain.worker.slashed":
      return effect.type === "chain.slash" && effect["worker"] === event["worker"] &&
        effect["reason"] === event["reason"];
    default:
      return false;
  }
}
