/**
 * Durability: the journal (SQLite, one row per stamped input with its delivery outcome),
 * checkpoints of actor snapshots, recordings (the portable JSONL form of journals), replay of
 * a recording into inert trees, and recovery of a node from its data directory.
 *
 * ```ts
 * import { parseRecording, replay } from "./mod.ts";
 *
 * const recording = parseRecording(await Deno.readTextFile(
 *   new URL("../../tests/fixtures/recordings/demo-3-jobs.job7-bid1-peer1.jsonl", import.meta.url),
 * ));
 * const report = await replay(recording);
 * if (!report.ok) throw new Error("The recording did not replay");
 * ```
 *
 * (A recording of a job machine version before the current one is refused with the version it
 * needs: the example replays one of the current version, 7.)
 *
 * @module
 */
export * from "./journal.ts";
export * from "./snapshot_store.ts";
export * from "./recording.ts";
export * from "./replay.ts";
export * from "./recovery.ts";
export * from "./data_dir.ts";
export {
  chainHash,
  decodeJson,
  type DeliveryStatus,
  describeOutcome,
  effectsDigest,
  type EmittedEffect,
  encodeJson,
  type EnvelopeOutcome,
  fnv1aHex,
  outcomeOf,
  type RecordedEnvelope,
  sameOutcome,
  stateHash,
} from "./_codec.ts";
