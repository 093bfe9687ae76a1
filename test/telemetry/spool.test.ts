import t from 'tap';
import { readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { Spool, fileName, verify } from '../../src/telemetry/spool.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { captureLogger, metricValue, tempDir } from './helpers.js';

async function open(dir: string, o: { maxBytes?: number; maxAgeMs?: number; now?: () => Date } = {}) {
  const cap = captureLogger();
  const metrics = createMetrics({ defaultMetrics: false });
  const spool = await Spool.open({ dir, maxBytes: o.maxBytes ?? 1 << 20, maxAgeMs: o.maxAgeMs ?? 30 * 86_400_000, log: cap.log, metrics, now: o.now ?? (() => new Date()) });
  return { spool, metrics, lines: cap.lines };
}

async function putBatch(spool: Spool, text: string, createdMs = Date.now()) {
  return (await spool.append(createdMs, () => Buffer.from(text)))!;
}

t.test('a batch is on disk before put resolves, readable, and gone after its ack', async (t) => {
  const dir = tempDir(t);
  const { spool, metrics } = await open(dir);
  const seq = await putBatch(spool, '{"hello":1}');
  t.ok(existsSync(join(dir, fileName(seq))));
  t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file is left');
  const rec = await spool.read(seq);
  t.equal(rec!.payload.toString(), '{"hello":1}');
  t.equal(await metricValue(metrics.spoolBatches), 1);
  t.equal(await metricValue(metrics.spoolBytes), 32 + 11);
  await spool.ack(seq);
  t.notOk(existsSync(join(dir, fileName(seq))));
  t.equal(await metricValue(metrics.spoolBatches), 0);
});

t.test('reopening after a crash restores every batch in order and numbering continues without a gap', async (t) => {
  const dir = tempDir(t);
  const a = await open(dir);
  const seqs = [await putBatch(a.spool, 'a'), await putBatch(a.spool, 'b'), await putBatch(a.spool, 'c')];
  t.same(seqs, [seqs[0], seqs[0]! + 1, seqs[0]! + 2]);
  const b = await open(dir); // no close(): the first instance simply stops existing, as with kill -9
  t.same(b.spool.entries().map((e) => e.seq), seqs);
  t.equal((await b.spool.read(seqs[1]!))!.payload.toString(), 'b');
  t.equal(await putBatch(b.spool, 'd'), seqs[2]! + 1);
});

t.test('a crash after the batch file but before the counter file never reuses the number', async (t) => {
  const dir = tempDir(t);
  const a = await open(dir);
  const first = await putBatch(a.spool, 'a');
  const second = await putBatch(a.spool, 'b');
  writeFileSync(join(dir, 'seq'), `${first}\n`); // the counter as it was before the second batch
  const b = await open(dir);
  t.equal(b.spool.peekSeq(), second + 1);
  t.equal(await putBatch(b.spool, 'c'), second + 1);
});

t.test('a fresh spool starts its counter at the clock, so even a lost spool never reuses numbers', async (t) => {
  const dir = tempDir(t);
  const { spool } = await open(dir, { now: () => new Date(1_700_000_000_000) });
  const seq = await putBatch(spool, 'x');
  t.equal(seq, 1_700_000_000_000);
  await spool.ack(seq);
  rmSync(join(dir, 'seq'));
  const later = await open(dir, { now: () => new Date(1_700_000_000_500) });
  t.equal(await putBatch(later.spool, 'y'), 1_700_000_000_500);
});

t.test('a corrupt seq file is logged and replaced from the clock and the files present', async (t) => {
  const dir = tempDir(t);
  const a = await open(dir, { now: () => new Date(1000) });
  const seq = await putBatch(a.spool, 'x');
  writeFileSync(join(dir, 'seq'), 'garbage');
  const b = await open(dir, { now: () => new Date(10) });
  t.equal(await putBatch(b.spool, 'y'), seq + 1, 'never below a batch on disk');
  t.ok(b.lines().some((l) => l['event'] === 'telemetry_spool_seq_file_corrupt'));
});

t.test('a torn write (a .tmp file left by a crash) is removed with a log line and counted', async (t) => {
  const dir = tempDir(t);
  const a = await open(dir);
  const seq = await putBatch(a.spool, 'kept');
  writeFileSync(join(dir, `${fileName(seq + 1)}.1234.tmp`), 'DGSB\x01 half a batch');
  const b = await open(dir);
  t.same(b.spool.entries().map((e) => e.seq), [seq]);
  t.same(readdirSync(dir).filter((n) => n.endsWith('.tmp')), []);
  t.ok(b.lines().some((l) => l['event'] === 'telemetry_spool_torn_write_removed' && l['level'] === 'warn'));
  t.equal(await metricValue(b.metrics.spoolRecoveredTotal, { kind: 'torn' }), 1);
});

for (const [what, damage, problem] of [
  ['truncated', (f: string) => truncateSync(f, 40), /length mismatch/],
  ['truncated inside its header', (f: string) => truncateSync(f, 10), /truncated header/],
  ['bit-flipped', (f: string) => { const b = readFileSync(f); const last = b.length - 1; b.writeUInt8(b.readUInt8(last) ^ 1, last); writeFileSync(f, b); }, /CRC32 mismatch/],
  ['overwritten', (f: string) => writeFileSync(f, 'not a spool file at all, but long enough for a header'), /bad magic/],
] as const) {
  t.test(`a ${what} batch file is detected at startup, removed with a clear log line, and counted`, async (t) => {
    const dir = tempDir(t);
    const a = await open(dir);
    const good1 = await putBatch(a.spool, 'x'.repeat(100));
    const bad = await putBatch(a.spool, 'y'.repeat(100));
    const good2 = await putBatch(a.spool, 'z'.repeat(100));
    damage(join(dir, fileName(bad)));
    const b = await open(dir);
    t.same(b.spool.entries().map((e) => e.seq), [good1, good2], 'the damaged batch is gone, the others remain');
    const line = b.lines().find((l) => l['event'] === 'telemetry_spool_corrupt_batch_removed');
    t.ok(line, 'one log line says what happened');
    t.equal(line!['seq'], bad);
    t.match(String(line!['problem']), problem);
    t.equal(await metricValue(b.metrics.spoolDroppedTotal, { reason: 'corrupt' }), 1);
    t.notOk(existsSync(join(dir, fileName(bad))));
  });
}

t.test('damage after startup is caught when the batch is read for sending', async (t) => {
  const dir = tempDir(t);
  const { spool, metrics, lines } = await open(dir);
  const seq = await putBatch(spool, 'payload');
  truncateSync(join(dir, fileName(seq)), 35);
  t.equal(await spool.read(seq), undefined, 'never sent');
  t.equal(spool.size, 0);
  t.equal(await metricValue(metrics.spoolDroppedTotal, { reason: 'corrupt' }), 1);
  t.ok(lines().some((l) => l['event'] === 'telemetry_spool_corrupt_batch_removed'));
});

t.test('at the byte cap the oldest batches are dropped, counted and logged', async (t) => {
  const dir = tempDir(t);
  const { spool, metrics, lines } = await open(dir, { maxBytes: 32 * 3 + 300 });
  const seqs: number[] = [];
  for (let i = 0; i < 5; i++) seqs.push(await putBatch(spool, String(i).repeat(100)));
  t.same(spool.entries().map((e) => e.seq), seqs.slice(2), 'the three newest remain');
  t.ok(spool.bytes <= 32 * 3 + 300);
  t.equal(await metricValue(metrics.spoolDroppedTotal, { reason: 'max_bytes' }), 2);
  const drops = lines().filter((l) => l['event'] === 'telemetry_spool_dropped');
  t.equal(drops.length, 2);
  t.equal(drops[0]!['first_seq'], seqs[0]);
  t.same(readdirSync(dir).filter((n) => n.endsWith('.batch')).length, 3, 'the files are gone from disk too');
});

t.test('a batch larger than the whole cap is refused, not stored', async (t) => {
  const dir = tempDir(t);
  const { spool, metrics } = await open(dir, { maxBytes: 100 });
  await putBatch(spool, 'x'.repeat(200));
  t.equal(spool.size, 0);
  t.equal(await metricValue(metrics.spoolDroppedTotal, { reason: 'too_large' }), 1);
});

t.test('batches older than the age cap are dropped at startup and on expire()', async (t) => {
  const dir = tempDir(t);
  let now = 100 * 86_400_000;
  const day = 86_400_000;
  const a = await open(dir, { maxAgeMs: 30 * day, now: () => new Date(now) });
  const old = await putBatch(a.spool, 'old', now - 31 * day);
  const recent = await putBatch(a.spool, 'recent', now - day);
  t.same(a.spool.entries().map((e) => e.seq), [recent], 'put drops what the age cap excludes');
  t.equal(await metricValue(a.metrics.spoolDroppedTotal, { reason: 'max_age' }), 1);
  t.notOk(existsSync(join(dir, fileName(old))));
  now += 30 * day;
  await a.spool.expire();
  t.equal(a.spool.size, 0);
  t.equal(await metricValue(a.metrics.spoolOldestAgeSeconds), 0);
});

t.test('oldest-age gauge reports the oldest unacknowledged batch', async (t) => {
  const dir = tempDir(t);
  const now = 1_000_000_000;
  const { spool, metrics } = await open(dir, { now: () => new Date(now) });
  await putBatch(spool, 'a', now - 90_000);
  await putBatch(spool, 'b', now - 10_000);
  t.equal(await metricValue(metrics.spoolOldestAgeSeconds), 90);
});

t.test('a full disk (ENOSPC) fails the put with a spool error and leaves the spool consistent', async (t) => {
  let full = false;
  const { Spool: MockedSpool } = await t.mockImport<typeof import('../../src/telemetry/spool.js')>('../../src/telemetry/spool.js', {
    'node:fs/promises': {
      ...fsp,
      open: async (...args: Parameters<typeof fsp.open>) => {
        if (full && String(args[0]).endsWith('.tmp')) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return fsp.open(...args);
      },
    },
  });
  const dir = tempDir(t);
  const cap = captureLogger();
  const spool = await MockedSpool.open({ dir, maxBytes: 1 << 20, maxAgeMs: 86_400_000, log: cap.log, metrics: createMetrics({ defaultMetrics: false }), now: () => new Date() });
  const seq = (await spool.append(Date.now(), () => Buffer.from('ok')))!;
  full = true;
  const err = await spool.append(Date.now(), () => Buffer.from('lost')).then(() => undefined, (e: unknown) => e as { code: string; message: string });
  t.equal(err?.code, 'GW_TELEMETRY_SPOOL_IO');
  t.match(err?.message, /ENOSPC/);
  t.same(spool.entries().map((e) => e.seq), [seq], 'the failed batch is not in the index');
  full = false;
  t.equal(await spool.append(Date.now(), () => Buffer.from('after')), seq + 1, 'the spool works again once there is space, with no gap');
  t.equal(spool.size, 2);
});

t.test('verify() rejects a file whose header names another seq', async (t) => {
  const dir = tempDir(t);
  const { spool } = await open(dir);
  const seq = await putBatch(spool, 'x');
  t.match(verify(readFileSync(join(dir, fileName(seq))), seq + 1), /does not match/);
});

t.test('oldest() and newest() follow appends, acks out of order, and drops', async (t) => {
  const dir = tempDir(t);
  const { spool } = await open(dir);
  const [a, b, c] = [await putBatch(spool, 'a'), await putBatch(spool, 'b'), await putBatch(spool, 'c')];
  t.same(spool.oldest(2).map((e) => e.seq), [a, b]);
  t.equal(spool.newest()?.seq, c);
  await spool.ack(c);
  t.equal(spool.newest()?.seq, b, 'acking the newest falls back to the one before');
  await spool.ack(a);
  t.same(spool.oldest(5).map((e) => e.seq), [b]);
  await spool.ack(b);
  t.equal(spool.newest(), undefined);
});
