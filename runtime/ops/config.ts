/**
 * The node's configuration: a JSON file with documented keys, overridden by environment
 * variables (`CIRO_*`), overridden by command-line flags. Precedence: flags > env > file >
 * defaults. Everything is validated with zod; a bad value throws a {@link ConfigError} that
 * names the key and what is wrong, like `Invalid config "worker.priceRatio": must be in (0, 1]`.
 *
 * Relative paths in the file (`dataDir`, `chain.path`, `chain.privateKeyFile`,
 * `chain.deployment`) are resolved against the file's directory; relative paths from flags and env
 * against the working directory.
 *
 * ```ts ignore
 * import { loadConfig } from "./config.ts";
 *
 * const config = await loadConfig({ args: ["--config", "node.json", "--http-port", "8080"] });
 * console.log(config.dataDir, config.roles, config.http.port);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { multiaddr } from "@multiformats/multiaddr";
import { z } from "zod";
import { BID_SELECTION_POLICIES, QUORUM_POLICIES } from "../../machines/policies.ts";
import { DEFAULT_PEER_CONFIG } from "../../machines/peer_machine.ts";
import { DEFAULT_SAMPLE_BIDDERS, MAX_SAMPLE_BITS } from "../../protocols/sampling.ts";
import { DEFAULT_VERIFIER_STAKE, WORKER_DEFAULTS } from "../kernel/mod.ts";

/** A configuration value is missing, malformed or out of range. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The dotted key at fault (`worker.priceRatio`), or `""` for the whole file. */
  readonly key: string;
  constructor(key: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.key = key;
  }
}

const LOOPBACK_HOSTS = ["127.0.0.1", "::1", "localhost"];
const MAX_MS = 2 ** 31 - 1;

const ms = (min = 0) =>
  z.number({ error: "must be a number of milliseconds" }).int("must be an integer").min(
    min,
    `must be at least ${min}`,
  ).max(MAX_MS, `must be at most ${MAX_MS}`);

/** An amount: a non-negative integer, as a JSON number (safe integer) or a decimal string. */
const amount = z.union([
  z.number().int("must be an integer").nonnegative("must not be negative").refine(
    Number.isSafeInteger,
    "must be a safe integer; write larger amounts as a decimal string",
  ),
  z.string().regex(/^(0|[1-9][0-9]{0,77})$/, "must be a non-negative decimal integer"),
], { error: "must be a non-negative integer or a decimal string" }).transform((v) => BigInt(v));

const listenAddress = z.string().refine((s) => isMultiaddr(s), {
  error: "must be a multiaddr like /ip4/127.0.0.1/tcp/4001",
});
const bootstrapAddress = z.string().refine(
  (s) => isMultiaddr(s) && /\/p2p\/[1-9A-HJ-NP-Za-km-z]{30,}$/.test(s),
  {
    error: "must be a multiaddr ending in /p2p/<peer id>, like /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo…",
  },
);

function isMultiaddr(text: string): boolean {
  if (!text.startsWith("/")) return false;
  try {
    multiaddr(text);
    return true;
  } catch {
    return false;
  }
}

const role = z.enum(["client", "worker", "verifier", "bootstrap"], {
  error: "must be one of client, worker, verifier, bootstrap",
});

const localChain = z.strictObject({
  kind: z.literal("local"),
  /** The SQLite ledger file; nodes that settle together share it. */
  path: z.string().min(1, "must not be empty").optional(),
});

const hexAddress = z.string().regex(/^0x[0-9a-fA-F]{1,64}$/, "must be a 0x hex address");

const starknetChain = z.strictObject({
  kind: z.literal("starknet"),
  rpcUrl: z.url({ error: "must be an absolute http(s) URL" }),
  accountAddress: hexAddress,
  privateKeyFile: z.string().min(1, "must not be empty").optional(),
  jobManagerAddress: hexAddress,
  cdcPoolAddress: hexAddress,
  tokenAddress: hexAddress.optional(),
  confirmations: z.number().int("must be an integer").min(0, "must be at least 0").default(2),
  pollMs: ms(1).default(2_000),
});

/** An EVM chain: `deployment` is the file `deno task chain` writes (chain/evm/local_node.ts). */
const evmChain = z.strictObject({
  kind: z.literal("evm"),
  deployment: z.string().min(1, "must not be empty"),
  /** Overrides the deployment's endpoint. */
  rpcUrl: z.url({ error: "must be an absolute http(s) URL" }).optional(),
  privateKeyFile: z.string().min(1, "must not be empty").optional(),
  confirmations: z.number().int("must be an integer").min(0, "must be at least 0").default(0),
  pollMs: ms(1).default(500),
});

const chain = z.discriminatedUnion("kind", [localChain, starknetChain, evmChain], {
  error: 'must have "kind": "local", "starknet" or "evm"',
});

const worker = z.strictObject({
  hardware: z.enum(["cpu", "gpu"], { error: "must be cpu or gpu" }).default("cpu"),
  stake: amount.default(WORKER_DEFAULTS.stake),
  priceRatio: z.number({ error: "must be a number" }).refine((r) => r > 0 && r <= 1, {
    error: "must be in (0, 1]",
  }).default(WORKER_DEFAULTS.priceRatio),
  etaMs: ms(1).default(WORKER_DEFAULTS.etaMs),
  minPrice: amount.default(WORKER_DEFAULTS.minPrice),
  capacity: z.number().int("must be an integer").min(1, "must be at least 1").max(
    1024,
    "must be at most 1024",
  ).default(WORKER_DEFAULTS.capacity),
  maxOpenBids: z.number().int("must be an integer").min(1, "must be at least 1").max(
    1024,
    "must be at most 1024",
  ).default(WORKER_DEFAULTS.maxOpenBids),
  reserveSlots: z.boolean({ error: "must be true or false" }).default(false),
  fault: z.enum(["none", "silent", "wrong_result"], {
    error: "must be none, silent or wrong_result",
  }).default(WORKER_DEFAULTS.fault),
});

const policy = z.strictObject({
  bidSelection: z.enum(BID_SELECTION_POLICIES as [string, ...string[]], {
    error: `must be one of ${BID_SELECTION_POLICIES.join(", ")}`,
  }).default("lowest_price"),
  quorum: z.enum(QUORUM_POLICIES as [string, ...string[]], {
    error: `must be one of ${QUORUM_POLICIES.join(", ")}`,
  }).default("bft"),
  verification: z.enum(["quorum", "optimistic"], { error: "must be quorum or optimistic" })
    .optional(),
  // Absent: chain-decided, or legacy on a chain without the calls (the node decides: nodePolicy).
  settlement: z.enum(["legacy", "chain"], { error: "must be legacy or chain" }).optional(),
});

const verifier = z.strictObject({
  // 0 bonds nothing: the chain never chooses the node (logged at start).
  stake: amount.default(DEFAULT_VERIFIER_STAKE),
});

const peer = z.strictObject({
  heartbeatMs: ms(1).default(DEFAULT_PEER_CONFIG.heartbeatMs),
  maxMissedHeartbeats: z.number().int("must be an integer").min(1, "must be at least 1").default(
    DEFAULT_PEER_CONFIG.maxMissedHeartbeats,
  ),
  initialScore: z.number({ error: "must be a number" }).default(DEFAULT_PEER_CONFIG.initialScore),
  banThreshold: z.number({ error: "must be a number" }).default(DEFAULT_PEER_CONFIG.banThreshold),
  banMs: ms(0).default(DEFAULT_PEER_CONFIG.banMs),
});

const cidr = z.string().regex(
  /^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9a-fA-F:]+\/\d{1,3})$/,
  "must be a CIDR like 10.0.0.0/8 or ::1/128",
);

const network = z.strictObject({
  trustedRanges: z.array(cidr, { error: "must be an array of CIDRs" }).default([
    "127.0.0.0/8",
    "::1/128",
  ]),
  heartbeatMs: ms(0).default(5_000),
  maxRejections: z.number().int("must be an integer").min(1, "must be at least 1").default(20),
  banMs: ms(0).default(600_000),
  requestTimeoutMs: ms(1).default(10_000),
  rateLimit: z.strictObject({
    capacity: z.number().int("must be an integer").min(1, "must be at least 1").default(500),
    refillPerSecond: z.number({ error: "must be a number" }).positive("must be positive").default(
      250,
    ),
  }).default({ capacity: 500, refillPerSecond: 250 }),
  // The budget of authors that hold nothing at stake on chain (the host's unbondedRateLimit).
  unbondedRateLimit: z.strictObject({
    capacity: z.number().int("must be an integer").min(1, "must be at least 1").default(20),
    refillPerSecond: z.number({ error: "must be a number" }).nonnegative("must not be negative")
      .default(2),
  }).default({ capacity: 20, refillPerSecond: 2 }),
});

const http = z.strictObject({
  enabled: z.boolean({ error: "must be true or false" }).default(true),
  host: z.string().refine((h) => LOOPBACK_HOSTS.includes(h), {
    error: "must be a loopback address (127.0.0.1, ::1 or localhost)",
  }).default("127.0.0.1"),
  port: z.number({ error: "must be a port number" }).int("must be an integer").min(
    0,
    "must be in [0, 65535]",
  ).max(65_535, "must be in [0, 65535]").default(0),
});

const journal = z.strictObject({
  synchronous: z.enum(["normal", "full"], { error: "must be normal or full" }).default("normal"),
  checkpointEvery: z.number({ error: "must be a number" }).int("must be an integer").min(
    1,
    "must be at least 1",
  ).default(256),
  acceptDivergence: z.boolean({ error: "must be true or false" }).default(false),
});

const jobs = z.strictObject({
  retainFinishedMs: ms(0).nullable().default(60_000),
  archiveSize: z.number({ error: "must be a number" }).int("must be an integer").min(
    0,
    "must not be negative",
  ).max(10_000_000, "must be at most 10000000").default(10_000),
});

const sampling = z.strictObject({
  bidders: z.number().int("must be an integer").min(1, "must be at least 1").max(
    1024,
    "must be at most 1024",
  ).default(DEFAULT_SAMPLE_BIDDERS),
  bits: z.number().int("must be an integer").min(0, "must be at least 0").max(
    MAX_SAMPLE_BITS,
    `must be at most ${MAX_SAMPLE_BITS}`,
  ).optional(),
});

const log = z.strictObject({
  level: z.enum(["trace", "debug", "info", "warning", "error", "fatal"], {
    error: "must be one of trace, debug, info, warning, error, fatal",
  }).default("info"),
  format: z.enum(["text", "json"], { error: "must be text or json" }).default("text"),
});

const configSchema = z.strictObject({
  dataDir: z.string({ error: "must be a path" }).min(1, "must not be empty").default("./data"),
  listen: z.array(listenAddress, { error: "must be an array of multiaddrs" }).min(
    1,
    "must name at least one address",
  ).default(["/ip4/127.0.0.1/tcp/0"]),
  bootstrap: z.array(bootstrapAddress, { error: "must be an array of multiaddrs" }).default([]),
  roles: z.array(role, { error: "must be an array of roles" }).min(1, "must name at least one role")
    .refine((r) => new Set(r).size === r.length, "must not repeat a role").default(["client"]),
  chain: chain.default({ kind: "local" }),
  // The one source of the worker's defaults is the node's (WORKER_DEFAULTS).
  worker: worker.default({ hardware: "cpu", ...WORKER_DEFAULTS, reserveSlots: false }),
  // How this node's jobs are announced in a large market (protocols/sampling.ts).
  sampling: sampling.default({ bidders: DEFAULT_SAMPLE_BIDDERS }),
  verifier: verifier.default({ stake: DEFAULT_VERIFIER_STAKE }),
  policy: policy.default({ bidSelection: "lowest_price", quorum: "bft" }),
  peer: peer.default({ ...DEFAULT_PEER_CONFIG }),
  network: network.default({
    trustedRanges: ["127.0.0.0/8", "::1/128"],
    heartbeatMs: 5_000,
    maxRejections: 20,
    banMs: 600_000,
    requestTimeoutMs: 10_000,
    rateLimit: { capacity: 500, refillPerSecond: 250 },
    unbondedRateLimit: { capacity: 20, refillPerSecond: 2 },
  }),
  capabilityIntervalMs: ms(0).default(30_000),
  http: http.default({ enabled: true, host: "127.0.0.1", port: 0 }),
  journal: journal.default({
    synchronous: "normal",
    checkpointEvery: 256,
    acceptDivergence: false,
  }),
  jobs: jobs.default({ retainFinishedMs: 60_000, archiveSize: 10_000 }),
  log: log.default({ level: "info", format: "text" }),
});

/** A validated node configuration (amounts are `bigint`, every default filled in). */
export type NodeConfig = Omit<z.output<typeof configSchema>, "chain" | "policy"> & {
  readonly chain:
    | (z.output<typeof localChain> & { readonly path: string })
    | z.output<typeof starknetChain>
    | z.output<typeof evmChain>;
  readonly policy: {
    readonly bidSelection: (typeof BID_SELECTION_POLICIES)[number];
    readonly quorum: (typeof QUORUM_POLICIES)[number];
    readonly verification?: "quorum" | "optimistic";
    readonly settlement?: "legacy" | "chain";
  };
};

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Command-line arguments. @default [] */
  readonly args?: readonly string[];
  /** Environment variables. @default {} (pass `Deno.env.toObject()` for the real ones) */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where relative paths from flags and env are resolved. @default Deno.cwd() */
  readonly cwd?: string;
}

/** The flags `deno task node` accepts. */
export const FLAGS = {
  config: { type: "string" },
  "data-dir": { type: "string" },
  listen: { type: "string", multiple: true },
  bootstrap: { type: "string", multiple: true },
  roles: { type: "string" },
  ledger: { type: "string" },
  "http-port": { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  "accept-divergence": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** Environment variables read, and the key each sets. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  CIRO_CONFIG: "(config file)",
  CIRO_DATA_DIR: "dataDir",
  CIRO_LISTEN: "listen",
  CIRO_BOOTSTRAP: "bootstrap",
  CIRO_ROLES: "roles",
  CIRO_LEDGER: "chain.path",
  CIRO_HTTP_HOST: "http.host",
  CIRO_HTTP_PORT: "http.port",
  CIRO_LOG_LEVEL: "log.level",
  CIRO_LOG_FORMAT: "log.format",
};

type Raw = Record<string, unknown>;

/**
 * Reads the config file (`--config`, else `CIRO_CONFIG`, else none), applies env and flags,
 * validates, and fills in defaults. Throws {@link ConfigError}.
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<NodeConfig> {
  const env = options.env ?? {};
  const cwd = options.cwd ?? Deno.cwd();
  let values: ReturnType<typeof parseFlags>;
  try {
    values = parseFlags(options.args ?? []);
  } catch (error) {
    throw new ConfigError("", `Invalid flags: ${(error as Error).message}`, { cause: error });
  }
  const file = values.config ?? env.CIRO_CONFIG;
  const layers: Raw[] = [];
  if (file !== undefined && file !== "") layers.push(await readConfigFile(resolve(cwd, file)));
  layers.push(envLayer(env, cwd), flagLayer(values, cwd));
  return parseConfig(layers.reduce(merge, {}));
}

/** Validates an already merged raw config object (a parsed file, say). */
export function parseConfig(raw: unknown): NodeConfig {
  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      const key = [...path, issue.keys[0] ?? ""].join(".");
      throw new ConfigError(key, `Invalid config "${key}": unknown key`);
    }
    const key = path.join(".");
    throw new ConfigError(key, `Invalid config "${key}": ${describe(issue, valueAt(raw, path))}`);
  }
  const config = result.data;
  const chainConfig = config.chain.kind === "local"
    ? { ...config.chain, path: config.chain.path ?? `${config.dataDir}/ledger.sqlite` }
    : config.chain;
  return { ...config, chain: chainConfig } as NodeConfig;
}

function describe(issue: z.core.$ZodIssue, value: unknown): string {
  if (value === undefined && issue.code === "invalid_type") return "is required";
  if (issue.code === "invalid_type" && issue.message.startsWith("Invalid input")) {
    return `must be ${issue.expected === "array" ? "an" : "a"} ${issue.expected}, got ${
      JSON.stringify(value)
    }`;
  }
  if (issue.code === "invalid_union" && issue.message === "Invalid input") {
    return `is not valid, got ${JSON.stringify(value)}`;
  }
  return issue.message;
}

function valueAt(raw: unknown, path: readonly string[]): unknown {
  let at: unknown = raw;
  for (const part of path) {
    if (at === null || typeof at !== "object") return undefined;
    at = (at as Raw)[part];
  }
  return at;
}

async function readConfigFile(path: string): Promise<Raw> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new ConfigError("", `Cannot read config file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError("", `Invalid config file ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new ConfigError("", `Invalid config file ${path}: must hold a JSON object`);
  }
  const base = path.slice(0, path.lastIndexOf("/") + 1) || "./";
  const out = { ...(raw as Raw) };
  if (typeof out.dataDir === "string") out.dataDir = resolve(base, out.dataDir);
  if (out.chain !== null && typeof out.chain === "object" && !Array.isArray(out.chain)) {
    const c = { ...(out.chain as Raw) };
    if (typeof c.path === "string" && c.path !== ":memory:") c.path = resolve(base, c.path);
    if (typeof c.privateKeyFile === "string") c.privateKeyFile = resolve(base, c.privateKeyFile);
    if (typeof c.deployment === "string") c.deployment = resolve(base, c.deployment);
    out.chain = c;
  }
  return out;
}

function parseFlags(args: readonly string[]) {
  return parseArgs({ args: [...args], options: FLAGS, strict: true, allowPositionals: false })
    .values;
}

function list(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function port(text: string, key: string): unknown {
  return /^\d+$/.test(text) ? Number(text) : text === "" ? undefined : (() => {
    throw new ConfigError(key, `Invalid config "${key}": must be a port number, got "${text}"`);
  })();
}

function envLayer(env: Readonly<Record<string, string | undefined>>, cwd: string): Raw {
  const layer: Raw = {};
  const get = (name: string) => {
    const v = env[name];
    return v === undefined || v === "" ? undefined : v;
  };
  const dataDir = get("CIRO_DATA_DIR");
  if (dataDir) layer.dataDir = resolve(cwd, dataDir);
  const listen = get("CIRO_LISTEN");
  if (listen) layer.listen = list(listen);
  const bootstrap = get("CIRO_BOOTSTRAP");
  if (bootstrap) layer.bootstrap = list(bootstrap);
  const roles = get("CIRO_ROLES");
  if (roles) layer.roles = list(roles);
  const ledger = get("CIRO_LEDGER");
  if (ledger) layer.chain = { kind: "local", path: resolve(cwd, ledger) };
  const httpHost = get("CIRO_HTTP_HOST");
  const httpPort = get("CIRO_HTTP_PORT");
  if (httpHost || httpPort) {
    layer.http = {
      ...(httpHost ? { host: httpHost } : {}),
      ...(httpPort ? { port: port(httpPort, "http.port") } : {}),
    };
  }
  const level = get("CIRO_LOG_LEVEL");
  const format = get("CIRO_LOG_FORMAT");
  if (level || format) {
    layer.log = { ...(level ? { level } : {}), ...(format ? { format } : {}) };
  }
  return layer;
}

function flagLayer(values: ReturnType<typeof parseFlags>, cwd: string): Raw {
  const layer: Raw = {};
  if (values["data-dir"] !== undefined) layer.dataDir = resolve(cwd, values["data-dir"]);
  if (values.listen !== undefined) layer.listen = values.listen.flatMap(list);
  if (values.bootstrap !== undefined) layer.bootstrap = values.bootstrap.flatMap(list);
  if (values.roles !== undefined) layer.roles = list(values.roles);
  if (values.ledger !== undefined) {
    layer.chain = { kind: "local", path: resolve(cwd, values.ledger) };
  }
  if (values["http-port"] !== undefined) {
    layer.http = { port: port(values["http-port"], "http.port") };
  }
  if (values["accept-divergence"]) layer.journal = { acceptDivergence: true };
  if (values["log-level"] !== undefined || values["log-format"] !== undefined) {
    layer.log = {
      ...(values["log-level"] !== undefined ? { level: values["log-level"] } : {}),
      ...(values["log-format"] !== undefined ? { format: values["log-format"] } : {}),
    };
  }
  return layer;
}

/** Deep merge: objects merge key by key, anything else (arrays too) is replaced. */
function merge(base: Raw, over: Raw): Raw {
  const out: Raw = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prior = out[key];
    out[key] = isPlainObject(prior) && isPlainObject(value) ? merge(prior, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Raw {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function resolve(base: string, path: string): string {
  if (path.startsWith("/") || path === ":memory:") return path;
  const dir = base.endsWith("/") ? base : `${base}/`;
  return normalize(`${dir}${path}`);
}

function normalize(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "." || part === "") continue;
    if (part === ".." && parts.length > 0 && parts.at(-1) !== "..") parts.pop();
    else parts.push(part);
  }
  return `${path.startsWith("/") ? "/" : ""}${parts.join("/")}`;
}

/** The help text of `deno task node`. */
export const USAGE = `Usage: deno task node [flags]

Flags (override env, which overrides the config file):
  --config PATH        JSON config file (env CIRO_CONFIG)
  --data-dir PATH      data directory: identity key, default ledger (env CIRO_DATA_DIR)
  --init               make a new node: create a missing data directory, or a new identity
                       where a journal has none (refused without it)
  --listen MULTIADDR   address to listen on; repeat or comma-separate (env CIRO_LISTEN)
  --bootstrap MULTIADDR  bootstrap peer /ip4/…/tcp/…/p2p/<id>; repeatable (env CIRO_BOOTSTRAP)
  --roles LIST         client,worker,verifier,bootstrap (env CIRO_ROLES)
  --ledger PATH        local ledger file, sets chain {kind: "local"} (env CIRO_LEDGER)
  --http-port N        status endpoint port on loopback, 0 for any (env CIRO_HTTP_PORT)
  --log-level LEVEL    trace, debug, info, warning, error, fatal (env CIRO_LOG_LEVEL)
  --log-format FORMAT  text or json (env CIRO_LOG_FORMAT)
  --accept-divergence  recover even if replaying the journal does not reproduce the outcomes
                       it recorded: logged as an error, the node goes on from the replayed
                       state (sets journal.acceptDivergence; for one restart)
`;
