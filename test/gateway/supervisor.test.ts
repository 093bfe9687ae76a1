/**
 * The embedded development scheduler: a development PKI is created once and
 * reused, and a scheduler that dies is restarted on the same port.
 */
import t from 'tap';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { startEmbeddedScheduler } from '../../src/supervisor/embedded.js';
import { readState } from '../../src/pki/records.js';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { DASK_2026, requireDask } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { SupervisedScheduler } from '../../src/supervisor/scheduler-process.js';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

t.test('a dead embedded scheduler is restarted on the same port, logged, and the PKI is reused on the next start', { timeout: 180_000 }, async (t) => {
  if (!requireDask(t)) return;
  const root = mkdtempSync(join(tmpdir(), 'sgw-supervisor-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'certs');
  const events: string[] = [];
  const log: Logger = { ...silentLogger, info: (e) => events.push(e), warn: (e) => events.push(e), error: (e) => events.push(e), child: () => log };

  const first = await startEmbeddedScheduler({ dir, env: {}, log });
  t.teardown(() => first.stop());
  t.equal(readState(dir).devPassphrase, true, 'state.json marks the development passphrase');
  t.ok(first.bundles.created, 'a development PKI was created');
  const port = first.scheduler.port!;
  const pid = first.process.pid!;
  process.kill(-pid, 'SIGKILL');
  await waitFor(() => events.includes('scheduler_exited'), { what: 'exit logged' });
  await waitFor(() => first.process.pid !== undefined && first.process.pid !== pid, { timeoutMs: 30_000, what: 'restart' });
  await waitFor(() => portOpen(port), { timeoutMs: 60_000, what: 'restarted scheduler listening on the same port' });
  t.equal(first.process.restarts, 1, 'restarted once');
  const certBefore = readFileSync(first.bundles.worker.certPath, 'utf8');
  await first.stop();
  t.equal(await portOpen(port), false, 'stop() leaves nothing listening');

  const second = await startEmbeddedScheduler({ dir, env: {}, log });
  t.teardown(() => second.stop());
  t.notOk(second.bundles.created, 'the existing PKI is reused');
  t.equal(readFileSync(second.bundles.worker.certPath, 'utf8'), certBefore, 'and so are the issued bundles');
  await second.stop();
});

t.test('--dask-python: the scheduler runs under that interpreter and the printed commands name it', { timeout: 180_000 }, async (t) => {
  if (!requireDask(t, DASK_2026)) return;
  const root = mkdtempSync(join(tmpdir(), 'sgw-supervisor-py-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const s = await startEmbeddedScheduler({ dir: join(root, 'certs'), env: {}, log: silentLogger, python: DASK_2026.python });
  t.teardown(() => s.stop());
  const cmdline = readFileSync(`/proc/${s.process.pid}/cmdline`, 'utf8').split('\0');
  t.ok(cmdline.includes('distributed.cli.dask_scheduler'), 'the child is a dask scheduler');
  // The launcher execs sys.executable: the venv's own path, which /usr/bin/python3 would not report.
  t.equal(cmdline[0], DASK_2026.python, 'run by the --dask-python interpreter');
  const text = s.instructions('127.0.0.1', 8786);
  t.match(text, `${DASK_2026.python} -m distributed.cli.dask_worker`, 'the worker command uses it');
  t.match(text, `${DASK_2026.python} -c 'from distributed import Client`, 'so does the client command');
  t.notMatch(text, 'distributed.dashboard.link', 'no dashboard served, no dashboard link in the client command');
  t.notMatch(text, 'tokens create', 'and no token to open it with');
  const served = s.instructions('127.0.0.1', 8786, 9443);
  t.match(served, '\nimport dask; dask.config.set({"distributed.dashboard.link": "https://{host}:9443/status"})\n', 'the client command points client.dashboard_link at the dashboard port');
  t.match(served, '\nprint(c.dashboard_link)\n', 'and shows it');
  await s.stop();
});

t.test('a scheduler child that cannot even be spawned is logged and retried, never an uncaught exception', async (t) => {
  const events: Array<[string, Record<string, unknown> | undefined]> = [];
  const log: Logger = { ...silentLogger, error: (e, f) => events.push([e, f]), child: () => log };
  const p = new SupervisedScheduler({ port: 1, dashboardPort: 2, tls: { ca: 'x', cert: 'x', key: 'x' }, log, python: '/nonexistent/python3' });
  await t.rejects(p.start(2_500), { code: 'GW_SUPERVISOR_START_FAILED' }, 'start gives up at its deadline');
  await p.stop();
  const exits = events.filter(([e]) => e === 'scheduler_exited');
  t.ok(exits.length >= 1, `each failed spawn is logged (${exits.length})`);
  t.equal(exits[0]![1]!.spawn_error, 'ENOENT', 'with the spawn error');
});
