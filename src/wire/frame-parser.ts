/**
 * Incremental parser and canonicalizer of Dask's TCP/TLS framing:
 *
 *   u64 L | u64 n | u64 len_0 .. len_{n-1} | frame_0 .. frame_{n-1}      (all LE)
 *
 * The guarantee it gives the policy: every message the scheduler reads is a
 * message this parser delimited, with the same frame 0. Readers of different
 * Dask versions split the same bytes differently: 2022.12 reads exactly
 * L bytes and takes what follows as the next message; since 2023.11 the
 * reader takes the frames inside L and then reads the missing ones by their
 * lengths. They agree only when L = 8 + 8n + sum(len_i). So the parser
 *   - accepts L only where a Dask writer puts it: at the end of a leading run
 *     of frames, frame 0 included (L - 8 - 8n = len_0 + .. + len_k, k >= 0);
 *     anything else is refused (GW_WIRE_LENGTH_MISMATCH);
 *   - forwards every message with L rewritten to 8 + 8n + sum(len_i), which
 *     both readers split exactly as the parser did (a 2023.11+ writer's short
 *     L, sent with large uncompressed buffers, only loses its memory hint);
 *   - holds each message's prelude and frame 0 until the sink has decided on
 *     frame 0, so a refused message never reaches the scheduler, not even in
 *     part: the sink may forward it, drop it whole, or stop the stream.
 *
 * Zero-copy: forwarded bytes are views of the caller's chunks, coalesced so
 * that a chunk of whole, unchanged messages goes out as one view; payload
 * frames after frame 0 stream through as they arrive. The only copies: frame
 * 0 when it straddles chunks, and the 8 bytes of a rewritten L. What is held
 * is bounded by the prelude (8n) and frame 0 (maxFrame0Bytes); every declared
 * count and length is checked against the limits as soon as it is read.
 * This module never touches a socket and does not decode frame 0.
 */
import { GatewayError } from '../errors/base.js';
import { wireError } from './errors.js';

export interface FrameLimits {
  /** Most frames one message may declare (n). */
  readonly maxFrames: number;
  /** Largest frame 0 (the msgpack message) that will be buffered and decoded. */
  readonly maxFrame0Bytes: number;
  /** Largest whole message, prelude included (16 + 8n + sum(len_i)). */
  readonly maxMessageBytes: number;
}

/** A sink's answer that drops the message (prelude, frame 0 and payload) and goes on. */
export const DROP: unique symbol = Symbol('drop');

export interface Frame0Sink<R> {
  /**
   * Frame 0 of a message as a view [start, end) of `buf`, valid only during
   * the call. null forwards the message, DROP drops it, any other value
   * stops the parser for good.
   */
  frame0(buf: Buffer, start: number, end: number, frames: number, messageBytes: number): R | typeof DROP | null;
}

const enum State {
  Length,
  Count,
  FrameLengths,
  Frame0,
  Payload,
  Stopped,
}

// u64 values are read as two u32 halves; a high half above this is > 2^53-1.
const MAX_SAFE_HIGH = 0x1fffff;
const NEED_MORE = -1;
const EMPTY = Buffer.alloc(0);
const OVERFLOW = -2;

export class FrameParser<R> {
  readonly #limits: FrameLimits;
  readonly #sink: Frame0Sink<R>;
  readonly #scratch = Buffer.alloc(8);
  // Unconsumed input.
  readonly #chunks: Buffer[] = [];
  #offset = 0; // into #chunks[0]
  #buffered = 0;
  // Consumed but undecided: the current message's prelude and frame 0, as ranges of chunks.
  readonly #heldChunks: Buffer[] = [];
  readonly #heldStarts: number[] = [];
  readonly #heldEnds: number[] = [];
  // Entries in use: the arrays are reused, never shrunk (a length store is a runtime call per message).
  #heldCount = 0;
  #heldBytes = 0;
  // The range of one chunk waiting to be appended to `out` (coalescing).
  #out: Buffer[] = [];
  #pendChunk: Buffer | null = null;
  #pendStart = 0;
  #pendEnd = 0;
  #state = State.Length;
  #result: R | GatewayError | null = null;

  // Per-message state, reset in #startMessage only.
  #declaredL = 0;
  #frames = 0;
  #index = 0;
  #len0 = 0;
  #sum = 0;
  #runMatched = false;
  #remaining = 0;
  #dropping = false;

  constructor(limits: FrameLimits, sink: Frame0Sink<R>) {
    this.#limits = limits;
    this.#sink = sink;
  }

  /** Bytes held from earlier chunks: undecided prelude and frame 0, and unparsed input. */
  get bufferedBytes(): number {
    return this.#buffered + this.#heldBytes;
  }

  /** The error or the sink's stop value once the parser has stopped. */
  get result(): R | GatewayError | null {
    return this.#result;
  }

  /**
   * Feeds one chunk; appends to `out`, in order, the bytes that may go on.
   * Returns null while the stream is well-formed and the sink has not
   * stopped it; otherwise the error or the sink's value, every time after.
   * On a stop nothing of the stopped message is in `out`.
   */
  push(chunk: Buffer, out: Buffer[]): R | GatewayError | null {
    if (this.#state === State.Stopped) return this.#result;
    this.#out = out;
    let start = 0;
    // Fast path for bulk payload: pass (or drop) straight through the caller's chunk.
    if (this.#state === State.Payload && this.#buffered === 0) {
      const n = Math.min(chunk.length, this.#remaining);
      if (!this.#dropping) this.#emit(chunk, 0, n);
      this.#remaining -= n;
      if (this.#remaining === 0) this.#state = State.Length;
      start = n;
    }
    if (start < chunk.length) {
      if (this.#buffered === 0) this.#offset = start;
      else if (start !== 0) chunk = chunk.subarray(start);
      this.#chunks.push(chunk);
      this.#buffered += chunk.length - (this.#buffered === 0 ? start : 0);
    }
    const r = this.#loop();
    this.#flush();
    return r;
  }

  #loop(): R | GatewayError | null {
    for (;;) {
      switch (this.#state) {
        case State.Length: {
          const l = this.#readU64();
          if (l === NEED_MORE) return null;
          if (l === OVERFLOW) return this.#fail(wireError('lengthOverflow', { field: 'message length' }));
          this.#startMessage(l);
          // L never exceeds the message minus its own 8 bytes in any version.
          if (l + 8 > this.#limits.maxMessageBytes) return this.#fail(wireError('messageTooLarge', { bytes: l + 8, limit: this.#limits.maxMessageBytes }));
          this.#state = State.Count;
          break;
        }
        case State.Count: {
          const n = this.#readU64();
          if (n === NEED_MORE) return null;
          if (n === OVERFLOW) return this.#fail(wireError('lengthOverflow', { field: 'frame count' }));
          // n is always >= 1 because frame 0 carries the message itself.
          if (n === 0) return this.#fail(wireError('noFrames'));
          if (n > this.#limits.maxFrames) return this.#fail(wireError('tooManyFrames', { frames: n, limit: this.#limits.maxFrames }));
          if (16 + 8 * n > this.#limits.maxMessageBytes) return this.#fail(wireError('messageTooLarge', { bytes: 16 + 8 * n, limit: this.#limits.maxMessageBytes }));
          if (this.#declaredL < 8 + 8 * n) return this.#fail(wireError('lengthMismatch', { declared: this.#declaredL }));
          this.#frames = n;
          this.#state = State.FrameLengths;
          break;
        }
        case State.FrameLengths: {
          const len = this.#readU64();
          if (len === NEED_MORE) return null;
          if (len === OVERFLOW) return this.#fail(wireError('lengthOverflow', { field: `length of frame ${this.#index}` }));
          if (this.#index === 0) {
            if (len > this.#limits.maxFrame0Bytes) return this.#fail(wireError('frame0TooLarge', { bytes: len, limit: this.#limits.maxFrame0Bytes }));
            this.#len0 = len;
          }
          this.#sum += len;
          const total = 16 + 8 * this.#frames + this.#sum;
          if (total > this.#limits.maxMessageBytes) return this.#fail(wireError('messageTooLarge', { bytes: total, limit: this.#limits.maxMessageBytes }));
          // A writer's L - 8 - 8n is the length of a leading run of frames, frame 0 included.
          const run = this.#declaredL - 8 - 8 * this.#frames;
          if (this.#sum === run) this.#runMatched = true;
          else if (!this.#runMatched && this.#sum > run) return this.#fail(wireError('lengthMismatch', { declared: this.#declaredL }));
          this.#index++;
          if (this.#index === this.#frames) {
            if (!this.#runMatched) return this.#fail(wireError('lengthMismatch', { declared: this.#declaredL }));
            this.#state = State.Frame0;
          }
          break;
        }
        case State.Frame0: {
          if (this.#buffered < this.#len0) return null;
          const verdict = this.#decideFrame0();
          if (verdict !== null && verdict !== DROP) return this.#fail(verdict);
          this.#release(verdict === DROP);
          this.#remaining = this.#sum - this.#len0;
          this.#dropping = verdict === DROP;
          this.#state = this.#remaining === 0 ? State.Length : State.Payload;
          break;
        }
        case State.Payload: {
          if (this.#buffered === 0) return null;
          const n = Math.min(this.#remaining, this.#buffered);
          this.#consume(n, this.#dropping ? 'drop' : 'emit');
          this.#remaining -= n;
          if (this.#remaining !== 0) return null;
          this.#state = State.Length;
          break;
        }
        case State.Stopped:
          return this.#result;
      }
    }
  }

  #startMessage(declaredL: number): void {
    this.#declaredL = declaredL;
    this.#frames = 0;
    this.#index = 0;
    this.#len0 = 0;
    this.#sum = 0;
    this.#runMatched = false;
    this.#remaining = 0;
    this.#dropping = false;
  }

  #decideFrame0(): R | typeof DROP | null {
    const len = this.#len0;
    const total = 16 + 8 * this.#frames + this.#sum;
    const first = this.#chunks[0];
    if (len === 0) return this.#sink.frame0(this.#scratch, 0, 0, this.#frames, total);
    if (first !== undefined && first.length - this.#offset >= len) {
      const start = this.#offset;
      const verdict = this.#sink.frame0(first, start, start + len, this.#frames, total);
      if (verdict === null || verdict === DROP) this.#consume(len, 'hold');
      return verdict;
    }
    // Frame 0 straddles chunks: the one copy of message bytes the parser makes.
    const copy = Buffer.allocUnsafe(len);
    let written = 0;
    let i = 0;
    let off = this.#offset;
    while (written < len) {
      const c = this.#chunks[i++]!;
      const take = Math.min(c.length - off, len - written);
      c.copy(copy, written, off, off + take);
      written += take;
      off = 0;
    }
    const verdict = this.#sink.frame0(copy, 0, len, this.#frames, total);
    if (verdict === null || verdict === DROP) this.#consume(len, 'hold');
    return verdict;
  }

  /** The decision is made: the held prelude and frame 0 go out (L canonical) or are dropped. */
  #release(drop: boolean): void {
    if (!drop) {
      const canonicalL = 8 + 8 * this.#frames + this.#sum;
      let skip = 0;
      if (this.#declaredL !== canonicalL) {
        const l = Buffer.allocUnsafe(8);
        l.writeBigUInt64LE(BigInt(canonicalL));
        this.#flush();
        this.#out.push(l);
        skip = 8;
      }
      for (let i = 0; i < this.#heldCount; i++) {
        const s = this.#heldStarts[i]!;
        const e = this.#heldEnds[i]!;
        const cut = Math.min(skip, e - s);
        skip -= cut;
        if (s + cut < e) this.#emit(this.#heldChunks[i]!, s + cut, e);
      }
    }
    this.#clearHeld();
  }

  /** Reads a u64 LE if 8 bytes are buffered (and holds them); NEED_MORE or OVERFLOW otherwise. */
  #readU64(): number {
    if (this.#buffered < 8) return NEED_MORE;
    const first = this.#chunks[0]!;
    let lo: number;
    let hi: number;
    if (first.length - this.#offset >= 8) {
      lo = first.readUInt32LE(this.#offset);
      hi = first.readUInt32LE(this.#offset + 4);
    } else {
      let written = 0;
      let i = 0;
      let off = this.#offset;
      while (written < 8) {
        const c = this.#chunks[i++]!;
        const take = Math.min(c.length - off, 8 - written);
        c.copy(this.#scratch, written, off, off + take);
        written += take;
        off = 0;
      }
      lo = this.#scratch.readUInt32LE(0);
      hi = this.#scratch.readUInt32LE(4);
    }
    this.#consume(8, 'hold');
    if (hi > MAX_SAFE_HIGH) return OVERFLOW;
    return hi * 0x100000000 + lo;
  }

  /** Consumes the next n unconsumed bytes: held for the decision, emitted, or dropped. */
  #consume(n: number, to: 'hold' | 'emit' | 'drop'): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      const start = this.#offset;
      const take = Math.min(c.length - start, n);
      if (to === 'hold') {
        const h = this.#heldCount++;
        this.#heldChunks[h] = c;
        this.#heldStarts[h] = start;
        this.#heldEnds[h] = start + take;
        this.#heldBytes += take;
      } else if (to === 'emit') {
        this.#emit(c, start, start + take);
      }
      n -= take;
      if (start + take === c.length) {
        this.#chunks.shift();
        this.#offset = 0;
      } else {
        this.#offset = start + take;
      }
    }
  }

  /** Appends [start, end) of chunk to the output, merged with the previous range when contiguous. */
  #emit(chunk: Buffer, start: number, end: number): void {
    if (start === end) return;
    if (chunk === this.#pendChunk && start === this.#pendEnd) {
      this.#pendEnd = end;
      return;
    }
    this.#flush();
    this.#pendChunk = chunk;
    this.#pendStart = start;
    this.#pendEnd = end;
  }

  #flush(): void {
    const c = this.#pendChunk;
    if (c === null) return;
    this.#out.push(this.#pendStart === 0 && this.#pendEnd === c.length ? c : c.subarray(this.#pendStart, this.#pendEnd));
    this.#pendChunk = null;
  }

  #clearHeld(): void {
    // Drop the references so a released chunk can be collected.
    for (let i = 0; i < this.#heldCount; i++) this.#heldChunks[i] = EMPTY;
    this.#heldCount = 0;
    this.#heldBytes = 0;
  }

  #fail(result: R | GatewayError): R | GatewayError {
    this.#flush(); // earlier, decided messages only: undecided bytes are held, never pending
    this.#state = State.Stopped;
    this.#result = result;
    this.#chunks.length = 0;
    this.#buffered = 0;
    this.#clearHeld();
    return result;
  }
}
