/**
 * The memory attack with real Dask (both versions), against a gateway in its
 * own process with default settings: 30 authenticated connections each send a
 * 60 MiB frame 0 (1.8 GiB that, unbounded, the wire parser would buffer). The
 * memory budget (256 MiB) stops reading from the connections that hold it,
 * evicts the largest after a stall, and gives everything back after close:
 * no buffer is left after a collection, and a second attack reuses the
 * memory of the first instead of growing the process (glibc keeps the pages
 * it freed, so RSS itself stays near the peak). A worker and a client compute
 * throughout both. Figures are test comments.
 */
import t, { type Test } from 'tap';
import { makeTestCluster } from '../helpers/pki.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { collectedMemory, metricValue, spawnGatewayChild, type GatewayChild } from '../hardening/child.js';
import { rssBytes } from '../hardening/harness.js';
import { bigFrame0, sampleProcess, steadyClientScript, type Creds, type Flood } from './attackers.js';

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
    steadyClientScript(clientPrelude(address, files(await cluster.issue('client', 'alice'))), 70), { version, timeoutMs: 180_000 });
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' })) >= 1, { what: 'the steady client connected' });
  const baseline = rssBytes(gw.pid);
  const sampler = sampleProcess(gw.pid);

  const mallory = await cluster.issue('client', 'mallory');
  const creds = { ca: cluster.caPem, cert: mallory.certPem, key: mallory.keyPem };
  const first = await wave(t, gw, creds);
  const firstPeak = sampler.stop();
  const afterFirst = await collectedMemory(gw);
  const again = sampleProcess(gw.pid);
  const second = await wave(t, gw, creds);
  const secondPeak = again.stop();
  const afterSecond = await collectedMemory(gw);
  const out = await steady;
  const evictions = await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_evictions_total');

  t.equal(out.failed, 0, `the client never failed a task during two attacks (${out.ok} tasks, errors: ${out.errors.join(' | ')})`);
  t.ok(out.ok >= 60, `and kept computing: ${out.ok} tasks`);
  for (const [n, w] of [[1, first], [2, second]] as const) {
    t.ok(w.peakUsed <= BUDGET + 30 * 64 * 1024 + 16 * MiB, `attack ${n}: buffered bytes peaked at ${(w.peakUsed / MiB).toFixed(1)} MiB: the budget plus the small holders' slack`);
  }
  const grownMiB = firstPeak.peakRssMiB - baseline / MiB;
  t.ok(grownMiB < 2 * BUDGET / MiB, `peak RSS ${firstPeak.peakRssMiB} MiB, ${grownMiB.toFixed(0)} MiB above the ${(baseline / MiB).toFixed(0)} MiB baseline, for ${first.sentMiB} MiB sent by the attackers (1,800 MiB unbounded)`);
  t.ok(afterFirst.arrayBuffers < 32 * MiB && afterSecond.arrayBuffers < 32 * MiB, `after close every buffer is released: ${(afterFirst.arrayBuffers / MiB).toFixed(1)} and ${(afterSecond.arrayBuffers / MiB).toFixed(1)} MiB of buffers left after a collection`);
  t.ok(secondPeak.peakRssMiB < firstPeak.peakRssMiB + 64, `and reused: a second attack peaks at ${secondPeak.peakRssMiB} MiB RSS (first ${firstPeak.peakRssMiB} MiB); the process keeps the pages it freed (RSS ${(afterFirst.rss / MiB).toFixed(0)} MiB after the first) but does not grow`);
  const memLines = gw.lines.filter((l) => l.event === 'connection_closed' && l.reason === 'memory_budget');
  t.equal(memLines.length, evictions, 'every eviction is audited as connection_closed reason memory_budget');
  t.comment(`Dask ${version.id}: attackers sent ${first.sentMiB} + ${second.sentMiB} MiB; budget peak ${(first.peakUsed / MiB).toFixed(1)} / ${(second.peakUsed / MiB).toFixed(1)} MiB; gateway RSS baseline ${(baseline / MiB).toFixed(0)} MiB, peak ${firstPeak.peakRssMiB} / ${secondPeak.peakRssMiB} MiB, after close ${(afterFirst.rss / MiB).toFixed(0)} / ${(afterSecond.rss / MiB).toFixed(0)} MiB with ${(afterFirst.arrayBuffers / MiB).toFixed(1)} / ${(afterSecond.arrayBuffers / MiB).toFixed(1)} MiB of buffers; peak descriptors ${Math.max(firstPeak.peakFds, secondPeak.peakFds)}; ${evictions} evictions; steady client ${out.ok} ok / ${out.failed} failed`);
});

/** One attack: 30 connections of one certificate each streaming a 60 MiB frame 0, until closed or 25 s; then the budget must be back to zero. */
async function wave(t: Test, gw: GatewayChild, creds: Creds): Promise<{ peakUsed: number; sentMiB: number }> {
  const floods: Flood[] = [];
  t.teardown(() => floods.forEach((f) => f.socket.destroy()));
  for (let i = 0; i < 30; i++) floods.push(await bigFrame0(gw.ports.p8786, creds, { bytes: 60 * MiB, localAddress: '127.0.0.2' }));
  let peakUsed = 0;
  const watch = setInterval(() => void metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_used_bytes').then((v) => { peakUsed = Math.max(peakUsed, v); }, () => {}), 200);
  try {
    await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_paused_connections')) > 0, { timeoutMs: 30_000, what: 'the budget spent and its holders paused' });
    t.pass('the budget was spent and the connections holding it stopped being read');
    await Promise.race([Promise.all(floods.map((f) => f.gone)), new Promise((r) => setTimeout(r, 25_000))]);
    for (const f of floods) f.socket.destroy();
    await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_memory_budget_used_bytes')) === 0, { timeoutMs: 20_000, what: 'the budget back to zero after close' });
  } finally {
    clearInterval(watch);
  }
  return { peakUsed, sentMiB: Math.round(floods.reduce((n, f) => n + f.sent(), 0) / MiB) };
}

