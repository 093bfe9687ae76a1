import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main as tokensMain } from '../../src/cli/tokens.js';
import { runCli } from '../helpers/cli.js';
import { runCerts } from '../pki/cli-harness.js';

const PASS = 'correct horse battery staple audit';

function lines(dir: string): Array<Record<string, unknown>> {
  return readFileSync(join(dir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('certs init/issue/revoke and tokens create/revoke each append one synced line; list appends none; no secret is in the file', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sgw-audit-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'state');
  const env = { SCHEDULER_GATEWAY_PASSPHRASE: PASS, SUDO_USER: 'alice' };
  const ok = async (p: Promise<{ code: number; stderr: string; stdout: string }>) => { const r = await p; t.equal(r.code, 0, r.stderr); return r; };
  await ok(runCerts(['init', '--dir', dir, '--cluster', 'audit-1'], { env, cwd: root }));
  const issued = await ok(runCerts(['issue', '--dir', dir, '--role', 'client', '--name', 'bob', '--out', join(root, 'bob'), '--p12'], { env, cwd: root }));
  await ok(runCerts(['list', '--dir', dir], { env, cwd: root }));
  await ok(runCerts(['revoke', '--dir', dir, '--name', 'bob', '--reason', 'keyCompromise'], { env, cwd: root }));
  const created = await ok(runCli('tokens', tokensMain, ['create', '--name', 'carol@example.com', '--expires-days', '7', '--dir', dir], { env, cwd: root }));
  await ok(runCli('tokens', tokensMain, ['list', '--dir', dir], { env, cwd: root }));
  await ok(runCli('tokens', tokensMain, ['revoke', 'carol@example.com', '--dir', dir], { env, cwd: root }));

  const l = lines(dir);
  t.same(l.map((x) => x.event), ['cluster_initialized', 'certificate_issued', 'certificate_revoked', 'token_created', 'token_revoked']);
  t.ok(l.every((x) => x.level === 'audit' && typeof x.time === 'string'), 'audit level, timestamped');
  const serial = /serial ([0-9a-f]+)/.exec(issued.stdout)![1];
  t.match(l[1], { serial, role: 'client', name: 'bob', uri: 'spiffe://audit-1/client/bob', p12: true });
  t.match(l[2], { serial, name: 'bob', reason: 'keyCompromise', crl_number: Number });
  t.match(l[3], { name: 'carol@example.com', scope: 'view', token_id: String });
  t.match(l[0]!.operator, { sudo_user: 'alice', uid: Number, user: String, host: String }, 'who ran it, as the OS knows them');
  t.equal(statSync(join(dir, 'audit.log')).mode & 0o777, 0o600, 'readable by the owner only');

  const text = readFileSync(join(dir, 'audit.log'), 'utf8');
  const token = /(dgw_[A-Za-z0-9_-]+)/.exec(created.stdout)![1]!;
  const p12Password = /PKCS#12 password \(shown only now\): (\S+)/.exec(issued.stdout)![1]!;
  for (const [what, secret] of [['token', token], ['passphrase', PASS], ['PKCS#12 password', p12Password]] as const) t.notOk(text.includes(secret), `the ${what} is not in the trail`);
});

t.test('an unwritable trail: the change stands, is reported, and the command exits 4 with GW_AUDIT_TRAIL_FAILED', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sgw-audit-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'state');
  const env = { SCHEDULER_GATEWAY_PASSPHRASE: PASS };
  t.equal((await runCerts(['init', '--dir', dir, '--cluster', 'audit-2'], { env, cwd: root })).code, 0);
  rmSync(join(dir, 'audit.log'));
  mkdirSync(join(dir, 'audit.log')); // a directory where the file should be: open(…, 'a') fails with EISDIR even for root
  const r = await runCerts(['issue', '--dir', dir, '--role', 'worker', '--name', 'w1', '--out', join(root, 'w1')], { env, cwd: root });
  t.equal(r.code, 4, 'its own exit code');
  t.match(r.stdout, /Issued spiffe:\/\/audit-2\/worker\/w1 serial/, 'the issuance itself was reported');
  t.match(r.stderr, /the change was made, but it could not be recorded in .*audit\.log: EISDIR.*GW_AUDIT_TRAIL_FAILED/);
  const list = await runCerts(['list', '--dir', dir, '--json'], { env, cwd: root });
  t.ok((JSON.parse(list.stdout) as { certificates: Array<{ name: string }> }).certificates.some((c) => c.name === 'w1'), 'the certificate exists');
});
