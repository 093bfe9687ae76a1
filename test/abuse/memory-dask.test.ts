/**
 * The memory attack with real Dask (both versions), against a gateway in its
 * own process with default settings: 30 authenticated connections each send a
 * 60 MiB frame 0 (1.8 GiB that, unbounded, the wire parser would buffer). The
 * memory budget (256 MiB) stops reading from the connections that hold it,
 * evicts the largest after a stall, and gives everything back after close.
 * A worker and a client compute throughout. Figures are test comments.
 */
import t from 'tap';
import { makeTestCluster } from '../helpers/pki.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker, waitFor } from '../helpers/dask.js';
import { metricValue, spawnGatewayChild } from '../hardening/child.js';
import { rssBytes } from '../hardening/harness.js';
import { bigFrame0, sampleProcess, steadyClientScript, type Flood } from './attackers.js';

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });
const MiB = 1024 * 1024;
const BUDGET = 256 * MiB;

eachDaskVersion(t, '30 connections x 60 MiB frame 0: buffered memory held to the budget, RSS bounded and returned, Dask keeps computing', async (t, version) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const scheduler = await startScheduler({ tls: files(await cluster.issue('scheduler', 'scheduler')), t, version });
  const gw = await spawnGatewayChild({ t, passphrase: cluster.passphrase, flags: {
    dir: cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', scheduler: `127.0.0.1:${scheduler.port}`,
  } });
  const address = `tls://127.0.0.1:${gw.ports.p8786}`;
  t.equal(await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_limit_bytes'), BUDGET, 'the default budget is in force and exported');
  await startWorker({ scheduler: address, tls: files(await cluster.issue('worker', 'w1')), name: 'w1', t, version });
  const steady = runClient<{ ok: number; failed: number; errors: string[] }>(
    steadyClientScript(clientPrelude(address, files(await cluster.issue('client', 'alice'))), 35), { version, timeoutMs: 120_000 });
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' })) >= 1, { what: 'the steady client connected' });
  const baseline = rssBytes(gw.pid);
  const sampler = sampleProcess(gw.pid);

  const mallory = await cluster.issue('client', 'mallory');
  const creds = { ca: cluster.caPem, cert: mallory.certPem, key: mallory.keyPem };
  const floods: Flood[] = [];
  t.teardown(() => floods.forEach((f) => f.socket.destroy()));
  for (let i = 0; i < 30; i++) floods.push(await bigFrame0(gw.ports.p8786, creds, { bytes: 60 * MiB, localAddress: '127.0.0.2' }));
  let peakUsed = 0;
  const watch = setInterval(() => void metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_used_bytes').then((v) => { peakUsed = Math.max(peakUsed, v); }, () => {}), 200);
  t.teardown(() => clearInterval(watch));
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_paused_connections')) > 0, { timeoutMs: 30_000, what: 'the budget spent and its holders paused' });
  t.pass('the budget was spent and the connections holding it stopped being read');
  await Promise.race([Promise.all(floods.map((f) => f.gone)), new Promise((r) => setTimeout(r, 25_000))]);
  for (const f of floods) f.socket.destroy();
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_used_bytes')) === 0, { timeoutMs: 20_000, what: 'the budget back to zero after close' });
  clearInterval(watch);
  const figures = sampler.stop();
  const out = await steady;
  const sentMiB = Math.round(floods.reduce((n, f) => n + f.sent(), 0) / MiB);
  const evictions = await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_evictions_total');
  const gcs = gw.lines.length;
  process.kill(gw.pid, 'SIGUSR2');
  await waitFor(() => gw.lines.slice(gcs).some((l) => l.event === 'child_gc'), { what: 'the gateway collected its garbage' });
  const after = rssBytes(gw.pid);

  t.equal(out.failed, 0, `the client never failed a task during the attack (${out.ok} tasks, errors: ${out.errors.join(' | ')})`);
  t.ok(out.ok >= 40, `and kept computing: ${out.ok} tasks`);
  t.ok(peakUsed <= BUDGET + 30 * 64 * 1024 + 16 * MiB, `buffered bytes peaked at ${(peakUsed / MiB).toFixed(1)} MiB: the budget plus the small holders' slack`);
  const grownMiB = figures.peakRssMiB - baseline / MiB;
  t.ok(grownMiB < 2 * BUDGET / MiB, `peak RSS ${figures.peakRssMiB} MiB, ${grownMiB.toFixed(0)} MiB above the ${(baseline / MiB).toFixed(0)} MiB baseline, for ${sentMiB} MiB sent by the attackers (1,800 MiB unbounded)`);
  t.ok(after - baseline < (figures.peakRssMiB * MiB - baseline) / 2, `memory returned after close: RSS ${(after / MiB).toFixed(0)} MiB after a collection, under half way from the ${(baseline / MiB).toFixed(0)} MiB baseline to the ${figures.peakRssMiB} MiB peak`);
  const memLines = gw.lines.filter((l) => l.event === 'connection_closed' && l.reason === 'memory_budget');
  t.equal(memLines.length, evictions, 'every eviction is audited as connection_closed reason memory_budget');
  t.comment(`Dask ${version.id}: attackers sent ${sentMiB} MiB; budget peak ${(peakUsed / MiB).toFixed(1)} MiB; gateway RSS baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${figures.peakRssMiB} MiB, after close and a collection ${(after / MiB).toFixed(0)} MiB; peak descriptors ${figures.peakFds}; ${evictions} evictions; steady client ${out.ok} ok / ${out.failed} failed`);
});
