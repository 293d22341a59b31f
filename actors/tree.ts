/**
 * The supervisor tree of a node: a root supervisor with three children, `jobs` (one actor per
 * job, each with its bids as XState children), `peers` (one actor per peer) and `services`.
 * The tree routes each stamped envelope to the actor it addresses (`job:<id>`, `peer:<id>`),
 * creating job actors when a job is submitted here or first announced to us, and peer actors
 * when a peer is first seen. Anything else addressed to an unknown actor is rejected with a
 * reason, never thrown.
 *
 * @module
 */
import type { Snapshot } from "xstate";
import { type JobInput, jobMachine } from "../machines/job_machine.ts";
import { DEFAULT_POLICY, type JobPolicy } from "../machines/policies.ts";
import { DEFAULT_PEER_CONFIG, type PeerConfig, peerMachine } from "../machines/peer_machine.ts";
import type { EffectRequest, JobSpec, NodeId, Role } from "../machines/types.ts";
import type { ActorCell, DeliveryOutcome } from "./actor_cell.ts";
import { type RestartIntensity, type SupervisionEvent, Supervisor } from "./supervisor.ts";

/** A stamped event as the tree receives it (see `runtime/inbox.ts`). */
export interface TreeEnvelope {
  readonly seq: number;
  readonly at: number;
  readonly source: string;
  readonly target: string;
  readonly event: { readonly type: string; readonly [key: string]: unknown };
}

/** Options of an {@link ActorTree}. */
export interface ActorTreeOptions {
  readonly self: NodeId;
  readonly roles: readonly Role[];
  readonly now: () => number;
  /** @default {@link DEFAULT_POLICY} */
  readonly policy?: JobPolicy;
  /** @default {@link DEFAULT_PEER_CONFIG} */
  readonly peerConfig?: PeerConfig;
  readonly intensity?: RestartIntensity;
  /** Receives each effect an actor emits, with the actor's id. */
  readonly onEffect: (actorId: string, effect: EffectRequest) => void;
  /** Called when an actor comes back from a snapshot (restart, restore): re-arm its deadlines. */
  readonly onRestored?: (cell: ActorCell) => void;
  readonly onSupervision?: (event: SupervisionEvent) => void;
}

/** Events that create a job actor when it does not exist yet. */
const JOB_CREATORS = new Set(["job.submit", "job.announced"]);

/** The supervisor tree. */
export class ActorTree {
  readonly root: Supervisor;
  readonly jobs: Supervisor;
  readonly peers: Supervisor;
  readonly services: Supervisor;
  readonly #options: ActorTreeOptions;

  constructor(options: ActorTreeOptions) {
    this.#options = options;
    const common = {
      now: options.now,
      ...(options.intensity ? { intensity: options.intensity } : {}),
      onEffect: (cell: ActorCell, effect: EffectRequest) => options.onEffect(cell.id, effect),
      ...(options.onRestored ? { onRestored: options.onRestored } : {}),
      ...(options.onSupervision ? { onSupervision: options.onSupervision } : {}),
    };
    this.root = new Supervisor({ name: "root", ...common });
    this.jobs = new Supervisor({ name: "jobs", parent: this.root, ...common });
    this.peers = new Supervisor({ name: "peers", parent: this.root, ...common });
    this.services = new Supervisor({ name: "services", parent: this.root, ...common });
  }

  /** The supervisor that owns actors addressed like `target`. */
  supervisorOf(target: string): Supervisor | undefined {
    if (target.startsWith("job:")) return this.jobs;
    if (target.startsWith("peer:")) return this.peers;
    if (target.startsWith("service:")) return this.services;
    return undefined;
  }

  /** The live actor addressed by `target`. */
  get(target: string): ActorCell | undefined {
    return this.supervisorOf(target)?.get(target);
  }

  /** Delivers a stamped envelope; creates the addressed actor where the event calls for it. */
  deliver(envelope: TreeEnvelope): DeliveryOutcome {
    const { target, event, at } = envelope;
    const supervisor = this.supervisorOf(target);
    if (supervisor === undefined) {
      return { status: "rejected", reason: `unknown target "${target}"` };
    }
    const delivered = { ...event, at };
    const existing = supervisor.get(target);
    if (supervisor === this.jobs) {
      if (event.type === "job.submit") {
        if (existing !== undefined) {
          return { status: "rejected", reason: `job "${target.slice(4)}" already exists` };
        }
        return this.#createJob(target, envelope, true);
      }
      if (existing === undefined) {
        if (JOB_CREATORS.has(event.type)) {
          if (event["owner"] === this.#options.self) {
            return {
              status: "rejected",
              reason: `announcement of our own job "${target.slice(4)}" that we do not know`,
            };
          }
          return this.#createJob(target, envelope, false);
        }
        return { status: "rejected", reason: `unknown job "${target.slice(4)}"` };
      }
      return supervisor.deliver(target, delivered);
    }
    if (supervisor === this.peers && existing === undefined) {
      const peerId = target.slice(5);
      if (peerId === this.#options.self) {
        return { status: "rejected", reason: "a peer event about this node itself" };
      }
      supervisor.spawn(target, peerMachine, {
        input: { peerId, at, config: this.#options.peerConfig ?? DEFAULT_PEER_CONFIG },
      });
    }
    return supervisor.deliver(target, delivered);
  }

  #createJob(target: string, envelope: TreeEnvelope, owned: boolean): DeliveryOutcome {
    const e = envelope.event as {
      spec?: JobSpec;
      owner?: NodeId;
      attempt?: number;
      bidWindowEndsAt?: number;
      verifierPool?: readonly NodeId[];
      policy?: JobPolicy;
    };
    if (e.spec === undefined) {
      return { status: "rejected", reason: `"${envelope.event.type}" carries no job spec` };
    }
    const input: JobInput = {
      jobId: target.slice(4),
      spec: e.spec,
      owner: owned ? this.#options.self : e.owner ?? "",
      self: this.#options.self,
      roles: this.#options.roles,
      at: envelope.at,
      policy: e.policy ?? this.#options.policy ?? DEFAULT_POLICY,
      verifierPool: e.verifierPool ?? [],
      ...(owned ? {} : { escrowLocked: true, attempt: e.attempt ?? 1 }),
      ...(!owned && e.bidWindowEndsAt !== undefined ? { bidWindowEndsAt: e.bidWindowEndsAt } : {}),
    };
    try {
      this.jobs.spawn(target, jobMachine, { input });
    } catch (error) {
      return { status: "rejected", reason: `cannot create job: ${(error as Error).message}` };
    }
    return { status: "accepted" };
  }

  /** Restores an actor from a persisted snapshot (node restart). */
  restore(target: string, snapshot: Snapshot<unknown>): ActorCell {
    const supervisor = this.supervisorOf(target);
    if (supervisor === undefined) {
      throw new RangeError(`Cannot restore "${target}": unknown target kind`);
    }
    const logic = supervisor === this.jobs ? jobMachine : peerMachine;
    return supervisor.spawn(target, logic, { snapshot });
  }

  /** Stops every actor. */
  stop(): void {
    this.root.stopAll();
  }
}
