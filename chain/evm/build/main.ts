/**
 * `deno task contracts`: compiles the Solidity contracts and writes `chain/evm/artifacts/`.
 *
 * @module
 */
import { artifactText, artifactUrl, compileContracts, CONTRACT_NAMES } from "../compile.ts";

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
