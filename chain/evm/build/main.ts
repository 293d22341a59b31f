/**
 * `deno task contracts`: compiles the Solidity contracts and writes `chain/evm/artifacts/`.
 *
 * @module
 */
import { artifactText, artifactUrl, compileContracts, CONTRACT_NAMES } from "../compile.ts";

if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
  console.log(
    "Usage: deno task contracts\n\nCompiles chain/evm/contracts/*.sol with npm:solc into chain/evm/artifacts/.",
  );
  Deno.exit(0);
}
if (Deno.args.length > 0) {
  console.error(`Unexpected argument "${Deno.args[0]}"\n(add --help for usage)`);
  Deno.exit(2);
}
const started = performance.now();
const artifacts = await compileContracts();
await Deno.mkdir(new URL("../artifacts/", import.meta.url), {
  recursive: true,
});
for (const name of CONTRACT_NAMES) {
  const artifact = artifacts[name];
  await Deno.writeTextFile(artifactUrl(name), artifactText(artifact));
  console.log(
    `${name}: ${(artifact.bytecode.length - 2) / 2} bytes of creation code`,
  );
}
console.log(
  `compiled with ${artifacts.JobManager.compiler} in ${Math.round(performance.now() - started)} ms`,
);
