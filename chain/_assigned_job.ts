/**
 * A test set-up the ledger's tests share: job `j1` submitted by `client` for 4 verifiers and
 * assigned to `worker`, with 4 verifiers (`v1`..`v4`) bonded and their attestation keys
 * registered, on any port factory (`as`).
 *
 * @module
 */
import type { ChainPort } from "./port.ts";

/** `j1` assigned to `worker` at `price`, escrowing `amount`, with 4 bonded verifiers. */
export async function assignedJob(
  as: (account: string) => ChainPort,
  terms: { readonly amount: bigint; readonly price: bigint; readonly hash: string },
): Promise<{ verifiers: ChainPort[]; worker: ChainPort; client: ChainPort }> {
  const verifiers: ChainPort[] = [];
  for (const id of ["v1", "v2", "v3", "v4"]) {
    const v = as(id);
    await v.stake({ amount: 100n, role: "verifier" });
    await v.registerKey!({ publicKey: await v.accountPublicKey!() });
    verifiers.push(v);
  }
  const worker = as("worker");
  await worker.stake({ amount: 100n });
  const client = as("client");
  await client.submitJob({
    jobId: "j1",
    amount: terms.amount,
    minStake: 1n,
    modelHash: terms.hash,
    inputCommitment: terms.hash,
    verifierCount: 4,
  });
  await client.assignWorker({ jobId: "j1", worker: "worker", price: terms.price });
  return { verifiers, worker, client };
}
