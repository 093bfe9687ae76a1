import t, { type Test } from 'tap';
import { runCli } from '../helpers/cli.js';
import { spawn } from 'node:child_process';
import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main as controlPlaneDev } from '../../src/cli/control-plane-dev.js';
import { main as telemetryCli } from '../../src/cli/telemetry.js';
import type { CommandMain } from '../../src/cli/io.js';
import { startTelemetry } from '../../src/telemetry/telemetry.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import { makeTestCluster } from '../helpers/pki.js';
import { makeContext, telemetryConfig, tempDir } from './helpers.js';
import { GiveUp, waitFor } from '../helpers/wait.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

function run(main: CommandMain, argv: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  return runCli('telemetry', main, argv, { cwd, env });
}

/** `control-plane-dev serve` as its own process, as an operator runs it. */
async function serve(t: Test, dir: string, extra: string[] = []) {
  const child = spawn(process.execPath, [...process.execArgv, BIN, 'control-plane-dev', '--listen', '127.0.0.1:0', '--db', join(dir, 'cp.db'), ...extra], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  t.teardown(async () => { if (child.exitCode === null) { child.kill('SIGTERM'); await exited; } });
  const port = await waitFor(() => {
    if (child.exitCode !== null) throw new GiveUp(`control-plane-dev exited ${child.exitCode}: ${stderr}`);
    return /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)?.[1];
  }, { what: 'the receiver to listen', timeoutMs: 60_000 });
  return { port: Number(port), stderr: () => stderr, child, exited };
}

t.test('control-plane-dev: enroll, serve with a generated CA, receive batches, revoke, list batches', async (t) => {
  const dir = tempDir(t);
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const db = join(dir, 'cp.db');
  const enrolled = await run(controlPlaneDev, ['enroll', '--db', db, '--cluster', cluster.clusterId, '--credential-out', 'cred'], dir);
  t.equal(enrolled.code, 0, enrolled.stderr);
  t.equal(statSync(join(dir, 'cred')).mode & 0o777, 0o600, 'the credential file is private');

  const rx = await serve(t, dir);
  const caPath = /development CA at (\S+)/.exec(rx.stderr())?.[1];
  t.ok(caPath, 'the CA path is printed');
  const ctx = makeContext({ clusterId: cluster.clusterId, stateDir: cluster.dir, config: telemetryConfig({ controlPlane: new URL(`https://127.0.0.1:${rx.port}`), ca: caPath, credential: join(dir, 'cred'), intervalMs: 150 }) });
  let closed = false;
  const alice = await cluster.issue('client', 'alice');
  ctx.sessions.add({ kind: 'dask', serial: normalizeSerial(alice.serial), close: () => { closed = true; } });
  const { createRevocationSink, pkiCertificatePersister } = await import('../../src/runtime/revocation-sink.js');
  const sink = createRevocationSink({ sessions: ctx.sessions, log: ctx.log, persistCertificate: pkiCertificatePersister(cluster.dir, cluster.passphrase), persistToken: undefined });
  const tel = await startTelemetry(ctx, ctx.telemetry, { revocations: sink, backoff: { baseMs: 50, capMs: 300 } });
  t.teardown(() => tel.close());

  const listed = await waitFor(async () => {
    const r = await run(controlPlaneDev, ['batches', '--db', db, '--cluster', cluster.clusterId, '--last', '1'], dir);
    return r.stdout.trim() ? r : undefined;
  }, { what: 'a batch listed by the CLI' });
  const batch = JSON.parse(listed.stdout) as { type: string; cluster: string; seq: number; samples: unknown[] };
  t.equal(batch.cluster, cluster.clusterId);
  t.equal(batch.type, 'batch');

  const revoked = await run(controlPlaneDev, ['revoke-cert', '--db', db, '--cluster', cluster.clusterId, '--serial', alice.serial, '--reason', 'keyCompromise', '--wait', '10'], dir);
  t.equal(revoked.code, 0, revoked.stdout + revoked.stderr);
  t.match(revoked.stdout, /applied/);
  t.ok(closed, 'the live session was closed');
  const token = await run(controlPlaneDev, ['revoke-token', '--db', db, '--cluster', cluster.clusterId, '--token', 'nobody', '--wait', '10'], dir);
  t.equal(token.code, 1, 'a command the gateway refuses is reported as failed');
  t.match(token.stdout, /failed: .*token store/);
});

t.test('control-plane-dev refuses a non-loopback listen address and a missing --db', async (t) => {
  const dir = tempDir(t);
  const r = await run(controlPlaneDev, ['--listen', '0.0.0.0:8443', '--db', join(dir, 'x.db')], dir);
  t.equal(r.code, 2);
  t.match(r.stderr, /not loopback/);
  const r2 = await run(controlPlaneDev, ['enroll', '--cluster', 'x'], dir);
  t.match(r2.stderr, /--db FILE is required/);
});

t.test('telemetry preview prints the batch the gateway sends next: same seq, same series', async (t) => {
  const dir = tempDir(t);
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const { testReceiver } = await import('./helpers.js');
  const rx = await testReceiver(t, dir);
  await rx.start();
  const credential = rx.enroll(cluster.clusterId);
  const ctx = makeContext({ clusterId: cluster.clusterId, stateDir: cluster.dir, config: telemetryConfig({ controlPlane: rx.url(), ca: rx.caPath, credential, intervalMs: 1500 }) });
  ctx.metrics.refusalsTotal.inc({ port: '8786', reason: 'unknown_ca' }, 7);
  const tel = await startTelemetry(ctx, ctx.telemetry, { backoff: { baseMs: 50, capMs: 300 } });
  t.teardown(() => tel.close());
  await waitFor(() => rx.db.batches(cluster.clusterId).length === 1, { what: 'the first batch' });
  await waitFor(async () => (await ctx.metrics.spoolBatches.get()).values[0]?.value === 0, { what: 'it is acknowledged' });

  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `metrics:\n  listen: 127.0.0.1:${tel.address!.port}\ncontrol-plane:\n  url: ${rx.url().href}\n`);
  const r = await run(telemetryCli, ['preview', '--dir', cluster.dir, '--config', config], dir);
  t.equal(r.code, 0, r.stderr);
  const preview = JSON.parse(r.stdout) as { seq: number; cluster: string; samples: { source: string; name: string; labels: Record<string, string>; value: unknown }[] };
  t.equal(preview.cluster, cluster.clusterId, 'the cluster id comes from the state directory');
  t.ok(preview.samples.some((s) => s.name === 'scheduler_gateway_refusals_total' && s.labels['reason'] === 'unknown_ca' && s.value === 7), "the running gateway's own counters are in it");

  await waitFor(() => rx.db.batches(cluster.clusterId).length === 2, { what: 'the next batch', timeoutMs: 10_000 });
  const sent = JSON.parse(rx.db.batches(cluster.clusterId)[0]!.body) as typeof preview;
  t.equal(sent.seq, preview.seq, 'the preview showed the seq of the batch that was sent next');
  const series = (b: typeof preview) => b.samples.filter((s) => !s.name.startsWith('scheduler_gateway_telemetry_')).map((s) => `${s.source} ${s.name} ${JSON.stringify(s.labels)}`).sort();
  t.same(series(preview), series(sent), 'the preview holds the same series as the batch sent');
});

t.test('telemetry preview without arguments shows usage', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'x'));
  const r = await run(telemetryCli, [], dir);
  t.equal(r.code, 2);
  t.match(r.stderr, /usage: scheduler-gateway telemetry preview/);
});
