import assert from "node:assert/strict";
import { main } from "../../runtime/ops/submit/main.ts";
import type { Json } from "../_poll.ts";
import { startMarket } from "./_market.ts";

Deno.test("deno task submit: --verifiers and --max-price override what a --spec file says", async () => {
  const market = await startMarket({ workers: [{}] });
  const dir = await Deno.makeTempDir({ prefix: "ciro-submit-test-" });
  try {
    const file = `${dir}/job.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        kind: { type: "builtin", name: "matmul" },
        input: { a: [[1, 0], [0, 1]], b: [[2, 3], [4, 5]] },
        maxPrice: "900",
        requirements: { hardware: "cpu", minStake: "0" },
        verifierCount: 3,
      }),
    );
    const args = ["--node", market.url, "--spec", file, "--job-id"];
    assert.equal(await main([...args, "as-filed"]), 0);
    assert.equal(await main([...args, "overridden", "--verifiers", "1", "--max-price", "7"]), 0);
    const spec = async (id: string) =>
      ((await (await fetch(`${market.url}/jobs/${id}`)).json()) as Json).context.spec;
    const filed = await spec("as-filed");
    assert.equal(filed.verifierCount, 3);
    assert.equal(String(filed.maxPrice), "900");
    const overridden = await spec("overridden");
    assert.equal(overridden.verifierCount, 1);
    assert.equal(String(overridden.maxPrice), "7");
  } finally {
    await market.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
