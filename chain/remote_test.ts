/**
 * Tests of the chain served over a stream (`chain/remote.ts`): a local ledger behind in-memory
 * pipes and behind a real child process (`runtime/bench/chain/main.ts`), its calls, errors,
 * events and subscriptions as a port of the ledger itself gives them, and what a bad line, a
 * wrong server or a closed stream get.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { LocalLedger } from "./local_ledger.ts";
import { ChainError, type ChainEvent } from "./port.ts";
import {
  type ByteStream,
  MAX_LINE_BYTES,
  type PortFactory,
  RemoteChain,
  serveChain,
} from "./remote.ts";

const MODEL = "a".repeat(64);
const INPUT = "b".repeat(64);
const RESULT = "c".repeat(64);
const START = { blockNumber: 0, eventIndex: 0 };

/** Two ends of an in-memory duplex pipe. */
function pipe(): [ByteStream, ByteStream] {
  const up = new TransformStream<Uint8Array, Uint8Array>();
  const down = new TransformStream<Uint8Array, Uint8Array>();
  return [
    { readable: down.readable, writable: up.writable },
    { readable: up.readable, writable: down.writable },
  ];
}

async function withServed(
  body: (remote: RemoteChain, ledger: LocalLedger, refused: string[]) => Promise<void>,
): Promise<void> {
  const clock = { now: 1_000 };
  const ledger = LocalLedger.open(":memory:", { now: () => clock.now });
  const [client, server] = pipe();
  const refused: string[] = [];
  const serving = serveChain(ledger, server, { onRefused: (why) => refused.push(why) });
  const remote = await RemoteChain.connect(client);
  try {
    await body(remote, ledger, refused);
  } finally {
    await remote.close();
    await serving;
    ledger.close();
  }
}

function strip(events: readonly ChainEvent[]) {
  return events.map((e) => JSON.stringify(e, (_k, v) => typeof v === "bigint" ? `${v}n` : v));
}

Deno.test("a remote port runs a job's transactions and reads the same events as a local port", async () => {
  await withServed(async (remote, ledger) => {
    const client = remote.as("c1");
    const worker = remote.as("w1");
    assert.equal(client.filtersEvents, false);
    await worker.stake({ amount: 100n });
    const receipt = await client.submitJob({
      jobId: "j1",
      amount: 1_000n,
      minStake: 10n,
      modelHash: MODEL,
      inputCommitment: INPUT,
    });
    assert.equal(typeof receipt.txHash, "string");
    assert.ok(receipt.blockNumber > 0);
    await client.assignWorker({ jobId: "j1", worker: "w1", price: 600n });
    await worker.submitResult({ jobId: "j1", commitment: RESULT });
    await client.recordVerification({ jobId: "j1", accepted: true });
    await client.releasePayment({ jobId: "j1" });
    // Bigints cross exact, both ways.
    assert.equal(await client.stakeOf("w1"), 100n);
    const totals = await client.totals();
    assert.equal(totals.escrowed, 1_000n);
    assert.equal(typeof totals.paid, "bigint");
    const remoteEvents = await client.eventsSince(START);
    const localEvents = await ledger.as("c1").eventsSince(START);
    assert.deepEqual(strip(remoteEvents.events), strip(localEvents.events));
    assert.deepEqual(remoteEvents.next, localEvents.next);
    const limited = await client.eventsSince(START, { limit: 2 });
    assert.equal(limited.events.length, 2);
    assert.ok(remoteEvents.events.some((e) => e.name === "PaymentReleased"));
  });
});

Deno.test("a remote call that breaks a ledger rule rejects with the ledger's ChainError and code", async () => {
  await withServed(async (remote) => {
    const client = remote.as("c1");
    const error = await client.releasePayment({ jobId: "nope" }).then(
      () => assert.fail("released an unknown job"),
      (e) => e,
    );
    assert.ok(error instanceof ChainError, String(error));
    assert.equal(error.code, "unknown_job");
    assert.match(error.message, /nope/);
    // An invalid poll interval is refused at once, as by the ledger's own port.
    assert.throws(() => client.subscribe(() => {}, { pollMs: -1 }), RangeError);
  });
});

Deno.test("a remote escrowOf reads a job's escrow as the ledger's own port does: found, none, a bad id", async () => {
  await withServed(async (remote, ledger) => {
    const client = remote.as("c1");
    const reader = remote.as("r1");
    assert.equal(typeof reader.escrowOf, "function", "the server offers escrowOf");
    // No such job: undefined, as from the ledger itself (the wire carries it as null).
    assert.equal(await reader.escrowOf!("j1"), undefined);
    assert.equal(await ledger.as("r1").escrowOf!("j1"), undefined);
    const spec = "d".repeat(64);
    await ledger.as("v1").stake({ amount: 1_000n, role: "verifier" });
    await client.submitJob({
      jobId: "j1",
      amount: 10n,
      minStake: 0n,
      modelHash: MODEL,
      inputCommitment: INPUT,
      verifierCount: 1,
      specHash: spec,
    });
    const escrow = { jobId: "j1", client: "c1", specHash: spec, ended: false };
    assert.deepEqual(await reader.escrowOf!("j1"), escrow);
    assert.deepEqual(await ledger.as("r1").escrowOf!("j1"), escrow);
    await client.refund({ jobId: "j1", reason: "cancelled" });
    assert.deepEqual(await reader.escrowOf!("j1"), { ...escrow, ended: true });
    // A bad id keeps its error class and message across the stream.
    const local = await ledger.as("r1").escrowOf!("").catch((e: Error) => e);
    await assert.rejects(reader.escrowOf!(""), (e: Error) => {
      assert.ok(e instanceof RangeError, String(e));
      assert.equal(e.message, (local as Error).message);
      assert.match(e.message, /Invalid job id/);
      return true;
    });
    await assert.rejects(reader.escrowOf!(7 as unknown as string), TypeError);
  });
});

Deno.test("a remote subscription hands over every event in order, from a cursor, and stops", async () => {
  await withServed(async (remote) => {
    const client = remote.as("c1");
    await remote.as("w1").stake({ amount: 50n });
    const seen: ChainEvent[] = [];
    let wake = () => {};
    const stop = client.subscribe((e) => {
      seen.push(e);
      wake();
    }, { pollMs: 5 });
    const until = async (n: number) => {
      const deadline = Date.now() + 30_000;
      while (seen.length < n && Date.now() < deadline) {
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 50);
        });
      }
    };
    await until(1);
    assert.equal(seen[0]!.name, "WorkerStaked");
    await client.submitJob({
      jobId: "j2",
      amount: 10n,
      minStake: 1n,
      modelHash: MODEL,
      inputCommitment: INPUT,
    });
    await until(2);
    assert.deepEqual(seen.map((e) => e.name), ["WorkerStaked", "JobSubmitted"]);
    assert.equal((seen[1] as { amount: bigint }).amount, 10n);
    // A subscription from a later cursor starts there.
    const later: ChainEvent[] = [];
    const stopLater = client.subscribe((e) => later.push(e), {
      from: { blockNumber: seen[1]!.blockNumber, eventIndex: seen[1]!.eventIndex },
      pollMs: 5,
    });
    const deadline = Date.now() + 30_000;
    while (later.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(later.map((e) => e.name), ["JobSubmitted"]);
    stop();
    stopLater();
    await remote.as("w2").stake({ amount: 5n });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(seen.length, 2, "a stopped subscription got an event");
  });
});

Deno.test("the server refuses a line that is not JSON, an unknown method and a call without an account, with why", async () => {
  const ledger = LocalLedger.open(":memory:");
  const [client, server] = pipe();
  const refused: string[] = [];
  const serving = serveChain(ledger, server, { onRefused: (why) => refused.push(why) });
  const writer = client.writable.getWriter();
  const encoder = new TextEncoder();
  const lines: unknown[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of client.readable) {
      text += decoder.decode(chunk, { stream: true });
      const parts = text.split("\n");
      text = parts.pop()!;
      for (const part of parts) lines.push(JSON.parse(part));
    }
  })();
  await writer.write(encoder.encode("{not json\n"));
  await writer.write(
    encoder.encode(JSON.stringify({ id: 1, a: "c1", m: "mintMoney", p: [] }) + "\n"),
  );
  await writer.write(encoder.encode(JSON.stringify({ id: 2, m: "totals", p: [] }) + "\n"));
  await writer.write(encoder.encode(JSON.stringify({ id: 3, a: "c1", m: "totals", p: [] }) + "\n"));
  const deadline = Date.now() + 30_000;
  while (lines.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await writer.close();
  await serving;
  await reading;
  ledger.close();
  assert.equal(refused.length, 3, refused.join("; "));
  assert.match(refused[0]!, /not JSON/);
  assert.match(refused[1]!, /unknown method "mintMoney"/);
  assert.match(refused[2]!, /no account/);
  const [hello, ...answers] = lines as Record<string, unknown>[];
  assert.equal(hello!.hello, "ciro-chain/1");
  const byId = new Map(answers.map((a) => [a.id, a]));
  assert.match(String((byId.get(1)!.err as { message: string }).message), /unknown method/);
  assert.equal((byId.get(1)!.err as { code: string }).code, "rpc_error");
  assert.match(String((byId.get(2)!.err as { message: string }).message), /no account/);
  // The good call after the bad ones is answered.
  assert.ok("ok" in byId.get(3)!, JSON.stringify(byId.get(3)));
});

Deno.test("connecting to something that is not a chain server fails naming what it said", async () => {
  const [client, server] = pipe();
  const writer = server.writable.getWriter();
  const connecting = RemoteChain.connect(client);
  await writer.write(new TextEncoder().encode(JSON.stringify({ hello: "smtp/1" }) + "\n"));
  await assert.rejects(connecting, (e: Error) => {
    assert.ok(e instanceof ChainError);
    assert.match(e.message, /does not speak ciro-chain\/1: smtp\/1/);
    return true;
  });
  await writer.close();
});

Deno.test("when the server's stream ends, pending and later calls reject with rpc_error", async () => {
  const [client, server] = pipe();
  const writer = server.writable.getWriter();
  const connecting = RemoteChain.connect(client);
  await writer.write(
    new TextEncoder().encode(JSON.stringify({ hello: "ciro-chain/1", methods: ["totals"] }) + "\n"),
  );
  const remote = await connecting;
  const port = remote.as("c1");
  assert.equal(port.stake, undefined, "a method the server does not serve is absent");
  const pending = port.totals();
  await writer.close();
  await assert.rejects(pending, (e: Error) => {
    assert.ok(e instanceof ChainError);
    assert.equal(e.code, "rpc_error");
    assert.match(e.message, /closed its stream/);
    return true;
  });
  await assert.rejects(port.totals(), /closed its stream/);
  await remote.close();
});

Deno.test("a ledger in a child process serves a job's lifecycle (runtime/bench/chain/main.ts)", async () => {
  const main = fileURLToPath(new URL("../runtime/bench/chain/main.ts", import.meta.url));
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", main],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const remote = await RemoteChain.connect({ readable: child.stdout, writable: child.stdin });
  try {
    const client = remote.as("c1");
    await remote.as("w1").stake({ amount: 100n });
    await client.submitJob({
      jobId: "j1",
      amount: 1_000n,
      minStake: 10n,
      modelHash: MODEL,
      inputCommitment: INPUT,
    });
    await client.assignWorker({ jobId: "j1", worker: "w1", price: 600n });
    await remote.as("w1").submitResult({ jobId: "j1", commitment: RESULT });
    await client.recordVerification({ jobId: "j1", accepted: true });
    await client.releasePayment({ jobId: "j1" });
    const { events } = await client.eventsSince(START);
    assert.deepEqual(
      events.map((e) => e.name).filter((n) => n !== "ReputationUpdated"),
      [
        "WorkerStaked",
        "JobSubmitted",
        "WorkerAssigned",
        "ResultSubmitted",
        "JobVerified",
        "PaymentReleased",
      ],
    );
  } finally {
    await remote.close();
    const status = await child.status;
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    assert.equal(status.code, 0, stderr);
  }
});

Deno.test("calls made while a write is under way go out together in the next write", async () => {
  // A server side that records each write it gets and holds the first until released.
  const writes: string[] = [];
  let release = () => {};
  const held = new Promise<void>((r) => release = r);
  const down = new TransformStream<Uint8Array, Uint8Array>();
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      writes.push(new TextDecoder().decode(chunk));
      if (writes.length === 1) await held;
    },
  });
  const connecting = RemoteChain.connect({ readable: down.readable, writable });
  const hello = down.writable.getWriter();
  await hello.write(
    new TextEncoder().encode(JSON.stringify({ hello: "ciro-chain/1", methods: ["totals"] }) + "\n"),
  );
  const remote = await connecting;
  const port = remote.as("c1");
  // Three calls in one turn: one write.
  const first = [port.totals(), port.totals(), port.totals()];
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(writes.length, 1);
  assert.equal(writes[0]!.trim().split("\n").length, 3);
  // Five more, in separate turns, while that write is held: they wait and go out as one.
  const later = [];
  for (let i = 0; i < 5; i++) {
    later.push(port.totals());
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.equal(writes.length, 1, "a line was written while a write was under way");
  release();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(writes.length, 2);
  assert.equal(writes[1]!.trim().split("\n").length, 5);
  await hello.close();
  await Promise.allSettled([...first, ...later]);
  await remote.close();
});

Deno.test("aborting a signal rejects the calls waiting under it, not the others", async () => {
  // A server that says hello and never answers.
  const [client, server] = pipe();
  const connecting = RemoteChain.connect(client);
  const writer = server.writable.getWriter();
  await writer.write(
    new TextEncoder().encode(JSON.stringify({ hello: "ciro-chain/1", methods: ["totals"] }) + "\n"),
  );
  const remote = await connecting;
  const reading = server.readable.pipeTo(new WritableStream());
  const port = remote.as("c1");
  const abort = new AbortController();
  const a = port.totals({ signal: abort.signal });
  const b = port.totals({ signal: abort.signal });
  const unsignalled = port.totals();
  let settled = false;
  unsignalled.then(() => settled = true, () => settled = true);
  abort.abort(new Error("stopping"));
  await assert.rejects(a, /stopping/);
  await assert.rejects(b, /stopping/);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(settled, false, "a call without the signal was settled by its abort");
  await assert.rejects(port.totals({ signal: abort.signal }), /stopping/);
  await writer.close();
  await assert.rejects(unsignalled, /closed its stream/);
  await remote.close();
  await reading.catch(() => {});
});

Deno.test("a server's stats are answered where it serves them, refused with why where not", async () => {
  const ledger = LocalLedger.open(":memory:");
  for (const stats of [() => ({ cpuMs: 12.5 }), undefined]) {
    const [client, server] = pipe();
    const serving = serveChain(ledger, server, stats ? { stats } : {});
    const remote = await RemoteChain.connect(client);
    if (stats) assert.deepEqual(await remote.stats(), { cpuMs: 12.5 });
    else await assert.rejects(remote.stats(), /no stats served/);
    await remote.close();
    await serving;
  }
  ledger.close();
});

/**
 * A server on `ledger` spoken to line by line: `send` writes lines in one chunk; each line the
 * server writes is kept with whether a timer ran since the last `send` (`afterTimer`).
 */
function rawServer(ledger: PortFactory) {
  const [client, server] = pipe();
  const serving = serveChain(ledger, server);
  const writer = client.writable.getWriter();
  const lines: { value: Record<string, unknown>; afterTimer: boolean }[] = [];
  let timerRan = false;
  const reading = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of client.readable) {
      text += decoder.decode(chunk, { stream: true });
      const parts = text.split("\n");
      text = parts.pop()!;
      for (const part of parts) lines.push({ value: JSON.parse(part), afterTimer: timerRan });
    }
  })();
  return {
    lines,
    async send(...values: unknown[]) {
      timerRan = false;
      // Armed before the server reads the chunk: it runs before any timer the server arms.
      setTimeout(() => timerRan = true, 0);
      await writer.write(
        new TextEncoder().encode(values.map((v) => JSON.stringify(v)).join("\n") + "\n"),
      );
    },
    async until(test: () => boolean) {
      const deadline = Date.now() + 30_000;
      while (!test() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    },
    async close() {
      await writer.close();
      await serving;
      await reading;
    },
  };
}

Deno.test("a served subscription's events go out with the answers of the calls that made them, before any timer", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer(ledger);
  try {
    // A poll interval far longer than the test: only the read after the answers can hand them over.
    await raw.send({ s: 1, a: "c1", pollMs: 600_000 });
    await raw.until(() => raw.lines.length >= 1);
    const job = (id: string) => ({
      jobId: id,
      amount: { $bigint: "10" },
      minStake: { $bigint: "1" },
      modelHash: MODEL,
      inputCommitment: INPUT,
    });
    await raw.send(
      { id: 1, a: "c1", m: "submitJob", p: [job("j1")] },
      { id: 2, a: "c1", m: "submitJob", p: [job("j2")] },
    );
    await raw.until(() => raw.lines.some((l) => l.value.s === 1));
    const answers = raw.lines.filter((l) => typeof l.value.id === "number");
    const events = raw.lines.filter((l) => l.value.s === 1);
    assert.deepEqual(answers.map((l) => [l.value.id, "ok" in l.value, l.afterTimer]), [
      [1, true, false],
      [2, true, false],
    ]);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.deepEqual(
      (events[0]!.value.e as { name: string; jobId: string }[]).map((e) => [e.name, e.jobId]),
      [["JobSubmitted", "j1"], ["JobSubmitted", "j2"]],
    );
    assert.equal(events[0]!.afterTimer, false, "the events waited for a timer");
    // After the answers in the stream.
    assert.ok(raw.lines.indexOf(events[0]!) > raw.lines.indexOf(answers[1]!));
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a served subscription reads, at its poll, what another writer committed to the ledger's file", async () => {
  const dir = await Deno.makeTempDir();
  const served = LocalLedger.open(`${dir}/ledger.sqlite`);
  const other = LocalLedger.open(`${dir}/ledger.sqlite`);
  const raw = rawServer(served);
  try {
    await raw.send({ s: 1, a: "c1", pollMs: 5 });
    await other.as("w1").stake({ amount: 5n });
    await raw.until(() => raw.lines.some((l) => l.value.s === 1));
    const events = raw.lines.filter((l) => l.value.s === 1).flatMap((l) =>
      l.value.e as { name: string; worker: string }[]
    );
    assert.deepEqual(events.map((e) => [e.name, e.worker]), [["WorkerStaked", "w1"]]);
  } finally {
    await raw.close();
    served.close();
    other.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a served subscription from a bad cursor, or with a bad poll interval, ends with the error", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer(ledger);
  try {
    await raw.send(
      { s: 1, a: "c1", from: { blockNumber: -1, eventIndex: 0 } },
      { s: 2, a: "c1", pollMs: -5 },
    );
    await raw.until(() => raw.lines.filter((l) => "err" in l.value).length >= 2);
    const errors = new Map(
      raw.lines.map((l) => [l.value.s, l.value.err as { name: string; message: string }]),
    );
    assert.equal(errors.get(1)?.name, "RangeError", JSON.stringify(raw.lines));
    assert.match(errors.get(1)!.message, /blockNumber/);
    assert.equal(errors.get(2)?.name, "RangeError");
    assert.match(errors.get(2)!.message, /pollMs/);
    // Ended: a transaction later hands neither of them anything.
    await ledger.as("w1").stake({ amount: 5n });
    await raw.send({ id: 9, a: "c1", m: "totals", p: [] });
    await raw.until(() => raw.lines.some((l) => l.value.id === 9));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(raw.lines.filter((l) => "e" in l.value).length, 0, JSON.stringify(raw.lines));
  } finally {
    await raw.close();
    ledger.close();
  }
});

/** A submission of job `id` as it crosses the stream. */
function wireJob(id: string) {
  return {
    jobId: id,
    amount: { $bigint: "10" },
    minStake: { $bigint: "1" },
    modelHash: MODEL,
    inputCommitment: INPUT,
  };
}

Deno.test("the calls of one chunk run in one group of the ledger's (group commit)", async () => {
  const ledger = LocalLedger.open(":memory:");
  // How many blocks each group made.
  const groups: number[] = [];
  const raw = rawServer({
    as: (account) => ledger.as(account),
    group<T>(work: () => T): T {
      const before = ledger.head().blockNumber;
      const result = ledger.group(work);
      groups.push(ledger.head().blockNumber - before);
      return result;
    },
  });
  try {
    await raw.send(
      { id: 1, a: "c1", m: "submitJob", p: [wireJob("j1")] },
      { id: 2, a: "c1", m: "submitJob", p: [wireJob("j1")] },
      { id: 3, a: "c1", m: "submitJob", p: [wireJob("j2")] },
    );
    await raw.until(() => raw.lines.filter((l) => typeof l.value.id === "number").length >= 3);
    assert.deepEqual(groups, [2]);
    const answers = raw.lines.filter((l) => typeof l.value.id === "number").map((l) => l.value);
    assert.deepEqual(answers.map((a) => [a.id, "ok" in a]), [[1, true], [2, false], [3, true]]);
    assert.match(JSON.stringify(answers[1]!.err), /duplicate_job/);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a group that does not commit answers each of its calls with why, not with what it gave", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer({
    as: (account) => ledger.as(account),
    group<T>(work: () => T): T {
      // The calls ran (the ledger answered them), then the commit failed.
      ledger.group(work);
      throw new ChainError("rpc_error", "Cannot commit 2 transactions: the disk is full");
    },
  });
  try {
    await raw.send(
      { id: 1, a: "c1", m: "submitJob", p: [wireJob("j1")] },
      { id: 2, a: "c1", m: "totals", p: [] },
    );
    await raw.until(() => raw.lines.filter((l) => typeof l.value.id === "number").length >= 2);
    const answers = raw.lines.filter((l) => typeof l.value.id === "number").map((l) => l.value);
    assert.deepEqual(answers.map((a) => a.id), [1, 2]);
    for (const answer of answers) {
      assert.deepEqual(answer.err, {
        name: "ChainError",
        code: "rpc_error",
        message: "Cannot commit 2 transactions: the disk is full",
      });
    }
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("bigints anywhere in an answer cross the stream exact, and the rest as JSON gives it", async () => {
  const ledger = LocalLedger.open(":memory:");
  let answer: unknown = null;
  const [client, server] = pipe();
  const serving = serveChain(ledger, server, { stats: () => answer });
  const remote = await RemoteChain.connect(client);
  try {
    const value = fc.anything({
      withBigInt: true,
      key: fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__" && k !== "$bigint"),
      values: [fc.boolean(), fc.integer(), fc.bigInt(), fc.string(), fc.constant(null)],
      maxDepth: 4,
    });
    await fc.assert(
      fc.asyncProperty(value, async (v) => {
        answer = v;
        assert.deepEqual(await remote.stats(), v);
      }),
      { numRuns: 300 },
    );
    // A frozen value (a ledger's event) is copied where it holds a bigint, never changed.
    const event = Object.freeze({ name: "X", amount: 5n, nested: Object.freeze([1n, "a"]) });
    answer = event;
    assert.deepEqual(await remote.stats(), { name: "X", amount: 5n, nested: [1n, "a"] });
    assert.equal(event.amount, 5n);
  } finally {
    await remote.close();
    await serving;
    ledger.close();
  }
});

Deno.test("a line the ledger refuses in a chunk is answered with why, and the calls around it run once", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer(ledger);
  const poisoned = "x".repeat(5_000);
  try {
    await raw.send(
      { id: 1, a: "w1", m: "stake", p: [{ amount: { $bigint: "100" } }] },
      { id: 2, a: poisoned, m: "totals", p: [] },
      { s: 3, a: poisoned },
      { id: 4, a: "c1", m: "submitJob", p: [wireJob("j1")] },
    );
    await raw.send({ id: 5, a: "w1", m: "stakeOf", p: ["w1"] });
    await raw.until(() => raw.lines.some((l) => l.value.id === 5));
    const answers = raw.lines.filter((l) => typeof l.value.id === "number").map((l) => l.value);
    // Each call answered once: none of the first chunk ran again with the second.
    assert.deepEqual(answers.map((a) => a.id).sort(), [1, 2, 4, 5], JSON.stringify(answers));
    const byId = new Map(answers.map((a) => [a.id, a]));
    assert.ok("ok" in byId.get(1)!, JSON.stringify(byId.get(1)));
    assert.ok("ok" in byId.get(4)!, JSON.stringify(byId.get(4)));
    assert.deepEqual(byId.get(2)!.err, {
      name: "ChainError",
      code: "rpc_error",
      message: "Refused by the chain server: the account is refused: " +
        "Invalid account: expected 1 to 128 characters, got 5000",
    });
    const sub = raw.lines.find((l) => l.value.s === 3)?.value;
    assert.deepEqual(sub?.err, {
      name: "RangeError",
      message: "Invalid account: expected 1 to 128 characters, got 5000",
    });
    assert.deepEqual(byId.get(5)!.ok, { $bigint: "100" });
    assert.equal(await ledger.as("w1").stakeOf("w1"), 100n);
    assert.equal(ledger.head().blockNumber, 2);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a line whose serving throws is refused with its id; a throwing onRefused is only logged", async () => {
  const ledger = LocalLedger.open(":memory:");
  const [client, server] = pipe();
  const refused: string[] = [];
  const serving = serveChain(ledger, server, {
    stats: () => {
      throw new Error("The figures are gone");
    },
    onRefused: (why) => {
      refused.push(why);
      throw new Error("The embedder's callback failed");
    },
  });
  const remote = await RemoteChain.connect(client);
  try {
    const staking = remote.as("w1").stake({ amount: 7n });
    const stats = remote.stats();
    const after = remote.as("w1").stake({ amount: 8n });
    await assert.rejects(stats, (error: Error) => {
      assert.equal((error as ChainError).code, "rpc_error");
      assert.equal(
        error.message,
        "Refused by the chain server: the line could not be served: The figures are gone",
      );
      return true;
    });
    await staking;
    await after;
    assert.equal(await remote.as("w1").stakeOf("w1"), 15n);
    assert.deepEqual(refused, ["the line could not be served: The figures are gone"]);
  } finally {
    await remote.close();
    await serving;
    ledger.close();
  }
});

Deno.test("a subscription opened in a chunk reads the chunk's writes only after the group ended", async () => {
  const ledger = LocalLedger.open(":memory:");
  let grouped = false;
  const readsInGroup: boolean[] = [];
  const raw = rawServer({
    as(account) {
      const port = ledger.as(account);
      const eventsSince = port.eventsSince.bind(port);
      port.eventsSince = (from, options) => {
        readsInGroup.push(grouped);
        return eventsSince(from, options);
      };
      return port;
    },
    group<T>(work: () => T): T {
      grouped = true;
      try {
        return ledger.group(work);
      } finally {
        grouped = false;
      }
    },
  });
  try {
    await raw.send(
      { id: 1, a: "w1", m: "stake", p: [{ amount: { $bigint: "100" } }] },
      { s: 2, a: "w1", pollMs: 600_000 },
    );
    await raw.until(() => raw.lines.some((l) => l.value.s === 2));
    assert.ok(readsInGroup.length > 0);
    assert.deepEqual(readsInGroup.filter((inGroup) => inGroup), []);
    const events = raw.lines.find((l) => l.value.s === 2)!.value.e as { name: string }[];
    assert.deepEqual(events.map((e) => e.name), ["WorkerStaked"]);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a subscription opened in a chunk whose commit fails (a full disk) is handed none of its writes", async () => {
  // A real failed COMMIT: the server's process may not grow a file past 80 blocks (the ledger's
  // write-ahead log fills), and ignores SIGXFSZ, so SQLite gets an I/O error.
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ledger.sqlite`;
  const created = LocalLedger.open(path);
  await created.as("w0").stake({ amount: 1n });
  created.close();
  const main = fileURLToPath(new URL("../runtime/bench/chain/main.ts", import.meta.url));
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `trap '' XFSZ; ulimit -f 80; exec "$0" run --allow-read --allow-write --allow-env "$1" --ledger "$2"`,
      Deno.execPath(),
      main,
      path,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const remote = await RemoteChain.connect({ readable: child.stdout, writable: child.stdin });
  try {
    const w1 = remote.as("w1");
    let full: Error | undefined;
    for (let i = 0; i < 50 && full === undefined; i++) {
      await w1.stake({ amount: 1n }).catch((error) => full = error);
    }
    assert.match(String(full?.message), /^Cannot commit 1 transactions: /);
    const { next } = await w1.eventsSince(START);
    // One write: the stake and the subscription in one chunk.
    const heard: ChainEvent[] = [];
    const w2 = remote.as("w2");
    const staking = w2.stake({ amount: 5n });
    const end = w2.subscribe((event) => heard.push(event), { from: next, pollMs: 600_000 });
    await assert.rejects(staking, /^ChainError: Cannot commit 1 transactions: /);
    // A round trip later: what the subscription's first read found has come.
    assert.equal(await w2.stakeOf("w2"), 0n);
    assert.deepEqual(heard, []);
    assert.deepEqual((await w2.eventsSince(next)).events, []);
    end();
  } finally {
    await remote.close();
    const status = await child.status;
    const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, stderr);
  }
});

Deno.test("a line the server fails on past its own refusal stops it, and what ran before keeps its answer", async () => {
  const ledger = LocalLedger.open(":memory:");
  // Thrown for account "evil": an object that cannot be told as a string (telling it throws
  // another, whose telling throws `told`), past what the server's refusal of a line can word.
  const told = new Error("Cannot be told");
  const inner = {
    toString(): string {
      throw told;
    },
  };
  const untellable = {
    toString(): string {
      throw inner;
    },
  };
  const [client, server] = pipe();
  const serving = serveChain({
    as(account) {
      if (account === "evil") throw untellable;
      return ledger.as(account);
    },
    group: (work) => ledger.group(work),
  }, server);
  const writer = client.writable.getWriter();
  const lines: Record<string, unknown>[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of client.readable) text += decoder.decode(chunk, { stream: true });
    for (const line of text.split("\n").filter((l) => l.length > 0)) lines.push(JSON.parse(line));
  })();
  try {
    await writer.write(
      new TextEncoder().encode(
        JSON.stringify({ id: 1, a: "w1", m: "stake", p: [{ amount: { $bigint: "100" } }] }) +
          "\n" + JSON.stringify({ id: 2, a: "evil", m: "totals", p: [] }) + "\n",
      ),
    );
    await assert.rejects(serving, (error) => error === told);
    await reading;
    // The stake committed and is answered so, once; the server stopped at the line after it.
    const answers = lines.filter((l) => typeof l.id === "number");
    assert.deepEqual(answers.map((a) => [a.id, "ok" in a]), [[1, true]], JSON.stringify(answers));
    assert.equal(await ledger.as("w1").stakeOf("w1"), 100n);
  } finally {
    await writer.close().catch(() => {});
    await serving.catch(() => {});
    ledger.close();
  }
});

Deno.test("a chunk whose group cannot begin (another process holds the write lock) has its calls refused, run neither then nor later", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/ledger.sqlite`;
  const ledger = LocalLedger.open(path, { busyTimeoutMs: 0 });
  const other = new DatabaseSync(path);
  const raw = rawServer(ledger);
  try {
    other.exec("BEGIN IMMEDIATE");
    await raw.send(
      { id: 1, a: "w1", m: "stake", p: [{ amount: { $bigint: "100" } }] },
      { id: 2, a: "w1", m: "totals", p: [] },
    );
    await raw.until(() => raw.lines.filter((l) => typeof l.value.id === "number").length >= 2);
    other.exec("ROLLBACK");
    await raw.send({ id: 3, a: "w1", m: "stake", p: [{ amount: { $bigint: "5" } }] });
    await raw.until(() => raw.lines.some((l) => l.value.id === 3));
    const answers = raw.lines.filter((l) => typeof l.value.id === "number").map((l) => l.value);
    assert.deepEqual(answers.map((a) => a.id), [1, 2, 3], JSON.stringify(answers));
    for (const answer of answers.slice(0, 2)) {
      const err = answer.err as { name: string; code: string; message: string };
      assert.equal(err?.code, "rpc_error", JSON.stringify(answer));
      assert.match(err.message, /^Cannot begin a group of transactions: .*locked/);
    }
    assert.ok("ok" in answers[2]!, JSON.stringify(answers[2]));
    // Only the stake of the chunk after the lock's release ran.
    assert.equal(await ledger.as("w1").stakeOf("w1"), 5n);
  } finally {
    if (other.isTransaction) other.exec("ROLLBACK");
    other.close();
    await raw.close();
    ledger.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a call to a closed ledger is answered with why, and the server goes on", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer(ledger);
  try {
    ledger.close();
    await raw.send(
      { id: 1, a: "w1", m: "totals", p: [] },
      { id: 2, a: "w1", m: "stake", p: [{ amount: { $bigint: "1" } }] },
    );
    await raw.send({ id: 3, a: "w1", m: "totals", p: [] });
    await raw.until(() => raw.lines.filter((l) => typeof l.value.id === "number").length >= 3);
    const answers = raw.lines.filter((l) => typeof l.value.id === "number").map((l) => l.value);
    assert.deepEqual(answers.map((a) => a.id), [1, 2, 3], JSON.stringify(answers));
    for (const answer of answers) {
      const err = answer.err as { code: string; message: string };
      assert.equal(err?.code, "rpc_error", JSON.stringify(answer));
      assert.match(err.message, /^Cannot begin a group of transactions: .*closed/i);
    }
  } finally {
    await raw.close();
  }
});

/** The lines `raw` got for subscription `sub`. */
function linesOf(raw: ReturnType<typeof rawServer>, sub: number) {
  return raw.lines.filter((l) => l.value.s === sub).map((l) => l.value);
}

Deno.test("the server refuses an eventsSince limit above 10,000 with its id, and serves one at it", async () => {
  const ledger = LocalLedger.open(":memory:");
  await ledger.as("w1").stake({ amount: 5n });
  const raw = rawServer(ledger);
  try {
    await raw.send(
      { id: 1, a: "c1", m: "eventsSince", p: [START, { limit: 10_001 }] },
      { id: 2, a: "c1", m: "eventsSince", p: [START, { limit: 10_000 }] },
      { id: 3, a: "c1", m: "eventsSince", p: [START, { limit: Number.MAX_SAFE_INTEGER }] },
    );
    await raw.until(() => raw.lines.filter((l) => typeof l.value.id === "number").length >= 3);
    const byId = new Map(raw.lines.map((l) => [l.value.id, l.value]));
    assert.deepEqual(byId.get(1)!.err, {
      name: "ChainError",
      code: "rpc_error",
      message: "Refused by the chain server: the limit of eventsSince is above 10000: 10001",
    });
    assert.match(JSON.stringify(byId.get(3)!.err), /above 10000: 9007199254740991/);
    const ok = byId.get(2)!.ok as { events: { name: string }[] };
    assert.deepEqual(ok.events.map((e) => e.name), ["WorkerStaked"]);
  } finally {
    await raw.close();
    ledger.close();
  }
  // Through a remote port: the call rejects alone, the connection goes on.
  await withServed(async (remote, _ledger, refused) => {
    const port = remote.as("c1");
    await assert.rejects(port.eventsSince(START, { limit: 1_000_000 }), (e: Error) => {
      assert.equal((e as ChainError).code, "rpc_error");
      assert.match(e.message, /limit of eventsSince is above 10000: 1000000/);
      return true;
    });
    assert.deepEqual((await port.eventsSince(START, { limit: 10_000 })).events, []);
    assert.deepEqual(refused, ["the limit of eventsSince is above 10000: 1000000"]);
  });
});

Deno.test("an answer that cannot be encoded, or is longer than a line, answers its call rpc_error and the rest goes on", async () => {
  const ledger = LocalLedger.open(":memory:");
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic.self = cyclic;
  const huge = "x".repeat(MAX_LINE_BYTES);
  const factory: PortFactory = {
    as(account) {
      const port = ledger.as(account);
      if (account === "cyclic") port.totals = () => Promise.resolve(cyclic as never);
      if (account === "huge") port.reputationOf = () => Promise.resolve(huge as never);
      return port;
    },
    group: (work) => ledger.group(work),
  };
  const [client, server] = pipe();
  const serving = serveChain(factory, server);
  let stopped: unknown = "running";
  serving.then(() => stopped = "ended", (error) => stopped = error);
  const remote = await RemoteChain.connect(client);
  try {
    await assert.rejects(remote.as("cyclic").totals(), (e: Error) => {
      assert.equal((e as ChainError).code, "rpc_error");
      assert.match(
        e.message,
        /^Cannot send the answer to totals: Cannot encode a line: \S/,
      );
      return true;
    });
    await assert.rejects(remote.as("huge").reputationOf("w1"), (e: Error) => {
      assert.equal((e as ChainError).code, "rpc_error");
      assert.match(
        e.message,
        /^Cannot send the answer to reputationOf: Cannot send a line longer than 16777216 bytes/,
      );
      return true;
    });
    // The server and the client's connection go on, for every account.
    await remote.as("w1").stake({ amount: 3n });
    assert.equal(await remote.as("huge").stakeOf("w1"), 3n);
    assert.equal(stopped, "running");
    // A call whose own line is too long rejects alone, on the client, and the next is sent.
    await assert.rejects(remote.as("w1").stakeOf(huge), /longer than 16777216 bytes/);
    assert.equal(await remote.as("w1").stakeOf("w1"), 3n);
  } finally {
    await remote.close();
    await serving;
    ledger.close();
  }
});

Deno.test("a subscription's events too long for one line go out in halves; an event too long alone ends it with why", async () => {
  const ledger = LocalLedger.open(":memory:");
  const event = (i: number, size: number) => ({
    name: "WorkerStaked",
    blockNumber: 1,
    eventIndex: i,
    worker: "x".repeat(size),
  });
  // Three events of 6 MB (a line of 18 MB) for "big"; one of 17 MB for "huge"; once each.
  const served = new Set<string>();
  const factory: PortFactory = {
    as(account) {
      const port = ledger.as(account);
      const eventsSince = port.eventsSince.bind(port);
      port.eventsSince = (from, options) => {
        if (served.has(account) || (account !== "big" && account !== "huge")) {
          return eventsSince(from, options);
        }
        served.add(account);
        const events = account === "big"
          ? [0, 1, 2].map((i) => event(i, 6_000_000))
          : [event(0, MAX_LINE_BYTES + 1)];
        return Promise.resolve({
          events: events as unknown as ChainEvent[],
          // The ledger's own events follow from its start (the made-up ones are not its).
          next: START,
        });
      };
      return port;
    },
    group: (work) => ledger.group(work),
  };
  const raw = rawServer(factory);
  try {
    await raw.send({ s: 1, a: "big", pollMs: 600_000 }, { s: 2, a: "huge", pollMs: 600_000 });
    await raw.until(() =>
      linesOf(raw, 1).flatMap((l) => (l.e ?? []) as unknown[]).length >= 3 &&
      linesOf(raw, 2).length >= 1
    );
    const big = linesOf(raw, 1);
    assert.deepEqual(big.map((l) => (l.e as { eventIndex: number }[]).map((e) => e.eventIndex)), [
      [0, 1],
      [2],
    ]);
    const ended = linesOf(raw, 2);
    assert.equal(ended.length, 1, JSON.stringify(ended).slice(0, 500));
    const err = ended[0]!.err as { name: string; code: string; message: string };
    assert.equal(err.code, "rpc_error");
    assert.match(
      err.message,
      /^Cannot send an event of subscription 2: Cannot send a line longer than 16777216 bytes: \d+ characters$/,
    );
    // Ended: what is written later reaches 1, not 2.
    await raw.send({ id: 3, a: "w1", m: "stake", p: [{ amount: { $bigint: "4" } }] });
    await raw.until(() => linesOf(raw, 1).length >= 3);
    assert.equal(linesOf(raw, 1).length, 3);
    assert.equal(linesOf(raw, 2).length, 1);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a subscription that would poll more often than every 5 ms is refused, on the server and the client", async () => {
  const ledger = LocalLedger.open(":memory:");
  await ledger.as("w1").stake({ amount: 5n });
  const raw = rawServer(ledger);
  try {
    await raw.send(
      { s: 1, a: "c1", pollMs: 0 },
      { s: 2, a: "c1", pollMs: 4.9 },
      { s: 3, a: "c1", pollMs: "1" },
      { s: 4, a: "c1", pollMs: 5 },
    );
    await raw.until(() => [1, 2, 3, 4].every((s) => linesOf(raw, s).length >= 1));
    assert.deepEqual(linesOf(raw, 1), [{
      s: 1,
      err: { name: "RangeError", message: "Invalid pollMs: expected at least 5 ms, got 0" },
    }]);
    assert.match(JSON.stringify(linesOf(raw, 2)), /expected at least 5 ms, got 4.9/);
    assert.match(JSON.stringify(linesOf(raw, 3)), /expected at least 5 ms, got string/);
    assert.deepEqual(
      (linesOf(raw, 4)[0]!.e as { name: string }[]).map((e) => e.name),
      ["WorkerStaked"],
    );
  } finally {
    await raw.close();
    ledger.close();
  }
  await withServed((remote) => {
    assert.throws(
      () => remote.as("c1").subscribe(() => {}, { pollMs: 0 }),
      (e: Error) => e instanceof RangeError && /at least 5 ms, got 0/.test(e.message),
    );
    return Promise.resolve();
  });
});

Deno.test("a connection's 1,025th open subscription is refused with its number; one ended makes room", async () => {
  const ledger = LocalLedger.open(":memory:");
  await ledger.as("w1").stake({ amount: 5n });
  const raw = rawServer(ledger);
  try {
    const subs = Array.from({ length: 1_025 }, (_, i) => ({ s: i + 1, a: "c1", pollMs: 600_000 }));
    await raw.send(...subs);
    await raw.until(() => subs.every(({ s }) => linesOf(raw, s).length >= 1));
    for (const { s } of subs.slice(0, 1_024)) {
      assert.ok(
        "e" in linesOf(raw, s)[0]!,
        `subscription ${s}: ${JSON.stringify(linesOf(raw, s))}`,
      );
    }
    assert.deepEqual(linesOf(raw, 1_025), [{
      s: 1_025,
      err: {
        name: "ChainError",
        code: "rpc_error",
        message:
          "Refused by the chain server: too many subscriptions: at most 1024 open on one connection",
      },
    }]);
    await raw.send({ u: 1 }, { s: 1_026, a: "c1", pollMs: 600_000 }, { s: 1_027, a: "c1" });
    await raw.until(() => linesOf(raw, 1_026).length >= 1 && linesOf(raw, 1_027).length >= 1);
    assert.ok("e" in linesOf(raw, 1_026)[0]!, JSON.stringify(linesOf(raw, 1_026)));
    assert.match(JSON.stringify(linesOf(raw, 1_027)), /too many subscriptions/);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a tagged bigint of more than 100 digits refuses its line with its id, before it is turned into a bigint", async () => {
  const ledger = LocalLedger.open(":memory:");
  const raw = rawServer(ledger);
  const stake = (digits: string) => ({ amount: { $bigint: digits } });
  try {
    await raw.send(
      { id: 1, a: "w1", m: "stake", p: [stake("9".repeat(1_000_000))] },
      { id: 2, a: "w1", m: "stake", p: [stake("-" + "1".repeat(101))] },
      { id: 3, a: "w1", m: "stake", p: [stake("1".repeat(100))] },
      { s: 4, a: "w1", from: { blockNumber: { $bigint: "1".repeat(101) }, eventIndex: 0 } },
      { id: 5, a: "w1", m: "stake", p: [stake("7")] },
    );
    await raw.until(() =>
      raw.lines.filter((l) => typeof l.value.id === "number").length >= 4 &&
      linesOf(raw, 4).length >= 1
    );
    const byId = new Map(raw.lines.map((l) => [l.value.id, l.value]));
    assert.deepEqual(byId.get(1)!.err, {
      name: "ChainError",
      code: "rpc_error",
      message: "Refused by the chain server: a bigint has more than 100 digits: 1000000 digits",
    });
    assert.match(JSON.stringify(byId.get(2)!.err), /more than 100 digits: 101 digits/);
    // 100 digits are read as a bigint: the ledger refuses the amount itself (above a u256).
    const three = byId.get(3)!.err as { message: string };
    assert.doesNotMatch(three.message, /digits/);
    assert.match(three.message, /u256/);
    assert.deepEqual(linesOf(raw, 4), [{
      s: 4,
      err: {
        name: "ChainError",
        code: "rpc_error",
        message: "Refused by the chain server: a bigint has more than 100 digits: 101 digits",
      },
    }]);
    assert.ok("ok" in byId.get(5)!, JSON.stringify(byId.get(5)));
    assert.equal(await ledger.as("w1").stakeOf("w1"), 7n);
  } finally {
    await raw.close();
    ledger.close();
  }
});

Deno.test("a line longer than the bound is refused with why, even when it comes whole in one chunk", async () => {
  const ledger = LocalLedger.open(":memory:");
  const [client, server] = pipe();
  const refused: string[] = [];
  const serving = serveChain(ledger, server, { onRefused: (why) => refused.push(why) });
  const writer = client.writable.getWriter();
  const reading = new Response(client.readable).text();
  try {
    // One line of 16 MiB and a bit, in one write, then a call.
    const long = { id: 1, a: "w1", m: "stakeOf", p: ["x".repeat(MAX_LINE_BYTES)] };
    const after = { id: 2, a: "w1", m: "stakeOf", p: ["w1"] };
    await writer.write(
      new TextEncoder().encode(JSON.stringify(long) + "\n" + JSON.stringify(after) + "\n"),
    );
  } finally {
    await writer.close();
    await serving;
    ledger.close();
  }
  const lines = (await reading).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(refused, ["a line is longer than 16777216 bytes"]);
  assert.deepEqual(lines.filter((l) => typeof l.id === "number"), [{
    id: 2,
    ok: { $bigint: "0" },
  }]);
});

Deno.test("an answer holding a bigint of more than 100 digits rejects its call alone on the client", async () => {
  const [client, server] = pipe();
  const writer = server.writable.getWriter();
  const send = (value: unknown) =>
    writer.write(new TextEncoder().encode(JSON.stringify(value) + "\n"));
  const connecting = RemoteChain.connect(client);
  await send({ hello: "ciro-chain/1", methods: ["totals", "stakeOf"] });
  const remote = await connecting;
  const reading = server.readable.pipeTo(new WritableStream());
  try {
    const port = remote.as("c1");
    const first = port.stakeOf("w1");
    const second = port.stakeOf("w1");
    await send({ id: 1, ok: { $bigint: "1".repeat(101) } });
    await send({ id: 2, ok: { $bigint: "1".repeat(100) } });
    await assert.rejects(first, (e: Error) => {
      assert.equal((e as ChainError).code, "rpc_error");
      assert.equal(
        e.message,
        "The chain server sent a bad line: a bigint has more than 100 digits: 101 digits",
      );
      return true;
    });
    assert.equal(await second, BigInt("1".repeat(100)));
    // A bad line that answers no call still ends the connection.
    const third = port.totals();
    await send({ s: 7, e: [{ amount: { $bigint: "1".repeat(101) } }] });
    await assert.rejects(third, /sent a bad line: a bigint has more than 100 digits/);
  } finally {
    await writer.close();
    await remote.close();
    await reading.catch(() => {});
  }
});

Deno.test("the rest of a line refused as too long is dropped up to its end, not served as a line", async () => {
  const ledger = LocalLedger.open(":memory:");
  const [client, server] = pipe();
  const refused: string[] = [];
  const serving = serveChain(ledger, server, { onRefused: (why) => refused.push(why) });
  const writer = client.writable.getWriter();
  const reading = new Response(client.readable).text();
  const encoder = new TextEncoder();
  try {
    // A line's first 16 MiB and a bit, then its rest (a call of its own) and a line after it.
    await writer.write(encoder.encode("x".repeat(MAX_LINE_BYTES + 1)));
    const rest = { id: 1, a: "w1", m: "stake", p: [{ amount: { $bigint: "9" } }] };
    const after = { id: 2, a: "w1", m: "stakeOf", p: ["w1"] };
    await writer.write(
      encoder.encode(JSON.stringify(rest) + "\n" + JSON.stringify(after) + "\n"),
    );
  } finally {
    await writer.close();
    await serving;
  }
  const lines = (await reading).trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(refused, ["a line is longer than 16777216 bytes"]);
  assert.deepEqual(lines.filter((l) => typeof l.id === "number"), [{
    id: 2,
    ok: { $bigint: "0" },
  }]);
  assert.equal(await ledger.as("w1").stakeOf("w1"), 0n);
  ledger.close();
});
