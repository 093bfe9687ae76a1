import t from 'tap';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { captureLogger, makeContext, metricValue, telemetryConfig, tempDir, testReceiver, storedSeqs } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

t.test('a full disk loses the batches it cannot write, counts and logs them, and the gateway goes on', async (t) => {
  let full = false;
  // The real spool over an fs whose open() fails with ENOSPC on demand, inside the real component.
  const spool = await t.mockImport<typeof import('../../src/telemetry/spool.js')>('../../src/telemetry/spool.js', {
    'node:fs/promises': {
      ...fsp,
      open: async (...args: Parameters<typeof fsp.open>) => {
        if (full && String(args[0]).endsWith('.tmp')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return fsp.open(...args);
      },
    },
  });
  const { startTelemetry } = await t.mockImport<typeof import('../../src/telemetry/telemetry.js')>('../../src/telemetry/telemetry.js', {
    '../../src/telemetry/spool.js': spool,
  });
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const cap = captureLogger();
  const ctx = makeContext({ clusterId: 'disk-full', log: cap.log, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll('disk-full'), spoolDir: join(dir, 'spool') }) });
  const tel = await startTelemetry(ctx, ctx.telemetry, { backoff: { baseMs: 50, capMs: 300 } });
  t.teardown(() => tel.close());
  await waitFor(() => storedSeqs(rx.db, 'disk-full').length >= 1, { what: 'a first batch stored' });
  full = true;
  await waitFor(async () => (await metricValue(ctx.metrics.spoolDroppedTotal, { reason: 'write_failed' })) >= 3, { what: 'three failed writes' });
  t.ok(cap.lines().some((l) => l['event'] === 'telemetry_batch_failed' && l['level'] === 'error' && /ENOSPC/.test(String(l['problem']))), 'logged with the cause');
  full = false;
  const before = storedSeqs(rx.db, 'disk-full').length;
  await waitFor(() => storedSeqs(rx.db, 'disk-full').length >= before + 2, { what: 'batches flow again once there is space' });
  const seqs = storedSeqs(rx.db, 'disk-full');
  t.same(seqs, seqs.map((_, i) => seqs[0]! + i), 'no gap: a batch that could not be written was never numbered');
});
