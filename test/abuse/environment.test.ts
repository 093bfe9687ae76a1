/**
 * The environment cannot crash the daemon: a closed stdout (EPIPE), a full
 * disk under the log (ENOSPC), an error on any listening server, a
 * scheduler child that cannot start (test/gateway/supervisor.test.ts). Each
 * is an event with a defined behaviour; the gateway keeps serving.
 */
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { makeTestCluster, type TestCluster, type TestIssued } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { startEcho } from '../hardening/harness.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

let cluster: TestCluster;
let alice: TestIssued;
let echoPort: number;
t.before(async () => {
  cluster = await makeTestCluster();
  alice = await cluster.issue('client', 'alice');
  echoPort = (await startEcho(t, { greeting: 'hello' })).port;
});
t.teardown(() => cluster?.cleanup());

/** One forwarded session: resolves true when the upstream's greeting arrives through the gateway. */
function served(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem, checkServerIdentity: () => undefined });
    const timer = setTimeout(() => { s.destroy(); resolve(false); }, 10_000);
    s.once('data', () => { clearTimeout(timer); s.destroy(); resolve(true); });
    s.once('error', () => { clearTimeout(timer); resolve(false); });
  });
}

function daemon(t: Test, stdout: 'pipe' | number, ports: { p8786: number }): ChildProcess {
  const args = ['run', '--dir', cluster.dir, '--scheduler', `127.0.0.1:${echoPort}`, '--inspect=false',
    '--listen', `127.0.0.1:${ports.p8786}`, '--dashboard-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0'];
  const child = spawn(process.execPath, [...process.execArgv, BIN, ...args], {
    stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase },
  });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d; });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  child.once('exit', (code, signal) => { if (!stopping.has(child)) t.fail(`the daemon exited (${code ?? signal}): ${stderr.slice(-2000)}`); });
  return child;
}
const stopping = new WeakSet<ChildProcess>();

async function stop(child: ChildProcess): Promise<number | null> {
  stopping.add(child);
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  child.kill('SIGTERM');
  return exited;
}

t.test('a closed stdout (EPIPE): the daemon keeps serving without its log', async (t) => {
  const p8786 = await freePort();
  const child = daemon(t, 'pipe', { p8786 });
  await new Promise<void>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (l) => { if (l.includes('"gateway_started"')) resolve(); });
  });
  child.stdout!.destroy(); // the reader goes away: every later write is EPIPE
  let ok = 0;
  for (let i = 0; i < 20; i++) if (await served(p8786)) ok++;
  t.equal(ok, 20, 'all 20 sessions after stdout closed were served');
  t.equal(child.exitCode, null, 'still running after 20 sessions, each logged into a closed pipe');
  t.ok(await served(p8786), 'and still serving');
  t.equal(await stop(child), 0, 'SIGTERM still drains and exits 0');
});

t.test('a full disk under the log (stdout on /dev/full, ENOSPC): the daemon keeps serving', async (t) => {
  const p8786 = await freePort();
  const full = openSync('/dev/full', 'w');
  t.teardown(() => closeSync(full));
  const child = daemon(t, full, { p8786 });
  await waitFor(() => served(p8786), { timeoutMs: 30_000, what: 'the daemon serving with its log on /dev/full' });
  for (let i = 0; i < 20; i++) await served(p8786);
  t.equal(child.exitCode, null, 'still running after 20 sessions, each logged into ENOSPC');
  t.ok(await served(p8786), 'and still serving');
  t.equal(await stop(child), 0, 'SIGTERM still drains and exits 0');
});

t.test('every listening server of a running gateway logs an error event instead of crashing', async (t) => {
  const handles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().filter((h): h is Server => h instanceof Server);
  const before = new Set(handles());
  const g = await startTestGateway({
    cluster, scheduler: `127.0.0.1:${echoPort}`, t,
    flags: { inspect: 'false', 'credentials-listen': '127.0.0.1:0', 'credentials-file': '/nonexistent/credentials.json' },
  });
  const servers = handles().filter((h) => !before.has(h));
  t.ok(servers.length >= 4, `${servers.length} listening servers: 8786, 8787, 8789, metrics`);
  const errorLines = () => g.lines.filter((l) => l.level === 'error' && /server[._]error|listener_error/.test(l.event)).length;
  for (const s of servers) {
    const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });
    t.doesNotThrow(() => s.emit('error', err), `an error on ${JSON.stringify(s.address())} is handled`);
  }
  await waitFor(() => errorLines() >= servers.length, { timeoutMs: 5_000, what: 'one error line per server' });
  t.ok(await served(g.port), '8786 still serves');
});
