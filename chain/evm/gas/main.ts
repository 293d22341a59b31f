/**
 * `deno task gas [n...]`: the gas of each lifecycle step and of a whole job with n verifiers on
 * the Solidity contracts (Hardhat's EVM in process). Default n: 0 1 4 7 10.
 *
 * @module
 */
import { measureGas } from "../gas.ts";

if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(
    "Usage: deno task gas [n...]\n\nGas of each lifecycle step and of a whole job with n verifiers (default 0 1 4 7 10).",
  );
  Deno.exit(0);
}
const counts = Deno.args.length > 0
  ? Deno.args.map((a) => Number.parseInt(a, 10))
  : [0, 1, 4, 7, 10];
if (counts.some((n) => !Number.isSafeInteger(n) || n < 0 || n > 64)) {
  console.error("Invalid verifier count: expected integers from 0 to 64");
  Deno.exit(2);
}
const { setup, rows } = await measureGas(counts);
console.log("one-off per node:", Object.entries(setup).map(([k, v]) => `${k} ${v}`).join(", "));
const header = [
  "n",
  "submitJob",
  "assignWorker",
  "submitResult",
  "attestations (2f+1)",
  "release",
  "whole job",
];
console.log(`| ${header.join(" | ")} |`);
console.log(`|${header.map(() => "---:").join("|")}|`);
for (const r of rows) {
  console.log(
    `| ${
      [
        r.verifiers,
        r.submitJob,
        r.assignWorker,
        r.submitResult,
        r.submitAttestations,
        r.releasePayment,
        r.job,
      ].join(" | ")
    } |`,
  );
}
