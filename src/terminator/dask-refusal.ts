/**
 * Answers a Dask peer that the gateway will not forward, in Dask's framing,
 * so that Python raises with the reason instead of `CommClosedError: Stream
 * is closed`: the listener handshake (a Dask connector reads before it
 * writes), then, after the peer's handshake, an answer that fits its first
 * request (wire/reply.ts): a stream-start refusal for `register-client`, a
 * registration error for `register-worker`, an error reply for anything
 * else. Then the connection ends. Used for a plaintext `tcp://` peer on the
 * TLS port and for an authenticated peer over its share of the port.
 *
 * Bounded: what it reads is capped by small frame limits and by a deadline;
 * it never forwards anything.
 */
import type { Duplex } from 'node:stream';
import { GatewayError } from '../errors/base.js';
import { FrameParser, type Frame0Sink } from '../wire/frame-parser.js';
import { Frame0Scanner, type OpMap, type OpVisitor } from '../wire/ops.js';
import { LISTENER_HANDSHAKE, errorReply, registerWorkerRefusal, streamStartRefusal } from '../wire/reply.js';

export interface DaskRefusalOptions {
  /** What the peer's Python raises; never a secret. */
  readonly text: string;
  /** The listener handshake was already written (the plaintext probe did). */
  readonly handshakeSent?: boolean;
  /** Bytes already read from the peer, in order. */
  readonly initial?: Buffer;
  /** From now until the answer is written. */
  readonly timeoutMs: number;
  /** Seconds since the epoch, for the registration reply's `time`. */
  readonly nowSeconds?: () => number;
}

export type RefusalOutcome = 'answered' | 'peer_gone' | 'timeout' | 'unreadable';

/** A refused peer's first request is small: registration or identity. */
const LIMITS = { maxFrames: 64, maxFrame0Bytes: 256 * 1024, maxMessageBytes: 1024 * 1024 };
/** Time for the answer to reach the peer before the socket is destroyed. */
const LINGER_MS = 1_000;

export function refuseDaskPeer(socket: Duplex, o: DaskRefusalOptions): Promise<RefusalOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (outcome: RefusalOutcome, answer?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      if (answer) {
        socket.end(answer);
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      } else {
        socket.destroy();
      }
      resolve(outcome);
    };
    const reader = new FirstRequest(o);
    const onData = (chunk: Buffer) => {
      const r = reader.push(chunk);
      if (r instanceof GatewayError) finish('unreadable');
      else if (r !== null) finish('answered', r);
    };
    const onClose = () => finish('peer_gone');
    const timer = setTimeout(() => finish('timeout'), o.timeoutMs);
    socket.on('error', () => {}); // a reset is the peer going away; 'close' follows
    socket.on('close', onClose);
    if (!o.handshakeSent) socket.write(LISTENER_HANDSHAKE);
    if (o.initial && o.initial.length > 0) onData(o.initial);
    if (!done) {
      socket.on('data', onData);
      socket.resume();
    }
  });
}

/** Skips the peer's handshake, then builds the answer to its first request. */
class FirstRequest implements Frame0Sink<Buffer>, OpVisitor<Buffer> {
  readonly #o: DaskRefusalOptions;
  readonly #parser = new FrameParser<Buffer>(LIMITS, this);
  readonly #scanner = new Frame0Scanner();
  #messages = 0;

  constructor(o: DaskRefusalOptions) {
    this.#o = o;
  }

  push(chunk: Buffer): Buffer | GatewayError | null {
    return this.#parser.push(chunk, []);
  }

  frame0(buf: Buffer, start: number, end: number): Buffer | null {
    if (++this.#messages === 1) return null; // the peer's handshake
    const r = this.#scanner.scan(buf, start, end, this);
    return r instanceof GatewayError || r === null ? errorReply(this.#o.text) : r;
  }

  begin(): null {
    return null;
  }

  map(m: OpMap): Buffer {
    if (m.op === 'register-client') return streamStartRefusal(this.#o.text);
    if (m.op === 'register-worker') return registerWorkerRefusal(this.#o.text, (this.#o.nowSeconds ?? (() => Date.now() / 1000))());
    return errorReply(this.#o.text);
  }

  nonMap(): Buffer {
    return errorReply(this.#o.text);
  }
}
