import t, { type Test } from 'tap';
import { join } from 'node:path';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { WebSocketServer } from 'ws';
import { createServer as createNetServer, type Socket } from 'node:net';
import { startTelemetry } from '../../src/telemetry/telemetry.js';
import { devTls } from '../../src/control-plane-dev/dev-cert.js';
import { makeContext, metricValue, storedSeqs, telemetryConfig, tempDir, testReceiver, captureLogger, type TelemetryTestContext } from './helpers.js';
import { waitFor } from '../helpers/wait.js';
import type { ReceiverDb } from '../../src/control-plane-dev/receiver-db.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { aggregatedReader } from '../../src/runtime/metrics-aggregate.js';
import { parsePrometheusText } from '../../src/telemetry/prom-parse.js';

const FAST = { backoff: { baseMs: 50, capMs: 300 }, ackTimeoutMs: 2000 };

function assertExactlyOnce(t: Test, db: ReceiverDb, cluster: string, spooled: number) {
  const seqs = storedSeqs(db, cluster);
  t.equal(seqs.length, spooled, 'the receiver holds as many batches as the gateway made');
  t.equal(new Set(seqs).size, seqs.length, 'no seq is stored twice');
  t.same(seqs, seqs.map((_, i) => seqs[0]! + i), 'the seqs form a contiguous range: no gap');
  const bodies = db.batches(cluster);
  const produced = bodies.reduce((n, b) => n + (JSON.parse(b.body) as { samples: unknown[] }).samples.length, 0);
  t.ok(produced > 0, 'batches carry samples');
  t.equal(db.sampleCount(cluster), produced, 'every sample is stored exactly once');
}

async function spooled(ctx: TelemetryTestContext) {
  return metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'spooled' });
}

t.test('batches made while the receiver is down arrive exactly once after it comes up', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  await rx.stop(); // keep the port, leave it closed
  const cluster = 'down-then-up';
  const ctx = makeContext({ clusterId: cluster, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool') }) });
  const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  t.teardown(() => tel.close());
  await waitFor(async () => (await metricValue(ctx.metrics.spoolBatches)) >= 5, { what: '5 batches spooled while the receiver is down' });
  t.ok((await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'network' })) >= 1, 'failed connections are counted');
  t.equal(storedSeqs(rx.db, cluster).length, 0, 'nothing arrived while the receiver was down');
  await rx.start();
  await waitFor(async () => storedSeqs(rx.db, cluster).length >= 8, { what: 'at least 3 more batches after the receiver is up' });
  await tel.drain(0);
  const made = await spooled(ctx);
  await waitFor(async () => (await metricValue(ctx.metrics.spoolBatches)) === 0 && storedSeqs(rx.db, cluster).length === made, { what: 'the spool to drain' });
  assertExactlyOnce(t, rx.db, cluster, made);
  t.equal(await metricValue(ctx.metrics.spoolBytes), 0, 'the spool is empty once everything is acknowledged');
});

t.test('nacks, dropped connections and slow acks still end with every batch exactly once', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start({ nackEvery: 3, dropEvery: 5, ackDelayMs: 120 });
  const cluster = 'faulty-receiver';
  const ctx = makeContext({ clusterId: cluster, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool') }) });
  const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  t.teardown(() => tel.close());
  await waitFor(async () => storedSeqs(rx.db, cluster).length >= 12, { what: '12 batches stored', timeoutMs: 30_000 });
  await tel.drain(0);
  const made = await spooled(ctx);
  await waitFor(async () => (await metricValue(ctx.metrics.spoolBatches)) === 0 && storedSeqs(rx.db, cluster).length === made, { what: 'the spool to drain', timeoutMs: 30_000 });
  assertExactlyOnce(t, rx.db, cluster, made);
  t.ok((await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'nack' })) >= 1, 'nacks are counted');
  t.ok((await metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'duplicate' })) >= 1, 'a batch stored but not acknowledged was resent and acknowledged as a duplicate');
});

t.test('an ack slower than the timeout cuts the connection and the batch stays spooled until acknowledged', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start({ ackDelayMs: 1500 });
  const cluster = 'slow-acks';
  const ctx = makeContext({ clusterId: cluster, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool'), intervalMs: 200 }) });
  const tel = await startTelemetry(ctx, ctx.telemetry, { ...FAST, ackTimeoutMs: 300 });
  t.teardown(() => tel.close());
  await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'ack_timeout' })) >= 1, { what: 'an ack timeout' });
  await waitFor(() => storedSeqs(rx.db, cluster).length >= 1, { what: 'a stored batch' });
  t.ok((await metricValue(ctx.metrics.spoolBatches)) >= 1, 'unacknowledged batches stay in the spool');
  const seqs = storedSeqs(rx.db, cluster);
  t.equal(new Set(seqs).size, seqs.length, 'resent batches are not stored twice');
});

t.test('a control plane whose certificate is not trusted receives nothing', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const other = await devTls(join(dir, 'other-ca'));
  for (const [name, ca] of [['pinned foreign CA', other.caPath], ['system CAs', undefined]] as const) {
    await t.test(name, async (t) => {
      const cluster = name === 'system CAs' ? 'untrusted-system' : 'untrusted-pinned';
      const cap = captureLogger();
      const ctx = makeContext({ clusterId: cluster, log: cap.log, config: telemetryConfig({ controlPlane: rx.url(), ca, credential: rx.enroll(cluster), spoolDir: join(dir, cluster) }) });
      const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
      t.teardown(() => tel.close());
      await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'tls' })) >= 2, { what: 'two refused TLS connections' });
      await waitFor(async () => (await metricValue(ctx.metrics.spoolBatches)) >= 2, { what: 'a spooled batch' });
      t.equal(storedSeqs(rx.db, cluster).length, 0, 'the receiver stored nothing');
      t.equal(await metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'sent' }), 0, 'no batch was sent');
      t.ok(cap.lines().some((l) => l['event'] === 'telemetry_stream_failed' && l['reason'] === 'tls'), 'the refusal is logged');
    });
  }
});

t.test('a refused credential sends nothing and is counted as auth', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const cluster = 'wrong-credential';
  rx.enroll(cluster);
  const wrong = rx.enroll('someone-else');
  const ctx = makeContext({ clusterId: cluster, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: wrong, spoolDir: join(dir, 'spool') }) });
  const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  t.teardown(() => tel.close());
  await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'auth' })) >= 2, { what: 'two refused upgrades' });
  t.equal(storedSeqs(rx.db, cluster).length, 0, 'the receiver stored nothing');
});

t.test('gzip batches travel as binary frames and hashed labels arrive as h: values', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const cluster = 'gzip-hash';
  const ctx = makeContext({ clusterId: cluster, stateDir: dir, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool'), extra: { gzip: true, hashLabels: true } }) });
  ctx.metrics.certificateExpirySeconds.set({ certificate: 'worker/alice' }, 1000);
  const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  t.teardown(() => tel.close());
  await waitFor(() => storedSeqs(rx.db, cluster).length >= 1, { what: 'a stored batch' });
  const body = JSON.parse(rx.db.batches(cluster)[0]!.body) as { samples: { name: string; labels: Record<string, string> }[] };
  const expiry = body.samples.find((s) => s.name === 'scheduler_gateway_certificate_expiry_seconds');
  t.match(expiry?.labels['certificate'], /^h:[0-9a-f]{16}$/, 'the certificate name left only as a keyed hash');
  t.notOk(rx.db.batches(cluster)[0]!.body.includes('alice'));
  t.equal(statSync(join(dir, 'telemetry-hash.key')).mode & 0o777, 0o600, 'the hash key is private');
});

t.test('with a combined reader in the context, /metrics and the stream both carry the sum over processes', async (t) => {
  const dir = tempDir(t);
  const rx = await testReceiver(t, dir);
  await rx.start();
  const cluster = 'several-processes';
  const base = makeContext({ clusterId: cluster, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential: rx.enroll(cluster), spoolDir: join(dir, 'spool') }) });
  const worker = createMetrics({ defaultMetrics: false });
  const ctx = { ...base, metricsReader: aggregatedReader(base.metrics.registry, async () => [await worker.registry.getMetricsAsJSON()]) };
  ctx.metrics.bytesTotal.inc({ port: '8786', direction: 'in' }, 100);
  worker.bytesTotal.inc({ port: '8786', direction: 'in' }, 23);
  const tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  t.teardown(() => tel.close());
  const res = await fetch(`http://127.0.0.1:${tel.address!.port}/metrics`);
  const served = parsePrometheusText(await res.text()).samples.find((s) => s.name === 'scheduler_gateway_bytes_total' && s.labels['direction'] === 'in');
  t.equal(served?.value, 123, '/metrics serves the sum');
  await waitFor(() => storedSeqs(rx.db, cluster).length >= 1, { what: 'a stored batch' });
  const body = JSON.parse(rx.db.batches(cluster)[0]!.body) as { samples: { name: string; labels: Record<string, string>; value: number }[] };
  t.same(body.samples.filter((s) => s.name === 'scheduler_gateway_bytes_total' && s.labels['direction'] === 'in').map((s) => s.value), [123], 'the batch carries the sum');
});

t.test('a control plane answering HTTP errors or garbage is counted and retried, and nothing is lost', async (t) => {
  const dir = tempDir(t);
  const tls = await devTls(join(dir, 'hostile-tls'));
  let mode: 'http500' | 'garbage' = 'http500';
  let upgrades = 0;
  const server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, (_req, res) => res.writeHead(500).end());
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    upgrades++;
    if (mode === 'http500') return void socket.end('HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => ws.send('{"type":"ack","seq":"not a number"}'));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  let tel: Awaited<ReturnType<typeof startTelemetry>> | undefined;
  t.teardown(async () => {
    await tel?.close(); // first, so the gateway is not reconnecting while the server closes
    wss.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as { port: number }).port;
  const ctx = makeContext({ clusterId: 'hostile', config: telemetryConfig({ controlPlane: new URL(`https://127.0.0.1:${port}`), ca: tls.caPath, credential: writeCredential(dir), spoolDir: join(dir, 'spool') }) });
  tel = await startTelemetry(ctx, ctx.telemetry, FAST);
  await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'http' })) >= 2, { what: 'HTTP errors counted' });
  mode = 'garbage';
  await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'protocol' })) >= 2, { what: 'protocol violations counted' });
  t.ok(upgrades >= 4);
  t.equal(await metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'acked' }), 0, 'nothing was taken as acknowledged');
  t.equal(await metricValue(ctx.metrics.spoolBatches), await metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'spooled' }), 'every batch is still spooled');
});

function writeCredential(dir: string): string {
  const file = join(dir, 'hostile.credential');
  writeFileSync(file, 'x'.repeat(32) + '\n', { mode: 0o600 });
  return file;
}

t.test('a control plane that accepts TCP and never answers delays nothing: batches are made on time, the handshake times out', async (t) => {
  const dir = tempDir(t);
  const sockets = new Set<Socket>();
  const hole = createNetServer((s) => { sockets.add(s); s.on('error', () => undefined); });
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
  let tel: Awaited<ReturnType<typeof startTelemetry>> | undefined;
  t.teardown(async () => {
    await tel?.close(); // first, so nothing connects to the hole while it closes
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => hole.close(() => r()));
  });
  const port = (hole.address() as { port: number }).port;
  const ctx = makeContext({ clusterId: 'black-hole', config: telemetryConfig({ controlPlane: new URL(`https://127.0.0.1:${port}`), ca: (await devTls(join(dir, 'tls'))).caPath, credential: writeCredential(dir), spoolDir: join(dir, 'spool') }) });
  const started = Date.now();
  tel = await startTelemetry(ctx, ctx.telemetry, { ...FAST, connectTimeoutMs: 300 });
  // Event-loop responsiveness while the stream is stuck: a 10 ms timer must not be held up (the timers are the measurement).
  let worstLag = 0;
  for (let i = 0; i < 20; i++) {
    const at = Date.now();
    await new Promise((r) => setTimeout(r, 10));
    worstLag = Math.max(worstLag, Date.now() - at - 10);
  }
  await waitFor(async () => (await metricValue(ctx.metrics.streamErrorsTotal, { reason: 'timeout' })) >= 2, { what: 'timed-out handshakes' });
  const made = await metricValue(ctx.metrics.streamBatchesTotal, { outcome: 'spooled' });
  const expected = Math.floor((Date.now() - started) / 100);
  t.ok(made >= expected / 3, `${made} batches made in ${Date.now() - started} ms at a 100 ms interval`);
  t.ok(worstLag < 1000, `the event loop stayed responsive (worst extra delay ${worstLag} ms)`);
});

t.test('a control-plane URL with a user or password is refused at startup', async (t) => {
  const dir = tempDir(t);
  const ctx = makeContext({ clusterId: 'userinfo', config: telemetryConfig({ controlPlane: new URL('https://u:p@127.0.0.1:1'), credential: writeCredential(dir), spoolDir: join(dir, 'spool') }) });
  await t.rejects(startTelemetry(ctx, ctx.telemetry, FAST), { code: 'GW_TELEMETRY_BAD_ENDPOINT', message: /must not carry a user or password/ });
});

t.test('an unreadable or non-PEM pinned CA is a startup error naming --control-plane-ca', async (t) => {
  const dir = tempDir(t);
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate');
  for (const ca of [junk, join(dir, 'missing.pem')]) {
    const ctx = makeContext({ clusterId: 'bad-ca', config: telemetryConfig({ controlPlane: new URL('https://127.0.0.1:1'), ca, credential: writeCredential(dir), spoolDir: join(dir, 'spool') }) });
    await t.rejects(startTelemetry(ctx, ctx.telemetry, FAST), { code: 'GW_TELEMETRY_BAD_ENDPOINT', message: /--control-plane-ca: .*(not a PEM certificate|cannot read)/ });
  }
});

t.test('a credential file other users can read is refused', async (t) => {
  const dir = tempDir(t);
  const cred = writeCredential(dir);
  chmodSync(cred, 0o644);
  const ctx = makeContext({ clusterId: 'open-cred', config: telemetryConfig({ controlPlane: new URL('https://127.0.0.1:1'), credential: cred, spoolDir: join(dir, 'spool') }) });
  await t.rejects(startTelemetry(ctx, ctx.telemetry, FAST), { code: 'GW_TELEMETRY_BAD_CREDENTIAL', message: /chmod 600/ });
});
