/**
 * Hostile and confused input on 8786: garbage, truncated ClientHellos,
 * plaintext Dask, HTTP, floods of half-open sockets, failed-handshake
 * bursts and connection caps. Nothing crashes, memory stays bounded,
 * everything is logged, and a good peer is served afterwards.
 */
import t, { type Test } from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import { request } from 'node:http';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { DASK_VERSIONS, requireDask, runClient, waitFor } from '../helpers/dask.js';
import { probeTls } from './tls-client.js';

let cluster: TestCluster;
let echoPort: number;
let alice: { certPem: string; keyPem: string };

t.before(async () => {
  cluster = await makeTestCluster();
  alice = await cluster.issue('client', 'alice');
  // Stands in for the scheduler: these tests are about what never reaches it.
  const echo = createServer((s) => { s.on('error', () => {}); s.write('hello'); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  t.teardown(() => echo.close());
});
t.teardown(() => cluster?.cleanup());

function gateway(t: Test, flags: Record<string, string> = {}): Promise<TestGateway> {
  return startTestGateway({ cluster, scheduler: `127.0.0.1:${echoPort}`, t, flags: { inspect: 'false', 'handshake-timeout-ms': '1000', 'failed-handshake-rate': '100000', ...flags } });
}

/** A plain TCP socket; `lp` keeps its local port, which Node forgets once it closes. */
function rawConnect(port: number): Promise<Socket & { lp: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(Object.assign(s, { lp: s.localPort ?? 0 })));
    s.on('error', reject);
  });
}

function closed(s: Socket): Promise<string> {
  let got = '';
  s.on('data', (d) => { got += d.toString('latin1'); });
  s.on('error', () => {});
  return new Promise((r) => s.once('close', () => r(got)));
}

async function goodPeerServed(t: Test, gw: TestGateway): Promise<void> {
  const r = await probeTls(gw.port, { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem });
  t.equal(r.outcome, 'data', 'a good peer is still served');
}

// The start of a real TLS 1.2 ClientHello record, cut short.
const TRUNCATED_HELLO = Buffer.from('160301020001' + '0001fc0303' + 'aa'.repeat(20), 'hex');

t.test('garbage on the port is refused as not_tls and logged', async (t) => {
  const gw = await gateway(t);
  const s = await rawConnect(gw.port);
  const done = closed(s);
  s.write(Buffer.from('\x00\x01\x02garbage-garbage-garbage\xff\xfe', 'latin1'));
  await done;
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${s.lp}`);
  t.equal(line.reason, 'not_tls', 'audited as not TLS');
  await goodPeerServed(t, gw);
});

t.test('truncated ClientHellos are refused: cut off by the handshake deadline, or by the peer closing', async (t) => {
  const gw = await gateway(t);
  const stalled = await rawConnect(gw.port);
  const stalledDone = closed(stalled);
  stalled.write(TRUNCATED_HELLO);
  const quitter = await rawConnect(gw.port);
  const quitterDone = closed(quitter);
  quitter.end(TRUNCATED_HELLO);
  await Promise.all([stalledDone, quitterDone]);
  const a = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${stalled.lp}`);
  t.equal(a.reason, 'handshake_timeout', 'the stalled hello hits the handshake deadline');
  const b = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${quitter.lp}`);
  t.match(b.reason, /^(tls_handshake_failed|handshake_aborted)$/, 'the half-sent hello is refused when the peer closes');
  await goodPeerServed(t, gw);
});

t.test('an HTTP request gets a one-line plaintext explanation and is logged as HTTP', async (t) => {
  const gw = await gateway(t);
  const res = await new Promise<{ status: number; body: string; port: number }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, path: '/status', method: 'GET' }, (r) => {
      let body = '';
      r.on('data', (d) => { body += d; });
      r.on('end', () => resolve({ status: r.statusCode ?? 0, body, port: req.socket?.localPort ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(res.status, 400, 'a plain 400 status line');
  t.match(res.body, /Dask over mutual TLS/, 'the body says what the port speaks');
  t.equal(res.body.trim().split('\n').length, 1, 'one line');
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'plaintext_http');
  t.match(String(line.detail), /HTTP/, 'the log names HTTP');
});

t.test('a plaintext Dask client (tcp://) is told why in Python, and named as such in the log', async (t) => {
  for (const version of DASK_VERSIONS) {
    if (!requireDask(t, version)) continue;
    const gw = await gateway(t);
    const out = await runClient<{ error: string }>(`
import json
from distributed import Client
try:
    Client("tcp://127.0.0.1:${gw.port}", timeout=20)
    print(json.dumps({"error": ""}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
`, { timeoutMs: 60_000, version });
    t.match(out.error, /refused this connection \(plaintext_dask\).*tls:\/\//, `Dask ${version.id}: the exception names the reason (${out.error.slice(0, 80)})`);
    const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'plaintext_dask', 10_000);
    t.match(String(line.detail), /plaintext Dask client/, 'the log names a plaintext Dask client');
    t.equal(gw.audits('connection_accepted').length, 0, 'nothing was forwarded');
  }
});

t.test('200 half-open connections: all cut at the handshake deadline, memory bounded, no crash', async (t) => {
  const gw = await gateway(t);
  const before = process.memoryUsage().rss;
  const socks: Socket[] = [];
  for (let i = 0; i < 200; i++) {
    const s = await rawConnect(gw.port);
    if (i % 2 === 0) s.write(TRUNCATED_HELLO.subarray(0, 5 + (i % 30)));
    socks.push(s);
  }
  const ends = socks.map(closed);
  await waitFor(() => gw.audits('connection_refused').filter((l) => l.reason === 'handshake_timeout').length >= 200, { timeoutMs: 30_000, what: '200 handshake timeouts' });
  await Promise.all(ends);
  const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
  t.ok(grown < 64, `rss grew ${grown.toFixed(1)} MiB for 200 half-open sockets (limit 64)`);
  t.equal(gw.lines.filter((l) => l.event === 'connection_refused').length, 200, 'each one logged once');
  await goodPeerServed(t, gw);
});

t.test('an address that keeps failing handshakes is refused as rate_limited', async (t) => {
  const gw = await gateway(t, { 'failed-handshake-rate': '5' });
  for (let i = 0; i < 5; i++) {
    const s = await rawConnect(gw.port);
    const done = closed(s);
    s.write('garbage-garbage-garbage');
    await done;
  }
  const r = await probeTls(gw.port, { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem });
  t.equal(r.outcome, 'closed', 'even a good certificate is refused from a limited address');
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${r.localPort}`);
  t.equal(line.reason, 'rate_limited', 'audited as rate_limited');
});

t.test('connections beyond max-connections are refused as too_many_connections', async (t) => {
  const gw = await gateway(t, { 'max-connections': '3', 'handshake-timeout-ms': '5000' });
  const held = await Promise.all([0, 1, 2].map(() => rawConnect(gw.port)));
  const extra = await rawConnect(gw.port);
  await closed(extra);
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${extra.lp}`);
  t.equal(line.reason, 'too_many_connections', 'audited as too_many_connections');
  for (const s of held) s.destroy();
});
