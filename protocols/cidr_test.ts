import assert from "node:assert/strict";
import { cidrToMultiaddr, ipInRanges, NON_PUBLIC_RANGES, parseCidr } from "./cidr.ts";

Deno.test("parseCidr() and ipInRanges() match IPv4, IPv6 and IPv4-mapped addresses", () => {
  const ranges = ["127.0.0.0/8", "::1/128", "10.1.0.0/16", "fd00::/8"].map(parseCidr);
  assert.equal(ipInRanges("127.0.0.1", ranges), true);
  assert.equal(ipInRanges("127.255.3.4", ranges), true);
  assert.equal(ipInRanges("128.0.0.1", ranges), false);
  assert.equal(ipInRanges("10.1.200.3", ranges), true);
  assert.equal(ipInRanges("10.2.0.1", ranges), false);
  assert.equal(ipInRanges("::1", ranges), true);
  assert.equal(ipInRanges("::2", ranges), false);
  assert.equal(ipInRanges("fd12:3456::1", ranges), true);
  assert.equal(ipInRanges("::ffff:127.0.0.1", ranges), true);
  assert.equal(ipInRanges("2001:db8::1", ranges), false);
  assert.equal(ipInRanges("not an ip", ranges), false);
  assert.throws(() => parseCidr("127.0.0.0/33"), TypeError);
  assert.throws(() => parseCidr("example.com/8"), TypeError);
});

Deno.test("cidrToMultiaddr() writes the range as an ipcidr multiaddr", () => {
  assert.equal(cidrToMultiaddr(parseCidr("10.1.2.3/16")), "/ip4/10.1.0.0/ipcidr/16");
  assert.equal(cidrToMultiaddr(parseCidr("::1")), "/ip6/0:0:0:0:0:0:0:1/ipcidr/128");
  assert.equal(ipInRanges("192.168.1.1", NON_PUBLIC_RANGES), true);
  assert.equal(ipInRanges("8.8.8.8", NON_PUBLIC_RANGES), false);
});
