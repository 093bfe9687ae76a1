/**
 * `scheduler-gateway run` as a user types it: --help, flag errors, the
 * README quick start (embedded development scheduler, the printed worker
 * and client commands run verbatim), SIGTERM drain and exit.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/run.js';
import { startEmbeddedScheduler } from '../../src/supervisor/embedded.js';
import { silentLogger } from '../../src/log/logger.js';
import { DASK_2022, DASK_2026, requireDask } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { makeTestCluster } from '../helpers/pki.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

function io(cwd = process.cwd()) {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = '';
  out.on('data', (d) => { stdout += d; });
  return { io: { stdout: out, stderr: err, env: {}, cwd }, text: () => stdout };
}

t.test('run --help prints every flag with its placeholder, default and environment variable', async (t) => {
  const { io: cli, text } = io();
  t.equal(await main(['--help'], cli), 0, 'exit code 0');
  for (const flag of ['--listen HOST:PORT', '--scheduler HOST:PORT|PATH', '--tls-cert FILE', '--handshake-timeout-ms MS', '--failed-handshake-rate N', '--drain-timeout-ms MS', '--idle-timeout MS']) {
    t.match(text(), flag, flag);
  }
  t.match(text(), /default: 0\.0\.0\.0:8786/, 'defaults shown');
  t.match(text(), /SCHEDULER_GATEWAY_LISTEN/, 'environment variables shown');
});

t.test('bad invocations stop with an error naming the flag', async (t) => {
  const { io: cli } = io();
  await t.rejects(main(['--tls-cert', 'x.pem'], cli), { code: 'GW_USAGE', message: /--tls-cert requires --tls-key and --tls-ca/ });
  await t.rejects(main(['--listen', 'nowhere', '--scheduler', '127.0.0.1:1'], cli), { code: 'GW_CONFIG_INVALID', message: /--listen/ });
  await t.rejects(main(['--no-such-flag'], cli), { code: 'GW_USAGE', message: /--no-such-flag/ });
  await t.rejects(main(['extra'], cli), { code: 'GW_USAGE', message: /unexpected argument 'extra'/ });
});

t.test('without Dask the embedded default says how to install it and exits 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sgw-nodask-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const err = await startEmbeddedScheduler({ dir: join(dir, 'certs'), env: {}, log: silentLogger, python: '/bin/false' }).then(() => undefined, (e) => e);
  t.match(err, { code: 'GW_SUPERVISOR_NO_DASK', exitCode: 2, message: /apt-get install python3-distributed/ });
  t.notOk(existsSync(join(dir, 'certs')), 'nothing was created');
});

t.test('development mode is explicit: without --scheduler and without --dev, run refuses and writes nothing', async (t) => {
  const cwd = mkdtempSync(join(tmpdir(), 'sgw-nodev-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  const { io: cli } = io(cwd);
  await t.rejects(main([], cli), { code: 'GW_USAGE', message: /--scheduler HOST:PORT.*or --dev/ });
  await t.rejects(main(['--dev', '--scheduler', '127.0.0.1:1'], cli), { code: 'GW_USAGE', message: /--scheduler or --dev, not both/ });
  await t.rejects(main(['--dev', '--passphrase-file', join(cwd, 'p')], cli), { code: 'GW_USAGE', message: /--passphrase-file excludes --dev/ });
  t.notOk(existsSync(join(cwd, 'certs')), 'no state directory, no certificates, no keys');
});

t.test('--dev refuses a state directory that holds a production CA: nothing is minted, no unencrypted key is written', async (t) => {
  if (!requireDask(t, DASK_2022)) return;
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const before = readdirSync(cluster.dir).sort();
  const indexBefore = readFileSync(join(cluster.dir, 'index.json'), 'utf8');
  const { io: cli } = io();
  await t.rejects(main(['--dev', '--dir', cluster.dir, '--listen', '127.0.0.1:0'], cli), { code: 'GW_SUPERVISOR_PRODUCTION_DIR', message: /production CA/ });
  t.same(readdirSync(cluster.dir).sort(), before, 'no file was added (no issued/ with unencrypted keys)');
  t.equal(readFileSync(join(cluster.dir, 'index.json'), 'utf8'), indexBefore, 'no certificate was issued');
});

t.test('the quick start: `run --dev`, then the printed worker and client commands, then SIGTERM', { timeout: 240_000 }, async (t) => {
  // As scripts/quickstart.sh: the current Dask from .venv-dask (required under CI), else Debian's.
  const dask = requireDask(t, DASK_2026) ? DASK_2026 : DASK_2022;
  if (dask === DASK_2022 && !requireDask(t, DASK_2022)) return;
  const cwd = mkdtempSync(join(tmpdir(), 'sgw-quickstart-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  // Ports 0 so parallel tests never collide, a short drain so the connected worker is cut quickly; a user types what quickstart.sh runs.
  // A passphrase left in the shell for some production directory must not be tried on the development one.
  const env = { ...process.env, SCHEDULER_GATEWAY_PASSPHRASE: 'the passphrase of some other directory' };
  const gw = spawn(process.execPath, [...process.execArgv, BIN, 'run', '--dev', '--dask-python', dask.python, '--listen', '127.0.0.1:0', '--dashboard-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0', '--drain-timeout-ms', '2000'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  gw.stdout.on('data', (d) => { stdout += d; });
  gw.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise<number | null>((r) => gw.once('exit', (code) => r(code)));
  t.teardown(() => { if (gw.exitCode === null) gw.kill('SIGKILL'); });
  await waitFor(() => /print\(c\.submit/.test(stderr), { timeoutMs: 90_000, what: `instructions on stderr; got:\n${stderr}\n${stdout}` });

  const lines = stderr.split('\n');
  const workerAt = lines.findIndex((l) => l.startsWith('Connect a worker'));
  const workerCmd = `${lines[workerAt + 1]!.replace(/\\$/, '')}${lines[workerAt + 2]}`;
  const clientAt = lines.findIndex((l) => l.startsWith('Connect a client'));
  const clientCmd = lines.slice(clientAt + 1, lines.findIndex((l, i) => i > clientAt && l.endsWith("'")) + 1).join('\n');
  t.match(workerCmd, /--tls-cert '[^']*certs\/issued\/worker-1\/worker-1\.pem'/, 'the worker command names its bundle');
  t.ok(workerCmd.includes(dask.python) && clientCmd.includes(dask.python), `the printed commands run Dask ${dask.id} (${dask.python})`);
  const dashboardPort = (await waitFor(() => /"event":"dashboard_listening".*?"address":"127\.0\.0\.1:(\d+)"/.exec(stdout), { what: 'dashboard_listening' }))[1];
  t.match(readFileSync(join(cwd, 'certs', 'issued', 'client-1', 'client-1-distributed.yaml'), 'utf8'), `link: https://{host}:${dashboardPort}/status`, 'the client bundle\'s dashboard link names the port 8787 really listens on');

  const worker = spawn('bash', ['-c', `exec ${workerCmd}`], { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let workerOut = '';
  worker.stderr.on('data', (d) => { workerOut += d; });
  t.teardown(() => { try { process.kill(-worker.pid!, 'SIGKILL'); } catch { /* gone */ } });
  await waitFor(() => /Registered to:/.test(workerOut), { timeoutMs: 60_000, what: 'worker registered' });

  const client = await new Promise<{ stdout: string; stderr: string }>((resolve) => {
    const c = spawn('bash', ['-c', clientCmd], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '';
    let e = '';
    c.stdout.on('data', (d) => { o += d; });
    c.stderr.on('data', (d) => { e += d; });
    const timer = setTimeout(() => c.kill('SIGKILL'), 90_000);
    c.once('close', () => { clearTimeout(timer); resolve({ stdout: o, stderr: e }); });
  });
  t.same(client.stdout.trim().split('\n'), [`https://127.0.0.1:${dashboardPort}/status`, '6'],
    `the printed client command shows the gateway's dashboard as client.dashboard_link, not the scheduler's, and computes (stderr: ${client.stderr.slice(-500)})`);

  const schedulerPid = Number(/"scheduler_ready".*?"pid":(\d+)/.exec(stdout)?.[1]);
  t.ok(schedulerPid > 0, 'the embedded scheduler logged its pid');
  t.ok(existsSync(join(cwd, 'certs', '.dev-passphrase')), 'the development passphrase is kept beside the keys');
  t.match(stdout, /"event":"passphrase_environment_ignored".*"variables":\["SCHEDULER_GATEWAY_PASSPHRASE"\]/, 'the passphrase in the environment was set aside, and said so');
  await waitFor(() => /"event":"connection_accepted".*"uri":"spiffe:\/\/dev\/client\/client-1"/.test(stdout), { what: 'the client connection audited' });
  t.pass('the client connection was audited with its identity');

  gw.kill('SIGHUP');
  await waitFor(() => /"event":"reload_finished","signal":"SIGHUP","ok":true/.test(stdout), { what: 'SIGHUP reload' });
  t.ok(worker.exitCode === null, 'the worker survives a SIGHUP reload');
  const termAt = Date.now();
  gw.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM drains and exits 0');
  t.ok(Date.now() - termAt < 15_000, `exited ${Date.now() - termAt} ms after SIGTERM with a worker still connected (drain deadline 2 s)`);
  t.match(stdout, /"event":"connection_closed".*"reason":"drain"/, 'the worker connection was cut by the drain, audited');
  t.match(stdout, /"event":"draining"/, 'the drain was logged');
  t.throws(() => process.kill(schedulerPid, 0), { code: 'ESRCH' }, 'the embedded scheduler was stopped with the gateway');
});
