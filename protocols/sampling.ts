/**
 * Sampled announcements (protocol v2): in a large market a job is announced to a share of the
 * workers that could run it, not to all of them, so that a worker's work grows with the jobs it
 * may take, not with the network.
 *
 * The share is a prefix of a hash. A job announced with `bits = b > 0` goes to the workers whose
 * identity hashes to the same first `b` bits as the job's key (`jobId|attempt`): about 1 in 2^b of
 * them. A worker subscribes, per shard, to the prefixes of its own hash at every depth from 1 to
 * {@link MAX_SAMPLE_BITS}, so it hears exactly the jobs whose sample it falls in. The owner picks
 * `b` from how many capable workers it knows of ({@link sampleBitsFor}: about `bidders` to
 * `2 x bidders` of them fall in a sample); a re-auction (the next attempt) draws a new sample.
 *
 * Who could abuse it: a worker bidding outside its sample (it heard the job on the watch topic,
 * or from a friend) is refused by the owner (`not_sampled`) and scored down, so the owner's load
 * stays bounded; a worker cannot choose its sample for a given job (the job's key is the client's
 * and its attempt's), only grind identities, each of which must be staked. A client gains
 * nothing by grinding its job ids: it picks the winner among its bids anyway.
 *
 * ```ts
 * import { inSample, samplePrefix, sampleBitsFor } from "./sampling.ts";
 *
 * sampleBitsFor(1000); // 6: 1000 / 64 = about 16 workers in each sample (8 bidders aimed at)
 * samplePrefix("job-1|1", 3).length; // 3
 * inSample("12D3KooWworker", "job-1", 1, 0); // true: bits 0 is everyone
 * ```
 *
 * @module
 */
import { createHash } from "node:crypto";

/** The deepest sample: 2^8 = 256 samples per shard, enough for about 2,000 workers at 8 bidders. */
export const MAX_SAMPLE_BITS = 8;

/** How many bidders an owner aims a sample at, by default. */
export const DEFAULT_SAMPLE_BIDDERS = 8;

/** Full-depth prefixes computed lately, by key (an owner checks every bid's worker and job). */
const recent = new Map<string, string>();
const RECENT_KEYS = 8_192;

/** The first `bits` bits of sha-256 of `key`, as a string of `0` and `1`. */
export function samplePrefix(key: string, bits: number): string {
  if (bits <= 0) return "";
  if (bits <= MAX_SAMPLE_BITS) return fullPrefix(key).slice(0, bits);
  return prefixOf(key, bits);
}

/** The first {@link MAX_SAMPLE_BITS} bits of `key`'s hash, kept for {@link RECENT_KEYS} keys. */
function fullPrefix(key: string): string {
  let full = recent.get(key);
  if (full === undefined) {
    full = prefixOf(key, MAX_SAMPLE_BITS);
    if (recent.size >= RECENT_KEYS) recent.delete(recent.keys().next().value!);
    recent.set(key, full);
  }
  return full;
}

function prefixOf(key: string, bits: number): string {
  const digest = createHash("sha256").update(key).digest();
  let prefix = "";
  for (let i = 0; i < bits; i++) prefix += (digest[i >> 3]! >> (7 - (i & 7))) & 1;
  return prefix;
}

/** The key a job's sample is drawn by: a re-auction (the next attempt) draws another one. */
export function jobSampleKey(jobId: string, attempt: number): string {
  return `${jobId}|${attempt}`;
}

/** The prefix of the sample of `jobId`'s attempt `attempt` at `bits`. */
export function jobSamplePrefix(jobId: string, attempt: number, bits: number): string {
  return samplePrefix(jobSampleKey(jobId, attempt), bits);
}

/** Whether `worker` falls in the sample of `jobId`'s attempt `attempt` at `bits` (0: everyone). */
export function inSample(worker: string, jobId: string, attempt: number, bits: number): boolean {
  if (bits <= 0) return true;
  if (bits > MAX_SAMPLE_BITS) {
    return samplePrefix(worker, bits) === jobSamplePrefix(jobId, attempt, bits);
  }
  // The first `bits` of the two full prefixes compared in place (an owner checks every bid).
  const own = fullPrefix(worker);
  const job = fullPrefix(jobSampleKey(jobId, attempt));
  for (let i = 0; i < bits; i++) if (own.charCodeAt(i) !== job.charCodeAt(i)) return false;
  return true;
}

/**
 * How deep to sample a job that `capable` known workers could run, aiming at `bidders` of them:
 * the most bits that leave at least `bidders` workers in a sample on average, 0 (everyone) for a
 * market of fewer than `2 x bidders`, at most {@link MAX_SAMPLE_BITS}.
 */
export function sampleBitsFor(capable: number, bidders = DEFAULT_SAMPLE_BIDDERS): number {
  if (!(capable > 0) || !(bidders > 0)) return 0;
  const bits = Math.floor(Math.log2(capable / bidders));
  return Math.max(0, Math.min(MAX_SAMPLE_BITS, bits));
}
