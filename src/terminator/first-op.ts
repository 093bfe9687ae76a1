/**
 * What kind of Dask connection a peer opened, from the first request it sends
 * after its handshake: a stream (`register-worker`,
 * `register-client`, `connection_stream`) or a request connection (an rpc,
 * usually pooled). The idle timeout needs to know: a worker's stream is
 * silent for as long as its cluster is idle and the worker exits when the
 * stream is cut, while a pooled rpc connection that the gateway closes is
 * noticed by Dask's ConnectionPool, which opens a new one for the next call
 * (both verified with 2022.12.1 and 2026.7.1; test/terminator/fair-shares-dask.test.ts).
 *
 * Reads at most the first two messages' frame 0, under small limits; anything
 * it cannot read counts as a request connection.
 */
import { GatewayError } from '../errors/base.js';
import { FrameParser, type Frame0Sink } from '../wire/frame-parser.js';
import { Frame0Scanner, type OpMap, type OpVisitor } from '../wire/ops.js';

export type ConnectionKind = 'stream' | 'request';

const STREAM_OPS: ReadonlySet<string> = new Set(['register-worker', 'register-client', 'connection_stream']);
/** A stream opener is small; a first request larger than this is not one. */
const LIMITS = { maxFrames: 1024, maxFrame0Bytes: 256 * 1024, maxMessageBytes: 64 * 1024 * 1024 };

export class FirstOp implements Frame0Sink<ConnectionKind>, OpVisitor<ConnectionKind> {
  readonly #parser = new FrameParser<ConnectionKind>(LIMITS, this);
  readonly #scanner = new Frame0Scanner();
  /** What the parser would forward: not needed here, emptied after each chunk. */
  readonly #forwarded: Buffer[] = [];
  #messages = 0;

  /** The kind once known (then feed no more), else null. */
  push(chunk: Buffer): ConnectionKind | null {
    const r = this.#parser.push(chunk, this.#forwarded);
    this.#forwarded.length = 0;
    return r instanceof GatewayError ? 'request' : r;
  }

  frame0(buf: Buffer, start: number, end: number): ConnectionKind | null {
    if (++this.#messages === 1) return null; // the peer's handshake
    const r = this.#scanner.scan(buf, start, end, this);
    return r instanceof GatewayError || r === null ? 'request' : r;
  }

  begin(): null {
    return null;
  }

  map(m: OpMap): ConnectionKind {
    return typeof m.op === 'string' && STREAM_OPS.has(m.op) ? 'stream' : 'request';
  }

  nonMap(): ConnectionKind {
    return 'request';
  }
}
