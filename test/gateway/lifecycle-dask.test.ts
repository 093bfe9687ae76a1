/**
 * The certificate lifecycle end to end with real Dask (scheduler, nanny
 * workers, clients) through the gateway, on each supported Dask version:
 *   1. renewal: the gateway's certificate, then the workers' (restarted one
 *      by one with their renewed bundles) and a client's;
 *   2. the whole CA rotation: begin, re-issue every bundle, restart the
 *      workers one by one, switch, finish; the scheduler is never restarted:
 *      it follows its bundle through the tls_reload.py preload.
 * Throughout, a client's computation keeps running (one client from before
 * the rotation until finish cuts off its old-CA certificate, one from after
 * begin to the end), and the only connections the gateway ends itself are
 * the old-CA ones at finish. After finish an old-CA certificate is refused,
 * with reason unknown_ca in the audit log. The rotation's wall time is
 * reported.
 */
import t, { type Test } from 'tap';
import { connect } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCerts } from '../pki/cli-harness.js';
import { startTestGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import {
  clientPrelude, DASK_2026, eachDaskVersion, requireDask, runClient, spawnDaskScript, startScheduler, startWorker,
  type DaskProcess, type DaskVersion, type TlsFiles,
} from '../helpers/dask.js';
import { GiveUp, waitFor } from '../helpers/wait.js';
import type { TestCluster } from '../helpers/pki.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';

const PASS = 'lifecycle-dask-passphrase';
const ENV = { SCHEDULER_GATEWAY_PASSPHRASE: PASS };

/** A loop of small computations that need both workers, a transfer between them, and the scheduler dialing the workers (client.run, gather). */
function computeLoop(address: string, tls: TlsFiles): string {
  return `${clientPrelude(address, tls, { timeout: 60 })}
import time
print("CONNECTED", flush=True)
i = 0
while True:
    t0 = time.time()
    try:
        ws = sorted(c.scheduler_info()["workers"])
        a = c.submit(lambda n: bytes(n), 100_000 + i, pure=False, workers=ws[:1], allow_other_workers=True)
        b = c.submit(lambda blob, k: len(blob) + k, a, i, pure=False, workers=ws[-1:], allow_other_workers=True)
        assert b.result(timeout=60) == 100_000 + 2 * i
        pids = c.run(os.getpid)
        print(json.dumps({"ok": i, "t": time.time(), "dt": round(time.time() - t0, 3), "workers": len(pids)}), flush=True)
    except Exception as e:
        print(json.dumps({"err": repr(e)[:400], "t0": t0, "t": time.time()}), flush=True)
    i += 1
    time.sleep(0.2)  # paced: a steady trickle of work across the rotation, not a flood
`;
}

interface Loop {
  proc: DaskProcess;
  oks(): number;
  /** Failed iterations, with when they started and ended (ms since the epoch). */
  failures(): Array<{ from: number; at: number; err: string }>;
  /** Workers the last successful client.run reached. */
  lastReached(): number | undefined;
  /** Resolves once n more iterations have succeeded. */
  progress(n?: number): Promise<void>;
}

function startLoop(address: string, tls: TlsFiles, v: DaskVersion, t: Test): Loop {
  const proc = spawnDaskScript(computeLoop(address, tls), { t, version: v });
  const lines = () => proc.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { ok?: number; err?: string; t0?: number; t: number; workers?: number });
  const oks = () => lines().filter((l) => l.ok !== undefined).length;
  return {
    proc, oks,
    failures: () => lines().flatMap((l) => (l.err ? [{ from: (l.t0 ?? l.t) * 1000, at: l.t * 1000, err: l.err }] : [])),
    lastReached: () => lines().filter((l) => l.ok !== undefined).at(-1)?.workers,
    async progress(n = 2) {
      const target = oks() + n;
      await waitFor(() => {
        if (!proc.alive()) throw new GiveUp(`client exited:\n${proc.output().slice(-3000)}`);
        return oks() >= target;
      }, { timeoutMs: 120_000, intervalMs: 200, what: `${n} more computations` });
    },
  };
}

interface Bundle extends TlsFiles { name: string; dir: string }

async function lifecycle(t: Test, v: DaskVersion): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'sgw-life-dask-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'state');
  /** When each renewal or rotation step ran: connections open across one must survive it. */
  const steps: number[] = [];
  const certs = async (...argv: string[]) => {
    const [sub, ...rest] = argv;
    if (sub !== 'init' && sub !== 'issue') steps.push(Date.now());
    const head = sub === 'rotate-ca' ? [sub, rest.shift()!] : [sub!];
    const r = await runCerts([...head, '--dir', dir, ...rest], { cwd: root, env: ENV });
    t.equal(r.code, 0, `certs ${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  const bundle = (name: string): Bundle => ({ name, dir: join(root, 'b', name), ca: join(root, 'b', name, 'ca.pem'), cert: join(root, 'b', name, `${name}.pem`), key: join(root, 'b', name, `${name}-key.pem`) });
  const issue = async (role: string, name: string) => { await certs('issue', '--role', role, '--name', name, '--out', bundle(name).dir); return bundle(name); };
  const serial = (b: Bundle) => normalizeSerial(new X509Certificate(readFileSync(b.cert)).serialNumber);
  const preload = (b: Bundle) => `["${join(b.dir, 'tls_reload.py')}"]`;

  await certs('init', '--cluster', 'life', '--host', '127.0.0.1');
  const sched = await issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: sched, t, version: v, env: { DASK_DISTRIBUTED__SCHEDULER__PRELOAD: preload(sched) } });
  const gw: TestGateway = await startTestGateway({ cluster: { dir, passphrase: PASS } as TestCluster, scheduler: `127.0.0.1:${scheduler.port}`, t, flags: { dashboard: 'false' } });
  const workers = new Map<string, DaskProcess>();
  /** Serials whose connections may end: processes this test stopped. */
  const stopped = new Set<string>();
  /**
   * From a worker's stop to 2 s after its successor registered: an iteration
   * running then may meet the closing worker (a broadcast to it fails, at once
   * or after Dask's 30 s connect timeout). Dask's doing, not a certificate step's.
   */
  const restarts: Array<[number, number]> = [];
  const startW = async (b: Bundle) => {
    workers.set(b.name, await startWorker({ scheduler: gw.address, tls: b, name: b.name, nanny: true, t, version: v, env: { DASK_DISTRIBUTED__WORKER__PRELOAD: preload(b) } }));
  };
  const restartW = async (b: Bundle, oldSerial: string) => {
    stopped.add(oldSerial);
    const from = Date.now();
    await workers.get(b.name)!.stop();
    await startW(b);
    restarts.push([from, Date.now() + 2_000]);
  };
  /** A loop's errors outside the restart windows (and before `until`): the ones a certificate step could have caused. */
  const stepErrors = (loop: Loop, until = Infinity) => loop.failures().filter((f) => f.at < until && !restarts.some(([a, b]) => f.from <= b && f.at >= a)).map((f) => f.err);
  const w1 = await issue('worker', 'w1');
  const w2 = await issue('worker', 'w2');
  await startW(w1);
  await startW(w2);
  const alice = await issue('client', 'alice');
  const aliceOriginal = { ...alice, serial: serial(alice), pem: readFileSync(alice.cert, 'utf8'), keyPem: readFileSync(alice.key, 'utf8') };
  const loopA = startLoop(gw.address, alice, v, t);
  await loopA.progress(3);

  // ---- 1. renewal ---------------------------------------------------------
  const gwBefore = normalizeSerial(new X509Certificate(readFileSync(join(dir, 'gateway.pem'))).serialNumber);
  await certs('renew', '--name', 'gateway');
  const gwRenewed = normalizeSerial(new X509Certificate(readFileSync(join(dir, 'gateway.pem'))).serialNumber);
  t.not(gwRenewed, gwBefore);
  await waitFor(async () => (await servedSerial(gw, alice)) === gwRenewed, { timeoutMs: 15_000, what: 'the renewed gateway certificate served' });
  await loopA.progress(2);
  for (const w of [w1, w2]) {
    const old = serial(w);
    await certs('renew', '--name', w.name);
    t.not(serial(w), old, `${w.name} renewed in its bundle`);
    await restartW(w, old);
    await loopA.progress(2);
  }
  await certs('renew', '--name', 'alice');
  const renewedClient = await runClient<{ r: number }>(`${clientPrelude(gw.address, alice)}\nprint(json.dumps({"r": c.submit(lambda: 41 + 1).result()}))\nc.close()\n`, { version: v });
  t.equal(renewedClient.r, 42, 'a client with the renewed bundle computes');
  t.same(stepErrors(loopA), [], 'the running computation saw no error from the renewals');

  // ---- 2. CA rotation -----------------------------------------------------
  const rotationStarted = Date.now();
  const marks: Array<[string, number]> = [];
  const mark = (what: string) => marks.push([what, Date.now() - rotationStarted]);
  await certs('rotate-ca', 'begin');
  mark('begin');
  t.equal(splitCount(readFileSync(sched.ca, 'utf8')), 2, "begin wrote both CAs into the scheduler's bundle");
  await waitFor(() => /tls_reload: scheduler reloaded/.test(scheduler.output()), { timeoutMs: 15_000, what: 'the running scheduler reloading its CA file' });
  const scheduler1 = await certs('renew', '--name', 'scheduler');
  t.match(scheduler1.stdout, /issued by CA/);
  await waitFor(() => (scheduler.output().match(/tls_reload: scheduler reloaded/g) ?? []).length >= 2, { timeoutMs: 15_000, what: 'the running scheduler taking its new-CA certificate' });
  const carol = await issue('client', 'carol');
  t.match(new X509Certificate(readFileSync(carol.cert)).issuer, /cluster CA 2/);
  const loopC = startLoop(gw.address, carol, v, t);
  await loopC.progress(2);
  for (const w of [w1, w2]) {
    const old = serial(w);
    await certs('renew', '--name', w.name);
    t.match(new X509Certificate(readFileSync(w.cert)).issuer, /cluster CA 2/, `${w.name} re-issued by the new CA`);
    await restartW(w, old);
    mark(`${w.name} restarted`);
    await Promise.all([loopA.progress(2), loopC.progress(2)]);
  }
  await certs('rotate-ca', 'switch');
  mark('switch');
  const gwSwitched = normalizeSerial(new X509Certificate(readFileSync(join(dir, 'gateway.pem'))).serialNumber);
  await waitFor(async () => (await servedSerial(gw, carol)) === gwSwitched, { timeoutMs: 15_000, what: 'the new-CA gateway certificate served' });
  await Promise.all([loopA.progress(2), loopC.progress(2)]);
  await certs('renew', '--name', 'alice'); // the last old-CA certificate: finish is refused until it is renewed
  const finishAt = Date.now();
  await certs('rotate-ca', 'finish');
  mark('finish');
  const rotationMs = Date.now() - rotationStarted;
  const removed = await gw.waitForLog((l) => l.event === 'ca_removed', 15_000, 'ca_removed');
  t.ok(Number(removed.sessions_closed) >= 1, `finish closed the old-CA sessions (${String(removed.sessions_closed)})`);
  t.ok((removed.serials as string[]).includes(aliceOriginal.serial), 'among them the client still on its old-CA certificate');
  await loopC.progress(3);
  t.same(stepErrors(loopC), [], 'the computation of the client from after begin never failed');
  t.same(stepErrors(loopA, finishAt), [], 'the old-CA client computed without error until finish cut it off');

  // After finish: workers started with bundles that trust the new CA only still work with the running scheduler.
  t.equal(splitCount(readFileSync(w1.ca, 'utf8')), 1, 'finish left the new CA alone in the bundles');
  await restartW(w1, serial(w1));
  await loopC.progress(3);
  t.same(stepErrors(loopC), [], 'a worker trusting only the new CA is reached by the never-restarted scheduler');
  t.equal(loopC.lastReached(), 2, 'client.run reached both workers, through the scheduler');
  t.ok(scheduler.alive(), 'the scheduler ran through it all without a restart');

  // An old-CA certificate is refused, with its reason.
  await new Promise<void>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(join(dir, 'ca.pem'), 'utf8'), cert: aliceOriginal.pem, key: aliceOriginal.keyPem, checkServerIdentity: () => undefined });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
  });
  const refused = await gw.waitForLog((l) => l.event === 'connection_refused' && l.claimed_uri === 'spiffe://life/client/alice' && l.serial === aliceOriginal.serial, 10_000, 'refusal');
  t.match(refused, { level: 'audit', reason: 'unknown_ca' });

  // The gateway cut nothing but the old-CA sessions at finish, and no connection that lived through a step failed.
  const ends = gw.lines.filter((l) => l.event === 'connection_closed');
  const acceptedAt = new Map(gw.lines.filter((l) => l.event === 'connection_accepted').map((l) => [l.conn, Date.parse(String(l.time))]));
  const unexpected = ends.filter((l) => dropped(l, acceptedAt.get(l.conn) ?? 0, steps, stopped, aliceOriginal.serial));
  t.same(unexpected, [], `no connection dropped that was not meant to (${ends.length} closes reviewed)`);
  const denials = ends.filter((l) => l.reason === 'policy_denied');
  if (denials.length > 0) t.comment(`policy denials at connection start, not lifecycle related: ${[...new Set(denials.map((l) => `${String(l.role)}: ${String(l.detail)}`))].join('; ')} (${denials.length})`);
  const racing = [...loopA.failures(), ...loopC.failures()].length - stepErrors(loopA, finishAt).length - stepErrors(loopC).length - loopA.failures().filter((f) => f.at >= finishAt).length;
  t.comment(`Dask ${v.id}: the whole CA rotation (begin, re-issue, 2 worker restarts, switch, finish) took ${(rotationMs / 1000).toFixed(1)} s; `
    + `(${marks.map(([w, ms]) => `${w} at ${(ms / 1000).toFixed(1)} s`).join(', ')}); `
    + `computations: ${loopA.oks()} (client from before) + ${loopC.oks()} (client from after begin); ${racing} iteration(s) met a worker being stopped`);
  await Promise.all([loopA.proc.stop('SIGKILL'), loopC.proc.stop('SIGKILL')]);
}


/**
 * A drop that was not meant to be: the gateway cutting anyone but the old-CA
 * client at finish, or a connection that lived through a lifecycle step
 * ending in an error. Ends of processes this test stopped, and Dask's own
 * closes (peer or scheduler), are not drops.
 */
function dropped(l: LogLine, acceptedAt: number, steps: readonly number[], stopped: ReadonlySet<string>, cutAtFinish: string): boolean {
  if (l.serial === cutAtFinish && l.reason === 'revoked') return false;
  if (l.reason === 'revoked' || l.reason === 'expired') return true;
  if ((typeof l.serial === 'string' && stopped.has(l.serial)) || l.reason === 'peer_closed' || l.reason === 'scheduler_closed') return false;
  const closedAt = Date.parse(String(l.time));
  return steps.some((s) => acceptedAt < s && s < closedAt);
}

function splitCount(pem: string): number {
  return (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;
}

function servedSerial(gw: TestGateway, id: TlsFiles): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(id.ca, 'utf8'), cert: readFileSync(id.cert), key: readFileSync(id.key), checkServerIdentity: () => undefined }, () => {
      resolve(normalizeSerial(s.getPeerCertificate().serialNumber));
      s.destroy();
    });
    s.on('error', reject);
  });
}

if (requireDask(t, DASK_2026)) {
  eachDaskVersion(t, 'renewal and a whole CA rotation under a running computation', async (t, v) => {
    const started = Date.now();
    await lifecycle(t, v);
    t.comment(`Dask ${v.id}: wall time of the whole test ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
}
