/**
 * Bring-your-own PKI: plain PEM files and a CRL instead of a state
 * directory. A CRL update cuts the live session of a revoked certificate.
 */
import t from 'tap';
import { createServer } from 'node:net';
import { connect } from 'node:tls';
import { statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { loadEncryptedKey } from '../../src/pki/keystore.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import { main as tokensMain } from '../../src/cli/tokens.js';
import { runCli } from '../helpers/cli.js';

t.test('with --tls-ca/--tls-cert/--tls-key/--tls-crl, peers are authenticated and a CRL update cuts a revoked live session', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const keyPath = join(cluster.root, 'gateway-key-plain.pem');
  writeFileSync(keyPath, await loadEncryptedKey(cluster.gatewayKeyPath, cluster.passphrase), { mode: 0o600 });
  const echo = createServer((s) => { s.on('error', () => {}); s.pipe(s); });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  t.teardown(() => echo.close());
  const gw = await startTestGateway({
    cluster, scheduler: `127.0.0.1:${(echo.address() as { port: number }).port}`, t,
    flags: { dir: undefined as unknown as string, 'tls-ca': cluster.caPath, 'tls-cert': cluster.gatewayCertPath, 'tls-key': keyPath, 'tls-crl': join(cluster.dir, 'crl.pem'), cluster: cluster.clusterId, inspect: 'false', dashboard: 'false' },
  });
  t.equal(gw.gw.context.stateDir, undefined, 'no managed state directory in PEM mode');
  const carol = await cluster.issue('client', 'carol');
  const s = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: carol.certPem, key: carol.keyPem, checkServerIdentity: () => undefined });
  s.on('error', () => {});
  await new Promise((r) => s.once('secureConnect', r));
  s.write('ping');
  t.equal(await new Promise<string>((r) => s.once('data', (d) => r(d.toString()))), 'ping', 'forwarded');
  const closed = new Promise((r) => s.once('close', r));
  const at = Date.now();
  await cluster.revoke(carol.serial); // rewrites crl.pem, signed by the CA
  const line = await gw.waitForLog((l) => l.event === 'connection_closed' && l.reason === 'revoked', 10_000, 'CRL revocation');
  await closed;
  t.ok(Date.parse(String(line.time)) - at <= 2_000, 'closed within 2 s of the CRL update');
  t.equal(line.serial, normalizeSerial(carol.serial), 'the audit line names the revoked serial');
});

t.test('with --tls-* and --state-dir, the dashboard logs in with tokens kept in that directory, created 0700', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const keyPath = join(cluster.root, 'gateway-key-plain.pem');
  writeFileSync(keyPath, await loadEncryptedKey(cluster.gatewayKeyPath, cluster.passphrase), { mode: 0o600 });
  const upstream = createHttpServer((_req, res) => res.end('dashboard page'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  t.teardown(() => upstream.close());
  const stateDir = join(cluster.root, 'byo-state');
  const gw = await startTestGateway({
    cluster, scheduler: '127.0.0.1:9', t,
    flags: { dir: undefined as unknown as string, 'tls-ca': cluster.caPath, 'tls-cert': cluster.gatewayCertPath, 'tls-key': keyPath, cluster: cluster.clusterId,
      'state-dir': stateDir, 'dashboard-upstream': `127.0.0.1:${(upstream.address() as { port: number }).port}` },
  });
  t.equal(gw.gw.context.stateDir, stateDir);
  t.equal(statSync(stateDir).mode & 0o777, 0o700);
  const created = await runCli('tokens', tokensMain, ['create', '--name', 'dana', '--dir', stateDir], { cwd: cluster.root });
  t.equal(created.code, 0, created.stderr);
  const token = /dgw_[0-9A-Za-z]+/.exec(created.stdout)![0];
  const get = (auth?: string) => new Promise<number>((resolve, reject) => {
    const req = httpsGet({ host: '127.0.0.1', port: gw.gw.addresses.dashboard!.port, path: '/status', ca: cluster.caPem, checkServerIdentity: () => undefined,
      headers: auth ? { authorization: `Bearer ${auth}` } : {} }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('error', reject);
  });
  t.equal(await get(token), 200, 'a token from --state-dir logs in');
  t.equal(await get(), 401, 'no token, no page');
});

t.test('--state-dir without --tls-* is refused, naming the flag', async (t) => {
  const { checkCrossFlagRules } = await import('../../src/gateway/settings.js');
  t.throws(() => checkCrossFlagRules(new Set(['dir', 'state-dir'])), { code: 'GW_USAGE', message: /--state-dir/ });
});
