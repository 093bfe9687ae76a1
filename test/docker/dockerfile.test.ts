/**
 * No Docker engine runs in CI, so the Dockerfile is checked by reading it and
 * by running what it runs outside Docker: every COPY source exists, the build
 * stage's command produces the entry point, the runtime packages exist in
 * Debian, and the image's ENTRYPOINT + CMD start a working gateway.
 */
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const root = join(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const jsonArray = (directive: string): string[] => {
  const m = new RegExp(`^${directive}\\s+(\\[.*\\])\\s*$`, 'm').exec(dockerfile);
  if (!m) throw new Error(`no ${directive} in JSON form`);
  return JSON.parse(m[1]!) as string[];
};

t.test('every COPY source of the build stage exists in the repository', async (t) => {
  const sources = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)\s+\S+\s*$/gm)].flatMap((m) => m[1]!.trim().split(/\s+/));
  t.ok(sources.length >= 4, `found ${sources.join(', ')}`);
  for (const s of sources) t.ok(existsSync(join(root, s)), s);
});

t.test('the build produces the entry point the image runs', async (t) => {
  const entry = jsonArray('ENTRYPOINT');
  t.equal(entry[0], '/usr/bin/tini');
  const script = entry.find((a) => a.startsWith('/app/'))!;
  t.ok(existsSync(join(root, script.replace('/app/', ''))), `${script} exists after npm run build`);
  t.ok((statSync(join(root, script.replace('/app/', ''))).mode & 0o111) !== 0, 'and is executable, so the npm bin link `npx scheduler-gateway` works');
  t.match(readFileSync(join(root, 'package.json'), 'utf8'), /"prepare": "npm run build"/, 'npm ci in the build stage compiles dist/');
});

t.test('the runtime packages exist in Debian', async (t) => {
  const line = /apt-get install -y --no-install-recommends ([^\\&\n]+)/.exec(dockerfile.slice(dockerfile.lastIndexOf('FROM ')))!;
  const pkgs = line[1]!.trim().split(/\s+/);
  t.same(pkgs.sort(), ['python3-distributed', 'python3-prometheus-client', 'tini']);
  for (const p of pkgs) {
    const r = spawnSync('apt-cache', ['show', '--no-all-versions', p], { encoding: 'utf8' });
    t.match(r.stdout, new RegExp(`^Package: ${p}$`, 'm'), `${p} is a Debian package`);
  }
});

t.test("the image's command starts a gateway with an embedded scheduler, and SIGTERM drains it", async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'sgw-docker-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const cmd = jsonArray('CMD').map((a) => (a === '/var/lib/scheduler-gateway' ? join(state, 'state') : a));
  // The image listens on 8786/8787; here port 0 keeps parallel tests apart.
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'bin.js'), ...cmd, '--listen', '127.0.0.1:0', '--dashboard-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'],
    { cwd: state, env: { ...process.env, NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const events: string[] = [];
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no gateway_started within 90 s; saw ${events.join(',')}`)), 90_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try { events.push((JSON.parse(line) as { event: string }).event); } catch { return; }
      if (events.at(-1) === 'gateway_started') { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code} before starting`)); });
  });
  await started;
  t.ok(events.includes('scheduler_ready'), 'the embedded Dask scheduler is up');
  t.ok(existsSync(join(state, 'state', 'ca.pem')), 'a development CA in the volume path');
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'drains and exits 0');
});
