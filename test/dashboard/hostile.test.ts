/**
 * Hostile input on 8787, byte for byte over TLS: oversized headers, request
 * smuggling shapes, path traversal, and a thousand upgrades to a dead
 * upstream. Every refusal must be answered, logged and counted, and nothing
 * may leak a socket.
 */
import t from 'tap';
import { connect, type TLSSocket } from 'node:tls';
import { numOpenSockets } from '../../src/dashboard/proxy.js';
import { startFakeUpstream, startTestDashboard, type TestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';

interface Raw { text: string; status: number }

function raw(d: TestDashboard, payload: string, session?: Buffer, onSession?: (s: Buffer) => void): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = connect({ host: '127.0.0.1', port: d.port, servername: 'localhost', ca: d.cluster.caPem, ...(session ? { session } : {}) });
    let text = '';
    if (onSession) s.once('session', onSession);
    s.setTimeout(20_000, () => { s.destroy(); reject(new Error('raw request timed out: ' + text.slice(0, 200))); });
    s.on('secureConnect', () => s.write(payload));
    s.on('data', (b) => (text += b.toString('latin1')));
    s.on('error', (e) => (text ? undefined : reject(e)));
    s.on('close', () => resolve({ text, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) }));
  });
}

t.test('oversized, smuggling-shaped and folded requests are refused, logged and counted', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('smuggler', 'admin');
  const h = `Host: localhost:${d.port}\r\nAuthorization: Bearer ${token}\r\n`;
  const cases: Array<[string, string, number, string]> = [
    ['oversized headers', `GET /echo HTTP/1.1\r\n${h}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'header_too_large'],
    ['CL.TE', `POST /echo HTTP/1.1\r\n${h}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG`, 400, 'smuggling'],
    ['TE.CL', `POST /echo HTTP/1.1\r\n${h}Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n`, 400, 'smuggling'],
    ['obfuscated TE', `POST /echo HTTP/1.1\r\n${h}Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\nabcd`, 400, ''],
    ['two different Content-Lengths', `POST /echo HTTP/1.1\r\n${h}Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde`, 400, ''],
    ['obs-fold', `GET /echo HTTP/1.1\r\n${h}X-Folded: a\r\n b\r\n\r\n`, 400, ''],
    ['space before colon', `GET /echo HTTP/1.1\r\n${h}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, 400, ''],
    ["absolute-form target", `GET http://127.0.0.1:${up.port}/echo HTTP/1.1\r\n${h}Connection: close\r\n\r\n`, 400, 'bad_target'],
  ];
  for (const [name, payload, status, reason] of cases) {
    const before = reason ? await d.refusals(reason) : 0;
    const r = await raw(d, payload);
    t.equal(r.status, status, `${name}: ${r.text.split('\r\n')[0]}`);
    if (reason) t.equal(await d.refusals(reason), before + 1, `${name} counted as ${reason}`);
  }
  t.equal(up.seen.length, 0, 'none of them reached upstream');
  // One source: each reason is written in full once, repeats are coalesced (src/log/coalesce.ts) and counted above.
  const logged = new Set(d.audits('dashboard_refused').map((l) => l.reason));
  for (const reason of new Set(cases.map((c) => c[3]).filter(Boolean))) t.ok(logged.has(reason), `${reason} is in the audit log`);
  t.notMatch(d.rawLog(), token, 'no token in any log line');
});

t.test('path traversal, raw or percent-encoded, is refused before authentication and upstream', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('walker', 'admin');
  const paths = ['/../etc/passwd', '/statics/../../x', '/%2e%2e/x', '/a/.%2E/b', '/a/%2E%2e%2fetc', '/statics/..%2f..%2fx', '/a%00b', '/a\\..\\b', '/./x', '//evil.example/x', '/a/%ZZ'];
  for (const p of paths) {
    const r = await raw(d, `GET ${p} HTTP/1.1\r\nHost: localhost:${d.port}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
    t.equal(r.status, 400, p);
  }
  t.equal(up.seen.length, 0, 'upstream never saw one');
  t.ok((await d.refusals('path_traversal')) + (await d.refusals('bad_target')) === paths.length, 'each counted');
  const ok = await raw(d, `GET /echo/..a/b.c HTTP/1.1\r\nHost: localhost:${d.port}\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`);
  t.equal(ok.status, 200, 'dots inside a segment are fine');
});

t.test('a query string carrying token= is never logged', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('quiet');
  const bad = `dgw_${'Q'.repeat(49)}`;
  await d.request(`/echo?token=${bad}`);
  await d.request(`/../x?token=${token}`);
  await d.request(`/echo?token=${token}`);
  t.notMatch(d.rawLog(), bad);
  t.notMatch(d.rawLog(), token);
  t.match(d.rawLog(), '?[redacted]');
});

t.test('a thousand upgrades to a dead upstream leave no socket behind', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t, limits: { loginFailuresPerWindow: 1_000_000 } });
  await up.close(); // the upstream port is now closed: every proxied upgrade fails
  const { token } = d.token('hammer');
  const req = `GET /stream HTTP/1.1\r\nHost: localhost:${d.port}\r\nAuthorization: Bearer ${token}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`;
  let session: Buffer | undefined;
  await raw(d, req, undefined, (s) => (session = s));
  const handlesBefore = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;
  const N = Number(process.env.DGW_UPGRADES ?? 1000);
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < N) {
      next++;
      const r = await raw(d, req, session); // TLS session resumption keeps this cheap on a shared machine
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 20 }, worker));
  t.same([...statuses], [[502, N]], 'every upgrade got a 502');
  const connections = () => new Promise<number>((r) => d.component.server!.server.getConnections((_e, n) => r(n)));
  const state = async () => `connections=${await connections()} proxySockets=${numOpenSockets()} tracked=${d.component.server!.websockets.size} sessions=${d.ctx.sessions.size}`;
  await waitFor(async () => (await state()) === 'connections=0 proxySockets=0 tracked=0 sessions=0', { what: 'every socket to close', timeoutMs: 20_000 }).catch(async (e) => t.fail(`${(e as Error).message}: ${await state()}`));
  t.equal(await connections(), 0, 'no open server-side connection');
  t.equal(numOpenSockets(), 0, "http-proxy-3's own socket count is zero");
  t.equal(d.component.server!.websockets.size, 0, 'no tracked WebSocket');
  t.equal(d.ctx.sessions.size, 0, 'no registered session');
  t.equal((await d.metrics.websocketsOpen.get()).values[0]?.value, 0);
  await waitFor(() => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length <= handlesBefore + 2, { what: 'handles back to baseline', timeoutMs: 20_000 });
  t.pass('process handles back to baseline');
  const errors = await d.metrics.upstreamErrorsTotal.get();
  t.equal(errors.values.reduce((a, v) => a + v.value, 0), N + 1, 'each failure counted');
});
