import assert from "node:assert/strict";
import { peerIdFromString } from "@libp2p/peer-id";
import { generateKeyPair } from "@libp2p/crypto/keys";
import {
  createLibp2pHost,
  type Libp2pHost,
  type Libp2pHostOptions,
  MAX_STREAM_WINDOW,
  MESSAGE_PROTOCOL,
} from "./libp2p_host.ts";
import { sendAll, StreamReader } from "./stream_framing.ts";
import { TOPICS } from "./messages.ts";
import type { PeerEvent } from "./network_port.ts";

const LOOPBACK = ["/ip4/127.0.0.1/tcp/0"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Polls `check` every 25 ms until it holds or `timeoutMs` passes; throws naming `what`. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Starts `a`, then `b` bootstrapped to `a`, and waits until they are connected. */
async function pair(
  a: Partial<Libp2pHostOptions> = {},
  b: Partial<Libp2pHostOptions> = {},
): Promise<[Libp2pHost, Libp2pHost]> {
  const first = await createLibp2pHost({ listen: LOOPBACK, ...a });
  const second = await createLibp2pHost({
    listen: LOOPBACK,
    bootstrap: [first.multiaddrs()[0]!],
    ...b,
  });
  await waitFor("the pair to connect", () => first.peers().includes(second.self));
  return [first, second];
}

Deno.test({
  name: "createLibp2pHost() delivers gossip between two loopback nodes and reports peer events",
  fn: async () => {
    const events: PeerEvent[] = [];
    const first = await createLibp2pHost({ listen: LOOPBACK, heartbeatMs: 100 });
    first.onPeerEvent((event) => events.push(event));
    const second = await createLibp2pHost({
      listen: LOOPBACK,
      bootstrap: [first.multiaddrs()[0]!],
      heartbeatMs: 100,
    });
    try {
      assert.match(
        first.multiaddrs()[0]!,
        new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${first.self}$`),
      );
      const received: { from: string; text: string }[] = [];
      first.subscribe(TOPICS.jobs, () => "accept", (message) => {
        received.push({ from: message.from, text: decoder.decode(message.data) });
      });
      const pubsub = second.libp2p.services.pubsub;
      await waitFor(
        "the subscription to propagate",
        () => pubsub.getSubscribers(TOPICS.jobs).length > 0,
      );
      await second.publish(TOPICS.jobs, encoder.encode("job one"));
      await waitFor("the message", () => received.length === 1);
      assert.deepEqual(received, [{ from: second.self, text: "job one" }]);
      await waitFor("a heartbeat", () => events.some((event) => event.type === "heartbeat"));
      const types = new Set(
        events.filter((event) => event.peer === second.self).map((event) => event.type),
      );
      assert.ok(
        types.has("connected") && types.has("identified") && types.has("heartbeat"),
        [...types].join(),
      );
      const identified = events.find((event) => event.type === "identified");
      assert.ok(
        identified?.type === "identified" && identified.protocols.includes("/ciro/kad/1.0.0"),
      );
      const heartbeat = events.find((event) => event.type === "heartbeat");
      assert.ok(heartbeat?.type === "heartbeat" && heartbeat.rttMs >= 0);
      await second.stop();
      await waitFor("the disconnect", () => events.some((event) => event.type === "disconnected"));
      await assert.rejects(second.publish(TOPICS.jobs, new Uint8Array(70_000)), RangeError);
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() lowers the score of a rejected sender and bans a repeat offender",
  fn: async () => {
    const [victim, offender] = await pair({ heartbeatMs: 0 }, { heartbeatMs: 0 });
    try {
      let delivered = 0;
      victim.subscribe(
        TOPICS.reputation,
        (message) => decoder.decode(message.data).startsWith("bad") ? "reject" : "accept",
        () => delivered++,
      );
      const pubsub = offender.libp2p.services.pubsub;
      await waitFor(
        "the subscription to propagate",
        () => pubsub.getSubscribers(TOPICS.reputation).length > 0,
      );
      await offender.publish(TOPICS.reputation, encoder.encode("good"));
      await waitFor("the good message", () => delivered === 1);
      // A delivered message earns first-delivery credit (+1); three rejections cost 0.2 n² = 1.8.
      for (let i = 0; i < 3; i++) {
        await offender.publish(TOPICS.reputation, encoder.encode(`bad ${i}`));
      }
      await waitFor("the rejections", () => victim.stats().rejected === 3);
      // Scores are cached for one gossipsub heartbeat (1 s).
      await waitFor("a negative score", () => victim.score(offender.self) < 0, 5_000);
      for (let i = 3; i <= 25 && !victim.isBanned(offender.self); i++) {
        await offender.publish(TOPICS.reputation, encoder.encode(`bad ${i}`)).catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await waitFor("the ban", () => victim.isBanned(offender.self));
      assert.equal(victim.stats().rejected, 21);
      assert.equal(victim.stats().bans, 1);
      assert.equal(delivered, 1, "no rejected message is delivered");
      await waitFor("the disconnect", () => !victim.peers().includes(offender.self));
      await waitFor(
        "the disconnect to reach the offender",
        () => !offender.peers().includes(victim.self),
      );
      // The dialer may see its side upgrade (lazy muxer negotiation) before the victim's gater
      // closes the connection: what matters is that the victim never accepts it.
      const reconnects: PeerEvent[] = [];
      victim.onPeerEvent((event) => event.peer === offender.self && reconnects.push(event));
      await offender.dial(victim.multiaddrs()[0]!, { signal: AbortSignal.timeout(5_000) }).catch(
        () => {},
      );
      await waitFor(
        "the refused connection to close",
        () => !offender.peers().includes(victim.self),
      );
      assert.equal(victim.peers().includes(offender.self), false, "a banned peer cannot reconnect");
      assert.deepEqual(reconnects, []);
    } finally {
      await Promise.all([victim.stop(), offender.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() ignores and counts messages over a peer's rate limit",
  fn: async () => {
    const [receiver, sender] = await pair({
      heartbeatMs: 0,
      rateLimit: { capacity: 3, refillPerSecond: 0 },
    }, {
      heartbeatMs: 0,
    });
    try {
      let delivered = 0;
      receiver.subscribe(TOPICS.health, () => "accept", () => delivered++);
      const pubsub = sender.libp2p.services.pubsub;
      await waitFor(
        "the subscription to propagate",
        () => pubsub.getSubscribers(TOPICS.health).length > 0,
      );
      for (let i = 0; i < 10; i++) await sender.publish(TOPICS.health, encoder.encode(`beat ${i}`));
      await waitFor(
        "every message to be seen",
        () => delivered + receiver.stats().rateLimited === 10,
      );
      assert.equal(delivered, 3);
      assert.equal(receiver.stats().rateLimited, 7);
      assert.equal(receiver.stats().rejected, 0, "rate limiting is not a rejection");
      assert.equal(receiver.isBanned(sender.self), false);
    } finally {
      await Promise.all([receiver.stop(), sender.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() answers direct requests and reports remote errors, limits and timeouts",
  fn: async () => {
    const [server, client] = await pair({ heartbeatMs: 0, maxRequestBytes: 1_000 }, {
      heartbeatMs: 0,
      maxResponseBytes: 300_000,
    });
    try {
      server.handle("/test/echo/1.0.0", (request, from) => {
        assert.equal(from, client.self);
        return Promise.resolve(new Uint8Array([...request].reverse()));
      });
      server.handle("/test/fail/1.0.0", () => Promise.reject(new Error("No such job: j1")));
      server.handle(
        "/test/big/1.0.0",
        (request) => Promise.resolve(new Uint8Array(Number(decoder.decode(request)))),
      );
      server.handle("/test/slow/1.0.0", () => new Promise(() => {}));
      assert.throws(() =>
        server.handle("/test/echo/1.0.0", () => Promise.resolve(new Uint8Array()))
      );

      const echoed = await client.request(
        server.self,
        "/test/echo/1.0.0",
        new Uint8Array([1, 2, 3]),
      );
      assert.deepEqual([...echoed], [3, 2, 1]);
      const empty = await client.request(server.self, "/test/echo/1.0.0", new Uint8Array());
      assert.equal(empty.byteLength, 0);
      // 250 kB crosses many yamux windows: the server's writes wait for drain.
      const big = await client.request(server.self, "/test/big/1.0.0", encoder.encode("250000"));
      assert.equal(big.byteLength, 250_000);
      await assert.rejects(
        client.request(server.self, "/test/fail/1.0.0", new Uint8Array()),
        {
          name: "ProtocolError",
          message: `Request failed on peer ${server.self}: No such job: j1`,
        },
      );
      await assert.rejects(
        client.request(server.self, "/test/big/1.0.0", encoder.encode("400000")),
        { name: "ProtocolError", message: /Response too large: 400000 bytes exceeds 300000/ },
      );
      await assert.rejects(client.request(server.self, "/test/echo/1.0.0", new Uint8Array(2_000)));
      await assert.rejects(
        client.request(server.self, "/test/slow/1.0.0", new Uint8Array(), {
          signal: AbortSignal.timeout(300),
        }),
      );
      await assert.rejects(client.request(server.self, "/test/none/1.0.0", new Uint8Array()));
    } finally {
      await Promise.all([server.stop(), client.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() keeps its peer id across restarts with a data directory",
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    try {
      const first = await createLibp2pHost({ listen: LOOPBACK, dataDir, heartbeatMs: 0 });
      const id = first.self;
      await first.stop();
      const second = await createLibp2pHost({ listen: LOOPBACK, dataDir, heartbeatMs: 0 });
      try {
        assert.equal(second.self, id);
        assert.ok(second.multiaddrs()[0]!.endsWith(`/p2p/${id}`));
      } finally {
        await second.stop();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "sendAll() waits for drain and StreamReader pauses a stream when its reader falls behind",
  fn: async () => {
    const [server, client] = await pair({ heartbeatMs: 0 }, { heartbeatMs: 0 });
    try {
      const size = 12 * 1024 * 1024;
      const payload = new Uint8Array(size).map((_, i) => i % 251);
      let sendsRefused = 0;
      let senderDone = false;
      await server.libp2p.handle("/test/flood/1.0.0", async (stream) => {
        const send = stream.send.bind(stream);
        stream.send = (data) => {
          const accepted = send(data);
          if (!accepted) sendsRefused++;
          return accepted;
        };
        await sendAll(stream, payload, AbortSignal.timeout(20_000));
        senderDone = true;
        await stream.close();
      });
      const stream = await client.libp2p.dialProtocol(
        peerIdFromString(server.self),
        "/test/flood/1.0.0",
      );
      const reader = new StreamReader(stream, { highWaterMark: 65_536 });
      let pausedSeen = false;
      const received = new Uint8Array(size);
      let filled = 0;
      // A slow reader: the first 20 chunks with a pause in between, then at full speed.
      for (let i = 0; filled < size; i++) {
        if (i < 20) await new Promise((resolve) => setTimeout(resolve, 20));
        pausedSeen ||= stream.readStatus === "paused";
        const chunk = await reader.read(16_384, AbortSignal.timeout(20_000));
        assert.ok(chunk !== undefined, `stream ended after ${filled} bytes`);
        received.set(chunk, filled);
        filled += chunk.byteLength;
        if (i === 19) {
          // In flight at most: our queue (one window arrives before the pause takes effect)
          // plus the stream's read buffer (one more window), whatever the payload's size.
          const queued = reader.buffered + stream.readBufferLength;
          assert.ok(queued <= 2 * MAX_STREAM_WINDOW + 65_536, `${queued} bytes queued`);
          assert.equal(senderDone, false, "the sender waits for the slow reader");
        }
      }
      assert.equal(
        await reader.read(1, AbortSignal.timeout(5_000)),
        undefined,
        "the stream ends after the payload",
      );
      assert.deepEqual(received, payload);
      assert.ok(pausedSeen, "the reader paused the stream");
      assert.ok(sendsRefused > 0, "send() returned false at least once");
      await stream.close();
    } finally {
      await Promise.all([server.stop(), client.stop()]);
    }
  },
});

Deno.test({
  name:
    "createLibp2pHost() queues a publish made before any topic peer and sends it once one subscribes",
  fn: async () => {
    const publisher = await createLibp2pHost({ listen: LOOPBACK, heartbeatMs: 0 });
    const subscriber = await createLibp2pHost({ listen: LOOPBACK, heartbeatMs: 0 });
    try {
      // Nobody to send to yet: both wait, in order, and publish() does not throw.
      await publisher.publish(TOPICS.health, encoder.encode("result one"));
      await publisher.publish(TOPICS.health, encoder.encode("result two"));
      assert.equal(publisher.stats().publishWaiting, 2);
      const received: string[] = [];
      subscriber.subscribe(TOPICS.health, () => "accept", (message) => {
        received.push(decoder.decode(message.data));
      });
      await subscriber.dial(publisher.multiaddrs()[0]!);
      await waitFor("the queued messages", () => received.length === 2, 30_000);
      assert.deepEqual(received, ["result one", "result two"]);
      const stats = publisher.stats();
      assert.equal(stats.publishWaiting, 0);
      assert.equal(stats.publishFlushed, 2);
      assert.equal(stats.publishDropped, 0);
      // With a topic peer, a publish goes straight out.
      await publisher.publish(TOPICS.health, encoder.encode("result three"));
      assert.equal(publisher.stats().publishWaiting, 0);
      await waitFor("the direct message", () => received.length === 3, 30_000);
    } finally {
      await Promise.all([publisher.stop(), subscriber.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() drops a queued publish past its expiry and counts it",
  fn: async () => {
    const publisher = await createLibp2pHost({
      listen: LOOPBACK,
      heartbeatMs: 0,
      publishQueue: { expiryMs: 50 },
    });
    const subscriber = await createLibp2pHost({ listen: LOOPBACK, heartbeatMs: 0 });
    try {
      await publisher.publish(TOPICS.health, encoder.encode("stale"));
      // Gossipsub's heartbeat (1 s) expires it.
      await waitFor("the expiry", () => publisher.stats().publishDropped === 1, 30_000);
      assert.equal(publisher.stats().publishWaiting, 0);
      const received: string[] = [];
      subscriber.subscribe(
        TOPICS.health,
        () => "accept",
        (m) => received.push(decoder.decode(m.data)),
      );
      await subscriber.dial(publisher.multiaddrs()[0]!);
      await waitFor(
        "the subscription to propagate",
        () => publisher.libp2p.services.pubsub.getSubscribers(TOPICS.health).length > 0,
        30_000,
      );
      await publisher.publish(TOPICS.health, encoder.encode("fresh"));
      await waitFor("the fresh message", () => received.length > 0, 30_000);
      assert.deepEqual(received, ["fresh"], "the expired message never went out");
    } finally {
      await Promise.all([publisher.stop(), subscriber.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() dials its bootstrap peer again until it answers",
  fn: async () => {
    // The bootstrap peer's address, taken by a first run of it that then stops.
    const privateKey = await generateKeyPair("Ed25519");
    const probe = await createLibp2pHost({ listen: LOOPBACK, privateKey, heartbeatMs: 0 });
    const address = probe.multiaddrs()[0]!;
    await probe.stop();
    const joiner = await createLibp2pHost({
      listen: LOOPBACK,
      bootstrap: [address],
      heartbeatMs: 0,
      bootstrapRetryMs: 200,
    });
    let boot: Libp2pHost | undefined;
    try {
      // Its first dial was refused; it keeps trying.
      await waitFor("a redial", () => joiner.stats().bootstrapRedials >= 1, 30_000);
      const listen = [address.replace(/\/p2p\/.*$/, "")];
      boot = await createLibp2pHost({ listen, privateKey, heartbeatMs: 0 });
      await waitFor(
        "the joiner to reach the bootstrap peer",
        () => joiner.peers().includes(boot!.self),
        60_000,
      );
    } finally {
      await Promise.all([joiner.stop(), boot?.stop()]);
    }
  },
});

Deno.test({
  name: "createLibp2pHost() has room for the connection monitor's ping beside the heartbeat's",
  fn: async () => {
    const [a, b] = await pair({ heartbeatMs: 0 }, { heartbeatMs: 0 });
    try {
      // Two pings at once on one connection (libp2p's default allows one outbound ping stream:
      // the second failed, and the connection monitor closed the connection over it).
      const peer = peerIdFromString(b.self);
      const rtts = await Promise.all(
        [1, 2, 3].map(() =>
          a.libp2p.services.ping.ping(peer, { signal: AbortSignal.timeout(30_000) })
        ),
      );
      assert.equal(rtts.length, 3);
      assert.ok(a.peers().includes(b.self));
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  },
});

Deno.test({
  name: "send() carries a direct message to one peer through the gossip boundary, and only there",
  fn: async () => {
    const [receiver, sender] = await pair({ heartbeatMs: 0 }, { heartbeatMs: 0 });
    try {
      const got: { from: string; text: string }[] = [];
      receiver.subscribe(
        TOPICS.bids,
        (message) => decoder.decode(message.data).startsWith("bad") ? "reject" : "accept",
        (message) => got.push({ from: message.from, text: decoder.decode(message.data) }),
      );
      // A direct topic joins no gossip mesh: the sender sees no subscriber, and may not gossip it.
      assert.equal(sender.libp2p.services.pubsub.getSubscribers(TOPICS.bids).length, 0);
      await assert.rejects(sender.publish(TOPICS.bids, encoder.encode("x")), TypeError);
      await sender.send(receiver.self, TOPICS.bids, encoder.encode("bid one"));
      await waitFor("the direct message", () => got.length === 1);
      // `from` is the peer the Noise channel authenticated.
      assert.deepEqual(got, [{ from: sender.self, text: "bid one" }]);
      // A rejected one is refused to the sender's face and counted against it.
      await assert.rejects(
        sender.send(receiver.self, TOPICS.bids, encoder.encode("bad bid")),
        /rejected on "\/ciro\/bids\/2"/,
      );
      assert.equal(receiver.stats().rejected, 1);
      // A frame naming a gossip topic is not a direct message.
      await assert.rejects(
        sender.request(receiver.self, MESSAGE_PROTOCOL, new Uint8Array([3, 65, 66, 67, 1])),
        /unknown_topic/,
      );
      assert.equal(receiver.stats().rejected, 2);
      assert.equal(got.length, 1, "nothing rejected is delivered");
    } finally {
      await Promise.all([receiver.stop(), sender.stop()]);
    }
  },
});
