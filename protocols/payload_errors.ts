/**
 * The payload protocol's id and errors, in a module that does not load libp2p, so code that
 * fetches over the in-process network (a node's model fetch, see `runtime/model_fetch.ts`) can
 * throw and recognise them. `payload_protocol.ts` re-exports everything here.
 *
 * @module
 */
import type { NodeId } from "../machines/types.ts";

/** The protocol id. */
export const PAYLOAD_PROTOCOL = "/ciro/payload/1.0.0";

/** The bytes received do not hash to what was asked for; nothing was stored. */
export class PayloadHashMismatchError extends Error {
  override readonly name = "PayloadHashMismatchError";
  readonly expected: string;
  readonly actual: string;
  constructor(expected: string, actual: string) {
    super(`Payload hash mismatch: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}

/** The peer does not have the payload. */
export class PayloadNotFoundError extends Error {
  override readonly name = "PayloadNotFoundError";
  readonly hash: string;
  constructor(hash: string, peer: NodeId) {
    super(`Payload not found on peer ${peer}: ${hash}`);
    this.hash = hash;
  }
}

/** The payload is larger than the receiver accepts. */
export class PayloadTooLargeError extends Error {
  override readonly name = "PayloadTooLargeError";
  constructor(hash: string, size: number, maxBytes: number) {
    super(`Payload too large: ${hash} has ${size} bytes, limit ${maxBytes}`);
  }
}

/** The transfer broke the protocol (truncated, too long, remote error). */
export class PayloadTransferError extends Error {
  override readonly name = "PayloadTransferError";
}

/** A payload request that is not a hex sha-256 (the server answers with an error status). */
export class PayloadRequestError extends Error {
  override readonly name = "PayloadRequestError";
  readonly code = "bad_hash";
}
