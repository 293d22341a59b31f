import assert from "node:assert/strict";
import { artifactText, artifactUrl, compileContracts, CONTRACT_NAMES } from "./compile.ts";

Deno.test("compileContracts() matches the checked-in artifacts (run `deno task contracts`)", async () => {
  const artifacts = await compileContracts();
  for (const name of CONTRACT_NAMES) {
    const stored = await Deno.readTextFile(artifactUrl(name));
    assert.ok(
      stored === artifactText(artifacts[name]),
      `chain/evm/artifacts/${name}.json is stale: run \`deno task contracts\``,
    );
  }
});
