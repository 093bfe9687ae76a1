/**
 * Hostile and confused input on 8786: garbage, truncated ClientHellos,
 * plaintext Dask, HTTP, floods of half-open sockets, failed-handshake
 * bursts and connection caps. Nothing crashes, memory stays bounded,
 * everything is logged, and a good peer is served afterwards.
 */
import t, { type Test } from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { request } from 'node:http';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { DASK_VERSIONS, requireDask, runClient } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
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

/** A plain TCP socket; `lp` keeps its local port, which Node forgets once it closes; `gone` settles when it closes. */
function rawConnect(port: number): Promise<Socket & { lp: number; gone: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(Object.assign(s, { lp: s.localPort ?? 0, gone })));
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', reject);
  });
}

/** Like rawConnect, for a socket the gateway may refuse at once (a reset can beat the connect event). */
function floodConnect(port: number): Promise<Socket & { gone: Promise<void> }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    s.resume(); // read the probe and the FIN, or the socket never closes
    const done = () => resolve(Object.assign(s, { gone }));
    s.once('connect', done);
    s.once('close', done);
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

t.test('200 half-open connections from one address: a handful hold handshake slots, the rest are refused at accept, logs stay bounded, a peer from another address is served meanwhile', async (t) => {
  const gw = await gateway(t, { 'max-handshakes-per-address': '16' });
  const before = process.memoryUsage().rss;
  const ends: Array<Promise<void>> = [];
  for (let i = 0; i < 200; i++) {
    const s = await floodConnect(gw.port);
    if (i % 2 === 0 && !s.destroyed) s.write(TRUNCATED_HELLO.subarray(0, 5 + (i % 30)));
    ends.push(s.gone);
  }
  const during = await probeTls(gw.port, { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, localAddress: '127.0.0.2' });
  t.equal(during.outcome, 'data', 'a peer from 127.0.0.2 is served while 127.0.0.1 floods');
  await Promise.all(ends);
  const refusals = async (reason: string) => (await gw.gw.context.metrics.refusalsTotal.get()).values.find((v) => v.labels.port === '8786' && v.labels.reason === reason)?.value ?? 0;
  const atAccept = await refusals('too_many_handshakes_from_address');
  const timedOut = await refusals('handshake_timeout');
  t.equal(atAccept + timedOut, 200, `every connection is refused and counted: ${atAccept} at accept, ${timedOut} at the handshake deadline`);
  t.ok(timedOut >= 16 && timedOut <= 40, `only a few held a slot at a time (${timedOut} in ~1 s waves of at most 16)`);
  const lines = gw.lines.filter((l) => l.event === 'connection_refused' || l.event === 'refusals_coalesced').length;
  t.ok(lines <= 6, `${lines} log lines for 200 refusals (first line per reason, then summaries)`);
  const grown = (process.memoryUsage().rss - before) / 1024 / 1024;
  t.ok(grown < 64, `rss grew ${grown.toFixed(1)} MiB for 200 half-open sockets (limit 64)`);
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

t.test('with every slot taken, live and handshaking, the next connection is refused at accept as too_many_connections', async (t) => {
  // 4 slots: 1 for handshakes (a quarter), no role reserves, so 3 live sessions and 1 handshake fill the port.
  const gw = await gateway(t, { 'max-connections': '4', 'handshake-timeout-ms': '5000', 'reserve-workers-percent': '0', 'reserve-clients-percent': '0' });
  const live: Socket[] = [];
  for (let i = 0; i < 3; i++) live.push(await liveSession(gw.port)); // one handshake slot: one at a time
  const handshaking = await rawConnect(gw.port);
  await waitFor(async () => (await gw.gw.context.metrics.connectionSlots.get()).values.reduce((n, v) => n + v.value, 0) === 4, { timeoutMs: 5_000, what: 'four slots taken' });
  const extra = await floodConnect(gw.port);
  const lp = extra.localPort;
  await extra.gone;
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'too_many_connections');
  if (lp) t.equal(line.peer, `127.0.0.1:${lp}`, 'the line names the refused peer');
  t.equal(line.reason, 'too_many_connections', 'audited as too_many_connections');
  t.equal(live.filter((s) => !s.destroyed).length, 3, 'the live sessions are untouched');
  for (const s of [...live, handshaking]) s.destroy();
});

/** An authenticated session the echo upstream has greeted. */
function liveSession(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, checkServerIdentity: () => undefined });
    s.once('data', () => resolve(s));
    s.once('error', reject);
  });
}

