/**
 * Memory per live actor: heap used (`Deno.memoryUsage().heapUsed`, after a full GC when the
 * process runs with `--v8-flags=--expose-gc`) around creating many actors, in the supervisor
 * tree (an {@link ActorCell} with its persisted snapshot) and as plain XState actors of the same
 * machine.
 *
 * @module
 */
import { createActor } from "xstate";
import { ActorTree, RETIRE_KEY } from "../../actors/tree.ts";
import { type JobInput, jobMachine } from "../../machines/job_machine.ts";
import { DEFAULT_PEER_CONFIG, peerMachine } from "../../machines/peer_machine.ts";
import { DEFAULT_POLICY } from "../../machines/policies.ts";
import { lifecycleSpec, workerName } from "./bench_lifecycle.ts";

/** Whether a real full GC is available (`--v8-flags=--expose-gc`). */
export function canCollect(): boolean {
  return typeof (globalThis as { gc?: unknown }).gc === "function";
}

function heapAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return Deno.memoryUsage().heapUsed;
}

/** Options of {@link benchMemory}. */
export interface MemoryOptions {
  /** Actors created per measurement. @default 2000 */
  readonly actors?: number;
  /** Bids in each job actor. @default 8 */
  readonly bidsPerJob?: number;
}

/** Bytes of heap per live actor. */
export interface MemoryResult {
  readonly actors: number;
  readonly bidsPerJob: number;
  /** Whether a full GC ran around each measurement (otherwise figures are noisier). */
  readonly gc: boolean;
  /** A job actor in `bidding` with its bid children, in the tree. */
  readonly jobInTree: number;
  /** The same job as a plain XState actor. */
  readonly jobRaw: number;
  /** A peer actor in `connected`, in the tree. */
  readonly peerInTree: number;
  /** The same peer as a plain XState actor. */
  readonly peerRaw: number;
  /** A finished job (with its bids) once its actor was retired: its archive summary. */
  readonly retiredJob: number;
}

function measure(count: number, make: (i: number) => unknown): number {
  const keep: unknown[] = new Array(count);
  const before = heapAfterGc();
  for (let i = 0; i < count; i++) keep[i] = make(i);
  const after = heapAfterGc();
  if (keep.length !== count) throw new Error("unreachable");
  return Math.round((after - before) / count);
}

/** Measures heap per job actor (with bids) and per peer actor, in the tree and raw. */
export function benchMemory(options: MemoryOptions = {}): MemoryResult {
  const count = options.actors ?? 2_000;
  const bids = options.bidsPerJob ?? 8;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`Invalid actors ${count}: must be a positive integer`);
  }
  const spec = lifecycleSpec();
  const bidEvents = (jobId: string, i: number) =>
    Array.from({ length: bids }, (_, b) => {
      const worker = workerName((i * bids + b) % 1_000);
      return {
        type: "bid.received",
        at: 2,
        bid: {
          bidId: `${jobId}.1.${worker}`,
          jobId,
          worker,
          price: 500n + BigInt(b),
          etaMs: 100,
          stake: 100n,
          reputation: 500,
          hardware: "cpu" as const,
        },
      };
    });
  const noop = () => {};
  const treeOf = () =>
    new ActorTree({ self: "client", roles: ["client"], now: () => 0, onEffect: noop });

  let tree = treeOf();
  let seq = 0;
  const jobInTree = measure(count, (i) => {
    const id = `job:job-${i}`;
    tree.deliver({
      seq: ++seq,
      at: 0,
      source: "operator",
      target: id,
      event: { type: "job.submit", spec, verifierPool: [], policy: DEFAULT_POLICY },
    });
    tree.deliver({
      seq: ++seq,
      at: 1,
      source: "chain",
      target: id,
      event: { type: "chain.escrow.locked", client: "client", amount: 1_000n },
    });
    for (const e of bidEvents(`job-${i}`, i)) {
      tree.deliver({ seq: ++seq, at: 2, source: "network", target: id, event: e });
    }
    return undefined; // the tree holds it
  }) + 0;
  const jobCells = tree.jobs.size;
  tree.stop();
  tree = treeOf();
  // The same jobs, cancelled and retired: what a long-running node keeps of each finished job.
  const archiveTree = new ActorTree({
    self: "client",
    roles: ["client"],
    now: () => 0,
    archiveSize: count,
    onEffect: noop,
  });
  const retiredJob = measure(count, (i) => {
    const id = `job:job-${i}`;
    const send = (at: number, source: string, event: { type: string; [k: string]: unknown }) =>
      archiveTree.deliver({ seq: ++seq, at, source, target: id, event });
    send(0, "operator", { type: "job.submit", spec, verifierPool: [], policy: DEFAULT_POLICY });
    send(1, "chain", { type: "chain.escrow.locked", client: "client", amount: 1_000n });
    for (const e of bidEvents(`job-${i}`, i)) send(2, "network", e);
    send(3, "chain", { type: "chain.escrow.refunded", reason: "cancelled", amount: 1_000n });
    const retired = send(4, "timer", { type: "timer.fired", key: RETIRE_KEY, due: 4 });
    if (retired.status !== "accepted") throw new Error(`Could not retire ${id}`);
    return undefined; // the archive holds it
  });
  const archived = [...archiveTree.archive()].length;
  archiveTree.stop();
  const jobRaw = measure(count, (i) => {
    const input: JobInput = {
      jobId: `job-${i}`,
      spec,
      owner: "client",
      self: "client",
      roles: ["client"],
      at: 0,
      policy: DEFAULT_POLICY,
      verifierPool: [],
    };
    const actor = createActor(jobMachine, { input }).start();
    actor.send({ type: "chain.escrow.locked", at: 1, client: "client", amount: 1_000n } as never);
    for (const e of bidEvents(`job-${i}`, i)) actor.send(e as never);
    return actor;
  });
  const peerInTree = measure(count, (i) => {
    tree.deliver({
      seq: ++seq,
      at: 0,
      source: "network",
      target: `peer:${workerName(i)}`,
      event: { type: "peer.connected" },
    });
    return undefined;
  });
  const peerCells = tree.peers.size;
  tree.stop();
  const peerRaw = measure(count, (i) => {
    const actor = createActor(peerMachine, {
      input: { peerId: workerName(i), at: 0, config: DEFAULT_PEER_CONFIG },
    }).start();
    actor.send({ type: "peer.connected", at: 0 } as never);
    return actor;
  });
  if (jobCells !== count || peerCells !== count || archived !== count) {
    throw new Error(`Expected ${count} actors, the tree held ${jobCells} jobs, ${peerCells} peers`);
  }
  return {
    actors: count,
    bidsPerJob: bids,
    gc: canCollect(),
    jobInTree,
    jobRaw,
    peerInTree,
    peerRaw,
    retiredJob,
  };
}
