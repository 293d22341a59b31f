/**
 * Stream framing for the direct protocols (request/response, snapshot, payload) on libp2p v3's
 * event-based streams: a u32 length prefix ({@link frame}, {@link readFrame}), writes that wait
 * for `drain` ({@link sendAll}) and a reader that pauses the stream when it falls behind
 * ({@link StreamReader}). Every wait takes an `AbortSignal`; {@link idleSignal} aborts when a
 * stream makes no progress for a while, so a stalled peer cannot hold a slot for long.
 *
 * @module
 */
import type { Stream } from "@libp2p/interface";

/** A stream made no progress (no byte read or written) within its idle timeout. */
export class StreamIdleError extends Error {
  override readonly name = "StreamIdleError";
  readonly code = "idle_timeout";
  constructor(idleMs: number) {
    super(`Stream idle: no progress for ${idleMs} ms`);
  }
}

/** An `AbortSignal` that aborts after `idleMs` without a {@link IdleSignal.touch}. */
export interface IdleSignal {
  readonly signal: AbortSignal;
  /** Marks progress: the idle timer starts again. */
  touch(): void;
  /** Stops the timer (the stream is done). */
  clear(): void;
}

/**
 * An idle timer for one stream: `signal` aborts with {@link StreamIdleError} once `idleMs` pass
 * without `touch()`, or when `parent` aborts.
 */
export function idleSignal(idleMs: number, parent?: AbortSignal): IdleSignal {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new StreamIdleError(idleMs)), idleMs);
  };
  const onParent = () => controller.abort(parent?.reason);
  parent?.addEventListener("abort", onParent, { once: true });
  if (parent?.aborted) controller.abort(parent.reason);
  else arm();
  return {
    signal: controller.signal,
    touch: () => {
      if (!controller.signal.aborted) arm();
    },
    clear: () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      parent?.removeEventListener("abort", onParent);
    },
  };
}

/** Prefixes `data` with its length (u32, big endian). */
export function frame(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.byteLength);
  new DataView(out.buffer).setUint32(0, data.byteLength);
  out.set(data, 4);
  return out;
}

/**
 * Reads one length-prefixed frame; `undefined` at a clean end of stream. Throws `RangeError`
 * when the announced length exceeds `maxBytes`.
 */
export async function readFrame(
  reader: StreamReader,
  maxBytes: number,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  const prefix = await reader.readExactly(4, signal);
  if (prefix === undefined) return undefined;
  const length = new DataView(prefix.buffer, prefix.byteOffset, 4).getUint32(0);
  if (length > maxBytes) {
    throw new RangeError(`Frame too large: ${length} bytes exceeds ${maxBytes}`);
  }
  const body = await reader.readExactly(length, signal);
  if (body === undefined) throw new RangeError(`Stream ended inside a frame of ${length} bytes`);
  return body;
}

/**
 * Sends `data` in chunks of at most `chunkBytes`; whenever `send()` returns `false` (the
 * muxer's window or buffer is full) it waits for the stream's `drain` event before the next
 * chunk, so at most one chunk beyond what the muxer accepted is ever queued. `progress` is
 * called after each chunk is handed over (to touch an {@link idleSignal}).
 */
export async function sendAll(
  stream: Stream,
  data: Uint8Array,
  signal?: AbortSignal,
  chunkBytes = 64 * 1024,
  progress?: () => void,
): Promise<void> {
  for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
    signal?.throwIfAborted();
    const chunk = data.subarray(offset, Math.min(data.byteLength, offset + chunkBytes));
    if (!stream.send(chunk)) await drained(stream, signal);
    progress?.();
  }
}

/**
 * Waits for `drain`. Not `stream.onDrain()`: in @libp2p/utils 7.4.1 its promise is created
 * once and never reset, so after the first drain it resolves at once and the write buffer
 * grows without bound (measured: 10 MB queued behind a paused reader).
 */
function drained(stream: Stream, signal?: AbortSignal): Promise<void> {
  if (!stream.writableNeedsDrain) return Promise.resolve();
  signal?.throwIfAborted();
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.removeEventListener("drain", onDrain);
      stream.removeEventListener("close", onClose);
      signal?.removeEventListener("abort", onAbort);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onClose = (event: Event) => {
      cleanup();
      reject(
        (event as Event & { error?: Error }).error ??
          new Error("Stream closed while waiting to send"),
      );
    };
    const onAbort = () => {
      cleanup();
      reject(signal?.reason);
    };
    stream.addEventListener("drain", onDrain);
    stream.addEventListener("close", onClose);
    signal?.addEventListener("abort", onAbort);
  });
}

/**
 * Reads a libp2p v3 stream through its events. Incoming chunks queue up to `highWaterMark`
 * bytes; above it the stream is paused (the muxer stops granting the sender window) until
 * the reader catches up.
 */
export class StreamReader {
  readonly #stream: Stream;
  readonly #highWaterMark: number;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #remoteEnded = false;
  #closed = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(stream: Stream, options: { highWaterMark?: number } = {}) {
    this.#stream = stream;
    this.#highWaterMark = options.highWaterMark ?? 1_048_576;
    stream.addEventListener("message", (event) => {
      const chunk = event.data.subarray();
      if (chunk.byteLength === 0) return;
      this.#chunks.push(chunk);
      this.#buffered += chunk.byteLength;
      // Pause in a microtask: this listener may run inside `resume()`, which ends by telling
      // the muxer to resume; a pause issued here would be undone by it.
      if (this.#buffered > this.#highWaterMark) queueMicrotask(() => this.#maybePause());
      this.#notify();
    });
    stream.addEventListener("remoteCloseWrite", () => {
      this.#remoteEnded = true;
      this.#notify();
    });
    stream.addEventListener("close", (event) => {
      this.#closed = true;
      if (event.error !== undefined) this.#error = event.error;
      this.#notify();
    });
  }

  /** Bytes queued and not yet read. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Reads up to `maxBytes` (at least one byte); `undefined` at the end of the stream. */
  async read(maxBytes: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    while (this.#chunks.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#stream.readStatus === "paused") this.#stream.resume();
      if ((this.#remoteEnded && this.#stream.readBufferLength === 0) || this.#closed) {
        return undefined;
      }
      await this.#waitForEvent(signal);
    }
    const head = this.#chunks[0]!;
    let chunk: Uint8Array;
    if (head.byteLength <= maxBytes) {
      chunk = head;
      this.#chunks.shift();
    } else {
      chunk = head.subarray(0, maxBytes);
      this.#chunks[0] = head.subarray(maxBytes);
    }
    this.#buffered -= chunk.byteLength;
    if (this.#buffered <= this.#highWaterMark / 2 && this.#stream.readStatus === "paused") {
      this.#stream.resume();
    }
    return chunk;
  }

  /**
   * Reads exactly `length` bytes; `undefined` when the stream ends before the first byte,
   * `RangeError` when it ends in the middle.
   */
  async readExactly(length: number, signal?: AbortSignal): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(length);
    let filled = 0;
    while (filled < length) {
      const chunk = await this.read(length - filled, signal);
      if (chunk === undefined) {
        if (filled === 0) return undefined;
        throw new RangeError(`Stream ended after ${filled} of ${length} bytes`);
      }
      out.set(chunk, filled);
      filled += chunk.byteLength;
    }
    return out;
  }

  #maybePause(): void {
    if (this.#buffered > this.#highWaterMark && this.#stream.readStatus === "readable") {
      this.#stream.pause();
    }
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #waitForEvent(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#wake = undefined;
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
    });
  }
}
