/**
 * `deno run -A runtime/bench/flood/rogues/main.ts --victim PEER_ID [--keys N] [--rate R]
 * [--seconds S]`: the flood benchmark's attackers, in a process of their own (an attacker does
 * not share its victim's event loop). `N` rogue libp2p hosts on 127.0.0.2, one key each, wait
 * for the victim to dial them (the victim sees their address, outside its trusted range, and no
 * inbound connection rate limit stands in the way) and, on a signal, each send valid, signed
 * `node.health` messages straight onto their gossipsub stream at `R` a second
 * ({@link RoguePeer}), a tenth of a second's worth per frame, for `S` seconds.
 *
 * On standard output, one JSON line each: `{"rogues": [multiaddrs]}` once listening;
 * `{"ready": [peer ids]}` once every rogue has its stream to the victim and its messages are
 * forged; then, after the line `go` on standard input, flooding until `S` seconds have passed
 * or standard input closes, `{"sent": n, "cut": m}` (messages sent, and frames not sent
 * because the victim had cut the rogue off).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { RPC } from "@libp2p/gossipsub/message";
import { createLibp2pHost } from "../../../../protocols/libp2p_host.ts";
import { encodeMessage, TOPICS } from "../../../../protocols/messages.ts";
import { forgeMessage, RoguePeer } from "../../../../protocols/rogue_peer.ts";

const USAGE = `Usage: deno run -A runtime/bench/flood/rogues/main.ts --victim PEER_ID [options]

Flags:
  --victim ID     the victim's peer id
  --keys N        rogue hosts, one key each (default 10)
  --rate R        messages per second per rogue (default 1000)
  --seconds S     how long to flood (default 10)
  -h, --help      this help`;

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Resolves with the first line of standard input (undefined when it closes first). */
function lines(): { next: () => Promise<string | undefined> } {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    next: async () => {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffer += value;
      }
      const at = buffer.indexOf("\n");
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      return line.trim();
    },
  };
}

if (import.meta.main) {
  let values;
  try {
    values = parseArgs({
      args: Deno.args,
      options: {
        victim: { type: "string" },
        keys: { type: "string", default: "10" },
        rate: { type: "string", default: "1000" },
        seconds: { type: "string", default: "10" },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (error) {
    console.error(`${(error as Error).message}\n(add --help for usage)`);
    Deno.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const keys = Number(values.keys);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const victim = values.victim;
  if (
    victim === undefined || !Number.isInteger(keys) || keys < 1 || !(rate > 0) || !(seconds > 0)
  ) {
    console.error(
      `Invalid flags: --victim is required; --keys must be a positive integer; ` +
        `--rate and --seconds positive`,
    );
    Deno.exit(2);
  }
  const rogues: RoguePeer[] = [];
  for (let i = 0; i < keys; i++) {
    const key = await generateKeyPair("Ed25519");
    const host = await createLibp2pHost({
      privateKey: key,
      listen: ["/ip4/127.0.0.2/tcp/0"],
      heartbeatMs: 0,
    });
    rogues.push(new RoguePeer(host, key));
  }
  console.log(JSON.stringify({ rogues: rogues.map((rogue) => rogue.host.multiaddrs()[0]) }));
  await waitFor(
    "the rogues' streams",
    () => rogues.every((rogue) => rogue.canReach(victim)),
    120_000,
  );
  const perSlice = Math.ceil(rate / 10);
  const slices = Math.ceil(seconds * 10);
  const batches: RPC.Message[][] = await Promise.all(rogues.map(async (rogue) => {
    const out: RPC.Message[] = [];
    for (let n = 0; n < perSlice * slices; n++) {
      const data = encodeMessage(TOPICS.health, {
        type: "node.health",
        node: rogue.host.self,
        at: n,
        openJobs: 0,
      });
      out.push(await forgeMessage(TOPICS.health, data, rogue.key));
    }
    return out;
  }));
  console.log(JSON.stringify({ ready: rogues.map((rogue) => rogue.host.self) }));
  const input = lines();
  const go = await input.next();
  let sent = 0;
  let cut = 0;
  if (go === "go") {
    let open = true;
    void input.next().then(() => open = false);
    for (let s = 0; s < slices && open; s++) {
      rogues.forEach((rogue, i) => {
        const frame = batches[i]!.slice(s * perSlice, (s + 1) * perSlice);
        if (rogue.canReach(victim) && rogue.injectForged(victim, frame)) sent += frame.length;
        else cut++;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  console.log(JSON.stringify({ sent, cut }));
  await Promise.race([
    Promise.all(rogues.map((rogue) => rogue.host.stop())),
    new Promise((resolve) => setTimeout(resolve, 3_000)),
  ]);
  Deno.exit(0);
}
