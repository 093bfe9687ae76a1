/**
 * The 8787 HTTPS server: TLS, then for each request or upgrade, in this
 * order: target sanity -> route -> rate limit -> authentication -> scope ->
 * (upgrades: Origin, per-identity limit) -> upstream. Everything refused is
 * answered here with a status, an audit line and a count.
 *
 * Owns: the request and upgrade pipeline. Must not: parse credentials
 * (auth.ts), talk SQL (tokens/), or build TLS material (tls.ts).
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { connect } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { Authenticator, describePrincipal, type AuthResult, type Principal } from './auth.js';
import { checkTarget, safeNext, withoutToken } from './request-target.js';
import { allows, routeFor } from './routes.js';
import { FailureLimiter } from '../limits/failure-limiter.js';
import { Upstream } from './proxy.js';
import { Disconnects, isPeerGone } from './disconnects.js';
import { WebSocketTracker } from './websockets.js';
import { Refusals, abortHandshake } from './refusals.js';
import { loginPage, messagePage, sendPage } from './pages.js';
import { applySecurityHeaders, PROXIED_CSP, OWN_PAGE_CSP } from './security-headers.js';
import { CLEAR_SESSION_COOKIE } from './session-cookie.js';
import type { SessionRegistry } from '../runtime/sessions.js';
import type { CrlFile } from './crl.js';
import type { RefusalCoalescer } from '../log/coalesce.js';

export interface DashboardLimits {
  readonly maxHeaderSize: number;
  readonly requestTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly loginFailuresPerWindow: number;
  readonly loginWindowMs: number;
  readonly maxLoginBody: number;
}

export const DEFAULT_LIMITS: DashboardLimits = {
  maxHeaderSize: 16 * 1024,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 15_000,
  responseTimeoutMs: 30_000,
  loginFailuresPerWindow: 10,
  loginWindowMs: 60_000,
  maxLoginBody: 4096,
};

export interface DashboardServerOptions {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly sessions: SessionRegistry;
  readonly auth: Authenticator;
  readonly upstream: { host: string; port: number };
  readonly tls: SecureContextOptions;
  readonly requestCert: boolean;
  readonly maxWebSocketsPerIdentity: number;
  readonly limits?: Partial<DashboardLimits>;
  readonly now: () => Date;
  /** The CRL served at /gateway/crl.pem; absent or unset path: 404. */
  readonly crl?: CrlFile;
  /** Folds repeated refusals from one source into summaries (bounded logs under attack). */
  readonly coalescer?: RefusalCoalescer;
}

export class DashboardServer {
  readonly server: Server;
  readonly websockets: WebSocketTracker;
  readonly #o: DashboardServerOptions;
  readonly #limits: DashboardLimits;
  readonly #upstream: Upstream;
  readonly #refusals: Refusals;
  readonly #failures: FailureLimiter;
  readonly #gone: Disconnects;
  /** Connections past the TLS handshake. */
  readonly #secured = new WeakSet<Socket>();
  // Requests of each connection not yet answered: an upgrade behind them is refused (see #onUpgrade).
  readonly #unanswered = new WeakMap<Socket, number>();
  #health: { at: number; reachable: boolean } = { at: -Infinity, reachable: false };

  constructor(o: DashboardServerOptions) {
    this.#o = o;
    this.#limits = { ...DEFAULT_LIMITS, ...o.limits };
    this.#refusals = new Refusals(o.log, o.metrics, o.coalescer);
    this.#failures = new FailureLimiter({ failures: this.#limits.loginFailuresPerWindow, perMs: this.#limits.loginWindowMs, now: () => o.now().getTime() });
    this.#gone = new Disconnects(o.log, o.metrics);
    this.#upstream = new Upstream({ ...o.upstream, responseTimeoutMs: this.#limits.responseTimeoutMs, disconnects: this.#gone });
    this.websockets = new WebSocketTracker({ maxPerIdentity: o.maxWebSocketsPerIdentity, sessions: o.sessions, metrics: o.metrics, log: o.log });
    this.websockets.startSweep((p) => o.auth.stillValid(p));
    this.server = createServer({
      ...o.tls,
      requestCert: o.requestCert,
      // Verification failures are judged (and audited) by auth.ts, not by OpenSSL's hangup.
      rejectUnauthorized: false,
      maxHeaderSize: this.#limits.maxHeaderSize,
      requestTimeout: this.#limits.requestTimeoutMs,
      headersTimeout: this.#limits.headersTimeoutMs,
      keepAliveTimeout: 5_000,
      handshakeTimeout: 10_000,
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#onUpgrade(req, socket, head));
    this.server.on('secureConnection', (socket: Socket) => this.#secured.add(socket));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.#onClientError(err, socket));
    this.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      // A browser closed or killed mid-handshake is a disconnect; anything else the handshake refuses is a refusal.
      if (isPeerGone(err)) return this.#browserGone(socket, err);
      this.#refusals.record(undefined, 'tls_handshake', 0, { error: err.code ?? err.message }, socket.remoteAddress);
    });
  }

  setSecureContext(tls: SecureContextOptions): void {
    this.server.setSecureContext(tls);
  }

  close(): void {
    this.websockets.stop();
    this.#upstream.close();
  }

  // --- HTTP -----------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = Date.now();
    const socket = req.socket;
    this.#unanswered.set(socket, (this.#unanswered.get(socket) ?? 0) + 1);
    res.once('close', () => this.#unanswered.set(socket, (this.#unanswered.get(socket) ?? 1) - 1));
    res.on('finish', () => {
      this.#o.metrics.dashboardRequestsTotal.inc({ status: String(res.statusCode) });
      this.#o.log.debug('dashboard_request', { method: req.method, path: withoutQuery(req.url), status: res.statusCode, ms: Date.now() - started });
    });
    // Node's parser already refuses CL+TE; keep our own check so a lenient parser option can never reopen smuggling.
    if (req.headers['content-length'] !== undefined && req.headers['transfer-encoding'] !== undefined) {
      return this.#refuseHttp(req, res, 400, 'smuggling', 'Bad request', 'Content-Length together with Transfer-Encoding.');
    }
    const target = checkTarget(req.url);
    if (!target.ok) return this.#refuseHttp(req, res, 400, target.reason, 'Bad request', 'The requested path is not allowed.');
    const route = routeFor(req.method ?? 'GET', target.path, false);
    switch (route.kind) {
      case 'health':
        return void this.#healthCheck(res);
      case 'crl':
        return this.#serveCrl(req, res);
      case 'login':
        return this.#login(req, res, target.search);
      case 'logout':
        return this.#logout(req, res);
    }
    const ip = req.socket.remoteAddress ?? '';
    if (this.#failures.blocked(ip)) return this.#refuseHttp(req, res, 429, 'rate_limited', 'Too many attempts', 'Too many failed sign-in attempts from your address. Wait a minute and try again.');
    const auth = this.#o.auth.authenticate(req, target.search);
    if (!auth.ok) return this.#unauthenticated(req, res, auth, target.raw);
    const p = auth.principal;
    if (!allows(p.scope, route.need)) {
      return this.#refuseHttp(req, res, 403, 'scope', 'Not allowed', `This needs an admin token or certificate; yours has scope ${p.scope}.`, describePrincipal(p));
    }
    if (p.method === 'cookie' && route.need === 'admin' && !sameOrigin(req)) {
      return this.#refuseHttp(req, res, 403, 'origin', 'Not allowed', 'Cross-origin request refused.', describePrincipal(p));
    }
    if (auth.setCookie) {
      // Link login: drop the token from the URL (history, logs, Referer) and continue with the cookie.
      this.#o.log.audit('dashboard_login', { ...describePrincipal(p), remote: ip });
      applySecurityHeaders(res, OWN_PAGE_CSP);
      res.writeHead(303, { location: withoutToken(target.raw), 'set-cookie': auth.setCookie, 'cache-control': 'no-store', 'content-length': 0 });
      return void res.end();
    }
    applySecurityHeaders(res, PROXIED_CSP);
    this.#upstream.web(req, res, (err) => this.#upstreamDown(req, res, err));
  }

  #unauthenticated(req: IncomingMessage, res: ServerResponse, auth: Extract<AuthResult, { ok: false }>, raw: string): void {
    if (auth.presented) this.#failures.fail(req.socket.remoteAddress ?? '');
    const extra: Record<string, string> = { 'www-authenticate': 'Bearer realm="dask-dashboard"' };
    if (auth.method === 'cookie') extra['set-cookie'] = CLEAR_SESSION_COOKIE;
    this.#refusals.record(req, auth.reason, 401, { method_tried: auth.method });
    const message = auth.presented ? 'That token or session is not valid (wrong, expired or revoked).' : undefined;
    sendPage(res, 401, loginPage(safeNext(raw), message), 'Unauthorized: send Authorization: Bearer <token>', extra);
  }

  #login(req: IncomingMessage, res: ServerResponse, search: URLSearchParams): void {
    if (req.method === 'GET' || req.method === 'HEAD') return sendPage(res, 200, loginPage(safeNext(search.get('next'))), 'POST a token to sign in');
    if (req.method !== 'POST') return this.#refuseHttp(req, res, 405, 'method', 'Method not allowed', 'Use GET or POST.');
    // SameSite=Strict keeps the cookie off cross-site requests; the Origin check keeps a foreign page from logging a browser into our session (login CSRF).
    if (!sameOrigin(req)) return this.#refuseHttp(req, res, 403, 'origin', 'Not allowed', 'Cross-origin sign-in refused.');
    const ip = req.socket.remoteAddress ?? '';
    if (this.#failures.blocked(ip)) return this.#refuseHttp(req, res, 429, 'rate_limited', 'Too many attempts', 'Too many failed sign-in attempts from your address. Wait a minute and try again.');
    readForm(req, this.#limits.maxLoginBody).then(
      (form) => {
        const next = safeNext(form.get('next'));
        const r = this.#o.auth.login(form.get('token') ?? '');
        if (!r.ok) {
          this.#failures.fail(ip);
          this.#refusals.record(req, r.reason, 401, { method_tried: 'login' });
          return sendPage(res, 401, loginPage(next, 'That token is not valid (wrong, expired or revoked).'), 'Unauthorized');
        }
        this.#o.log.audit('dashboard_login', { ...describePrincipal(r.principal), remote: ip });
        applySecurityHeaders(res, OWN_PAGE_CSP);
        res.writeHead(303, { location: next, 'set-cookie': r.setCookie ?? '', 'cache-control': 'no-store', 'content-length': 0 });
        res.end();
      },
      (e: Error) => this.#refuseHttp(req, res, 413, 'login_body', 'Bad request', e.message),
    );
  }

  #logout(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') return this.#refuseHttp(req, res, 405, 'method', 'Method not allowed', 'Sign out with POST.');
    if (!sameOrigin(req)) return this.#refuseHttp(req, res, 403, 'origin', 'Not allowed', 'Cross-origin sign-out refused.');
    applySecurityHeaders(res, OWN_PAGE_CSP);
    res.writeHead(303, { location: '/gateway/login', 'set-cookie': CLEAR_SESSION_COOKIE, 'content-length': 0 });
    res.end();
  }

  async #healthCheck(res: ServerResponse): Promise<void> {
    // Cached for a second: an unauthenticated route must not turn into a connection amplifier.
    const nowMs = Date.now();
    if (nowMs - this.#health.at > 1000) this.#health = { at: nowMs, reachable: await probe(this.#o.upstream, 1000) };
    const reachable = this.#health.reachable;
    applySecurityHeaders(res, OWN_PAGE_CSP);
    const body = JSON.stringify({ gateway: 'ok', upstream: reachable ? 'reachable' : 'unreachable' }) + '\n';
    res.writeHead(reachable ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  #serveCrl(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#refuseHttp(req, res, 405, 'method', 'Method not allowed', 'Use GET.');
    const r = this.#o.crl?.read() ?? { ok: false as const, reason: 'not_configured' as const };
    if (!r.ok) {
      if (r.reason !== 'not_configured' && r.reason !== 'missing') this.#o.log.warn('dashboard_crl_unservable', { reason: r.reason, file: this.#o.crl?.path });
      return this.#refuseHttp(req, res, 404, `crl_${r.reason}`, 'Not found', 'This gateway has no certificate revocation list to serve.');
    }
    applySecurityHeaders(res, OWN_PAGE_CSP);
    // Short caching: a revocation must reach relying parties within a minute, not at the CRL's nextUpdate.
    res.writeHead(200, {
      'content-type': 'application/pkix-crl', 'content-length': r.pem.length, 'cache-control': 'public, max-age=60',
      'last-modified': new Date(r.mtimeMs).toUTCString(), 'content-disposition': 'attachment; filename="crl.pem"',
    });
    res.end(req.method === 'HEAD' ? undefined : r.pem);
  }

  #upstreamDown(req: IncomingMessage, res: ServerResponse, err: Error): void {
    const kind = (err as NodeJS.ErrnoException).code ?? 'error';
    this.#o.metrics.upstreamErrorsTotal.inc({ upstream: 'dashboard', kind });
    this.#o.log.warn('dashboard_upstream_error', { kind, path: withoutQuery(req.url) });
    const status = 502;
    sendPage(
      res,
      status,
      messagePage('Dask dashboard unavailable', `The gateway is running, but the scheduler's dashboard (${this.#upstream.target}) did not answer (${kind}). It may be starting or stopped; try again shortly.`),
      `${status} upstream dashboard unavailable (${kind})`,
    );
  }

  #refuseHttp(req: IncomingMessage, res: ServerResponse, status: number, reason: string, title: string, text: string, fields: Record<string, unknown> = {}): void {
    this.#refusals.record(req, reason, status, fields);
    sendPage(res, status, messagePage(title, text), `${status} ${title}: ${text}`, status === 429 ? { 'retry-after': '60' } : {});
  }

  // --- WebSocket upgrades -----------------------------------------------------

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // Permanent, from the first moment: a browser may vanish at any point of the handshake or the WebSocket.
    socket.on('error', (err) => {
      this.#upstream.browserSocketError(socket, err, req.url);
      socket.destroy();
    });
    const refuse = (status: number, reason: string, message: string, fields: Record<string, unknown> = {}) => {
      this.#refusals.record(req, reason, status, fields);
      this.#o.metrics.dashboardRequestsTotal.inc({ status: String(status) });
      abortHandshake(socket, status, message, status === 401 ? { 'www-authenticate': 'Bearer realm="dask-dashboard"' } : {});
    };
    // Node hands over a pipelined upgrade while earlier responses on the same socket are still being written, so
    // the WebSocket and those responses would share it. No browser pipelines; refuse rather than mix them.
    if ((this.#unanswered.get(socket) ?? 0) > 0) return refuse(400, 'ws_pipelined', 'A WebSocket upgrade must not follow unanswered requests on its connection');
    // Fixed order, as ws's handleUpgrade: method, Upgrade header, key, target, Origin, then who and how many.
    if (req.method !== 'GET') return refuse(405, 'ws_method', 'WebSocket upgrades use GET');
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return refuse(400, 'ws_bad_upgrade', 'Only WebSocket upgrades are supported');
    if (!/^[+/0-9A-Za-z]{22}==$/.test(String(req.headers['sec-websocket-key'] ?? ''))) return refuse(400, 'ws_bad_key', 'Missing or invalid Sec-WebSocket-Key');
    const target = checkTarget(req.url);
    if (!target.ok) return refuse(400, target.reason, 'The requested path is not allowed');
    const route = routeFor('GET', target.path, true);
    if (route.kind !== 'proxy') return refuse(404, 'ws_not_proxied', 'No WebSocket here');
    if (req.headers.origin !== undefined && !sameOrigin(req)) return refuse(403, 'origin', 'Cross-origin WebSocket refused');
    const ip = req.socket.remoteAddress ?? '';
    if (this.#failures.blocked(ip)) return refuse(429, 'rate_limited', 'Too many failed sign-in attempts');
    const auth = this.#o.auth.authenticate(req, target.search);
    if (!auth.ok) {
      if (auth.presented) this.#failures.fail(ip);
      return refuse(401, auth.reason, 'Unauthorized', { method_tried: auth.method });
    }
    const p: Principal = auth.principal;
    if (!allows(p.scope, route.need)) return refuse(403, 'scope', 'Not allowed for this scope', describePrincipal(p));
    if (this.websockets.atLimit(p)) return refuse(429, 'websocket_limit', 'Too many open WebSockets for this identity', describePrincipal(p));
    this.websockets.track(p, socket);
    this.#o.metrics.dashboardRequestsTotal.inc({ status: '101' });
    this.#upstream.ws(req, socket, head, (err) => {
      this.#o.metrics.upstreamErrorsTotal.inc({ upstream: 'dashboard', kind: (err as NodeJS.ErrnoException).code ?? 'error' });
      abortHandshake(socket, 502, 'The scheduler dashboard is not reachable');
    });
  }

  /**
   * Reported on 'close' (Node emits the error first), so that an in-flight
   * response reports the same end first, with its own stage.
   */
  #browserGone(socket: Socket, err: NodeJS.ErrnoException): void {
    socket.once('close', () => this.#gone.note(socket, 'browser', this.#secured.has(socket) ? 'connection' : 'handshake', err));
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (isPeerGone(err)) {
      this.#browserGone(socket, err);
      return void socket.destroy();
    }
    const code = err.code ?? '';
    const [status, reason] =
      code === 'HPE_HEADER_OVERFLOW' ? [431, 'header_too_large'] :
      code === 'HPE_UNEXPECTED_CONTENT_LENGTH' || code === 'HPE_INVALID_TRANSFER_ENCODING' || code === 'HPE_INVALID_CONTENT_LENGTH' ? [400, 'smuggling'] :
      code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'request_timeout'] :
      [400, 'bad_request'];
    this.#refusals.record(undefined, reason, status, { error: code }, socket.remoteAddress);
    this.#o.metrics.dashboardRequestsTotal.inc({ status: String(status) });
    abortHandshake(socket, status, status === 431 ? 'Request headers too large' : 'Bad request');
  }
}

function withoutQuery(url: string | undefined): string {
  return (url ?? '').split('?')[0]!.slice(0, 256);
}

/**
 * Is this a same-origin browser request? Origin must name the host the
 * request was sent to, over https. Under Referrer-Policy: no-referrer
 * Chromium sends "Origin: null" on a same-origin form POST, so then we accept
 * Sec-Fetch-Site: same-origin, which page script cannot set or forge.
 */
function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  const host = req.headers.host;
  if (!host) return false;
  if (origin === undefined || origin === 'null') return req.headers['sec-fetch-site'] === 'same-origin';
  try {
    const u = new URL(origin);
    return u.protocol === 'https:' && u.host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

function readForm(req: IncomingMessage, limit: number): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    const type = String(req.headers['content-type'] ?? '');
    if (!type.startsWith('application/x-www-form-urlencoded')) return reject(new Error('Expected a form (application/x-www-form-urlencoded).'));
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.destroy();
        return reject(new Error('Form too large.'));
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(new URLSearchParams(Buffer.concat(chunks).toString('utf8'))));
    req.on('error', reject);
  });
}

function probe(up: { host: string; port: number }, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: up.host, port: up.port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}
