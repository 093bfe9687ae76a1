/**
 * Incremental parser of Dask's TCP/TLS framing (shared/dask-wire.md §1).
 *
 *   u64 L | u64 n | u64 len_0 .. len_{n-1} | frame_0 .. frame_{n-1}      (all LE)
 *
 * One rule covers every Dask version (§1.2): the message is always
 * 16 + 8n + sum(len_i) bytes. L is kept only as a sanity check: it counts the
 * bytes after itself up to the end of a *leading run* of frames (all frames in
 * 2022.12; since 2023.11 possibly fewer), so L - 8 - 8n must be a prefix sum
 * len_0 + .. + len_k with k >= 0. (The notes write the bound as 16 + 8n + len_0;
 * L does not count its own 8 bytes, so the correct bound is 8 + 8n + len_0, as
 * Appendix A's handshake shows: L = 61 = 8 + 8 + 45.)
 *
 * Only frame 0 (the msgpack message) is handed on; payload frames are skipped
 * by arithmetic and never copied. What is buffered is a list of references to
 * the caller's chunks, bounded by the 8 bytes of a length field or by frame 0,
 * whichever is being read; frame 0 is copied only when it straddles chunks.
 * Every declared count and length is checked against the limits as soon as it
 * is read, before anything is buffered for it. This module never touches a
 * socket; it does not decode frame 0.
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

/**
 * Receives frame 0 of every message as a view [start, end) of `buf`, valid only
 * during the call. A non-null return stops the parser for good.
 */
export interface Frame0Sink<R> {
  frame0(buf: Buffer, start: number, end: number, frames: number, messageBytes: number): R | null;
}

const enum State {
  Length,
  Count,
  FrameLengths,
  Frame0,
  Skip,
  Stopped,
}

// u64 values are read as two u32 halves; a high half above this is > 2^53-1.
const MAX_SAFE_HIGH = 0x1fffff;
const NEED_MORE = -1;
const OVERFLOW = -2;

export class FrameParser<R> {
  readonly #limits: FrameLimits;
  readonly #sink: Frame0Sink<R>;
  readonly #scratch = Buffer.alloc(8);
  readonly #chunks: Buffer[] = [];
  #offset = 0; // into #chunks[0]
  #buffered = 0;
  #state = State.Length;
  #result: R | GatewayError | null = null;

  // Per-message state, reset in #startMessage only.
  #declaredL = 0;
  #frames = 0;
  #index = 0;
  #len0 = 0;
  #sum = 0;
  #runMatched = false;
  #skip = 0;

  constructor(limits: FrameLimits, sink: Frame0Sink<R>) {
    this.#limits = limits;
    this.#sink = sink;
  }

  /** Bytes held from earlier chunks (a partial length field or a partial frame 0). */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /** The error or the sink's stop value once the parser has stopped. */
  get result(): R | GatewayError | null {
    return this.#result;
  }

  /**
   * Feeds one chunk. Returns null while the stream is well-formed and the sink
   * has not objected; otherwise the error or the sink's value, every time after.
   */
  push(chunk: Buffer): R | GatewayError | null {
    if (this.#state === State.Stopped) return this.#result;
    let start = 0;
    // Fast path for bulk payload: skip straight through the caller's chunk.
    if (this.#state === State.Skip && this.#buffered === 0) {
      if (chunk.length <= this.#skip) {
        this.#skip -= chunk.length;
        if (this.#skip === 0) this.#state = State.Length;
        return null;
      }
      start = this.#skip;
      this.#skip = 0;
      this.#state = State.Length;
    }
    if (start === chunk.length) return null;
    if (this.#buffered === 0) this.#offset = start;
    else if (start !== 0) chunk = chunk.subarray(start);
    this.#chunks.push(chunk);
    this.#buffered += chunk.length - (this.#buffered === 0 ? start : 0);
    return this.#loop();
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
          // §1.1: n is always >= 1 because frame 0 carries the message itself.
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
          // §1.2: L - 8 - 8n equals the length of a leading run of frames.
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
          const stop = this.#deliverFrame0();
          if (stop !== null) return this.#fail(stop);
          this.#skip = this.#sum - this.#len0;
          this.#state = this.#skip === 0 ? State.Length : State.Skip;
          break;
        }
        case State.Skip: {
          if (this.#buffered === 0) return null;
          const n = Math.min(this.#skip, this.#buffered);
          this.#advance(n);
          this.#skip -= n;
          if (this.#skip !== 0) return null;
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
    this.#skip = 0;
  }

  #deliverFrame0(): R | null {
    const len = this.#len0;
    const first = this.#chunks[0];
    const total = 16 + 8 * this.#frames + this.#sum;
    if (len === 0) return this.#sink.frame0(this.#scratch, 0, 0, this.#frames, total);
    if (first !== undefined && first.length - this.#offset >= len) {
      const start = this.#offset;
      const stop = this.#sink.frame0(first, start, start + len, this.#frames, total);
      this.#advance(len);
      return stop;
    }
    // Frame 0 straddles chunks: the only copy the parser ever makes.
    const copy = Buffer.allocUnsafe(len);
    this.#copyOut(copy, len);
    return this.#sink.frame0(copy, 0, len, this.#frames, total);
  }

  /** Reads a u64 LE if 8 bytes are buffered; NEED_MORE or OVERFLOW otherwise. */
  #readU64(): number {
    if (this.#buffered < 8) return NEED_MORE;
    const first = this.#chunks[0]!;
    let lo: number;
    let hi: number;
    if (first.length - this.#offset >= 8) {
      lo = first.readUInt32LE(this.#offset);
      hi = first.readUInt32LE(this.#offset + 4);
      this.#advance(8);
    } else {
      this.#copyOut(this.#scratch, 8);
      lo = this.#scratch.readUInt32LE(0);
      hi = this.#scratch.readUInt32LE(4);
    }
    if (hi > MAX_SAFE_HIGH) return OVERFLOW;
    return hi * 0x100000000 + lo;
  }

  /** Copies the next n buffered bytes into dst and consumes them. */
  #copyOut(dst: Buffer, n: number): void {
    let written = 0;
    while (written < n) {
      const c = this.#chunks[0]!;
      const take = Math.min(c.length - this.#offset, n - written);
      c.copy(dst, written, this.#offset, this.#offset + take);
      written += take;
      this.#advance(take);
    }
  }

  #advance(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0]!;
      const avail = c.length - this.#offset;
      if (n < avail) {
        this.#offset += n;
        return;
      }
      n -= avail;
      this.#chunks.shift();
      this.#offset = 0;
    }
    if (this.#chunks.length > 0 && this.#chunks[0]!.length === this.#offset) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  #fail(result: R | GatewayError): R | GatewayError {
    this.#state = State.Stopped;
    this.#result = result;
    this.#chunks.length = 0;
    this.#buffered = 0;
    return result;
  }
}
