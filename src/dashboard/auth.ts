/**
 * Who is asking, decided in a fixed order: client certificate (when enabled)
 * -> Authorization: Bearer -> ?token= (the link login) -> session cookie.
 * The first credential presented decides; a bad one is never rescued by a
 * later one, so a stale cookie cannot hide a wrong bearer token in the audit.
 *
 * Owns: turning request credentials into a Principal. Must not: write
 * responses, touch the upstream, or read the token database directly.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { checkPeerCertificate, peerLeafCertificate, reasonFromOpenSSL } from '../pki/peer-certificate.js';
import { formatSpiffe } from '../pki/identity.js';
import type { TokenCache, TokenVerdict } from '../tokens/cache.js';
import type { Scope } from '../tokens/store.js';
import type { TrustSource } from '../runtime/context.js';
import { readCookie, SESSION_COOKIE, type SessionCookies } from './session-cookie.js';

export type Method = 'certificate' | 'bearer' | 'link' | 'cookie' | 'login';

export type Principal =
  | { readonly kind: 'token'; readonly tokenId: string; readonly name: string; readonly scope: Scope; readonly method: Method; readonly sessionExp?: number }
  | { readonly kind: 'certificate'; readonly serial: string; readonly identity: string; readonly scope: Scope; readonly method: 'certificate'; readonly notAfter: Date };

export type AuthResult =
  | { ok: true; principal: Principal; setCookie?: string }
  | { ok: false; reason: string; presented: boolean; method?: Method };

/** Identity for per-identity limits and the session registry. */
export function principalKey(p: Principal): string {
  return p.kind === 'token' ? `token:${p.tokenId}` : `cert:${p.serial}`;
}

/** Safe to log: ids and names, never secrets. */
export function describePrincipal(p: Principal): Record<string, unknown> {
  return p.kind === 'token'
    ? { token_id: p.tokenId, token_name: p.name, scope: p.scope, method: p.method }
    : { serial: p.serial, identity: p.identity, scope: p.scope, method: p.method };
}

export interface AuthenticatorOptions {
  readonly tokens: TokenCache | undefined;
  readonly cookies: SessionCookies;
  readonly clientCertAuth: boolean;
  readonly trust: TrustSource;
  readonly clusterId: string;
  readonly now: () => Date;
  /** Accept certificates without any EKU extension (--allow-missing-eku). */
  readonly allowMissingEku?: boolean;
}

export class Authenticator {
  readonly #o: AuthenticatorOptions;

  constructor(opts: AuthenticatorOptions) {
    this.#o = opts;
  }

  authenticate(req: IncomingMessage, search: URLSearchParams): AuthResult {
    if (this.#o.clientCertAuth) {
      const cert = this.#certificate(req);
      if (cert) return cert;
    }
    const authz = req.headers.authorization;
    if (authz !== undefined) {
      const m = /^Bearer[ ]+(\S+)\s*$/i.exec(authz);
      if (!m) return { ok: false, reason: 'bad_authorization_header', presented: true, method: 'bearer' };
      return this.#token(m[1]!, 'bearer');
    }
    const linkToken = search.get('token');
    if (linkToken !== null) {
      const r = this.#token(linkToken, 'link');
      if (!r.ok) return r;
      return { ...r, setCookie: this.#issueCookie(r.principal) };
    }
    const cookie = readCookie(req.headers.cookie, SESSION_COOKIE);
    if (cookie !== undefined) return this.#session(cookie);
    return { ok: false, reason: 'no_credentials', presented: false };
  }

  /** A pasted token from the login form. */
  login(token: string): AuthResult {
    const r = this.#token(token.trim(), 'login');
    return r.ok ? { ...r, setCookie: this.#issueCookie(r.principal) } : r;
  }

  /** Is this principal still allowed? Called for every open WebSocket on a timer. */
  stillValid(p: Principal): string | undefined {
    const now = this.#o.now();
    if (p.kind === 'certificate') {
      if (p.notAfter <= now) return 'expired';
      return this.#o.trust.isRevoked(p.serial) ? 'revoked' : undefined;
    }
    if (p.sessionExp !== undefined && p.sessionExp * 1000 <= now.getTime()) return 'expired';
    const v = this.#o.tokens?.check(p.tokenId);
    return v?.ok ? undefined : v?.reason ?? 'revoked';
  }

  #token(presented: string, method: Method): AuthResult {
    if (!this.#o.tokens) return { ok: false, reason: 'tokens_disabled', presented: true, method };
    return toResult(this.#o.tokens.verify(presented), method);
  }

  #session(value: string): AuthResult {
    const claims = this.#o.cookies.verify(value, this.#o.now());
    if (!claims) return { ok: false, reason: 'session_invalid', presented: true, method: 'cookie' };
    if (!this.#o.tokens) return { ok: false, reason: 'tokens_disabled', presented: true, method: 'cookie' };
    const r = toResult(this.#o.tokens.check(claims.tokenId), 'cookie');
    if (!r.ok || r.principal.kind !== 'token') return r;
    return { ok: true, principal: { ...r.principal, sessionExp: claims.exp } };
  }

  #issueCookie(p: Principal): string | undefined {
    if (p.kind !== 'token') return undefined;
    const expires = this.#o.tokens?.check(p.tokenId);
    return this.#o.cookies.issue(p.tokenId, this.#o.now(), expires?.ok ? expires.token.expiresAt : undefined).setCookie;
  }

  #certificate(req: IncomingMessage): AuthResult | undefined {
    const socket = req.socket as TLSSocket;
    const x509 = peerLeafCertificate(socket);
    if (!x509) return undefined; // No certificate: fall through to the other methods.
    if (!socket.authorized) {
      const code = String(socket.authorizationError ?? 'bad_certificate');
      return { ok: false, reason: `certificate_${reasonFromOpenSSL(code)}`, presented: true, method: 'certificate' };
    }
    const v = checkPeerCertificate(x509, {
      clusterId: this.#o.clusterId,
      allowedRoles: ['client', 'admin'],
      isRevoked: (s) => this.#o.trust.isRevoked(s),
      now: this.#o.now(),
      allowMissingEku: this.#o.allowMissingEku === true,
    });
    if (!v.ok) return { ok: false, reason: `certificate_${v.reason}`, presented: true, method: 'certificate' };
    return {
      ok: true,
      principal: { kind: 'certificate', serial: v.serial, identity: formatSpiffe(v.identity), scope: v.identity.role === 'admin' ? 'admin' : 'view', method: 'certificate', notAfter: v.notAfter },
    };
  }
}

function toResult(v: TokenVerdict, method: Method): AuthResult {
  if (!v.ok) return { ok: false, reason: `token_${v.reason}`, presented: true, method };
  return { ok: true, principal: { kind: 'token', tokenId: v.token.id, name: v.token.name, scope: v.token.scope, method } };
}
