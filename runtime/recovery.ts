/**
 * Crash recovery: a node opened on its data directory with {@link openDurableNode} journals to
 * `<dataDir>/journal.sqlite` and, when the directory already holds a journal, comes back where
 * it was before starting:
 *
 * 1. the journal is opened (a torn tail is repaired and reported);
 * 2. every actor is restored from the last checkpoint's snapshots, and the journal entries
 *    after the checkpoint (the tail) are replayed into them with inert ports: their effects
 *    already happened, or were lost with the process;
 * 3. the actors are restored into the node's tree, which re-arms each one's deadlines from its
 *    context (a deadline that passed while the node was down fires at once);
 * 4. the chain subscription resumes after the last chain event journaled;
 * 5. after start, work that was in flight is resumed: a bid for a job still in its bid window
 *    (offered again), an execution this node was running for a job assigned to it, and a
 *    verification it had started. What cannot be resumed is covered by the owner's deadlines:
 *    a silent worker's job is re-auctioned, a job whose window closed without bids expires.
 *
 * @module
 */
import type { ChainCursor } from "../chain/port.ts";
import type { JobContext } from "../machines/job_machine.ts";
import type { EffectRequest } from "../machines/types.ts";
import { describeNode, SqliteJournal, type SqliteJournalOptions } from "./journal.ts";
import { createNode, type Node, type NodeOptions } from "./node.ts";
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
}

/** A node opened on its data directory, and what recovery did. */
export interface DurableNode {
  readonly node: Node;
  readonly journal: SqliteJournal;
  /** Actors restored (from snapshots and the journal). */
  readonly restored: number;
  /** Journal entries replayed after the last checkpoint. */
  readonly replayed: number;
  /** Repairs made to the journal on open. */
  readonly repairs: readonly string[];
  /** Where the chain subscription resumed. */
  readonly chainCursor: ChainCursor;
  /**
   * Starts the node and resumes work in flight; returns the effects sent again. Call
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

/** Opens (or creates) a node on `options.dataDir`, restoring every actor it had. */
export async function openDurableNode(options: DurableNodeOptions): Promise<DurableNode> {
  await Deno.mkdir(options.dataDir, { recursive: true });
  const { dataDir, synchronous, checkpointEvery, onRepair, ...nodeOptions } = options;
  const descriptor = describeNode(nodeOptions);
  const journal = SqliteJournal.open(`${dataDir}/journal.sqlite`, {
    node: descriptor,
    ...(synchronous ? { synchronous } : {}),
    ...(checkpointEvery !== undefined ? { checkpointEvery } : {}),
    ...(onRepair ? { onRepair } : {}),
  });
  try {
    // Rebuild the actors on an inert tree: snapshots, then the tail.
    let now = 0;
    const scratch = inertTree(descriptor, () => now);
    const checkpoint = journal.loadCheckpoint();
    for (const stored of checkpoint.actors) {
      scratch.restore(stored.actor, stored.snapshot as never);
    }
    let replayed = 0;
    for (const entry of journal.entries({ from: checkpoint.seq + 1 })) {
      now = entry.at;
      scratch.deliver(entry);
      replayed++;
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
    scratch.stop();
    journal.recovered([...node.tree.jobs.cells(), ...node.tree.peers.cells()]);
    return {
      node,
      journal,
      restored,
      replayed,
      repairs: journal.repairs,
      chainCursor,
      start: async (startOptions = {}) => {
        await node.start(startOptions);
        return resumeWork(node);
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

/** Sends again the executions and verifications this node had in flight. */
function resumeWork(node: Node): EffectRequest[] {
  const resumed: EffectRequest[] = [];
  for (const cell of node.tree.jobs.cells()) {
    if (cell.done) continue;
    const c = cell.snapshot.context as JobContext;
    let effect: EffectRequest | undefined;
    if (
      cell.state === "bidding" && c.owner !== node.id && node.roles.includes("worker") &&
      !c.excluded.includes(node.id)
    ) {
      // Our bid may have died with the process: offer it again (a duplicate is refused).
      effect = {
        type: "worker.consider",
        jobId: c.jobId,
        spec: c.spec,
        attempt: c.attempt,
        excluded: c.excluded,
      };
    } else if (
      cell.state === "executing" && c.winner?.worker === node.id && c.outputs[node.id] === undefined
    ) {
      effect = { type: "exec.run", jobId: c.jobId, spec: c.spec };
    } else if (
      cell.state === "verifying" && c.verifying && c.result !== null &&
      c.attestations[node.id] === undefined && c.outputs[c.result.worker] !== undefined
    ) {
      effect = {
        type: "verify.run",
        jobId: c.jobId,
        spec: c.spec,
        worker: c.result.worker,
        commitment: c.result.commitment,
        output: c.outputs[c.result.worker]!.value,
      };
    }
    if (effect !== undefined) {
      node.resumeEffect(cell.id, effect);
      resumed.push(effect);
    }
  }
  return resumed;
}
