import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCerts } from './cli-harness.js';

const ENV = { SCHEDULER_GATEWAY_PASSPHRASE: 'bundle-test-passphrase' };
const root = mkdtempSync(join(tmpdir(), 'sgw-bundle-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'certs');

t.before(async () => {
  const r = await runCerts(['init', '--dir', dir, '--cluster', 'bundle', '--host', 'gw.internal'], { cwd: root, env: ENV });
  if (r.code !== 0) throw new Error(r.stderr);
});

function spki(pem: string): string {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' }).toString('hex');
}

t.test('the PKCS#12 bundle opens with openssl and holds this identity\'s certificate, matching key and the CA', async (t) => {
  const out = join(root, 'alice');
  const r = await runCerts(['issue', '--dir', dir, '--role', 'client', '--name', 'alice', '--out', out, '--p12'], { cwd: root, env: ENV });
  t.equal(r.code, 0, r.stderr);
  const password = r.stdout.match(/PKCS#12 password \(shown only now\): (\S+)/)![1]!;
  t.ok(password.length >= 16, 'a long random password');
  const p12 = join(out, 'alice.p12');
  t.equal(statSync(p12).mode & 0o777, 0o600);
  const dump = spawnSync('openssl', ['pkcs12', '-in', p12, '-nodes', '-passin', `pass:${password}`], { encoding: 'utf8' });
  t.equal(dump.status, 0, dump.stderr);
  const certs = dump.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  const key = dump.stdout.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)![0];
  t.equal(certs.length, 2, 'leaf and CA');
  const leafPem = readFileSync(join(out, 'alice.pem'), 'utf8');
  const caPem = readFileSync(join(out, 'ca.pem'), 'utf8');
  t.ok(certs.some((c) => new X509Certificate(c).fingerprint256 === new X509Certificate(leafPem).fingerprint256), 'the issued certificate');
  t.ok(certs.some((c) => new X509Certificate(c).fingerprint256 === new X509Certificate(caPem).fingerprint256), 'the CA');
  t.equal(spki(key), spki(leafPem), 'the key belongs to the certificate');
  t.equal(spki(key), spki(readFileSync(join(out, 'alice-key.pem'), 'utf8')), 'the same key as the PEM bundle');
  t.match(dump.stdout, /friendlyName: spiffe:\/\/bundle\/client\/alice/);
  const info = spawnSync('openssl', ['pkcs12', '-in', p12, '-info', '-noout', '-passin', `pass:${password}`], { encoding: 'utf8' });
  t.match(info.stderr + info.stdout, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
  const wrong = spawnSync('openssl', ['pkcs12', '-in', p12, '-nodes', '-passin', 'pass:wrong'], { encoding: 'utf8' });
  t.not(wrong.status, 0, 'a wrong password does not open it');
});

t.test('--p12-password-file sets the password and it is not printed', async (t) => {
  const pwFile = join(root, 'p12pass');
  writeFileSync(pwFile, 'chosen-p12-password\n', { mode: 0o600 });
  const out = join(root, 'bob');
  const r = await runCerts(['issue', '--dir', dir, '--role', 'admin', '--name', 'bob', '--out', out, '--p12-password-file', pwFile], { cwd: root, env: ENV });
  t.equal(r.code, 0, r.stderr);
  t.notMatch(r.stdout, /chosen-p12-password|password \(shown/);
  const dump = spawnSync('openssl', ['pkcs12', '-in', join(out, 'bob.p12'), '-nodes', '-passin', 'pass:chosen-p12-password'], { encoding: 'utf8' });
  t.equal(dump.status, 0, dump.stderr);
});

t.test('each role gets the Dask TLS section it uses, with absolute paths to the delivered files', async (t) => {
  const sections = { worker: 'worker', scheduler: 'scheduler', client: 'client', admin: 'client' } as const;
  for (const [role, section] of Object.entries(sections)) {
    const name = `${role}-y`;
    const out = join(root, 'yaml', name);
    const r = await runCerts(['issue', '--dir', dir, '--role', role, '--name', name, '--out', out], { cwd: root, env: ENV });
    t.equal(r.code, 0, r.stderr);
    const cfg = YAML.parse(readFileSync(join(out, `${name}-distributed.yaml`), 'utf8'));
    t.same(cfg.distributed.comm.tls, { 'ca-file': join(out, 'ca.pem'), [section]: { cert: join(out, `${name}.pem`), key: join(out, `${name}-key.pem`) } }, role);
    t.equal(cfg.distributed.comm['require-encryption'], true);
    t.equal(cfg['scheduler-address'], section === 'client' ? 'tls://gw.internal:8786' : undefined);
    const readme = readFileSync(join(out, `${name}-README.md`), 'utf8');
    t.match(readme, new RegExp(`tls_${section}_cert="${join(out, `${name}.pem`)}"`));
    if (role === 'worker') t.match(readme, new RegExp(`dask worker tls://gw.internal:8786 --tls-ca-file ${join(out, 'ca.pem')} --tls-cert ${join(out, `${name}.pem`)} --tls-key ${join(out, `${name}-key.pem`)}`));
    t.equal(statSync(join(out, `${name}-key.pem`)).mode & 0o777, 0o600);
    t.match(readFileSync(join(out, `${name}-key.pem`), 'utf8'), /^-----BEGIN PRIVATE KEY-----/, 'unencrypted for Dask');
    t.equal(statSync(out).mode & 0o777, 0o700);
  }
});
