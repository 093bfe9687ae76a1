/**
 * The multi-process data plane (--processes 2) with real processes and raw
 * mTLS connections in front of an echo upstream (no Dask semantics needed,
 * inspection off): limits and the failed-handshake budget count every
 * process's connections, a full share is reclaimed across processes, a revocation closes sessions in every process with
 * one audit line (and reaches a process that is starting through its init;
 * a reclaim does not wait for one),
 * a killed process is replaced and gives its slots back, drain reaches every
 * process, and a process whose primary is gone closes its connections and
 * exits.
 * Real Dask through several processes: processes-dask.test.ts.
 */
import t, { type Test } from 'tap';
import cluster_ from 'node:cluster';
import { connect as netConnect } from 'node:net';
import { forgeCertificate, makeTestCluster, type TestCluster, type TestIssued } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';
import { GREETING, dataPlanePids, echoes, holdTls, pidGone, processOf, type Held } from '../helpers/data-plane.js';
import { startEcho } from '../hardening/harness.js';
import { spawnGatewayChild } from '../hardening/child.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import type { Flags } from '../../src/config/load.js';

t.setTimeout(240_000);

const ATTEMPTS = 40;

async function start(t: Test, flags: Flags = {}): Promise<{ cluster: TestCluster; gw: TestGateway }> {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = await startEcho(t, { greeting: GREETING });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { processes: '2', inspect: 'false', 'failed-handshake-rate': '100000', ...flags } });
  return { cluster, gw };
}

const creds = (cluster: TestCluster, who: TestIssued) => ({ ca: cluster.caPem, cert: who.certPem, key: who.keyPem });
const forwarded = (held: readonly Held[]) => held.filter((h) => h.outcome === 'forwarded');

/** Opens connections (each to its outcome) until `enough` says so; at most ATTEMPTS. */
async function openUntil(gw: TestGateway, open: () => Promise<Held>, enough: (held: Held[]) => boolean): Promise<Held[]> {
  const held: Held[] = [];
  while (held.length < ATTEMPTS && !enough(held)) held.push(await open());
  await waitFor(() => held.every((h) => processOf(gw.lines, h) !== undefined || h.outcome === 'refused'), { timeoutMs: 5_000, what: 'audit lines of every connection' });
  return held;
}

const processesOf = (gw: TestGateway, held: readonly Held[], host = '127.0.0.1') => new Set(held.map((h) => processOf(gw.lines, h, host)).filter((p) => p !== undefined));

/** Opens connections until one is refused, with both processes taking part: a per-process count would admit the limit in each. */
async function overTheLimit(t: Test, gw: TestGateway, open: () => Promise<Held>): Promise<Held[]> {
  const held = await openUntil(gw, open, (h) => h.some((x) => x.outcome === 'refused') && processesOf(gw, h).size === 2);
  t.equal(processesOf(gw, held).size, 2, `both processes accepted or refused some of the ${held.length} attempts`);
  return held;
}

/** Freed slots reach the primary by a message: retries until a connection is admitted. */
function nextAdmitted(open: () => Promise<Held>): Promise<Held> {
  return waitFor(async () => {
    const h = await open();
    if (h.outcome === 'forwarded') return h;
    h.socket.destroy();
    return undefined;
  }, { timeoutMs: 10_000, what: 'a slot given back' });
}

async function closeAll(held: readonly Held[]): Promise<void> {
  for (const h of held) h.socket.destroy();
  await Promise.all(held.map((h) => h.closed));
}

t.test('max-connections-per-identity counts the connections of every process', async (t) => {
  const { cluster, gw } = await start(t, { 'max-connections-per-identity': '3' });
  const alice = await cluster.issue('client', 'alice');
  const open = () => holdTls(gw.port, creds(cluster, alice));
  const held = await overTheLimit(t, gw, open);
  const admitted = forwarded(held);
  t.equal(admitted.length, 3, 'exactly the limit was admitted in total');
  t.ok(await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'too_many_connections_for_identity', 5_000), 'the refusals name the identity limit');
  t.ok(await echoes(admitted[0]!), 'an admitted connection forwards');

  await closeAll(admitted.slice(0, 2));
  const again = await nextAdmitted(open);
  const second = await open();
  t.equal(second.outcome, 'forwarded', 'after closing two, two new connections are admitted');
  const third = await open();
  t.equal(third.outcome, 'refused', 'and the next is refused again');
  await closeAll([...held, again, second, third]);
});

t.test('max-connections-per-address counts the connections of every process', async (t) => {
  const { cluster, gw } = await start(t, { 'max-connections-per-address': '3' });
  const alice = await cluster.issue('client', 'alice');
  const open = () => holdTls(gw.port, creds(cluster, alice));
  const held = await overTheLimit(t, gw, open);
  t.equal(forwarded(held).length, 3, 'exactly the limit was admitted from 127.0.0.1');
  t.ok(await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'too_many_connections_from_address', 5_000), 'the refusals name the address limit');
  const other = await holdTls(gw.port, creds(cluster, alice), { localAddress: '127.0.0.2' });
  t.equal(other.outcome, 'forwarded', 'another source address is still admitted');

  await closeAll(forwarded(held).slice(0, 1));
  const again = await nextAdmitted(open);
  t.ok(await echoes(again), 'after closing one, a new connection is admitted and forwards');
  t.equal((await open()).outcome, 'refused', 'and the next is refused again');
  await closeAll([...held, other, again]);
});

t.test('the failed-handshake budget of an address is spent by failures in any process', async (t) => {
  const { cluster, gw } = await start(t, { 'failed-handshake-rate': '4' });
  const stranger = await forgeCertificate({ uris: [`spiffe://${cluster.clusterId}/client/stranger`] });
  const from = { localAddress: '127.0.0.3' };
  for (let i = 0; i < 4; i++) {
    t.equal((await holdTls(gw.port, { ca: cluster.caPem, cert: stranger.certPem, key: stranger.keyPem }, from)).outcome, 'refused', `failed handshake ${i + 1} (unknown CA)`);
  }
  const alice = await cluster.issue('client', 'alice');
  // Valid certificates from that address now, until both processes have answered: a budget per process would admit some.
  const after = await openUntil(gw, () => holdTls(gw.port, creds(cluster, alice), from), (h) => processesOf(gw, h, '127.0.0.3').size === 2);
  t.same(processesOf(gw, after, '127.0.0.3'), new Set([1, 2]), `both processes answered the ${after.length} attempts`);
  t.ok(after.every((h) => h.outcome === 'refused'), 'every one was refused');
  const limited = gw.audits('connection_refused').filter((l) => l.reason === 'rate_limited' && String(l.peer).startsWith('127.0.0.3:'));
  t.same(new Set(limited.map((l) => l.dataplane)), new Set([1, 2]), 'as rate_limited by each process');
  t.equal((await holdTls(gw.port, creds(cluster, alice))).outcome, 'forwarded', 'another address is unaffected');
});

t.test('a full client share is reclaimed from idle connections in either process', async (t) => {
  // 40 slots: 10 for handshakes, 10 kept for workers: client certificates share 20.
  const { cluster, gw } = await start(t, { 'max-connections': '40' });
  const mallory = await cluster.issue('client', 'mallory');
  const hog = await openUntil(gw, () => holdTls(gw.port, creds(cluster, mallory)), (h) => h.some((x) => x.outcome === 'refused'));
  const hogs = forwarded(hog);
  t.equal(hogs.length, 20, 'one certificate fills the client share');
  t.same(processesOf(gw, hogs), new Set([1, 2]), 'with connections in both processes');
  await waitFor(() => gw.lines.some((l) => l.event === 'connection_refused' && l.reason === 'client_share_full'), { timeoutMs: 5_000, what: 'client_share_full' });
  // Reclaim takes connections idle for a second or more.
  await new Promise((r) => setTimeout(r, 1_100));
  const alice = await cluster.issue('client', 'alice');
  const cuts = () => gw.audits('connection_closed').filter((l) => l.reason === 'fair_share' && l.uri === mallory.uri);
  const newcomers: Held[] = [];
  const crossed = () => newcomers.some((h, i) => cuts()[i] !== undefined && cuts()[i]!.dataplane !== processOf(gw.lines, h));
  while (newcomers.length < 8 && !crossed()) {
    newcomers.push(await holdTls(gw.port, creds(cluster, alice)));
    await waitFor(() => cuts().length >= newcomers.length && processOf(gw.lines, newcomers.at(-1)!) !== undefined, { timeoutMs: 5_000, what: 'the reclaim audited' });
  }
  t.ok(newcomers.every((h) => h.outcome === 'forwarded'), `each of ${newcomers.length} new connections of another certificate was admitted`);
  t.equal(cuts().length, newcomers.length, 'each took one idle connection of the biggest holder');
  t.ok(crossed(), 'a newcomer in one process took its slot from a connection in the other');
  await waitFor(() => hogs.filter((h) => h.socket.destroyed).length >= newcomers.length, { timeoutMs: 5_000, what: 'the reclaimed connections closed' });
  t.equal(hogs.filter((h) => h.socket.destroyed).length, newcomers.length, 'exactly that many of its connections were closed');
  t.equal((await holdTls(gw.port, creds(cluster, mallory))).outcome, 'refused', 'the share is still full for the holder');
  await closeAll([...hog, ...newcomers]);
});

t.test('a revocation closes the sessions of the certificate in every process, with one audit line', async (t) => {
  const { cluster, gw } = await start(t);
  const w1 = await cluster.issue('worker', 'w1');
  const held = await openUntil(gw, () => holdTls(gw.port, creds(cluster, w1)), (h) => {
    const per = [1, 2].map((p) => h.filter((x) => processOf(gw.lines, x) === p).length);
    return per.every((n) => n >= 2);
  });
  const live = forwarded(held);
  t.equal(live.length, held.length, 'every connection was forwarded');
  const per = [1, 2].map((p) => live.filter((h) => processOf(gw.lines, h) === p).length);
  t.ok(per.every((n) => n >= 2), `connections spread over both processes (${per.join(' + ')})`);
  const bystander = await holdTls(gw.port, creds(cluster, await cluster.issue('worker', 'w2')));

  const serial = normalizeSerial(w1.serial);
  await cluster.revoke(w1.serial);
  const applied = await gw.waitForLog((l) => l.event === 'revocation_applied' && l.serial === serial, 15_000, 'revocation_applied');
  await Promise.race([Promise.all(live.map((h) => h.closed)), new Promise((r) => setTimeout(r, 5_000))]);
  t.ok(live.every((h) => h.socket.destroyed), 'every connection of the revoked certificate is closed');
  t.equal(applied.sessions_closed, live.length, 'the one audit line carries the total of both processes');
  t.equal(gw.audits('revocation_applied').filter((l) => l.serial === serial).length, 1, 'one revocation_applied line for the serial');
  const cut = gw.audits('connection_closed').filter((l) => l.reason === 'revoked' && l.serial === serial);
  t.same(new Set(cut.map((l) => l.dataplane)), new Set([1, 2]), 'each process closed its own sessions');
  t.ok(await echoes(bystander), "another worker's connection is untouched");
  t.equal((await holdTls(gw.port, creds(cluster, w1))).outcome, 'refused', 'the revoked certificate cannot reconnect');
  await closeAll([bystander]);
});

t.test('a data-plane process killed with SIGKILL is replaced and its slots are free again', async (t) => {
  const { cluster, gw } = await start(t, { 'max-connections-per-identity': '4' });
  const alice = await cluster.issue('client', 'alice');
  const open = () => holdTls(gw.port, creds(cluster, alice));
  const pids = dataPlanePids(gw.lines);
  const held = await openUntil(gw, open, (h) => forwarded(h).length === 4);
  const live = forwarded(held);
  t.equal(live.length, 4, 'the limit is reached');
  const victim = processOf(gw.lines, live[0]!)!;
  const onVictim = live.filter((h) => processOf(gw.lines, h) === victim);
  const survivors = live.filter((h) => processOf(gw.lines, h) !== victim);
  t.equal((await open()).outcome, 'refused', 'one more is refused before the kill');

  process.kill(pids[victim - 1]!, 'SIGKILL');
  const exited = await gw.waitForLog((l) => l.event === 'dataplane_process_exited' && l.dataplane === victim, 10_000, 'dataplane_process_exited');
  t.match(exited, { level: 'error', pid: pids[victim - 1], signal: 'SIGKILL' });
  const restarted = await gw.waitForLog((l) => l.event === 'dataplane_process_restarted' && l.dataplane === victim, 60_000, 'dataplane_process_restarted');
  t.not(restarted.pid, pids[victim - 1], 'a new process took its place');
  t.ok(pidGone(pids[victim - 1]!), 'the killed process is gone');
  await Promise.race([Promise.all(onVictim.map((h) => h.closed)), new Promise((r) => setTimeout(r, 5_000))]);
  t.ok(onVictim.every((h) => h.socket.destroyed), `the ${onVictim.length} connection(s) of the killed process are closed`);
  for (const h of survivors) t.ok(await echoes(h), 'a connection of the other process still forwards');

  const fresh: Held[] = [];
  for (let i = 0; i < onVictim.length; i++) {
    fresh.push(await nextAdmitted(open));
  }
  t.equal(fresh.length, onVictim.length, `the ${onVictim.length} slot(s) the killed process held are admitted again`);
  t.equal((await open()).outcome, 'refused', 'and the limit still holds');
  await closeAll([...held, ...fresh]);
});

t.test('a revocation while a data-plane process restarts reaches it through its init, without killing it', async (t) => {
  const { cluster, gw } = await start(t);
  const bob = await cluster.issue('client', 'bob');
  const [victim] = dataPlanePids(gw.lines);
  const forked = new Promise<void>((resolve) => cluster_.once('fork', () => resolve()));
  process.kill(victim!, 'SIGKILL');
  await forked;
  // The replacement is loading its modules: it cannot answer yet.
  await cluster.revoke(bob.serial);
  const serial = normalizeSerial(bob.serial);
  await gw.waitForLog((l) => l.event === 'dataplane_process_restarted', 60_000, 'dataplane_process_restarted');
  const applied = await gw.waitForLog((l) => l.event === 'revocation_applied' && l.serial === serial, 15_000, 'revocation_applied');
  const reloaded = gw.lines.find((l) => l.event === 'trust_reloaded' && Array.isArray(l.newly_revoked) && l.newly_revoked.includes(serial));
  const lag = Date.parse(String(applied.time)) - Date.parse(String(reloaded?.time));
  t.ok(lag < 2_000, `the revocation was audited ${lag} ms after the trust reload, without waiting for the starting process`);
  t.same(gw.lines.filter((l) => l.event === 'dataplane_trust_failed'), [], 'no process was reported failing the trust change');
  t.equal(gw.lines.filter((l) => l.event === 'dataplane_process_exited').length, 1, 'the new process was not killed');
  // Both processes refuse the revoked certificate: connect until each has refused it once.
  const tries = await openUntil(gw, () => holdTls(gw.port, creds(cluster, bob)), (h) => processesOf(gw, h).size === 2);
  t.same(processesOf(gw, tries), new Set([1, 2]), 'both processes were tried');
  t.ok(tries.every((h) => h.outcome === 'refused'), 'and each refused the revoked certificate');
});

t.test('a reclaim while a data-plane process restarts does not wait for it', async (t) => {
  const { cluster, gw } = await start(t, { 'max-connections': '40' });
  const mallory = await cluster.issue('client', 'mallory');
  const alice = await cluster.issue('client', 'alice');
  const fill = async () => forwarded(await openUntil(gw, () => holdTls(gw.port, creds(cluster, mallory)), (h) => h.some((x) => x.outcome === 'refused')));
  const hogs = await fill();
  await new Promise((r) => setTimeout(r, 1_100)); // reclaim takes connections idle for a second or more
  const [victim] = dataPlanePids(gw.lines);
  const forked = new Promise<void>((resolve) => cluster_.once('fork', () => resolve()));
  process.kill(victim!, 'SIGKILL');
  await forked;
  // While the replacement loads its modules: the share is full again, with the survivor's idle connections.
  const refill = await fill();
  const began = Date.now();
  const newcomer = await holdTls(gw.port, creds(cluster, alice));
  const took = Date.now() - began;
  t.notOk(gw.lines.some((l) => l.event === 'dataplane_process_restarted'), 'the replacement was still starting (else this test proves nothing)');
  t.equal(newcomer.outcome, 'forwarded', 'a newcomer is admitted by reclaiming an idle connection');
  t.ok(took < 800, `in ${took} ms: the starting process, which cannot answer, was not asked for candidates`);
  await gw.waitForLog((l) => l.event === 'dataplane_process_restarted', 60_000, 'dataplane_process_restarted');
  await closeAll([...hogs, ...refill, newcomer]);
});

t.test('drain cuts the live connections of every process at the deadline, and every process exits', async (t) => {
  const { cluster, gw } = await start(t);
  const alice = await cluster.issue('client', 'alice');
  const pids = dataPlanePids(gw.lines);
  const held = await openUntil(gw, () => holdTls(gw.port, creds(cluster, alice)), (h) => processesOf(gw, h).size === 2);
  t.equal(forwarded(held).length, held.length, 'every connection was forwarded');
  const deadlineMs = 1_500;
  const began = Date.now();
  const draining = gw.gw.drain(deadlineMs);
  await waitFor(async () => !(await tcpAccepts(gw.port)), { timeoutMs: 5_000, what: 'the port stops accepting' });
  t.pass('no new connection is accepted while draining');
  const closedAt = await Promise.all(held.map((h) => h.closed));
  const first = Math.min(...closedAt) - began;
  t.ok(first >= deadlineMs - 100, `live connections were kept until the deadline (first closed after ${first} ms)`);
  t.ok(Math.max(...closedAt) - began < deadlineMs + 5_000, 'and cut soon after it');
  await draining;
  t.same(new Set(gw.audits('connection_closed').filter((l) => l.reason === 'drain').map((l) => l.dataplane)), new Set([1, 2]), 'both processes cut theirs');
  await waitFor(() => pids.every(pidGone), { timeoutMs: 10_000, what: 'every data-plane process exited' });
  t.pass(`no data-plane process is left (${pids.join(', ')})`);
});

t.test('when the primary is killed, its data-plane processes close their connections and exit', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = await startEcho(t, { greeting: GREETING });
  const child = await spawnGatewayChild({
    t, passphrase: cluster.passphrase,
    flags: { dir: cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', scheduler: `127.0.0.1:${echo.port}`, processes: '2', inspect: 'false' },
  });
  const pids = dataPlanePids(child.lines);
  t.equal(pids.length, 2, 'two data-plane processes');
  const alice = await cluster.issue('client', 'alice');
  const held: Held[] = [];
  for (let i = 0; i < 6; i++) held.push(await holdTls(child.ports.p8786, creds(cluster, alice)));
  t.equal(forwarded(held).length, 6, 'connections are forwarded');
  // The primary alone: kill(-pid) would take the whole process group, data-plane processes included.
  process.kill(child.pid, 'SIGKILL');
  await waitFor(() => child.exited(), { timeoutMs: 10_000, what: 'the primary gone' });
  await waitFor(() => pids.every(pidGone), { timeoutMs: 10_000, what: 'every data-plane process exited' });
  t.pass('every data-plane process exited');
  await Promise.race([Promise.all(held.map((h) => h.closed)), new Promise((r) => setTimeout(r, 5_000))]);
  t.ok(held.every((h) => h.socket.destroyed), 'every connection they held is closed');
  t.equal(await tcpAccepts(child.ports.p8786), false, 'the port no longer accepts');
});

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
