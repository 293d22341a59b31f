/**
 * Crash recovery of owner transactions: a small market (a client, two workers, a verifier, each
 * a durable node on its own data directory, on one local ledger file) is "killed" at a precise
 * point: inside the Nth call of one chain method, either before the transaction reaches the
 * ledger (lost) or right after it landed (landed). The kill abandons every node's journal at
 * that instant (nothing more is written, pending outcomes and snapshots are lost, as with
 * SIGKILL) and every chain port goes dead (calls hang, events are dropped). Then the market is
 * reopened on the same journal files and the same ledger file, and the job must finish as if
 * nothing happened: a lost transaction is sent again, a landed one is seen as its chain event
 * first (no duplicate transaction, no failed job), and the money adds up.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalLedger } from "../chain/local_ledger.ts";
import type { ChainCursor, ChainEvent, ChainPort, TxReceipt } from "../chain/port.ts";
import type { EffectRequest } from "../machines/types.ts";
import { InProcessNetwork } from "../protocols/in_process_network.ts";
import { BuiltinExecutor, commitmentOf, type ExecutorPort } from "../runtime/compute/executor.ts";
import { type Topic, topicFamily, TOPICS } from "../protocols/messages.ts";
import type { NetworkPort } from "../protocols/network_port.ts";
import { SqliteJournal } from "../runtime/durability/journal.ts";
import type { NodeOptions } from "../runtime/kernel/mod.ts";
import { type DurableNode, openDurableNode } from "../runtime/durability/recovery.ts";

const TX_METHODS = [
  "submitJob",
  "assignWorker",
  "revokeAssignment",
  "submitResult",
  "recordVerification",
  "releasePayment",
  "refund",
  "slash",
] as const;
type TxMethod = (typeof TX_METHODS)[number];

/** Effects that are not transactions, where a market can be killed before they end. */
type WorkEffect =
  | "net.announce"
  | "net.assignment"
  | "net.result"
  | "net.attestation"
  | "worker.consider"
  | "exec.run"
  | "verify.run";

/** The topic each publishing effect goes out on (a bid is `worker.consider`'s answer). */
const TOPIC_OF: Partial<Record<WorkEffect, string>> = {
  "net.announce": TOPICS.jobs,
  "net.assignment": TOPICS.assignments,
  "net.result": TOPICS.results,
  "net.attestation": TOPICS.attestations,
  "worker.consider": TOPICS.bids,
};

/**
 * Where to kill the market: in call `nth` of `method` by `node`, before or after it landed; or,
 * with `effect`, while `node` does that effect (a publish that never goes out, an execution or
 * a re-execution that never ends).
 */
interface CrashPlan {
  readonly node: string;
  readonly method?: TxMethod;
  readonly effect?: WorkEffect;
  readonly nth?: number;
  readonly when: "lost" | "landed";
}

/**
 * Wraps a node's network port: a publish (or, protocol v2, a direct send) the plan names kills
 * the market instead.
 */
function testNetwork(inner: NetworkPort, kill: Kill, plan: CrashPlan | undefined): NetworkPort {
  const topic = plan?.effect === undefined ? undefined : TOPIC_OF[plan.effect];
  const out = (t: Topic, o: { signal?: AbortSignal } | undefined, go: () => Promise<void>) => {
    if (kill.killed) return hang<void>(o?.signal);
    if (plan?.node === inner.self && topic === topicFamily(t)) {
      kill.now();
      return hang<void>(o?.signal);
    }
    return go();
  };
  return new Proxy(inner, {
    get(target, key, receiver) {
      if (key === "publish") {
        return (t: Topic, data: Uint8Array, o?: { signal?: AbortSignal }) =>
          out(t, o, () => target.publish(t, data, o));
      }
      if (key === "send") {
        return (peer: string, t: Topic, data: Uint8Array, o?: { signal?: AbortSignal }) =>
          out(t, o, () => target.send(peer, t, data, o));
      }
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** An executor whose runs (or re-runs) kill the market when the plan names them. */
function testExecutor(node: string, kill: Kill, plan: CrashPlan | undefined): ExecutorPort {
  const inner = new BuiltinExecutor();
  return {
    supports: (kind) => inner.supports(kind),
    execute: (spec, input, o) => {
      if (kill.killed) return hang(o?.signal);
      if (plan?.node === node && (plan.effect === "exec.run" || plan.effect === "verify.run")) {
        kill.now();
        return hang(o?.signal);
      }
      return inner.execute(spec, input, o);
    },
  };
}

/** The kill switch of one market. */
class Kill {
  killed = false;
  landed: TxReceipt | undefined;
  readonly journals: SqliteJournal[] = [];
  readonly #done = Promise.withResolvers<void>();
  get happened(): Promise<void> {
    return this.#done.promise;
  }
  now(): void {
    if (this.killed) return;
    this.killed = true;
    for (const journal of this.journals) journal.abandon();
    this.#done.resolve();
  }
}

/** Never settles, unless `signal` aborts (a node stopping cleans up after the kill). */
function hang<T>(signal: AbortSignal | undefined): Promise<T> {
  return new Promise((_, reject) => {
    signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** What a test port records and how it bends the chain. */
interface PortControl {
  /** Calls of each transaction method, and how each ended. */
  readonly calls: { method: TxMethod; ok: boolean; code?: string | undefined }[];
  /** Events at or after this position are held back (not yet confirmed) until `release()`. */
  hideFrom?: ChainCursor | undefined;
  /** Delay of each event handed to the subscriber while the node starts, ms (slow recovery). */
  delayMs?: number | undefined;
  release(): void;
}

const before = (a: ChainCursor, b: ChainCursor) =>
  a.blockNumber < b.blockNumber || (a.blockNumber === b.blockNumber && a.eventIndex < b.eventIndex);

/** Wraps a ledger port: the kill switch, the crash plan, call records, held and slow events. */
function testPort(
  inner: ChainPort,
  kill: Kill,
  plan: CrashPlan | undefined,
  control: PortControl,
): ChainPort {
  const counts = new Map<string, number>();
  const held: ChainEvent[] = [];
  let deliver: ((event: ChainEvent) => void) | undefined;
  const hidden = (e: ChainEvent) => control.hideFrom !== undefined && !before(e, control.hideFrom);
  control.release = () => {
    control.hideFrom = undefined;
    for (const event of held.splice(0)) deliver?.(event);
  };
  const port: Record<string, unknown> = {
    account: inner.account,
    stakeOf: (w: string, o?: { signal?: AbortSignal }) =>
      kill.killed ? hang(o?.signal) : inner.stakeOf(w, o),
    stake: (a: { amount: bigint }, o?: { signal?: AbortSignal }) =>
      kill.killed ? hang(o?.signal) : inner.stake(a, o),
    reputationOf: (w: string, o?: { signal?: AbortSignal }) => inner.reputationOf(w, o),
    requestUnstake: (a: { amount: bigint }, o?: { signal?: AbortSignal }) =>
      inner.requestUnstake(a, o),
    withdraw: (o?: { signal?: AbortSignal }) => inner.withdraw(o),
    totals: (o?: { signal?: AbortSignal }) => inner.totals(o),
    close: () => inner.close(),
    eventsSince: async (from: ChainCursor, o?: { signal?: AbortSignal; limit?: number }) => {
      if (kill.killed) return await hang(o?.signal);
      const read = await inner.eventsSince(from, o);
      const events = read.events.filter((e) => !hidden(e));
      return events.length === read.events.length
        ? read
        : { events, next: control.hideFrom ?? read.next };
    },
    subscribe: (handler: (event: ChainEvent) => void, o?: { from?: ChainCursor }) => {
      let queue = Promise.resolve();
      deliver = (event) => {
        queue = queue.then(async () => {
          if (control.delayMs !== undefined) {
            await new Promise((r) => setTimeout(r, control.delayMs));
          }
          if (!kill.killed) handler(event);
        });
      };
      return inner.subscribe((event) => {
        // Held events keep their order: nothing passes them.
        if (held.length > 0 || hidden(event)) held.push(event);
        else deliver!(event);
      }, o);
    },
  };
  for (const method of TX_METHODS) {
    port[method] = (args: never, o?: { signal?: AbortSignal }) => {
      if (kill.killed) return hang(o?.signal);
      const n = (counts.get(method) ?? 0) + 1;
      counts.set(method, n);
      const call = (inner[method] as (a: never, o?: unknown) => Promise<TxReceipt>).bind(inner);
      if (
        plan?.node === inner.account && plan.method !== undefined && plan.method === method &&
        (plan.nth ?? 1) === n
      ) {
        if (plan.when === "lost") {
          kill.now();
          return hang(o?.signal);
        }
        const landed = call(args, o);
        return landed.then((receipt) => {
          kill.landed = receipt;
          kill.now();
          return hang(o?.signal);
        });
      }
      return call(args, o).then(
        (receipt) => {
          control.calls.push({ method, ok: true });
          return receipt;
        },
        (error) => {
          control.calls.push({ method, ok: false, code: (error as { code?: string }).code });
          throw error;
        },
      );
    };
  }
  return port as unknown as ChainPort;
}

interface MarketOptions {
  readonly plan?: CrashPlan;
  readonly workers?: number;
  /** Fault of every worker (`wrong_result` gets the job disputed). */
  readonly workerFault?: "wrong_result";
  /** The node that starts last (the others are up when it sends again). @default "client" */
  readonly last?: string;
  /** Bends the client's chain port (reopened market). */
  readonly client?: Partial<Pick<PortControl, "hideFrom" | "delayMs">>;
}

/** One run of the market on `dir`; every node recovers from its data directory. */
class Market {
  readonly kill = new Kill();
  readonly network = new InProcessNetwork({ heartbeatMs: 500 });
  readonly ledger: LocalLedger;
  readonly nodes = new Map<string, DurableNode>();
  readonly controls = new Map<string, PortControl>();
  readonly resumed = new Map<string, EffectRequest[]>();
  /** The state job `j1` came back in on each node (before start). */
  readonly recovered = new Map<string, string | undefined>();

  private constructor(dir: string) {
    this.ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  }

  static async open(dir: string, options: MarketOptions = {}): Promise<Market> {
    const market = new Market(dir);
    const peer = {
      heartbeatMs: 500,
      maxMissedHeartbeats: 20,
      initialScore: 100,
      banThreshold: 0,
      banMs: 60_000,
    };
    const workers = Array.from({ length: options.workers ?? 2 }, (_, i) => `worker-${i + 1}`);
    const specs: Omit<NodeOptions, "network" | "chain">[] = [
      { id: "client", roles: ["client"] },
      ...workers.map((id, i): Omit<NodeOptions, "network" | "chain"> => ({
        id,
        roles: ["worker"],
        worker: {
          hardware: "cpu",
          stake: 1_000n,
          priceRatio: 0.5 + i / 10,
          etaMs: 50,
          ...(options.workerFault ? { fault: options.workerFault } : {}),
        },
      })),
      {
        id: "verifier-1",
        roles: ["verifier"],
        // The legacy market these tests were written for: the client picks it from gossip.
        verifierStake: 0n,
      },
    ];
    for (const spec of specs) {
      const control: PortControl = {
        calls: [],
        ...(spec.id === "client" ? options.client : {}),
        release: () => {},
      };
      market.controls.set(spec.id, control);
      const durable = await openDurableNode({
        ...spec,
        network: testNetwork(market.network.join(spec.id), market.kill, options.plan),
        executor: testExecutor(spec.id, market.kill, options.plan),
        chain: testPort(market.ledger.as(spec.id), market.kill, options.plan, control),
        // The client's own transactions (recordVerification and the rest) are what these crash
        // tests cut: the legacy settlement, asked for explicitly since chain is the default.
        policy: { bidSelection: "lowest_price", quorum: "bft", settlement: "legacy" },
        peer,
        capabilityIntervalMs: 0,
        dataDir: `${dir}/${spec.id}`,
        checkpointEvery: 4,
      });
      market.kill.journals.push(durable.journal);
      market.nodes.set(spec.id, durable);
      market.recovered.set(spec.id, durable.node.tree.get("job:j1")?.state);
    }
    // The client (or `last`) comes back last, into a running market (gossip reaches only
    // started nodes, so what it sends again reaches the others).
    const last = options.last ?? "client";
    const order = [...market.nodes].reverse().sort(([a], [b]) =>
      Number(a === last) - Number(b === last)
    );
    for (const [id, durable] of order) market.resumed.set(id, await durable.start());
    // Slow only while recovering: the rest of the run goes at full speed (attestations that
    // outrun the client's chain follower are kept since job machine v3).
    for (const control of market.controls.values()) control.delayMs = undefined;
    for (const durable of market.nodes.values()) await durable.node.announceCapabilities();
    return market;
  }

  get client(): DurableNode {
    return this.nodes.get("client")!;
  }

  /** Submits job `j1` once the client knows its verifier. */
  async submit(): Promise<void> {
    await until(() => this.client.node.verifierPool().includes("verifier-1"), 5_000, "verifier");
    const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
    this.client.node.submitJob({
      jobId: "j1",
      spec: {
        kind: { type: "builtin", name: "matmul" },
        inputCommitment: commitmentOf(input),
        input,
        requirements: { hardware: "cpu", minStake: 100n },
        maxPrice: 1_000n,
        bidWindowMs: 1_000, // room for a restarted market on a loaded machine
        executionMs: 5_000,
        verificationMs: 3_000,
        maxAttempts: 2,
        verifierCount: 1,
      },
    });
  }

  /** The job's final state, once every node is idle. */
  async finished(ms = 15_000): Promise<string> {
    await until(() => this.client.node.jobs().find((j) => j.jobId === "j1")?.done, ms, "j1 done");
    for (const durable of this.nodes.values()) await durable.node.settled();
    return this.client.node.jobs().find((j) => j.jobId === "j1")!.state;
  }

  /** Waits for the planned kill, then what is left of the process goes away. */
  async bury(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.kill.happened,
      new Promise((_, reject) => {
        timer = setTimeout(() => {
          const states = [...this.nodes].map(([id, n]) => `${id}: ${n.node.job("j1")?.state}`);
          reject(new Error(`The planned kill never came (${states.join(", ")})`));
        }, 15_000);
      }),
    ]).finally(() => clearTimeout(timer));
    // The journals were abandoned at the kill: nothing below reaches them or the ledger.
    for (const durable of this.nodes.values()) await durable.node.stop();
    this.network.close();
    this.ledger.close();
  }

  async stop(): Promise<void> {
    for (const durable of this.nodes.values()) await durable.stop();
    this.network.close();
    this.ledger.close();
  }
}

async function until(
  predicate: () => unknown,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Every chain event of job `j1` on the ledger file, by name, and the money identity. */
async function audit(dir: string): Promise<Map<string, number>> {
  const ledger = LocalLedger.open(`${dir}/ledger.sqlite`);
  try {
    const port = ledger.as("auditor");
    const { events } = await port.eventsSince({ blockNumber: 0, eventIndex: 0 }, { limit: 10_000 });
    const names = new Map<string, number>();
    for (const e of events) {
      if ("jobId" in e && e.jobId === "j1") names.set(e.name, (names.get(e.name) ?? 0) + 1);
    }
    const t = await port.totals();
    assert.equal(t.escrowed, t.paid + t.fees + t.refunded + t.locked, "escrow is conserved");
    assert.equal(t.locked, 0n, "nothing is left in escrow");
    return names;
  } finally {
    ledger.close();
  }
}

/** The events journaled by `node`, by type, from its journal file. */
function journaled(dir: string, node: string): string[] {
  const journal = SqliteJournal.open(`${dir}/${node}/journal.sqlite`, { checkpointEvery: 0 });
  try {
    return [...journal.entries()].map((e) => e.event.type);
  } finally {
    journal.close();
  }
}

function stateOf(market: Market): string | undefined {
  return market.client.node.tree.get("job:j1")?.state;
}

interface Scenario {
  readonly plan: CrashPlan;
  readonly options?: Omit<MarketOptions, "plan">;
  /** The state the client's job is in when it comes back. */
  readonly recoveredIn: string;
  readonly final: string;
}

/** A lost transaction: sent again after the restart, exactly once, and the job goes on. */
function lostIsResent(scenario: Scenario, resent: TxMethod[]) {
  return lostIsResentBy("client", scenario, resent);
}

/** A lost transaction of `node`: sent again after the restart, exactly once. */
async function lostIsResentBy(node: string, scenario: Scenario, resent: TxMethod[] = []) {
  const dir = await Deno.makeTempDir({ prefix: "crash-tx-" });
  try {
    const first = await Market.open(dir, { ...scenario.options, plan: scenario.plan });
    await first.submit();
    await first.bury();
    const after = await Market.open(dir, { ...scenario.options, last: node });
    assert.equal(after.recovered.get(node), scenario.recoveredIn, "recovered where it was");
    const final = await after.finished();
    await after.stop();
    assert.equal(final, scenario.final);
    const started = after.resumed.get(node)!.map((e) => e.type);
    const calls = after.controls.get(node)!.calls;
    for (const method of resent) {
      assert.ok(
        calls.some((c) => c.method === method && c.ok),
        `${method} was sent again and landed: ${JSON.stringify(calls)}`,
      );
    }
    assert.ok(started.some((t) => t.startsWith("chain.")), `resent: ${started.join(", ")}`);
    assert.ok(!journaled(dir, node).includes("chain.tx.failed"), "no transaction failed");
    return { events: await audit(dir), calls };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A landed transaction: its event is caught up first; nothing is sent again. */
async function landedIsSeen(scenario: Scenario, reopen: Omit<MarketOptions, "plan"> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "crash-tx-" });
  try {
    const first = await Market.open(dir, { ...scenario.options, plan: scenario.plan });
    await first.submit();
    await first.bury();
    assert.ok(first.kill.landed, "the transaction landed before the kill");
    const after = await Market.open(dir, { ...scenario.options, ...reopen });
    assert.equal(after.recovered.get("client"), scenario.recoveredIn, "recovered where it was");
    const final = await after.finished();
    await after.stop();
    assert.equal(final, scenario.final);
    const calls = after.controls.get("client")!.calls;
    assert.ok(
      !calls.some((c) => c.method === scenario.plan.method),
      `${scenario.plan.method} was not sent again: ${JSON.stringify(calls)}`,
    );
    assert.ok(calls.every((c) => c.ok), `no call was refused: ${JSON.stringify(calls)}`);
    assert.ok(!journaled(dir, "client").includes("chain.tx.failed"), "no transaction failed");
    return { events: await audit(dir), calls };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const ONCE = (names: Map<string, number>, ...expected: string[]) => {
  for (const name of expected) assert.equal(names.get(name), 1, `${name} once: ${[...names]}`);
};

Deno.test("a client killed after journaling job.submit, before the escrow tx, locks it on restart and the job settles", async () => {
  const { events, calls } = await lostIsResent(
    {
      plan: { node: "client", method: "submitJob", when: "lost" },
      recoveredIn: "announced",
      final: "settled",
    },
    ["submitJob"],
  );
  assert.equal(calls.filter((c) => c.method === "submitJob").length, 1);
  ONCE(events, "JobSubmitted", "WorkerAssigned", "ResultSubmitted", "JobVerified");
  ONCE(events, "PaymentReleased");
});

Deno.test("a client killed after the escrow tx landed, before its event, sends no duplicate and the job settles", async () => {
  const { events } = await landedIsSeen({
    plan: { node: "client", method: "submitJob", when: "landed" },
    recoveredIn: "announced",
    final: "settled",
  });
  ONCE(events, "JobSubmitted", "PaymentReleased");
});

Deno.test("recovery sends nothing again until the chain events since its cursor are delivered, however slow the subscription", async () => {
  // Each event takes 150 ms to reach the node: sending at once would be a duplicate_job.
  const { events } = await landedIsSeen(
    {
      plan: { node: "client", method: "submitJob", when: "landed" },
      recoveredIn: "announced",
      final: "settled",
    },
    { client: { delayMs: 150 } },
  );
  ONCE(events, "JobSubmitted", "PaymentReleased");
});

Deno.test("a resent escrow tx refused as a duplicate (landed, event not yet confirmed) does not fail the job", async () => {
  const dir = await Deno.makeTempDir({ prefix: "crash-tx-" });
  try {
    const first = await Market.open(dir, {
      plan: { node: "client", method: "submitJob", when: "landed" },
    });
    await first.submit();
    await first.bury();
    const landed = first.kill.landed!;
    // The chain does not show the escrow's event yet (as Starknet before its confirmations).
    const after = await Market.open(dir, {
      client: { hideFrom: { blockNumber: landed.blockNumber, eventIndex: 0 } },
    });
    const control = after.controls.get("client")!;
    await until(() => control.calls.some((c) => c.method === "submitJob"), 5_000, "the resend");
    await after.client.node.settled();
    assert.deepEqual(control.calls, [{ method: "submitJob", ok: false, code: "duplicate_job" }]);
    assert.equal(stateOf(after), "announced", "still waiting for the escrow's event");
    control.release();
    assert.equal(await after.finished(), "settled");
    await after.stop();
    assert.ok(!journaled(dir, "client").includes("chain.tx.failed"), "no transaction failed");
    ONCE(await audit(dir), "JobSubmitted", "PaymentReleased");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("a client killed before its assignment tx sends it again and the job settles", async () => {
  const { events } = await lostIsResent(
    {
      plan: { node: "client", method: "assignWorker", when: "lost" },
      recoveredIn: "assigned",
      final: "settled",
    },
    ["assignWorker"],
  );
  ONCE(events, "WorkerAssigned", "PaymentReleased");
});

Deno.test("a client killed after its assignment tx landed sees it and sends no duplicate", async () => {
  const { events } = await landedIsSeen({
    plan: { node: "client", method: "assignWorker", when: "landed" },
    recoveredIn: "assigned",
    final: "settled",
  });
  ONCE(events, "WorkerAssigned", "PaymentReleased");
});

Deno.test("a client killed before its verification record sends it again and the job settles", async () => {
  const { events } = await lostIsResent(
    {
      plan: { node: "client", method: "recordVerification", when: "lost" },
      recoveredIn: "settling",
      final: "settled",
    },
    ["recordVerification", "releasePayment"],
  );
  ONCE(events, "JobVerified", "PaymentReleased");
});

Deno.test("a client killed before the release of payment releases it on restart (the record is already done)", async () => {
  const { events, calls } = await lostIsResent(
    {
      plan: { node: "client", method: "releasePayment", when: "lost" },
      recoveredIn: "settling",
      final: "settled",
    },
    ["releasePayment"],
  );
  // The journal says what was open: the release alone (the record's event had come and closed
  // the record). Nothing is guessed from the state, so nothing is tried and refused first.
  assert.deepEqual(calls.map((c) => [c.method, c.ok, c.code ?? null]), [
    ["releasePayment", true, null],
  ]);
  ONCE(events, "JobVerified", "PaymentReleased");
});

Deno.test("a client killed after the release of payment landed settles without a second release", async () => {
  const { events } = await landedIsSeen({
    plan: { node: "client", method: "releasePayment", when: "landed" },
    recoveredIn: "settling",
    final: "settled",
  });
  ONCE(events, "PaymentReleased");
});

Deno.test("a client killed before recording a dispute records it, slashes and refunds on restart", async () => {
  const { events } = await lostIsResent(
    {
      plan: { node: "client", method: "recordVerification", when: "lost" },
      options: { workerFault: "wrong_result" },
      recoveredIn: "disputed",
      final: "refunded",
    },
    ["recordVerification", "slash", "refund"],
  );
  ONCE(events, "JobDisputed", "WorkerSlashed", "EscrowRefunded");
});

Deno.test("a client killed after a dispute's record landed slashes and refunds once", async () => {
  const { events } = await landedIsSeen({
    plan: { node: "client", method: "recordVerification", when: "landed" },
    options: { workerFault: "wrong_result" },
    recoveredIn: "disputed",
    final: "refunded",
  });
  ONCE(events, "JobDisputed", "WorkerSlashed", "EscrowRefunded");
});

Deno.test("a client killed before the refund of a job without bids refunds it on restart", async () => {
  const { events } = await lostIsResent(
    {
      plan: { node: "client", method: "refund", when: "lost" },
      options: { workers: 0 },
      recoveredIn: "refunding",
      final: "expired",
    },
    ["refund"],
  );
  ONCE(events, "JobSubmitted", "EscrowRefunded");
});

/**
 * An effect of another kind open at the crash: the market is killed while `plan.node` does
 * it (its publish never goes out, its run never ends); on restart that node reads it as open
 * from its journal alone, sends it again once, and the job settles.
 */
async function openWorkIsResumed(plan: CrashPlan & { effect: WorkEffect }) {
  const dir = await Deno.makeTempDir({ prefix: "crash-effect-" });
  try {
    const first = await Market.open(dir, { plan });
    await first.submit();
    await first.bury();
    const after = await Market.open(dir, { last: plan.node });
    const durable = after.nodes.get(plan.node)!;
    const open = durable.openEffects.filter((r) => r.actor === "job:j1").map((r) => r.effect.type);
    assert.ok(open.includes(plan.effect), `${plan.effect} was open on ${plan.node}: ${open}`);
    const resent = after.resumed.get(plan.node)!.map((e) => e.type);
    const times = resent.filter((type) => type === plan.effect).length;
    // Sent again once; or, when the others (started first) finished the job on chain before this
    // node came back (a loaded machine), dropped as done: never twice, never lost while needed.
    const dropped = durable.resumed!.dropped.some((r) => r.effect.type === plan.effect);
    assert.ok(
      times === 1 || (times === 0 && dropped && durable.node.job("j1")?.done === true),
      `${plan.effect} was sent again once (${times}): ${resent.join(", ")}`,
    );
    assert.equal(await after.finished(), "settled");
    await after.stop();
    ONCE(await audit(dir), "JobSubmitted", "WorkerAssigned", "ResultSubmitted", "PaymentReleased");
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("a client killed before its announcement went out announces it again from its journal", async () => {
  await openWorkIsResumed({ node: "client", effect: "net.announce", when: "lost" });
});

Deno.test("a worker killed before its bid went out bids again from its journal", async () => {
  await openWorkIsResumed({ node: "worker-1", effect: "worker.consider", when: "lost" });
});

Deno.test("a client killed before its assignment went out publishes it again from its journal", async () => {
  await openWorkIsResumed({ node: "client", effect: "net.assignment", when: "lost" });
});

Deno.test("a worker killed in the middle of an execution runs it again from its journal", async () => {
  await openWorkIsResumed({ node: "worker-1", effect: "exec.run", when: "lost" });
});

Deno.test("a worker killed before its result went out publishes it again from its journal", async () => {
  await openWorkIsResumed({ node: "worker-1", effect: "net.result", when: "lost" });
});

Deno.test("a verifier killed in the middle of a re-execution runs it again from its journal", async () => {
  await openWorkIsResumed({ node: "verifier-1", effect: "verify.run", when: "lost" });
});

Deno.test("a verifier killed before its attestation went out publishes it again from its journal", async () => {
  await openWorkIsResumed({ node: "verifier-1", effect: "net.attestation", when: "lost" });
});

Deno.test("a worker killed before its result transaction sends it again from its journal", async () => {
  const { events, calls } = await lostIsResentBy("worker-1", {
    plan: { node: "worker-1", method: "submitResult", when: "lost" },
    recoveredIn: "executing",
    final: "settled",
  });
  assert.deepEqual(calls.map((c) => [c.method, c.ok]), [["submitResult", true]]);
  ONCE(events, "ResultSubmitted", "PaymentReleased");
});
