import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildCli } from './cli-build.js';
import { readIndex, readRevocationList } from '../../src/pki/records.js';

const PASS = 'concurrency-passphrase';
const bin = buildCli(t);
const root = mkdtempSync(join(tmpdir(), 'sgw-conc-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const dir = join(root, 'certs');
const env = { ...process.env, SCHEDULER_GATEWAY_PASSPHRASE: PASS };

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, 'certs', ...args], { env, cwd: root });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    p.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 240_000);
    p.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

t.test('the real binary exits 2 with one line on a bad command', async (t) => {
  const r = spawnSync(process.execPath, [bin, 'certs', 'list', '--dir', join(root, 'missing')], { encoding: 'utf8', env, timeout: 60_000 });
  t.equal(r.status, 2);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^scheduler-gateway certs: state directory \S+missing does not exist \(run certs init first\) \[GW_PKI_MISSING_DIR\]\n$/);
});

t.test('20 concurrent issue processes get 20 distinct serials and leave the index complete', async (t) => {
  const init = await run(['init', '--dir', dir, '--cluster', 'conc']);
  t.equal(init.code, 0, init.stderr);
  const N = 20;
  const results = await Promise.all(Array.from({ length: N }, (_, i) =>
    run(['issue', '--dir', dir, '--role', i % 2 ? 'worker' : 'client', '--name', `n${i}`, '--out', join(root, 'out', `n${i}`)])));
  results.forEach((r, i) => t.equal(r.code, 0, `issue n${i}: ${r.stderr}`));
  const printed = results.map((r) => r.stdout.match(/serial ([0-9a-f]+)/)?.[1]);
  t.equal(new Set(printed).size, N, '20 distinct serials printed');
  const idx = readIndex(dir); // throws if index.json is not valid
  const leaves = idx.certificates.filter((e) => e.role !== 'gateway');
  t.equal(leaves.length, N, 'every issue recorded');
  t.same(new Set(leaves.map((e) => e.serial)), new Set(printed), 'the index holds exactly the printed serials');
  t.same(leaves.map((e) => e.name).sort(), Array.from({ length: N }, (_, i) => `n${i}`).sort());

  // A concurrent revoke storm keeps revoked.json and the CRL number consistent too.
  const revs = await Promise.all(['n0', 'n1', 'n2', 'n3', 'n4'].map((n) => run(['revoke', '--dir', dir, '--name', n])));
  revs.forEach((r) => t.equal(r.code, 0, r.stderr));
  const list = readRevocationList(dir);
  t.equal(list.revoked.length, 5);
  t.equal(list.crlNumber, 6, 'one CRL number per revocation');
});
