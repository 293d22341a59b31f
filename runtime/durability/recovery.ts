/**
 * Crash recovery: a node opened on its data directory with {@link openDurableNode} journals to
 * `<dataDir>/journal.sqlite` and, when the directory already holds a journal, comes back where
 * it was before starting:
 *
 * 1. the journal is opened (a torn tail is repaired and reported);
 * 2. every actor is restored from the last checkpoint's snapshots, and the journal entries
 *    after the checkpoint (the tail) are replayed into them with inert ports: their effects
 *    already happened, or were lost with the process;
 * 3. each replayed delivery that has a recorded outcome (status, actor, state, context hash) is
 *    checked against it. The first mismatch stops the open with a
 *    {@link RecoveryDivergenceError} naming the sequence number, the event, the actor, and the
 *    expected and actual outcomes: a node whose code no longer reproduces its own journal must
 *    not go on silently. `acceptDivergence: true` is the operator's escape hatch: it logs the
 *    divergence as an error and goes on from the replayed state;
 * 4. the actors are restored into the node's tree, which re-arms each one's deadlines from its
 *    context (a deadline that passed while the node was down fires at once);
 * 5. the chain subscription resumes after the last chain event journaled.
 *
 * Then {@link DurableNode.start} starts the node and, in this order:
 *
 * 6. catches up with the chain ({@link Node.catchUpChain}): every chain event the chain holds
 *    past the cursor is journaled and delivered first, so a transaction that landed before the
 *    crash is seen as its event, and the job is no longer waiting on it;
 * 7. resumes work that was in flight: a bid for a job still in its bid window (offered again),
 *    an execution this node was running for a job assigned to it, a verification it had
 *    started, and the result of an execution that finished but whose result transaction was
 *    lost;
 * 8. sends again the chain transactions its own jobs still wait on (see
 *    {@link owedTransactions}): the escrow lock (`announced`), the assignment (`assigned`), the
 *    revocation (`reassigning`), the verification record and the release (`settling`), the
 *    record, slash and refund of a dispute (`disputed`), the refund (`refunding`), and the
 *    downtime slash of a revoked worker. None of these states has a deadline, so without this
 *    a transaction lost with the process would stall its job forever. A resent transaction the
 *    chain refuses as done already (`duplicate_job`, `invalid_state`: it landed, and its event
 *    is still on its way) is logged, not reported to the job, which its event brings on.
 *
 * What cannot be resumed is covered by the owner's deadlines: a silent worker's job is
 * re-auctioned, a job whose window closed without bids expires.
 *
 * @module
 */
import type { RetiredJob } from "../../actors/tree.ts";
import type { ChainCursor } from "../../chain/port.ts";
import type { JobContext } from "../../machines/job_machine.ts";
import type { EffectRequest } from "../../machines/types.ts";
import { describeOutcome, type EnvelopeOutcome, outcomeOf, sameOutcome } from "./_codec.ts";
import {
  describeNode,
  ENGINE_VERSION,
  MACHINE_VERSIONS,
  SqliteJournal,
  type SqliteJournalOptions,
} from "./journal.ts";
import { logger } from "../kernel/mod.ts";
import { createNode, type Node, type NodeOptions, type ResendOutcome } from "../kernel/mod.ts";
import { inertTree } from "./replay.ts";

/** Options of {@link openDurableNode}: a node's options plus where it keeps its state. */
export interface DurableNodeOptions extends Omit<NodeOptions, "journal" | "chainCursor"> {
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
  /**
   * Starts the node, catches up with the chain, then resumes work in flight and sends again the
   * transactions its jobs wait on; returns the effects sent again. Call
   * {@link DurableNode.stop} to stop it and close the journal.
   */
  start(options?: { signal?: AbortSignal }): Promise<EffectRequest[]>;
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
    const scratch = inertTree(descriptor, () => now, (job) => retiredInTail.push(job));
    const checkpoint = journal.loadCheckpoint();
    for (const retired of checkpoint.retired) scratch.restoreRetired(retired as RetiredJob);
    for (const stored of checkpoint.actors) {
      scratch.restore(stored.actor, stored.snapshot as never);
    }
    let replayed = 0;
    let checked = 0;
    let divergence: RecoveryDivergence | null = null;
    let diverged = 0;
    for (const entry of journal.entries({ from: checkpoint.seq + 1 })) {
      now = entry.at;
      const delivery = scratch.deliver(entry);
      replayed++;
      if (entry.outcome === null) continue;
      checked++;
      const actual = outcomeOf(delivery, scratch.get(entry.target));
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
    const node = createNode({ ...nodeOptions, journal, chainCursor });
    let restored = 0;
    for (const supervisor of [scratch.jobs, scratch.peers]) {
      for (const cell of supervisor.cells()) {
        node.tree.restore(cell.id, cell.persisted);
        restored++;
      }
    }
    for (const retired of scratch.archive()) node.tree.restoreRetired(retired);
    for (const retired of retiredInTail) journal.retired(`job:${retired.jobId}`, retired);
    scratch.stop();
    journal.recovered([...node.tree.jobs.cells(), ...node.tree.peers.cells()]);
    return {
      node,
      journal,
      restored,
      replayed,
      checked,
      divergence,
      repairs: journal.repairs,
      chainCursor,
      start: async (startOptions = {}) => {
        await node.start(startOptions);
        // The order is the guarantee: chain events first, then what this node sends again.
        await node.catchUpChain(startOptions);
        return [...resumeWork(node), ...resendTransactions(node)];
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

/** Sends again the executions, verifications, bids and results this node had in flight. */
function resumeWork(node: Node): EffectRequest[] {
  const resumed: EffectRequest[] = [];
  for (const cell of node.tree.jobs.cells()) {
    if (cell.done) continue;
    const c = cell.snapshot.context as JobContext;
    const effects: EffectRequest[] = [];
    if (
      cell.state === "bidding" && c.owner !== node.id && node.roles.includes("worker") &&
      !c.excluded.includes(node.id)
    ) {
      // Our bid may have died with the process: offer it again (a duplicate is refused).
      effects.push({
        type: "worker.consider",
        jobId: c.jobId,
        spec: c.spec,
        attempt: c.attempt,
        excluded: c.excluded,
      });
    } else if (cell.state === "executing" && c.winner?.worker === node.id) {
      const output = c.outputs[node.id];
      if (output === undefined) effects.push({ type: "exec.run", jobId: c.jobId, spec: c.spec });
      else if (c.result === null) {
        // Executed, but the result never reached the chain (or the verifiers): publish it.
        effects.push({
          type: "net.result",
          jobId: c.jobId,
          worker: node.id,
          commitment: output.commitment,
          output: output.value,
        });
      }
    } else if (
      cell.state === "verifying" && c.verifying && c.result !== null &&
      c.attestations[node.id] === undefined && c.outputs[c.result.worker] !== undefined
    ) {
      effects.push({
        type: "verify.run",
        jobId: c.jobId,
        spec: c.spec,
        worker: c.result.worker,
        commitment: c.result.commitment,
        output: c.outputs[c.result.worker]!.value,
      });
    } else if (cell.state === "bidding" && c.owner === node.id) {
      // The announcement may have died with the process (workers take a repeat quietly).
      const closesAt = c.deadlines.bid_window;
      if (closesAt !== undefined) {
        effects.push({
          type: "net.announce",
          jobId: c.jobId,
          spec: c.spec,
          owner: c.owner,
          attempt: c.attempt,
          bidWindowEndsAt: closesAt,
        });
      }
    }
    for (const effect of effects) {
      if (node.resumeEffect(cell.id, effect)) resumed.push(effect);
    }
  }
  return resumed;
}

/**
 * The chain transactions a job, in `state` on the node `self`, is waiting on and that this node
 * sends: `first` in order, then `ifDone` in order only if the last of `first` is refused as done
 * already (`settling` cannot tell from its context whether the verification record's event
 * came: if it did, the release is what is owed). Empty when it waits on no transaction of its
 * own (its deadlines cover the rest).
 */
export function owedTransactions(
  state: string,
  c: JobContext,
  self: string,
): { first: EffectRequest[]; ifDone: EffectRequest[] } {
  const first: EffectRequest[] = [];
  const ifDone: EffectRequest[] = [];
  const jobId = c.jobId;
  if (c.owner !== self) {
    // A worker whose result transaction was lost: its execution finished, the chain has no result.
    const output = c.outputs[self];
    if (
      state === "executing" && c.winner?.worker === self && output !== undefined &&
      c.result === null
    ) {
      first.push({
        type: "chain.result.submit",
        jobId,
        worker: self,
        commitment: output.commitment,
      });
    }
    return { first, ifDone };
  }
  // A revoked worker's downtime slash goes out with the revocation's event; it may be lost.
  for (const worker of c.excluded) {
    if (!c.slashes.some((s) => s.worker === worker && s.reason === "downtime")) {
      first.push({ type: "chain.slash", jobId, worker, reason: "downtime" });
    }
  }
  const slashInvalid = (): EffectRequest[] =>
    c.result !== null &&
      !c.slashes.some((s) => s.worker === c.result!.worker && s.reason === "invalid_compute")
      ? [{ type: "chain.slash", jobId, worker: c.result.worker, reason: "invalid_compute" }]
      : [];
  switch (state) {
    case "announced":
      if (c.escrowed === 0n) {
        first.push({ type: "chain.escrow.lock", jobId, amount: c.spec.maxPrice, spec: c.spec });
      }
      break;
    case "assigned":
      if (c.winner !== null) {
        first.push({
          type: "chain.assign",
          jobId,
          worker: c.winner.worker,
          price: c.winner.price,
          verifiers: c.verifiers,
        });
      }
      break;
    case "reassigning":
      if (c.winner !== null) {
        first.push({ type: "chain.assignment.revoke", jobId, worker: c.winner.worker });
      }
      break;
    case "settling":
      first.push({ type: "chain.verification.record", jobId, accepted: true });
      ifDone.push({ type: "chain.release", jobId });
      break;
    case "disputed":
      // The refund reason is set when the dispute's chain event came (the machine's refund).
      if (c.refundReason === null) {
        first.push({ type: "chain.verification.record", jobId, accepted: false });
        ifDone.push(...slashInvalid(), { type: "chain.refund", jobId, reason: "disputed" });
      } else {
        first.push(...slashInvalid(), { type: "chain.refund", jobId, reason: "disputed" });
      }
      break;
    case "refunding":
      if (c.escrowed > 0n) {
        first.push({ type: "chain.refund", jobId, reason: c.refundReason ?? "failed" });
      }
      break;
  }
  return { first, ifDone };
}

/** Sends again the chain transactions this node's jobs wait on (after the chain caught up). */
function resendTransactions(node: Node): EffectRequest[] {
  const sent: EffectRequest[] = [];
  for (const cell of node.tree.jobs.cells()) {
    if (cell.done) continue;
    const { first, ifDone } = owedTransactions(
      cell.state,
      cell.snapshot.context as JobContext,
      node.id,
    );
    let last: Promise<ResendOutcome> | undefined;
    for (const effect of first) {
      last = node.resendTransaction(cell.id, effect);
      sent.push(effect);
    }
    if (last !== undefined && ifDone.length > 0) {
      void last.then((outcome) => {
        if (outcome !== "already_done") return;
        for (const effect of ifDone) void node.resendTransaction(cell.id, effect);
      });
    }
  }
  return sent;
}
