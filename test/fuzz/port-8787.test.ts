/**
 * Port 8787 over loopback, at volume: raw bytes over TLS (session tickets
 * reused, so the run is about HTTP, not handshakes) to the dashboard in front
 * of a loopback HTTP + WebSocket echo upstream.
 *   - HTTP: keep-alive connections carrying hostile but parseable requests
 *     (paths, methods, tokens, cookies, origins, bodies), most ending in one
 *     malformed request (smuggling shapes, huge headers, broken syntax);
 *   - WebSocket: a valid upgrade with a real token, then frames with random
 *     payloads, most connections ending in one broken frame (unmasked,
 *     reserved bits, bad opcodes, oversized control frames, bogus lengths).
 * Cases are requests answered and frames forwarded (or the broken one that
 * ended the connection). Zero hangs, fds and heap back to baseline, no error
 * lines, and the dashboard still serves a valid request at the end.
 */
import t from 'tap';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createServer } from 'node:http';
import { WebSocketServer } from 'ws';
import { randomBytes } from 'node:crypto';
import { crlPathFor, startDashboard, type DashboardComponent } from '../../src/dashboard/index.js';
import { TokenStore } from '../../src/tokens/store.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { bytes, casesFromEnv, mutate, openFds, prng, seedFromEnv, startEcho, startVolumeGateway, type VolumeGateway } from '../hardening/harness.js';
import { heapAfterGc, mutateText, NASTY, pick } from './fuzz-kit.js';

// Scales with FUZZ_CASES (scripts/fuzz-long.sh); never below 10 minutes.
t.setTimeout(Math.max(600_000, casesFromEnv() * 5));

const HANG_MS = 20_000;
let cluster: TestCluster;
let gw: VolumeGateway;
let dash: DashboardComponent;
let port: number;
/** Messages the upstream received, by request path (each WebSocket connection has its own). */
const upstreamMessages = new Map<string, number>();
const tokens: { view: string; admin: string } = { view: '', admin: '' };

t.before(async () => {
  cluster = await makeTestCluster();
  const store = TokenStore.open(cluster.dir);
  tokens.view = store.create({ name: 'fuzz-view', scope: 'view' }).token;
  tokens.admin = store.create({ name: 'fuzz-admin', scope: 'admin' }).token;
  store.close();
  // Upstream: answers every request with a small body; WebSocket echo on every path.
  const http = createServer((req, res) => { req.resume(); req.on('end', () => res.end(`ok ${req.method}\n`)); });
  const wss = new WebSocketServer({ server: http, maxPayload: 1 << 20 });
  wss.on('connection', (ws, req) => {
    const path = req.url ?? '';
    ws.on('message', (m) => { upstreamMessages.set(path, (upstreamMessages.get(path) ?? 0) + 1); ws.send(m); });
    ws.on('error', () => {});
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => { for (const c of wss.clients) c.terminate(); wss.close(); http.closeAllConnections(); http.close(() => r()); }));
  const echo = await startEcho(t);
  gw = await startVolumeGateway({
    t, cluster, scheduler: `127.0.0.1:${echo.port}`,
    flags: { dashboard: 'false', 'dashboard-upstream': `127.0.0.1:${(http.address() as { port: number }).port}`, 'max-websockets-per-identity': '10000' },
  });
  // The composed dashboard is off; this one is the same component with the login-failure limiter lifted (it would
  // answer 429 to everything after ten bad tokens), so every case reaches the pipeline.
  const ctx = gw.gw.context;
  dash = await startDashboard(ctx, { ...gw.gw.config.dashboard, enabled: true, listen: { host: '127.0.0.1', port: 0 }, crlPath: crlPathFor(gw.gw.settings.pki) }, { limits: { loginFailuresPerWindow: 1_000_000_000 } });
  t.teardown(() => dash.close());
  port = dash.address!.port;
});
t.teardown(() => cluster?.cleanup());

let session: Buffer | undefined;
/** Raw TLS to 8787, resuming the last session; resolves with everything received once the server closes. */
function exchange(write: (s: TLSSocket) => void, finAfterMs = 3_000): Promise<{ data: string; hang: boolean }> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, servername: 'localhost', ...(session ? { session } : {}) }, () => write(s));
    s.on('session', (x: Buffer) => { session = x; });
    let data = '';
    // We half-close after a few seconds; from then on the server must close within HANG_MS. (Without our FIN an
    // incomplete request is Node's slowloris timer's business: headersTimeout checked every 30 s, not a hang.)
    let timer: NodeJS.Timeout | undefined;
    const fin = setTimeout(() => {
      s.end();
      timer = setTimeout(() => { s.destroy(); resolve({ data, hang: true }); }, HANG_MS);
    }, finAfterMs);
    s.on('data', (d: Buffer) => { data += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(fin); clearTimeout(timer); resolve({ data, hang: false }); });
  });
}

const PATHS = ['/status', '/', '/gateway/login', '/gateway/health', '/gateway/logout', '/api/v1/retire_workers', '/individual-plots.json', '/json/counts.json',
  '/../../etc/passwd', '/%2e%2e/%2e%2e/', '//evil.example/x', '/status?token=', '/\\\\evil', '/%00', '/a/%252e%252e/b', '/status#frag', '*', 'http://evil.example/', '/' + 'a'.repeat(9000)];
const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH', 'PROPFIND', 'get', 'G\u00e9T'];

/** encodeURIComponent that also takes lone surrogates (as a raw client would send them). */
function enc(s: string): string {
  try { return encodeURIComponent(s); } catch { return Buffer.from(s, 'latin1').toString('hex'); }
}

function token(rand: () => number): string {
  const r = rand();
  if (r < 0.4) return tokens.view;
  if (r < 0.5) return tokens.admin;
  return mutateText(rand, pick(rand, [tokens.view, tokens.admin]));
}

/** A request Node's parser accepts: the pipeline behind it (target, route, auth, scope, origin, proxy) is what is exercised. */
function parseable(rand: () => number): string {
  const method = pick(rand, METHODS.slice(0, 10));
  let path = rand() < 0.7 ? pick(rand, PATHS) : `/${enc(pick(rand, NASTY))}`;
  if (rand() < 0.2) path += `${path.includes('?') ? '&' : '?'}token=${enc(token(rand))}&next=${enc(pick(rand, NASTY))}`;
  path = path.replace(/[\s\u0000-\u001f\u007f]/g, '%20');
  const h: string[] = [`Host: ${rand() < 0.9 ? `localhost:${port}` : pick(rand, ['evil.example', '', 'localhost:1'])}`];
  const auth = rand();
  if (auth < 0.5) h.push(`Authorization: Bearer ${token(rand)}`);
  else if (auth < 0.6) h.push(`Cookie: __Host-dgw_session=${mutateText(rand, 'v1.abc.def').replace(/[\r\n]/g, '')}`);
  if (rand() < 0.2) h.push(`Origin: ${pick(rand, [`https://localhost:${port}`, 'https://evil.example', 'null'])}`);
  if (rand() < 0.1) h.push(`X-Forwarded-For: ${pick(rand, ['127.0.0.1', '10.0.0.1, 1.2.3.4', 'garbage'])}`);
  if (rand() < 0.1) h.push(`Sec-Fetch-Site: ${pick(rand, ['same-origin', 'cross-site'])}`);
  let body = '';
  if (method === 'POST' || method === 'PUT' || rand() < 0.05) {
    body = rand() < 0.5 ? `token=${enc(token(rand))}&next=/status` : bytes(rand, 200).toString('base64');
    h.push('Content-Type: application/x-www-form-urlencoded', `Content-Length: ${Buffer.byteLength(body)}`);
  }
  return `${method} ${path.startsWith('/') || path === '*' || path.startsWith('http') ? path : '/' + path} HTTP/1.1\r\n${h.map((x) => x.replace(/[\u0000-\u0008\u000a-\u001f\u007f]/g, '')).join('\r\n')}\r\n\r\n${body}`;
}

/** What request smuggling, header abuse and broken syntax look like on the wire. */
function malformed(rand: () => number): string {
  const host = `Host: localhost:${port}\r\n`;
  const shapes = [
    () => `POST /status HTTP/1.1\r\n${host}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n`,
    () => `POST /status HTTP/1.1\r\n${host}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    () => `POST /status HTTP/1.1\r\n${host}Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    () => `POST /status HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
    () => `POST /status HTTP/1.1\r\n${host}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n`,
    () => `GET /status HTTP/1.1\r\n${host}X-Folded: a\r\n b\r\n\r\n`,
    () => `GET /status HTTP/1.1\n${host}\n\n`,
    () => `GET /status HTTP/1.1\r\n${host}X-Big: ${'a'.repeat(17_000 + Math.floor(rand() * 40_000))}\r\n\r\n`,
    () => `GET /status HTTP/1.1\r\n${host}${Array.from({ length: 3000 }, (_, i) => `X-${i}: v`).join('\r\n')}\r\n\r\n`,
    () => `GET /status HTTP/1.1\r\n${host}Bad Header: x\r\n\r\n`,
    () => `GET /st\0atus HTTP/1.1\r\n${host}\r\n`,
    () => `GET /status HTTP/9.9\r\n${host}\r\n`,
    () => `${pick(rand, METHODS.slice(10))} /status HTTP/1.1\r\n${host}\r\n`,
    () => `GET /status HTTP/1.1\r\n${host}Content-Length: -1\r\n\r\n`,
    () => `GET /status HTTP/1.1\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${mutateText(rand, 'dGhlIHNhbXBsZSBub25jZQ==')}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token(rand)}\r\n\r\n`,
    () => mutate(rand, Buffer.from(parseable(rand)), 3).toString('latin1'),
    () => bytes(rand, 400).toString('latin1'),
  ];
  return pick(rand, shapes)();
}

function wsFrame(opcode: number, payload: Buffer, o: { fin?: boolean; mask?: boolean; rsv?: number; lengthOverride?: bigint } = {}): Buffer {
  const head: number[] = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
  const maskBit = (o.mask ?? true) ? 0x80 : 0;
  const len = o.lengthOverride ?? BigInt(payload.length);
  let ext = Buffer.alloc(0);
  if (len < 126n) head.push(maskBit | Number(len));
  else if (len < 65536n) { head.push(maskBit | 126); ext = Buffer.alloc(2); ext.writeUInt16BE(Number(len)); }
  else { head.push(maskBit | 127); ext = Buffer.alloc(8); ext.writeBigUInt64BE(len); }
  if (!(o.mask ?? true)) return Buffer.concat([Buffer.from(head), ext, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), ext, key, masked]);
}

function brokenFrame(rand: () => number): Buffer {
  const p = bytes(rand, 64);
  return pick(rand, [
    () => wsFrame(2, p, { mask: false }),
    () => wsFrame(1, p, { rsv: 1 + Math.floor(rand() * 7) }),
    () => wsFrame(pick(rand, [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), p),
    () => wsFrame(9, bytes(rand, 300)), // control frame > 125 bytes
    () => wsFrame(9, p, { fin: false }), // fragmented control frame
    () => wsFrame(0, p), // continuation without a start
    () => wsFrame(1, Buffer.from([0xff, 0xfe, 0xc3, 0x28])), // invalid UTF-8 in text
    () => wsFrame(2, p, { lengthOverride: 2n ** 63n + 5n }),
    () => wsFrame(8, Buffer.from([0x03])), // close with a one-byte payload
    () => wsFrame(8, Buffer.from([0x00, 0x05])), // close with an invalid code
    () => mutate(rand, wsFrame(2, p), 3),
  ])();
}

t.test('malformed HTTP, smuggling, huge headers and broken WebSocket frames: answered or closed, nothing crashes or leaks', async (t) => {
  const seed = seedFromEnv() + 2;
  const target = casesFromEnv();
  const rand = prng(seed);
  t.comment(`fuzz 8787: seed ${seed} (replay with FUZZ_SEED=${seed - 2}), ${target} cases`);
  const fdsBefore = openFds();
  const heapBefore = heapAfterGc();
  const stats = { http: 0, ws: 0, connections: 0, hangs: 0, upgrades: 0, malformedTails: 0, brokenTails: 0 };
  const started = Date.now();
  const httpConnection = async () => {
    const n = 1 + Math.floor(rand() * 40);
    const reqs = Array.from({ length: n }, () => parseable(rand));
    const tail = rand() < 0.6;
    if (tail) reqs.push(malformed(rand));
    else reqs[reqs.length - 1] = reqs[reqs.length - 1]!.replace('\r\n', '\r\nConnection: close\r\n');
    // No half-close: Node's server drops pipelined requests and pending proxied answers once the client's FIN arrives.
    const r = await exchange((s) => s.write(reqs.join('')));
    if (r.hang) t.comment(`hang: HTTP connection, ${reqs.length} requests, first ${JSON.stringify(reqs[0]?.slice(0, 120))}, received ${JSON.stringify(r.data.slice(0, 120))}`);
    const answered = (r.data.match(/HTTP\/1\.1 \d{3} /g) ?? []).length;
    stats.http += Math.min(answered, reqs.length) + (tail && answered < reqs.length ? 1 : 0);
    if (tail) stats.malformedTails++;
    return r.hang;
  };
  const wsConnection = async () => {
    const id = randomBytes(6).toString('hex');
    const n = 1 + Math.floor(rand() * 80);
    // Random bytes go in binary frames, hostile strings in text frames (valid UTF-8: a broken one is a tail case below).
    const frames = Array.from({ length: n }, () => (rand() < 0.2 ? wsFrame(9, bytes(rand, 100)) : rand() < 0.5 ? wsFrame(2, bytes(rand, 600)) : wsFrame(1, Buffer.from(pick(rand, NASTY)))));
    const broken = rand() < 0.7;
    if (broken) frames.push(brokenFrame(rand));
    frames.push(wsFrame(8, Buffer.from([0x03, 0xe8])));
    const key = randomBytes(16).toString('base64');
    let upgraded = false;
    const r = await exchange((s) => {
      s.write(`GET /ws/${enc(pick(rand, ['status', 'stream', 'x']))}/${id} HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${tokens.view}\r\n\r\n`);
      const onData = (d: Buffer) => {
        if (!upgraded && d.toString('latin1').startsWith('HTTP/1.1 101')) {
          upgraded = true;
          s.off('data', onData);
          for (const f of frames) s.write(f);
        }
      };
      s.on('data', onData);
    }, 1_000);
    if (upgraded) stats.upgrades++;
    // A hang is rare and timing-bound: say what the connection was, so a CI failure can be understood.
    if (r.hang) t.comment(`hang: WebSocket ${id}, ${n} frames, broken tail ${broken}, upgraded ${upgraded}, received ${JSON.stringify(r.data.slice(0, 120))}`);
    const forwarded = [...upstreamMessages].filter(([k]) => k.endsWith(`/${id}`)).reduce((a, [, v]) => a + v, 0);
    stats.ws += forwarded + (broken ? 1 : 0);
    if (broken) stats.brokenTails++;
    return r.hang;
  };
  await Promise.all(Array.from({ length: 12 }, async () => {
    while (stats.http + stats.ws < target) {
      stats.connections++;
      if (await (rand() < 0.55 ? httpConnection() : wsConnection())) stats.hangs++;
    }
  }));
  const ms = Date.now() - started;
  const fdsAfter = await waitFor(() => (openFds() <= fdsBefore + 8 ? openFds() : undefined), { timeoutMs: 30_000, what: 'fds back' }).catch(() => openFds());
  const heapGrowth = heapAfterGc() - heapBefore;
  const m = await gw.gw.context.metrics.refusalsTotal.get();
  const refusals = Object.fromEntries(m.values.filter((v) => v.labels.port === '8787').map((v) => [String(v.labels.reason), v.value]));
  t.comment(`fuzz 8787: ${JSON.stringify({ seed, cases: stats.http + stats.ws, ...stats, ms, refusals, fdsBefore, fdsAfter, heapGrowthMiB: +(heapGrowth / 1048576).toFixed(1) })}`);
  t.ok(stats.http + stats.ws >= target, `${stats.http} HTTP requests and ${stats.ws} WebSocket frames judged`);
  t.ok(stats.upgrades > 0 && stats.ws > stats.brokenTails, 'valid upgrades carried frames to the upstream');
  t.equal(stats.hangs, 0, `zero hangs: every connection closed within ${HANG_MS} ms of the client's FIN`);
  for (const reason of ['smuggling', 'header_too_large', 'bad_request']) t.ok((refusals[reason] ?? 0) > 0, `refusals counted as ${reason} (${refusals[reason] ?? 0})`);
  t.ok(fdsAfter <= fdsBefore + 8, `file descriptors back to baseline (${fdsBefore} -> ${fdsAfter})`);
  t.ok(heapGrowth < 48 * 1048576, `heap after GC grew ${(heapGrowth / 1048576).toFixed(1)} MiB (< 48)`);
  t.same(gw.log.problems.filter((l) => l.level === 'error'), [], 'no error lines in the gateway log');
  t.equal(dash.server!.websockets.size, 0, 'no WebSocket left tracked');
});

t.test('after the run the dashboard still serves a valid request', async (t) => {
  session = undefined;
  const r = await exchange((s) => s.write(`GET /status HTTP/1.1\r\nHost: localhost:${port}\r\nAuthorization: Bearer ${tokens.view}\r\nConnection: close\r\n\r\n`));
  t.match(r.data, /^HTTP\/1\.1 200 /, `proxied with 200 (got ${r.data.slice(0, 300)})`);
  t.match(r.data, /ok GET/, 'the upstream answered');
});
