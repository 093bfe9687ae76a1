import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { makeTestCluster, forgeCertificate, asIssuer, EKU } from '../helpers/pki.js';
import { parseSubjectAltName } from '../../src/pki/peer-certificate.js';
import { ekuForRole, type Role } from '../../src/pki/identity.js';
import { issueCertificate } from '../../src/pki/issue.js';

function opensslVerify(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['verify', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

function text(certPath: string): string {
  return spawnSync('openssl', ['x509', '-in', certPath, '-noout', '-text'], { encoding: 'utf8' }).stdout;
}

t.test('each role verifies with openssl for exactly the purposes its EKU allows', async (t) => {
  const c = await makeTestCluster({ cluster: 'purposes' });
  t.teardown(() => c.cleanup());
  const expected: Record<Role, { sslclient: boolean; sslserver: boolean }> = {
    worker: { sslclient: true, sslserver: true },
    scheduler: { sslclient: true, sslserver: true },
    client: { sslclient: true, sslserver: false },
    admin: { sslclient: true, sslserver: false },
    gateway: { sslclient: false, sslserver: true },
  };
  const paths: Record<string, string> = { gateway: c.gatewayCertPath };
  for (const role of ['worker', 'scheduler', 'client', 'admin'] as const) paths[role] = (await c.issue(role, `${role}-1`)).certPath;
  for (const [role, want] of Object.entries(expected)) {
    for (const purpose of ['sslclient', 'sslserver'] as const) {
      const r = opensslVerify(['-CAfile', c.caPath, '-purpose', purpose, paths[role]!]);
      t.equal(r.ok, want[purpose], `${role} ${purpose}: ${r.out.trim()}`);
      if (!want[purpose]) t.match(r.out, /unsuitable certificate purpose/, `${role} fails ${purpose} for its purpose, not another reason`);
    }
  }
});

t.test('a leaf carries exactly one URI SAN and exactly its role EKUs, and is not a CA', async (t) => {
  const c = await makeTestCluster({ cluster: 'sans.example_1' });
  t.teardown(() => c.cleanup());
  const cases: Array<[Role, string, string]> = [
    ['worker', 'w-1', 'spiffe://sans.example_1/worker/w-1'],
    ['client', 'alice', 'spiffe://sans.example_1/client/alice'],
    ['admin', 'ops.team', 'spiffe://sans.example_1/admin/ops.team'],
    ['scheduler', 'sched', 'spiffe://sans.example_1/scheduler'],
  ];
  for (const [role, name, uri] of cases) {
    const issued = await c.issue(role, name);
    const x = new X509Certificate(issued.certPem);
    t.same(parseSubjectAltName(x.subjectAltName), [{ type: 'URI', value: uri }], `${role} SAN`);
    t.same([...(x.keyUsage ?? [])].sort(), [...ekuForRole(role)].sort(), `${role} EKU`);
    t.equal(x.ca, false, `${role} is not a CA`);
    t.ok(x.checkIssued(new X509Certificate(c.caPem)), `${role} issued by the cluster CA`);
    const txt = text(issued.certPath);
    t.match(txt, /Basic Constraints: critical\s+CA:FALSE/);
    t.equal(txt.match(/URI:/g)?.length, 1, 'openssl sees one URI');
    // The gateway checks these against revoked.json itself; only its own server certificate names a CRL URI.
    t.notMatch(txt, /CRL Distribution Points/, `${role} has no CRL Distribution Point`);
  }
});

t.test('the gateway certificate holds its hosts and the gateway URI with serverAuth only', async (t) => {
  const c = await makeTestCluster({ cluster: 'gw', hosts: ['gw.example.com', '10.1.2.3', '::1'] });
  t.teardown(() => c.cleanup());
  const txt = text(c.gatewayCertPath);
  t.match(txt, /DNS:gw\.example\.com/);
  t.match(txt, /IP Address:10\.1\.2\.3/);
  t.match(txt, /IP Address:0:0:0:0:0:0:0:1/);
  t.match(txt, /URI:spiffe:\/\/gw\/gateway/);
  const san = /Subject Alternative Name: *\n *(.*)\n/.exec(txt)?.[1] ?? '';
  t.equal(san.match(/URI:/g)?.length, 1, 'exactly one URI SAN');
  t.match(txt, /X509v3 CRL Distribution Points: *\n *Full Name: *\n *URI:https:\/\/gw\.example\.com:8787\/gateway\/crl\.pem\n/,
    'a non-critical CRL Distribution Point on the first --host, served by the dashboard port');
  t.match(txt, /Extended Key Usage:\s+TLS Web Server Authentication\n/);
  const r = opensslVerify(['-CAfile', c.caPath, '-purpose', 'sslserver', '-verify_hostname', 'gw.example.com', c.gatewayCertPath]);
  t.ok(r.ok, r.out);
  t.notOk(opensslVerify(['-CAfile', c.caPath, '-purpose', 'sslserver', '-verify_hostname', 'evil.example.com', c.gatewayCertPath]).ok);
});

t.test('the CA is path-length 0: an intermediate it signs does not validate', async (t) => {
  const c = await makeTestCluster({ cluster: 'pathlen' });
  t.teardown(() => c.cleanup());
  const caText = text(c.caPath);
  t.match(caText, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  t.match(caText, /Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);

  const dir = join(c.root, 'forged');
  const inter = await c.forge({ isCA: true, eku: null, commonName: 'rogue intermediate', writeTo: { dir, name: 'inter' } });
  const leaf = await forgeCertificate({ issuer: asIssuer(inter), uris: ['spiffe://pathlen/client/mallory'], eku: [EKU.clientAuth], writeTo: { dir, name: 'leaf' } });
  const r = opensslVerify(['-CAfile', c.caPath, '-untrusted', inter.certPath!, '-purpose', 'sslclient', leaf.certPath!]);
  t.notOk(r.ok, 'the chain through an intermediate is refused');
  t.match(r.out, /path length constraint exceeded/);

  // Control: the same shape under a root WITHOUT pathLen validates, so the refusal above is the constraint's doing.
  const root = await forgeCertificate({ isCA: true, eku: null, commonName: 'control root', writeTo: { dir, name: 'root' } });
  const inter2 = await forgeCertificate({ issuer: asIssuer(root), isCA: true, eku: null, writeTo: { dir, name: 'inter2' } });
  const leaf2 = await forgeCertificate({ issuer: asIssuer(inter2), uris: ['spiffe://x/client/a'], writeTo: { dir, name: 'leaf2' } });
  const ok = opensslVerify(['-CAfile', root.certPath!, '-untrusted', inter2.certPath!, '-purpose', 'sslclient', leaf2.certPath!]);
  t.ok(ok.ok, ok.out);
  t.equal(leaf2.chainPem, leaf2.certPem + inter2.certPem, 'the chain to send is leaf + intermediate, without the root');
  t.equal(leaf.chainPem, leaf.certPem + inter.certPem);
});

t.test('the forger produces the hostile shapes other suites rely on', async (t) => {
  const c = await makeTestCluster({ cluster: 'forge' });
  t.teardown(() => c.cleanup());
  const expired = await c.forge({ uris: ['spiffe://forge/client/a'], notBefore: new Date(Date.now() - 10 * 86400e3), notAfter: new Date(Date.now() - 86400e3) });
  t.ok(new Date(new X509Certificate(expired.certPem).validTo) < new Date());
  const twoUris = await c.forge({ uris: ['spiffe://forge/client/a', 'spiffe://forge/admin/b'] });
  t.equal(parseSubjectAltName(new X509Certificate(twoUris.certPem).subjectAltName).length, 2);
  const mismatched = await c.forge({ uris: ['spiffe://forge/client/a'], mismatchedKey: true });
  const { keyMatchesCertificate } = await import('../../src/pki/certificate.js');
  t.notOk(keyMatchesCertificate(mismatched.keyPem, mismatched.certPem));
  const self = await forgeCertificate({ uris: ['spiffe://forge/client/a'] });
  const sx = new X509Certificate(self.certPem);
  t.ok(sx.verify(sx.publicKey) && sx.subject === sx.issuer, 'self-signed');
  const noEku = await c.forge({ uris: ['spiffe://forge/client/a'], eku: null });
  t.equal(new X509Certificate(noEku.certPem).keyUsage, undefined);
  const caLeaf = await c.forge({ uris: ['spiffe://forge/client/a'], isCA: true });
  t.equal(new X509Certificate(caLeaf.certPem).ca, true);
  const rsa = await c.forge({ uris: ['spiffe://forge/client/a'], keyType: 'rsa-3072' });
  t.equal(new X509Certificate(rsa.certPem).publicKey.asymmetricKeyType, 'rsa');
});

t.test('an RSA-3072 cluster issues RSA leaves that verify', async (t) => {
  const c = await makeTestCluster({ cluster: 'rsa', keyType: 'rsa-3072' });
  t.teardown(() => c.cleanup());
  const w = await c.issue('worker', 'w');
  const x = new X509Certificate(w.certPem);
  t.equal(x.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  t.ok(opensslVerify(['-CAfile', c.caPath, '-purpose', 'sslserver', w.certPath]).ok);
});

t.test('issuing refuses an unknown role, a bad name and a reused name', async (t) => {
  const c = await makeTestCluster({ cluster: 'refuse' });
  t.teardown(() => c.cleanup());
  const base = { dir: c.dir, passphrase: c.passphrase };
  await t.rejects(issueCertificate({ ...base, role: 'gateway', name: 'g' }), { code: 'GW_PKI_UNKNOWN_ROLE' });
  await t.rejects(issueCertificate({ ...base, role: 'root', name: 'g' }), { code: 'GW_PKI_UNKNOWN_ROLE' });
  for (const bad of ['', '..', 'a/b', '-x', 'a b', 'x'.repeat(64)]) {
    await t.rejects(issueCertificate({ ...base, role: 'worker', name: bad }), { code: 'GW_PKI_INVALID_NAME' }, JSON.stringify(bad));
  }
  await c.issue('worker', 'dup');
  await t.rejects(issueCertificate({ ...base, role: 'client', name: 'dup' }), { code: 'GW_PKI_DUPLICATE_NAME' });
  await c.revoke('dup');
  const again = await c.issue('worker', 'dup');
  t.ok(again.serial, 'a revoked name can be issued again');
  await t.rejects(issueCertificate({ ...base, role: 'worker', name: 'long', days: 4000 }), { code: 'GW_PKI_INVALID_DAYS' });
});
