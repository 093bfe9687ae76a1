/**
 * Client certificates must carry the clientAuth EKU on every inbound
 * listener; --allow-missing-eku relaxes only the case of no EKU extension at
 * all (a bring-your-own PKI that omits EKUs), never a list without clientAuth.
 */
import t from 'tap';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { checkPeerCertificate } from '../../src/pki/peer-certificate.js';
import { makeTestCluster, EKU, type TestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

let cluster: TestCluster;
t.before(async () => { cluster = await makeTestCluster(); });
t.teardown(() => cluster?.cleanup());

const opts = (allowMissingEku?: boolean) => ({ clusterId: cluster.clusterId, allowedRoles: ['client'] as const, isRevoked: () => false, now: new Date(), ...(allowMissingEku === undefined ? {} : { allowMissingEku }) });

t.test('checkPeerCertificate: no EKU is refused unless allowed; an EKU list without clientAuth is refused either way', async (t) => {
  const uri = `spiffe://${cluster.clusterId}/client/x`;
  const none = new X509Certificate((await cluster.forge({ uris: [uri], eku: null })).certPem);
  const server = new X509Certificate((await cluster.forge({ uris: [uri], eku: [EKU.serverAuth] })).certPem);
  const client = new X509Certificate((await cluster.forge({ uris: [uri], eku: [EKU.serverAuth, EKU.clientAuth] })).certPem);
  t.match(checkPeerCertificate(none, opts()), { ok: false, reason: 'wrong_eku', detail: /no extended key usage/ });
  t.match(checkPeerCertificate(none, opts(true)), { ok: true });
  t.match(checkPeerCertificate(server, opts()), { ok: false, reason: 'wrong_eku' });
  t.match(checkPeerCertificate(server, opts(true)), { ok: false, reason: 'wrong_eku' }, 'the setting never admits a list without clientAuth');
  t.match(checkPeerCertificate(client, opts()), { ok: true });
});

t.test('every certificate `certs issue` makes for a peer role carries clientAuth', async (t) => {
  for (const role of ['worker', 'client', 'admin'] as const) {
    const c = await cluster.issue(role, `eku-${role}`);
    t.ok(new X509Certificate(c.certPem).keyUsage?.includes(EKU.clientAuth), role);
  }
});

t.test('on 8786: a no-EKU leaf is refused by default and accepted with --allow-missing-eku', async (t) => {
  const leaf = await cluster.forge({ uris: [`spiffe://${cluster.clusterId}/client/byo`], eku: null });
  const upstream = await import('node:net').then((net) => new Promise<{ port: number; close(): void }>((resolve) => {
    const s = net.createServer((c) => { c.on('error', () => {}); c.end('hello'); });
    s.listen(0, '127.0.0.1', () => resolve({ port: (s.address() as { port: number }).port, close: () => s.close() }));
  }));
  t.teardown(() => upstream.close());
  for (const allow of [false, true]) {
    const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${upstream.port}`, t, flags: { inspect: 'false', ...(allow ? { 'allow-missing-eku': true } : {}) } });
    const got = await new Promise<string>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: leaf.certPem, key: leaf.keyPem, checkServerIdentity: () => undefined });
      let data = '';
      s.on('data', (d) => { data += d; });
      s.on('error', () => {});
      s.on('close', () => resolve(data));
    });
    if (allow) {
      t.equal(got, 'hello', 'accepted and forwarded with --allow-missing-eku');
    } else {
      t.equal(got, '', 'refused by default');
      const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'wrong_eku');
      t.match(String(line.detail), /no extended key usage/, 'the audit line says why');
    }
    await gw.close();
  }
});
