import t from 'tap';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { makeTestCluster } from '../helpers/pki.js';
import { openTrust } from '../../src/runtime/material.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { createLogger } from '../../src/log/logger.js';
import { Writable } from 'node:stream';
import { encryptPrivateKeyPem } from '../../src/pki/keystore.js';
import { waitFor } from '../helpers/wait.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(c: Buffer, _e, cb) { for (const l of c.toString().split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { lines, log: createLogger({ stream, level: 'debug' }) };
}

async function setup(t: { teardown(fn: () => unknown): void }) {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const { lines, log } = capture();
  const metrics = createMetrics({ defaultMetrics: false });
  const trust = await openTrust({ mode: 'dir', dir: cluster.dir }, { env: { SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase }, log, metrics, pollMs: 100 });
  t.teardown(() => trust.close());
  return { cluster, lines, metrics, trust };
}

async function counter(metrics: ReturnType<typeof createMetrics>, result: string): Promise<number> {
  const m = await metrics.reloadsTotal.get();
  return m.values.find((v) => v.labels.result === result && v.labels.what === 'tls')?.value ?? 0;
}

t.test('a broken new certificate keeps the old material, logs why and counts a failed reload', async (t) => {
  const { cluster, lines, metrics, trust } = await setup(t);
  const before = trust.current();
  writeFileSync(`${cluster.dir}/gateway.pem`, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
  t.equal(await trust.reload('test'), false, 'reload reports failure');
  t.equal(trust.current(), before, 'the old material is still served');
  const line = lines.find((l) => l.event === 'trust_reload_failed');
  t.ok(line, 'the failure is logged');
  t.ok(String(line?.error).length > 0, `with a reason: ${String(line?.error)}`);
  t.equal(await counter(metrics, 'failure'), 1, 'reloads_total{result="failure"} counted');
});

t.test('a certificate whose key does not match is refused the same way', async (t) => {
  const { cluster, trust } = await setup(t);
  const other = await cluster.issue('gateway', 'gw-other');
  writeFileSync(`${cluster.dir}/gateway.pem`, other.certPem); // the key on disk is still the old one
  t.equal(await trust.reload('test'), false);
  t.equal(trust.current().version, 1);
});

t.test('a new certificate and key written in place are picked up by the watcher and swapped in', async (t) => {
  const { cluster, trust, lines } = await setup(t);
  const fresh = await cluster.issue('gateway', 'gw-2');
  let notified = 0;
  trust.onChange(() => notified++);
  writeFileSync(`${cluster.dir}/k.tmp`, encryptPrivateKeyPem(fresh.keyPem, cluster.passphrase), { mode: 0o600 });
  writeFileSync(`${cluster.dir}/c.tmp`, fresh.certPem);
  renameSync(`${cluster.dir}/k.tmp`, `${cluster.dir}/gateway-key.pem`);
  renameSync(`${cluster.dir}/c.tmp`, `${cluster.dir}/gateway.pem`);
  await waitFor(() => trust.current().certPem === fresh.certPem, { timeoutMs: 10_000, what: 'new certificate live' });
  t.equal(trust.current().version, 2, 'one version bump for the burst of writes');
  t.equal(notified, 1, 'listeners told once');
  t.ok(lines.some((l) => l.event === 'trust_reloaded' && l.certificate_changed === true));
});

t.test('a revocation written by the CLI reaches listeners as newly revoked serials within 2 s', async (t) => {
  const { cluster, trust } = await setup(t);
  const bob = await cluster.issue('client', 'bob');
  const seen: string[][] = [];
  trust.onChange((_m, revoked) => seen.push(revoked));
  const at = Date.now();
  const { serial } = await cluster.revoke(bob.serial);
  await waitFor(() => seen.length > 0, { timeoutMs: 5_000, what: 'revocation noticed' });
  t.ok(Date.now() - at < 2_000, `noticed after ${Date.now() - at} ms`);
  t.same(seen[0], [serial]);
  t.equal(trust.isRevoked(serial), true);
});

t.test('the expiry gauge reports seconds left on the gateway and CA certificates', async (t) => {
  const { metrics } = await setup(t);
  const g = await metrics.certificateExpirySeconds.get();
  const gw = g.values.find((v) => v.labels.certificate === 'gateway')?.value ?? 0;
  const ca = g.values.find((v) => v.labels.certificate === 'ca')?.value ?? 0;
  t.ok(gw > 86_400 * 300 && gw <= 86_400 * 366, `gateway: ${Math.round(gw / 86_400)} days`);
  t.ok(ca > gw, 'the CA outlives the gateway certificate');
});

t.test('an unchanged file touched again does not bump the version', async (t) => {
  const { cluster, trust } = await setup(t);
  const pem = readFileSync(`${cluster.dir}/ca.pem`);
  writeFileSync(`${cluster.dir}/ca.pem`, pem);
  t.equal(await trust.reload('touch'), true);
  t.equal(trust.current().version, 1);
});
