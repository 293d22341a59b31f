/**
 * The simulated chain: the local ledger's rules (a real SQLite ledger, in memory) with time,
 * inclusion and event delivery driven by the scheduler.
 *
 * - A node's port is a `Proxy` over `LocalLedger.as(account)`: every method that is not a read
 *   is a transaction, included at the next block boundary (`blockMs`), at a place in the block
 *   drawn from the seed; a block's transactions run as one group of the ledger (one SQLite
 *   transaction: the same receipts and events as one by one, at a fraction of the cost); reads
 *   answer at once.
 *   Nothing lists the transaction methods, so new contract methods are simulated as they come.
 *   An adversary may rewrite a transaction's arguments on its own port (`intercept`).
 * - `subscribe` does not poll: at each block the chain reads the ledger's new events (if a
 *   transaction ran since it last read them), and hands each node those whose block is older
 *   than `confirmMs`, in order.
 * - A node that gives its filter in a shape the chain can index (`SubscribeOptions.index`, as a
 *   chain node indexes log filters by topic) costs the chain nothing for the events it does not
 *   read: while it is in step with the chain, each event goes to the nodes its name, its accounts
 *   and its job concern. The others are not visited at all where no reorg can come and they read
 *   their position from the chain when they need it (`SubscribeOptions.track`); otherwise they
 *   learn once a block how far they have read. A node behind (it subscribed from an earlier
 *   position, or a reorg put it back) has every event checked against its filter until it is in
 *   step again.
 * - Reorgs, as a SQLite ledger can show them: the ledger never rolls back, so a reorg of depth d
 *   is what a node sees of one: its confirmations are held for `reorgHoldMs`, then the last d
 *   events it was handed come again (the node must dedupe them). A fork whose transactions
 *   differ (an event that disappears) is not modelled.
 *
 * @module
 */
import { LocalLedger } from "../../chain/local_ledger.ts";
import {
  type ChainCursor,
  type ChainEvent,
  type ChainPort,
  type EventIndex,
  jobOfEvent,
  type SubscribeOptions,
} from "../../chain/port.ts";
import type { NodeId } from "../../machines/types.ts";
import type { ChainFaults } from "./faults.ts";
import type { Scheduler } from "./scheduler.ts";
import type { Trace } from "./trace.ts";

/** Methods of a port that read and never make a block. */
const READS: ReadonlySet<PropertyKey> = new Set([
  "account",
  "stakeOf",
  "escrowOf",
  "reputationOf",
  "eventsSince",
  "totals",
  "close",
  "then",
]);

/** Rewrites a transaction's arguments before it is sent (an adversary's port). */
export type Intercept = (method: string, args: unknown[]) => unknown[];

interface Subscription {
  readonly node: NodeId;
  readonly handler: (event: ChainEvent) => void;
  /** The node's log filter: the events it skips are not handed over, nor traced. */
  readonly interest: ((event: ChainEvent) => boolean) | undefined;
  readonly passed: ((next: ChainCursor) => void) | undefined;
  /** Whether the node reads its position from the chain (`SubscribeOptions.track`). */
  readonly tracks: boolean;
  /** The node's filter as the chain indexes it (with `interest`), if it gave one. */
  readonly index: EventIndex | undefined;
  /** Stops following the index's job watch list. */
  unfollow: (() => void) | undefined;
  /**
   * The block (`SimChain.#blocks`) in which it was last in step with the chain's index, or
   * {@link STEADY}.
   */
  inStep: number;
  /** Index in the chain's events of the next event to hand over (the chain's `#done` if steady). */
  next: number;
  /** Confirmations held back until then (a reorg). */
  heldUntil: number;
  active: boolean;
}

/**
 * `inStep` of a subscription that stays in step from block to block (no reorgs, and it reads its
 * position from the chain): the chain does not visit it at each block, only for the events it
 * concerns, and its position is where the index has handed out to.
 */
const STEADY = Number.MAX_SAFE_INTEGER;

interface Seen {
  readonly event: ChainEvent;
  readonly at: number;
}

function compare(a: ChainCursor, b: ChainCursor): number {
  return a.blockNumber - b.blockNumber || a.eventIndex - b.eventIndex;
}

/** A chain in virtual time over the local ledger. */
export class SimChain {
  readonly ledger: LocalLedger;
  readonly #sched: Scheduler;
  readonly #trace: Trace;
  readonly #reader: ChainPort;
  /** The chain events read so far from `#base` on (indices are absolute: `#at`). */
  readonly #events: Seen[] = [];
  /** How many of the first events were let go (`pruneEvents`: every subscription had passed them). */
  #base = 0;
  /** The position after the last event let go, once one was. */
  #keptFrom: ChainCursor | undefined;
  readonly #prune: boolean;
  readonly #subs: Subscription[] = [];
  /** The subscriptions that are not {@link STEADY}, in the order of `#subs`: visited each block. */
  #behind: Subscription[] = [];
  /** How many subscriptions are {@link STEADY}. */
  #steady = 0;
  /** Where the indexed subscriptions in step stand: every event before it was handed over. */
  #done = 0;
  /** The position after event `#done - 1`, once there is one. */
  #doneCursor: ChainCursor | undefined;
  /** Blocks made: a subscription in step in this one has `inStep` set to it. */
  #blocks = 0;
  /** Transactions waiting for their block, by the block's time. */
  readonly #queued = new Map<number, { place: number; seq: number; run: () => void }[]>();
  /** The indexed subscriptions by event name, account and job (see the module doc). */
  readonly #byName = new Map<string, Set<Subscription>>();
  readonly #byAccount = new Map<string, Set<Subscription>>();
  readonly #byJob = new Map<string, Set<Subscription>>();
  #cursor: ChainCursor = { blockNumber: 0, eventIndex: 0 };
  /** Whether a transaction ran since the chain last read the ledger's events. */
  #dirty = true;
  faults: ChainFaults;
  /** Transactions sent, reorgs shown, chain events handed to nodes and skipped by their filters. */
  readonly stats = { transactions: 0, failed: 0, reorgs: 0, handed: 0, skipped: 0 };
  /** Told of each new chain event as the chain reads it (the invariants). */
  onEvent: ((event: ChainEvent) => void) | undefined;

  /**
   * `pruneEvents`: let go of the events every subscription has passed (a long run with no node
   * that restarts keeps them all otherwise, about 10 a job); a subscription from before what is
   * kept is then refused.
   */
  constructor(
    scheduler: Scheduler,
    trace: Trace,
    faults: ChainFaults,
    options: { readonly pruneEvents?: boolean } = {},
  ) {
    this.#sched = scheduler;
    this.#trace = trace;
    this.faults = faults;
    this.#prune = options.pruneEvents ?? false;
    this.ledger = LocalLedger.open(":memory:", { now: () => scheduler.now() });
    this.#reader = this.ledger.as("sim-observer");
    this.#sched.after(faults.blockMs, () => this.#block(), "block");
  }

  /** Every chain event read so far, in chain order (those kept, with `pruneEvents`). */
  events(): readonly ChainEvent[] {
    return this.#events.map((s) => s.event);
  }

  /** How many chain events were read so far (pruned ones included). */
  get eventCount(): number {
    return this.#base + this.#events.length;
  }

  /** The event at absolute index `i`. */
  #at(i: number): Seen {
    return this.#events[i - this.#base]!;
  }

  /** The port of `account`, optionally with its transactions rewritten. */
  port(account: NodeId, intercept?: Intercept): ChainPort {
    const real = this.ledger.as(account);
    const sched = this.#sched;
    const subscribe = (
      handler: (event: ChainEvent) => void,
      options: SubscribeOptions = {},
    ): () => void => this.#subscribe(account, handler, options);
    const stats = this.stats;
    const blockMs = () => this.faults.blockMs;
    const trace = (line: string) => this.#trace.add(line);
    const touched = () => {
      this.#dirty = true;
    };
    const include = (block: number, run: () => void) => this.#include(block, run);
    return new Proxy(real, {
      get(target, prop) {
        if (prop === "subscribe") return subscribe;
        const value = Reflect.get(target, prop, target);
        if (typeof value !== "function" || READS.has(prop)) {
          return typeof value === "function" ? value.bind(target) : value;
        }
        return (...args: unknown[]) => {
          const sent = intercept ? intercept(String(prop), args) : args;
          const block = (Math.floor(sched.now() / blockMs()) + 1) * blockMs();
          return new Promise((resolve, reject) => {
            include(block, () => {
              stats.transactions++;
              touched();
              let sentTx: Promise<unknown>;
              try {
                sentTx = (value as (...a: unknown[]) => Promise<unknown>).apply(target, sent);
              } catch (error) {
                sentTx = Promise.reject(error);
              }
              sentTx.then(
                (receipt) => {
                  trace(`${sched.now()}|tx|${account}|${String(prop)}|ok`);
                  resolve(receipt);
                },
                (error: Error & { code?: string }) => {
                  stats.failed++;
                  trace(
                    `${sched.now()}|tx|${account}|${String(prop)}|${error.code ?? error.name}`,
                  );
                  reject(error);
                },
              );
            });
          });
        };
      },
    }) as ChainPort;
  }

  /**
   * Queues a transaction for the block at `block`, at a place in it drawn from the scheduler's
   * generator (a chain orders a block's transactions as it likes); the block's first one has the
   * block's transactions run, in that order, as one group of the ledger (one SQLite transaction,
   * the same receipts and events as one by one).
   */
  #include(block: number, run: () => void): void {
    let queued = this.#queued.get(block);
    if (queued === undefined) {
      this.#queued.set(block, queued = []);
      this.#sched.at(block, () => this.#mine(block), "tx");
    }
    queued.push({ place: this.#sched.rng.int(0, 0xffff), seq: queued.length, run });
  }

  #mine(block: number): void {
    const queued = this.#queued.get(block)!;
    this.#queued.delete(block);
    queued.sort((a, b) => a.place - b.place || a.seq - b.seq);
    this.ledger.group(() => {
      for (const tx of queued) tx.run();
    });
  }

  #subscribe(
    node: NodeId,
    handler: (e: ChainEvent) => void,
    options: SubscribeOptions,
  ): () => void {
    const start = options.from ?? { blockNumber: 0, eventIndex: 0 };
    if (this.#keptFrom !== undefined && compare(start, this.#keptFrom) < 0) {
      throw new RangeError(
        `Cannot subscribe from ${start.blockNumber}:${start.eventIndex}: the simulated chain let go of its first ${this.#base} events (pruneEvents)`,
      );
    }
    const found = this.#events.findIndex((s) => compare(s.event, start) >= 0);
    const next = this.#base + (found < 0 ? this.#events.length : found);
    const index = options.interest === undefined ? undefined : options.index;
    const sub: Subscription = {
      node,
      handler,
      interest: options.interest,
      passed: options.passed,
      tracks: index !== undefined && options.track !== undefined,
      index,
      unfollow: undefined,
      inStep: -1,
      next,
      heldUntil: 0,
      active: true,
    };
    this.#subs.push(sub);
    this.#behind.push(sub);
    if (sub.tracks) {
      options.track!(() => (sub.active && sub.inStep === STEADY ? this.#doneCursor : undefined));
    }
    if (index !== undefined) {
      for (const name of index.names) enter(this.#byName, name, sub);
      for (const account of index.accounts) enter(this.#byAccount, account, sub);
      for (const jobId of index.jobs.values()) enter(this.#byJob, jobId, sub);
      sub.unfollow = index.jobs.follow((jobId, watched) => {
        if (watched) enter(this.#byJob, jobId, sub);
        else leave(this.#byJob, jobId, sub);
      });
    }
    return () => this.#unsubscribe(sub);
  }

  #unsubscribe(sub: Subscription): void {
    sub.active = false;
    const i = this.#subs.indexOf(sub);
    if (i >= 0) this.#subs.splice(i, 1);
    if (sub.inStep === STEADY) this.#steady--;
    else {
      const j = this.#behind.indexOf(sub);
      if (j >= 0) this.#behind.splice(j, 1);
    }
    const index = sub.index;
    if (index === undefined) return;
    sub.unfollow?.();
    for (const name of index.names) leave(this.#byName, name, sub);
    for (const account of index.accounts) leave(this.#byAccount, account, sub);
    for (const jobId of index.jobs.values()) leave(this.#byJob, jobId, sub);
  }

  /** The indexed subscriptions event `event` concerns, by its name, its accounts and its job. */
  #audience(event: ChainEvent): Set<Subscription> {
    const out = new Set<Subscription>(this.#byName.get(event.name));
    const e = event as {
      client?: string;
      worker?: string;
      verifier?: string;
      account?: string;
      verifiers?: readonly string[];
    };
    for (const account of [e.client, e.worker, e.verifier, e.account]) {
      if (account === undefined) continue;
      for (const sub of this.#byAccount.get(account) ?? []) out.add(sub);
    }
    for (const account of e.verifiers ?? []) {
      for (const sub of this.#byAccount.get(account) ?? []) out.add(sub);
    }
    const jobId = jobOfEvent(event);
    if (jobId !== undefined) { for (const sub of this.#byJob.get(jobId) ?? []) out.add(sub); }
    return out;
  }

  async #block(): Promise<void> {
    const now = this.#sched.now();
    this.#sched.after(this.faults.blockMs, () => this.#block(), "block");
    // Only transactions make events: a block without one reads nothing new.
    for (; this.#dirty;) {
      this.#dirty = false;
      const { events, next } = await this.#reader.eventsSince(this.#cursor, { limit: 1000 });
      for (const event of events) {
        this.#events.push({ event, at: now });
        this.onEvent?.(event);
      }
      this.#cursor = next;
      if (events.length === 1000) this.#dirty = true;
    }
    const { confirmMs, reorgChance, reorgDepth, reorgHoldMs } = this.faults;
    const frontier = this.#done;
    let ready = frontier;
    const end = this.eventCount;
    while (ready < end && this.#at(ready).at + confirmMs <= now) ready++;
    // The indexed subscriptions in step with the chain (marked with this block's number, or
    // steady): the index hands them their events. Without reorgs one that reads its position
    // from the chain stays steady, and only the others are visited.
    const block = ++this.#blocks;
    const steady = reorgDepth === 0;
    if (!steady && this.#steady > 0) this.#unsteady();
    let promoted = false;
    for (const sub of [...this.#behind]) {
      if (!sub.active || sub.heldUntil > now) continue;
      if (sub.next > 0 && reorgDepth > 0 && this.#sched.rng.chance(reorgChance)) {
        const depth = Math.min(sub.next, this.#sched.rng.int(1, reorgDepth));
        sub.next -= depth;
        sub.heldUntil = now + reorgHoldMs;
        this.stats.reorgs++;
        this.#trace.add(`${now}|reorg|${sub.node}|${depth}`);
        continue;
      }
      if (sub.index !== undefined && sub.next === frontier) {
        if (steady && sub.tracks) {
          sub.inStep = STEADY;
          this.#steady++;
          promoted = true;
        } else sub.inStep = block;
        continue;
      }
      let skipped: ChainEvent | undefined;
      while (sub.active && sub.next < this.eventCount) {
        const seen = this.#at(sub.next);
        if (seen.at + confirmMs > now) break;
        sub.next++;
        if (sub.interest !== undefined && !sub.interest(seen.event)) {
          skipped = seen.event;
          this.stats.skipped++;
          continue;
        }
        skipped = undefined;
        this.stats.handed++;
        this.#trace.add(
          `${now}|chain|${sub.node}|${seen.event.blockNumber}:${seen.event.eventIndex}|${seen.event.name}`,
        );
        sub.handler(seen.event);
      }
      // What the node skipped last is read too: it is caught up to there.
      if (skipped !== undefined && sub.active) {
        sub.passed?.({ blockNumber: skipped.blockNumber, eventIndex: skipped.eventIndex + 1 });
      }
    }
    if (promoted) this.#behind = this.#behind.filter((s) => s.inStep !== STEADY);
    this.#handIndexed(block, frontier, ready, now);
    if (this.#prune) this.#letGo(reorgDepth);
  }

  /** Reorgs may come: every steady subscription is visited at each block again, from `#done`. */
  #unsteady(): void {
    for (const sub of this.#subs) {
      if (sub.inStep !== STEADY) continue;
      sub.inStep = -1;
      sub.next = this.#done;
    }
    this.#steady = 0;
    this.#behind = [...this.#subs];
  }

  /**
   * Lets go of the events every subscription has passed (less `margin`, what a reorg hands over
   * again), in batches of at least 4,096.
   */
  #letGo(margin: number): void {
    let passed = this.#done;
    for (const sub of this.#behind) if (sub.next < passed) passed = sub.next;
    const drop = passed - margin - this.#base;
    if (drop < 4_096) return;
    const last = this.#at(this.#base + drop - 1).event;
    this.#keptFrom = { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 };
    this.#events.splice(0, drop);
    this.#base += drop;
  }

  /**
   * Hands events `[from, to)` to the indexed subscriptions in step in block `block`, each event to
   * those it concerns, in chain order (a node that takes a part in a job as it reads one event
   * reads the job's next ones); then tells each how far it has read.
   */
  #handIndexed(block: number, from: number, to: number, now: number): void {
    this.#done = to;
    if (from === to) return;
    let handed = 0;
    for (let i = from; i < to; i++) {
      const { event } = this.#at(i);
      for (const sub of this.#audience(event)) {
        if (sub.inStep < block || !sub.active) continue;
        sub.next = i + 1;
        if (!sub.interest!(event)) continue;
        handed++;
        this.stats.handed++;
        this.#trace.add(
          `${now}|chain|${sub.node}|${event.blockNumber}:${event.eventIndex}|${event.name}`,
        );
        sub.handler(event);
      }
    }
    const last = this.#at(to - 1).event;
    const next = { blockNumber: last.blockNumber, eventIndex: last.eventIndex + 1 };
    this.#doneCursor = next;
    // The steady ones are told nothing: they read their position (`#doneCursor`).
    let inStep = this.#steady;
    for (const sub of [...this.#behind]) {
      if (sub.inStep !== block || !sub.active) continue;
      inStep++;
      sub.next = to;
      sub.passed?.(next);
    }
    this.stats.skipped += inStep * (to - from) - handed;
  }

  /** Drops every subscription of `node` (it crashed). */
  drop(node: NodeId): void {
    for (const sub of this.#subs.filter((s) => s.node === node)) this.#unsubscribe(sub);
  }

  close(): void {
    this.ledger.close();
  }
}

function enter(index: Map<string, Set<Subscription>>, key: string, sub: Subscription): void {
  let subs = index.get(key);
  if (subs === undefined) index.set(key, subs = new Set());
  subs.add(sub);
}

function leave(index: Map<string, Set<Subscription>>, key: string, sub: Subscription): void {
  const subs = index.get(key);
  if (subs === undefined) return;
  subs.delete(sub);
  if (subs.size === 0) index.delete(key);
}
