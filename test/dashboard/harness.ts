/**
 * A dashboard (8787) started standalone for tests: a fresh test cluster, the
 * real reloading TrustSource over its state directory, a GatewayContext built
 * here, log lines captured in memory, and small HTTPS / WebSocket clients
 * that trust the cluster CA.
 */
import { Writable } from 'node:stream';
import { request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import WebSocket from 'ws';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics, type GatewayMetrics } from '../../src/runtime/metrics.js';
import { SessionRegistry } from '../../src/runtime/sessions.js';
import { openTrust } from '../../src/runtime/material.js';
import type { GatewayContext } from '../../src/runtime/context.js';
import { resolveSlice, type Flags } from '../../src/config/load.js';
import { dashboardKeys } from '../../src/config/keys/dashboard.js';
import { crlPathFor, startDashboard, type DashboardComponent, type DashboardOptions } from '../../src/dashboard/index.js';
import type { DashboardLimits } from '../../src/dashboard/server.js';
import { TokenStore, type Scope } from '../../src/tokens/store.js';
import { makeTestCluster, type TestCluster, type TestIssued } from '../helpers/pki.js';

export type LogLine = Record<string, unknown> & { event: string; level: string };

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  cert?: TestIssued;
}

export interface TestDashboard {
  readonly cluster: TestCluster;
  readonly component: DashboardComponent;
  readonly ctx: GatewayContext;
  /** What the component was started with. */
  readonly options: DashboardOptions;
  readonly metrics: GatewayMetrics;
  readonly port: number;
  readonly origin: string;
  /** A second connection to tokens.db, as the CLI would open it. */
  readonly tokens: TokenStore;
  readonly lines: LogLine[];
  readonly rawLog: () => string;
  token(name: string, scope?: Scope, expiresDays?: number): { token: string; id: string };
  request(path: string, o?: RequestOptions): Promise<Reply>;
  websocket(path: string, o?: { headers?: Record<string, string>; cert?: TestIssued }): WebSocket;
  audits(event?: string): LogLine[];
  refusals(reason: string): Promise<number>;
  close(): Promise<void>;
}

export interface TestDashboardOptions {
  readonly upstreamPort: number;
  readonly flags?: Flags;
  readonly limits?: Partial<DashboardLimits>;
  readonly cluster?: TestCluster;
  /** The gateway clock (token expiry, sessions); TLS still uses the real one. */
  readonly now?: () => Date;
  readonly t: { teardown(fn: () => unknown): void };
}

export async function startTestDashboard(o: TestDashboardOptions): Promise<TestDashboard> {
  const cluster = o.cluster ?? (await makeTestCluster());
  let raw = '';
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      const s = chunk.toString();
      raw += s;
      for (const l of s.split('\n')) if (l) try { lines.push(JSON.parse(l) as LogLine); } catch { /* partial */ }
      cb();
    },
  });
  const log = createLogger({ stream: sink, level: 'debug' });
  const metrics = createMetrics({ defaultMetrics: false });
  const trust = await openTrust({ mode: 'dir', dir: cluster.dir }, { env: { SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase }, log, metrics, pollMs: 200 });
  const options: DashboardOptions = {
    ...resolveSlice(dashboardKeys, { flags: { 'dashboard-listen': '127.0.0.1:0', 'dashboard-upstream': `127.0.0.1:${o.upstreamPort}`, ...o.flags }, env: {} }),
    crlPath: crlPathFor({ mode: 'dir', dir: cluster.dir }),
  };
  const ctx: GatewayContext = { log, metrics, sessions: new SessionRegistry(), trust, clusterId: trust.current().clusterId, stateDir: cluster.dir, allowMissingEku: false, now: o.now ?? (() => new Date()) };
  const component = await startDashboard(ctx, options, o.limits ? { limits: o.limits } : {});
  const port = component.address!.port;
  const tokens = TokenStore.open(cluster.dir);
  const ca = cluster.caPem;

  const td: TestDashboard = {
    cluster, component, ctx, options, metrics, port, tokens, lines,
    origin: `https://localhost:${port}`,
    rawLog: () => raw,
    token(name, scope = 'view', expiresDays) {
      const r = tokens.create({ name, scope, ...(expiresDays !== undefined ? { expiresDays } : {}) });
      return { token: r.token, id: r.record.id };
    },
    request(path, ro = {}) {
      return new Promise((resolve, reject) => {
        const req = httpsRequest({
          host: '127.0.0.1', servername: 'localhost', port, path, method: ro.method ?? 'GET', ca, agent: false,
          headers: { host: `localhost:${port}`, ...ro.headers },
          ...(ro.cert ? { cert: ro.cert.certPem, key: ro.cert.keyPem } : {}),
        }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          res.on('error', reject);
        });
        req.setTimeout(30_000, () => req.destroy(new Error(`timeout ${path}`)));
        req.on('error', reject);
        req.end(ro.body);
      });
    },
    websocket(path, wo = {}) {
      return new WebSocket(`wss://localhost:${port}${path}`, {
        ca, headers: wo.headers ?? {}, handshakeTimeout: 20_000,
        ...(wo.cert ? { cert: wo.cert.certPem, key: wo.cert.keyPem } : {}),
      });
    },
    audits: (event) => lines.filter((l) => l.level === 'audit' && (event === undefined || l.event === event)),
    async refusals(reason) {
      const m = await metrics.refusalsTotal.get();
      return m.values.filter((v) => v.labels.reason === reason && v.labels.port === '8787').reduce((a, v) => a + v.value, 0);
    },
    async close() {
      await component.close();
      trust.close();
      tokens.close();
      cluster.cleanup();
    },
  };
  o.t.teardown(() => td.close());
  return td;
}

/** Resolves with the close code once the socket closes; rejects on timeout. */
export function closed(ws: WebSocket, timeoutMs = 10_000): Promise<number> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve(-1);
    const timer = setTimeout(() => reject(new Error('websocket did not close')), timeoutMs);
    ws.once('close', (code) => { clearTimeout(timer); resolve(code); });
  });
}

export function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The HTTP status a refused upgrade got. */
export function refusedWith(ws: WebSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('websocket opened but should have been refused')));
    ws.once('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); res.resume(); ws.terminate(); });
    ws.once('error', (e) => reject(e));
  });
}

export interface FakeUpstream {
  readonly port: number;
  /** Requests as upstream saw them: method, url, headers. */
  readonly seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * A loopback stand-in for a Bokeh-style dashboard: GET /echo returns what it
 * received; WebSocket /stream sends a tick every 50 ms and echoes messages.
 */
export async function startFakeUpstream(t: { teardown(fn: () => unknown): void }): Promise<FakeUpstream> {
  const { createServer } = await import('node:http');
  const { WebSocketServer } = await import('ws');
  const seen: FakeUpstream['seen'] = [];
  const server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'x-frame-options': 'ALLOWALL', 'set-cookie': 'upstream=1; Path=/' });
      res.end(out);
    });
  });
  const wss = new WebSocketServer({ server, path: '/stream' });
  wss.on('connection', (ws, req) => {
    seen.push({ method: 'UPGRADE', url: req.url ?? '', headers: req.headers });
    let n = 0;
    const timer = setInterval(() => ws.send(JSON.stringify({ tick: n++ })), 50);
    ws.on('message', (m) => ws.send(`echo:${String(m)}`));
    ws.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const up: FakeUpstream = {
    port: (server.address() as { port: number }).port,
    seen,
    close: () => new Promise<void>((r) => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  t.teardown(() => up.close());
  return up;
}
