/**
 * The browser session after a token login: a cookie naming the token id and
 * an expiry, HMAC-SHA256-signed with a key derived from the gateway's private
 * key (sessionKeyFrom), so browsers stay logged in across a restart without
 * another secret on disk, and rotating the gateway key ends every session. The
 * cookie is not a credential on its own: every request re-checks that its
 * token is still valid, so revocation or expiry ends the session at once.
 *
 * __Host- prefix: the browser accepts it only with Secure, Path=/ and no
 * Domain, so no sibling host can plant or read it.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = '__Host-dgw_session';

export interface SessionClaims {
  readonly tokenId: string;
  /** Seconds since the epoch. */
  readonly exp: number;
}

/** The cookie-signing key for a cluster: HKDF-SHA256 over the gateway's private key, bound to the cluster id. */
export function sessionKeyFrom(gatewayKeyPem: string, clusterId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(gatewayKeyPem), Buffer.from(clusterId), 'scheduler-gateway dashboard session cookie v1', 32));
}

export class SessionCookies {
  #key: Buffer;
  readonly #ttlSeconds: number;

  constructor(ttlSeconds: number, key: Buffer = randomBytes(32)) {
    this.#key = key;
    this.#ttlSeconds = ttlSeconds;
  }

  /** Signs and verifies with `key` from now on: a renewed gateway key ends every session at once, not at the next restart. */
  rekey(key: Buffer): void {
    this.#key = key;
  }

  /** A Set-Cookie value for a session that ends at the TTL or the token's expiry, whichever is first. */
  issue(tokenId: string, now: Date, tokenExpires?: Date): { setCookie: string; claims: SessionClaims } {
    const nowS = Math.floor(now.getTime() / 1000);
    let exp = nowS + this.#ttlSeconds;
    if (tokenExpires) exp = Math.min(exp, Math.floor(tokenExpires.getTime() / 1000));
    const body = Buffer.from(JSON.stringify({ t: tokenId, e: exp })).toString('base64url');
    const value = `${body}.${this.#sign(body)}`;
    const maxAge = Math.max(0, exp - nowS);
    return { setCookie: `${SESSION_COOKIE}=${value}; Path=/; Max-Age=${maxAge}; HttpOnly; Secure; SameSite=Strict`, claims: { tokenId, exp } };
  }

  /** The claims of a well-signed, unexpired cookie value; undefined otherwise. */
  verify(value: string, now: Date): SessionClaims | undefined {
    const dot = value.indexOf('.');
    if (dot < 1 || value.length > 512) return undefined;
    const body = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1));
    const want = Buffer.from(this.#sign(body));
    if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    const { t, e } = (parsed ?? {}) as { t?: unknown; e?: unknown };
    if (typeof t !== 'string' || typeof e !== 'number' || e * 1000 <= now.getTime()) return undefined;
    return { tokenId: t, exp: e };
  }

  #sign(body: string): string {
    return createHmac('sha256', this.#key).update(body).digest('base64url');
  }
}

export const CLEAR_SESSION_COOKIE = `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Strict`;

/** The value of one cookie in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The Cookie header without one cookie (undefined when nothing is left), so upstream never sees the session. */
export function withoutCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const kept = header
    .split(';')
    .map((p) => p.trim())
    .filter((p) => p && p.slice(0, Math.max(0, p.indexOf('='))).trim() !== name);
  return kept.length ? kept.join('; ') : undefined;
}
