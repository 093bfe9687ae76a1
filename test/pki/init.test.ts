import t from 'tap';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { initCluster } from '../../src/pki/init.js';
import { readIndex, readState } from '../../src/pki/records.js';
import { parseSubjectAltName } from '../../src/pki/peer-certificate.js';

const root = mkdtempSync(join(tmpdir(), 'sgw-init-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const PASS = 'init-test-passphrase';

t.test('init writes the documented layout with private modes and records the gateway certificate', async (t) => {
  const dir = join(root, 'layout');
  const r = await initCluster({ dir, clusterId: 'layout', passphrase: PASS });
  t.equal(statSync(dir).mode & 0o777, 0o700);
  const modes: Record<string, number> = {
    'state.json': 0o600, 'ca.pem': 0o644, 'ca-key.pem': 0o600, 'gateway.pem': 0o644, 'gateway-key.pem': 0o600,
    'index.json': 0o600, 'revoked.json': 0o600, 'crl.pem': 0o644,
  };
  for (const [f, mode] of Object.entries(modes)) t.equal(statSync(join(dir, f)).mode & 0o777, mode, f);
  t.notOk(existsSync(join(dir, '.lock')), 'lock released');
  t.notOk(existsSync(join(dir, '.dev-passphrase')), 'no development passphrase unless asked');
  t.same(readState(dir).hosts, ['localhost', '127.0.0.1', '::1'], 'default hosts');
  t.same(readIndex(dir).certificates.map((e) => [e.role, e.name, e.serial]), [['gateway', 'gateway', r.gatewaySerial]]);
  const gw = new X509Certificate(readFileSync(join(dir, 'gateway.pem')));
  t.same(parseSubjectAltName(gw.subjectAltName).map((e) => e.type + ':' + e.value),
    ['URI:spiffe://layout/gateway', 'DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1']);
  t.notMatch(readFileSync(join(dir, 'state.json'), 'utf8'), new RegExp(PASS), 'the passphrase is not stored');
});

t.test("the gateway certificate names its CRL Distribution Point on the first --host, non-critical, and localhost without --host", async (t) => {
  const textOf = (file: string): string => {
    const r = spawnSync('openssl', ['x509', '-noout', '-text', '-in', file], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    return r.stdout;
  };
  const cases: Array<[string[] | undefined, string]> = [
    [undefined, 'https://localhost:8787/gateway/crl.pem'],
    [['gw.Example.org', '10.0.0.5'], 'https://gw.example.org:8787/gateway/crl.pem'],
    [['[fd00::1]', 'gw.example.org'], 'https://[fd00::1]:8787/gateway/crl.pem'],
  ];
  for (const [i, [hosts, uri]] of cases.entries()) {
    const dir = join(root, `cdp-${i}`);
    await initCluster({ dir, clusterId: `cdp-${i}`, passphrase: PASS, ...(hosts ? { hosts } : {}) });
    const text = textOf(join(dir, 'gateway.pem'));
    t.match(text, /X509v3 CRL Distribution Points: *\n/, `${hosts?.[0] ?? 'default'}: the extension is present and not critical`);
    t.match(text, `URI:${uri}`, `${hosts?.[0] ?? 'default'}: ${uri}`);
    t.notMatch(textOf(join(dir, 'ca.pem')), /CRL Distribution Points/, 'the CA certificate itself has none');
  }
});

t.test('init into an existing certs/ directory keeps its README and tightens it to 0700', async (t) => {
  const dir = join(root, 'existing');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'README.md'), 'docs');
  await initCluster({ dir, clusterId: 'existing', passphrase: PASS });
  t.equal(statSync(dir).mode & 0o777, 0o700);
  t.equal(readFileSync(join(dir, 'README.md'), 'utf8'), 'docs');
});

t.test('two concurrent inits on one directory: one wins, the other is refused, the result is consistent', async (t) => {
  const dir = join(root, 'race');
  const results = await Promise.allSettled([
    initCluster({ dir, clusterId: 'first', passphrase: PASS }),
    initCluster({ dir, clusterId: 'second', passphrase: PASS }),
  ]);
  const won = results.filter((r) => r.status === 'fulfilled');
  const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  t.equal(won.length, 1);
  t.equal(lost.length, 1);
  t.equal((lost[0]!.reason as { code: string }).code, 'GW_PKI_ALREADY_INITIALIZED');
  const state = readState(dir);
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
  t.equal(ca.subject.split('\n')[0], `CN=${state.clusterId} cluster CA`, 'the CA on disk belongs to the recorded cluster');
});

t.test('init refuses a weak passphrase and a CA key without state, creating nothing', async (t) => {
  await t.rejects(initCluster({ dir: join(root, 'weak'), clusterId: 'w', passphrase: 'short' }), { code: 'GW_PKI_WEAK_PASSPHRASE' });
  t.notOk(existsSync(join(root, 'weak')));
  const half = join(root, 'half');
  mkdirSync(half, { mode: 0o700 });
  writeFileSync(join(half, 'ca-key.pem'), 'someone else\'s key', { mode: 0o600 });
  await t.rejects(initCluster({ dir: half, clusterId: 'h', passphrase: PASS }), { code: 'GW_PKI_ALREADY_INITIALIZED' });
  t.equal(readFileSync(join(half, 'ca-key.pem'), 'utf8'), 'someone else\'s key', 'never overwrites a key');
});
