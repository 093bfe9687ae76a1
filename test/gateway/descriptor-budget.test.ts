import t from 'tap';
import { spawnSync } from 'node:child_process';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { LISTENER_HANDSHAKE } from '../../src/wire/reply.js';
import type { TestIssued } from '../helpers/pki.js';
import { DESCRIPTOR_RESERVE, DESCRIPTORS_PER_CONNECTION, openFilesLimit, planConnectionCaps } from '../../src/limits/descriptor-budget.js';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { startEcho } from '../hardening/harness.js';
import { waitFor } from '../helpers/wait.js';

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

t.test('the caps stand while the limit backs them all; otherwise the side ports are held to their share and 8786 keeps the rest', async (t) => {
  const caps = { terminator: 4096, dashboard: 512, credentials: 256 };
  t.same(planConnectionCaps(caps, undefined), caps, 'unknown limit: configured caps stand');
  t.same(planConnectionCaps(caps, 1_048_576), caps);
  t.same(planConnectionCaps({ terminator: 10_000, dashboard: 512, credentials: 0 }, 20_000), { terminator: 9_360, dashboard: 512, credentials: 0 }, 'this machine: 20,000 - 256 - 1,024 dashboard = 18,720 left for 8786');
  const lowered = planConnectionCaps(caps, 4_096);
  t.same(lowered, { terminator: 1_536, dashboard: 288, credentials: 192 }, '15 % and 5 % of 3,840 for the side ports, the rest for 8786');
  const used = lowered.terminator * DESCRIPTORS_PER_CONNECTION.terminator + lowered.dashboard * DESCRIPTORS_PER_CONNECTION.dashboard + lowered.credentials * DESCRIPTORS_PER_CONNECTION.credentials;
  t.ok(used <= 4_096 - DESCRIPTOR_RESERVE, `every descriptor the caps can use (${used}) is backed`);
  t.same(planConnectionCaps({ terminator: 100, dashboard: 5_000, credentials: 0 }, 1_024), { terminator: 100, dashboard: 57, credentials: 0 }, 'a small 8786 cap is kept whole while a greedy dashboard cap is cut');
  t.same(planConnectionCaps(caps, 100), { terminator: 1, dashboard: 1, credentials: 1 }, 'never below one');
});

t.test('the real limit of a process started under prlimit is what is read', async (t) => {
  const mod = new URL('../../src/limits/descriptor-budget.ts', import.meta.url).href;
  const script = `import { readOpenFilesLimit } from ${JSON.stringify(mod)}; console.log(readOpenFilesLimit());`;
  const p = spawnSync('prlimit', ['--nofile=600:600', '--', process.execPath, ...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  t.equal(p.status, 0, p.stderr.slice(-500));
  t.equal(p.stdout.trim(), '600');
});

let cluster: TestCluster;
t.before(async () => { cluster = await makeTestCluster(); });
t.teardown(() => cluster?.cleanup());

t.test('caps the open-files limit cannot back are lowered at start on 8786 and 8787, logged, exported, and the excess refused cleanly', async (t) => {
  const echo = await startEcho(t);
  // 256 spare + 40: the dashboard is held to 15 % (3 connections, 6 descriptors), 8786 gets (40 - 6) / 2 = 17.
  const g = await startTestGateway({
    cluster, scheduler: `127.0.0.1:${echo.port}`, t,
    flags: { 'max-connections': '4096', 'handshake-timeout-ms': '30000', 'reserve-clients-percent': '0', inspect: 'false' },
    openFilesLimit: () => DESCRIPTOR_RESERVE + 40,
  });
  const warns = g.lines.filter((l) => l.event === 'max_connections_lowered');
  t.match(warns.find((l) => l.key === 'terminator.max-connections'), { level: 'warn', configured: 4096, effective: 17, open_files_limit: DESCRIPTOR_RESERVE + 40 }, 'a warning names the 8786 key and both numbers');
  t.match(warns.find((l) => l.key === 'dashboard.max-connections'), { level: 'warn', configured: 512, effective: 3 }, 'and one the dashboard key');
  const gauge = await g.gw.context.metrics.connectionLimit.get();
  t.same(gauge.values.map((v) => [v.labels.port, v.value]).sort(), [['8786', 17], ['8787', 3]], 'the caps in force are exported');

  // Of 17 slots, 4 may be handshaking (a quarter); with reserve-clients 0, worker certificates may hold the other 13.
  const live: TLSSocket[] = [];
  t.teardown(() => live.forEach((s) => s.destroy()));
  const worker = await cluster.issue('worker', 'fd-worker');
  for (let i = 0; i < 13; i++) live.push(await liveSession(g.port, worker));
  const answer = await firstBytes(g.port, worker);
  t.ok(answer.subarray(0, LISTENER_HANDSHAKE.length).equals(LISTENER_HANDSHAKE), 'the 14th is refused in Dask framing (the listener handshake first)');
  await g.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'worker_share_full', 10_000, 'worker_share_full refusal');
  t.equal(live.filter((s) => !s.destroyed).length, 13, 'the 13 within the cap are still open');
  t.notOk(g.lines.some((l) => /EMFILE/.test(JSON.stringify(l))), 'no descriptor ran out');
});

t.test('with a limit that backs the cap, nothing is lowered', async (t) => {
  const echo = await startEcho(t);
  const g = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { 'max-connections': '100' }, openFilesLimit: () => 20_000 });
  t.notOk(g.lines.some((l) => l.event === 'max_connections_lowered'));
  const gauge = await g.gw.context.metrics.connectionLimit.get();
  t.equal(gauge.values.find((v) => v.labels.port === '8786')?.value, 100);
});

/** A forwarded session: the echo upstream returns what is sent, so a reply proves it reached the scheduler side. */
function liveSession(port: number, who: TestIssued): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: who.certPem, key: who.keyPem, checkServerIdentity: () => undefined }, () => s.write('ping'));
    s.once('data', () => resolve(s));
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before forwarding')));
  });
}

function firstBytes(port: number, who: TestIssued): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: who.certPem, key: who.keyPem, checkServerIdentity: () => undefined });
    s.once('data', (d: Buffer) => { s.destroy(); resolve(d); });
    s.once('error', reject);
  });
}
