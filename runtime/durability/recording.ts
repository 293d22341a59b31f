/**
 * Recordings: a documented, versioned, portable file of what one or more nodes journaled, for
 * replay and research. The format is JSON Lines (UTF-8, one JSON value per line); every
 * `bigint` is written as `{ "$bigint": "<decimal>" }`, and an object with an own `"$bigint"` key
 * (a job's input may hold one) as `{ "$bigint": { ...the object } }` (see `_codec.ts`).
 *
 * Format version 1:
 *
 * 1. Line 1, the header:
 *    `{ "format": "ciro.recording", "version": 1, "engine": "@ciro/engine@0.1.0",
 *    "machines": { "job": 1, "bid": 1, "peer": 1 }, "created": "<ISO time>", "config": {...} }`.
 *    `machines` are the machine versions the recording was made with; `config` is free-form
 *    (the demo's options, say).
 * 2. One stream line per node, before that node's first entry:
 *    `{ "stream": { "id", "roles", "policy", "peer"?, "intensity"?, "worker"? } }`: what replay
 *    needs to rebuild the node's tree (and counterfactual replay to re-simulate it).
 * 3. Entry lines, each node's in its own sequence (1, 2, 3, ... with no gap), streams
 *    interleaved in the order things happened:
 *    `{ "node", "seq", "at", "source", "target", "event", "outcome" }`, where `outcome` is
 *    `{ "status": "accepted" | "rejected" | "crashed", "actor", "state", "hash", "reason"? }`
 *    (the addressed actor after delivery, its state value and the state hash of its context),
 *    or null when the node stopped before delivering it.
 * 4. The last line: `{ "end": { "entries": <count>, "streams": { "<node>": <last seq> } } }`.
 *    A file without it is truncated.
 *
 * Version 2 adds `outcome.effects` (the effects a delivery emitted, compared in replay) and the
 * `effect` an outcome event closes.
 *
 * Version 3 chains the lines: every line, the header included, ends with a last member
 * `"c": "<32 hex digits>"`, {@link chainHash} over the previous line's `c` (`""` for line 1)
 * and the line's own text without that member (the bytes before `,"c":`, closed by `}`). An edit
 * anywhere, in any field of any line (an event the actor ignores, a header value), breaks the
 * chain at that line, and {@link parseRecording} names it. Versions 1 and 2 carry no chain: they
 * are checked as before (the structure: sequence without gaps, the end line's counts; then the
 * per-step replay of state, context hash and, in version 2, effects), so an edit that changes none
 * of those is not caught in them.
 *
 * `deno task export <data dir | journal.sqlite> [<out.jsonl>]` turns a node's journal into a
 * recording.
 *
 * @module
 */
import { chainHash, decodeJson, encodeJson, outcomeOf, type RecordedEnvelope } from "./_codec.ts";
import {
  type DeliveredActor,
  type EffectRecord,
  type Envelope,
  type JournalSink,
  SOURCES,
} from "../kernel/mod.ts";
import { ENGINE_VERSION, MACHINE_VERSIONS, type NodeDescriptor, SqliteJournal } from "./journal.ts";

/** The recording format this engine writes and reads. */
export const RECORDING_FORMAT = "ciro.recording";
/**
 * The recording format version this engine writes. Version 2 adds the effects each delivery
 * emitted (`outcome.effects`, compared in replay) and the effect an outcome event closes
 * (`effect`); version 1 recordings still replay, without the effect comparison. Version 3
 * hash-chains the lines (see the module doc); versions 1 and 2 still read, unchained.
 */
export const RECORDING_VERSION = 3;

/** The recording format versions this engine reads. */
export const READABLE_RECORDING_VERSIONS: readonly number[] = [1, 2, 3];

/** The first version whose lines are hash-chained. */
const CHAINED_VERSION = 3;

/** The chain member at the end of a version 3 line. */
const CHAIN_MEMBER = /,"c":"([0-9a-f]{32})"\}$/;

/** `text` (one JSON object) with its chain member appended, given the previous link. */
function chainLine(prev: string, text: string): { line: string; link: string } {
  const link = chainHash(prev, [text]);
  return { line: `${text.slice(0, -1)},"c":"${link}"}`, link };
}

/** Line 1 of a recording. */
export interface RecordingHeader {
  readonly format: typeof RECORDING_FORMAT;
  readonly version: number;
  readonly engine: string;
  readonly machines: Readonly<Record<string, number>>;
  readonly created: string;
  readonly config: Readonly<Record<string, unknown>>;
}

/** The last line of a recording. */
export interface RecordingEnd {
  readonly entries: number;
  /** Each node's last sequence number. */
  readonly streams: Readonly<Record<string, number>>;
}

/** One entry: a node's envelope with its recorded outcome, and where it is in the file. */
export interface RecordingEntry extends RecordedEnvelope {
  readonly node: string;
  /** 1-based line number in the file. */
  readonly line: number;
}

/** A parsed recording. */
export interface Recording {
  readonly header: RecordingHeader;
  readonly nodes: readonly NodeDescriptor[];
  readonly entries: readonly RecordingEntry[];
  readonly end: RecordingEnd;
}

/**
 * A file that is not a readable recording (foreign, truncated, reordered, malformed); match on
 * `error.name === "RecordingError"`. `line` names the line at fault.
 */
export class RecordingError extends Error {
  override readonly name = "RecordingError";
  readonly line: number | null;
  constructor(message: string, line: number | null = null) {
    super(message);
    this.line = line;
  }
}

/** The header of a recording made now. */
export function recordingHeader(config: Readonly<Record<string, unknown>> = {}): RecordingHeader {
  return {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    engine: ENGINE_VERSION,
    machines: MACHINE_VERSIONS,
    created: new Date().toISOString(),
    config,
  };
}

const encoder = new TextEncoder();

function writeAll(file: Deno.FsFile, text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
}

/**
 * Writes a recording as nodes run: give each node the {@link JournalSink} of
 * {@link RecordingWriter.sink}, and close the writer when they stop.
 */
export class RecordingWriter {
  /** The file written. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #last = new Map<string, number>();
  readonly #sinks: RecordingSink[] = [];
  #link = "";
  #buffer = "";
  #entries = 0;
  #closed = false;

  private constructor(path: string, file: Deno.FsFile) {
    this.path = path;
    this.#file = file;
  }

  /** Creates (or replaces) the recording at `path` and writes its header. */
  static create(
    path: string,
    config: Readonly<Record<string, unknown>> = {},
    made: Partial<Pick<RecordingHeader, "engine" | "machines">> = {},
  ): RecordingWriter {
    const writer = new RecordingWriter(
      path,
      Deno.openSync(path, { write: true, create: true, truncate: true }),
    );
    writer.#write(encodeJson({ ...recordingHeader(config), ...made }));
    return writer;
  }

  /** How many entries were written. */
  get entries(): number {
    return this.#entries;
  }

  /** Declares node `descriptor`'s stream and returns the journal sink its node appends to. */
  sink(descriptor: NodeDescriptor): JournalSink {
    if (this.#last.has(descriptor.id)) {
      throw new RangeError(`Cannot record node "${descriptor.id}" twice`);
    }
    this.#last.set(descriptor.id, 0);
    this.#write(encodeJson({ stream: descriptor }));
    const sink = new RecordingSink(this, descriptor.id);
    this.#sinks.push(sink);
    return sink;
  }

  /** @internal Writes one entry line. */
  entry(node: string, envelope: Envelope, outcome: RecordedEnvelope["outcome"]): void {
    if (this.#closed) return;
    this.#entries++;
    this.#last.set(node, envelope.seq);
    this.#write(encodeJson({
      node,
      seq: envelope.seq,
      at: envelope.at,
      source: envelope.source,
      target: envelope.target,
      event: envelope.event,
      ...(envelope.effect === undefined ? {} : { effect: envelope.effect }),
      outcome,
    }));
  }

  #write(text: string): void {
    const { line, link } = chainLine(this.#link, text);
    this.#link = link;
    this.#buffer += line + "\n";
    if (this.#buffer.length > 1 << 20) this.flush();
  }

  /** Writes buffered lines to the file. */
  flush(): void {
    if (this.#buffer.length === 0) return;
    writeAll(this.#file, this.#buffer);
    this.#buffer = "";
  }

  /** Writes entries never delivered (outcome null), the end line, and closes the file. */
  close(): void {
    if (this.#closed) return;
    for (const sink of this.#sinks) sink.drainUndelivered();
    this.#write(
      encodeJson({ end: { entries: this.#entries, streams: Object.fromEntries(this.#last) } }),
    );
    this.flush();
    this.#closed = true;
    this.#file.close();
  }
}

class RecordingSink implements JournalSink {
  readonly #writer: RecordingWriter;
  readonly #node: string;
  readonly #pending = new Map<number, Envelope>();
  #next = 1;

  constructor(writer: RecordingWriter, node: string) {
    this.#writer = writer;
    this.#node = node;
  }

  nextSeq(): number {
    return this.#next;
  }

  append(envelope: Envelope): void {
    this.#next = envelope.seq + 1;
    this.#pending.set(envelope.seq, envelope);
  }

  delivered(
    envelope: Envelope,
    outcome: { readonly status: "accepted" | "rejected" | "crashed"; readonly reason?: string },
    actor: DeliveredActor | undefined,
    effects?: readonly EffectRecord[],
  ): void {
    // Delivery is in sequence order: anything older still pending was never delivered.
    for (const [seq, earlier] of this.#pending) {
      if (seq >= envelope.seq) break;
      this.#pending.delete(seq);
      this.#writer.entry(this.#node, earlier, null);
    }
    this.#pending.delete(envelope.seq);
    this.#writer.entry(this.#node, envelope, outcomeOf(outcome, actor, effects));
  }

  drainUndelivered(): void {
    for (const envelope of this.#pending.values()) this.#writer.entry(this.#node, envelope, null);
    this.#pending.clear();
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Parses a recording's text. Throws a {@link RecordingError} naming the line for a foreign,
 * truncated, reordered or malformed file.
 */
export function parseRecording(text: string, options: { name?: string } = {}): Recording {
  const name = options.name ?? "recording";
  const lines = text.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  if (lines.length === 0) throw new RecordingError(`Not a CIRO recording: "${name}" is empty`, 1);
  const parse = (index: number): unknown => {
    try {
      return decodeJson(lines[index]!);
    } catch (error) {
      const last = index === lines.length - 1;
      if (index === 0) {
        throw new RecordingError(
          `Not a CIRO recording: line 1 of "${name}" is not JSON (${(error as Error).message})`,
          1,
        );
      }
      throw new RecordingError(
        `Invalid recording "${name}": line ${index + 1} is not valid JSON${
          last ? " (the file looks truncated)" : ""
        }: ${(error as Error).message}`,
        index + 1,
      );
    }
  };
  const header = parse(0);
  if (!isRecord(header) || header["format"] !== RECORDING_FORMAT) {
    throw new RecordingError(
      `Not a CIRO recording: line 1 of "${name}" has no "format": "${RECORDING_FORMAT}" header`,
      1,
    );
  }
  if (!READABLE_RECORDING_VERSIONS.includes(header["version"] as number)) {
    throw new RecordingError(
      `Unsupported recording format version ${
        describe(header["version"])
      } in "${name}" (line 1): this engine reads versions ${
        READABLE_RECORDING_VERSIONS.join(", ")
      }`,
      1,
    );
  }
  if ((header["version"] as number) >= CHAINED_VERSION) {
    checkChain(lines, name);
    for (let i = 0; i < lines.length; i++) lines[i] = unchained(lines[i]!);
    delete header["c"];
  }
  if (!isRecord(header["machines"])) {
    throw new RecordingError(`Invalid recording "${name}": line 1 names no machine versions`, 1);
  }
  const nodes = new Map<string, NodeDescriptor>();
  const last = new Map<string, number>();
  const entries: RecordingEntry[] = [];
  let end: RecordingEnd | undefined;
  for (let i = 1; i < lines.length; i++) {
    const lineNo = i + 1;
    const fail = (why: string): never => {
      throw new RecordingError(`Invalid recording "${name}": line ${lineNo}: ${why}`, lineNo);
    };
    if (lines[i]!.trim() === "") fail("the line is empty");
    const value = parse(i);
    if (!isRecord(value)) fail("not a JSON object");
    const v = value as Record<string, unknown>;
    if (end !== undefined) fail("a line after the end line");
    if (isRecord(v["stream"])) {
      const d = v["stream"] as unknown as NodeDescriptor;
      if (typeof d.id !== "string" || !Array.isArray(d.roles) || !isRecord(d.policy)) {
        fail("a stream line without id, roles and policy");
      }
      if (nodes.has(d.id)) fail(`node "${d.id}" is declared twice`);
      nodes.set(d.id, d);
      last.set(d.id, 0);
      continue;
    }
    if (isRecord(v["end"])) {
      const e = v["end"] as unknown as RecordingEnd;
      if (e.entries !== entries.length) {
        fail(`the end line counts ${e.entries} entries, the file holds ${entries.length}`);
      }
      for (const [node, seq] of Object.entries(e.streams ?? {})) {
        if (last.get(node) !== seq) {
          fail(
            `the end line says node "${node}" ends at seq ${seq}, the file ends it at seq ${
              last.get(node) ?? "none"
            }`,
          );
        }
      }
      end = e;
      continue;
    }
    const node = v["node"];
    if (typeof node !== "string") fail("neither a stream, an entry nor the end line");
    const seq = v["seq"];
    const prev = last.get(node as string);
    if (prev === undefined) fail(`an entry of node "${node}", which no stream line declared`);
    if (!Number.isSafeInteger(seq) || (seq as number) < 1) fail(`invalid seq ${describe(seq)}`);
    if (seq !== prev! + 1) {
      fail(
        (seq as number) <= prev!
          ? `seq ${seq} of node "${node}" comes after seq ${prev}: the file is reordered`
          : `seq ${seq} of node "${node}" follows seq ${prev}: entries ${prev! + 1}..${
            (seq as number) - 1
          } are missing`,
      );
    }
    if (typeof v["at"] !== "number" || !Number.isFinite(v["at"])) {
      fail(`seq ${seq} of node "${node}" has no virtual time "at"`);
    }
    if (!(SOURCES as readonly unknown[]).includes(v["source"])) {
      fail(`seq ${seq} of node "${node}" has unknown source ${describe(v["source"])}`);
    }
    if (typeof v["target"] !== "string") fail(`seq ${seq} of node "${node}" has no target`);
    const event = v["event"];
    if (!isRecord(event) || typeof event["type"] !== "string") {
      fail(`seq ${seq} of node "${node}" has no event with a type`);
    }
    const outcome = v["outcome"];
    if (
      outcome !== null &&
      (!isRecord(outcome) ||
        !["accepted", "rejected", "crashed"].includes(outcome["status"] as string))
    ) {
      fail(`seq ${seq} of node "${node}" has an invalid outcome ${describe(outcome)}`);
    }
    if (
      isRecord(outcome) && outcome["effects"] !== undefined &&
      typeof outcome["effects"] !== "string"
    ) {
      fail(`seq ${seq} of node "${node}" has invalid effects ${describe(outcome["effects"])}`);
    }
    const effect = v["effect"];
    if (effect !== undefined && (typeof effect !== "string" || !/^\d+\.\d+$/.test(effect))) {
      fail(`seq ${seq} of node "${node}" closes an invalid effect id ${describe(effect)}`);
    }
    last.set(node as string, seq as number);
    entries.push({
      node: node as string,
      line: lineNo,
      seq: seq as number,
      at: v["at"] as number,
      source: v["source"] as Envelope["source"],
      target: v["target"] as string,
      event: event as Envelope["event"],
      ...(effect === undefined ? {} : { effect: effect as string }),
      outcome: outcome as RecordedEnvelope["outcome"],
    });
  }
  if (end === undefined) {
    const tail = entries[entries.length - 1];
    throw new RecordingError(
      `Recording "${name}" is truncated: it ends at line ${lines.length} without its end line${
        tail ? ` (the last entry is seq ${tail.seq} of node "${tail.node}")` : ""
      }`,
      lines.length,
    );
  }
  return { header: header as unknown as RecordingHeader, nodes: [...nodes.values()], entries, end };
}

/** A chained line without its chain member. */
function unchained(line: string): string {
  const match = CHAIN_MEMBER.exec(line);
  return match === null ? line : `${line.slice(0, match.index)}}`;
}

/** Checks the chain of a version 3 recording's lines; throws naming the first line that breaks. */
function checkChain(lines: readonly string[], name: string): void {
  let prev = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const match = CHAIN_MEMBER.exec(line);
    const last = i === lines.length - 1;
    if (match === null) {
      // A last line cut short: the JSON parser names it as truncated.
      if (last) return;
      throw new RecordingError(
        `Invalid recording "${name}": line ${i + 1} has no chain checksum "c" at its end`,
        i + 1,
      );
    }
    const link = chainHash(prev, [`${line.slice(0, match.index)}}`]);
    if (link !== match[1]) {
      throw new RecordingError(
        `Invalid recording "${name}": line ${
          i + 1
        }: its chain checksum does not match (the line, or the chain before it, was edited)`,
        i + 1,
      );
    }
    prev = link;
  }
}

/**
 * The lines of a version 3 recording with their chain computed again (each line's `c` replaced):
 * for tools and tests that edit a recording on purpose and want the edit to reach replay.
 */
export function rechainRecording(text: string): string {
  const lines = text.split("\n");
  const version = /"version":(\d+)/.exec(lines[0] ?? "")?.[1];
  if (Number(version) < CHAINED_VERSION) return text;
  let prev = "";
  return lines.map((line) => {
    if (line === "") return line;
    const { line: chained, link } = chainLine(prev, unchained(line));
    prev = link;
    return chained;
  }).join("\n");
}

/** Reads and parses the recording at `path`. */
export async function readRecording(path: string): Promise<Recording> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new RecordingError(`Cannot read recording "${path}": ${(error as Error).message}`);
  }
  return parseRecording(text, { name: path });
}

/** The journal file of a data directory, or `path` itself when it names a file. */
export function journalPathOf(path: string): string {
  try {
    if (Deno.statSync(path).isDirectory) return `${path}/journal.sqlite`;
  } catch {
    // Not there: let opening it say so.
  }
  return path;
}

/**
 * Writes the journal at `journalPath` (a data directory or its `journal.sqlite`) as a
 * recording at `outPath`. Returns the number of entries written.
 */
export function exportJournal(
  journalPath: string,
  outPath: string,
  options: { config?: Readonly<Record<string, unknown>> } = {},
): number {
  const path = journalPathOf(journalPath);
  try {
    Deno.statSync(path);
  } catch {
    throw new RecordingError(`Cannot export "${journalPath}": no journal at "${path}"`);
  }
  const journal = SqliteJournal.open(path, { checkpointEvery: 0 });
  try {
    const node = journal.node;
    if (node === undefined) {
      throw new RecordingError(
        `Cannot export "${path}": the journal does not name its node (open it with the node option)`,
      );
    }
    const meta = journal.meta;
    const writer = RecordingWriter.create(outPath, { ...options.config, exportedFrom: path }, {
      ...(meta["engine"] ? { engine: meta["engine"] } : {}),
      ...(meta["machines"] ? { machines: JSON.parse(meta["machines"]) } : {}),
    });
    try {
      writer.sink(node);
      for (const entry of journal.entries()) writer.entry(node.id, entry, entry.outcome);
    } finally {
      writer.close();
    }
    return writer.entries;
  } finally {
    journal.close();
  }
}
