import t from 'tap';
import { spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { connectionCap, DESCRIPTOR_RESERVE, openFilesLimit } from '../../src/gateway/descriptor-budget.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { startEcho } from '../hardening/harness.js';
import { waitFor } from '../helpers/dask.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 20000                files
Max locked memory         8388608              8388608              bytes
`;

t.test('the soft open-files limit is read from /proc/self/limits text; unlimited or garbage means unknown', async (t) => {
  t.equal(openFilesLimit(LIMITS), 1024);
  t.equal(openFilesLimit(LIMITS.replace('1024   ', 'unlimited')), undefined);
  t.equal(openFilesLimit('Max open files  -5  10 files'), undefined);
  t.equal(openFilesLimit('no such line'), undefined);
});

t.test('the cap is the configured one unless two descriptors per connection plus the reserve do not fit', async (t) => {
  t.equal(connectionCap(4096, undefined), 4096, 'unknown limit: configured cap stands');
  t.equal(connectionCap(4096, 1_048_576), 4096);
  t.equal(connectionCap(10_000, 20_000), (20_000 - DESCRIPTOR_RESERVE) / 2, 'this machine: 9,872');
  t.equal(connectionCap(4096, 100), 1, 'never below one');
});

t.test('the real limit of a process started under prlimit is what is read', async (t) => {
  const mod = new URL('../../src/gateway/descriptor-budget.ts', import.meta.url).href;
  const script = `import { readOpenFilesLimit } from ${JSON.stringify(mod)}; console.log(readOpenFilesLimit());`;
  const p = spawnSync('prlimit', ['--nofile=600:600', '--', process.execPath, ...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(p.status, 0, p.stderr.slice(-500));
  t.equal(p.stdout.trim(), '600');
});

let cluster: TestCluster;
t.before(async () => { cluster = await makeTestCluster(); });
t.teardown(() => cluster?.cleanup());

t.test('a --max-connections the open-files limit cannot back is lowered at start, logged, exported, and the excess refused cleanly', async (t) => {
  const echo = await startEcho(t);
  const g = await startTestGateway({
    cluster, scheduler: `127.0.0.1:${echo.port}`, t,
    flags: { 'max-connections': '4096', 'handshake-timeout-ms': '30000' },
    openFilesLimit: () => DESCRIPTOR_RESERVE + 10,
  });
  const warn = g.lines.find((l) => l.event === 'max_connections_lowered');
  t.match(warn, { level: 'warn', key: 'terminator.max-connections', configured: 4096, effective: 5, open_files_limit: DESCRIPTOR_RESERVE + 10 }, 'one warning names the key and both numbers');
  const gauge = await g.gw.context.metrics.connectionLimit.get();
  t.same(gauge.values.map((v) => [v.labels.port, v.value]), [['8786', 5]], 'the cap in force is exported');

  const sockets: Socket[] = [];
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  const closed = new Set<number>();
  for (let i = 0; i < 7; i++) {
    const s = connect(g.port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => closed.add(i));
    sockets.push(s);
    await new Promise((r) => s.once('connect', r));
    await new Promise((r) => setTimeout(r, 20)); // accepted in order
  }
  await waitFor(() => (g.audits('connection_refused').filter((l) => l.reason === 'too_many_connections').length >= 2 ? true : undefined), { timeoutMs: 10_000, what: 'two refusals' });
  await waitFor(() => (closed.has(5) && closed.has(6) ? true : undefined), { timeoutMs: 10_000, what: 'excess sockets closed' });
  t.same([...closed].sort(), [5, 6], 'the two beyond the cap were closed; the five within it are still open');
  t.equal(g.audits('connection_refused').filter((l) => l.reason === 'too_many_connections').length, 2, 'each refusal audited');
});

t.test('with a limit that backs the cap, nothing is lowered', async (t) => {
  const echo = await startEcho(t);
  const g = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { 'max-connections': '100' }, openFilesLimit: () => 20_000 });
  t.notOk(g.lines.some((l) => l.event === 'max_connections_lowered'));
  const gauge = await g.gw.context.metrics.connectionLimit.get();
  t.equal(gauge.values[0]?.value, 100);
});
