/**
 * Compiles the Solidity contracts of `chain/evm/contracts/` with `npm:solc` (the official
 * compiler as WebAssembly) into artifacts: for each contract its ABI and creation bytecode.
 * `deno task contracts` writes them to `chain/evm/artifacts/`; `compile_test.ts` fails when the
 * checked-in artifacts differ from a fresh compilation.
 *
 * @module
 */
import solc from "solc";

/** The compiler settings every artifact is built with, recorded in each artifact. */
export const COMPILER_SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  viaIR: true,
  evmVersion: "cancun",
} as const;

/** The contracts compiled, in deployment order. */
export const CONTRACT_NAMES = ["CiroToken", "CdcPool", "JobManager"] as const;

/** One of {@link CONTRACT_NAMES}. */
export type ContractName = typeof CONTRACT_NAMES[number];

/** A compiled contract: what deployment and calls need. */
export interface Artifact {
  readonly contractName: ContractName;
  readonly compiler: string;
  readonly settings: typeof COMPILER_SETTINGS;
  readonly abi: readonly unknown[];
  readonly bytecode: `0x${string}`;
}

/** Compilation failed; `message` lists the compiler's errors. */
export class ContractCompileError extends Error {
  override readonly name = "ContractCompileError";
  readonly code = "compile_failed";
}

const CONTRACTS_DIR = new URL("./contracts/", import.meta.url);

interface SolcOutput {
  errors?: { severity: string; formattedMessage: string }[];
  contracts?: Record<
    string,
    Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>
  >;
}

/** Compiles every `.sol` file under `chain/evm/contracts/` and returns the artifacts by name. */
export async function compileContracts(): Promise<
  Record<ContractName, Artifact>
> {
  const sources: Record<string, { content: string }> = {};
  for await (const entry of Deno.readDir(CONTRACTS_DIR)) {
    if (entry.isFile && entry.name.endsWith(".sol")) {
      sources[entry.name] = {
        content: await Deno.readTextFile(new URL(entry.name, CONTRACTS_DIR)),
      };
    }
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      ...COMPILER_SETTINGS,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  if (errors.length > 0) {
    throw new ContractCompileError(
      `Cannot compile the contracts: ${errors.map((e) => e.formattedMessage).join("\n")}`,
    );
  }
  const compiler = `solc ${solc.version()}`;
  const artifacts = {} as Record<ContractName, Artifact>;
  for (const contractName of CONTRACT_NAMES) {
    const compiled = output.contracts?.[`${contractName}.sol`]?.[contractName];
    if (compiled === undefined) {
      throw new ContractCompileError(
        `Cannot compile the contracts: ${contractName} is missing`,
      );
    }
    artifacts[contractName] = {
      contractName,
      compiler,
      settings: COMPILER_SETTINGS,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
    };
  }
  return artifacts;
}

/** The text an artifact file holds: JSON, two-space indented, as `deno fmt` leaves it. */
export function artifactText(artifact: Artifact): string {
  return `${JSON.stringify(artifact, null, 2)}\n`;
}

/** Where {@link ContractName}'s artifact is checked in. */
export function artifactUrl(name: ContractName): URL {
  return new URL(`./artifacts/${name}.json`, import.meta.url);
}
