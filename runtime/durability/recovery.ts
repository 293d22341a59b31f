/**
 * Crash recovery: a node opened on its data directory with {@link openDurableNode} journals to
 * `<dataDir>/journal.sqlite` and, when the directory already holds a journal, comes back where
 * it was before starting:
 *
 * 1. the journal is opened (a torn tail is repaired and reported);
 * 2. every actor is restored from the last checkpoint's snapshots, and the journal entries
 *    after the checkpoint (the tail) are replayed into them with inert ports: their effects
 *    already happened, were recorded as still open, or were lost with the process;
 * 3. each replayed delivery that has a recorded outcome (status, actor, state, context hash and
 *    the effects it emitted) is checked against it. The first mismatch stops the open with a
 *    {@link RecoveryDivergenceError} naming the sequence number, the event, the actor, and the
 *    expected and actual outcomes (an effect that differs is named): a node whose code no longer
 *    reproduces its own journal must not go on silently. `acceptDivergence: true` is the
 *    operator's escape hatch: it logs the divergence as an error and goes on from the replayed
 *    state;
 * 4. the effects emitted by the replayed deliveries whose outcome the crash cut off are
 *    recorded as open (their ids are the same as the first time: `<seq>.<n>`);
 * 5. the actors are restored into the node's tree, which re-arms each one's deadlines from its
 *    context (a deadline that passed while the node was down fires at once);
 * 6. the chain subscription resumes after the last chain event journaled.
 *
 * Then {@link DurableNode.start} starts the node and, in this order:
 *
 * 7. catches up with the chain (`Node.catchUpChain`): every chain event the chain holds past the
 *    cursor is journaled and delivered first, so a transaction that landed before the crash is
 *    seen as its event;
 * 8. sends again every effect still open in the journal (`Node.resume`): recorded with the
 *    delivery that emitted it, and neither closed by its outcome event (an execution's result, a
 *    verdict, a bid decision, a refused transaction) nor ended (a publish or a transaction that
 *    went through). Nothing is re-derived from states: the journal says what was asked and not
 *    done. A resent transaction the chain refuses as done already (`duplicate_job`,
 *    `invalid_state`: it landed, and its event is on its way) is closed quietly; an effect whose
 *    actor finished or was retired is dropped.
 *
 * What cannot be resumed is covered by the owner's deadlines: a silent worker's job is
 * re-auctioned, a job whose window closed without bids expires.
 *
 * @module
 */
import { DECLINE_DEFAULTS } from "../../actors/declines.ts";
import type { RetiredJob } from "../../actors/tree.ts";
import type { ChainCursor } from "../../chain/port.ts";
import type { EffectRequest } from "../../machines/types.ts";
import {
  describeOutcome,
  type EmittedEffect,
  type EnvelopeOutcome,
  outcomeOf,
  sameOutcome,
} from "./_codec.ts";
import {
  describeNode,
  ENGINE_VERSION,
  MACHINE_VERSIONS,
  SqliteJournal,
  type SqliteJournalOptions,
} from "./journal.ts";
import {
  createNode,
  type EffectRecord,
  logger,
  type Node,
  type NodeOptions,
  type ResumedEffects,
} from "../kernel/mod.ts";
import { inertTree } from "./replay.ts";

/** Options of {@link openDurableNode}: a node's options plus where it keeps its state. */
export interface DurableNodeOptions
  extends Omit<NodeOptions, "journal" | "chainCursor" | "chainNewsFrom"> {
  /** The node's data directory (created if needed). */
  readonly dataDir: string;
  /** @default "normal" */
  readonly synchronous?: SqliteJournalOptions["synchronous"];
  /** @default 256 */
  readonly checkpointEvery?: number;
  /** Told each repair made to the journal on open. */
  readonly onRepair?: (message: string) => void;
  /**
   * Go on when replaying the journal tail does not reproduce a recorded outcome: the divergence
   * is logged as an error and kept in {@link DurableNode.divergence}, and the node continues
   * from the replayed state (which the next checkpoint makes its new truth). Without it, the
   * open fails with a {@link RecoveryDivergenceError}. An operator's choice, for one restart.
   * @default false
   */
  readonly acceptDivergence?: boolean;
}

/** Where replaying a journal's tail first disagreed with the outcome it recorded. */
export interface RecoveryDivergence {
  readonly seq: number;
  readonly source: string;
  readonly event: string;
  /** The addressed actor. */
  readonly target: string;
  readonly expected: EnvelopeOutcome;
  readonly actual: EnvelopeOutcome;
  /** Replayed deliveries that disagreed, this one included (counted on with `acceptDivergence`). */
  readonly count: number;
}

/**
 * The journal's tail no longer replays to the outcomes it recorded: this engine does not
 * reproduce the node's own history. Match on `error.name === "RecoveryDivergenceError"`.
 */
export class RecoveryDivergenceError extends Error {
  override readonly name = "RecoveryDivergenceError";
  /** The journal file. */
  readonly path: string;
  readonly divergence: RecoveryDivergence;
  constructor(path: string, message: string, divergence: RecoveryDivergence) {
    super(message);
    this.path = path;
    this.divergence = divergence;
  }
}

/** A node opened on its data directory, and what recovery did. */
export interface DurableNode {
  readonly node: Node;
  readonly journal: SqliteJournal;
  /** Actors restored (from snapshots and the journal). */
  readonly restored: number;
  /** Journal entries replayed after the last checkpoint. */
  readonly replayed: number;
  /** Replayed entries whose recorded outcome was checked (the others had none: cut by a crash). */
  readonly checked: number;
  /** The first divergence accepted with `acceptDivergence`, or null when the tail replayed true. */
  readonly divergence: RecoveryDivergence | null;
  /** Repairs made to the journal on open. */
  readonly repairs: readonly string[];
  /** Where the chain subscription resumed. */
  readonly chainCursor: ChainCursor;
  /** Where the chain's news is read again from, before the cursor (`NodeOptions.chainNewsFrom`). */
  readonly chainNewsFrom: ChainCursor;
  /** The effects open in the journal when it was opened: what {@link DurableNode.start} resumes. */
  readonly openEffects: readonly EffectRecord[];
  /**
   * Starts the node, catches up with the chain, then sends again the effects still open in the
   * journal; returns the effects sent again (see {@link DurableNode.resumed} for the rest).
   * Call {@link DurableNode.stop} to stop it and close the journal.
   */
  start(options?: { signal?: AbortSignal }): Promise<EffectRequest[]>;
  /** What the last {@link DurableNode.start} resumed, dropped, and how its transactions went. */
  readonly resumed: ResumedEffects | undefined;
  /** Stops the node and closes the journal (writing a final checkpoint). */
  stop(): Promise<void>;
}

function cursorAfter(ref: unknown): ChainCursor | undefined {
  if (typeof ref !== "string") return undefined;
  const [block, , index] = ref.split(":");
  const blockNumber = Number(block);
  const eventIndex = Number(index);
  if (!Number.isSafeInteger(blockNumber) || !Number.isSafeInteger(eventIndex)) return undefined;
  return { blockNumber, eventIndex: eventIndex + 1 };
}

function versions(engine: string | undefined, machines: Readonly<Record<string, number>>) {
  const list = Object.entries(machines).map(([k, v]) => `${k} v${v}`).join(", ");
  return `${engine ?? "an unknown engine"} (machines ${list || "unknown"})`;
}

function divergenceMessage(journal: SqliteJournal, d: RecoveryDivergence): string {
  const meta = journal.meta;
  let machines: Record<string, number> = {};
  try {
    machines = JSON.parse(meta["machines"] ?? "{}");
  } catch {
    // Shown as unknown.
  }
  return [
    `Cannot recover from journal "${journal.path}": replaying it diverged at seq ${d.seq}: ${d.event} (${d.source}) to ${d.target}`,
    `  expected: ${describeOutcome(d.expected)}`,
    `  actual:   ${describeOutcome(d.actual)}`,
    `  The journal was created by ${versions(meta["engine"], machines)}; this is ${
      versions(ENGINE_VERSION, MACHINE_VERSIONS)
    }. This code does not reproduce the node's own history: run the engine that wrote it, or open with acceptDivergence (config journal.acceptDivergence, flag --accept-divergence) to go on from the replayed state`,
  ].join("\n");
}

/** Opens (or creates) a node on `options.dataDir`, restoring every actor it had. */
export async function openDurableNode(options: DurableNodeOptions): Promise<DurableNode> {
  await Deno.mkdir(options.dataDir, { recursive: true });
  const { dataDir, synchronous, checkpointEvery, onRepair, acceptDivergence, ...nodeOptions } =
    options;
  const descriptor = describeNode(nodeOptions);
  const journal = SqliteJournal.open(`${dataDir}/journal.sqlite`, {
    node: descriptor,
    ...(synchronous ? { synchronous } : {}),
    ...(checkpointEvery !== undefined ? { checkpointEvery } : {}),
    ...(onRepair ? { onRepair } : {}),
  });
  try {
    // Rebuild the actors on an inert tree: snapshots, then the tail, checking each outcome.
    let now = 0;
    // Jobs retired in the tail: their snapshots give way to their summaries at the checkpoint.
    const retiredInTail: RetiredJob[] = [];
    let emitted: EmittedEffect[] = [];
    const scratch = inertTree(
      descriptor,
      () => now,
      (job) => retiredInTail.push(job),
      (actor, effect) => void emitted.push({ actor, effect }),
    );
    // Effects of the replayed deliveries whose outcome the crash cut off: never written.
    const cutOff: EffectRecord[] = [];
    const checkpoint = journal.loadCheckpoint();
    for (const retired of checkpoint.retired) scratch.restoreRetired(retired as RetiredJob);
    for (const stored of checkpoint.actors) {
      scratch.restore(stored.actor, stored.snapshot as never);
    }
    // The declines before the checkpoint (it keeps actors only), within their time to live, with
    // the results heard for them: a verifier the chain names later creates its actor from them.
    // And the records of jobs the chain named this node to verify before the spec came (made by
    // the chain's assignment, not by a decline), with the chain's news of them: the spec that
    // comes after the restart creates the actor.
    for (const entry of journal.declinesUpTo(checkpoint.seq, DECLINE_DEFAULTS.ttlMs)) {
      const jobId = entry.target.slice("job:".length);
      if (scratch.get(entry.target) !== undefined) continue;
      const record = scratch.declined(jobId);
      if (entry.event.type === "chain.worker.assigned") {
        // A record with the spec had its actor created by this assignment (in the checkpoint, or
        // retired since): only a record awaiting the spec is made again.
        if (record?.spec !== undefined) continue;
      } else if (entry.event.type !== "job.declined" && record === undefined) continue;
      now = entry.at;
      scratch.deliver(entry);
    }
    let replayed = 0;
    let checked = 0;
    let divergence: RecoveryDivergence | null = null;
    let diverged = 0;
    for (const entry of journal.entries({ from: checkpoint.seq + 1 })) {
      now = entry.at;
      emitted = [];
      const delivery = scratch.deliver(entry);
      replayed++;
      if (entry.outcome === null) {
        emitted.forEach((e, n) =>
          cutOff.push({ id: `${entry.seq}.${n}`, actor: e.actor, effect: e.effect })
        );
        continue;
      }
      checked++;
      const actual = outcomeOf(
        delivery,
        scratch.get(entry.target),
        entry.outcome.effects === undefined ? undefined : emitted,
      );
      if (sameOutcome(actual, entry.outcome)) continue;
      if (diverged++ > 0) continue;
      divergence = {
        seq: entry.seq,
        source: entry.source,
        event: entry.event.type,
        target: entry.target,
        expected: entry.outcome,
        actual,
        count: 1,
      };
      const message = divergenceMessage(journal, divergence);
      if (!acceptDivergence) {
        scratch.stop();
        throw new RecoveryDivergenceError(journal.path, message, divergence);
      }
      logger("recovery", descriptor.id).error(
        "{message}\nGoing on from the replayed state, as asked (acceptDivergence)",
        { message },
      );
    }
    if (divergence !== null && diverged > 1) {
      divergence = { ...divergence, count: diverged };
      logger("recovery", descriptor.id).error(
        "{count} replayed deliveries of journal {path} diverged in all; the first at seq {seq}",
        { count: diverged, path: journal.path, seq: divergence.seq },
      );
    }
    const chainCursor = cursorAfter(journal.lastOf("chain")?.event["ref"]) ??
      { blockNumber: 0, eventIndex: 0 };
    // The chain's news (escrows, endings, stakes) is remembered, not journaled: what came before
    // the cursor is read again from where the node stood a record's time to live before its last
    // entry (a verifier named after the restart checks the owner's spec against an escrow from
    // before it), or from the first block if the journal is younger than that.
    const lookback = journal.lastOf("chain", { before: DECLINE_DEFAULTS.ttlMs });
    const chainNewsFrom = (lookback && cursorAfter(lookback.event["ref"])) ??
      { blockNumber: 0, eventIndex: 0 };
    const node = createNode({ ...nodeOptions, journal, chainCursor, chainNewsFrom });
    let restored = 0;
    for (const supervisor of [scratch.jobs, scratch.peers]) {
      for (const cell of supervisor.cells()) {
        node.tree.restore(cell.id, cell.persisted);
        restored++;
      }
    }
    for (const retired of scratch.archive()) node.tree.restoreRetired(retired);
    // Declines journaled in the tail (those before the checkpoint are not kept in it).
    for (const declined of scratch.declines()) node.tree.restoreDecline(declined);
    for (const retired of retiredInTail) {
      // Retired in the tail and alive again since (a worker outbid, drawn for the next auction).
      if (scratch.get(`job:${retired.jobId}`) !== undefined) continue;
      journal.retired(`job:${retired.jobId}`, retired);
    }
    scratch.stop();
    journal.recovered([...node.tree.jobs.cells(), ...node.tree.peers.cells()], cutOff);
    const openEffects = journal.openEffects();
    node.expectOpen(openEffects);
    let resumed: ResumedEffects | undefined;
    return {
      node,
      journal,
      restored,
      replayed,
      checked,
      divergence,
      repairs: journal.repairs,
      chainCursor,
      chainNewsFrom,
      openEffects,
      get resumed() {
        return resumed;
      },
      start: async (startOptions = {}) => {
        await node.start(startOptions);
        // The order is the guarantee: chain events first, then what this node sends again.
        await node.catchUpChain(startOptions);
        resumed = node.resume(openEffects);
        return resumed.sent.map((r) => r.effect as EffectRequest);
      },
      stop: async () => {
        await node.stop();
        journal.close();
      },
    };
  } catch (error) {
    journal.close();
    throw error;
  }
}
