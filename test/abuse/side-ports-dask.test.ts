/**
 * The unauthenticated attacks with real Dask (both versions), against a
 * gateway in its own process under a small open-files limit (1,500), so the
 * descriptor budget has to split it: silent TCP connections on 8786, a flood
 * of TLS connections on 8787, bad tokens hammering 8787 and certificates of
 * the wrong role hammering 8789, one after the other, each from its own
 * addresses. A worker and a client compute throughout and a second worker
 * joins during the 8787 flood; descriptors stay under the limit and each
 * attack costs a handful of log lines. Figures are test comments.
 */
import t from 'tap';
import { Agent, request } from 'node:https';
import { makeTestCluster } from '../helpers/pki.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { metricValue, spawnGatewayChild, type GatewayChild } from '../hardening/child.js';
import { rawHold, sampleProcess, steadyClientScript, tlsHold } from './attackers.js';

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });
const NOFILE = 1_500;
/** What descriptor-budget.ts plans for 1,500: 1,244 after the reserve; 8787 gets 15 % (2 per connection), 8789 5 %. */
const DASHBOARD_CAP = 93;
const CREDENTIALS_CAP = 62;
const REFUSAL_EVENTS = new Set(['connection_refused', 'dashboard_refused', 'credentials_refused', 'credentials_fetch', 'refusals_coalesced']);

/** The address a refusal line is about: its own field, or the host of `peer`. */
const addressOf = (l: Record<string, unknown>) => String(l.address ?? l.remote ?? l.source ?? String(l.peer ?? '').replace(/:\d+$/, ''));

/**
 * Refusal log lines about one attack's addresses, its coalesced summaries
 * included: waits until the summary of its repeats has been written (the
 * coalescing interval is 10 s), then counts.
 */
async function refusalLines(gw: GatewayChild, from: (address: string) => boolean): Promise<number> {
  const mine = () => gw.lines.filter((l) => REFUSAL_EVENTS.has(String(l.event)) && l.result !== 'allowed' && from(addressOf(l)));
  await waitFor(() => mine().some((l) => l.event === 'refusals_coalesced'), { timeoutMs: 20_000, what: 'the summary of the coalesced refusals' });
  return mine().length;
}

eachDaskVersion(t, 'silent TCP on 8786, a TLS flood and bad tokens on 8787, wrong certificates on 8789: Dask keeps working, descriptors and logs stay bounded', async (t, version) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const scheduler = await startScheduler({ tls: files(await cluster.issue('scheduler', 'scheduler')), t, version });
  const gw = await spawnGatewayChild({ t, passphrase: cluster.passphrase, nofile: NOFILE, flags: {
    dir: cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', 'credentials-listen': '127.0.0.1:0',
    scheduler: `127.0.0.1:${scheduler.port}`,
  } });
  t.equal(await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_limit', { port: '8787' }), DASHBOARD_CAP, 'the descriptor budget held 8787 to its share of 1,500 descriptors');
  t.equal(await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_limit', { port: 'credentials' }), CREDENTIALS_CAP, 'and 8789 to its');
  t.ok(gw.lines.some((l) => l.event === 'max_connections_lowered' && l.key === 'terminator.max-connections'), 'every lowered cap is logged with its key');
  const address = `tls://127.0.0.1:${gw.ports.p8786}`;
  await startWorker({ scheduler: address, tls: files(await cluster.issue('worker', 'w1')), name: 'w1', t, version });
  const steady = runClient<{ ok: number; failed: number; errors: string[] }>(
    steadyClientScript(clientPrelude(address, files(await cluster.issue('client', 'alice'))), 45), { version, timeoutMs: 150_000 });
  await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_connection_slots', { state: 'client' })) >= 1, { what: 'the steady client connected' });
  const sampler = sampleProcess(gw.pid);
  const figures: string[] = [];

  // 1. 300 silent TCP connections on 8786 from one address.
  let started = Date.now();
  const raw = await Promise.all(Array.from({ length: 300 }, () => rawHold(gw.ports.p8786, { localAddress: '127.0.0.2' })));
  t.teardown(() => raw.forEach((r) => r.socket.destroy()));
  const closedAfter = raw.map(() => Infinity);
  raw.forEach((r, i) => void r.gone.then(() => { closedAfter[i] = Date.now() - started; }));
  await Promise.race([Promise.all(raw.map((r) => r.gone)), new Promise((r) => setTimeout(r, 15_000))]);
  const rawGoneMs = Math.max(...closedAfter);
  const heldRaw = closedAfter.filter((ms) => ms > 2_000).length;
  t.ok(heldRaw <= 32, `${heldRaw} held a handshake slot (--max-handshakes-per-address 32), the other ${300 - heldRaw} were closed at accept`);
  t.ok(raw.every((r) => r.socket.destroyed), `every silent connection was closed by the gateway, the last after ${rawGoneMs} ms (handshake deadline 10 s)`);
  t.ok(rawGoneMs < 9_000, 'by the pre-TLS deadline (probe + 1 s), before the handshake deadline');
  figures.push(`8786 raw TCP: 300 opened, ${300 - heldRaw} closed at accept, ${heldRaw} held until the pre-TLS deadline, the last closed after ${rawGoneMs} ms`);

  // 2. 400 TLS connections to 8787 from 8 addresses, held silent; meanwhile a second worker joins.
  const floods = await Promise.all(Array.from({ length: 400 }, (_, i) => tlsHold(gw.ports.p8787, { ca: cluster.caPem }, { localAddress: `127.0.1.${1 + (i % 8)}` })));
  t.teardown(() => floods.forEach((f) => f.socket.destroy()));
  const heldTls = floods.filter((f) => f.outcome === 'held' && !f.socket.destroyed).length;
  t.ok(heldTls <= DASHBOARD_CAP, `at most the 8787 cap completed a handshake: ${heldTls} of 400`);
  await startWorker({ scheduler: address, tls: files(await cluster.issue('worker', 'w2')), name: 'w2', t, version });
  const admin = await cluster.issue('admin', 'root');
  const both = await runClient<{ workers: number }>(`${clientPrelude(address, files(admin))}
c.wait_for_workers(2, timeout=60)
print(json.dumps({"workers": len(c.scheduler_info()["workers"])}))
c.close()
`, { version });
  t.equal(both.workers, 2, 'a new worker registered on 8786 while 8787 was flooded');
  for (const f of floods) f.socket.destroy();
  figures.push(`8787 TLS flood: ${heldTls} of 400 held (cap ${DASHBOARD_CAP})`);

  // 3. Bad tokens on 8787 from one address, keep-alive, for at most 10 s or 3,000 requests.
  started = Date.now();
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: cluster.caPem, localAddress: '127.0.0.3', checkServerIdentity: () => undefined } as ConstructorParameters<typeof Agent>[0]);
  t.teardown(() => agent.destroy());
  const statuses = new Map<number, number>();
  let sent = 0;
  const worker = async () => {
    while (sent < 3_000 && Date.now() - started < 10_000) {
      sent++;
      const status = await get(gw.ports.p8787, agent, `/status?i=${sent}`);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  t.ok((statuses.get(401) ?? 0) + (statuses.get(429) ?? 0) === sent, `every request refused (${[...statuses].map(([s, n]) => `${n} x ${s}`).join(', ')})`);
  figures.push(`8787 bad tokens: ${sent} requests in ${Date.now() - started} ms`);

  // 4. 300 handshakes with a client certificate on 8789 (workers and admins only), from one address.
  const mallory = await cluster.issue('client', 'mallory');
  let fetched = 0;
  for (let i = 0; i < 300; i++) {
    const h = await tlsHold(gw.ports.p8789!, { ca: cluster.caPem, cert: mallory.certPem, key: mallory.keyPem }, { localAddress: '127.0.0.4' });
    if (h.outcome === 'held') fetched += await getOnce(h.socket);
    h.socket.destroy();
  }
  t.equal(fetched, 0, 'no client certificate got an answer other than a refusal');
  figures.push('8789 wrong role: 300 attempts');

  // The log cost of each attack, summaries included.
  const logCost = [
    ['300 silent TCP connections on 8786', await refusalLines(gw, (a) => a === '127.0.0.2'), 10],
    [`${400 - heldTls} refused TLS connections on 8787 from 8 addresses`, await refusalLines(gw, (a) => a.startsWith('127.0.1.')), 24],
    [`${sent} bad-token requests on 8787`, await refusalLines(gw, (a) => a === '127.0.0.3'), 10],
    ['300 refused fetches on 8789', await refusalLines(gw, (a) => a === '127.0.0.4'), 10],
  ] as const;
  for (const [what, lines, most] of logCost) t.ok(lines <= most, `${lines} refusal log lines for ${what}`);
  figures.push(`log lines per attack: ${logCost.map(([, n]) => n).join(' / ')}`);

  const out = await steady;
  const peak = sampler.stop();
  t.equal(out.failed, 0, `the connected client never failed a task (${out.ok} tasks, errors: ${out.errors.join(' | ')})`);
  t.ok(out.ok >= 50, `and kept computing: ${out.ok} tasks in 45 s`);
  t.ok(peak.peakFds < NOFILE, `descriptors peaked at ${peak.peakFds}, under the limit of ${NOFILE}`);
  t.same(gw.errors().filter((l) => /EMFILE/.test(JSON.stringify(l))), [], 'never EMFILE');
  t.notOk(gw.exited(), 'the gateway is up');
  t.comment(`Dask ${version.id}: ${figures.join('; ')}; steady client ${out.ok} ok / ${out.failed} failed; gateway peak RSS ${peak.peakRssMiB} MiB, peak descriptors ${peak.peakFds} (limit ${NOFILE})`);
});

/** GET with a bad bearer token; the status, or 0 when the connection was cut. */
function get(port: number, agent: Agent, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent, headers: { authorization: 'Bearer not-a-token' }, timeout: 10_000 }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', () => resolve(0));
    req.once('timeout', () => req.destroy());
    req.end();
  });
}

/** Asks 8789 for credentials on an open TLS socket; 1 when the answer is a 200. */
function getOnce(s: import('node:tls').TLSSocket): Promise<number> {
  return new Promise((resolve) => {
    let got = '';
    const done = () => resolve(/^HTTP\/1\.1 200/.test(got) ? 1 : 0);
    s.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    s.once('close', done);
    setTimeout(() => { s.destroy(); }, 3_000).unref();
    s.write('GET /v1/credentials HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
  });
}
