/**
 * `deno task diagrams`: writes the machines' state diagrams to `docs/`.
 *
 * @module
 */
import { writeDiagrams } from "../diagrams.ts";

if (import.meta.main) {
  for (const path of await writeDiagrams(new URL("../../../docs", import.meta.url).pathname)) {
    console.log(`wrote ${path}`);
  }
}
