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
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { createProxyServer, numOpenSockets } from 'http-proxy-3';
import { SESSION_COOKIE, withoutCookie } from './session-cookie.js';
import { withoutToken } from './request-target.js';
import { overrideUpstreamHeaders } from './security-headers.js';

export { numOpenSockets };

export interface UpstreamOptions {
  readonly host: string;
  readonly port: number;
  /** No response headers from upstream within this long: 504. */
  readonly responseTimeoutMs: number;
}

export type UpstreamFailure = (err: Error, kind: 'http' | 'ws') => void;

export class Upstream {
  readonly #proxy: ReturnType<typeof createProxyServer>;
  readonly target: string;

  constructor(opts: UpstreamOptions) {
    this.target = `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${opts.port}`;
    this.#proxy = createProxyServer({
      target: this.target,
      xfwd: false, // set by prepare(): http-proxy-3 would append to client-sent values
      changeOrigin: false,
      proxyTimeout: opts.responseTimeoutMs,
      ws: true,
    });
    this.#proxy.on('proxyRes', (proxyRes) => overrideUpstreamHeaders(proxyRes.headers));
  }

  web(req: IncomingMessage, res: ServerResponse, onError: UpstreamFailure): void {
    prepare(req, 'https');
    this.#proxy.web(req, res, {}, (err) => onError(err as Error, 'http'));
  }

  ws(req: IncomingMessage, socket: Socket, head: Buffer, onError: UpstreamFailure): void {
    prepare(req, 'https');
    this.#proxy.ws(req, socket, head, {}, (err) => onError(err as Error, 'ws'));
  }

  close(): void {
    this.#proxy.close();
  }
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
