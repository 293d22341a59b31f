/**
 * One seed of the market simulation: clients, workers and verifiers running the real node code
 * (`createNode`: inbox, journal sink, supervisor tree, machines, effect dispatch, the worker's
 * agent) over the simulated network and chain, every node's clock the seeded scheduler, with
 * a fault profile and named adversaries. The invariants are checked as it runs.
 *
 * @module
 */
import { HEARD_LATE_STATE, jobContextOf, OUTBID_STATE } from "../../actors/tree.ts";
import {
  announcementTopic,
  announcementTopicsOf,
  encodeMessage,
  isDirectTopic,
  shardOf,
  type Topic,
  TOPICS,
} from "../../protocols/messages.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../../machines/policies.ts";
import type { JobSpec, NodeId, Role } from "../../machines/types.ts";
import type { ChainEvent } from "../../chain/port.ts";
import type { NetworkPort } from "../../protocols/network_port.ts";
import {
  BuiltinExecutor,
  commitmentOf,
  type ExecuteOptions,
  type ExecutionResult,
  type ExecutorPort,
} from "../compute/mod.ts";
import {
  describeNode,
  type DurableNode,
  openDurableNode,
  parseRecording,
  RecordingWriter,
  replay,
} from "../durability/mod.ts";
import { createNode, type Node, type NodeOptions, type WorkerProfile } from "../kernel/mod.ts";
import { type Intercept, SimChain } from "./chain.ts";
import { type FaultProfile, faultProfile } from "./faults.ts";
import { type Cast, ChainChecker, type Violation } from "./invariants.ts";
import { SimNetwork } from "./network.ts";
import { Scheduler } from "./scheduler.ts";
import { Trace } from "./trace.ts";
import type { Rng } from "./rng.ts";

/** The adversaries, by name. */
export const ADVERSARY_NAMES = [
  "sybil-verifiers",
  "unescrowed-announcements",
  "unescrowed-long-windows",
  "underbid-then-silent",
  "wrong-results",
  "lying-client",
  "colluding-verifiers-f",
  "colluding-verifiers-f1",
  "flood",
  "replay-old-messages",
  "oversized-messages",
  "restart-every-phase",
  "forging-assigner",
  "front-runner",
] as const;

/** An adversary's name. */
export type AdversaryName = (typeof ADVERSARY_NAMES)[number];

/** Checks a list of adversary names; throws a `RangeError` naming the unknown one. */
export function parseAdversaries(list: string): AdversaryName[] {
  if (list.trim() === "" || list === "none") return [];
  const names = list.split(",").map((s) => s.trim());
  for (const name of names) {
    if (!(ADVERSARY_NAMES as readonly string[]).includes(name)) {
      throw new RangeError(
        `Unknown adversary "${name}": expected a comma-separated list of ${
          ADVERSARY_NAMES.join(", ")
        }`,
      );
    }
  }
  return names as AdversaryName[];
}

/** Options of {@link simulate}. */
export interface SimulationOptions {
  readonly seed: number;
  /** @default 8 */
  readonly workers?: number;
  /** @default 4 */
  readonly verifiers?: number;
  /** @default 1 */
  readonly clients?: number;
  /** Jobs the honest clients submit. @default 20 */
  readonly jobs?: number;
  /** Most virtual time the run may take, ms. @default derived from the jobs' deadlines */
  readonly durationMs?: number;
  /** @default "none" */
  readonly faults?: FaultProfile["name"];
  /** @default [] */
  readonly adversaries?: readonly AdversaryName[];
  /**
   * Who decides verification on every node: the chain (the node's default) or `legacy` (the
   * client's node records the verdict; kept for research and to show what it let through).
   * @default "chain"
   */
  readonly settlement?: "chain" | "legacy";
  /**
   * Writes every node's journal to this recording and replays it at the end; with crashes, the
   * nodes' data directories (SQLite journals) are kept beside it, in `<recording>-data/<node>`.
   * @default none
   */
  readonly recordPath?: string;
  /** Real work between steps (the determinism test): it must not change the run. */
  readonly between?: (step: number) => Promise<void> | void;
  /** Most scheduler steps. @default 5,000,000 */
  readonly maxSteps?: number;
}

/** What one seed did. */
export interface SimulationResult {
  readonly seed: number;
  readonly traceHash: string;
  readonly virtualMs: number;
  readonly wallMs: number;
  readonly steps: number;
  /** Honest clients' jobs by final state on their client (`open` for the unfinished). */
  readonly jobs: Record<string, number>;
  readonly messages: {
    published: number;
    delivered: number;
    dropped: number;
    rejected: number;
    bans: number;
  };
  readonly chain: { transactions: number; failed: number; reorgs: number; events: number };
  /** Crashes and restarts of nodes. */
  readonly restarts: number;
  readonly violations: Violation[];
  readonly recordPath?: string;
}

/** Deadlines of the simulated jobs, virtual ms. */
export const SIM_TIMING = { bidWindowMs: 200, executionMs: 1_000, verificationMs: 2_000 } as const;
const MAX_ATTEMPTS = 3;
/** Slack on top of a job's deadlines before it must be final (liveness), virtual ms. */
const LIVENESS_SLACK_MS = 5_000;
/** How long a node's view may lag the chain (chain agreement), virtual ms. */
const AGREEMENT_MS = 5_000;
/** How often the nodes' views are checked, virtual ms. */
const VIEW_CHECK_MS = 500;
/**
 * How long a node waits for the chain to show a gossiped job's escrow (the node's
 * `escrowWaitMs`), virtual ms: the simulated chain shows an escrow to every node within a block,
 * its confirmation delay and a reorg's hold (under 300 ms), so 2 s leaves room, well inside the
 * chain-agreement bound.
 */
const ESCROW_WAIT_MS = 2_000;
const CAPABILITY_EVERY_MS = 2_000;
const START_JOBS_AT = 300;
const WORKER_STAKE = 1_000n;
/** The worker that restarts in every phase, and how often it may. */
const PHOENIX = "phoenix-01";
const MAX_PHOENIX_RESTARTS = 40;

/** An executor that takes virtual time (20 to 150 ms) to run the built-in job kinds. */
export class SimExecutor implements ExecutorPort {
  readonly #inner = new BuiltinExecutor();
  readonly #sched: Scheduler;
  readonly #rng: Rng;
  readonly #workMs: readonly [number, number];
  /** `workMs`: how long an execution takes, virtual ms, drawn in this range. @default [20, 150] */
  constructor(sched: Scheduler, rng: Rng, workMs: readonly [number, number] = [20, 150]) {
    this.#sched = sched;
    this.#rng = rng;
    this.#workMs = workMs;
  }
  supports(kind: JobSpec["kind"]): boolean {
    return this.#inner.supports(kind);
  }
  async execute(
    spec: JobSpec,
    input: unknown,
    options: ExecuteOptions = {},
  ): Promise<ExecutionResult> {
    const ms = this.#rng.int(this.#workMs[0], this.#workMs[1]);
    await new Promise<void>((resolve, reject) => {
      const task = this.#sched.after(ms, resolve, "execute");
      options.signal?.addEventListener("abort", () => {
        this.#sched.clearTimeout(task);
        reject(options.signal!.reason);
      }, { once: true });
    });
    return this.#inner.execute(spec, input, options);
  }
}

/** A simulated job: a small matmul with the simulation's deadlines, drawn from `rng`. */
export function matmulSpec(rng: Rng, verifierCount: number): JobSpec {
  const n = rng.int(2, 3);
  const matrix = () =>
    Array.from({ length: n }, () => Array.from({ length: n }, () => rng.int(-9, 9)));
  const input = { a: matrix(), b: matrix() };
  return {
    kind: { type: "builtin", name: "matmul" },
    inputCommitment: commitmentOf(input),
    input,
    requirements: { hardware: "cpu", minStake: 100n },
    maxPrice: BigInt(1_000 + rng.int(0, 999)),
    ...SIM_TIMING,
    maxAttempts: MAX_ATTEMPTS,
    verifierCount,
  };
}

const pad = (i: number, w = 2) => String(i + 1).padStart(w, "0");

interface Participant {
  readonly id: NodeId;
  /** The node of the current life (undefined until a durable node is opened). */
  node: Node;
  /** Its options, without network and chain (each life gets its own). */
  readonly options: Omit<NodeOptions, "network" | "chain">;
  readonly intercept: Intercept | undefined;
  /** Its chain account, when it is not its node id. */
  readonly account: string | undefined;
  /** The node's data directory, when it keeps a journal and can crash. */
  readonly dataDir: string | undefined;
  durable: DurableNode | undefined;
  alive: boolean;
  restarts: number;
}

/**
 * A node's unfinished jobs, as the views check reads them: straight from its live actors,
 * without summarizing every finished one (the check runs every `VIEW_CHECK_MS`, and summaries
 * of every job on every node were its cost).
 */
function* openJobs(
  node: Node,
): Generator<{ jobId: string; state: string; done: boolean; path: readonly { at: number }[] }> {
  for (const cell of node.tree.jobs.cells()) {
    if (cell.done) continue;
    const context = jobContextOf(cell);
    yield { jobId: context.jobId, state: cell.state, done: false, path: context.path };
  }
}

/** Runs one seed. */
export async function simulate(options: SimulationOptions): Promise<SimulationResult> {
  const started = performance.now();
  const seed = options.seed;
  const workerCount = options.workers ?? 8;
  const verifierCount = options.verifiers ?? 4;
  const clientCount = options.clients ?? 1;
  const jobCount = options.jobs ?? 20;
  const adversaries = new Set(options.adversaries ?? []);
  const profile = faultProfile(options.faults ?? "none");
  for (
    const [what, n, min] of [
      ["workers", workerCount, 1],
      ["verifiers", verifierCount, 1],
      ["clients", clientCount, 1],
      ["jobs", jobCount, 0],
    ] as const
  ) {
    if (!Number.isSafeInteger(n) || n < min) {
      throw new RangeError(`Invalid --${what} ${n}: must be an integer of at least ${min}`);
    }
  }
  // With crashes, nodes keep a real journal (SQLite files in a temporary directory) and restart
  // from it; without, they record to the run's recording (if asked).
  const crashing = profile.crashes !== null || adversaries.has("restart-every-phase");
  // Kept beside the recording when one is asked for (`deno task export` reads them), else
  // in a temporary directory removed at the end.
  const keepData = crashing && options.recordPath !== undefined;
  const dataRoot = !crashing
    ? undefined
    : keepData
    ? options.recordPath!.replace(/\.jsonl$/, "") + "-data"
    : await Deno.makeTempDir({ prefix: "ciro-sim-" });
  if (keepData) {
    await Deno.remove(dataRoot!, { recursive: true }).catch(() => {});
    await Deno.mkdir(dataRoot!, { recursive: true });
  }

  const sched = new Scheduler(seed);
  const trace = new Trace();
  const world = sched.rng.fork();
  const net = new SimNetwork(sched, trace, { ...profile });
  const chain = new SimChain(sched, trace, profile.chain);
  const recorder = options.recordPath === undefined
    ? undefined
    : RecordingWriter.create(options.recordPath, {
      sim: {
        seed,
        workers: workerCount,
        verifiers: verifierCount,
        clients: clientCount,
        jobs: jobCount,
        faults: profile.name,
        adversaries: [...adversaries],
      },
    });

  const policy: JobPolicy = { ...DEFAULT_POLICY, settlement: options.settlement ?? "chain" };
  const honestWorkers = new Set<NodeId>();
  const honestVerifiers = new Set<NodeId>();
  const honestClients = new Set<NodeId>();
  const wrongWorkers = new Set<NodeId>();
  const cast: Cast = { honestWorkers, honestVerifiers, honestClients, wrongWorkers };
  const participants: Participant[] = [];
  const errors: string[] = [];

  const peer = {
    heartbeatMs: 600_000,
    maxMissedHeartbeats: 3,
    initialScore: 100,
    banThreshold: 0,
    banMs: 60_000,
  };
  const observe = (p: Participant, node: Node) => {
    const id = p.id;
    const current = () => p.node === node && p.alive;
    const phases = new Map<string, string>();
    node.observe((ob) => {
      if (!current()) return;
      if (p.id === PHOENIX && ob.type === "delivered" && ob.actor.startsWith("job:")) {
        // The restarting worker crashes in the middle of each phase of a job it won.
        const was = phases.get(ob.actor);
        phases.set(ob.actor, ob.state);
        const won = node.job(ob.actor.slice(4))?.context.winner?.worker === p.id;
        if (won && was !== undefined && was !== ob.state && p.restarts < MAX_PHOENIX_RESTARTS) {
          sched.after(world.int(1, 50), () => crash(p, world.int(20, 200)), "crash");
        }
      }
      switch (ob.type) {
        case "delivered":
          trace.add(
            `${ob.envelope.at}|d|${id}#${ob.envelope.seq}|${ob.envelope.source}|${ob.actor}|${ob.envelope.event.type}|${ob.state}`,
          );
          break;
        case "rejected":
          trace.add(
            `${ob.envelope.at}|r|${id}#${ob.envelope.seq}|${ob.envelope.source}|${ob.envelope.target}|${ob.envelope.event.type}|${ob.code}`,
          );
          break;
        case "effect.failed":
          trace.add(`${sched.now()}|ef|${id}|${ob.actor}|${ob.effect}`);
          break;
        case "journal.failed":
          errors.push(`${id}: journal failed: ${ob.error.message}`);
          break;
        default:
          break;
      }
    });
  };
  /** Opens a durable participant's node on its data directory (a start or a restart). */
  const open = async (p: Participant): Promise<void> => {
    const durable = await openDurableNode({
      ...p.options,
      network: net.join(p.id),
      chain: chain.port(p.account ?? p.id, p.intercept),
      dataDir: p.dataDir!,
    });
    p.durable = durable;
    p.node = durable.node;
    p.alive = true;
    observe(p, durable.node);
  };
  const startNode = (p: Participant) => {
    const started = p.durable ? p.durable.start() : p.node.start();
    started.catch((e: Error) => {
      if (p.alive) errors.push(`${p.id}: start failed: ${e.message}`);
    });
  };
  const add = (
    id: NodeId,
    roles: Role[],
    extra: Partial<NodeOptions> & { intercept?: Intercept; account?: string } = {},
  ): Participant => {
    const { intercept, account, ...rest } = extra;
    const options: Omit<NodeOptions, "network" | "chain"> = {
      id,
      roles,
      policy,
      clock: sched,
      executor: new SimExecutor(sched, world.fork()),
      peer,
      capabilityIntervalMs: 0,
      retainFinishedMs: null,
      escrowWaitMs: ESCROW_WAIT_MS,
      ...rest,
    };
    const p: Participant = {
      id,
      node: undefined as unknown as Node,
      options,
      intercept,
      account,
      dataDir: dataRoot === undefined ? undefined : `${dataRoot}/${id}`,
      durable: undefined,
      alive: true,
      restarts: 0,
    };
    if (p.dataDir === undefined) {
      const o: NodeOptions = {
        ...options,
        network: net.join(id),
        chain: chain.port(account ?? id, intercept),
      };
      p.node = createNode(recorder ? { ...o, journal: recorder.sink(describeNode(o)) } : o);
      observe(p, p.node);
    }
    participants.push(p);
    return p;
  };
  /** Crashes a participant: off the network and the chain, its journal left as a crash leaves it. */
  const crash = (p: Participant, downMs: number) => {
    if (!p.alive || p.durable === undefined) return;
    p.alive = false;
    p.restarts++;
    trace.add(`${sched.now()}|crash|${p.id}`);
    net.detach(p.id);
    chain.drop(p.id);
    p.durable.journal.abandon();
    sched.after(downMs, async () => {
      trace.add(`${sched.now()}|restart|${p.id}`);
      try {
        await open(p);
      } catch (e) {
        const error = e as Error;
        if (error.name === "RecoveryDivergenceError") {
          violate({
            invariant: "journal-replays",
            node: p.id,
            job: null,
            detail: error.message.split("\n")[0] ?? error.message,
          });
        } else errors.push(`${p.id}: restart failed: ${error.message}`);
        return;
      }
      startNode(p);
    }, "restart");
  };
  const worker = (
    fault: NonNullable<WorkerProfile["fault"]>,
    priceRatio: number,
  ): WorkerProfile => ({
    hardware: "cpu",
    stake: WORKER_STAKE,
    priceRatio,
    etaMs: 100,
    capacity: 2,
    fault,
  });

  // The honest market.
  const clients: Participant[] = [];
  for (let i = 0; i < clientCount; i++) {
    const id = `client-${pad(i)}`;
    honestClients.add(id);
    // Against a forging assigner the clients' chain accounts are no node ids (as an address on
    // Starknet or an EVM): nothing binds a peer to a job's client.
    const account = adversaries.has("forging-assigner") ? `account-${id}` : undefined;
    if (account !== undefined) honestClients.add(account);
    clients.push(add(id, ["client"], account === undefined ? {} : { account }));
  }
  for (let i = 0; i < workerCount; i++) {
    const id = `worker-${pad(i, 3)}`;
    honestWorkers.add(id);
    add(id, ["worker"], { worker: worker("none", 0.55 + world.int(0, 40) / 100) });
  }
  const f = Math.floor((Math.min(4, verifierCount) - 1) / 3);
  const colluders = adversaries.has("colluding-verifiers-f1")
    ? f + 1
    : adversaries.has("colluding-verifiers-f")
    ? f
    : 0;
  for (let i = 0; i < verifierCount; i++) {
    if (i < colluders) {
      add(`colluder-${pad(i)}`, ["verifier"], { verifierFault: "always_valid" });
      continue;
    }
    const id = `verifier-${pad(i)}`;
    honestVerifiers.add(id);
    add(id, ["verifier"]);
  }

  // The adversaries that are nodes running the real code with a fault.
  if (adversaries.has("sybil-verifiers")) {
    for (let i = 0; i < 6; i++) {
      // Cheap identities: they bond nothing (a bond is what a Sybil cannot multiply).
      add(`sybil-${pad(i)}`, ["verifier"], { verifierFault: "always_invalid", verifierStake: 0n });
    }
  }
  if (adversaries.has("underbid-then-silent")) {
    add("silent-01", ["worker"], { worker: worker("silent", 0.3) });
  }
  if (adversaries.has("wrong-results") || colluders > 0) {
    wrongWorkers.add("wrong-01");
    add("wrong-01", ["worker"], { worker: worker("wrong_result", 0.31) });
  }
  if (adversaries.has("restart-every-phase")) {
    add(PHOENIX, ["worker"], { worker: worker("none", 0.4) });
  }
  let liar: Participant | undefined;
  const liarChain = adversaries.has("lying-client") ? chain.port("liar-01") : undefined;
  if (adversaries.has("lying-client")) {
    // It records every verification as rejected, then asks the chain to slash the worker for
    // invalid compute, as the ledger lets the client of a disputed legacy job do. Under chain
    // settlement its node records no verdict: it sends both calls itself as each result lands
    // (see `liarOnResult`), and the chain must refuse them.
    liar = add("liar-01", ["client"], {
      intercept: (method, args) => {
        if (method !== "recordVerification") return args;
        const outcome = args[0] as { jobId: string; accepted: boolean };
        sched.after(chain.faults.blockMs * 2, () => {
          const worker = checker.jobs.get(outcome.jobId)?.worker;
          if (worker) {
            void liarChain!.slash({ jobId: outcome.jobId, worker, reason: "invalid_compute" })
              .catch(() => {});
          }
        }, "liar.slash");
        return [{ ...outcome, accepted: false }, ...args.slice(1)];
      },
    });
  }

  // Rogue ports: crafted messages, no node behind them.
  const rogue = (id: NodeId): NetworkPort => {
    const port = net.join(id);
    void port.start();
    return port;
  };
  const healAt = START_JOBS_AT + jobCount * 100 + 2_000;
  const every = (ms: number, fn: () => void, label: string) => {
    const tick = () => {
      if (sched.now() > healAt) return;
      fn();
      sched.after(ms, tick, label);
    };
    sched.at(START_JOBS_AT, tick, label);
  };
  const rogueRng = world.fork();
  let rogueJobs = 0;
  for (const name of ["unescrowed-announcements", "unescrowed-long-windows"] as const) {
    if (!adversaries.has(name)) continue;
    // Jobs announced and never escrowed; the long variant keeps its bid window open a minute.
    const windowMs = name === "unescrowed-long-windows" ? 60_000 : SIM_TIMING.bidWindowMs;
    const owner = name === "unescrowed-long-windows" ? "phantom-02" : "phantom-01";
    const port = rogue(owner);
    every(40, () => {
      const spec = matmulSpec(rogueRng, Math.min(4, verifierCount));
      void port.publish(
        announcementTopic(shardOf(spec)),
        encodeMessage(TOPICS.jobs, {
          type: "job.announce",
          jobId: `phantom-${++rogueJobs}`,
          owner,
          attempt: 1,
          bidWindowEndsAt: sched.now() + windowMs,
          spec: { ...spec, bidWindowMs: windowMs, maxPrice: 5_000n },
        }),
      ).catch(() => {});
    }, "rogue.announce");
  }
  if (adversaries.has("flood")) {
    const port = rogue("flooder-01");
    every(100, () => {
      for (let i = 0; i < 10; i++) {
        // Bids go to a job's owner directly (protocol v2): the flooder sends them to clients.
        void port.send(
          rogueRng.pick(clients).id,
          TOPICS.bids,
          encodeMessage(TOPICS.bids, {
            type: "bid.submit",
            bidId: `flood-${sched.now()}-${i}`,
            jobId: `job-${rogueRng.int(0, 10_000)}`,
            worker: "flooder-01",
            price: 1n,
            etaMs: 1,
            stake: 10n ** 18n,
            reputation: 1000,
            hardware: "cpu",
          }),
        ).catch(() => {});
      }
    }, "rogue.flood");
  }
  if (adversaries.has("replay-old-messages")) {
    const port = rogue("replayer-01");
    const heard: { topic: Topic; data: Uint8Array }[] = [];
    // It hears what is gossiped and, as a party would, what peers send directly.
    net.onPublish = (m) => {
      if (m.from !== "replayer-01" && heard.length < 2_000) heard.push(m);
    };
    const everyone = participants.map((p) => p.id);
    every(100, () => {
      for (let i = 0; i < 5 && heard.length > 0; i++) {
        const m = rogueRng.pick(heard);
        const sent = isDirectTopic(m.topic)
          ? port.send(rogueRng.pick(everyone), m.topic, m.data)
          : port.publish(m.topic, m.data);
        void sent.catch(() => {});
      }
    }, "rogue.replay");
  }
  if (adversaries.has("forging-assigner")) {
    // A peer that reads the chain and, on each assignment, sends every chosen verifier forged
    // assignments before the owner's, each with attempt 16: a 1 ms verification window; the
    // escrow's terms (read from JobSubmitted) and the input (heard announced); the same as an ONNX
    // job naming the zero model hash (a builtin's on chain; review 2 H1); the same with
    // `maxAttempts` 1 (H2). And it announces the job again as its own, attempt 3, with another
    // input (H3: a worker and verifier must not take it for the owner's).
    const port = rogue("forger-01");
    const reader = chain.port("forger-01");
    const escrows = new Map<string, Extract<ChainEvent, { name: "JobSubmitted" }>>();
    const inputs = new Map<string, unknown>();
    const heard = net.onPublish;
    net.onPublish = (m) => {
      heard?.(m);
      if (!m.topic.startsWith(`${TOPICS.jobs}/`)) return;
      const announced = JSON.parse(new TextDecoder().decode(m.data)) as {
        jobId?: string;
        spec?: { input?: unknown };
      };
      if (announced.jobId !== undefined) inputs.set(announced.jobId, announced.spec?.input);
    };
    let cursor = { blockNumber: 0, eventIndex: 0 };
    every(50, () => {
      void reader.eventsSince(cursor, { limit: 1_000 }).then(({ events, next }) => {
        cursor = next;
        for (const e of events) {
          if (e.name === "JobSubmitted") escrows.set(e.jobId, e);
          const escrow = e.name === "WorkerAssigned" ? escrows.get(e.jobId) : undefined;
          if (e.name !== "WorkerAssigned" || escrow === undefined) continue;
          const spec: JobSpec = {
            kind: { type: "builtin", name: "matmul" },
            inputCommitment: escrow.inputCommitment,
            ...(inputs.has(e.jobId) ? { input: inputs.get(e.jobId) } : {}),
            requirements: { hardware: "cpu", minStake: escrow.minStake },
            maxPrice: escrow.amount,
            bidWindowMs: escrow.bidWindowMs,
            executionMs: escrow.executionMs,
            verificationMs: escrow.verificationMs,
            maxAttempts: 1,
            verifierCount: escrow.verifierCount,
          };
          const zeroModel = {
            type: "onnx",
            modelHash: "0".repeat(64),
          } as unknown as JobSpec["kind"];
          for (const v of e.verifiers) {
            for (
              const forged of [
                { ...spec, verificationMs: 1 },
                spec,
                { ...spec, kind: zeroModel },
                { ...spec, maxAttempts: 16 },
              ]
            ) {
              void port.send(
                v,
                TOPICS.assignments,
                encodeMessage(TOPICS.assignments, {
                  type: "job.assign",
                  jobId: e.jobId,
                  worker: e.worker,
                  bidId: `forged-${e.jobId}`,
                  price: e.price,
                  verifiers: [...e.verifiers],
                  attempt: 16,
                  spec: forged,
                }),
              ).catch(() => {});
            }
          }
          const other = { a: [[9, 9], [9, 9]], b: [[1, 0], [0, 1]] };
          const reannounced: JobSpec = {
            ...spec,
            input: other,
            inputCommitment: commitmentOf(other),
          };
          const topic = announcementTopicsOf(reannounced, e.jobId, 3, 0)[0]!;
          void port.publish(
            topic,
            encodeMessage(topic as typeof TOPICS.jobs, {
              type: "job.announce",
              jobId: e.jobId,
              owner: "forger-01",
              attempt: 3,
              bidWindowEndsAt: 0,
              spec: reannounced,
            }),
          ).catch(() => {});
        }
      });
    }, "rogue.forge");
  }
  if (adversaries.has("front-runner")) {
    // A peer that reads the chain every 2 ms and announces each job it sees escrowed as its own,
    // before its owner can (the owner announces once its escrow transaction is in): the escrow's
    // terms, with an input of its own (the real one is not on chain). A worker that reads escrows
    // drops the forgery when its read answers (its owner is not the escrow's client, its spec
    // not the one the escrow's hash commits to) and charges the announcer; the owner's own
    // announcement, which comes after, must still be taken, or the job starves (review R3).
    const port = rogue("front-runner-01");
    const reader = chain.port("front-runner-01");
    let cursor = { blockNumber: 0, eventIndex: 0 };
    const other = { a: [[9, 9], [9, 9]], b: [[1, 0], [0, 1]] };
    every(2, () => {
      void reader.eventsSince(cursor, { limit: 1_000 }).then(({ events, next }) => {
        cursor = next;
        for (const e of events) {
          if (e.name !== "JobSubmitted") continue;
          const spec: JobSpec = {
            kind: { type: "builtin", name: "matmul" },
            input: other,
            inputCommitment: commitmentOf(other),
            requirements: { hardware: "cpu", minStake: e.minStake },
            maxPrice: e.amount,
            bidWindowMs: e.bidWindowMs,
            executionMs: e.executionMs,
            verificationMs: e.verificationMs,
            maxAttempts: 3,
            verifierCount: e.verifierCount,
          };
          const topic = announcementTopicsOf(spec, e.jobId, 1, 0)[0]!;
          void port.publish(
            topic,
            encodeMessage(topic as typeof TOPICS.jobs, {
              type: "job.announce",
              jobId: e.jobId,
              owner: "front-runner-01",
              attempt: 1,
              bidWindowEndsAt: sched.now() + e.bidWindowMs,
              spec,
            }),
          ).catch(() => {});
        }
      });
    }, "rogue.frontrun");
  }
  if (adversaries.has("oversized-messages")) {
    const port = rogue("bloater-01");
    every(200, () => {
      const topic = rogueRng.pick([
        ...Object.values(TOPICS).filter((t) => t !== TOPICS.jobs),
        announcementTopic({ hardware: "cpu", kind: "matmul" }),
      ]);
      const deep = "[".repeat(10_000) + "]".repeat(10_000);
      const big = JSON.stringify({ type: "job.announce", pad: "x".repeat(1 << 20) });
      const data = new TextEncoder().encode(rogueRng.chance(0.5) ? deep : big);
      const sent = isDirectTopic(topic)
        ? port.send(rogueRng.pick(participants).id, topic, data)
        : port.publish(topic, data);
      void sent.catch(() => {});
    }, "rogue.bloat");
  }

  // Start, announce capabilities, submit jobs.
  for (const p of participants) if (p.dataDir !== undefined) await open(p);
  for (const p of participants) sched.at(0, () => startNode(p), "start");
  const announce = () => {
    for (const p of participants) {
      if (p.alive) void p.node.announceCapabilities().catch(() => {});
    }
    sched.after(CAPABILITY_EVERY_MS, announce, "capabilities");
  };
  sched.at(50, announce, "capabilities");
  const submitted = new Map<string, { client: Participant; at: number }>();
  let tried = 0;
  const jobRng = world.fork();
  let at = START_JOBS_AT;
  const liarShare = liar ? Math.max(1, Math.floor(jobCount / 4)) : 0;
  for (let j = 0; j < jobCount + liarShare; j++) {
    at += jobRng.int(40, 160);
    const jobId = `s${seed}-job-${pad(j, 4)}`;
    const isLiar = liar !== undefined && j >= jobCount;
    const client = isLiar ? liar! : clients[j % clients.length]!;
    const spec = matmulSpec(jobRng, Math.min(4, verifierCount));
    sched.at(at, () => {
      tried++;
      if (!client.alive) return; // a crashed client submits nothing
      try {
        client.node.submitJob({ spec, jobId });
        if (!isLiar) submitted.set(jobId, { client, at: sched.now() });
      } catch (e) {
        errors.push(`${client.id}: submit ${jobId} failed: ${(e as Error).message}`);
      }
    }, "submit");
  }
  const lastSubmit = at;
  const jobBound = MAX_ATTEMPTS *
      (SIM_TIMING.bidWindowMs + SIM_TIMING.executionMs + SIM_TIMING.verificationMs) +
    LIVENESS_SLACK_MS;
  const until = options.durationMs ?? Math.max(healAt, lastSubmit) + jobBound + 2_000;

  // Faults that come and go.
  if (profile.partitions !== null) {
    const { everyMs, lengthMs } = profile.partitions;
    const split = () => {
      if (sched.now() > healAt) return;
      const groups = new Map<NodeId, number>();
      for (const id of net.ids()) groups.set(id, world.int(0, 1));
      net.partition(groups);
      sched.after(lengthMs, () => net.heal(), "heal");
      sched.after(everyMs, split, "partition");
    };
    sched.at(START_JOBS_AT + everyMs / 2, split, "partition");
  }
  if (profile.crashes !== null) {
    const { everyMs, downMs } = profile.crashes;
    const crashable = participants.filter((p) =>
      honestClients.has(p.id) || honestWorkers.has(p.id) || honestVerifiers.has(p.id)
    );
    const next = () => {
      if (sched.now() > healAt) return;
      const alive = crashable.filter((p) => p.alive);
      if (alive.length > 0) crash(world.pick(alive), world.int(downMs / 2, downMs));
      sched.after(world.int(everyMs / 2, everyMs), next, "crash");
    };
    sched.at(START_JOBS_AT + everyMs / 2, next, "crash");
  }
  sched.at(healAt, () => {
    net.faults = { latencyMs: profile.latencyMs, loss: 0, duplicate: 0 };
    net.heal();
    chain.faults = { ...profile.chain, reorgChance: 0 };
    trace.add(`${sched.now()}|healed`);
  }, "heal");

  // The invariants.
  const violations: Violation[] = [];
  const violate = (v: Omit<Violation, "step" | "at">) => {
    if (violations.length === 0) violations.push({ ...v, step: sched.steps, at: sched.now() });
  };
  const checker = new ChainChecker(cast, () => sched.now());
  chain.onEvent = (event) => {
    const v = checker.event(event);
    if (v !== null) violate(v);
    if (liar !== undefined && event.name === "ResultSubmitted") liarOnResult(event.jobId);
  };
  /** The lying client, on a result of one of its chain-decided jobs: disputes it and slashes. */
  const liarOnResult = (jobId: string) => {
    const job = checker.jobs.get(jobId);
    if (liarChain === undefined || job?.client !== "liar-01" || job.worker === null) return;
    if (policy.settlement !== "chain") return; // under legacy its node lies (the intercept)
    const worker = job.worker;
    void liarChain.recordVerification({ jobId, accepted: false }).catch(() => {});
    void liarChain.slash({ jobId, worker, reason: "invalid_compute" }).catch(() => {});
  };
  const honestNodes = participants.filter((p) =>
    honestClients.has(p.id) || honestWorkers.has(p.id) || honestVerifiers.has(p.id)
  );
  const strictService = profile.loss === 0 && profile.partitions === null &&
    profile.crashes === null;
  const checkViews = (final: boolean) => {
    const now = sched.now();
    for (const [jobId, s] of submitted) {
      const view = s.client.node.job(jobId);
      if (view?.done) {
        // Without network faults, an honest job ends paid or refunded after a dispute: a job
        // that expired or failed in a market with honest workers free was starved.
        if (strictService && (view.state === "expired" || view.state === "failed")) {
          violate({
            invariant: "liveness",
            node: s.client.id,
            job: jobId,
            detail: `starved: ended ${view.state} (attempt ${view.context.attempt}, ${
              Object.keys(view.context.bids).length
            } bids) in a market of ${honestWorkers.size} honest workers`,
          });
          return;
        }
        continue;
      }
      if (final || now > s.at + jobBound) {
        violate({
          invariant: "liveness",
          node: s.client.id,
          job: jobId,
          detail: `not final ${now - s.at} ms after submission (state ${view?.state ?? "none"})`,
        });
        return;
      }
    }
    for (const p of honestNodes) {
      if (!p.alive) continue;
      for (const summary of final ? p.node.jobs() : openJobs(p.node)) {
        const onChain = checker.jobs.get(summary.jobId);
        const first = summary.path[0]?.at ?? now;
        if (onChain === undefined) {
          if (!summary.done && now - first > AGREEMENT_MS) {
            violate({
              invariant: "chain-agreement",
              node: p.id,
              job: summary.jobId,
              detail: `a phantom job: ${summary.state} for ${
                now - first
              } ms and never escrowed on chain`,
            });
            return;
          }
          continue;
        }
        if (onChain.finalAt !== null && !summary.done && now - onChain.finalAt > AGREEMENT_MS) {
          violate({
            invariant: "chain-agreement",
            node: p.id,
            job: summary.jobId,
            detail: `still ${summary.state} ${now - onChain.finalAt} ms after the chain ${
              onChain.paid > 0 ? "paid" : "refunded"
            } it`,
          });
          return;
        }
        if (summary.done && final) {
          const chainSays = onChain.paid > 0 ? "settled" : onChain.refunded > 0 ? "refunded" : null;
          // `outbid` and `heard_late` say nothing of the job's fate: the node stopped following
          // it, having lost, or never followed it (heard of after its end).
          const agrees = summary.state === OUTBID_STATE || summary.state === HEARD_LATE_STATE ||
              chainSays === null
            ? !["settled", "refunded"].includes(summary.state)
            : summary.state === chainSays ||
              (chainSays === "refunded" && summary.state !== "settled");
          if (!agrees) {
            violate({
              invariant: "chain-agreement",
              node: p.id,
              job: summary.jobId,
              detail: `ended ${summary.state} where the chain says ${chainSays ?? "open"}`,
            });
            return;
          }
        }
      }
    }
  };
  const allFinal = () => {
    if (tried < jobCount + liarShare) return false;
    for (const [jobId, s] of submitted) if (!s.client.node.job(jobId)?.done) return false;
    return true;
  };
  // Once every job is final, the run goes on long enough for every view to catch up, then ends.
  let quietUntil: number | null = null;
  const views = () => {
    checkViews(false);
    if (quietUntil === null && allFinal()) quietUntil = sched.now() + AGREEMENT_MS + 1_000;
    sched.after(VIEW_CHECK_MS, views, "check");
  };
  sched.at(VIEW_CHECK_MS, views, "check");
  const observer = chain.port("sim-observer");
  let blocks = -1;
  const maxSteps = options.maxSteps ?? 5_000_000;
  await sched.run({
    until,
    maxSteps,
    ...(options.between ? { between: options.between } : {}),
    afterStep: async () => {
      // The ledger's identities after every step that made a block.
      const made = chain.stats.transactions - chain.stats.failed;
      if (made !== blocks) {
        blocks = made;
        const v = checker.totals(await observer.totals());
        if (v !== null) violate(v);
      }
      if (violations.length > 0 || errors.length > 0) return true;
      return quietUntil !== null && sched.now() >= quietUntil;
    },
  });
  if (violations.length === 0 && errors.length === 0) checkViews(true);
  const virtualMs = sched.now();
  const jobs: Record<string, number> = {};
  for (const [jobId, s] of submitted) {
    const v = s.client.node.job(jobId);
    const state = v?.done ? v.state : "open";
    jobs[state] = (jobs[state] ?? 0) + 1;
  }
  if (submitted.size < jobCount) jobs["unsubmitted"] = jobCount - submitted.size;

  // Stop every node; the scheduler runs on so that what they wait for can finish.
  let stopped = false;
  const stops = Promise.all(
    participants.filter((p) => p.alive).map((p) => p.durable ? p.durable.stop() : p.node.stop()),
  ).then(() => {
    stopped = true;
  });
  await sched.run({
    until: Number.MAX_SAFE_INTEGER,
    maxSteps: sched.steps + 1_000_000,
    afterStep: () => stopped,
  });
  await stops;
  const traceHash = trace.digest();
  chain.close();
  if (dataRoot !== undefined && !keepData) await Deno.remove(dataRoot, { recursive: true });

  if (recorder) {
    recorder.close();
    if (violations.length === 0) {
      const report = replay(parseRecording(await Deno.readTextFile(recorder.path)));
      if (!report.ok) {
        const d = report.divergence;
        violations.push({
          invariant: "journal-replays",
          step: sched.steps,
          at: virtualMs,
          node: d?.node ?? null,
          job: d?.target.startsWith("job:") ? d.target.slice(4) : null,
          detail: d === null || d === undefined
            ? "the recording does not replay"
            : `diverged at seq ${d.seq}: ${d.event} (${d.source}) to ${d.target}`,
        });
      }
    }
  }
  for (const e of errors) {
    violations.push({
      invariant: "liveness",
      step: sched.steps,
      at: virtualMs,
      node: e.split(":")[0] ?? null,
      job: null,
      detail: e,
    });
  }

  return {
    seed,
    traceHash,
    virtualMs,
    wallMs: Math.round(performance.now() - started),
    steps: sched.steps,
    jobs,
    messages: {
      published: net.stats.published,
      delivered: net.stats.delivered,
      dropped: net.stats.dropped,
      rejected: net.stats.rejected,
      bans: net.stats.bans,
    },
    chain: {
      transactions: chain.stats.transactions,
      failed: chain.stats.failed,
      reorgs: chain.stats.reorgs,
      events: chain.events().length,
    },
    restarts: participants.reduce((n, p) => n + p.restarts, 0),
    violations,
    ...(recorder ? { recordPath: recorder.path } : {}),
  };
}
