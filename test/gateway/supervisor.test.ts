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
import { daskAvailable, waitFor } from '../helpers/dask.js';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

t.test('a dead embedded scheduler is restarted on the same port, logged, and the PKI is reused on the next start', { timeout: 180_000, skip: daskAvailable() ? false : 'python3-distributed missing' }, async (t) => {
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
