import t from 'tap';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCerts, fingerprint } from './cli-harness.js';

const PASS = 'cli-test-passphrase';
const ENV = { SCHEDULER_GATEWAY_PASSPHRASE: PASS };

function workspace(t: { teardown(fn: () => void): void }): string {
  const root = mkdtempSync(join(tmpdir(), 'sgw-cli-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

t.test('every subcommand documents exactly its flags under --help', async (t) => {
  const cwd = workspace(t);
  const want: Record<string, string[]> = {
    init: ['--cluster', '--host', '--days', '--key-type', '--dir', '--passphrase-file'],
    issue: ['--role', '--name', '--out', '--days', '--p12', '--p12-password-file', '--gateway-host', '--credentials-port', '--dashboard-port', '--dashboard-url', '--dir', '--passphrase-file'],
    list: ['--json', '--warn-days', '--dir'],
    revoke: ['--name', '--serial', '--reason', '--dir', '--passphrase-file'],
    renew: ['--name', '--days', '--out', '--revoke-previous', '--p12-password-file', '--json', '--dir', '--passphrase-file'],
    'rotate-ca begin': ['--days', '--json', '--dir', '--passphrase-file'],
    'rotate-ca switch': ['--days', '--json', '--dir', '--passphrase-file'],
    'rotate-ca finish': ['--force', '--json', '--dir', '--passphrase-file'],
    passphrase: ['--new-passphrase-file', '--json', '--dir', '--passphrase-file'],
    crl: ['--json', '--dir', '--passphrase-file'],
  };
  for (const [sub, flags] of Object.entries(want)) {
    const r = await runCerts([...sub.split(' '), '--help'], { cwd });
    t.equal(r.code, 0);
    const documented = [...new Set(r.stdout.match(/^\s+(--[a-z0-9-]+)/gm)!.map((s) => s.trim()))].sort();
    t.same(documented, [...flags].sort(), `${sub} --help`);
  }
  const top = await runCerts(['--help'], { cwd });
  t.match(top.stdout, /init\s+create the cluster CA/);
  t.match(top.stdout, /rotate-ca\s+replace the CA/);
  const rotate = await runCerts(['rotate-ca', '--help'], { cwd });
  t.equal(rotate.code, 0);
  t.match(rotate.stdout, /begin\s+.*\n\s+switch\s+.*\n\s+finish/);
});

t.test('init, three issues and a revoke: list shows each status, and no key material', async (t) => {
  const cwd = workspace(t);
  const dir = join(cwd, 'certs');
  const run = (argv: string[]) => runCerts(argv, { cwd, env: ENV });
  const init = await run(['init', '--dir', dir, '--cluster', 'prod-eu.1', '--host', 'gateway.example.com', '--host', '10.0.0.7']);
  t.equal(init.code, 0, init.stderr);
  t.equal(statSync(dir).mode & 0o777, 0o700, 'dir 0700');
  for (const f of ['ca-key.pem', 'gateway-key.pem']) {
    t.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} 0600`);
    t.match(readFileSync(join(dir, f), 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/, `${f} encrypted`);
  }
  const serials: Record<string, string> = {};
  for (const [role, name] of [['worker', 'worker-1'], ['client', 'alice'], ['admin', 'ops']]) {
    const r = await run(['issue', '--dir', dir, '--role', role!, '--name', name!, '--out', join(cwd, 'out', name!)]);
    t.equal(r.code, 0, r.stderr);
    serials[name!] = r.stdout.match(/serial ([0-9a-f]+)/)![1]!;
    t.equal(statSync(join(cwd, 'out', name!, `${name}-key.pem`)).mode & 0o777, 0o600);
  }
  const rev = await run(['revoke', '--dir', dir, '--name', 'worker-1', '--reason', 'keyCompromise']);
  t.equal(rev.code, 0, rev.stderr);
  t.match(rev.stdout, new RegExp(`serial ${serials['worker-1']}`));

  const list = await run(['list', '--dir', dir]);
  t.equal(list.code, 0);
  t.comment(`certs list after init + 3 issues + 1 revoke:\n${list.stdout}`);
  const [caPart, certPart] = list.stdout.trim().split('\n\n');
  t.match(caPart, /^CA\s+NOT AFTER\s+DAYS LEFT\s+ROLE\n[0-9a-f]+\s+\S+\s+\d+\s+issuing, serving the gateway$/, 'one CA, issuing and serving');
  const lines = certPart!.split('\n');
  t.match(lines[0], /^SERIAL\s+ROLE\s+NAME\s+CA\s+NOT AFTER\s+STATUS\s+NOTE$/);
  const status = Object.fromEntries(lines.slice(1).map((l) => { const c = l.split(/\s+/); return [c[2], { serial: c[0], role: c[1], status: c[5] }]; }));
  t.same(status['worker-1'], { serial: serials['worker-1'], role: 'worker', status: 'revoked' });
  t.same(status.alice, { serial: serials.alice, role: 'client', status: 'valid' });
  t.same(status.ops, { serial: serials.ops, role: 'admin', status: 'valid' });
  t.equal(status.gateway?.status, 'valid');
  t.equal(lines.length, 5);

  const json = await run(['list', '--dir', dir, '--json']);
  const parsed = JSON.parse(json.stdout) as { certificates: Array<Record<string, string>> };
  t.same(parsed.certificates.map((c) => [c.name, c.status]), [['gateway', 'valid'], ['worker-1', 'revoked'], ['alice', 'valid'], ['ops', 'valid']]);
  t.equal(parsed.certificates[1]!.reason, 'keyCompromise');
  t.equal(parsed.certificates[2]!.uri, 'spiffe://prod-eu.1/client/alice');
  for (const out of [list.stdout, json.stdout]) t.notMatch(out, /PRIVATE KEY|BEGIN/);
});

t.test('list marks certificates past their not-after as expired', async (t) => {
  const cwd = workspace(t);
  const dir = join(cwd, 'certs');
  await runCerts(['init', '--dir', dir, '--cluster', 'exp'], { cwd, env: ENV });
  await runCerts(['issue', '--dir', dir, '--role', 'worker', '--name', 'old', '--out', join(cwd, 'o')], { cwd, env: ENV });
  const idxFile = join(dir, 'index.json');
  const idx = JSON.parse(readFileSync(idxFile, 'utf8'));
  idx.certificates[1].notAfter = new Date(Date.now() - 1000).toISOString();
  writeFileSync(idxFile, JSON.stringify(idx), { mode: 0o600 });
  const list = await runCerts(['list', '--dir', dir], { cwd });
  t.match(list.stdout, /worker\s+old\s+[0-9a-f]{8}\s+\S+\s+expired/);
});

t.test('--dir defaults to certs/ in the working directory, as for run and tokens', async (t) => {
  const root = workspace(t);
  mkdirSync(join(root, '.git'));
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  const r = await runCerts(['init', '--cluster', 'dflt'], { cwd: join(root, 'a', 'b'), env: ENV });
  t.equal(r.code, 0, r.stderr);
  t.ok(existsSync(join(root, 'a', 'b', 'certs', 'state.json')), 'the working directory, not the checkout root above it');
  t.notOk(existsSync(join(root, 'certs')));
});

interface BadCase {
  what: string;
  argv: (dir: string, cwd: string) => string[];
  env?: NodeJS.ProcessEnv;
  prepare?: (dir: string, cwd: string) => void;
  error: RegExp;
}

t.test('bad input: one line naming the problem, exit 2, nothing changed on disk', async (t) => {
  const cwd = workspace(t);
  const dir = join(cwd, 'certs');
  const ok = await runCerts(['init', '--dir', dir, '--cluster', 'bad'], { cwd, env: ENV });
  t.equal(ok.code, 0, ok.stderr);
  await runCerts(['issue', '--dir', dir, '--role', 'client', '--name', 'taken', '--out', join(cwd, 'out')], { cwd, env: ENV });
  const issue = (extra: string[] = []) => (d: string, c: string) => ['issue', '--dir', d, '--role', 'worker', '--name', 'w', '--out', join(c, 'out'), ...extra];
  const cases: BadCase[] = [
    { what: 'wrong passphrase (issue)', argv: (d, c) => ['issue', '--dir', d, '--role', 'worker', '--name', 'w', '--out', join(c, 'new-out', 'w')], env: { SCHEDULER_GATEWAY_PASSPHRASE: 'wrong-wrong' }, error: /wrong passphrase for \S+ca-key\.pem \[GW_PKI_WRONG_PASSPHRASE\]/ },
    { what: 'wrong passphrase (revoke)', argv: (d) => ['revoke', '--dir', d, '--name', 'taken'], env: { SCHEDULER_GATEWAY_PASSPHRASE: 'wrong-wrong' }, error: /GW_PKI_WRONG_PASSPHRASE/ },
    { what: 'no passphrase', argv: issue(), env: {}, error: /no passphrase: set SCHEDULER_GATEWAY_PASSPHRASE/ },
    { what: 'unknown role', argv: (d, c) => ['issue', '--dir', d, '--role', 'root', '--name', 'w', '--out', join(c, 'out')], error: /unknown role 'root'.*GW_PKI_UNKNOWN_ROLE/ },
    { what: 'gateway role is not issuable', argv: (d, c) => ['issue', '--dir', d, '--role', 'gateway', '--name', 'g', '--out', join(c, 'out')], error: /GW_PKI_UNKNOWN_ROLE/ },
    { what: 'invalid name', argv: (d, c) => ['issue', '--dir', d, '--role', 'worker', '--name', '../etc', '--out', join(c, 'out')], error: /invalid name '\.\.\/etc'.*GW_PKI_INVALID_NAME/ },
    { what: 'duplicate name', argv: (d, c) => ['issue', '--dir', d, '--role', 'admin', '--name', 'taken', '--out', join(c, 'out')], error: /name 'taken' already has a valid certificate.*GW_PKI_DUPLICATE_NAME/ },
    { what: 'world-readable CA key', argv: issue(), prepare: (d) => chmodSync(join(d, 'ca-key.pem'), 0o644), error: /ca-key\.pem is readable by other users \(mode 0644\).*GW_PKI_KEY_FILE_TOO_OPEN/ },
    { what: 'corrupt CA key', argv: issue(), prepare: (d) => writeFileSync(join(d, 'ca-key.pem'), '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n', { mode: 0o600 }), error: /ca-key\.pem is not a valid encrypted private key PEM file.*GW_PKI_CORRUPT_PEM/ },
    { what: 'corrupt CA certificate', argv: issue(), prepare: (d) => writeFileSync(join(d, 'ca.pem'), 'garbage\n'), error: /ca\.pem is not a valid certificate PEM file.*GW_PKI_CORRUPT_PEM/ },
    { what: 'corrupt index', argv: issue(), prepare: (d) => writeFileSync(join(d, 'index.json'), '{"version":1,"certificates":[{"serial":', { mode: 0o600 }), error: /index\.json is corrupt.*GW_PKI_CORRUPT_STATE/ },
    { what: 'corrupt index (list)', argv: (d) => ['list', '--dir', d], prepare: (d) => writeFileSync(join(d, 'index.json'), '[]', { mode: 0o600 }), error: /index\.json is corrupt.*GW_PKI_CORRUPT_STATE/ },
    { what: 'missing directory (issue)', argv: (_d, c) => ['issue', '--dir', join(c, 'nope'), '--role', 'worker', '--name', 'w', '--out', join(c, 'out')], error: /state directory \S+nope does not exist.*GW_PKI_MISSING_DIR/ },
    { what: 'missing directory (list)', argv: (_d, c) => ['list', '--dir', join(c, 'nope')], error: /GW_PKI_MISSING_DIR/ },
    { what: 'missing directory (revoke)', argv: (_d, c) => ['revoke', '--dir', join(c, 'nope'), '--name', 'x'], error: /GW_PKI_MISSING_DIR/ },
    { what: 'not initialized', argv: (_d, c) => ['list', '--dir', join(c, 'out')], error: /is not initialized.*GW_PKI_NOT_INITIALIZED/ },
    { what: 'already initialized', argv: (d) => ['init', '--dir', d, '--cluster', 'again'], error: /already initialized for cluster bad.*GW_PKI_ALREADY_INITIALIZED/ },
    { what: 'invalid cluster id', argv: (_d, c) => ['init', '--dir', join(c, 'fresh'), '--cluster', 'Bad_Cluster!'], error: /invalid cluster id 'Bad_Cluster!'.*GW_PKI_INVALID_CLUSTER_ID/ },
    { what: 'cluster id too long', argv: (_d, c) => ['init', '--dir', join(c, 'fresh'), '--cluster', 'a'.repeat(64)], error: /GW_PKI_INVALID_CLUSTER_ID/ },
    { what: 'invalid host', argv: (_d, c) => ['init', '--dir', join(c, 'fresh'), '--cluster', 'x', '--host', 'bad host'], error: /invalid --host 'bad host'.*GW_PKI_INVALID_HOST/ },
    { what: 'invalid key type', argv: (_d, c) => ['init', '--dir', join(c, 'fresh'), '--cluster', 'x', '--key-type', 'dsa'], error: /GW_PKI_INVALID_KEY_TYPE/ },
    { what: 'invalid days', argv: issue(['--days', '0']), error: /invalid --days 0.*GW_PKI_INVALID_DAYS/ },
    { what: 'days beyond the CA', argv: issue(['--days', '9999']), error: /the CA expires in \d+ days.*GW_PKI_INVALID_DAYS/ },
    { what: 'unknown serial', argv: (d) => ['revoke', '--dir', d, '--serial', 'deadbeef'], error: /no certificate with serial deadbeef.*GW_PKI_UNKNOWN_SERIAL/ },
    { what: 'unknown name', argv: (d) => ['revoke', '--dir', d, '--name', 'nobody'], error: /no valid certificate named 'nobody'.*GW_PKI_UNKNOWN_NAME/ },
    { what: 'invalid reason', argv: (d) => ['revoke', '--dir', d, '--name', 'taken', '--reason', 'because'], error: /invalid revocation reason 'because'.*GW_PKI_INVALID_REASON/ },
    { what: 'both name and serial', argv: (d) => ['revoke', '--dir', d, '--name', 'taken', '--serial', 'ab'], error: /exactly one of --name or --serial/ },
    { what: 'unknown flag', argv: (d) => ['list', '--dir', d, '--colour'], error: /unknown option --colour/ },
    { what: 'unwritable --out', argv: (d, c) => ['issue', '--dir', d, '--role', 'worker', '--name', 'w', '--out', join(c, 'out', 'taken.pem', 'x')], error: /cannot write bundle to .*not a directory.*GW_PKI_OUTPUT_DIR/ },
    { what: 'missing --out', argv: (d) => ['issue', '--dir', d, '--role', 'worker', '--name', 'w'], error: /certs issue needs --out/ },
    { what: 'unknown subcommand', argv: () => ['renuw'], error: /unknown certs subcommand 'renuw'/ },
    { what: 'unknown rotation step', argv: () => ['rotate-ca', 'abort'], error: /unknown certs subcommand 'rotate-ca abort'/ },
  ];
  for (const c of cases) {
    const backup = new Map<string, { data: Buffer; mode: number }>();
    for (const f of ['ca-key.pem', 'ca.pem', 'index.json']) {
      backup.set(f, { data: readFileSync(join(dir, f)), mode: statSync(join(dir, f)).mode & 0o777 });
    }
    c.prepare?.(dir, cwd);
    const before = fingerprint(cwd);
    const r = await runCerts(c.argv(dir, cwd), { cwd, env: c.env ?? ENV });
    t.equal(r.code, 2, `${c.what}: exit 2`);
    t.equal(r.stdout, '', `${c.what}: nothing on stdout`);
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `${c.what}: one line`);
    t.match(r.stderr, c.error, c.what);
    t.equal(fingerprint(cwd), before, `${c.what}: nothing changed on disk`);
    for (const [f, b] of backup) {
      writeFileSync(join(dir, f), b.data);
      chmodSync(join(dir, f), b.mode);
    }
  }
  t.notOk(existsSync(join(cwd, 'fresh')), 'a refused init creates no directory');
});
