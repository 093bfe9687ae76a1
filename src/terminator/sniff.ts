/**
 * Classifies the first bytes a peer sends on the TLS port, so that a
 * plaintext Dask client or an HTTP request gets a precise refusal instead of
 * an opaque TLS alert. Pure; never touches sockets.
 */

export type Sniffed = 'tls' | 'http' | 'dask_plaintext' | 'garbage';

/** Enough bytes to decide: a Dask prelude is L (u64) then n (u64). */
export const SNIFF_MAX_BYTES = 16;

const HTTP_METHODS = ['GET ', 'POST ', 'PUT ', 'HEAD ', 'DELETE ', 'OPTIONS ', 'PATCH ', 'CONNECT ', 'TRACE ', 'PRI '];
/** More frames than this in one message is not something Dask sends. */
const MAX_PLAUSIBLE_FRAMES = 1 << 20;

/**
 * Returns the class of the stream, or 'need_more' while the bytes seen so
 * far are a prefix of more than one class (the caller bounds the wait by the
 * handshake deadline and by SNIFF_MAX_BYTES).
 */
export function sniff(buf: Buffer): Sniffed | 'need_more' {
  if (buf.length === 0) return 'need_more';
  // TLS record header: ContentType handshake (22), then legacy version major 3.
  if (buf[0] === 0x16) {
    if (buf.length < 2) return 'need_more';
    if (buf[1] === 0x03) return 'tls';
  }
  const http = httpMatch(buf);
  if (http !== 'no') return http;
  return daskMatch(buf);
}

function httpMatch(buf: Buffer): 'http' | 'need_more' | 'no' {
  const n = Math.min(buf.length, 8);
  const head = buf.toString('latin1', 0, n);
  let prefixOfSome = false;
  for (const m of HTTP_METHODS) {
    if (head.length >= m.length ? head.startsWith(m) : m.startsWith(head)) {
      if (head.length >= m.length) return 'http';
      prefixOfSome = true;
    }
  }
  return prefixOfSome ? 'need_more' : 'no';
}

/**
 * Dask's framing: a message starts with L (u64 LE, bytes that follow,
 * at least 8 + 8n) and n (u64 LE frame count, >= 1).
 */
function daskMatch(buf: Buffer): Sniffed | 'need_more' {
  if (buf.length < 16) {
    // Byte 7 is the top byte of L: a real length never reaches it.
    return buf.length >= 8 && buf[7] !== 0 ? 'garbage' : 'need_more';
  }
  const lenHi = buf.readUInt32LE(4);
  const lenLo = buf.readUInt32LE(0);
  const nHi = buf.readUInt32LE(12);
  const n = buf.readUInt32LE(8);
  if (lenHi > 0x1fffff || nHi !== 0) return 'garbage'; // above 2^53 or absurd frame count
  const len = lenHi * 2 ** 32 + lenLo;
  if (n >= 1 && n <= MAX_PLAUSIBLE_FRAMES && len >= 8 + 8 * n) return 'dask_plaintext';
  return 'garbage';
}

/** The one line an HTTP client reads before the port closes. */
export const HTTP_EXPLANATION =
  'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n' +
  'This is the Dask scheduler port: it speaks Dask over mutual TLS (tls://HOST:8786 with a client certificate), not HTTP. The dashboard is on https://HOST:8787/.\n';
