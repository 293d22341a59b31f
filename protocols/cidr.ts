/**
 * IP address ranges: CIDR parsing and membership for IPv4, IPv6 and IPv4-mapped IPv6, used for
 * `network.trustedRanges` (IP colocation whitelist, connection allow list, per-IP rejection
 * budgets) and for telling public addresses from private ones.
 *
 * ```ts
 * import { ipInRanges, parseCidr } from "./cidr.ts";
 *
 * const trusted = ["127.0.0.0/8", "::1/128"].map(parseCidr);
 * ipInRanges("::ffff:127.0.0.1", trusted); // true
 * ```
 *
 * @module
 */

/** A parsed CIDR range. */
export interface Cidr {
  readonly version: 4 | 6;
  readonly network: bigint;
  readonly prefix: number;
}

/** Parses `"127.0.0.0/8"` or `"::1/128"` (a bare address is a /32 or /128). */
export function parseCidr(text: string): Cidr {
  const [address = "", prefixText] = text.split("/");
  const ip = parseIp(address);
  if (ip === undefined) throw new TypeError(`Invalid CIDR "${text}": not an IP address`);
  const width = ip.version === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? width : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) {
    throw new TypeError(`Invalid CIDR "${text}": prefix must be 0 to ${width}`);
  }
  return { version: ip.version, network: mask(ip.value, width, prefix), prefix };
}

/** Whether `ip` (IPv4, IPv6 or IPv4-mapped IPv6) lies in one of `ranges`. */
export function ipInRanges(ip: string, ranges: readonly Cidr[]): boolean {
  const parsed = parseIp(ip);
  if (parsed === undefined) return false;
  return ranges.some((range) => {
    if (range.version !== parsed.version) return false;
    const width = range.version === 4 ? 32 : 128;
    return mask(parsed.value, width, range.prefix) === range.network;
  });
}

function mask(value: bigint, width: number, prefix: number): bigint {
  const bits = BigInt(width - prefix);
  return (value >> bits) << bits;
}

function parseIp(text: string): { version: 4 | 6; value: bigint } | undefined {
  const v4 = parseIpv4(text);
  if (v4 !== undefined) return { version: 4, value: v4 };
  if (!text.includes(":")) return undefined;
  let address = text.replace(/^\[|\]$/g, "").split("%")[0] ?? "";
  const lastColon = address.lastIndexOf(":");
  const embedded = parseIpv4(address.slice(lastColon + 1));
  if (embedded !== undefined) {
    const high = (embedded >> 16n).toString(16);
    const low = (embedded & 0xffffn).toString(16);
    address = `${address.slice(0, lastColon + 1)}${high}:${low}`;
  }
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string | undefined): bigint[] | undefined => {
    if (part === undefined || part === "") return [];
    const groups: bigint[] = [];
    for (const group of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return undefined;
      groups.push(BigInt(`0x${group}`));
    }
    return groups;
  };
  const head = parseGroups(halves[0]);
  const rest = halves.length === 2 ? parseGroups(halves[1]) : [];
  if (head === undefined || rest === undefined) return undefined;
  const known = head.length + rest.length;
  if (halves.length === 1 && known !== 8) return undefined;
  if (known > 8) return undefined;
  const groups = [...head, ...Array<bigint>(8 - known).fill(0n), ...rest];
  const value = groups.reduce((acc, group) => (acc << 16n) | group, 0n);
  // IPv4-mapped IPv6 (::ffff:a.b.c.d) is an IPv4 address.
  if (value >> 32n === 0xffffn) return { version: 4, value: value & 0xffff_ffffn };
  return { version: 6, value };
}

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return undefined;
    const byte = Number(part);
    if (byte > 255) return undefined;
    value = (value << 8n) | BigInt(byte);
  }
  return value;
}

/** The libp2p multiaddr of a range, `/ip4/<network>/ipcidr/<prefix>`. */
export function cidrToMultiaddr(range: Cidr): string {
  if (range.version === 4) {
    const v = range.network;
    const ip = [24n, 16n, 8n, 0n].map((shift) => ((v >> shift) & 0xffn).toString()).join(".");
    return `/ip4/${ip}/ipcidr/${range.prefix}`;
  }
  const groups: string[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) {
    groups.push(((range.network >> shift) & 0xffffn).toString(16));
  }
  return `/ip6/${groups.join(":")}/ipcidr/${range.prefix}`;
}

/**
 * The IP colocation whitelist: gossipsub asks `has(ip)` with each peer's IP; this set answers
 * by range membership instead of exact strings.
 */
export class TrustedIpSet extends Set<string> {
  readonly #ranges: readonly Cidr[];
  constructor(ranges: readonly Cidr[]) {
    super();
    this.#ranges = ranges;
  }
  override has(ip: string): boolean {
    return ipInRanges(ip, this.#ranges);
  }
}

/** Ranges that are not publicly routable (private, loopback, link-local, shared, unspecified). */
export const NON_PUBLIC_RANGES: readonly Cidr[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "::/128",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
].map(parseCidr);
