/**
 * What the gateway itself says to a Dask peer, in Dask's own framing, so
 * that Python shows why it was refused instead of a bare `CommClosedError`:
 *   - the listener handshake, for a peer the gateway answers itself;
 *   - an error reply to a request: Dask's `send_recv` raises
 *     `Exception(text)` from `{"status": "uncaught-error", "exception": text}`
 *     on both supported versions. A str, not a pickled exception: the gateway
 *     never produces pickles, and an OSError subclass would be swallowed as a
 *     comm failure by parts of Dask;
 *   - the refusal of a `register-client` stream, `[{"op": "stream-start",
 *     "error": text}]`, which the Client raises as `ImportError(text)`.
 * Pure: builds bytes, touches no socket.
 */

/** A number Python must see as a float, whatever its value. */
class Float64 {
  constructor(readonly value: number) {}
}

type MsgValue = null | boolean | number | Float64 | string | readonly MsgValue[] | ReadonlyMap<string, MsgValue>;

/** Frames one msgpack frame 0 as a whole message: L = 8 + 8n + sum(len_i), n = 1. */
export function frameMessage(frame0: Buffer): Buffer {
  const out = Buffer.allocUnsafe(24 + frame0.length);
  out.writeBigUInt64LE(BigInt(16 + frame0.length), 0);
  out.writeBigUInt64LE(1n, 8);
  out.writeBigUInt64LE(BigInt(frame0.length), 16);
  frame0.copy(out, 24);
  return out;
}

/** The msgpack encoding Dask's writer produces for these few value types (use_bin_type=True). */
export function encodeMsgpack(v: MsgValue): Buffer {
  const parts: Buffer[] = [];
  write(v, parts);
  return Buffer.concat(parts);
}

function write(v: MsgValue, parts: Buffer[]): void {
  if (v === null) parts.push(Buffer.from([0xc0]));
  else if (typeof v === 'boolean') parts.push(Buffer.from([v ? 0xc3 : 0xc2]));
  else if (typeof v === 'number') parts.push(encodeInt(v));
  else if (typeof v === 'string') parts.push(encodeStr(v));
  else if (v instanceof Float64) {
    const b = Buffer.allocUnsafe(9);
    b[0] = 0xcb;
    b.writeDoubleBE(v.value, 1);
    parts.push(b);
  } else if (v instanceof Map) {
    parts.push(head(v.size, 0x80, 0xde));
    for (const [k, x] of v) {
      parts.push(encodeStr(k));
      write(x, parts);
    }
  } else {
    const a = v as readonly MsgValue[];
    parts.push(head(a.length, 0x90, 0xdc));
    for (const x of a) write(x, parts);
  }
}

function encodeInt(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`cannot encode ${n}`);
  if (n < 0x80) return Buffer.from([n]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xce;
  b.writeUInt32BE(n, 1);
  return b;
}

function encodeStr(s: string): Buffer {
  const body = Buffer.from(s, 'utf8');
  const n = body.length;
  let h: Buffer;
  if (n < 32) h = Buffer.from([0xa0 | n]);
  else if (n < 0x100) h = Buffer.from([0xd9, n]);
  else if (n < 0x10000) {
    h = Buffer.allocUnsafe(3);
    h[0] = 0xda;
    h.writeUInt16BE(n, 1);
  } else {
    h = Buffer.allocUnsafe(5);
    h[0] = 0xdb;
    h.writeUInt32BE(n, 1);
  }
  return Buffer.concat([h, body]);
}

/** fixmap/fixarray head below 16 entries, map16/array16 (0xde/0xdc) up to 65535. */
function head(count: number, fix: number, sixteen: number): Buffer {
  if (count < 16) return Buffer.from([fix | count]);
  const b = Buffer.allocUnsafe(3);
  b[0] = sixteen;
  b.writeUInt16BE(count, 1);
  return b;
}

/**
 * The handshake a Dask listener writes first. No compression: the
 * gateway answers only to refuse, and offers nothing to negotiate.
 */
export const LISTENER_HANDSHAKE: Buffer = frameMessage(
  encodeMsgpack(new Map<string, MsgValue>([['compression', null], ['python', [3, 11, 2]], ['pickle-protocol', 5]])),
);

/** Longest refusal text sent to a peer; the audit line has the full detail. */
const MAX_TEXT = 2_000;

function clipText(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}...` : text;
}

/** A reply that the peer's `send_recv` raises as `Exception(text)`. */
export function errorReply(text: string): Buffer {
  const t = clipText(text);
  return frameMessage(
    encodeMsgpack(new Map<string, MsgValue>([
      ['status', 'uncaught-error'],
      ['exception', t],
      ['traceback', null],
      ['exception_text', t],
      ['traceback_text', ''],
    ])),
  );
}

/**
 * The answer to a refused `register-worker`: the worker logs `message` and
 * raises "Unexpected response from register" (both versions read `time`
 * first, so it is present).
 */
export function registerWorkerRefusal(text: string, nowSeconds: number): Buffer {
  return frameMessage(encodeMsgpack(new Map<string, MsgValue>([['status', 'error'], ['message', clipText(text)], ['time', new Float64(nowSeconds)]])));
}

/**
 * The answer to a refused `feed` (what progress bars open): the progress
 * bar's loop reads it as a final, failed update (`status: "error"`), so a
 * notebook widget shows the text and a text bar stops at once.
 */
export function feedRefusal(text: string): Buffer {
  const t = clipText(text);
  return frameMessage(encodeMsgpack(new Map<string, MsgValue>([['status', 'error'], ['remaining', 0], ['all', 0], ['exception', t], ['exception_text', t]])));
}

/** The answer to a refused `register-client`: the Client raises `ImportError(text)`. */
export function streamStartRefusal(text: string): Buffer {
  return frameMessage(encodeMsgpack([new Map<string, MsgValue>([['op', 'stream-start'], ['error', clipText(text)], ['warning', '']])]));
}
