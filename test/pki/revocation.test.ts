import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster } from '../helpers/pki.js';
import { readRevokedSerials, revokeCertificate } from '../../src/pki/revocation.js';
import { readIndex, readRevocationList } from '../../src/pki/records.js';
import { crlSignedBy, parseCrl } from '../../src/pki/x509.js';

function crl(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', ['crl', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

t.test('init publishes an empty CRL that openssl verifies against the CA', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const r = crl(['-in', join(c.dir, 'crl.pem'), '-CAfile', c.caPath, '-noout', '-text']);
  t.ok(r.ok, r.out);
  t.match(r.out, /verify OK/);
  t.match(r.out, /No Revoked Certificates/);
  t.equal(readRevokedSerials(c.dir).size, 0);
});

t.test('revoking writes revoked.json and a CA-signed CRL listing the serial, with an increasing CRL number', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const a = await c.issue('worker', 'a');
  const b = await c.issue('client', 'b');
  await c.issue('admin', 'keep');
  const before = parseCrl(readFileSync(join(c.dir, 'crl.pem'), 'utf8')).crlNumber!;
  await c.revoke('a', 'keyCompromise');
  const mid = parseCrl(readFileSync(join(c.dir, 'crl.pem'), 'utf8')).crlNumber!;
  await c.revoke(b.serial);
  const crlPem = readFileSync(join(c.dir, 'crl.pem'), 'utf8');
  const after = parseCrl(crlPem);
  t.ok(mid > before && after.crlNumber! > mid, `crlNumber ${before} < ${mid} < ${after.crlNumber}`);
  t.same(new Set(after.serials.map((s) => s.toLowerCase())), new Set([a.serial, b.serial]));
  t.ok(await crlSignedBy(crlPem, c.caPem), 'signed by the CA');

  const r = crl(['-in', join(c.dir, 'crl.pem'), '-CAfile', c.caPath, '-noout', '-text']);
  t.match(r.out, /verify OK/);
  t.match(r.out.toLowerCase(), new RegExp(`serial number: ${a.serial}`));
  t.match(r.out.toLowerCase(), new RegExp(`serial number: ${b.serial}`));
  t.match(r.out, /Key Compromise/);

  t.same(readRevokedSerials(c.dir), new Set([a.serial, b.serial]));
  const list = readRevocationList(c.dir);
  t.same(list.revoked.map((e) => [e.serial, e.reason]), [[a.serial, 'keyCompromise'], [b.serial, 'unspecified']]);
  const idx = readIndex(c.dir).certificates;
  t.ok(idx.find((e) => e.serial === a.serial)?.revokedAt);
  t.notOk(idx.find((e) => e.name === 'keep')?.revokedAt);
});

t.test('openssl refuses a revoked certificate when checking the CRL', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const w = await c.issue('worker', 'w');
  const ok = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', c.caPath, '-CRLfile', join(c.dir, 'crl.pem'), w.certPath], { encoding: 'utf8' });
  t.equal(ok.status, 0, ok.stderr);
  await c.revoke('w');
  const bad = spawnSync('openssl', ['verify', '-crl_check', '-CAfile', c.caPath, '-CRLfile', join(c.dir, 'crl.pem'), w.certPath], { encoding: 'utf8' });
  t.not(bad.status, 0);
  t.match(bad.stdout + bad.stderr, /certificate revoked/);
});

t.test('a CRL from another CA is not accepted as this CA\'s', async (t) => {
  const c1 = await makeTestCluster();
  const c2 = await makeTestCluster();
  t.teardown(() => { c1.cleanup(); c2.cleanup(); });
  const r = crl(['-in', join(c2.dir, 'crl.pem'), '-CAfile', c1.caPath, '-noout']);
  t.notOk(r.ok);
  t.notOk(await crlSignedBy(readFileSync(join(c2.dir, 'crl.pem'), 'utf8'), c1.caPem));
});

t.test('revoke refuses unknown serials and names, repeats, and bad input', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const w = await c.issue('worker', 'w');
  const base = { dir: c.dir, passphrase: c.passphrase };
  await t.rejects(revokeCertificate({ ...base, serial: 'abcdef' }), { code: 'GW_PKI_UNKNOWN_SERIAL' });
  await t.rejects(revokeCertificate({ ...base, name: 'nobody' }), { code: 'GW_PKI_UNKNOWN_NAME' });
  await t.rejects(revokeCertificate({ ...base, serial: 'xyz' }), { code: 'GW_PKI_INVALID_SERIAL' });
  await t.rejects(revokeCertificate({ ...base }), { code: 'GW_USAGE' });
  await t.rejects(revokeCertificate({ ...base, name: 'w', passphrase: 'wrong-passphrase' }), { code: 'GW_PKI_WRONG_PASSPHRASE' });
  // Serials are accepted in any case and with colons, as openssl prints them.
  const colon = w.serial.toUpperCase().match(/../g)!.join(':');
  const r = await revokeCertificate({ ...base, serial: colon });
  t.equal(r.serial, w.serial);
  await t.rejects(revokeCertificate({ ...base, serial: w.serial }), { code: 'GW_PKI_ALREADY_REVOKED' });
});

t.test('a CRL past half its validity is re-signed by the next writer, keeping its entries', async (t) => {
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const w = await c.issue('worker', 'w');
  await c.revoke('w');
  const crlFile = join(c.dir, 'crl.pem');
  const before = parseCrl(readFileSync(crlFile, 'utf8'));
  const { issueCertificate } = await import('../../src/pki/issue.js');
  const { refreshCrl } = await import('../../src/pki/revocation.js');
  t.same(await refreshCrl(c.dir, c.passphrase), { refreshed: false, crlNumber: before.crlNumber }, 'a fresh CRL is left alone');
  const later = new Date(Date.now() + 20 * 86_400_000);
  await issueCertificate({ dir: c.dir, passphrase: c.passphrase, role: 'client', name: 'later', now: later });
  const after = parseCrl(readFileSync(crlFile, 'utf8'));
  t.equal(after.crlNumber, before.crlNumber! + 1);
  t.equal(after.thisUpdate.getTime(), Math.floor(later.getTime() / 1000) * 1000);
  t.same(after.serials.map((s) => s.toLowerCase()), [w.serial]);
  t.ok(await crlSignedBy(readFileSync(crlFile, 'utf8'), c.caPem));
  t.equal(readRevocationList(c.dir).crlNumber, after.crlNumber, 'revoked.json carries the same number');
});
