/**
 * Effect dispatch: each effect request an actor emits goes to the port that does it (timers,
 * the network, the chain, the executor, the verifier, the worker's agent), and its outcome comes
 * back through the inbox as an event. Every effect carries the id the journal knows it by
 * (`<seq>.<n>`): an outcome event names it, and an effect that ends without one (a publish, a
 * transaction that went through) is closed in the journal when it ends, so recovery sends again
 * exactly the effects that were still open at a crash, read from the journal.
 *
 * @module
 */
import type { ActorTree } from "../../actors/tree.ts";
import { jobContextOf } from "../../actors/tree.ts";
import type { ChainError, ChainPort } from "../../chain/port.ts";
import { jobAddress, peerAddress } from "../../machines/address.ts";
import type { BidRecord } from "../../machines/job_machine.ts";
import type { EffectRequest, JobSpec, NodeId } from "../../machines/types.ts";
import {
  announcementTopicsOf,
  encodeMessage,
  type Topic,
  TOPICS,
} from "../../protocols/messages.ts";
import { PayloadHashMismatchError } from "../../protocols/payload_errors.ts";
import { specHashOf } from "../../protocols/spec_hash.ts";
import { effectToWire } from "../../protocols/translate.ts";
import {
  commitmentOf,
  type ExecutorPort,
  fetchModel,
  type ModelStore,
  type VerifierPort,
  type WorkerPool,
} from "../compute/mod.ts";
import type { EffectRecord, InboundEvent, Source } from "./inbox.ts";
import { WIRE_PENALTY } from "./ingress.ts";
import type { NodeOptions } from "./options.ts";
import type { Timers } from "./timers.ts";
import { systemClock } from "./clock.ts";
import type { ConsiderEffect, WorkerAgent } from "./worker_agent.ts";

/** Effects that do work outside the node and are sent again after a crash while still open. */
export function isResumable(effect: { readonly type: string }): boolean {
  return effect.type.startsWith("chain.") || effect.type.startsWith("net.") ||
    effect.type === "exec.run" || effect.type === "verify.run" ||
    effect.type === "worker.consider";
}

/**
 * The waits before sending a chosen verifier its assignment again when a send fails (ms): the
 * assignment is how it learns the job (issue 16 item 2), and a loaded peer may not take a stream
 * at once.
 */
export const ASSIGNMENT_RETRY_MS: readonly number[] = [2_000, 5_000];

/**
 * The waits before sending again a transaction the chain refused as early (`deadline_not_passed`:
 * its clock behind this node's), ms; then the refusal is the effect's outcome.
 */
export const DEADLINE_RETRY_MS: readonly number[] = [1_000, 2_000, 4_000, 8_000];

/** Codes that, for a transaction sent again after a crash, mean the chain is already past it. */
const ALREADY_DONE: readonly string[] = ["duplicate_job", "invalid_state", "duplicate_attestation"];

/**
 * Signs this node's attestation with its chain account's key and submits it; an account that has
 * not registered its key yet registers it first (once).
 */
async function attestOnChain(
  chain: ChainPort,
  effect: Extract<EffectRequest, { type: "chain.attest" }>,
  o: { signal: AbortSignal },
): Promise<void> {
  const { signAttestation, submitAttestations, registerKey, accountPublicKey } = chain;
  if (!signAttestation || !submitAttestations || !registerKey || !accountPublicKey) {
    throw new TypeError("Cannot attest on chain: this chain adapter has no attestation calls");
  }
  const signed = await chain.signAttestation!({
    jobId: effect.jobId,
    attempt: effect.attempt,
    subject: effect.subject,
    verdict: effect.verdict,
  }, o);
  try {
    await chain.submitAttestations!({ attestations: [signed] }, o);
  } catch (error) {
    if ((error as Partial<ChainError>).code !== "no_key") throw error;
    // Another attestation of this node may have registered the key meanwhile: that is fine.
    await chain.registerKey!({ publicKey: await chain.accountPublicKey!(o) }, o).catch(
      (registration: Partial<ChainError>) => {
        if (registration.code !== "invalid_state") throw registration;
      },
    );
    await chain.submitAttestations!({ attestations: [signed] }, o);
  }
}

/** How a transaction sent again after a crash went. */
export type ResendOutcome = "sent" | "already_done" | "failed" | "aborted";

/** Options of an {@link EffectDispatcher}. */
export interface EffectDispatcherOptions {
  readonly self: NodeId;
  readonly options: NodeOptions;
  readonly tree: ActorTree;
  readonly timers: Timers;
  readonly executor: ExecutorPort;
  readonly verifier: VerifierPort;
  readonly pool: WorkerPool;
  readonly agent: WorkerAgent | undefined;
  /** Peers that advertised a model (fetch candidates). */
  readonly advertisersOf: (hash: string) => NodeId[];
  /**
   * How deep to sample the announcement of `jobId`'s attempt `attempt` (`protocols/sampling.ts`);
   * absent: 0, every capable worker.
   */
  readonly sampleBits?: (jobId: string, attempt: number, spec: JobSpec) => number;
  /** A model fetched: it is held now. */
  readonly onModelFetched: (hash: string) => void;
  /** Hands an outcome to the inbox; `effect` is the id of the effect it is the outcome of. */
  readonly submit: (source: Source, target: string, event: InboundEvent, effect?: string) => void;
  /** Told an effect of `actor` ended without an outcome event of its own (the journal closes it). */
  readonly closed: (id: string, actor: string) => void;
  /** Told an effect failed (logged and observed). */
  readonly failed: (actor: string, effect: string, message: string) => void;
  readonly log: {
    info(message: string, properties?: Record<string, unknown>): void;
    warn(message: string, properties?: Record<string, unknown>): void;
  };
}

/** Sends each effect to its port. */
export class EffectDispatcher {
  readonly #o: EffectDispatcherOptions;
  readonly #inflight = new Set<Promise<unknown>>();
  /** Model fetches under way, by hash (concurrent jobs on one model fetch it once). */
  readonly #fetching = new Map<string, Promise<void>>();
  #abort = new AbortController();
  dispatched = 0;
  failures = 0;

  constructor(options: EffectDispatcherOptions) {
    this.#o = options;
  }

  /** Aborts the work in flight and waits for it. */
  async stop(reason: string): Promise<void> {
    this.#abort.abort(new Error(reason));
    await Promise.allSettled([...this.#inflight]);
    this.#abort = new AbortController();
  }

  /** Resolves when no effect is in flight. */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
  }

  /** The signal that aborts work in flight when the node stops. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** Does `record.effect` for `record.actor`. */
  dispatch(
    record: { readonly id?: string; readonly actor: string; readonly effect: EffectRequest },
  ): void {
    this.dispatched++;
    const { actor: actorId, effect, id } = record;
    const { timers, log } = this.#o;
    switch (effect.type) {
      case "timer.arm":
        return timers.arm(actorId, effect.key, effect.at);
      case "timer.cancel":
        return timers.cancel(actorId, effect.key);
      case "net.announce":
      case "net.assignment":
      case "net.result":
      case "net.attestation": {
        const out = effectToWire(effect);
        if (out === undefined) return this.#close(id, actorId);
        if (effect.type === "net.announce") {
          // Gossiped on the shard of what the job needs (only workers that can run it hear it),
          // in a large market to a sample of them, and then on the shard's watch topic too.
          const bits = this.#o.sampleBits?.(effect.jobId, effect.attempt, effect.spec) ?? 0;
          const message = bits > 0 ? { ...out.message, sample: bits } : out.message;
          const data = encodeMessage(out.topic, message as never);
          const topics = announcementTopicsOf(effect.spec, effect.jobId, effect.attempt, bits);
          const { network } = this.#o.options;
          return this.#track(
            actorId,
            effect.type,
            id,
            Promise.all(topics.map((t) => network.publish(t, data, { signal: this.#abort.signal })))
              .then(() => {}),
          );
        }
        if (effect.type === "net.assignment") return this.#sendAssignment(actorId, effect, id);
        const data = encodeMessage(out.topic, out.message as never);
        return this.#track(
          actorId,
          effect.type,
          id,
          this.#sendAll(actorId, effect.type, out.topic, data, this.#audience(actorId, effect)),
        );
      }
      case "worker.consider":
        if (this.#o.agent === undefined) return this.#close(id, actorId);
        return this.#o.agent.consider(actorId, effect as ConsiderEffect, id);
      case "exec.run":
        return this.#track(actorId, effect.type, undefined, this.#execute(actorId, effect, id));
      case "verify.run":
        return this.#track(actorId, effect.type, undefined, this.#verify(actorId, effect, id));
      case "peer.withdraw_bids":
        return this.#withdrawBidsOf(effect.peer);
      case "peer.disconnect":
        // The peer's actor banned it: the port disconnects it and refuses it for the ban's time.
        log.warn("Banning peer {peer}: {reason}", { peer: effect.peer, reason: effect.reason });
        this.#o.options.network.ban?.(effect.peer, effect.reason, this.#o.options.peer?.banMs);
        return;
      case "log.reject":
        log.info("{actor} rejected {event}: {reason}", {
          actor: effect.actor,
          event: effect.event,
          reason: effect.reason,
        });
        return;
      default:
        return this.#track(
          actorId,
          effect.type,
          undefined,
          this.chainCall(actorId, effect, id, { resent: false }),
        );
    }
  }

  /** Sends a worker's bid to the job's owner (the agent's answer to `worker.consider`). */
  publishBid(actorId: string, bid: object, id: string | undefined): void {
    const cell = this.#o.tree.get(actorId);
    const owner = cell === undefined ? undefined : jobContextOf(cell).owner;
    // Gossip never reached its sender either: a node does not bid to itself.
    if (owner === undefined || owner === this.#o.self) return this.#close(id, actorId);
    this.#track(
      actorId,
      "bid.submit",
      id,
      this.#sendAll(
        actorId,
        "bid.submit",
        TOPICS.bids,
        encodeMessage(TOPICS.bids, { type: "bid.submit", ...bid } as never),
        [owner],
      ),
    );
  }

  /**
   * Who hears a job's message (protocol v2: each message has its audience, the chain is the
   * shared record). An assignment: the winner and the chosen verifiers (a hint: the chain's
   * assignment event is what they act on, and what frees a losing bidder's slot). A result: the
   * owner and the chosen verifiers. An attestation: the owner (the chain counts it under chain
   * settlement). Never this node itself.
   */
  #audience(actorId: string, effect: EffectRequest): NodeId[] {
    const cell = this.#o.tree.get(actorId);
    if (cell === undefined) return [];
    const context = jobContextOf(cell);
    const to = new Set<NodeId>();
    switch (effect.type) {
      case "net.assignment":
        to.add(effect.worker);
        for (const v of effect.verifiers) to.add(v);
        break;
      case "net.result":
        to.add(context.owner);
        for (const v of context.verifiers) to.add(v);
        break;
      case "net.attestation":
        to.add(context.owner);
        break;
    }
    to.delete(this.#o.self);
    return [...to].sort();
  }

  /**
   * Sends the owner's assignment (issue 16 item 2): to the winner as it is (it bid: it holds the
   * spec), to each chosen verifier with the job's attempt and spec, all a verifier that heard no
   * announcement needs to re-run the job once the chain names it (it checks the spec against the
   * chain's escrow first: `assignment_hints.ts`).
   */
  #sendAssignment(
    actorId: string,
    effect: Extract<EffectRequest, { type: "net.assignment" }>,
    id: string | undefined,
  ): void {
    const cell = this.#o.tree.get(actorId);
    const out = effectToWire(effect);
    if (cell === undefined || out?.topic !== TOPICS.assignments) return this.#close(id, actorId);
    const context = jobContextOf(cell);
    const verifiers = this.#audience(actorId, effect).filter((p) => p !== effect.worker);
    const plain = encodeMessage(TOPICS.assignments, out.message);
    const withSpec = encodeMessage(TOPICS.assignments, {
      ...out.message,
      attempt: context.attempt,
      spec: context.spec as NonNullable<typeof out.message.spec>,
    });
    const groups = [
      { data: plain, peers: effect.worker === this.#o.self ? [] : [effect.worker] },
      { data: withSpec, peers: verifiers },
    ].filter((g) => g.peers.length > 0);
    // As one message to all: it fails only when no recipient took it. A verifier's copy is sent
    // again if it could not be (ASSIGNMENT_RETRY_MS).
    const sent = Promise.allSettled(
      groups.map((g) =>
        this.#sendAll(actorId, effect.type, TOPICS.assignments, g.data, g.peers, {
          retryMs: g.data === withSpec ? ASSIGNMENT_RETRY_MS : [],
        })
      ),
    ).then((outcomes) => {
      const taken = outcomes.some((o) => o.status === "fulfilled");
      if (!taken && outcomes.length > 0) throw (outcomes[0] as PromiseRejectedResult).reason;
    });
    this.#track(actorId, effect.type, id, sent);
  }

  /**
   * Sends `data` on a direct topic to each of `peers`, each again after the waits of `retryMs`
   * while it fails. A peer that cannot be reached is logged; the effect fails only when none
   * could be (a message nobody took is lost).
   */
  async #sendAll(
    actor: string,
    effect: string,
    topic: Topic,
    data: Uint8Array,
    peers: readonly NodeId[],
    o: { retryMs?: readonly number[] } = {},
  ): Promise<void> {
    if (peers.length === 0) return;
    const network = this.#o.options.network;
    const signal = this.#abort.signal;
    const send = async (peer: NodeId): Promise<void> => {
      for (const wait of [...(o.retryMs ?? []), undefined]) {
        try {
          return await network.send(peer, topic, data, { signal });
        } catch (error) {
          if (wait === undefined || signal.aborted) throw error;
          this.#o.log.info(
            "{effect} of {actor} did not reach {peer}, again in {wait} ms: {message}",
            {
              effect,
              actor,
              peer,
              wait,
              message: (error as Error).message,
            },
          );
          await this.#wait(wait);
        }
      }
    };
    const outcomes = await Promise.allSettled(peers.map(send));
    const failed = outcomes.flatMap((o, i) =>
      o.status === "rejected" ? [{ peer: peers[i]!, o }] : []
    );
    if (failed.length === 0 || signal.aborted) return;
    for (const { peer, o } of failed) {
      this.#o.log.info("{effect} of {actor} did not reach {peer}: {message}", {
        effect,
        actor,
        peer,
        message: (o as PromiseRejectedResult).reason?.message ?? String(o),
      });
    }
    if (failed.length === peers.length) {
      throw new Error(
        `No recipient took it: ${failed.map((f) => f.peer).join(", ")}: ${
          (failed[0]!.o as PromiseRejectedResult).reason?.message
        }`,
      );
    }
  }

  #close(id: string | undefined, actor: string): void {
    if (id !== undefined) this.#o.closed(id, actor);
  }

  /** Tracks `work`; when it resolves, effect `closeId` (if any) is closed. */
  #track(actor: string, effect: string, closeId: string | undefined, work: Promise<unknown>): void {
    // One promise, not a `then` and a `finally` (several effects a job).
    const p: Promise<void> = work.then(() => {
      this.#inflight.delete(p);
      this.#close(closeId, actor);
    }, (error: unknown) => {
      this.#inflight.delete(p);
      if (this.#abort.signal.aborted) return;
      this.failures++;
      this.#o.failed(actor, effect, error instanceof Error ? error.message : String(error));
    });
    this.#inflight.add(p);
  }

  /**
   * One transaction of `effect` on `chain`: the port's promise itself (no async frame of its own:
   * four a job on a client); what breaks here throws at once, into the caller's `try`.
   */
  #transact(
    actorId: string,
    effect: EffectRequest,
    chain: ChainPort,
    o: { readonly signal: AbortSignal },
  ): Promise<unknown> {
    switch (effect.type) {
      case "chain.escrow.lock": {
        const spec = effect.spec;
        return chain.submitJob({
          jobId: effect.jobId,
          amount: effect.amount,
          minStake: spec.requirements.minStake,
          modelHash: spec.kind.type === "onnx" ? spec.kind.modelHash : "0".repeat(64),
          inputCommitment: spec.inputCommitment,
          // A chain-decided job's escrow commits to its whole spec: what its verifiers check.
          ...(effect.terms === undefined ? {} : { ...effect.terms, specHash: specHashOf(spec) }),
        }, o);
      }
      case "chain.assign":
        return chain.assignWorker({
          jobId: effect.jobId,
          worker: effect.worker,
          price: effect.price,
          verifiers: effect.verifiers,
        }, o);
      case "chain.assignment.revoke":
        return chain.revokeAssignment({ jobId: effect.jobId, worker: effect.worker }, o);
      case "chain.result.submit":
        return chain.submitResult({ jobId: effect.jobId, commitment: effect.commitment }, o);
      case "chain.verification.record":
        return chain.recordVerification({ jobId: effect.jobId, accepted: effect.accepted }, o);
      case "chain.release":
        return chain.releasePayment({ jobId: effect.jobId }, o);
      case "chain.attest":
        return attestOnChain(chain, effect, o);
      case "chain.failure.report":
        if (!chain.reportFailure) {
          throw new TypeError("Cannot report a failure: this chain adapter has no reportFailure");
        }
        return chain.reportFailure({ jobId: effect.jobId, reason: effect.reason }, o);
      case "chain.refund":
        return chain.refund({ jobId: effect.jobId, reason: effect.reason }, o);
      case "chain.slash":
        return chain.slash(
          { jobId: effect.jobId, worker: effect.worker, reason: effect.reason },
          o,
        );
      default:
        throw new TypeError(`Unknown effect "${effect.type}" from "${actorId}"`);
    }
  }

  /**
   * Waits `ms` on the node's clock; ends early when the node stops (the node's signal lives as
   * long as the node: its listener goes with the wait).
   */
  #wait(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    const clock = this.#o.options.clock ?? systemClock;
    return new Promise<void>((resolve) => {
      const abort = () => {
        clock.clearTimeout(timer);
        resolve();
      };
      const timer = clock.setTimeout(() => {
        signal.removeEventListener("abort", abort);
        resolve();
      }, ms);
      signal.addEventListener("abort", abort, { once: true });
    });
  }

  /**
   * Sends one transaction. Success closes the effect (its chain event follows through the
   * subscription); a refusal comes back as `chain.tx.failed`, the effect's outcome. For a
   * transaction sent again after a crash (`resent`), a refusal meaning the chain is already past
   * it (`duplicate_job`, `invalid_state`: it landed, its event is on its way) closes it quietly:
   * a `chain.tx.failed` would fail a job whose transaction landed.
   */
  async chainCall(
    actorId: string,
    effect: EffectRequest,
    id: string | undefined,
    options: { resent: boolean },
  ): Promise<ResendOutcome> {
    const chain: ChainPort = this.#o.options.chain;
    const signal = this.#abort.signal;
    const o = { signal };
    try {
      // A deadline the chain judges by its own clock, which may lag this node's (an EVM block's
      // timestamp, another machine's ledger): refused as not passed yet, sent again a while later.
      for (let refused = 0;; refused++) {
        try {
          await this.#transact(actorId, effect, chain, o);
          break;
        } catch (error) {
          const wait = DEADLINE_RETRY_MS[refused];
          if (
            wait === undefined || signal.aborted ||
            (error as Partial<ChainError>).code !== "deadline_not_passed"
          ) throw error;
          this.#o.log.info("{effect} of {actor} is early for the chain, again in {wait} ms", {
            effect: effect.type,
            actor: actorId,
            wait,
          });
          await this.#wait(wait);
          if (signal.aborted) throw error;
        }
      }
      this.#close(id, actorId);
      return "sent";
    } catch (error) {
      if (signal.aborted) return "aborted";
      const e = error as Partial<ChainError>;
      const code = e.name === "ChainError" && e.code ? e.code : "rpc_error";
      if (options.resent && ALREADY_DONE.includes(code)) {
        this.#o.log.info("Resent {effect} of {actor} was already done on chain: {message}", {
          effect: effect.type,
          actor: actorId,
          message: e.message ?? String(error),
        });
        this.#close(id, actorId);
        return "already_done";
      }
      this.#o.submit("effect", actorId, {
        type: "chain.tx.failed",
        request: effect.type,
        code,
        message: e.message ?? String(error),
      }, id);
      throw error;
    }
  }

  /** Sends again a transaction that was open at a crash (after the chain caught up). */
  resend(record: EffectRecord): Promise<ResendOutcome> {
    this.dispatched++;
    const work = this.chainCall(record.actor, record.effect as EffectRequest, record.id, {
      resent: true,
    });
    this.#track(record.actor, record.effect.type, undefined, work);
    return work.catch(() => "failed" as const);
  }

  async #execute(
    actorId: string,
    effect: Extract<EffectRequest, { type: "exec.run" }>,
    id: string | undefined,
  ): Promise<void> {
    const fault = this.#o.options.worker?.fault ?? "none";
    if (fault === "silent") return;
    try {
      await this.#ensureModel(actorId, effect.spec);
      const result = await this.#o.pool.run(
        (signal) => this.#o.executor.execute(effect.spec, effect.spec.input, { signal }),
        { signal: this.#abort.signal, timeoutMs: effect.spec.executionMs },
      );
      let { output, commitment } = result;
      if (fault === "wrong_result") {
        output = { corrupted: output };
        commitment = commitmentOf(output);
      }
      this.#o.submit(
        "effect",
        actorId,
        { type: "job.execution.completed", commitment, output },
        id,
      );
    } catch (error) {
      if (this.#abort.signal.aborted) throw error;
      this.#o.submit(
        "effect",
        actorId,
        { type: "job.execution.failed", error: (error as Error).message },
        id,
      );
      throw error;
    }
  }

  async #verify(
    actorId: string,
    effect: Extract<EffectRequest, { type: "verify.run" }>,
    id: string | undefined,
  ): Promise<void> {
    const fault = this.#o.options.verifierFault ?? "none";
    const claimed = { commitment: effect.commitment, output: effect.output };
    if (fault === "none") await this.#ensureModel(actorId, effect.spec);
    const attestation = fault === "always_valid"
      ? { verdict: "valid" as const, commitment: effect.commitment }
      : fault === "always_invalid"
      ? { verdict: "invalid" as const, commitment: "0".repeat(64) }
      : await this.#o.pool.run(
        (signal) => this.#o.verifier.verify(effect.spec, effect.spec.input, claimed, { signal }),
        // Never refused for a full queue: the chain chose this node, and a verifier that does
        // not attest fails the job's quorum. It waits at most the verification deadline.
        { signal: this.#abort.signal, timeoutMs: effect.spec.verificationMs, pastLimit: true },
      );
    this.#o.submit("effect", actorId, {
      type: "job.verification.completed",
      verdict: attestation.verdict,
      commitment: attestation.commitment,
    }, id);
  }

  /**
   * Makes sure this node holds the model of an ONNX job, fetching it by hash when missing: from
   * peers that advertised it, then the job's owner, then its worker. A peer whose bytes do not
   * hash to the model is penalised and the next one is tried; nothing is stored from it.
   */
  async #ensureModel(actorId: string, spec: JobSpec): Promise<void> {
    const models: ModelStore | undefined = this.#o.options.models;
    if (spec.kind.type !== "onnx" || models === undefined) return;
    const hash = spec.kind.modelHash;
    const signal = this.#abort.signal;
    if (await models.has(hash, { signal })) return;
    const running = this.#fetching.get(hash);
    if (running) return await running;
    const cell = this.#o.tree.get(actorId);
    const context = cell === undefined ? undefined : jobContextOf(cell);
    const candidates = [
      ...new Set([...this.#o.advertisersOf(hash), context?.owner, context?.winner?.worker]),
    ].filter((p): p is NodeId => p !== undefined && p !== this.#o.self);
    const fetch = (async () => {
      const failures: string[] = [];
      for (const peer of candidates) {
        try {
          await fetchModel(this.#o.options.network, peer, hash, {
            models,
            signal: AbortSignal.any([signal, AbortSignal.timeout(60_000)]),
          });
          this.#o.onModelFetched(hash);
          this.#o.log.info("Fetched model {hash} from {peer}", { hash, peer });
          return;
        } catch (error) {
          signal.throwIfAborted();
          const message = (error as Error).message;
          failures.push(`${peer}: ${message}`);
          this.#o.log.warn("Cannot fetch model {hash} from {peer}: {message}", {
            hash,
            peer,
            message,
          });
          if (error instanceof PayloadHashMismatchError) {
            this.#o.submit("network", peerAddress(peer), {
              type: "peer.scored",
              delta: WIRE_PENALTY,
              reason: message,
            });
          }
        }
      }
      throw new Error(
        `Model ${hash} is not held here and no peer served it (${
          failures.length === 0 ? "no peer to ask" : failures.join("; ")
        })`,
      );
    })();
    this.#fetching.set(hash, fetch);
    try {
      await fetch;
    } finally {
      this.#fetching.delete(hash);
    }
  }

  /** A peer was banned: its open bids on the jobs this node follows are withdrawn. */
  #withdrawBidsOf(peer: NodeId): void {
    for (const cell of this.#o.tree.jobs.cells()) {
      if (cell.done) continue;
      const context = jobContextOf(cell);
      for (const bid of Object.values(context.bids) as BidRecord[]) {
        if (bid.worker === peer && bid.status === "open") {
          this.#o.submit("system", jobAddress(context.jobId), {
            type: "bid.withdrawn",
            bidId: bid.bidId,
            worker: peer,
          });
        }
      }
    }
  }
}
