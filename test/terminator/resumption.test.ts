/**
 * TLS session resumption (tickets) is allowed for reconnects, but it never
 * skips authorization: a resumed session carries the peer certificate, and
 * a certificate revoked since the first handshake is refused on resumption.
 */
import t from 'tap';
import { createServer } from 'node:net';
import { connect, type ConnectionOptions } from 'node:tls';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

function session(port: number, opts: ConnectionOptions): Promise<{ reused: boolean; ticket?: Buffer; got: string; localPort: number }> {
  return new Promise((resolve) => {
    let ticket: Buffer | undefined;
    let got = '';
    let localPort = 0;
    let reused = false;
    const s = connect({ host: '127.0.0.1', port, checkServerIdentity: () => undefined, ...opts });
    s.on('session', (b: Buffer) => { ticket = b; });
    s.on('connect', () => { localPort = s.localPort ?? 0; });
    s.on('secureConnect', () => { reused = s.isSessionReused(); });
    s.on('data', (d) => {
      got += d;
      // Give the TLS 1.3 ticket a moment to arrive after the first bytes.
      setTimeout(() => s.end(), 50);
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ reused, ...(ticket ? { ticket } : {}), got, localPort }));
  });
}

t.test('a reconnect may resume its TLS session, and a revoked certificate cannot resume', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = createServer((s) => { s.on('error', () => {}); s.write('hello'); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${(echo.address() as { port: number }).port}`, t, flags: { inspect: 'false' } });
  const alice = await cluster.issue('client', 'alice');
  const creds = { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem };

  const first = await session(gw.port, creds);
  t.equal(first.got, 'hello', 'first connection forwarded');
  t.ok(first.ticket, 'the gateway issued a session ticket');
  const second = await session(gw.port, { ...creds, session: first.ticket! });
  t.equal(second.reused, true, 'the second connection resumed the session');
  t.equal(second.got, 'hello', 'and was forwarded');
  const accepted = await gw.waitForLog((l) => l.event === 'connection_accepted' && l.peer === `127.0.0.1:${second.localPort}`);
  t.equal(accepted.uri, `spiffe://${cluster.clusterId}/client/alice`, 'the resumed connection is audited with the identity from the session');

  await cluster.revoke(alice.serial);
  await gw.waitForLog((l) => l.event === 'trust_reloaded', 10_000);
  const third = await session(gw.port, { ...creds, session: first.ticket! });
  t.equal(third.got, '', 'nothing forwarded after revocation');
  const refused = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${third.localPort}`);
  t.equal(refused.reason, 'revoked', 'refused as revoked even when resuming');
});
