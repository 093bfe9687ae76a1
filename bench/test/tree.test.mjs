// A multi-process contender is measured whole: its cluster workers are found,
// waited for, counted in CPU and RSS, and each one runs the forced GC.
// Run: node --test bench/test/
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gcHook, withGc } from '../lib/gc.mjs';
import { cpuSeconds, freePort, processTree, rssBytes, startProcess, stopAll, threadCount, waitForPort, waitForWorkers } from '../lib/proc.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const logs = mkdtempSync(join(tmpdir(), 'bench-tree-'));
after(async () => {
  await stopAll();
  rmSync(logs, { recursive: true, force: true });
});

async function startCluster(tag, workers, burnMs, mode = '') {
  const port = await freePort();
  const hook = gcHook({ logs, tag, root }, 'cluster');
  const script = join(root, 'bench/test/fixtures/cluster.mjs');
  const proc = startProcess(`cluster-${tag}`, process.execPath, [...hook.flags, script, String(port), String(workers), String(burnMs), mode].filter(Boolean), { logDir: logs, env: hook.env });
  await waitForPort(port, { proc, timeoutMs: 20000 });
  const holders = await waitForWorkers(proc, port, workers, { timeoutMs: 20000 });
  return { inst: withGc({ port, proc }, hook.file, 3000), holders, file: hook.file };
}

test('the workers of a cluster are waited for and their CPU, RSS and threads are summed with the primary', async () => {
  const { inst, holders } = await startCluster('sum', 2, 400);
  const tree = processTree(inst.proc.pid);
  assert.equal(tree.length, 3, 'primary and two workers');
  assert.deepEqual([...holders].sort(), tree.slice(1).sort(), 'both workers hold the listening socket');
  for (const w of holders) assert.ok(cpuSeconds(w) >= 0.3, `worker ${w} burnt ~0.4 s before listening, read ${cpuSeconds(w)}`);
  const own = tree.map((p) => cpuSeconds(p));
  assert.ok(cpuSeconds(inst.proc.pid) >= own[1] + own[2], 'the tree CPU includes both workers');
  assert.ok(rssBytes(inst.proc.pid) > 2.5 * rssBytes(holders[0]), 'the tree RSS is three Node processes, not one');
  assert.ok(threadCount(inst.proc.pid) > threadCount(holders[0]) * 2, 'threads are counted over the tree');
  await inst.proc.stop();
});

test('a forced GC reaches every process of the tree, and each acknowledges it', async () => {
  const { inst, file } = await startCluster('gc', 2, 0);
  assert.equal(await inst.gc(), true);
  assert.equal(await inst.gc(), true, 'a second request waits for a second acknowledgement from each');
  const pids = readFileSync(file, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[0]));
  const tree = processTree(inst.proc.pid);
  assert.deepEqual([...new Set(pids)].sort(), [...tree].sort());
  assert.equal(pids.length, 2 * tree.length);
  await inst.proc.stop();
});

test('workers without the GC hook make the forced GC fail instead of counting the primary alone', async () => {
  const { inst, file } = await startCluster('nohook', 2, 0, 'no-hook');
  assert.equal(await inst.gc(), false);
  assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[0])), [inst.proc.pid], 'only the primary answered');
  await inst.proc.stop();
});

test('waiting for workers fails clearly when fewer listen than expected', async () => {
  const port = await freePort();
  const proc = startProcess('cluster-short', process.execPath, [join(root, 'bench/test/fixtures/cluster.mjs'), String(port), '1', '0'], { logDir: logs });
  await waitForPort(port, { proc, timeoutMs: 20000 });
  await assert.rejects(waitForWorkers(proc, port, 2, { timeoutMs: 1000 }), /1 of 2 worker processes listening/);
  await proc.stop();
});
