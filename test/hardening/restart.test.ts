/**
 * Faults that need the gateway as its own process:
 *   - the control plane unreachable for a while: the gateway serves 8786 and
 *     8787 all along, spools batches, counts the failures, and delivers the
 *     backlog once the control plane is back;
 *   - the gateway killed with SIGKILL in the middle of traffic, token use and
 *     spool writes, then restarted: the PKI files are byte-identical, every
 *     certificate and token is still listed, tokens.db passes SQLite's
 *     integrity check, every spooled batch from before the kill is still
 *     there and valid, and both ports serve again.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import Database from 'better-sqlite3';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { freePort } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { readIndex } from '../../src/pki/records.js';
import { statePath, type StateFile } from '../../src/pki/state-dir.js';
import { TokenStore } from '../../src/tokens/store.js';
import { verify as verifySpoolRecord } from '../../src/telemetry/spool.js';
import { testReceiver, tempDir } from '../telemetry/helpers.js';
import { startEcho, startHttpUpstream } from './harness.js';
import { metricValue, spawnGatewayChild, type GatewayChild } from './child.js';
import { HANDSHAKE, msg } from '../wire/wire-helpers.js';

/** A Dask handshake: the gateway's inspection holds anything short of a whole message. */
const PING = msg(HANDSHAKE);

t.setTimeout(300_000);

const PKI_FILES: StateFile[] = ['state', 'caCert', 'caKey', 'gatewayCert', 'gatewayKey', 'index', 'revoked', 'crl'];

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

function pkiHashes(dir: string): Record<string, string> {
  return Object.fromEntries(PKI_FILES.map((f) => statePath(dir, f)).filter(existsSync).map((p) => [p, sha(p)]));
}

function spoolFiles(dir: string): Map<string, Buffer> {
  const d = join(dir, 'spool');
  if (!existsSync(d)) return new Map();
  return new Map(readdirSync(d).filter((n) => n.endsWith('.batch')).map((n) => [n, readFileSync(join(d, n))]));
}

function echoOnce(port: number, cluster: TestCluster, creds: { certPem: string; keyPem: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: cluster.caPem, cert: creds.certPem, key: creds.keyPem, servername: 'localhost' }, () => s.write(PING));
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no echo through 8786')); }, 15_000);
    s.on('data', (d: Buffer) => { clearTimeout(timer); s.end(); resolve(d.equals(PING) ? 'ping' : d.toString('hex')); });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

function dashboardGet(port: number, cluster: TestCluster, token: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/status', servername: 'localhost', ca: cluster.caPem, agent: false, headers: { authorization: `Bearer ${token}`, host: `localhost:${port}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

t.test('control plane unreachable, then the gateway SIGKILLed mid-traffic and restarted: nothing stored is lost or corrupted', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = await startEcho(t);
  const up = await startHttpUpstream(t);
  const work = tempDir(t, 'sgw-restart-');
  const receiver = await testReceiver(t, work);
  const credential = receiver.enroll(cluster.clusterId);
  const cpPort = await freePort();
  const alice = await cluster.issue('client', 'alice');
  await cluster.issue('worker', 'w1');
  await cluster.revoke((await cluster.issue('client', 'bob')).serial);
  const store = TokenStore.open(cluster.dir);
  const viewToken = store.create({ name: 'viewer', scope: 'view' }).token;
  store.create({ name: 'operator', scope: 'admin', expiresDays: 30 });
  const tokensBefore = store.list({ includeRevoked: true }).map((r) => r.id).sort();
  store.close();
  const certsBefore = readIndex(cluster.dir).certificates.map((c) => `${c.serial}:${c.revokedAt ?? 'valid'}`).sort();
  const hashesBefore = pkiHashes(cluster.dir);

  const flags = {
    dir: cluster.dir, listen: '127.0.0.1:0', scheduler: `127.0.0.1:${echo.port}`, 'failed-handshake-rate': '100000',
    'dashboard-listen': '127.0.0.1:0', 'dashboard-upstream': `127.0.0.1:${up.port}`, 'metrics-listen': '127.0.0.1:0',
    'control-plane': `https://127.0.0.1:${cpPort}`, 'control-plane-ca': receiver.caPath, 'control-plane-credential': credential,
    'telemetry-interval': '100ms', 'scrape-interval': '1s',
    // --control-plane opens the credentials endpoint, by default on 0.0.0.0:8789: a port another test may hold.
    'credentials-listen': '127.0.0.1:0',
  };
  const first: GatewayChild = await spawnGatewayChild({ t, flags, passphrase: cluster.passphrase });

  // The control plane is down: batches pile up in the spool, failures are counted, both ports serve.
  await waitFor(() => spoolFiles(cluster.dir).size >= 10, { timeoutMs: 60_000, what: 'ten batches spooled while the control plane is down' });
  t.ok(await metricValue(first.ports.metrics, 'scheduler_gateway_telemetry_stream_errors_total', { reason: 'network' }) > 0, 'control-plane connection failures counted (stream_errors_total{reason="network"})');
  t.ok(first.lines.some((l) => l.event === 'telemetry_stream_failed'), 'and logged (telemetry_stream_failed)');
  t.equal(await echoOnce(first.ports.p8786, cluster, alice), 'ping', '8786 serves while the control plane is down');
  t.equal(await dashboardGet(first.ports.p8787, cluster, viewToken), 200, '8787 serves while the control plane is down');

  // Traffic in flight when the process dies: dashboard requests (token last-use writes) and 8786 sessions.
  let stop = false;
  let rounds = 0;
  const traffic = (async () => {
    while (!stop && rounds < 500) {
      await Promise.allSettled([dashboardGet(first.ports.p8787, cluster, viewToken), echoOnce(first.ports.p8786, cluster, alice)]);
      rounds++;
    }
  })();
  await waitFor(() => rounds >= 3, { timeoutMs: 30_000, what: 'traffic flowing on both ports' });
  const spoolBefore = spoolFiles(cluster.dir);
  t.same(first.errors(), [], 'no error lines while the control plane was away (its failures are warnings, counted)');
  await first.kill('SIGKILL');
  stop = true;
  await traffic;
  t.ok(first.exited(), 'the first gateway process is gone (SIGKILL)');

  const second = await spawnGatewayChild({ t, flags, passphrase: cluster.passphrase });
  t.same(pkiHashes(cluster.dir), hashesBefore, 'CA, keys, certificates, index, revocation list and CRL are byte-identical');
  t.same(readIndex(cluster.dir).certificates.map((c) => `${c.serial}:${c.revokedAt ?? 'valid'}`).sort(), certsBefore, 'every issued certificate is still listed, statuses unchanged');
  const after = TokenStore.open(cluster.dir);
  t.same(after.list({ includeRevoked: true }).map((r) => r.id).sort(), tokensBefore, 'every token is still listed');
  after.close();
  const db = new Database(join(cluster.dir, 'tokens.db'), { readonly: true });
  t.same(db.pragma('integrity_check'), [{ integrity_check: 'ok' }], 'tokens.db passes SQLite integrity_check');
  db.close();
  const spoolAfter = spoolFiles(cluster.dir);
  const lost = [...spoolBefore.keys()].filter((n) => !spoolAfter.has(n) || !spoolAfter.get(n)!.equals(spoolBefore.get(n)!));
  t.same(lost, [], `all ${spoolBefore.size} batches spooled before the kill are still there, byte for byte`);
  const bad = [...spoolAfter].filter(([n, b]) => typeof verifySpoolRecord(b, Number(n.slice(0, 20))) === 'string').map(([n]) => n);
  t.same(bad, [], 'every batch file passes its header and CRC check');
  t.not(second.pid, first.pid, 'a new process');
  t.ok(second.lines.some((l) => l.event === 'gateway_started'), 'which logged gateway_started');
  t.equal(await echoOnce(second.ports.p8786, cluster, alice), 'ping', '8786 serves after the restart');
  t.equal(await dashboardGet(second.ports.p8787, cluster, viewToken), 200, 'the token still works on 8787 after the restart');

  // The control plane comes back: the backlog is delivered and acknowledged, in order, without gaps in what was kept.
  await receiver.start(undefined, cpPort);
  await waitFor(async () => (await metricValue(second.ports.metrics, 'scheduler_gateway_telemetry_batches_total', { outcome: 'acked' })) >= spoolBefore.size, { timeoutMs: 60_000, what: 'backlog acknowledged' });
  const stored = new Set(receiver.db.batches(cluster.clusterId).map((b) => b.seq));
  const missing = [...spoolBefore.keys()].map((n) => Number(n.slice(0, 20))).filter((s) => !stored.has(s));
  t.same(missing, [], 'the control plane received every batch spooled before the kill');
  t.same(second.errors(), [], 'no error lines in the restarted gateway log');
  await second.kill('SIGTERM');
});
