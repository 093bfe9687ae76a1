/**
 * No Docker engine runs in CI, so the Dockerfile is checked by reading it and
 * by running what it runs outside Docker: every COPY source exists, the build
 * stage's command produces the entry point, the runtime packages exist in
 * Debian, the image's ENTRYPOINT + CMD refuse to start without a scheduler
 * (writing nothing) and serve a production state directory without minting
 * anything, and the development mode its comment documents works.
 */
import t, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeTestCluster } from '../helpers/pki.js';
import { requireDask, startScheduler } from '../helpers/dask.js';

const root = join(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
const VOLUME = '/var/lib/scheduler-gateway';
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

/** ENTRYPOINT's node script with these arguments, as the image runs it, with the volume path mapped into `state`. */
function runImage(t: Test, args: string[], state: string, env: NodeJS.ProcessEnv = {}, cwd = state): { child: ChildProcess; events: string[]; started: Promise<void>; stderr: () => string } {
  const mapped = args.map((a) => (a === VOLUME ? state : a));
  // The image listens on 8786/8787; here port 0 keeps parallel tests apart.
  const child = spawn(process.execPath, [join(root, 'dist', 'cli', 'bin.js'), ...mapped, '--listen', '127.0.0.1:0', '--dashboard-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'],
    { cwd, env: { ...process.env, NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  const events: string[] = [];
  const started = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no gateway_started within 90 s; saw ${events.join(',')}`)), 90_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try { events.push((JSON.parse(line) as { event: string }).event); } catch { return; }
      if (events.at(-1) === 'gateway_started') { clearTimeout(timer); resolve(); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`exited ${code} before starting: ${stderr}`)); });
  });
  started.catch(() => {});
  return { child, events, started, stderr: () => stderr };
}

async function sigterm(child: ChildProcess): Promise<number | null> {
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

t.test("the image's default command is safe: with no scheduler configured it exits with a message and writes nothing", async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'sgw-docker-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const volume = join(state, 'volume');
  mkdirSync(volume, { mode: 0o700 });
  const { child, stderr } = runImage(t, jsonArray('CMD'), volume);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.equal(code, 2, 'exits 2 (usage)');
  t.match(stderr(), /--scheduler HOST:PORT.*or --dev/, 'the message says what is missing and how to get development mode');
  t.same(readdirSync(volume), [], 'no CA, no certificate, no key was written to the volume');
});

t.test("the image's default command serves a production state directory and mints nothing", async (t) => {
  if (!requireDask(t)) return;
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: { ca: sched.caPath, cert: sched.certPath, key: sched.keyPath }, t });
  const index = readFileSync(join(cluster.dir, 'index.json'), 'utf8');
  const { child, events, started } = runImage(t, jsonArray('CMD').map((a) => (a === VOLUME ? cluster.dir : a)), cluster.dir,
    { SCHEDULER_GATEWAY_SCHEDULER: `127.0.0.1:${scheduler.port}`, SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase });
  await started;
  t.notOk(events.includes('scheduler_ready'), 'no embedded scheduler');
  t.notOk(events.includes('development_bundle_issued'), 'no development certificate');
  t.notOk(existsSync(join(cluster.dir, 'issued')), 'no issued/ with unencrypted keys');
  t.notOk(existsSync(join(cluster.dir, '.dev-passphrase')), 'no passphrase beside the keys');
  t.equal(readFileSync(join(cluster.dir, 'index.json'), 'utf8'), index, 'no certificate issued');
  t.equal(await sigterm(child), 0, 'SIGTERM drains and exits 0');
});

t.test('the development mode the Dockerfile documents starts an embedded scheduler, and SIGTERM drains it', async (t) => {
  const state = mkdtempSync(join(tmpdir(), 'sgw-docker-'));
  t.teardown(() => rmSync(state, { recursive: true, force: true }));
  const documented = /^#\s+docker run IMAGE (run --dev .*)$/m.exec(dockerfile);
  t.ok(documented, 'the Dockerfile says how to get development mode');
  const { child, events, started } = runImage(t, documented![1]!.trim().split(/\s+/), join(state, 'state'), {}, state);
  await started;
  t.ok(events.includes('scheduler_ready'), 'the embedded Dask scheduler is up');
  t.ok(existsSync(join(state, 'state', 'ca.pem')), 'a development CA in the volume path');
  t.equal(await sigterm(child), 0, 'drains and exits 0');
});
