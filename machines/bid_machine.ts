/**
 * The bid machine: a bid's lifecycle. Up to job machine version 3 every bid was one actor of
 * it, a child of its job's actor, on every node that heard the bid. It earned nothing there: its
 * states mirrored the job's `BidRecord.status` (`machines/job_machine.ts`) exactly, and the job machine was the
 * only one to send it events, while a child actor per bid was the costliest part of a job (a job
 * with 8 bids settled at about a third of the rate of one with 1). Since job machine version 4 a
 * bid is a record in its job's context (status and reason); this machine stays as the bid
 * lifecycle's definition (the diagrams draw it) and for recordings of the older versions.
 *
 * States: `submitted` (received, valid, waiting for the bid window to close), and the final
 * states `accepted` (it won and the chain confirmed the assignment), `rejected` (with a
 * {@link BidRejectReason}), `expired` (the job ended without deciding it) and `withdrawn` (the
 * worker took it back, or its peer was lost).
 *
 * Events: `bid.accept`, `bid.reject` `{ reason }`, `bid.expire`, `bid.withdraw`; each carries the
 * virtual time `at` it was decided.
 *
 * @module
 */
import { assign, setup } from "xstate";
import type { BidOffer, BidRejectReason } from "./types.ts";

/** Context of a bid actor. */
export interface BidContext {
  readonly offer: BidOffer;
  readonly receivedAt: number;
  readonly decidedAt: number | null;
  readonly reason: BidRejectReason | null;
}

/** What a bid actor is created with. */
export interface BidInput {
  readonly offer: BidOffer;
  readonly receivedAt: number;
}

/** Events a bid actor accepts. */
export type BidEvent =
  | { readonly type: "bid.accept"; readonly at: number }
  | { readonly type: "bid.reject"; readonly at: number; readonly reason: BidRejectReason }
  | { readonly type: "bid.expire"; readonly at: number }
  | { readonly type: "bid.withdraw"; readonly at: number };

/** Version of the bid machine's logic; bump when a recording could replay differently. */
export const BID_MACHINE_VERSION = 1;

/** The bid machine. */
export const bidMachine = setup({
  types: {} as { context: BidContext; events: BidEvent; input: BidInput },
  actions: {
    recordDecision: assign({ decidedAt: ({ event }) => event.at }),
    recordReason: assign({
      reason: ({ event }) => (event.type === "bid.reject" ? event.reason : null),
    }),
  },
}).createMachine({
  id: "bid",
  context: ({ input }) => ({
    offer: input.offer,
    receivedAt: input.receivedAt,
    decidedAt: null,
    reason: null,
  }),
  initial: "submitted",
  states: {
    submitted: {
      description: "Received and valid; waits for the bid window to close.",
      on: {
        "bid.accept": { target: "accepted", actions: "recordDecision" },
        "bid.reject": { target: "rejected", actions: ["recordDecision", "recordReason"] },
        "bid.expire": { target: "expired", actions: "recordDecision" },
        "bid.withdraw": { target: "withdrawn", actions: "recordDecision" },
      },
    },
    accepted: {
      type: "final",
      description: "Final: it won and the chain confirmed the assignment.",
    },
    rejected: { type: "final", description: "Final: not taken, with a reason code." },
    expired: { type: "final", description: "Final: the job ended without deciding it." },
    withdrawn: {
      type: "final",
      description: "Final: the worker took it back, or its peer was lost.",
    },
  },
});
