/**
 * No TLS session resumption (SSL_OP_NO_TICKET): Dask never resumes, and a
 * full handshake on every connection means every certificate is checked
 * afresh. A client offering an old session gets a full handshake, and a
 * certificate revoked since its first connection is refused.
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
      // End once a TLS 1.3 ticket has arrived; the gateway may send none, so that wait is bounded (50 ms).
      if (ticket) return void s.end();
      const timer = setTimeout(() => s.end(), 50);
      s.once('session', () => { clearTimeout(timer); s.end(); });
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ reused, ...(ticket ? { ticket } : {}), got, localPort }));
  });
}

t.test('a reconnect offering an old session gets a full handshake, and a revoked certificate is refused', async (t) => {
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
  const second = await session(gw.port, { ...creds, ...(first.ticket ? { session: first.ticket } : {}) });
  t.equal(second.reused, false, 'no session is resumed: a full handshake');
  t.equal(second.got, 'hello', 'and was forwarded');
  const accepted = await gw.waitForLog((l) => l.event === 'connection_accepted' && l.peer === `127.0.0.1:${second.localPort}`);
  t.equal(accepted.uri, `spiffe://${cluster.clusterId}/client/alice`, 'the reconnect is audited with its identity');

  await cluster.revoke(alice.serial);
  await gw.waitForLog((l) => l.event === 'trust_reloaded', 10_000);
  const third = await session(gw.port, { ...creds, ...(first.ticket ? { session: first.ticket } : {}) });
  t.equal(third.got, '', 'nothing forwarded after revocation');
  const refused = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${third.localPort}`);
  t.equal(refused.reason, 'revoked', 'refused as revoked even when offering the old session');
});
