/**
 * The upstream leg: HTTP and WebSocket to the scheduler's dashboard on
 * loopback, through http-proxy-3. We use http-proxy-3 (not http-proxy) because
 * it is the maintained TypeScript rewrite that configurable-http-proxy (the
 * JupyterHub proxy) moved to after http-proxy leaked sockets on failed and
 * aborted WebSocket upgrades; it counts its own open sockets
 * (numOpenSockets), which our leak test reads.
 *
 * What upstream sees: no Authorization header, no session cookie, no token in
 * the query, and X-Forwarded-* set by us (client-sent ones are dropped, they
 * are not trustworthy). Host is kept so Tornado's WebSocket origin check
 * compares the browser's Origin with the host the browser used.
 *
 * Peers going away: every socket and stream of an exchange has a permanent
 * error listener, either leg ending tears the other down (bounded by
 * LINGER_MS when a half-close is not answered), and the end is reported once
 * through Disconnects. The callbacks of web() and ws() hear only of an
 * upstream that could not answer, while an answer is still possible.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createProxyServer, numOpenSockets } from 'http-proxy-3';
import { SESSION_COOKIE, withoutCookie } from './session-cookie.js';
import { withoutToken } from './request-target.js';
import { overrideUpstreamHeaders } from './security-headers.js';
import type { Disconnects } from './disconnects.js';

export { numOpenSockets };

/** How long one leg of a WebSocket may stay half-closed after the other leg closed. */
export const LINGER_MS = 5_000;

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection'];

export interface UpstreamOptions {
  readonly host: string;
  readonly port: number;
  /** No response headers (or no 101) from upstream within this long: the request fails. */
  readonly responseTimeoutMs: number;
  readonly disconnects: Disconnects;
}

/** Upstream did not answer; the caller can still send a status. */
export type UpstreamUnavailable = (err: Error) => void;

export class Upstream {
  readonly #proxy: ReturnType<typeof createProxyServer>;
  readonly #gone: Disconnects;
  readonly #timeoutMs: number;
  /** Browser sockets that received the upstream's 101. */
  readonly #upgraded = new WeakSet<Socket>();
  readonly target: string;

  constructor(opts: UpstreamOptions) {
    this.#gone = opts.disconnects;
    this.#timeoutMs = opts.responseTimeoutMs;
    this.target = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    this.#proxy = createProxyServer({
      target: this.target,
      xfwd: false, // set by prepare(): http-proxy-3 would append to client-sent values
      changeOrigin: false,
      proxyTimeout: opts.responseTimeoutMs,
      ws: true,
    });
    // http-proxy-3 re-emits every error of a WebSocket's browser socket on the
    // proxy and THROWS it when the proxy has no 'error' listener besides its
    // own: without this one, a closed tab (read ECONNRESET, write EPIPE) ends the process.
    this.#proxy.on('error', (err, req, socket) => this.browserSocketError(socket as Socket, err, req.url));
    // The browser went away before upstream answered; http-proxy-3 has destroyed the upstream request.
    this.#proxy.on('econnreset', (err, req) => this.#gone.note(req.socket, 'browser', 'request', err, req.url));
    this.#proxy.on('proxyRes', (proxyRes, req, res) => this.#onResponse(proxyRes, req, res));
    this.#proxy.on('proxyReqWs', (proxyReq, _req, socket) => this.#bindUpgrade(proxyReq, socket));
  }

  web(req: IncomingMessage, res: ServerResponse, onUnavailable: UpstreamUnavailable): void {
    prepare(req, 'https');
    res.on('error', (err) => this.#gone.note(req.socket, 'browser', 'response', err, req.url));
    // Aborted by the browser: http-proxy-3 destroys the upstream request on this same event.
    res.once('close', () => {
      if (!res.writableFinished) this.#gone.note(req.socket, 'browser', res.headersSent ? 'response' : 'request', undefined, req.url);
    });
    this.#proxy.web(req, res, {}, (err) => {
      if (res.destroyed || req.socket.destroyed) return this.#gone.note(req.socket, 'browser', 'request', err, req.url);
      if (!res.headersSent) return onUnavailable(err as Error);
      this.#gone.note(req.socket, 'upstream', 'response', err, req.url);
      res.destroy();
    });
  }

  ws(req: IncomingMessage, socket: Socket, head: Buffer, onUnavailable: UpstreamUnavailable): void {
    prepare(req, 'https');
    this.#proxy.ws(req, socket, head, {}, (err) => {
      if (socket.destroyed) return this.browserSocketError(socket, err, req.url);
      if (!this.#upgraded.has(socket)) return onUnavailable(err as Error);
      // After the 101 nothing but WebSocket frames may reach the browser: just close.
      this.#gone.note(socket, 'upstream', 'websocket', err, req.url);
      socket.destroy();
    });
  }

  /** An error on a browser socket that asked for an upgrade, proxied or not (it is then destroyed by its owner). */
  browserSocketError(socket: Socket, err: unknown, url: string | undefined): void {
    this.#gone.note(socket, 'browser', this.#upgraded.has(socket) ? 'websocket' : 'upgrade', err, url);
  }

  close(): void {
    this.#proxy.close();
  }

  #onResponse(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
    overrideUpstreamHeaders(proxyRes.headers);
    // Hop-by-hop: ours asks upstream to close after each response (no agent), which must not
    // close the browser's connection too, or every asset of a page costs a TLS handshake.
    for (const h of HOP_BY_HOP) delete proxyRes.headers[h];
    // Upstream ended mid-body (FIN or RST): piping would leave the browser waiting for bytes that never come.
    const cutShort = (err?: unknown) => {
      if (proxyRes.complete || res.destroyed) return;
      this.#gone.note(req.socket, 'upstream', 'response', err, req.url);
      res.destroy();
    };
    proxyRes.on('error', cutShort);
    proxyRes.once('close', () => cutShort());
  }

  #bindUpgrade(proxyReq: ClientRequest, socket: Socket): void {
    // A silent upstream must not hold the browser's socket (and ours) for ever.
    proxyReq.setTimeout(this.#timeoutMs, () => proxyReq.destroy(Object.assign(new Error('upstream did not answer the WebSocket upgrade'), { code: 'ETIMEDOUT' })));
    // The browser left before the 101: http-proxy-3 would still wait for it, then pipe upstream into a dead socket.
    const abandon = () => void proxyReq.destroy();
    if (socket.destroyed) return abandon();
    socket.once('close', abandon);
    proxyReq.once('upgrade', (_res: IncomingMessage, proxySocket: Socket) => {
      socket.off('close', abandon);
      if (socket.destroyed) return void proxySocket.destroy();
      this.#upgraded.add(socket);
      // http-proxy-3 half-closes the other leg when one closes; a peer that never finishes the close is cut.
      socket.once('close', () => lingerThenDestroy(proxySocket));
      proxySocket.once('close', () => lingerThenDestroy(socket));
    });
  }
}

function lingerThenDestroy(socket: Socket): void {
  if (!socket.destroyed) setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

function prepare(req: IncomingMessage, proto: 'https'): void {
  const h = req.headers;
  delete h.authorization;
  delete h['proxy-authorization'];
  const cookie = withoutCookie(h.cookie, SESSION_COOKIE);
  if (cookie === undefined) delete h.cookie;
  else h.cookie = cookie;
  for (const name of Object.keys(h)) if (name.startsWith('x-forwarded-') || name === 'forwarded') delete h[name];
  h['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  h['x-forwarded-proto'] = proto;
  if (h.host) h['x-forwarded-host'] = h.host;
  if (req.url) req.url = withoutToken(req.url);
}
