import t from 'tap';
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { makeTestCluster, forgeCertificate, EKU } from '../helpers/pki.js';
import { loadPemMaterial, loadServerMaterial } from '../../src/pki/server-material.js';
import { keyMatchesCertificate } from '../../src/pki/certificate.js';

t.test('managed material: CA, gateway certificate, decrypted key, revoked serials, watch paths', async (t) => {
  const c = await makeTestCluster({ cluster: 'mat' });
  t.teardown(() => c.cleanup());
  const w = await c.issue('worker', 'w');
  await c.revoke('w');
  const m = await loadServerMaterial(c.dir, c.passphrase);
  t.equal(m.clusterId, 'mat');
  t.equal(m.caPem, c.caPem);
  t.match(m.keyPem, /^-----BEGIN PRIVATE KEY-----/);
  t.ok(keyMatchesCertificate(m.keyPem, m.certPem));
  t.same(m.revokedSerials, new Set([w.serial]));
  t.ok(m.notAfter > new Date());
  for (const f of ['ca.pem', 'gateway.pem', 'gateway-key.pem', 'revoked.json', 'crl.pem']) {
    t.ok(m.watchPaths.includes(join(c.dir, f)), `watches ${f}`);
  }
  t.equal(m.serial, new X509Certificate(m.certPem).serialNumber.toLowerCase().replace(/^0+/, ''));
});

t.test('managed material refuses a wrong passphrase, an open key file and a missing directory', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  await t.rejects(loadServerMaterial(c.dir, 'not-the-passphrase'), { code: 'GW_PKI_WRONG_PASSPHRASE' });
  chmodSync(join(c.dir, 'gateway-key.pem'), 0o644);
  await t.rejects(loadServerMaterial(c.dir, c.passphrase), { code: 'GW_PKI_KEY_FILE_TOO_OPEN', message: /gateway-key\.pem/ });
  await t.rejects(loadServerMaterial(join(c.root, 'nope'), c.passphrase), { code: 'GW_PKI_MISSING_DIR' });
  await t.rejects(loadServerMaterial(c.root, c.passphrase), { code: 'GW_PKI_NOT_INITIALIZED' });
});

t.test('bring-your-own PEM files load, with revoked serials read from a CA-signed CRL', async (t) => {
  const c = await makeTestCluster({ cluster: 'byo' });
  t.teardown(() => c.cleanup());
  const gw = await c.issue('gateway', 'gw');
  const w = await c.issue('worker', 'w');
  await c.revoke('w');
  const m = await loadPemMaterial({ caPath: c.caPath, certPath: gw.certPath, keyPath: gw.keyPath, crlPath: join(c.dir, 'crl.pem'), clusterId: 'byo' });
  t.equal(m.clusterId, 'byo');
  t.same(m.revokedSerials, new Set([w.serial]));
  t.same(m.watchPaths, [c.caPath, gw.certPath, gw.keyPath, join(c.dir, 'crl.pem')]);
  const noCrl = await loadPemMaterial({ caPath: c.caPath, certPath: gw.certPath, keyPath: gw.keyPath, clusterId: 'byo' });
  t.equal(noCrl.revokedSerials.size, 0);
});

t.test('bring-your-own refuses a mismatched key, an open key, corrupt PEM, a foreign CRL and a bad cluster id', async (t) => {
  const c = await makeTestCluster({ cluster: 'byo2' });
  const other = await makeTestCluster({ cluster: 'other' });
  t.teardown(() => { c.cleanup(); other.cleanup(); });
  const gw = await c.issue('gateway', 'gw');
  const dir = join(c.root, 'forged');
  const bad = await c.forge({ uris: ['spiffe://byo2/gateway'], eku: [EKU.serverAuth], mismatchedKey: true, writeTo: { dir, name: 'mismatch' } });
  const base = { caPath: c.caPath, certPath: gw.certPath, keyPath: gw.keyPath, clusterId: 'byo2' };
  await t.rejects(loadPemMaterial({ ...base, certPath: bad.certPath!, keyPath: bad.keyPath! }), { code: 'GW_PKI_KEY_MISMATCH' });
  await t.rejects(loadPemMaterial({ ...base, clusterId: 'Not Valid' }), { code: 'GW_PKI_INVALID_CLUSTER_ID' });
  await t.rejects(loadPemMaterial({ ...base, crlPath: join(other.dir, 'crl.pem') }), { code: 'GW_PKI_CERTIFICATE_INVALID', message: /not signed by any CA/ });
  const corrupt = join(c.root, 'corrupt.pem');
  writeFileSync(corrupt, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  await t.rejects(loadPemMaterial({ ...base, caPath: corrupt }), { code: 'GW_PKI_CORRUPT_PEM', message: /corrupt\.pem/ });
  await t.rejects(loadPemMaterial({ ...base, crlPath: corrupt }), { code: 'GW_PKI_CORRUPT_PEM' });
  const openKey = join(c.root, 'open-key.pem');
  copyFileSync(gw.keyPath, openKey);
  chmodSync(openKey, 0o644);
  await t.rejects(loadPemMaterial({ ...base, keyPath: openKey }), { code: 'GW_PKI_KEY_FILE_TOO_OPEN', message: /open-key\.pem/ });
  const caLeaf = await forgeCertificate({ isCA: true, eku: null, writeTo: { dir, name: 'ca-as-server' } });
  await t.rejects(loadPemMaterial({ ...base, certPath: caLeaf.certPath!, keyPath: caLeaf.keyPath! }), { code: 'GW_PKI_CERTIFICATE_INVALID' });
});
