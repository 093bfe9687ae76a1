/**
 * The fair-share attacks on 8786 with real Dask (both versions), against a
 * gateway in its own process: one client certificate opening connections up
 * to its cap and beyond, then several client certificates filling the client
 * share. A legitimate client computes throughout (its pool's new connections
 * take idle slots from the biggest holder); a new worker and an admin connect
 * while clients hold everything they may, and so does a new client; refused
 * peers read the reason in their own Python exception. Figures (peak RSS,
 * descriptors, log lines) are printed as test comments.
 */
import t from 'tap';
import { makeTestCluster } from '../helpers/pki.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker, type DaskVersion } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { metricValue, spawnGatewayChild } from '../hardening/child.js';
import { daskHold, sampleProcess, steadyClientScript, type Held } from './attackers.js';

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });
const pems = (i: { certPem: string; keyPem: string }, caPem: string) => ({ ca: caPem, cert: i.certPem, key: i.keyPem });

eachDaskVersion(t, 'one certificate up to its cap, then many certificates up to the client share: workers, admins and the connected client keep working', async (t, version) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const scheduler = await startScheduler({ tls: files(await cluster.issue('scheduler', 'scheduler')), t, version });
  // 200 slots: 50 for handshakes, 50 reserved for workers, 20 for clients: clients share 100, workers and admins 130.
  const gw = await spawnGatewayChild({ t, passphrase: cluster.passphrase, flags: {
    dir: cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0',
    scheduler: `127.0.0.1:${scheduler.port}`, 'max-connections': '200', 'max-connections-per-identity': '40',
  } });
  const address = `tls://127.0.0.1:${gw.ports.p8786}`;
  await startWorker({ scheduler: address, tls: files(await cluster.issue('worker', 'w1')), name: 'w1', nanny: true, t, version });
  const alice = await cluster.issue('client', 'alice');
  const steady = runClient<{ ok: number; failed: number; errors: string[]; workers: number }>(
    steadyClientScript(clientPrelude(address, files(alice)), 40), { version, timeoutMs: 120_000 });
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' })) >= 1, { what: 'the steady client connected' });
  const sampler = sampleProcess(gw.pid);
  const linesBefore = gw.lines.length;

  // Phase 1: one certificate, 60 connections from 127.0.0.2.
  const malloryIssued = await cluster.issue('client', 'mallory');
  const mallory = pems(malloryIssued, cluster.caPem);
  const held: Held[] = [];
  t.teardown(() => held.forEach((h) => h.socket.destroy()));
  for (let i = 0; i < 60; i++) held.push(await daskHold(gw.ports.p8786, mallory, { localAddress: '127.0.0.2' }));
  const kept = held.filter((h) => !h.refused).length;
  t.equal(kept, 40, 'mallory holds exactly --max-connections-per-identity (40) live connections');
  t.ok(held.filter((h) => h.refused).every((h) => /too_many_connections_for_identity/.test(h.text)), 'each of the other 20 read the reason in Dask framing');
  const refusedPython = await pythonRefusal(address, malloryIssued, version);
  t.match(refusedPython, /scheduler-gateway refused this connection \(too_many_connections_for_identity\)/, `mallory's own Python exception says why: ${refusedPython.slice(0, 160)}`);

  // Phase 2: more client certificates from more addresses until the client share (100) is full.
  let shareFull = 0;
  for (let k = 2; k <= 4 && shareFull === 0; k++) {
    const m = pems(await cluster.issue('client', `mallory-${k}`), cluster.caPem);
    for (let i = 0; i < 40; i++) {
      const h = await daskHold(gw.ports.p8786, m, { localAddress: `127.0.0.${k + 1}` });
      held.push(h);
      if (h.refused && /client_share_full/.test(h.text)) shareFull++;
    }
  }
  t.ok(shareFull > 0, `the client share filled up (${shareFull} refused as client_share_full)`);
  t.equal(await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' }), 100, 'client certificates hold exactly their share: 100 slots');

  // With every client slot taken: a new worker registers, an admin computes on it, a new client is told why it cannot.
  await startWorker({ scheduler: address, tls: files(await cluster.issue('worker', 'w2')), name: 'w2', nanny: true, t, version });
  const admin = await cluster.issue('admin', 'root');
  const onW2 = await runClient<{ r: number; workers: number }>(`${clientPrelude(address, files(admin))}
c.wait_for_workers(2, timeout=60)
w2 = [a for a, w in c.scheduler_info()["workers"].items() if w["name"] == "w2"][0]
print(json.dumps({"r": c.submit(lambda: 6 * 7, workers=[w2]).result(), "workers": len(c.scheduler_info()["workers"])}))
c.close()
`, { version });
  t.same(onW2, { r: 42, workers: 2 }, 'the new worker registered and an admin ran a task on it while clients hold their whole share');
  const bob = await cluster.issue('client', 'bob');
  const during = await runClient<{ r: number }>(`${clientPrelude(address, files(bob))}
print(json.dumps({"r": c.submit(lambda: 2 + 3).result()}))
c.close()
`, { version });
  t.equal(during.r, 5, 'a new client connects and computes while the client share is full: it takes idle slots from the biggest holders');
  t.ok(await metricValue(gw.ports.metrics, 'scheduler_gateway_connections_reclaimed_total', { class: 'client' }) > 0, 'by reclaiming idle pooled connections (connections_reclaimed_total)');
  const lastAttacker = held.filter((h) => h.refused && /client_share_full/.test(h.text)).at(-1);
  t.match(lastAttacker?.text ?? '', /client certificates hold all 100 connections/, 'an attacker that already holds an even split is refused with the reason');

  const out = await steady;
  const figures = sampler.stop();
  t.equal(out.failed, 0, `the connected client never failed a task during the attack (${out.ok} tasks, errors: ${out.errors.join(' | ')})`);
  t.ok(out.ok >= 50, `and kept computing: ${out.ok} tasks in 40 s`);
  const refusals = gw.lines.slice(linesBefore).filter((l) => l.event === 'connection_refused' || l.event === 'refusals_coalesced').length;
  const refusedCount = held.filter((h) => h.refused).length;
  t.ok(refusals <= 12, `${refusals} refusal log lines for ${refusedCount + 1} refusals`);
  t.ok(figures.peakFds < 2 * 200 + 300, `descriptors stayed within the budget: peak ${figures.peakFds}`);
  t.comment(`Dask ${version.id}: held ${held.length - refusedCount} + refused ${refusedCount}; steady client ${out.ok} ok / ${out.failed} failed; gateway peak RSS ${figures.peakRssMiB} MiB, peak descriptors ${figures.peakFds}; ${refusals} refusal log lines`);

  for (const h of held) h.socket.destroy();
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' })) === 0, { timeoutMs: 20_000, what: 'the client slots returned' });
  const after = await runClient<{ r: number }>(`${clientPrelude(address, files(bob))}
print(json.dumps({"r": c.submit(lambda: 1 + 1).result()}))
c.close()
`, { version });
  t.equal(after.r, 2, 'once the attackers let go, clients connect as before');
});

/** What `Client(address)` raises for this certificate, or "" if it connects. */
async function pythonRefusal(address: string, who: { caPath: string; certPath: string; keyPath: string }, version: DaskVersion): Promise<string> {
  const out = await runClient<{ error: string }>(`
import json
from distributed import Client
from distributed.security import Security
sec = Security(tls_ca_file=${JSON.stringify(who.caPath)}, tls_client_cert=${JSON.stringify(who.certPath)}, tls_client_key=${JSON.stringify(who.keyPath)}, require_encryption=True)
try:
    Client(${JSON.stringify(address)}, security=sec, timeout=20).close()
    print(json.dumps({"error": ""}))
except Exception as e:
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
`, { version, timeoutMs: 60_000 });
  return out.error;
}
