/**
 * certs renew, rotate-ca begin|switch|finish, passphrase and list, through
 * the CLI as an operator runs them: what changes on disk, what openssl
 * thinks of the result, what the audit trail says, and every refusal.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { runCerts, type CliResult } from './cli-harness.js';
import { keyEncryption } from '../../src/pki/keystore.js';
import { loadServerMaterial } from '../../src/pki/server-material.js';
import { refreshCrl } from '../../src/pki/revocation.js';
import { serverNames } from '../../src/pki/x509.js';
import { splitPemCertificates } from '../../src/pki/certificate.js';

const PASS = 'lifecycle-passphrase-1';
const NEW_PASS = 'lifecycle-passphrase-2';

interface Ws {
  root: string;
  dir: string;
  run(argv: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  ok(argv: string[], env?: NodeJS.ProcessEnv): Promise<CliResult>;
  json<T = Record<string, unknown>>(argv: string[], env?: NodeJS.ProcessEnv): Promise<T>;
  audit(): Array<Record<string, unknown>>;
}

async function workspace(t: Test, hosts = ['gw.example.com', '10.0.0.7']): Promise<Ws> {
  const root = mkdtempSync(join(tmpdir(), 'sgw-life-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'state');
  const run = (argv: string[], env: NodeJS.ProcessEnv = { SCHEDULER_GATEWAY_PASSPHRASE: PASS }) => runCerts([...argv.slice(0, argv[0] === 'rotate-ca' ? 2 : 1), '--dir', dir, ...argv.slice(argv[0] === 'rotate-ca' ? 2 : 1)], { cwd: root, env });
  const ok = async (argv: string[], env?: NodeJS.ProcessEnv) => {
    const r = await run(argv, env);
    t.equal(r.code, 0, `certs ${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  const ws: Ws = {
    root, dir, run, ok,
    json: async (argv, env) => JSON.parse((await ok([...argv, '--json'], env)).stdout),
    audit: () => readFileSync(join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
  await ok(['init', '--cluster', 'life', ...hosts.flatMap((h) => ['--host', h])]);
  return ws;
}

function pem(file: string): string {
  return readFileSync(file, 'utf8');
}

function serialOf(file: string): string {
  return new X509Certificate(pem(file)).serialNumber.toLowerCase().replace(/^0+/, '');
}

/** openssl verify of a leaf against a CA file: true when it chains. */
function verifies(caFile: string, leafFile: string): boolean {
  return spawnSync('openssl', ['verify', '-CAfile', caFile, leafFile], { encoding: 'utf8' }).status === 0;
}

interface ListJson {
  cas: Array<{ serial: string; issuing: boolean; serving: boolean; outgoing: boolean }>;
  rotation?: { phase: string };
  certificates: Array<{ serial: string; name: string; role: string; status: string; caSerial?: string; renewedBy?: string; renewBeforeFinish: boolean; expiring: boolean; daysLeft: number }>;
  keys: Array<{ file: string; kdf: string; current: boolean }>;
}

t.test('renew a worker: new serial and key, same identity, bundle rewritten where it was, previous still valid', async (t) => {
  const ws = await workspace(t);
  const out = join(ws.root, 'bundles', 'w1');
  await ws.ok(['issue', '--role', 'worker', '--name', 'w1', '--out', out]);
  const oldSerial = serialOf(join(out, 'w1.pem'));
  const oldKey = pem(join(out, 'w1-key.pem'));
  const r = await ws.json<{ renewed: { serial: string; uri: string }; previous: { serial: string; revoked: boolean }; bundle: { certPath: string } }>(['renew', '--name', 'w1']);
  t.equal(r.previous.serial, oldSerial);
  t.not(r.renewed.serial, oldSerial, 'a new serial');
  t.equal(r.renewed.uri, 'spiffe://life/worker/w1', 'the same identity');
  t.equal(r.bundle.certPath, join(out, 'w1.pem'), 'written where the previous bundle was');
  t.equal(serialOf(join(out, 'w1.pem')), r.renewed.serial);
  t.not(pem(join(out, 'w1-key.pem')), oldKey, 'a new key');
  t.ok(createPrivateKey(pem(join(out, 'w1-key.pem'))), 'the key parses');
  t.ok(verifies(join(out, 'ca.pem'), join(out, 'w1.pem')), 'openssl verifies it against the bundle CA');
  t.ok(existsSync(join(out, 'tls_reload.py')), 'the worker bundle carries the Dask preload');
  const yaml = YAML.parse(pem(join(out, 'w1-distributed.yaml')));
  t.same(yaml.distributed.worker.preload, [join(out, 'tls_reload.py')], 'and its configuration loads it');

  const list = await ws.json<ListJson>(['list']);
  const rows = list.certificates.filter((c) => c.name === 'w1');
  t.same(rows.map((c) => [c.serial, c.status, c.renewedBy]), [[oldSerial, 'valid', r.renewed.serial], [r.renewed.serial, 'valid', undefined]], 'both valid; the old one is marked renewed');
  const text = (await ws.ok(['list'])).stdout;
  t.match(text, new RegExp(`${oldSerial}\\s+worker\\s+w1\\s+.*valid\\s+renewed by ${r.renewed.serial.slice(0, 8)}`));

  // revoke --name acts on the current certificate; the previous one by serial.
  await ws.ok(['revoke', '--name', 'w1']);
  const after = await ws.json<ListJson>(['list']);
  t.same(after.certificates.filter((c) => c.name === 'w1').map((c) => c.status), ['valid', 'revoked']);

  const audit = ws.audit().find((l) => l.event === 'certificate_renewed')!;
  t.match(audit, { serial: r.renewed.serial, previous_serial: oldSerial, role: 'worker', name: 'w1', revoked_previous: false, bundle: out, operator: Object });
});

t.test('renew rewrites a bundle with the settings it was issued with: gateway host, credentials port, dashboard link', async (t) => {
  const ws = await workspace(t);
  const w = join(ws.root, 'bundles', 'w1');
  const c = join(ws.root, 'bundles', 'alice');
  await ws.ok(['issue', '--role', 'worker', '--name', 'w1', '--out', w, '--gateway-host', '10.0.0.7', '--credentials-port', '9443']);
  await ws.ok(['issue', '--role', 'client', '--name', 'alice', '--out', c, '--gateway-host', '10.0.0.7', '--dashboard-url', 'https://{host}:9787/status']);
  await ws.ok(['issue', '--role', 'client', '--name', 'bob', '--out', join(ws.root, 'bundles', 'bob')]);
  const before = { aws: pem(join(w, 'w1-aws-config')), yaml: YAML.parse(pem(join(c, 'alice-distributed.yaml'))), readme: pem(join(w, 'w1-README.md')) };
  await ws.ok(['renew', '--name', 'w1']);
  await ws.ok(['renew', '--name', 'alice']);
  await ws.ok(['renew', '--name', 'bob']);
  t.equal(pem(join(w, 'w1-aws-config')), before.aws, "the worker's AWS config still names 10.0.0.7:9443");
  t.match(pem(join(w, 'w1-README.md')), /dask worker tls:\/\/10\.0\.0\.7:8786/, "the worker's README still names its gateway host");
  const yaml = YAML.parse(pem(join(c, 'alice-distributed.yaml')));
  t.equal(yaml['scheduler-address'], 'tls://10.0.0.7:8786', "the client's scheduler address is kept");
  t.equal(yaml.distributed.dashboard.link, 'https://{host}:9787/status', 'and its dashboard link');
  t.same(yaml.distributed.dashboard, before.yaml.distributed.dashboard);
  const bob = YAML.parse(pem(join(ws.root, 'bundles', 'bob', 'bob-distributed.yaml')));
  t.same([bob['scheduler-address'], bob.distributed.dashboard.link], ['tls://gw.example.com:8786', 'https://{host}:8787/status'], 'a bundle issued with defaults keeps the defaults');
});

/** What NAME.p12 holds, opened with openssl: the leaf's serial, the CA serials and the key's public half; undefined if it does not open. */
function p12Contents(file: string, password: string): { leaf: string; cas: string[]; spki: string } | undefined {
  const dump = spawnSync('openssl', ['pkcs12', '-in', file, '-nodes', '-passin', `pass:${password}`], { encoding: 'utf8' });
  if (dump.status !== 0) return undefined;
  const certs = dump.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((c) => new X509Certificate(c));
  const key = dump.stdout.match(/-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----/)![0];
  const serial = (c: X509Certificate) => c.serialNumber.toLowerCase().replace(/^0+/, '');
  return { leaf: serial(certs.find((c) => !c.ca)!), cas: certs.filter((c) => c.ca).map(serial).sort(), spki: spkiOf(key) };
}

function spkiOf(keyOrCert: string): string {
  return createPublicKey(keyOrCert).export({ type: 'spki', format: 'der' }).toString('hex');
}

t.test('renew rewrites NAME.p12 when the bundle had one: the new certificate and key, under a new password shown once', async (t) => {
  const ws = await workspace(t);
  const out = join(ws.root, 'bundles', 'alice');
  const issued = await ws.ok(['issue', '--role', 'client', '--name', 'alice', '--out', out, '--p12']);
  const firstPassword = /PKCS#12 password \(shown only now\): (\S+)/.exec(issued.stdout)![1]!;
  const p12 = join(out, 'alice.p12');

  const renewed = await ws.ok(['renew', '--name', 'alice']);
  const password = /PKCS#12 password \(shown only now\): (\S+)/.exec(renewed.stdout)?.[1];
  t.ok(password, 'the new password is printed, as certs issue prints it');
  t.not(password, firstPassword, 'a fresh password');
  t.match(renewed.stdout, new RegExp(`^  ${p12}$`, 'm'), 'the .p12 is among the files written');
  t.equal(statSync(p12).mode & 0o777, 0o600);
  const inside = p12Contents(p12, password!);
  t.ok(inside, 'openssl opens it with the new password');
  t.equal(inside?.leaf, serialOf(join(out, 'alice.pem')), 'it holds the renewed certificate');
  t.equal(inside?.spki, spkiOf(pem(join(out, 'alice-key.pem'))), 'and the renewed key');
  t.same(inside?.cas, splitPemCertificates(pem(join(out, 'ca.pem'))).map((c) => new X509Certificate(c).serialNumber.toLowerCase().replace(/^0+/, '')).sort(), 'and the CA file\'s CAs');
  t.equal(p12Contents(p12, firstPassword), undefined, 'the old password no longer opens it');
  t.match(pem(join(out, 'alice-README.md')), /alice\.p12/, 'the README still lists it');
  t.match(ws.audit().filter((l) => l.event === 'certificate_renewed').at(-1), { name: 'alice', p12: true });
  t.notOk(readFileSync(join(ws.dir, 'audit.log'), 'utf8').includes(password!), 'the password is not in the audit trail');

  // --p12-password-file chooses it (and it is not printed); --json carries a generated one.
  writeFileSync(join(ws.root, 'p12pass'), 'chosen-p12-password\n', { mode: 0o600 });
  const chosen = await ws.ok(['renew', '--name', 'alice', '--p12-password-file', 'p12pass']);
  t.notMatch(chosen.stdout, /chosen-p12-password|shown only now/);
  t.equal(p12Contents(p12, 'chosen-p12-password')?.leaf, serialOf(join(out, 'alice.pem')));
  const json = await ws.json<{ p12Password: string; bundle: { p12Path: string } }>(['renew', '--name', 'alice']);
  t.equal(json.bundle.p12Path, p12);
  t.equal(p12Contents(p12, json.p12Password)?.leaf, serialOf(join(out, 'alice.pem')), '--json gives the generated password');

  // Into another directory (--out), and during a rotation: the .p12 follows, with both CAs.
  await ws.ok(['rotate-ca', 'begin']);
  const moved = join(ws.root, 'bundles', 'alice2');
  const r = await ws.json<{ p12Password: string }>(['renew', '--name', 'alice', '--out', moved]);
  const rotated = p12Contents(join(moved, 'alice.p12'), r.p12Password);
  t.equal(rotated?.leaf, serialOf(join(moved, 'alice.pem')));
  t.equal(rotated?.cas.length, 2, 'both CAs, as ca.pem');

  const plain = join(ws.root, 'bundles', 'bob');
  await ws.ok(['issue', '--role', 'client', '--name', 'bob', '--out', plain]);
  const bob = await ws.ok(['renew', '--name', 'bob']);
  t.notOk(existsSync(join(plain, 'bob.p12')), 'a bundle issued without --p12 gets none');
  t.notMatch(bob.stdout, /PKCS#12/);
  t.match((await ws.run(['renew', '--name', 'gateway', '--p12-password-file', 'p12pass'])).stderr, /--p12-password-file does not apply to the gateway/);
});

t.test('renew --revoke-previous revokes it as superseded, in revoked.json and in the CRL', async (t) => {
  const ws = await workspace(t);
  const out = join(ws.root, 'alice');
  await ws.ok(['issue', '--role', 'client', '--name', 'alice', '--out', out]);
  const oldSerial = serialOf(join(out, 'alice.pem'));
  const r = await ws.ok(['renew', '--name', 'alice', '--revoke-previous', '--days', '30']);
  t.match(r.stdout, /previous certificate is revoked \(superseded, CRL number \d+\)/);
  const revoked = JSON.parse(pem(join(ws.dir, 'revoked.json'))) as { revoked: Array<{ serial: string; reason: string }> };
  t.match(revoked.revoked, [{ serial: oldSerial, reason: 'superseded' }]);
  t.equal(revoked.revoked.length, 1);
  const crl = spawnSync('openssl', ['crl', '-in', join(ws.dir, 'crl.pem'), '-noout', '-text'], { encoding: 'utf8' }).stdout;
  t.match(crl.toLowerCase().replace(/:/g, ''), new RegExp(oldSerial), 'the CRL lists it');
  t.match(crl, /Superseded/);
  const days = (new Date(new X509Certificate(pem(join(out, 'alice.pem'))).validTo).getTime() - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30, '--days honoured');
});

t.test('renew --name gateway: a new key and certificate from the same CA, same names and CRL point, loadable by the gateway', async (t) => {
  const ws = await workspace(t);
  const certFile = join(ws.dir, 'gateway.pem');
  const before = pem(certFile);
  const oldSerial = serialOf(certFile);
  const r = await ws.json<{ renewed: { serial: string; role: string }; previous: { serial: string } }>(['renew', '--name', 'gateway']);
  t.equal(r.renewed.role, 'gateway');
  t.equal(r.previous.serial, oldSerial);
  t.equal(serialOf(certFile), r.renewed.serial);
  t.match(new X509Certificate(pem(certFile)).issuer, new X509Certificate(before).issuer, 'from the same CA');
  t.same(serverNames(pem(certFile)), serverNames(before), 'DNS/IP names and CRL Distribution Point kept');
  t.ok(verifies(join(ws.dir, 'ca.pem'), certFile));
  const m = await loadServerMaterial(ws.dir, PASS);
  t.equal(m.serial, r.renewed.serial, 'the gateway loads the new pair');
  t.equal(keyEncryption(pem(join(ws.dir, 'gateway-key.pem')), 'gateway-key.pem').kdf, 'scrypt');
  const refused = await ws.run(['renew', '--name', 'gateway', '--out', join(ws.root, 'x')]);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /--out does not apply to the gateway/);
});

t.test('renew rewrites a CA key still on the old key derivation, and list names such keys until then', async (t) => {
  const ws = await workspace(t);
  const caKey = join(ws.dir, 'ca-key.pem');
  const { decryptPrivateKeyPem } = await import('../../src/pki/keystore.js');
  const plain = await decryptPrivateKeyPem(pem(caKey), PASS, caKey);
  // What every key written before this change looks like: Node's PBKDF2 at 2,048 iterations.
  writeFileSync(caKey, createPrivateKey(plain).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }) as string, { mode: 0o600 });
  const list = await ws.json<ListJson>(['list']);
  t.same(list.keys.filter((k) => !k.current).map((k) => [k.file, k.kdf]), [[caKey, 'pbkdf2']]);
  t.match((await ws.ok(['list'])).stdout, /Keys on an old key derivation[\s\S]*ca-key\.pem: pbkdf2, 2048 iterations/);
  await ws.ok(['issue', '--role', 'worker', '--name', 'old-kdf', '--out', join(ws.root, 'w')]);
  t.equal(keyEncryption(pem(caKey), caKey).kdf, 'pbkdf2', 'issue leaves it alone');
  const r = await ws.json<{ rewrittenKeys: string[] }>(['renew', '--name', 'old-kdf']);
  t.same(r.rewrittenKeys, [caKey]);
  t.same({ ...keyEncryption(pem(caKey), caKey) }, { kdf: 'scrypt', cipher: 'aes-256-cbc', N: 16384, r: 8, p: 5, current: true });
  t.equal(await decryptPrivateKeyPem(pem(caKey), PASS, caKey), plain, 'the same key, re-wrapped');
});

t.test('the whole CA rotation: begin, renew, switch, finish, with bundles following and openssl agreeing at each step', async (t) => {
  const ws = await workspace(t);
  const b = (n: string) => join(ws.root, 'bundles', n);
  await ws.ok(['issue', '--role', 'scheduler', '--name', 'scheduler', '--out', b('scheduler')]);
  await ws.ok(['issue', '--role', 'worker', '--name', 'w1', '--out', b('w1')]);
  await ws.ok(['issue', '--role', 'client', '--name', 'bob', '--out', b('bob')]);
  const oldCa = pem(join(ws.dir, 'ca.pem'));
  const oldGateway = pem(join(ws.dir, 'gateway.pem'));
  t.equal((await ws.run(['rotate-ca', 'switch'])).code, 2, 'switch before begin is refused');
  t.match((await ws.run(['rotate-ca', 'finish'])).stderr, /no CA rotation in progress.*GW_PKI_NO_ROTATION/);

  const begin = await ws.json<{ alreadyDone: boolean; previousCa: { serial: string }; nextCa: { serial: string }; bundles: { updated: string[]; skipped: unknown[] } }>(['rotate-ca', 'begin']);
  t.equal(begin.alreadyDone, false);
  const trust = splitPemCertificates(pem(join(ws.dir, 'ca.pem')));
  t.equal(trust.length, 2, 'ca.pem holds both CAs');
  t.equal(trust[0], splitPemCertificates(oldCa)[0], 'the old one first');
  t.match(new X509Certificate(trust[1]!).subject, /CN=life cluster CA 2/, 'the new CA has its own name');
  t.ok(existsSync(join(ws.dir, 'ca-previous-key.pem')), 'the old key is kept until finish');
  t.same(begin.bundles.updated.sort(), [b('bob'), b('scheduler'), b('w1')].sort(), 'every bundle this host wrote now trusts both');
  for (const n of ['scheduler', 'w1', 'bob']) t.equal(splitPemCertificates(pem(join(b(n), 'ca.pem'))).length, 2, `${n}/ca.pem has both CAs`);
  t.equal(pem(join(ws.dir, 'gateway.pem')), oldGateway, 'the gateway keeps its certificate until switch');
  const again = await ws.json<{ alreadyDone: boolean }>(['rotate-ca', 'begin']);
  t.equal(again.alreadyDone, true, 'begin run again reports it done and changes nothing');

  // Certificates from now on come from the new CA and carry both CAs.
  await ws.ok(['issue', '--role', 'worker', '--name', 'w2', '--out', b('w2')]);
  t.match(new X509Certificate(pem(join(b('w2'), 'w2.pem'))).issuer, /CN=life cluster CA 2/);
  t.equal(splitPemCertificates(pem(join(b('w2'), 'ca.pem'))).length, 2);
  let list = await ws.json<ListJson>(['list']);
  t.equal(list.rotation?.phase, 'begun');
  t.same(list.cas.map((c) => [c.serial, c.issuing, c.serving, c.outgoing]), [[begin.previousCa.serial, false, true, true], [begin.nextCa.serial, true, false, false]]);
  t.same(list.certificates.filter((c) => c.renewBeforeFinish).map((c) => c.name).sort(), ['bob', 'gateway', 'scheduler', 'w1'], 'what still needs renewing before finish');
  t.match((await ws.ok(['list'])).stdout, /gateway\s+[0-9a-f]{8}\s+\S+\s+valid\s+rotate-ca switch replaces it/);
  t.match((await ws.run(['rotate-ca', 'finish'])).stderr, /at begun: run certs rotate-ca switch first.*GW_PKI_ROTATION_PHASE/);

  // Revoking an old-CA certificate during the rotation still works (the CRL stays with the serving CA).
  await ws.ok(['revoke', '--name', 'bob']);
  writeFileSync(join(ws.root, 'old-ca.pem'), oldCa);
  t.equal(spawnSync('openssl', ['crl', '-in', join(ws.dir, 'crl.pem'), '-CAfile', join(ws.root, 'old-ca.pem'), '-noout'], { encoding: 'utf8' }).status, 0, 'the CRL is signed by the old CA until switch');

  const sw = await ws.json<{ nextCa: { serial: string } }>(['rotate-ca', 'switch']);
  t.equal(sw.nextCa.serial, begin.nextCa.serial);
  t.match(new X509Certificate(pem(join(ws.dir, 'gateway.pem'))).issuer, /CN=life cluster CA 2/, 'the gateway now has a new-CA certificate');
  t.same(serverNames(pem(join(ws.dir, 'gateway.pem'))), serverNames(oldGateway), 'with the same names');
  t.equal(spawnSync('openssl', ['crl', '-in', join(ws.dir, 'crl.pem'), '-CAfile', join(ws.dir, 'ca.pem'), '-noout'], { encoding: 'utf8' }).status, 0);
  writeFileSync(join(ws.root, 'new-ca.pem'), trust[1]!);
  t.equal(spawnSync('openssl', ['crl', '-in', join(ws.dir, 'crl.pem'), '-CAfile', join(ws.root, 'new-ca.pem'), '-noout'], { encoding: 'utf8' }).status, 0, 'and the CRL by the new one');
  t.equal((await loadServerMaterial(ws.dir, PASS)).serial, serialOf(join(ws.dir, 'gateway.pem')));
  t.equal((await ws.json<{ alreadyDone: boolean }>(['rotate-ca', 'switch'])).alreadyDone, true);
  t.match((await ws.run(['rotate-ca', 'begin'])).stderr, /at switched: run certs rotate-ca finish before beginning another/);

  const refused = await ws.run(['rotate-ca', 'finish']);
  t.equal(refused.code, 2);
  t.match(refused.stderr, /2 certificate\(s\) from the outgoing CA still need renewing before finish: (scheduler\/scheduler, worker\/w1|worker\/w1, scheduler\/scheduler).*GW_PKI_ROTATION_PENDING/);
  await ws.ok(['renew', '--name', 'scheduler']);
  await ws.ok(['renew', '--name', 'w1']);
  list = await ws.json<ListJson>(['list']);
  t.same(list.certificates.filter((c) => c.renewBeforeFinish), [], 'nothing left to renew');

  const fin = await ws.json<{ previousCa: { serial: string }; cutOff: unknown[]; bundles: { updated: string[] } }>(['rotate-ca', 'finish']);
  t.equal(fin.previousCa.serial, begin.previousCa.serial);
  t.same(fin.cutOff, []);
  t.equal(splitPemCertificates(pem(join(ws.dir, 'ca.pem'))).length, 1, 'only the new CA is trusted');
  t.notOk(existsSync(join(ws.dir, 'ca-previous-key.pem')), 'the old CA key is gone');
  t.same(fin.bundles.updated.sort(), [b('scheduler'), b('w1'), b('w2')].sort());
  for (const n of ['scheduler', 'w1', 'w2']) {
    t.equal(splitPemCertificates(pem(join(b(n), 'ca.pem'))).length, 1, `${n}/ca.pem trusts the new CA only`);
    t.ok(verifies(join(ws.dir, 'ca.pem'), join(b(n), `${n}.pem`)), `${n} verifies against the new trust`);
  }
  t.notOk(verifies(join(ws.dir, 'ca.pem'), join(b('bob'), 'bob.pem')), 'an old-CA certificate no longer verifies');
  list = await ws.json<ListJson>(['list']);
  t.equal(list.rotation, undefined);
  t.same(list.certificates.filter((c) => c.caSerial === begin.previousCa.serial).map((c) => [c.name, c.status]).sort(),
    [['bob', 'revoked'], ['gateway', 'untrusted'], ['scheduler', 'untrusted'], ['w1', 'untrusted']]);
  t.match((await ws.run(['rotate-ca', 'finish'])).stderr, /GW_PKI_NO_ROTATION/);
  // A name whose certificate came from the retired CA can be issued again.
  await ws.ok(['issue', '--role', 'client', '--name', 'bob', '--out', b('bob2')]);

  const events = ws.audit().map((l) => l.event);
  t.same(events.filter((e) => String(e).startsWith('ca_rotation')), ['ca_rotation_begun', 'ca_rotation_begun', 'ca_rotation_switched', 'ca_rotation_switched', 'ca_rotation_finished']);
  t.match(ws.audit().find((l) => l.event === 'ca_rotation_finished'), { previous_ca: begin.previousCa.serial, next_ca: begin.nextCa.serial, forced: false, cut_off: [] });
});

t.test('rotate-ca finish --force cuts off what was not renewed, and says so', async (t) => {
  const ws = await workspace(t);
  await ws.ok(['issue', '--role', 'worker', '--name', 'late', '--out', join(ws.root, 'late')]);
  await ws.ok(['rotate-ca', 'begin']);
  await ws.ok(['rotate-ca', 'switch']);
  const r = await ws.json<{ cutOff: Array<{ name: string }> }>(['rotate-ca', 'finish', '--force']);
  t.same(r.cutOff.map((c) => c.name), ['late']);
  t.match(ws.audit().at(-1), { event: 'ca_rotation_finished', forced: true, cut_off: ['worker/late'] });
});

t.test('certs passphrase: every key moves to the new passphrase at once; run again it says done; the gateway loads with the new one', async (t) => {
  const ws = await workspace(t);
  await ws.ok(['rotate-ca', 'begin']); // three keys: CA, outgoing CA, gateway
  const newFile = join(ws.root, 'new-pass');
  writeFileSync(newFile, NEW_PASS + '\n', { mode: 0o600 });
  const r = await ws.json<{ alreadyDone: boolean; rewritten: string[] }>(['passphrase', '--new-passphrase-file', newFile]);
  t.equal(r.alreadyDone, false);
  t.same(r.rewritten.map((f) => f.split('/').pop()).sort(), ['ca-key.pem', 'ca-previous-key.pem', 'gateway-key.pem']);
  await t.rejects(loadServerMaterial(ws.dir, PASS), { code: 'GW_PKI_WRONG_PASSPHRASE' }, 'the old passphrase no longer opens the keys');
  t.ok(await loadServerMaterial(ws.dir, NEW_PASS), 'the new one does');
  const newEnv = { SCHEDULER_GATEWAY_PASSPHRASE: NEW_PASS };
  await ws.ok(['issue', '--role', 'worker', '--name', 'after', '--out', join(ws.root, 'after')], newEnv);
  t.equal((await ws.run(['issue', '--role', 'worker', '--name', 'x', '--out', join(ws.root, 'x')])).code, 2, 'the old passphrase is refused by commands');

  const again = await ws.json<{ alreadyDone: boolean }>(['passphrase', '--new-passphrase-file', newFile]);
  t.equal(again.alreadyDone, true, 'old to new again: already done (what an operator does after a crash)');

  // The new one from the environment, the current one from SCHEDULER_GATEWAY_PASSPHRASE_FILE.
  const curFile = join(ws.root, 'cur-pass');
  writeFileSync(curFile, NEW_PASS, { mode: 0o600 });
  const third = 'lifecycle-passphrase-3';
  await ws.ok(['passphrase'], { SCHEDULER_GATEWAY_PASSPHRASE_FILE: 'cur-pass', SCHEDULER_GATEWAY_NEW_PASSPHRASE: third });
  t.ok(await loadServerMaterial(ws.dir, third));

  const env3 = { SCHEDULER_GATEWAY_PASSPHRASE: third };
  const weak = await ws.run(['passphrase'], { ...env3, SCHEDULER_GATEWAY_NEW_PASSPHRASE: 'short-pass' });
  t.match(weak.stderr, /at least 12 characters.*GW_PKI_WEAK_PASSPHRASE/);
  t.match((await ws.run(['passphrase'], { ...env3, SCHEDULER_GATEWAY_NEW_PASSPHRASE: third })).stderr, /the new passphrase is the current one/);
  t.match((await ws.run(['passphrase'], env3)).stderr, /needs the new passphrase: --new-passphrase-file FILE/);
  t.match((await ws.run(['passphrase'], { SCHEDULER_GATEWAY_PASSPHRASE: 'not-any-passphrase', SCHEDULER_GATEWAY_NEW_PASSPHRASE: 'another-passphrase' })).stderr, /GW_PKI_WRONG_PASSPHRASE/);
  const trail = ws.audit().filter((l) => l.event === 'passphrase_changed');
  t.same(trail.map((l) => l.already_done), [false, true, false]);
  const text = readFileSync(join(ws.dir, 'audit.log'), 'utf8');
  for (const p of [PASS, NEW_PASS, third]) t.notOk(text.includes(p), 'no passphrase in the audit trail');
});

t.test('every certs command reads SCHEDULER_GATEWAY_PASSPHRASE_FILE, relative to the working directory, as run does', async (t) => {
  const ws = await workspace(t);
  writeFileSync(join(ws.root, 'pass-file'), PASS + '\n', { mode: 0o600 });
  const env = { SCHEDULER_GATEWAY_PASSPHRASE_FILE: 'pass-file', SCHEDULER_GATEWAY_PASSPHRASE: 'a-wrong-value-that-loses' };
  await ws.ok(['issue', '--role', 'worker', '--name', 'wf', '--out', join(ws.root, 'wf')], env);
  await ws.ok(['renew', '--name', 'wf'], env);
  await ws.ok(['revoke', '--name', 'wf'], env);
  await ws.ok(['crl'], env);
  await ws.ok(['rotate-ca', 'begin'], env);
  const init = await runCerts(['init', '--dir', join(ws.root, 'second'), '--cluster', 'second'], { cwd: ws.root, env });
  t.equal(init.code, 0, init.stderr);
  t.ok(await loadServerMaterial(join(ws.root, 'second'), PASS), 'init encrypted with the file\'s passphrase');
});

t.test('list marks what expires within --warn-days, and CAs with less life left than a leaf gets', async (t) => {
  const ws = await workspace(t);
  await ws.ok(['issue', '--role', 'worker', '--name', 'soon', '--out', join(ws.root, 'soon'), '--days', '10']);
  await ws.ok(['issue', '--role', 'worker', '--name', 'later', '--out', join(ws.root, 'later'), '--days', '100']);
  const byName = (l: ListJson) => Object.fromEntries(l.certificates.map((c) => [c.name, c.expiring]));
  t.same(byName(await ws.json<ListJson>(['list'])), { gateway: false, soon: true, later: false }, 'default window 30 days');
  t.same(byName(await ws.json<ListJson>(['list', '--warn-days', '365'])), { gateway: true, soon: true, later: true });
  t.match((await ws.ok(['list'])).stdout, /soon\s+.*valid\s+EXPIRES in 9 days: renew/);
  t.match((await ws.run(['list', '--warn-days', 'soon'])).stderr, /invalid --days soon|GW_PKI_INVALID_DAYS/);
  const short = await workspace(t);
  await runCerts(['init', '--dir', join(short.root, 's2'), '--cluster', 's2', '--days', '200'], { cwd: short.root, env: { SCHEDULER_GATEWAY_PASSPHRASE: PASS } });
  const l = await runCerts(['list', '--dir', join(short.root, 's2')], { cwd: short.root });
  t.match(l.stdout, /ROTATE: less than 365 days left/);
});

t.test('certs crl signs the CRL again now; list flags a CRL past half its validity or expired, with the command', async (t) => {
  const ws = await workspace(t);
  await ws.ok(['issue', '--role', 'worker', '--name', 'gone', '--out', join(ws.root, 'gone')]);
  const { serial } = (await ws.json<ListJson>(['list'])).certificates.find((c) => c.name === 'gone')!;
  await ws.ok(['revoke', '--name', 'gone']);
  const crlOf = () => (ws.json<{ crl: { state: string; crlNumber?: number; nextUpdate?: string; action?: string } }>(['list'])).then((l) => l.crl);
  const action = `scheduler-gateway certs crl --dir ${ws.dir}`;
  t.match(await crlOf(), { state: 'fresh' }, 'just signed');
  t.notOk((await crlOf()).action);
  t.match((await ws.ok(['list'])).stdout, /^CRL number \d+: current until \S+$/m);

  // A quiet cluster: nothing signed it for 20, then 31 days.
  const day = 86_400_000;
  await refreshCrl(ws.dir, PASS, { force: true, now: new Date(Date.now() - 20 * day) });
  t.match(await crlOf(), { state: 'stale', action });
  t.match((await ws.ok(['list'])).stdout, new RegExp(`^CRL number \\d+: PAST HALF its validity until \\S+; sign it again: ${action}$`, 'm'));
  await refreshCrl(ws.dir, PASS, { force: true, now: new Date(Date.now() - 31 * day) });
  const expired = await crlOf();
  t.match(expired, { state: 'expired', action });
  t.match((await ws.ok(['list'])).stdout, /^CRL number \d+: EXPIRED since \S+; sign it again: /m);

  const before = pem(join(ws.dir, 'crl.pem'));
  const wrong = await ws.run(['crl'], { SCHEDULER_GATEWAY_PASSPHRASE: 'not-the-passphrase' });
  t.equal(wrong.code, 2);
  t.match(wrong.stderr, /GW_PKI_WRONG_PASSPHRASE/);
  t.equal(pem(join(ws.dir, 'crl.pem')), before, 'a refused crl changes nothing');

  const signed = await ws.json<{ crlNumber: number; thisUpdate: string; nextUpdate: string }>(['crl']);
  t.equal(signed.crlNumber, expired.crlNumber! + 1, 'the next CRL number');
  const days = (Date.parse(signed.nextUpdate) - Date.now()) / day;
  t.ok(days > 29.9 && days <= 30, `current for 30 days from now (${days.toFixed(3)})`);
  t.match(await crlOf(), { state: 'fresh', crlNumber: signed.crlNumber, nextUpdate: signed.nextUpdate });
  const text = spawnSync('openssl', ['crl', '-in', join(ws.dir, 'crl.pem'), '-CAfile', join(ws.dir, 'ca.pem'), '-noout', '-text'], { encoding: 'utf8' });
  t.equal(text.status, 0, 'openssl verifies it against the CA');
  t.match(text.stdout, new RegExp(`Serial Number: 0*${serial}`, 'i'), 'the revocation is still in it');
  t.same(JSON.parse(pem(join(ws.dir, 'revoked.json'))).crlNumber, signed.crlNumber, 'revoked.json agrees');
  t.ok(await loadServerMaterial(ws.dir, PASS), 'the gateway loads the result');
  t.match((await ws.ok(['crl'])).stdout, new RegExp(`^Signed CRL number ${signed.crlNumber + 1} to ${ws.dir}/crl.pem: current until \\S+`));
  t.match(ws.audit().filter((l) => l.event === 'crl_signed'), [{ crl_number: signed.crlNumber, next_update: signed.nextUpdate, operator: Object }, { crl_number: signed.crlNumber + 1 }]);

  rmSync(join(ws.dir, 'crl.pem'));
  t.match(await crlOf(), { state: 'unreadable', action });
  t.match((await ws.ok(['list'])).stdout, /^CRL: crl.pem is missing or unreadable; sign it again: /m);
  await ws.ok(['crl']);
  t.match(await crlOf(), { state: 'fresh' }, 'certs crl writes a missing one');
});
