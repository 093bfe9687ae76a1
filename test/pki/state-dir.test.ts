import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { acquireLock, withLock, writeFileAtomic } from '../../src/pki/state-dir.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgw-statedir-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('atomic writes replace the file with the exact mode and leave no temp files', async (t) => {
  const file = join(tmp, 'a.json');
  writeFileAtomic(file, 'one', 0o600);
  writeFileAtomic(file, 'two', 0o644);
  t.equal(readFileSync(file, 'utf8'), 'two');
  t.equal(statSync(file).mode & 0o777, 0o644);
  t.same(readdirSync(tmp).filter((f) => f.endsWith('.tmp')), []);
});

t.test('the lock serializes writers: critical sections never overlap', async (t) => {
  const dir = mkdtempSync(join(tmp, 'lock-'));
  let inside = 0;
  let maxInside = 0;
  const order: number[] = [];
  await Promise.all(Array.from({ length: 8 }, (_, i) => withLock(dir, async () => {
    inside++;
    maxInside = Math.max(maxInside, inside);
    await new Promise((r) => setTimeout(r, 5)); // held across turns of the event loop, so an overlap would show
    order.push(i);
    inside--;
  })));
  t.equal(maxInside, 1);
  t.equal(order.length, 8);
  t.notOk(existsSync(join(dir, '.lock')), 'released');
});

t.test('a lock left by a dead process is broken', async (t) => {
  const dir = mkdtempSync(join(tmp, 'stale-'));
  // A pid that surely is not running: spawn a process and wait for it to exit.
  const child = spawn(process.execPath, ['-e', '0']);
  const deadPid = child.pid!;
  await new Promise((r) => child.once('exit', r));
  writeFileSync(join(dir, '.lock'), JSON.stringify({ pid: deadPid, host: hostname(), createdAt: Date.now(), nonce: 'dead' }));
  const release = await acquireLock(dir, { timeoutMs: 5000 });
  t.match(JSON.parse(readFileSync(join(dir, '.lock'), 'utf8')), { pid: process.pid });
  release();
  t.notOk(existsSync(join(dir, '.lock')));
});

t.test('a lock held by a live process times out with an error naming the holder', async (t) => {
  const dir = mkdtempSync(join(tmp, 'live-'));
  const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
  t.teardown(() => { holder.kill('SIGKILL'); });
  writeFileSync(join(dir, '.lock'), JSON.stringify({ pid: holder.pid, host: hostname(), createdAt: Date.now(), nonce: 'live' }));
  await t.rejects(acquireLock(dir, { timeoutMs: 300 }), { code: 'GW_PKI_LOCK_TIMEOUT', message: new RegExp(`held by pid ${holder.pid}`) });
  t.ok(existsSync(join(dir, '.lock')), 'a live holder keeps its lock');
});

t.test('a lock older than the stale age is broken even if its pid is alive', async (t) => {
  const dir = mkdtempSync(join(tmp, 'old-'));
  writeFileSync(join(dir, '.lock'), JSON.stringify({ pid: process.ppid, host: hostname(), createdAt: Date.now() - 60_000, nonce: 'old' }));
  const release = await acquireLock(dir, { timeoutMs: 2000, staleMs: 10_000 });
  release();
  t.notOk(existsSync(join(dir, '.lock')));
});

t.test('commitFiles: several files change at one instant, and an interrupted commit is finished by the next lock holder', async (t) => {
  const { commitFiles, statePath } = await import('../../src/pki/state-dir.js');
  const { setCrashProbe } = await import('../../src/pki/crash-points.js');
  t.teardown(() => setCrashProbe(undefined));
  const dir = mkdtempSync(join(tmp, 'commit-'));
  const write = (gen: string) => [
    { file: 'gatewayCert' as const, data: `cert-${gen}`, mode: 0o644 },
    { file: 'gatewayKey' as const, data: `key-${gen}` },
    { file: 'index' as const, data: `index-${gen}` },
  ];
  const snapshot = () => withLock(dir, () => ['gatewayCert', 'gatewayKey', 'index'].map((f) => readFileSync(statePath(dir, f as 'index'), 'utf8')));
  await withLock(dir, () => commitFiles(dir, write('1')));
  t.same(await snapshot(), ['cert-1', 'key-1', 'index-1']);
  t.equal(statSync(statePath(dir, 'gatewayCert')).mode & 0o777, 0o644);
  t.equal(statSync(statePath(dir, 'gatewayKey')).mode & 0o777, 0o600);

  const points = ['commit:staged', 'commit:journaled', 'commit:applied:gateway.pem', 'commit:applied:gateway-key.pem', 'commit:applied:index.json'];
  let gen = 1;
  for (const point of points) {
    gen++;
    setCrashProbe((p) => { if (p === point) throw new Error(`crash at ${p}`); });
    await t.rejects(withLock(dir, () => commitFiles(dir, write(String(gen)))), { message: `crash at ${point}` });
    setCrashProbe(undefined);
    const seen = await snapshot();
    // Before the journal the old state stands; from the journal on, the new one, all of it.
    const want = point === 'commit:staged' ? String(gen - 1) : String(gen);
    t.same(seen, [`cert-${want}`, `key-${want}`, `index-${want}`], `interrupted at ${point}: generation ${want} throughout`);
    if (point === 'commit:staged') gen--; // that generation never happened
    t.notOk(existsSync(statePath(dir, 'journal')), 'no journal left once a lock holder has looked');
  }
  await withLock(dir, () => commitFiles(dir, write('final')));
  t.same(readdirSync(dir).filter((f) => f.endsWith('.pending') || f.endsWith('.tmp')), [], 'staged files of the abandoned commit are swept');
  await withLock(dir, () => commitFiles(dir, [{ file: 'index' }]));
  t.notOk(existsSync(statePath(dir, 'index')), 'a change without data removes the file');
});
