// Statistics over runs, run order, suite check, CPU shares and memory figures: pure functions.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memoryFigures } from '../lib/axes.mjs';
import { cpuShares } from '../lib/proc.mjs';
import { median, parameterCheck, rotation, spread, suiteCheck, summarizeRuns } from '../lib/stats.mjs';

test('median of odd and even counts ignores missing values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([null, 5, undefined, NaN]), 5);
  assert.equal(median([]), null);
});

test('spread gives median, min, max and how many runs had the key', () => {
  assert.deepEqual(spread([{ x: 3 }, { x: 9 }, { x: 1 }, { y: 2 }], 'x'), { median: 3, min: 1, max: 9, n: 3 });
});

test('summarizeRuns takes medians over successful runs and keeps the failures', () => {
  const s = summarizeRuns([
    { run: 1, mb_per_s: 100, cipher: 'TLS_AES_128_GCM_SHA256' },
    { run: 2, error: 'boom' },
    { run: 3, mb_per_s: 300, cipher: 'TLS_AES_128_GCM_SHA256' },
  ]);
  assert.equal(s.mb_per_s, 200);
  assert.deepEqual(s.spread.mb_per_s, { median: 200, min: 100, max: 300, n: 2 });
  assert.deepEqual(s.errors, ['boom']);
  assert.equal(s.n, 2);
  assert.deepEqual(s.ciphers, ['TLS_AES_128_GCM_SHA256']);
  assert.equal(s.runs.length, 3, 'every run stays in the JSON');
});

test('summarizeRuns with every run failed is an error', () => {
  const s = summarizeRuns([{ error: 'a' }, { error: 'b' }]);
  assert.equal(s.error, 'a');
  assert.equal(s.mb_per_s, undefined);
});

test('rotation puts a different contender first in each run and keeps them all', () => {
  const list = ['a', 'b', 'c'];
  assert.deepEqual(rotation(list, 0), ['a', 'b', 'c']);
  assert.deepEqual(rotation(list, 1), ['b', 'c', 'a']);
  assert.deepEqual(rotation(list, 2), ['c', 'a', 'b']);
  assert.deepEqual(rotation(list, 3), ['a', 'b', 'c']);
  assert.deepEqual(rotation([], 2), []);
});

test('suiteCheck flags contenders that negotiated different suites', () => {
  const same = suiteCheck({ bulk: { haproxy: { ciphers: ['X'] }, gateway: { ciphers: ['X'] } }, dask: { gateway: {} } });
  assert.equal(same.mixed, false);
  assert.deepEqual(same.suites, ['X']);
  const mixed = suiteCheck({ bulk: { haproxy: { ciphers: ['Y'] } }, handshake: { gateway: { ciphers: ['X'] } } });
  assert.equal(mixed.mixed, true);
  assert.deepEqual(mixed.per, { haproxy: ['Y'], gateway: ['X'] });
});

test('CPU shares divide by cores times wall time; the rest of the busy time is "other"', () => {
  const s = cpuShares({ wall: 10, cores: 2, contender: 8, backend: 2, loadgen: 4, machine: 18 });
  assert.equal(s.contender_share, 0.4);
  assert.equal(s.backend_share, 0.1);
  assert.equal(s.loadgen_share, 0.2);
  assert.equal(s.other_share, 0.2);
  assert.ok(Math.abs(s.idle_share - 0.1) < 1e-12);
  assert.deepEqual(cpuShares({ wall: 0, cores: 2, contender: 1, backend: 0, loadgen: 0, machine: 1 }), {});
});

test('memory figures: growth per held connection, settled and after GC, from their own baselines', () => {
  const KiB = 1024;
  const base = { rss: 100 * KiB * KiB, rss_gc: 90 * KiB * KiB };
  const steps = [
    { target: 2000, held: 2000, failed: 0, rss: base.rss + 2000 * 50 * KiB, rss_gc: base.rss_gc + 2000 * 40 * KiB },
    { target: 9850, held: 9850, failed: 0, rss: base.rss + 9850 * 45 * KiB, rss_gc: null },
  ];
  const m = memoryFigures(base, steps, true);
  assert.equal(m.first_kib_per_conn, 50);
  assert.equal(m.first_kib_per_conn_gc, 40);
  assert.equal(m.last_kib_per_conn, 45);
  assert.equal(m.last_kib_per_conn_gc, null, 'no GC figure without a GC hook');
  assert.equal(m.first_held, 2000);
  assert.ok(Math.abs(m.rss_at_10k_mib - (100 + (45 * 10000) / 1024)) < 1e-9);
  assert.equal(memoryFigures(base, steps, false).first_kib_per_conn, null, 'no process, no figure');
  const one = memoryFigures(base, steps.slice(0, 1), true);
  assert.equal(one.first_kib_per_conn, 50);
  assert.equal(one.last_kib_per_conn, null, 'a run that held only the first step has no last-step figure');
  assert.equal(one.rss_at_10k_mib, null);
});

test('a heap diff gives the growth per held connection by constructor', async () => {
  const { diffHeap } = await import('../lib/heapsnapshot.mjs');
  const snap = (nodes) => ({
    snapshot: { meta: { node_fields: ['type', 'name', 'id', 'self_size', 'edge_count'], node_types: [['hidden', 'object', 'string']] } },
    strings: ['TLSSocket', 'Timeout', 'x'],
    nodes: nodes.flatMap(([type, name, size]) => [type, name, 0, size, 0]),
  });
  const before = snap([[1, 0, 400], [2, 2, 50]]);
  const after = snap([[1, 0, 400], [1, 0, 400], [1, 0, 400], [1, 1, 120], [1, 1, 120], [2, 2, 50]]);
  const d = diffHeap(before, after, 2);
  assert.equal(d.per_conn_kib, (800 + 240) / 2 / 1024);
  assert.deepEqual(d.top.map((r) => [r.name, r.per_conn, r.per_conn_bytes]).slice(0, 2), [['TLSSocket', 1, 400], ['Timeout', 1, 120]]);
});

test('parameterCheck names the axes where TLS contenders got different load', () => {
  const run = (params, cipher = 'X') => ({ runs: [{ params, cipher }] });
  assert.deepEqual(parameterCheck({ bulk: { a: run('bulk --bytes 1'), b: run('bulk --bytes 1'), direct: run('bulk', 'none') } }), {});
  assert.deepEqual(parameterCheck({ bulk: { a: run('bulk --bytes 1'), b: run('bulk --bytes 2') } }), { bulk: ['bulk --bytes 1', 'bulk --bytes 2'] });
});
