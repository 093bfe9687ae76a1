/**
 * The forwarding pipe through a real gateway: half-close both ways, errors
 * on one side closing the other, byte-exact bulk transfer with and without
 * an inspector, and an inspector's denial cutting the connection.
 */
import t from 'tap';
import { createServer, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { createHash, randomBytes } from 'node:crypto';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import type { InspectorFactory } from '../../src/terminator/inspector.js';

/** These streams are not Dask: the built-in policy inspector is off unless a test injects its own. */
const RAW = { inspect: 'false' };

let cluster: TestCluster;
let alice: { certPem: string; keyPem: string };
t.before(async () => {
  cluster = await makeTestCluster();
  alice = await cluster.issue('client', 'alice');
});
t.teardown(() => cluster?.cleanup());

/** An upstream whose behaviour each test decides; resolves its sockets as they arrive. */
async function upstream(t: { teardown(fn: () => unknown): void }, onConn: (s: Socket) => void): Promise<number> {
  const srv = createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => {}); onConn(s); });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  return (srv.address() as { port: number }).port;
}

function dial(gw: TestGateway): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, checkServerIdentity: () => undefined, ...({ allowHalfOpen: true } as object) }, () => resolve(s));
    s.on('error', reject);
  });
}

function readAll(s: Socket): Promise<Buffer> {
  const parts: Buffer[] = [];
  s.on('data', (d: Buffer) => parts.push(d));
  return new Promise((r) => s.once('end', () => r(Buffer.concat(parts))));
}

t.test('a half-close from the peer reaches the scheduler, which can still answer, then closes its side', async (t) => {
  const port = await upstream(t, (s) => {
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => s.end(`got ${Buffer.concat(got).length} bytes after your FIN`));
  });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, flags: RAW });
  const s = await dial(gw);
  const answer = readAll(s);
  s.end(Buffer.alloc(1000, 1));
  t.equal((await answer).toString(), 'got 1000 bytes after your FIN', 'the scheduler answered after the FIN and the peer read it');
  const line = await gw.waitForLog((l) => l.event === 'connection_closed');
  t.equal(line.bytes_in, 1000, 'bytes to the scheduler counted');
  t.equal(line.reason, 'peer_closed', 'the peer ended first');
});

t.test('a half-close from the scheduler reaches the peer, which can still send', async (t) => {
  let up: Socket | undefined;
  const upGot: Buffer[] = [];
  const port = await upstream(t, (s) => { up = s; s.on('data', (d) => upGot.push(d)); s.end('bye'); });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, flags: RAW });
  const s = await dial(gw);
  t.equal((await readAll(s)).toString(), 'bye', 'the scheduler FIN arrives after its data');
  s.end('still talking');
  await waitFor(() => Buffer.concat(upGot).toString() === 'still talking', { what: 'late bytes upstream' });
  t.ok(up, 'upstream saw the connection');
});

t.test('a scheduler crash ends the peer; a peer that goes away ends the scheduler side', async (t) => {
  const ups: Socket[] = [];
  const port = await upstream(t, (s) => ups.push(s));
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, flags: RAW });
  const a = await dial(gw);
  a.on('error', () => {});
  await waitFor(() => ups.length === 1, { what: 'the scheduler side of the first connection' });
  const aEnded = new Promise((r) => a.once('end', r));
  const aClosed = new Promise((r) => a.once('close', r));
  ups[0]!.resetAndDestroy();
  await aEnded;
  t.pass('the peer is told at once that the scheduler side is gone');
  a.end();
  await aClosed;
  const line = await gw.waitForLog((l) => l.event === 'connection_closed');
  t.match(line.reason, /^scheduler_(closed|error)$/, 'logged as ended by the scheduler side');

  const b = await dial(gw);
  await waitFor(() => ups.length === 2, { what: 'the scheduler side of the second connection' });
  const upEnded = new Promise((r) => ups[1]!.once('end', r));
  b.destroy();
  await upEnded;
  t.pass('the scheduler side saw the end of the stream');
  ups[1]!.end();
  await waitFor(() => gw.gw.context.sessions.size === 0, { what: 'sessions released' });
  t.pass('no live session left');
});

for (const withInspector of [false, true]) {
  t.test(`16 MiB each way arrive byte-exact ${withInspector ? 'through an inspector' : 'with no inspector'}`, async (t) => {
    const port = await upstream(t, (s) => s.pipe(s));
    let seenIn = 0;
    const inspector: InspectorFactory = () => ({
      fromPeer: (c, up) => { seenIn += c.length; up.push(c); return null; },
      fromScheduler: (c, down) => { down.push(c); return null; },
      bufferedBytes: 0,
    });
    const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, flags: RAW, ...(withInspector ? { inspector } : {}) });
    const s = await dial(gw);
    const payload = randomBytes(16 * 1024 * 1024);
    const back = readAll(s);
    s.end(payload);
    const got = await back;
    t.equal(createHash('sha256').update(got).digest('hex'), createHash('sha256').update(payload).digest('hex'), 'sha256 matches');
    if (withInspector) t.equal(seenIn, payload.length, 'the inspector saw every byte from the peer');
  });
}

t.test("an inspector's denial closes both sides and is audited with its code", async (t) => {
  const upGot: Buffer[] = [];
  const port = await upstream(t, (s) => s.on('data', (d) => upGot.push(d)));
  const inspector: InspectorFactory = () => ({
    fromPeer: (c, up) => (c.includes('terminate') ? { code: 'GW_POLICY_DENIED', reason: 'op_not_allowed', op: 'terminate', rule: 'client' } : (up.push(c), null)),
    fromScheduler: (c, down) => (down.push(c), null),
    bufferedBytes: 0,
  });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, inspector });
  const s = await dial(gw);
  s.on('error', () => {});
  s.write('harmless;');
  await waitFor(() => upGot.length > 0, { what: 'the harmless bytes upstream' });
  const ended = new Promise((r) => s.once('end', r));
  s.write('terminate');
  await ended;
  t.equal(Buffer.concat(upGot).toString(), 'harmless;', 'the denied chunk never reached the scheduler');
  const line = await gw.waitForLog((l) => l.event === 'connection_closed' && l.reason === 'policy_denied');
  t.equal(line.code, 'GW_POLICY_DENIED', 'the denial code is in the audit line');
  t.equal(line.op, 'terminate', 'so is the operation');
  t.equal(line.level, 'audit', 'written at audit level');
});

t.test('the scheduler may be a Unix socket path', async (t) => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(`${tmpdir()}/sgw-sock-`);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = `${dir}/scheduler.sock`;
  const srv = createServer((s) => { s.on('error', () => {}); s.end('over a unix socket'); });
  await new Promise<void>((r) => srv.listen(path, r));
  t.teardown(() => srv.close());
  const gw = await startTestGateway({ cluster, scheduler: path, t, flags: RAW });
  const s = await dial(gw);
  t.equal((await readAll(s)).toString(), 'over a unix socket');
});

t.test('with --idle-timeout a silent connection is cut and audited as idle_timeout', async (t) => {
  const port = await upstream(t, () => {});
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${port}`, t, flags: { ...RAW, 'idle-timeout': '300' } });
  const s = await dial(gw);
  s.on('error', () => {});
  const line = await gw.waitForLog((l) => l.event === 'connection_closed', 10_000);
  t.equal(line.reason, 'idle_timeout');
  t.equal(line.level, 'audit');
});
