/**
 * The node kernel: one inbox that stamps every outside input and journals it before delivery,
 * the supervisor tree behind it, deadlines as journaled timer firings, and a node that wires
 * them to its ports (network, chain, executor, verifier, clock): its options (`options.ts`),
 * wiring and lifecycle (`node.ts`), effect dispatch (`effects.ts`), the worker's agent
 * (`worker_agent.ts`), network ingress (`ingress.ts`) and chain catch-up (`chain_sync.ts`).
 *
 * ```ts
 * import { Inbox, MemoryJournal, simulatedClock } from "./mod.ts";
 *
 * const clock = simulatedClock(1_000);
 * const journal = new MemoryJournal();
 * const seen: string[] = [];
 * const inbox = new Inbox({ clock, journal, deliver: (e) => void seen.push(e.event.type) });
 * inbox.submit("operator", "job:j1", { type: "job.cancel" });
 * console.log(seen, journal.entries.length); // ["job.cancel"] 1
 * ```
 *
 * @module
 */
export * from "./clock.ts";
export * from "./log.ts";
export * from "./inbox.ts";
export * from "./timers.ts";
export * from "./options.ts";
export * from "./node.ts";
export { compareCursors } from "./chain_sync.ts";
export { isResumable } from "./effects.ts";
export { WIRE_PENALTY } from "./ingress.ts";
