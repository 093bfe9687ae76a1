/**
 * GET /gateway/crl.pem: the cluster CRL, the CRL Distribution Point named in
 * the gateway's own certificate (pki/validity.ts gatewayCrlUrl). A CRL is
 * public, CA-signed data, so the route needs no login; it is read from disk
 * only when its mtime or size changed, and refused above a size bound so an
 * unauthenticated route cannot be made to stream an arbitrary file.
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

/** Far above any real cluster CRL (~40 bytes per revoked serial), far below a memory problem. */
export const MAX_CRL_BYTES = 4 * 1024 * 1024;

export type CrlRead =
  | { ok: true; pem: Buffer; mtimeMs: number }
  | { ok: false; reason: 'not_configured' | 'missing' | 'too_large' | 'not_pem' };

export class CrlFile {
  readonly path: string | undefined;
  readonly #maxBytes: number;
  #cached: { mtimeMs: number; size: number; pem: Buffer } | undefined;

  constructor(path: string | undefined, maxBytes = MAX_CRL_BYTES) {
    this.path = path;
    this.#maxBytes = maxBytes;
  }

  read(): CrlRead {
    if (this.path === undefined) return { ok: false, reason: 'not_configured' };
    let st;
    try {
      st = statSync(this.path);
    } catch {
      return { ok: false, reason: 'missing' };
    }
    if (!st.isFile()) return { ok: false, reason: 'missing' };
    const c = this.#cached;
    if (c && c.mtimeMs === st.mtimeMs && c.size === st.size) return { ok: true, pem: c.pem, mtimeMs: c.mtimeMs };
    if (st.size > this.#maxBytes) return { ok: false, reason: 'too_large' };
    const pem = this.#readBounded();
    if (pem === null) return { ok: false, reason: 'missing' };
    if (pem === undefined) return { ok: false, reason: 'too_large' };
    // Writers replace crl.pem atomically (rename), so a partial file is not expected; still never serve something that is not a CRL.
    if (!/^-----BEGIN X509 CRL-----[\s\S]+-----END X509 CRL-----\s*$/.test(pem.toString('latin1'))) return { ok: false, reason: 'not_pem' };
    this.#cached = { mtimeMs: st.mtimeMs, size: st.size, pem };
    return { ok: true, pem, mtimeMs: st.mtimeMs };
  }

  /** Reads at most maxBytes + 1 from one descriptor, so a file that grew after stat is still bounded; undefined: too large, null: unreadable. */
  #readBounded(): Buffer | undefined | null {
    let fd: number | undefined;
    try {
      fd = openSync(this.path!, 'r');
      const size = fstatSync(fd).size;
      if (size > this.#maxBytes) return undefined;
      const buf = Buffer.alloc(Math.min(size, this.#maxBytes) + 1);
      let n = 0;
      while (n < buf.length) {
        const r = readSync(fd, buf, n, buf.length - n, n);
        if (r === 0) break;
        n += r;
      }
      return n > this.#maxBytes ? undefined : buf.subarray(0, n);
    } catch {
      return null;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}
