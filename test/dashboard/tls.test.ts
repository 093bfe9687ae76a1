/** TLS of 8787: protocol and cipher floor, a separately configured certificate, reload, config refusals. */
import t from 'tap';
import { connect } from 'node:tls';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { forgeCertificate, EKU } from '../helpers/pki.js';
import { startFakeUpstream, startTestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import { startDashboard, type DashboardOptions } from '../../src/dashboard/index.js';

function handshake(port: number, opts: Record<string, unknown>): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    s.once('secureConnect', () => { const v = `${s.getProtocol()} ${s.getCipher().name}`; s.destroy(); resolve(v); });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
  });
}

t.test('only TLS 1.2+ with AEAD suites is spoken', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const ca = d.cluster.caPem;
  t.match(await handshake(d.port, { ca }), /^TLSv1\.3 TLS_/);
  t.match(await handshake(d.port, { ca, maxVersion: 'TLSv1.2' }), /^TLSv1\.2 ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20-POLY1305)/);
  t.match(await handshake(d.port, { ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT:@SECLEVEL=0' }), /^refused/, 'TLS 1.1 refused');
  t.match(await handshake(d.port, { ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:AES128-SHA' }), /^refused/, 'CBC suites refused');
  t.ok((await d.refusals('tls_handshake')) >= 2, 'failed handshakes are counted');
});

t.test('a separately configured certificate (e.g. publicly trusted) is served instead of the cluster one', async (t) => {
  const up = await startFakeUpstream(t);
  const publicCa = await forgeCertificate({ isCA: true, eku: null, commonName: 'Public Test CA' });
  const dir = t.testdir({});
  await forgeCertificate({ issuer: publicCa, dns: ['localhost'], ips: ['127.0.0.1'], eku: [EKU.serverAuth], writeTo: { dir, name: 'public' } });
  const d = await startTestDashboard({ upstreamPort: up.port, t, flags: { 'dashboard-tls-cert': join(dir, 'public.pem'), 'dashboard-tls-key': join(dir, 'public-key.pem') } });
  t.match(await handshake(d.port, { ca: publicCa.certPem }), /^TLSv1\.3/, 'verifies against the public CA');
  t.match(await handshake(d.port, { ca: d.cluster.caPem }), /^refused/, 'no longer the cluster certificate');
});

t.test('the certificate is swapped in place when the cluster material reloads', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const someone = await d.cluster.issue('client', 'someone');
  await d.cluster.revoke(someone.serial);
  await d.ctx.trust.reload('test');
  await waitFor(() => d.lines.find((l) => l.event === 'dashboard_tls_reloaded'), { what: 'reload logged' });
  t.match(await handshake(d.port, { ca: d.cluster.caPem }), /^TLSv1\.3/, 'still serving after the swap');
});

t.test('bad dashboard configuration is refused at start with an error naming it', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const base: DashboardOptions = { ...d.options, listen: { host: '127.0.0.1', port: 0 } };
  await t.rejects(startDashboard(d.ctx, { ...base, upstream: { host: '10.0.0.1', port: 8788 } }), { code: 'GW_DASHBOARD_UPSTREAM_NOT_LOOPBACK' });
  await t.rejects(startDashboard(d.ctx, { ...base, tlsCert: '/x.pem' }), { code: 'GW_DASHBOARD_TLS_PAIR' });
  const dir = t.testdir({});
  await forgeCertificate({ dns: ['localhost'], writeTo: { dir, name: 'loose' } });
  chmodSync(join(dir, 'loose-key.pem'), 0o644);
  await t.rejects(startDashboard(d.ctx, { ...base, tlsCert: join(dir, 'loose.pem'), tlsKey: join(dir, 'loose-key.pem') }), { code: 'GW_DASHBOARD_TLS_FILE', message: /chmod 600/ });
  await t.rejects(startDashboard(d.ctx, { ...base, listen: { host: '127.0.0.1', port: d.port } }), { code: 'GW_DASHBOARD_LISTEN', message: /EADDRINUSE/ });
  await t.rejects(startDashboard({ ...d.ctx, stateDir: undefined }, base), { code: 'GW_DASHBOARD_NO_LOGIN' });
  const off = await startDashboard(d.ctx, { ...base, enabled: false });
  t.equal(off.address, undefined, '--dashboard=false starts nothing');
});

t.test('requests are counted by status', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('counted');
  await d.request('/echo', { headers: { authorization: `Bearer ${token}` } });
  await d.request('/echo');
  const m = await d.metrics.dashboardRequestsTotal.get();
  const by = Object.fromEntries(m.values.map((v) => [v.labels.status, v.value]));
  t.equal(by['200'], 1);
  t.equal(by['401'], 1);
});
