/**
 * `deno task diagrams`: writes the machines' state diagrams to `docs/`.
 *
 * @module
 */
import { writeDiagrams } from "../diagrams.ts";

const USAGE = `Usage: deno task diagrams

Writes the machines' state diagrams (Mermaid) to docs/. Takes no arguments.`;

if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (Deno.args.length > 0) {
    console.error(`Unexpected argument "${Deno.args[0]}"\n(add --help for usage)`);
    Deno.exit(2);
  }
  for (const path of await writeDiagrams(new URL("../../../docs", import.meta.url).pathname)) {
    console.log(`wrote ${path}`);
  }
}
