import t, { type Test } from 'tap';
import { join } from 'node:path';
import { startTelemetry } from '../../src/telemetry/telemetry.js';
import { createRevocationSink, pkiCertificatePersister, tokenStorePersister } from '../../src/runtime/revocation-sink.js';
import { TokenStore } from '../../src/tokens/store.js';
import { readRevokedSerials } from '../../src/pki/revocation.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import { makeTestCluster } from '../helpers/pki.js';
import { captureLogger, makeContext, telemetryConfig, tempDir, testReceiver } from './helpers.js';
import { waitFor } from '../helpers/wait.js';

async function setup(t: Test) {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const cap = captureLogger();
  const ctx = makeContext({
    clusterId: cluster.clusterId, stateDir: cluster.dir, log: cap.log,
    config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster.clusterId), intervalMs: 500 }),
  });
  const store = TokenStore.open(cluster.dir);
  t.teardown(() => store.close());
  const sink = createRevocationSink({
    sessions: ctx.sessions, log: ctx.log, trust: ctx.trust,
    persistCertificate: pkiCertificatePersister(cluster.dir, cluster.passphrase),
    persistToken: tokenStorePersister(store),
  });
  const tel = await startTelemetry(ctx, ctx.telemetry, { revocations: sink, backoff: { baseMs: 50, capMs: 300 } });
  t.teardown(() => tel.close());
  await waitFor(() => rx.db.batches(cluster.clusterId).length > 0, { what: 'the gateway connected to the receiver' });
  return { cluster, rx, ctx, store, lines: cap.lines };
}

function fakeSession(kind: 'dask' | 'dashboard-ws', ids: { serial?: string; tokenId?: string }) {
  let closedAt: number | undefined;
  let reason: string | undefined;
  return {
    session: { kind, ...ids, close(r: string) { closedAt = Date.now(); reason = r; } },
    closedAt: () => closedAt,
    reason: () => reason,
  };
}

t.test('a certificate revocation sent by the receiver closes the live session within 2 s, persisted and audited', async (t) => {
  const { cluster, rx, ctx, lines } = await setup(t);
  const alice = await cluster.issue('client', 'alice');
  const bystander = await cluster.issue('client', 'bob');
  const live = fakeSession('dask', { serial: normalizeSerial(alice.serial) });
  const other = fakeSession('dask', { serial: normalizeSerial(bystander.serial) });
  ctx.sessions.add(live.session as never);
  ctx.sessions.add(other.session as never);
  const sent = Date.now();
  const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-certificate', { serial: alice.serial, reason: 'keyCompromise' });
  await waitFor(() => live.closedAt(), { what: 'the session to close', timeoutMs: 5000, intervalMs: 10 });
  t.ok(live.closedAt()! - sent < 2000, `closed ${live.closedAt()! - sent} ms after the receiver queued the command`);
  t.equal(live.reason(), 'revoked');
  t.equal(other.closedAt(), undefined, 'a session with another certificate stays open');
  t.ok(readRevokedSerials(cluster.dir).has(normalizeSerial(alice.serial)), 'revoked.json holds the serial');
  await waitFor(() => rx.db.command(id)?.status === 'applied', { what: 'the receiver to record the result' });
  t.ok(lines().some((l) => l['level'] === 'audit' && l['event'] === 'revocation_certificate' && l['serial'] === normalizeSerial(alice.serial)), 'audited');
});

t.test('a token revocation by name closes the dashboard WebSocket of that token within 2 s', async (t) => {
  const { cluster, rx, ctx, store } = await setup(t);
  const { record } = store.create({ name: 'carol' });
  const ws = fakeSession('dashboard-ws', { tokenId: record.id });
  ctx.sessions.add(ws.session as never);
  const sent = Date.now();
  const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-token', { token: 'carol' });
  await waitFor(() => ws.closedAt(), { what: 'the WebSocket to close', timeoutMs: 5000, intervalMs: 10 });
  t.ok(ws.closedAt()! - sent < 2000, `closed ${ws.closedAt()! - sent} ms after the receiver queued the command`);
  t.ok(store.list({ includeRevoked: true }).find((r) => r.id === record.id)?.revokedAt, 'the token store marks it revoked');
  await waitFor(() => rx.db.command(id)?.status === 'applied', { what: 'the receiver to record the result' });
});

t.test('a revocation of an unknown serial is reported as failed and changes nothing', async (t) => {
  const { cluster, rx } = await setup(t);
  const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-certificate', { serial: 'abcdef0123', reason: 'keyCompromise' });
  await waitFor(() => rx.db.command(id)?.status !== 'pending', { what: 'the result' });
  const c = rx.db.command(id)!;
  t.equal(c.status, 'failed');
  t.match(c.result, /abcdef0123/);
  t.equal(readRevokedSerials(cluster.dir).size, 0);
});

t.test('revoking an already revoked certificate again is applied, not an error (at-least-once delivery)', async (t) => {
  const { cluster, rx } = await setup(t);
  const dave = await cluster.issue('client', 'dave');
  await cluster.revoke(dave.serial);
  const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-certificate', { serial: dave.serial, reason: 'superseded' });
  await waitFor(() => rx.db.command(id)?.status !== 'pending', { what: 'the result' });
  t.equal(rx.db.command(id)!.status, 'applied');
});
