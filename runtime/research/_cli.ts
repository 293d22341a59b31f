/**
 * Private helper of the research programs: the positional arguments of a program that takes
 * only positionals and `--help`. Prints the usage and exits 0 for `--help`; prints the problem and
 * exits 2 for bad usage (an unknown option, or a count of positionals outside `[min, max]`).
 *
 * @module
 */
import { parseArgs } from "node:util";

/** The positionals of `args`, or an exit with the usage. */
export function positionalsOrExit(
  args: readonly string[],
  usage: string,
  count: { readonly min: number; readonly max: number },
): string[] {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      allowPositionals: true,
      options: { help: { type: "boolean", short: "h" } },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  if (parsed.values.help) {
    console.log(usage);
    Deno.exit(0);
  }
  const positionals = parsed.positionals;
  if (positionals.length < count.min || positionals.length > count.max) {
    console.error(usage);
    Deno.exit(2);
  }
  return positionals;
}
