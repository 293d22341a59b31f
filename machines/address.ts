/**
 * The boundary vocabulary: how an event is addressed to an actor. Every input that crosses a
 * boundary (a wire message, a chain event, a deadline, an operator command, an effect's outcome)
 * becomes one or more {@link AddressedEvent}s; the inbox stamps them and the tree routes each to
 * the actor its address names. Addresses are built and read only here.
 *
 * ```ts
 * import { jobAddress, parseAddress } from "./address.ts";
 *
 * const target = jobAddress("j1");
 * console.log(target, parseAddress(target)); // "job:j1" { kind: "job", id: "j1" }
 * ```
 *
 * @module
 */

/** An event as it crosses a boundary: a type, and whatever fields it carries. */
export interface BoundaryEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

/** An event and the actor it is for: what every boundary hands the inbox. */
export interface AddressedEvent {
  /** The addressed actor: {@link jobAddress} or {@link peerAddress}. */
  readonly target: string;
  readonly event: BoundaryEvent;
}

/** The kinds of actor an address can name. */
export type ActorKind = "job" | "peer";

/** The actor address of job `jobId`: `job:<id>`. */
export function jobAddress(jobId: string): string {
  return `job:${jobId}`;
}

/** The actor address of peer `peerId`: `peer:<id>`. */
export function peerAddress(peerId: string): string {
  return `peer:${peerId}`;
}

/** What an address names, or undefined when it names no kind of actor. */
export function parseAddress(target: string): { kind: ActorKind; id: string } | undefined {
  const colon = target.indexOf(":");
  if (colon <= 0) return undefined;
  const kind = target.slice(0, colon);
  if (kind !== "job" && kind !== "peer") return undefined;
  return { kind, id: target.slice(colon + 1) };
}

/** The job id of a job address, or undefined when `target` is not one. */
export function jobIdOf(target: string): string | undefined {
  return target.startsWith("job:") ? target.slice(4) : undefined;
}

/** The peer id of a peer address, or undefined when `target` is not one. */
export function peerIdOf(target: string): string | undefined {
  return target.startsWith("peer:") ? target.slice(5) : undefined;
}

/** Builds an addressed event for job `jobId`. */
export function toJob(jobId: string, event: BoundaryEvent): AddressedEvent {
  return { target: jobAddress(jobId), event };
}
