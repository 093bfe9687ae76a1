/**
 * Telemetry against real Dask through the whole gateway: a scheduler whose
 * tasks and functions are named with a marker string, a worker and clients
 * through 8786, the gateway streaming to the reference receiver. The marker
 * must never reach the receiver's database; a revocation sent by the receiver
 * must cut a live Dask connection within 2 s.
 */
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { clientPrelude, requireDask, spawnDaskScript, startScheduler, startWorker } from '../helpers/dask.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import { scrapeText } from '../../src/telemetry/scrape.js';
import { tempDir, testReceiver, type TestReceiver } from './helpers.js';
import { GiveUp, waitFor } from '../helpers/wait.js';
import { TokenStore } from '../../src/tokens/store.js';
import WebSocket from 'ws';

const MARKER = 'secretmarker-7f3a';
// What the scheduler actually derives from the marker keys (key_split drops "-7f3a-1"): the test must be able to fail.
const MARKER_PREFIX = 'secretmarker';

if (requireDask(t)) {
  let cluster: TestCluster;
  let gw: TestGateway;
  let rx: TestReceiver;
  let dashboardPort: number;
  const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

  t.before(async () => {
    cluster = await makeTestCluster();
    const dir = tempDir(t);
    rx = await testReceiver(t, dir);
    await rx.start();
    const sched = await cluster.issue('scheduler', 'scheduler');
    const scheduler = await startScheduler({ tls: files(sched), t });
    dashboardPort = scheduler.dashboardPort;
    gw = await startTestGateway({
      cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, echo: !!process.env.ECHO,
      flags: {
        'dashboard-upstream': `127.0.0.1:${dashboardPort}`,
        'control-plane': rx.url().href, 'control-plane-ca': rx.caPath, 'control-plane-credential': rx.enroll(cluster.clusterId),
        'telemetry-interval': '200ms', 'scrape-interval': '200ms',
        'credentials-listen': '127.0.0.1:0', // not the default 0.0.0.0:8789 --control-plane would open
      },
    });
    const w = await cluster.issue('worker', `${MARKER}-worker`);
    await startWorker({ scheduler: gw.address, tls: files(w), name: `${MARKER}-worker`, t });
  });
  t.teardown(() => cluster?.cleanup());

  t.test('tasks named with a marker run, and the marker never reaches the receiver database', async (t) => {
    const alice = await cluster.issue('client', 'alice');
    const release = join(rx.dir, 'release-alice');
    const client = spawnDaskScript(`${clientPrelude(gw.address, files(alice))}
c.wait_for_workers(1, timeout=60)
def secretmarker_7f3a_fn(x):
    return x + 1
futs = [c.submit(secretmarker_7f3a_fn, i, key='${MARKER}-%d' % i) for i in range(20)]
futs += [c.submit(secretmarker_7f3a_fn, i, pure=False) for i in range(5)]
bad = c.submit(lambda: 1 / 0, key='${MARKER}-fails')
try:
    bad.result()
except ZeroDivisionError:
    pass
results = c.gather(futs)
print(json.dumps({"results": results[:3]}), flush=True)
# Connected, holding the tasks, until the test has seen them in a batch.
import time
deadline = time.time() + 120
while not os.path.exists(${JSON.stringify(release)}) and time.time() < deadline:
    time.sleep(0.1)
c.close()
`, { t });
    const out = JSON.parse((await waitFor(() => {
      if (!client.alive()) throw new GiveUp(`the client exited:\n${client.output().slice(-4000)}`);
      return /^\{"results".*$/m.exec(client.output());
    }, { what: 'the marker tasks computed', timeoutMs: 120_000 }))[0]) as { results: number[] };
    t.same(out.results, [1, 2, 3], 'the marker tasks ran through the gateway');
    const raw = await scrapeText(new URL(`http://127.0.0.1:${dashboardPort}/metrics`), { timeoutMs: 5000, maxBytes: 4 << 20 });
    t.ok(raw.includes(MARKER_PREFIX), "the scheduler's own /metrics does carry the marker (so this test can fail)");

    // Wait for batches that carry the scheduler's view of those tasks.
    await waitFor(() => rx.db.batches(cluster.clusterId).some((b) => {
      const m = JSON.parse(b.body) as { scheduler: { ok: boolean }; samples: { name: string; labels: Record<string, string>; value: number }[] };
      return m.scheduler.ok && m.samples.some((s) => s.name === 'dask_scheduler_prefix_state_totals_total' && s.labels['state'] === 'memory' && s.value >= 25);
    }), { what: 'a batch with scheduler task counts', timeoutMs: 60_000 });
    writeFileSync(release, '');
    await waitFor(() => !client.alive(), { what: 'the client to close', timeoutMs: 30_000 });

    const dbFiles = readdirSync(rx.dir).filter((n) => n.startsWith('receiver.db'));
    t.ok(dbFiles.length >= 1, 'the receiver database exists');
    for (const f of dbFiles) {
      const bytes = readFileSync(join(rx.dir, f));
      t.equal(bytes.indexOf(MARKER_PREFIX), -1, `${f}: the marker is nowhere in the file's bytes`);
    }
    const rows = rx.db.batches(cluster.clusterId);
    t.ok(rows.length > 3, `${rows.length} batches received`);
    t.notOk(rows.some((r) => r.body.toLowerCase().includes(MARKER_PREFIX)), 'no batch row mentions the marker');
    const example = JSON.parse(rows[0]!.body) as { samples: { source: string }[] };
    t.ok(example.samples.some((s) => s.source === 'scheduler') && example.samples.some((s) => s.source === 'gateway'), 'batches hold both scheduler and gateway samples');
  });

  t.test('a revocation sent by the receiver closes the matching live Dask connection within 2 s', async (t) => {
    const mallory = await cluster.issue('client', 'mallory');
    const bob = await cluster.issue('client', 'bob');
    const script = (name: string) => `${clientPrelude(gw.address, files(name === 'mallory' ? mallory : bob))}
print("connected", flush=True)
import time
while True:
    time.sleep(0.2)  # idle and connected until the revocation cuts it
`;
    const m = spawnDaskScript(script('mallory'), { t });
    const b = spawnDaskScript(script('bob'), { t });
    await waitFor(() => m.output().includes('connected') && b.output().includes('connected'), { what: 'both clients connected', timeoutMs: 60_000 });
    const serial = normalizeSerial(mallory.serial);
    await waitFor(() => gw.gw.context.sessions.serials().includes(serial), { what: 'mallory registered as a live session', timeoutMs: 10_000 });
    const sent = Date.now();
    const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-certificate', { serial: mallory.serial, reason: 'keyCompromise' });
    const closed = await gw.waitForLog((l) => l.event === 'connection_closed' && l.serial === serial && l.reason === 'revoked', 5000, 'mallory cut');
    const elapsed = Date.parse(String(closed.time)) - sent;
    t.ok(elapsed < 2000, `mallory's connection closed ${elapsed} ms after the receiver queued the command`);
    t.ok(gw.gw.context.sessions.serials().includes(normalizeSerial(bob.serial)), "bob's connection stays open");
    await waitFor(() => rx.db.command(id)?.status === 'applied', { what: 'the command result', timeoutMs: 10_000 });
    t.ok(gw.audits('telemetry_command_applied').length >= 1, 'the command is audited');
  });

  t.test('a token revocation sent by the receiver closes the matching dashboard WebSocket within 2 s', async (t) => {
    const store = TokenStore.open(cluster.dir);
    const { token } = store.create({ name: 'dana' });
    const other = store.create({ name: 'erin' });
    store.close();
    const port = gw.gw.addresses.dashboard!.port;
    const open = (tok: string) => new Promise<WebSocket | undefined>((resolve) => {
      const ws = new WebSocket(`wss://127.0.0.1:${port}/eventstream`, { ca: cluster.caPem, headers: { authorization: `Bearer ${tok}` } });
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', () => { ws.terminate(); resolve(undefined); });
      ws.once('error', () => resolve(undefined));
    });
    // The dashboard's token cache picks the new tokens up on its own schedule.
    const dana = await waitFor(() => open(token), { what: 'dana WebSocket open', timeoutMs: 20_000, intervalMs: 200 });
    const erin = await waitFor(() => open(other.token), { what: 'erin WebSocket open', timeoutMs: 20_000, intervalMs: 200 });
    t.teardown(() => { dana.terminate(); erin.terminate(); });
    const closed = new Promise<number>((r) => dana.once('close', () => r(Date.now())));
    const sent = Date.now();
    const id = rx.db.enqueueCommand(cluster.clusterId, 'revoke-token', { token: 'dana' });
    const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 5000))]);
    t.ok(at - sent < 2000, `dana's WebSocket closed ${at - sent} ms after the receiver queued the command`);
    t.equal(erin.readyState, WebSocket.OPEN, "erin's WebSocket stays open");
    await waitFor(() => rx.db.command(id)?.status === 'applied', { what: 'the command result', timeoutMs: 10_000 });
  });
}

