/**
 * Peers that vanish, one socket at a time: a browser that resets in the middle
 * of a download, of a pending upgrade, of a live WebSocket or between
 * requests, and an upstream that cuts a body or a WebSocket short. Each ends
 * its exchange with one debug or info line and one count, tears the other leg
 * down, and never ends the process (an uncaught error would fail this file).
 */
import t, { type Test } from 'tap';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createHash } from 'node:crypto';
import { numOpenSockets } from '../../src/dashboard/proxy.js';
import { startTestDashboard, type TestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import { getRequest, rawClient, upgradeRequest } from './raw-client.js';

interface Misbehaving {
  readonly port: number;
  /** Upstream sockets, by the path that opened them; `closed` flips when each closes. */
  readonly sockets: Array<{ path: string; socket: Socket; closed: boolean }>;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** An upstream dashboard whose every route ends badly on purpose. */
async function startMisbehaving(t: { teardown(fn: () => unknown): void }): Promise<Misbehaving> {
  const sockets: Misbehaving['sockets'] = [];
  const remember = (path: string, socket: Socket) => {
    const e = { path, socket, closed: false };
    sockets.push(e);
    socket.once('close', () => (e.closed = true));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    remember(req.url ?? '', req.socket);
    switch (req.url) {
      case '/big': {
        // A static download that never ends on its own: only an abort stops it.
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1 << 30) });
        const timer = setInterval(() => res.write(CHUNK), 5);
        res.once('close', () => clearInterval(timer));
        return;
      }
      case '/cut-fin':
      case '/cut-rst':
        res.writeHead(200, { 'content-type': 'application/javascript', 'content-length': '1000000' });
        // Cut mid-body, a moment after the first chunk left: the timing is the fault being simulated.
        res.write(CHUNK, () => setTimeout(() => (req.url === '/cut-rst' ? req.socket.resetAndDestroy() : req.socket.end()), 50));
        return;
      default:
        res.writeHead(404).end();
    }
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    remember(req.url ?? '', socket);
    socket.on('error', () => {});
    socket.on('end', () => socket.end());
    if (req.url === '/ws-silent') return; // never answers the upgrade
    if (req.url === '/ws-refuse-late') {
      // Answers the upgrade with an ordinary response, late: the proxy pipes it and ends the browser's socket.
      setTimeout(() => socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'), 300);
      return;
    }
    const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC11B65`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\n\r\n`);
    const frame = Buffer.from([0x81, 0x04, ...Buffer.from('tick')]);
    const timer = setInterval(() => socket.write(frame), 20);
    socket.once('close', () => clearInterval(timer));
    if (req.url === '/ws-cut') setTimeout(() => socket.resetAndDestroy(), 100); // reset mid-stream, after a few frames
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    for (const s of sockets) s.socket.destroy();
    server.close(() => r());
  }));
  return { port: (server.address() as { port: number }).port, sockets };
}

/** The first flight of a real TLS client (its ClientHello), captured from a local listener. */
async function clientHello(): Promise<Buffer> {
  const server = createNetServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (s) => s.once('data', (b: Buffer) => { resolve(b); s.destroy(); })));
  const c = tlsConnect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername: 'localhost' });
  c.on('error', () => {});
  const b = await hello;
  server.close();
  return b;
}

async function disconnects(d: TestDashboard, peer: string, stage: string): Promise<number> {
  const m = await d.metrics.dashboardDisconnectsTotal.get();
  return m.values.filter((v) => v.labels.peer === peer && v.labels.stage === stage).reduce((a, v) => a + v.value, 0);
}

async function setup(t: Test) {
  const up = await startMisbehaving(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t, limits: { responseTimeoutMs: 1500 } });
  const { token } = d.token('vanishing');
  const auth = { authorization: `Bearer ${token}` };
  const client = () => rawClient(d.port, d.cluster.caPem);
  const upstreamClosed = (path: string) => waitFor(() => up.sockets.some((s) => s.path === path) && up.sockets.filter((s) => s.path === path).every((s) => s.closed), { timeoutMs: 8000, what: `upstream ${path} closed` });
  return { up, d, auth, client, upstreamClosed };
}

function noisyLines(d: TestDashboard) {
  return d.lines.filter((l) => l.level === 'error' || l.level === 'warn' || (l.level === 'audit' && l.event === 'dashboard_refused'));
}

t.test('a browser that resets a live WebSocket: one debug line, one count, the upstream leg closed', async (t) => {
  const { d, auth, client, upstreamClosed } = await setup(t);
  const c = await client();
  c.tls.write(upgradeRequest('/ws', d.port, auth));
  await c.waitFor('tick');
  c.reset();
  await upstreamClosed('/ws');
  await waitFor(async () => (await disconnects(d, 'browser', 'websocket')) === 1, { what: 'browser/websocket counted' });
  const line = await waitFor(() => d.lines.find((l) => l.event === 'dashboard_disconnect'), { what: 'a dashboard_disconnect line' });
  t.match(line, { level: 'debug', peer: 'browser', stage: 'websocket', code: 'ECONNRESET', path: '/ws' });
  t.same(noisyLines(d), [], 'no error, warning or refusal for a closed tab');
  await waitFor(async () => (await d.metrics.websocketsOpen.get()).values[0]?.value === 0, { what: 'websockets_open back to 0' });
});

t.test('a browser that resets while upstream has not answered the upgrade: the upstream request is torn down', async (t) => {
  const { d, up, auth, client, upstreamClosed } = await setup(t);
  const before = numOpenSockets();
  const c = await client();
  c.tls.write(upgradeRequest('/ws-silent', d.port, auth));
  await waitFor(() => up.sockets.some((s) => s.path === '/ws-silent'), { what: 'the upgrade waiting at upstream' });
  c.reset();
  await upstreamClosed('/ws-silent');
  await waitFor(async () => (await disconnects(d, 'browser', 'upgrade')) === 1, { what: 'browser/upgrade counted' });
  await waitFor(() => numOpenSockets() <= before, { what: 'no proxy socket left open' });
  t.pass('upstream saw its upgrade request closed');
});

t.test('a browser that half-closes before the upstream answers its upgrade: closed whatever the answer', async (t) => {
  const { d, auth, client } = await setup(t);
  for (const path of ['/ws', '/ws-refuse-late', '/ws-silent']) {
    const c = await client();
    c.tls.write(upgradeRequest(path, d.port, auth));
    c.tls.end(); // FIN right behind the request: the answer comes to a browser that will send nothing more
    const started = Date.now();
    await t.resolves(c.closed(), `${path}: the gateway closes the connection`);
    t.ok(Date.now() - started < 9000, `${path}: within the linger time after the answer (${Date.now() - started} ms)`);
  }
  await waitFor(async () => (await d.metrics.websocketsOpen.get()).values[0]?.value === 0, { timeoutMs: 10_000, what: 'websockets_open back to 0' });
});

t.test('an upgrade pipelined behind an unanswered request is refused, not mixed into its response', async (t) => {
  const { d, auth, client } = await setup(t);
  const c = await client();
  // /big streams for ever: the upgrade arrives while its response is still being written on the same socket.
  c.tls.write(getRequest('/big', d.port, auth) + upgradeRequest('/ws', d.port, auth));
  await c.closed();
  t.notMatch(c.received().toString('latin1'), 'HTTP/1.1 101', 'no WebSocket answer in the middle of a download');
  t.equal(await d.refusals('ws_pipelined'), 1, 'refused and counted as ws_pipelined');
  await waitFor(async () => (await d.metrics.websocketsOpen.get()).values[0]?.value === 0, { what: 'no WebSocket open' });
});

t.test('an upgrade upstream never answers fails with a status after the response timeout', async (t) => {
  const { d, auth, client, upstreamClosed } = await setup(t);
  const c = await client();
  const started = Date.now();
  c.tls.write(upgradeRequest('/ws-silent', d.port, auth));
  await c.waitFor('HTTP/1.1 502', 5000);
  t.ok(Date.now() - started >= 1400, 'after the 1.5 s response timeout');
  await upstreamClosed('/ws-silent');
  await c.closed();
});

t.test('a browser that resets in the middle of a download: the upstream response is aborted', async (t) => {
  const { d, auth, client, upstreamClosed } = await setup(t);
  const c = await client();
  c.tls.write(getRequest('/big', d.port, auth));
  await waitFor(() => c.received().length > 1_000_000, { what: 'a megabyte downloaded' });
  c.reset();
  await upstreamClosed('/big');
  await waitFor(async () => (await disconnects(d, 'browser', 'response')) === 1, { what: 'browser/response counted' });
  t.same(noisyLines(d), []);
});

for (const how of ['fin', 'rst'] as const) {
  t.test(`an upstream that ends a body short (${how}): the browser's response is cut, not left hanging`, async (t) => {
    const { d, auth, client } = await setup(t);
    const c = await client();
    c.tls.write(getRequest(`/cut-${how}`, d.port, auth));
    await c.waitFor('content-length: 1000000');
    await c.closed(); // resolves only if the gateway closes the connection
    t.ok(c.received().length < 1_000_000, 'the body ended short, as upstream did');
    await waitFor(async () => (await disconnects(d, 'upstream', 'response')) === 1, { what: 'upstream/response counted' });
    t.match(d.lines.find((l) => l.event === 'dashboard_disconnect'), { level: 'info', peer: 'upstream', stage: 'response' });
  });
}

t.test('an upstream that resets a live WebSocket: the browser socket closes with nothing but frames after the 101', async (t) => {
  const { d, auth, client } = await setup(t);
  const c = await client();
  c.tls.write(upgradeRequest('/ws-cut', d.port, auth));
  await c.closed();
  const text = c.received().toString('latin1');
  t.match(text, /^HTTP\/1\.1 101 /);
  t.equal(text.indexOf('HTTP/1.1', 1), -1, 'no HTTP status written into the WebSocket stream');
  await waitFor(async () => (await disconnects(d, 'upstream', 'websocket')) === 1, { what: 'upstream/websocket counted' });
});

t.test('a keep-alive connection reset between requests is a debug line, not a refusal', async (t) => {
  const { d, auth, client } = await setup(t);
  const c = await client();
  c.tls.write(getRequest('/missing', d.port, auth));
  await c.waitFor('HTTP/1.1 404');
  t.notMatch(c.received().toString(), /connection: close/i, 'upstream\'s hop-by-hop Connection: close does not close the browser\'s connection');
  c.reset();
  await waitFor(async () => (await disconnects(d, 'browser', 'connection')) === 1, { what: 'browser/connection counted' });
  t.same(noisyLines(d), []);
});

t.test('a browser that resets during the TLS handshake is a disconnect, not a refused handshake', async (t) => {
  const { d } = await setup(t);
  const tcp = connect({ host: '127.0.0.1', port: d.port });
  tcp.on('error', () => {});
  await new Promise((r) => tcp.once('connect', r));
  tcp.write(await clientHello());
  // The server's first flight: it now waits for our Finished, which never comes.
  await new Promise((r) => tcp.once('data', r));
  tcp.resetAndDestroy();
  await waitFor(async () => (await disconnects(d, 'browser', 'handshake')) === 1, { what: 'browser/handshake counted' });
  t.same(noisyLines(d), []);
  t.equal(await d.refusals('tls_handshake'), 0);
});

t.test('200 browsers resetting live WebSockets: 200 counts, no error storm, nothing left open', async (t) => {
  const { d, auth, client, up } = await setup(t);
  const before = numOpenSockets();
  const deadline = Date.now() + 60_000;
  let n = 0;
  for (; n < 200 && Date.now() < deadline; n += 10) {
    const batch = await Promise.all(Array.from({ length: 10 }, () => client()));
    for (const c of batch) c.tls.write(upgradeRequest('/ws', d.port, auth));
    await Promise.all(batch.map((c) => c.waitFor('tick')));
    for (const c of batch) c.reset();
  }
  t.equal(n, 200, 'all rounds ran within the time bound');
  await waitFor(async () => (await disconnects(d, 'browser', 'websocket')) === 200, { timeoutMs: 15_000, what: '200 counted' });
  await waitFor(() => up.sockets.every((s) => s.closed), { timeoutMs: 15_000, what: 'every upstream leg closed' });
  await waitFor(() => numOpenSockets() <= before, { what: 'no proxy socket left open' });
  t.same(noisyLines(d), []);
  t.equal(d.lines.filter((l) => l.event === 'dashboard_disconnect').length, 200, 'one line per WebSocket, not one per error');
});
