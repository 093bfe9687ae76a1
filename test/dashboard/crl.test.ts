/**
 * GET /gateway/crl.pem on 8787: the CRL Distribution Point named in the
 * gateway's certificate, served without login, verifiable with openssl
 * against the cluster CA, and current after `certs revoke`.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeUpstream, startTestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import { CrlFile } from '../../src/dashboard/crl.js';
import { crlPathFor } from '../../src/dashboard/index.js';
import { routeFor } from '../../src/dashboard/routes.js';
import { statePath } from '../../src/pki/state-dir.js';

const work = mkdtempSync(join(tmpdir(), 'sgw-crl-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function openssl(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Serials in a CRL as openssl prints them, upper-case hex without separators. */
function revokedSerials(crlFile: string): string[] {
  const r = openssl(['crl', '-noout', '-text', '-in', crlFile]);
  return [...r.out.matchAll(/Serial Number: *([0-9A-Fa-f]+)/g)].map((m) => m[1]!.toUpperCase());
}

t.test('routes: the CRL path is public, its neighbours are not', async (t) => {
  t.match(routeFor('GET', '/gateway/crl.pem', false), { kind: 'crl', auth: false });
  t.match(routeFor('GET', '/gateway/crl.pem.bak', false), { kind: 'proxy', auth: true });
  t.match(routeFor('GET', '/gateway/crl', false), { kind: 'proxy', auth: true });
});

t.test('the CRL is served without a token, verifies against the cluster CA, and shows a revocation', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ t, upstreamPort: up.port });

  const cdp = openssl(['x509', '-noout', '-text', '-in', d.cluster.gatewayCertPath]).out;
  t.match(cdp, 'URI:https://localhost:8787/gateway/crl.pem', "the gateway certificate's CRL Distribution Point is this route");

  const first = await d.request('/gateway/crl.pem');
  t.equal(first.status, 200, 'no token needed');
  t.equal(first.headers['content-type'], 'application/pkix-crl');
  t.match(first.headers['cache-control'] ?? '', /max-age=60/, 'short caching so a revocation reaches relying parties soon');
  t.match(first.body, /^-----BEGIN X509 CRL-----\n/);
  const file = join(work, 'first.pem');
  writeFileSync(file, first.body);
  const verified = openssl(['crl', '-noout', '-in', file, '-CAfile', d.cluster.caPath]);
  t.equal(verified.status, 0, verified.out);
  t.match(verified.out, /verify OK/, 'openssl crl -CAfile verifies the signature');
  t.same(revokedSerials(file), [], 'nothing revoked yet');
  t.equal(d.audits('dashboard_refused').length, 0, 'not a refusal');

  const victim = await d.cluster.issue('client', 'crl-victim');
  await d.cluster.revoke(victim.serial, 'keyCompromise');
  const want = victim.serial.replace(/:/g, '').toUpperCase();
  const after = join(work, 'after.pem');
  await waitFor(async () => {
    const r = await d.request('/gateway/crl.pem');
    writeFileSync(after, r.body);
    return r.status === 200 && revokedSerials(after).includes(want);
  }, { timeoutMs: 20_000, what: 'the revoked serial in the served CRL' });
  t.same(revokedSerials(after), [want], 'exactly the revoked serial');
  t.match(openssl(['crl', '-noout', '-in', after, '-CAfile', d.cluster.caPath]).out, /verify OK/, 'the re-signed CRL verifies too');

  const head = await d.request('/gateway/crl.pem', { method: 'HEAD' });
  t.equal(head.status, 200);
  t.equal(head.body, '', 'HEAD has no body');
  const post = await d.request('/gateway/crl.pem', { method: 'POST', body: 'x' });
  t.equal(post.status, 405, 'read only');
  t.equal((await d.request('/status')).status, 401, 'the dashboard itself still needs a token');

  unlinkSync(statePath(d.cluster.dir, 'crl'));
  const gone = await d.request('/gateway/crl.pem');
  t.equal(gone.status, 404, 'no CRL on disk: 404, not a stale copy');
});

t.test('CrlFile refuses what is not a bounded PEM CRL and re-reads only on change', async (t) => {
  t.same(new CrlFile(undefined).read(), { ok: false, reason: 'not_configured' });
  t.same(new CrlFile(join(work, 'absent.pem')).read(), { ok: false, reason: 'missing' });
  t.same(new CrlFile(work).read(), { ok: false, reason: 'missing' }, 'a directory is not a CRL');

  const big = join(work, 'big.pem');
  writeFileSync(big, `-----BEGIN X509 CRL-----\n${'A'.repeat(2000)}\n-----END X509 CRL-----\n`);
  t.same(new CrlFile(big, 1024).read(), { ok: false, reason: 'too_large' });

  const notPem = join(work, 'not.pem');
  writeFileSync(notPem, 'root:x:0:0:root:/root:/bin/bash\n');
  t.same(new CrlFile(notPem).read(), { ok: false, reason: 'not_pem' }, 'never serves a file that is not a CRL');

  const ok = join(work, 'ok.pem');
  writeFileSync(ok, '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
  const f = new CrlFile(ok);
  const a = f.read();
  t.ok(a.ok && a.pem.toString().includes('AAAA'));
  writeFileSync(ok, '-----BEGIN X509 CRL-----\nBBBBBBBB\n-----END X509 CRL-----\n');
  const b = f.read();
  t.ok(b.ok && b.pem.toString().includes('BBBBBBBB'), 'a rewritten file is read again');
});

t.test('which file is served: the state directory CRL, or --tls-crl in bring-your-own PEM mode', async (t) => {
  const pem = { mode: 'pem', caPath: '/etc/gw/ca.pem', certPath: '/etc/gw/cert.pem', keyPath: '/etc/gw/key.pem', clusterId: 'c' } as const;
  t.equal(crlPathFor({ mode: 'dir', dir: '/var/lib/gw' }), '/var/lib/gw/crl.pem');
  t.equal(crlPathFor({ ...pem, crlPath: '/etc/gw/crl.pem' }), '/etc/gw/crl.pem');
  t.equal(crlPathFor(pem), undefined,
    'PEM mode without --tls-crl serves nothing (a --state-dir holds no CRL)');
});
