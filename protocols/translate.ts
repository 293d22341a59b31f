/**
 * Wire message <-> actor event, one place per message. Incoming: {@link wireToActorEvents}
 * checks the application rules a schema cannot (a bid must come from the worker it names, an
 * attestation from the verifier it names, an announcement from its owner) and says which actor
 * hears what. Outgoing: {@link effectToWire} turns a machine's `net.*` request into a topic and a
 * message.
 *
 * @module
 */
import type { EffectRequest, NodeId } from "../machines/types.ts";
import { type MessageOf, type OutgoingOf, type Topic, TOPICS } from "./messages.ts";

/** An actor event addressed to an actor, before the inbox stamps it. */
export interface Addressed {
  readonly target: string;
  readonly event: { readonly type: string; readonly [key: string]: unknown };
}

/**
 * The event a chosen verifier's copy of an assignment becomes (with the spec): a hint the node's
 * ingress checks and turns into a kept record, never delivered to an actor as is.
 */
export const ASSIGNMENT_HEARD = "job.assignment.heard";

/** A message that is well formed but breaks an application rule. */
export class RuleViolation extends Error {
  override readonly name = "RuleViolation";
}

/** What the receiving node knows that a rule needs (read-only, at the boundary). */
export interface RuleContext {
  /** The verifiers chosen for a job, if this node knows the job and they are chosen. */
  verifiersOf(jobId: string): readonly NodeId[] | undefined;
}

/**
 * Translates a decoded message from `from` into actor events. Throws {@link RuleViolation}
 * when the message breaks an application rule (the caller rejects it through gossipsub's
 * validator, so the sender's score drops).
 */
export function wireToActorEvents<T extends Topic>(
  topic: T,
  message: MessageOf<T>,
  from: NodeId,
  rules: RuleContext,
): Addressed[] {
  const m = message as MessageOf<Topic>;
  switch (m.type) {
    case "job.announce":
      if (m.owner !== from) {
        throw new RuleViolation(
          `Announcement of job "${m.jobId}" names owner "${m.owner}" but came from "${from}"`,
        );
      }
      return [{
        target: `job:${m.jobId}`,
        event: {
          type: "job.announced",
          owner: m.owner,
          spec: m.spec,
          attempt: m.attempt,
          bidWindowEndsAt: m.bidWindowEndsAt,
          ...(m.sample !== undefined ? { sample: m.sample } : {}),
        },
      }];
    case "bid.submit": {
      if (m.worker !== from) {
        throw new RuleViolation(
          `Bid "${m.bidId}" names worker "${m.worker}" but came from "${from}"`,
        );
      }
      // The message's fields but its type, spelled out (an object rest copy is V8's slow path).
      const bid = {
        bidId: m.bidId,
        jobId: m.jobId,
        worker: m.worker,
        price: m.price,
        etaMs: m.etaMs,
        stake: m.stake,
        reputation: m.reputation,
        hardware: m.hardware,
      };
      return [{ target: `job:${m.jobId}`, event: { type: "bid.received", bid } }];
    }
    case "bid.withdraw":
      if (m.worker !== from) {
        throw new RuleViolation(
          `Withdrawal of bid "${m.bidId}" names worker "${m.worker}" but came from "${from}"`,
        );
      }
      return [{
        target: `job:${m.jobId}`,
        event: { type: "bid.withdrawn", bidId: m.bidId, worker: m.worker },
      }];
    case "job.assign":
      // The chain is the source of truth for assignments: the copy the winner gets is
      // informational. One that carries the job's spec hands it to a chosen verifier, which
      // keeps it (checked against the chain's escrow: `runtime/kernel/assignment_hints.ts`)
      // until the chain names it.
      if (m.spec === undefined) return [];
      return [{
        target: `job:${m.jobId}`,
        event: {
          type: ASSIGNMENT_HEARD,
          owner: from,
          worker: m.worker,
          verifiers: [...m.verifiers],
          attempt: m.attempt ?? 1,
          spec: m.spec,
        },
      }];
    case "job.result":
      if (m.worker !== from) {
        throw new RuleViolation(
          `Result for job "${m.jobId}" names worker "${m.worker}" but came from "${from}"`,
        );
      }
      return [{
        target: `job:${m.jobId}`,
        event: {
          type: "job.result.received",
          worker: m.worker,
          commitment: m.commitment,
          output: m.output,
        },
      }];
    case "job.attest": {
      if (m.verifier !== from) {
        throw new RuleViolation(
          `Attestation for job "${m.jobId}" names verifier "${m.verifier}" but came from "${from}"`,
        );
      }
      const chosen = rules.verifiersOf(m.jobId);
      if (chosen !== undefined && !chosen.includes(m.verifier)) {
        throw new RuleViolation(
          `Attestation for job "${m.jobId}" comes from "${m.verifier}", who is not a chosen verifier`,
        );
      }
      return [{
        target: `job:${m.jobId}`,
        event: {
          type: "job.attestation.received",
          verifier: m.verifier,
          verdict: m.verdict,
          commitment: m.commitment,
          worker: m.worker,
          claimed: m.claimed,
        },
      }];
    }
    case "node.capabilities":
    case "node.reputation":
    case "node.health":
      if (m.node !== from) {
        throw new RuleViolation(`"${m.type}" names node "${m.node}" but came from "${from}"`);
      }
      return [];
  }
  void topic;
  return [];
}

/** A message ready to publish. */
export type Outgoing = {
  [T in Topic]: { readonly topic: T; readonly message: OutgoingOf<T> };
}[Topic];

/** The message a `net.*` effect request publishes, or undefined for other requests. */
export function effectToWire(effect: EffectRequest): Outgoing | undefined {
  switch (effect.type) {
    case "net.announce":
      return {
        topic: TOPICS.jobs,
        message: {
          type: "job.announce",
          jobId: effect.jobId,
          owner: effect.owner,
          attempt: effect.attempt,
          bidWindowEndsAt: effect.bidWindowEndsAt,
          spec: effect.spec as OutgoingOf<typeof TOPICS.jobs>["spec"],
        },
      };
    case "net.assignment":
      return {
        topic: TOPICS.assignments,
        message: {
          type: "job.assign",
          jobId: effect.jobId,
          worker: effect.worker,
          bidId: effect.bidId || "none",
          price: effect.price,
          verifiers: [...effect.verifiers],
        },
      };
    case "net.result":
      return {
        topic: TOPICS.results,
        message: {
          type: "job.result",
          jobId: effect.jobId,
          worker: effect.worker,
          commitment: effect.commitment,
          output: effect.output,
        },
      };
    case "net.attestation":
      return {
        topic: TOPICS.attestations,
        message: {
          type: "job.attest",
          jobId: effect.jobId,
          verifier: effect.verifier,
          verdict: effect.verdict,
          commitment: effect.commitment,
          worker: effect.worker,
          claimed: effect.claimed,
        },
      };
    default:
      return undefined;
  }
}
