/**
 * Faults a running gateway must survive in place: the scheduler killed and
 * restarted (real Dask), certificate and revocation files replaced by
 * garbage (old material kept, logged, counted), clock jumps (the injected
 * clock, ctx.now) with a certificate expiring while connected, and a full
 * disk under the telemetry spool and the token store (small tmpfs mounts).
 * For each: the gateway stays up, nothing stored is lost or corrupted, and
 * the behaviour is logged and counted.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import Database from 'better-sqlite3';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { clientPrelude, requireDask, runClient, startScheduler } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { probeTls } from '../terminator/tls-client.js';
import { resolveRunConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics, type GatewayMetrics } from '../../src/runtime/metrics.js';
import { SessionRegistry } from '../../src/runtime/sessions.js';
import { openTrust } from '../../src/runtime/material.js';
import type { GatewayContext } from '../../src/runtime/context.js';
import { startTerminator } from '../../src/terminator/terminator.js';
import { startTelemetry, telemetrySettings } from '../../src/telemetry/telemetry.js';
import { crlPathFor, startDashboard } from '../../src/dashboard/index.js';
import { verify as verifySpoolRecord } from '../../src/telemetry/spool.js';
import { TokenStore } from '../../src/tokens/store.js';
import { GatewayError } from '../../src/errors/base.js';
import { statePath } from '../../src/pki/state-dir.js';
import { testReceiver } from '../telemetry/helpers.js';
import { countingLog, startEcho, startHttpUpstream } from './harness.js';

t.setTimeout(300_000);

async function counter(m: GatewayMetrics, name: keyof GatewayMetrics, labels: Record<string, string> = {}): Promise<number> {
  const metric = m[name] as { get(): Promise<{ values: Array<{ labels: Record<string, string | number>; value: number }> }> };
  const v = await metric.get();
  return v.values.filter((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l)).reduce((a, x) => a + x.value, 0);
}

/** An open mTLS session through 8786 to the echo upstream: resolves once bytes went through and back. */
function liveSession(port: number, cluster: TestCluster, creds: { certPem: string; keyPem: string }): Promise<TLSSocket & { gone: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' }, () => s.write('ping'));
    const gone = new Promise<void>((r) => s.once('close', () => r()));
    s.on('error', () => {});
    s.once('data', () => resolve(Object.assign(s, { gone })));
    setTimeout(() => reject(new Error('no echo')), 15_000).unref();
  });
}

/** The fingerprint of the certificate 8786 presents right now. */
function servedFingerprint(port: number, cluster: TestCluster, creds: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' }, () => {
      resolve(s.getPeerX509Certificate()!.fingerprint256);
      s.destroy();
    });
    s.on('error', reject);
  });
}

/** A tmpfs of `kb` KiB (root only); undefined when mounting is not permitted here. Unmounted in teardown. */
function tmpfs(t: { teardown(fn: () => unknown): void }, kb: number): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'sgw-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kb}k,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  t.teardown(() => {
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Fills the filesystem holding `dir` until ENOSPC; returns the filler file (delete it to free the space). */
function fill(dir: string): string {
  const file = join(dir, 'filler');
  spawnSync('sh', ['-c', `dd if=/dev/zero of=${file} bs=4k 2>/dev/null; sync`]);
  return file;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let cluster: TestCluster;
t.before(async () => { cluster = await makeTestCluster(); });
t.teardown(() => cluster?.cleanup());

t.test('the scheduler killed and restarted: live sessions end, new ones are refused and counted, then served again', async (t) => {
  if (!requireDask(t)) return;
  const sched = await cluster.issue('scheduler', 'scheduler');
  const tls = { ca: sched.caPath, cert: sched.certPath, key: sched.keyPath };
  const first = await startScheduler({ tls, t });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${first.port}`, t, flags: { 'upstream-connect-timeout-ms': '2000', 'failed-handshake-rate': '10000' } });
  const alice = await cluster.issue('client', 'alice-sched');
  const files = { ca: alice.caPath, cert: alice.certPath, key: alice.keyPath };
  const live = await probeTlsLive(gw, cluster, alice);
  const errorsBefore = await counter(gw.gw.context.metrics, 'upstreamErrorsTotal', { upstream: 'scheduler' });
  await first.stop('SIGKILL');
  await waitFor(() => live.ended(), { timeoutMs: 15_000, what: 'the live session closed when its scheduler died' })
    .catch((e: Error) => { throw new Error(`${e.message}; gateway said ${JSON.stringify(gw.lines.filter((l) => l.event.startsWith('connection')))}`); });
  t.pass('a session whose scheduler died is closed, not left hanging');
  const r = await probeTls(gw.port, { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem });
  t.equal(r.outcome, 'closed', 'a new peer is closed cleanly while the scheduler is down');
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${r.localPort}`, 10_000);
  t.equal(line.reason, 'upstream_unavailable', 'audited as upstream_unavailable');
  t.ok(await counter(gw.gw.context.metrics, 'upstreamErrorsTotal', { upstream: 'scheduler' }) > errorsBefore, 'counted in upstream_errors_total{upstream="scheduler"}');
  await startScheduler({ tls, t, port: first.port });
  const out = await runClient<{ r: number }>(`${clientPrelude(gw.address, files)}\nprint(json.dumps({"r": c.submit(lambda: 6 * 7).result() if c.scheduler_info()["workers"] else 42}))\nc.close()\n`);
  t.equal(out.r, 42, 'a Dask client is served by the restarted scheduler');
});

/** A TLS session held open through 8786 (the Dask listener greets first, so the handshake completes and data flows). */
async function probeTlsLive(gw: TestGateway, c: TestCluster, creds: { certPem: string; keyPem: string }): Promise<{ ended: () => boolean }> {
  let ended = false;
  const localPort = await new Promise<number>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: c.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' }, () => resolve(s.localPort!));
    s.on('error', () => {});
    s.on('data', () => {}); // flowing, so the gateway's FIN is seen
    s.on('close', () => { ended = true; });
    setTimeout(() => reject(new Error('no session')), 15_000).unref();
  });
  // The gateway dials upstream after the handshake and audits the connection once it is through.
  await gw.waitForLog((l) => l.event === 'connection_accepted' && l.peer === `127.0.0.1:${localPort}`, 10_000, 'the session forwarded upstream');
  return { ended: () => ended };
}

t.test('certificate, key, CA and revocation files replaced by garbage: the old material is kept, logged and counted', async (t) => {
  const echo = await startEcho(t);
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { 'failed-handshake-rate': '10000' } });
  const alice = await cluster.issue('client', 'alice-garbage');
  const revoked = await cluster.issue('client', 'revoked-garbage');
  await cluster.revoke(revoked.serial);
  await gw.waitForLog((l) => l.event === 'trust_reloaded' && (l.newly_revoked as string[] | undefined)?.includes(revoked.serial) === true, 15_000, 'revocation applied');
  const fingerprint = await servedFingerprint(gw.port, cluster, alice);
  const m = gw.gw.context.metrics;
  for (const file of ['gatewayCert', 'gatewayKey', 'caCert', 'revoked', 'crl'] as const) {
    const path = statePath(cluster.dir, file);
    const original = readFileSync(path);
    const failuresBefore = await counter(m, 'reloadsTotal', { what: 'tls', result: 'failure' });
    const mark = gw.lines.length;
    writeFileSync(path, `-----BEGIN CERTIFICATE-----\n${Buffer.from('garbage '.repeat(40)).toString('base64')}\n-----END CERTIFICATE-----\n{"not":`, { mode: 0o600 });
    const outcome = await gw.waitForLog((l) => gw.lines.indexOf(l) >= mark && /^trust_reload/.test(l.event), 15_000, `reload after garbage in ${file}`);
    if (file === 'crl') {
      // The daemon reads revocations from revoked.json; crl.pem is for other consumers, so nothing it loads changed.
      t.equal(outcome.event, 'trust_reload_unchanged', 'garbage in crl.pem: the reload finds nothing it loads changed');
    } else {
      t.equal(outcome.event, 'trust_reload_failed', `garbage in ${file}: the reload fails and is logged`);
      t.equal(outcome.level, 'error', 'at error level');
      t.ok(await counter(m, 'reloadsTotal', { what: 'tls', result: 'failure' }) > failuresBefore, 'counted in reloads_total{what="tls",result="failure"}');
    }
    t.equal(await servedFingerprint(gw.port, cluster, alice), fingerprint, 'the old certificate is still served and peers still authenticate');
    const refusedBefore = await counter(m, 'refusalsTotal', { port: '8786', reason: 'revoked' });
    const r = await probeTls(gw.port, { ca: cluster.caPem, cert: revoked.certPem, key: revoked.keyPem });
    t.equal(r.outcome, 'closed', 'the revoked certificate gets no session');
    // Audited in full the first time; its repeats from the same source are coalesced (log/coalesce.ts), counted every time.
    await waitFor(async () => (await counter(m, 'refusalsTotal', { port: '8786', reason: 'revoked' })) > refusedBefore, { timeoutMs: 10_000, what: 'the refusal counted' });
    t.pass('the revoked certificate is still refused as revoked (the old revocation list is kept)');
    writeFileSync(path, original, { mode: 0o600 });
  }
  t.equal(await servedFingerprint(gw.port, cluster, alice), fingerprint, 'the restored files serve the same certificate');
});

t.test('clock jumps: a certificate expiring while connected is cut; jumps either way judge new peers by the gateway clock', async (t) => {
  const echo = await startEcho(t);
  const log = countingLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const logger = createLogger({ stream: log.stream, level: 'info' });
  const trust = await openTrust({ mode: 'dir', dir: cluster.dir }, { env: { SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase }, log: logger, metrics, pollMs: 250 });
  t.teardown(() => trust.close());
  let offsetMs = 0;
  const ctx: GatewayContext = {
    log: logger, metrics, sessions: new SessionRegistry(), trust,
    clusterId: trust.current().clusterId, stateDir: cluster.dir, allowMissingEku: false, now: () => new Date(Date.now() + offsetMs),
  };
  const term = await startTerminator(ctx, {
    listen: { host: '127.0.0.1', port: 0 }, scheduler: { host: '127.0.0.1', port: echo.port }, handshakeTimeoutMs: 5000,
    maxConnections: 100, failedHandshakesPerMinute: 10_000, upstreamConnectTimeoutMs: 2000, idleTimeoutMs: 0,
    maxHandshakes: 25, maxHandshakesPerAddress: 25, maxPerAddress: 100, maxPerIdentity: 100, reserveWorkersPercent: 0, reserveClientsPercent: 0,
  });
  t.teardown(() => term.close());
  const port = term.address.port;
  const shortLived = await cluster.issue('client', 'one-day', { days: 1 });
  const longLived = await cluster.issue('client', 'one-year', { days: 365 });
  const a = await liveSession(port, cluster, shortLived);
  const b = await liveSession(port, cluster, longLived);
  const cutBefore = await counter(metrics, 'revocationsAppliedTotal', { kind: 'certificate' });

  offsetMs = 2 * 86_400_000; // two days ahead
  await Promise.race([a.gone, new Promise((_, r) => setTimeout(() => r(new Error('the expired session was not cut within 10 s')), 10_000))]);
  t.pass('the session whose certificate expired was cut');
  await waitFor(() => log.count('connection_closed:expired') === 1, { timeoutMs: 10_000, what: 'connection_closed reason expired' });
  t.equal(log.recent().find((l) => l.event === 'connection_closed' && l.reason === 'expired')?.level, 'audit', 'audited as connection_closed reason expired');
  t.ok(await counter(metrics, 'revocationsAppliedTotal', { kind: 'certificate' }) > cutBefore, 'counted in revocations_applied_total{kind="certificate"}');
  t.notOk(b.destroyed, 'a session whose certificate is still valid stays open');
  const r1 = await probeTls(port, { ca: cluster.caPem, cert: shortLived.certPem, key: shortLived.keyPem });
  t.equal(r1.outcome, 'closed', 'a new handshake with the expired certificate is refused');
  await waitFor(() => log.count('connection_refused:expired') >= 1, { timeoutMs: 10_000, what: 'refusal as expired' });
  t.pass('refused with reason expired, judged by the gateway clock');

  offsetMs = -2 * 86_400_000; // two days behind: certificates issued today are not valid yet
  const fresh = await cluster.issue('client', 'fresh');
  const r2 = await probeTls(port, { ca: cluster.caPem, cert: fresh.certPem, key: fresh.keyPem });
  t.equal(r2.outcome, 'closed', 'with the clock behind, a certificate from today is refused');
  await waitFor(() => log.count('connection_refused:not_yet_valid') >= 1, { timeoutMs: 10_000, what: 'refusal as not_yet_valid' });
  t.pass('refused with reason not_yet_valid');

  offsetMs = 0;
  const c = await liveSession(port, cluster, fresh);
  t.ok(!c.destroyed, 'with the clock back, the same certificate is served');
  t.equal(log.problems.filter((l) => l.level === 'error').length, 0, 'no error lines');
  b.destroy();
  c.destroy();
});

t.test('disk full under the telemetry spool: batches are refused and counted, stored ones stay intact, spooling resumes', async (t) => {
  const mnt = tmpfs(t, 512);
  if (!mnt) return t.plan(0, 'mounting a tmpfs is not permitted here (needs root with CAP_SYS_ADMIN)');
  const work = mkdtempSync(join(tmpdir(), 'sgw-cp-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const receiver = await testReceiver(t, work);
  const credential = receiver.enroll(cluster.clusterId);
  const spoolDir = join(mnt, 'spool');
  const log = countingLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const config = resolveRunConfig({
    flags: {
      dir: cluster.dir, 'control-plane': 'https://127.0.0.1:9', 'control-plane-ca': receiver.caPath, 'control-plane-credential': credential,
      'spool-dir': spoolDir, 'telemetry-interval': '50ms', 'scrape-interval': '1s', 'metrics-listen': '127.0.0.1:0', 'dashboard-upstream': '127.0.0.1:9',
    },
    env: {},
  });
  const ctx: GatewayContext = {
    log: createLogger({ stream: log.stream, level: 'info' }), metrics, sessions: new SessionRegistry(),
    trust: { current: () => { throw new Error('unused'); }, isRevoked: () => false, onChange: () => () => undefined, reload: async () => true },
    clusterId: cluster.clusterId, stateDir: undefined, allowMissingEku: false, now: () => new Date(),
  };
  const settings = telemetrySettings(config.telemetry, { stateDir: undefined, dashboardUpstream: config.dashboard.upstream });
  const telemetry = await startTelemetry(ctx, settings, { backoff: { baseMs: 200, capMs: 1000 }, connectTimeoutMs: 1000 });
  t.teardown(() => telemetry.close());
  await waitFor(() => existsSync(spoolDir) && readdirSync(spoolDir).filter((n) => n.endsWith('.batch')).length >= 3, { timeoutMs: 30_000, what: 'batches spooled' });
  const filler = fill(mnt);
  await waitFor(async () => (await counter(metrics, 'spoolDroppedTotal', { reason: 'write_failed' })) >= 3, { timeoutMs: 30_000, what: 'write failures counted' });
  t.pass('batches that do not fit are counted in telemetry_spool_dropped_total{reason="write_failed"}');
  t.ok(log.count('telemetry_batch_failed') >= 1, 'and logged (telemetry_batch_failed)');
  const stored = new Map(readdirSync(spoolDir).filter((n) => n.endsWith('.batch')).map((n) => [n, readFileSync(join(spoolDir, n))]));
  const corrupt = [...stored].filter(([n, b]) => typeof verifySpoolRecord(b, Number(n.slice(0, 20))) === 'string').map(([n]) => n);
  t.same(corrupt, [], `all ${stored.size} stored batches are whole (header and CRC)`);
  const spooledBefore = await counter(metrics, 'streamBatchesTotal', { outcome: 'spooled' });
  rmSync(filler);
  await waitFor(async () => (await counter(metrics, 'streamBatchesTotal', { outcome: 'spooled' })) > spooledBefore + 2, { timeoutMs: 30_000, what: 'spooling resumed' });
  t.pass('with space back, spooling resumes');
  const still = [...stored].filter(([n, b]) => !existsSync(join(spoolDir, n)) || sha(readFileSync(join(spoolDir, n))) !== sha(b)).map(([n]) => n);
  t.same(still, [], 'every batch stored before the disk filled is unchanged');
});

t.test('disk full under the token store: creating fails cleanly, logins keep working, the failure is logged and counted, nothing is corrupted', async (t) => {
  const mnt = tmpfs(t, 1024);
  if (!mnt) return t.plan(0, 'mounting a tmpfs is not permitted here (needs root with CAP_SYS_ADMIN)');
  const stateDir = join(mnt, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  const store = TokenStore.open(stateDir);
  t.teardown(() => store.close());
  const view = store.create({ name: 'viewer', scope: 'view' });
  const operator = store.create({ name: 'operator', scope: 'admin' });
  const idsBefore = store.list({ includeRevoked: true }).map((r) => r.id).sort();
  const up = await startHttpUpstream(t);
  const echo = await startEcho(t);
  // The composed dashboard is off; this one is the same component over the token store on the small disk.
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${echo.port}`, t, flags: { dashboard: 'false', 'dashboard-upstream': `127.0.0.1:${up.port}` } });
  const ctx = gw.gw.context;
  const dash = await startDashboard(ctx, { ...gw.gw.config.dashboard, enabled: true, listen: { host: '127.0.0.1', port: 0 }, crlPath: crlPathFor(gw.gw.settings.pki) }, { tokens: store });
  t.teardown(() => dash.close());
  const get = (token: string) => new Promise<number>((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port: dash.address!.port, path: '/status', servername: 'localhost', ca: cluster.caPem, agent: false, headers: { authorization: `Bearer ${token}`, host: 'localhost' } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
    req.on('error', reject);
    req.end();
  });
  t.equal(await get(view.token), 200, 'a token works before the disk fills');
  fill(mnt);
  const err = (() => { try { store.create({ name: 'late', scope: 'view' }); return undefined; } catch (e) { return e; } })();
  t.ok(err instanceof GatewayError, 'creating a token on a full disk throws a GatewayError, not a raw SQLite error');
  t.equal((err as GatewayError | undefined)?.code, 'GW_TOKENS_STORE_FULL', 'with code GW_TOKENS_STORE_FULL');
  // A token not used yet: the cache records its first use, and that write hits the full disk.
  t.equal(await get(operator.token), 200, 'an existing token still logs in on a full disk');
  await waitFor(async () => (await counter(gw.gw.context.metrics, 'tokenStoreErrorsTotal')) > 0 || undefined, { timeoutMs: 15_000, what: 'token store error counted' }).catch(() => undefined);
  const counted = await counter(gw.gw.context.metrics, 'tokenStoreErrorsTotal');
  const logged = gw.lines.some((l) => l.event === 'dashboard_tokens_store_error');
  t.ok(counted > 0 && logged, `the failed last-use write is logged (dashboard_tokens_store_error) and counted (token_store_errors_total = ${counted})`);
  rmSync(join(mnt, 'filler'));
  t.ok(store.create({ name: 'after', scope: 'view' }).token, 'with space back, tokens can be created again');
  t.same(store.list({ includeRevoked: true }).map((r) => r.id).filter((id) => idsBefore.includes(id)).sort(), idsBefore, 'every token from before is still there');
  const db = new Database(join(stateDir, 'tokens.db'), { readonly: true });
  t.same(db.pragma('integrity_check'), [{ integrity_check: 'ok' }], 'tokens.db passes SQLite integrity_check');
  db.close();
});
