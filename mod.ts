/**
 * CIRO engine: an actor-based orchestration engine for a decentralized compute marketplace.
 * Every job, bid and peer is an XState v5 machine in a supervisor tree; every outside input
 * (network messages, chain events, deadlines, operator commands, effect outcomes) enters one
 * inbox, is stamped and journaled, and is then delivered, so each lifecycle is explicit,
 * recorded and replayable.
 *
 * Embed a market in one process: a client, a worker and a verifier on the in-process network,
 * settling on the embedded local ledger.
 *
 * ```ts
 * import {
 *   commitmentOf,
 *   createNode,
 *   InProcessNetwork,
 *   type JobSpec,
 *   LocalLedger,
 * } from "./mod.ts";
 *
 * const ledger = LocalLedger.open(":memory:");
 * const network = new InProcessNetwork();
 * const node = (id: string, roles: ("client" | "worker" | "verifier")[]) =>
 *   createNode({
 *     id,
 *     roles,
 *     network: network.join(id),
 *     chain: ledger.as(id),
 *     ...(roles.includes("worker") ? { worker: { hardware: "cpu" as const, stake: 100n } } : {}),
 *   });
 * const client = node("client", ["client"]);
 * const nodes = [client, node("w1", ["worker"]), node("v1", ["verifier"])];
 * for (const n of nodes) await n.start();
 * for (const n of nodes) await n.announceCapabilities();
 *
 * const input = { a: [[1, 2], [3, 4]], b: [[5, 6], [7, 8]] };
 * const spec: JobSpec = {
 *   kind: { type: "builtin", name: "matmul" },
 *   input,
 *   inputCommitment: commitmentOf(input),
 *   requirements: { hardware: "cpu", minStake: 10n },
 *   maxPrice: 100n,
 *   bidWindowMs: 50,
 *   executionMs: 2_000,
 *   verificationMs: 2_000,
 *   maxAttempts: 2,
 *   verifierCount: 1,
 * };
 * const jobId = client.submitJob({ spec });
 * const done = await new Promise<string>((resolve) =>
 *   client.observe((o) => o.type === "job.finished" && o.jobId === jobId && resolve(o.state))
 * );
 * console.log(jobId, done); // "settled"
 * for (const n of nodes) await n.stop();
 * ledger.close();
 * ```
 *
 * @module
 */
export * from "./machines/types.ts";
export * from "./machines/policies.ts";
export * from "./machines/job_machine.ts";
export * from "./machines/bid_machine.ts";
export * from "./machines/peer_machine.ts";
export * from "./actors/actor_cell.ts";
export * from "./actors/supervisor.ts";
export * from "./actors/tree.ts";
export * from "./chain/port.ts";
export { chainEventToActorEvents } from "./chain/translate.ts";
export * from "./chain/local_ledger.ts";
export * from "./protocols/messages.ts";
export * from "./protocols/network_port.ts";
export { effectToWire, RuleViolation, wireToActorEvents } from "./protocols/translate.ts";
export * from "./protocols/in_process_network.ts";
export * from "./runtime/kernel/clock.ts";
export * from "./runtime/kernel/inbox.ts";
export * from "./runtime/compute/executor.ts";
export * from "./runtime/compute/verifier.ts";
export * from "./runtime/kernel/node.ts";
export * from "./runtime/kernel/options.ts";
export * from "./machines/address.ts";
export * from "./machines/bid_decision.ts";
export * from "./runtime/research/phases.ts";
export * from "./runtime/sdk/client.ts";
export * from "./runtime/sdk/proof.ts";
export * from "./runtime/compute/model_store.ts";
export { LazyOnnxExecutor, toleranceVerifier } from "./runtime/compute/onnx_lazy.ts";
// Types only: the ONNX tensor encoding the SDK takes (importing them loads no native library).
export type {
  OnnxJobInput,
  OnnxJobOutput,
  OnnxTensorJson,
  ToleranceOptions,
} from "./runtime/compute/mod.ts";
export {
  type DurableNode,
  type DurableNodeOptions,
  openDurableNode,
  type RecoveryDivergence,
  RecoveryDivergenceError,
} from "./runtime/durability/recovery.ts";
export {
  parseRecording,
  readRecording,
  type Recording,
  RecordingError,
  type RecordingHeader,
  RecordingWriter,
} from "./runtime/durability/recording.ts";
export {
  formatReplay,
  replay,
  type ReplayReport,
  ReplayVersionError,
} from "./runtime/durability/replay.ts";
export {
  createLibp2pHost,
  type Libp2pHost,
  type Libp2pHostOptions,
} from "./protocols/libp2p_host.ts";
export { loadOrCreateIdentity } from "./protocols/identity.ts";
export { StarknetChain } from "./chain/starknet_adapter.ts";
export { configureLogging, type LogFormat, type LoggingOptions } from "./runtime/kernel/log.ts";
