/**
 * Graceful drain: stop accepting, let open connections continue up to the
 * deadline, then close the rest with an audited reason; close() is
 * idempotent and safe to race with drain().
 */
import t from 'tap';
import { createServer } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

t.test('drain stops accepting, keeps open connections until the deadline, then cuts them with reason drain', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const alice = await cluster.issue('client', 'alice');
  const echo = createServer((s) => { s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${(echo.address() as { port: number }).port}`, t, flags: { inspect: 'false' } });
  const s: TLSSocket = await new Promise((resolve, reject) => {
    const c = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, checkServerIdentity: () => undefined }, () => resolve(c));
    c.on('error', reject);
  });
  s.on('error', () => {});
  const closedAt = new Promise<number>((r) => s.once('close', () => r(Date.now())));
  await gw.waitForLog((l) => l.event === 'connection_accepted');

  const started = Date.now();
  const drained = gw.gw.drain(1_500); // the listener is closed before drain() returns: nothing to wait for
  const echoed = await new Promise<string>((r) => { s.once('data', (d) => r(d.toString())); s.write('still here'); });
  t.equal(echoed, 'still here', 'an open connection keeps working during the drain');
  const refused = await new Promise<string>((r) => {
    const c = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, checkServerIdentity: () => undefined });
    c.on('secureConnect', () => r('accepted'));
    c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
  });
  t.not(refused, 'accepted', `a new connection is not accepted (${refused})`);
  const at = await closedAt;
  t.ok(at - started >= 1_400, `the open connection was cut at the deadline (${at - started} ms)`);
  await drained;
  const line = gw.lines.find((l) => l.event === 'connection_closed');
  t.equal(line?.reason, 'drain', 'audited with reason drain');
  t.equal(line?.level, 'audit', 'at audit level');
  await Promise.all([gw.gw.close(), gw.gw.close(), gw.gw.drain(0)]);
  t.equal(gw.lines.filter((l) => l.event === 'gateway_stopped').length, 1, 'the shutdown sequence ran once');
});
