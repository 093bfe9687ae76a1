/**
 * Browsers that vanish, many times over, against the real Bokeh dashboard
 * (Dask 2026.7.1): the gateway runs as its own process (a crash would be
 * seen, not hidden in the test runner), a worker and a busy Python client use
 * 8786, and each round SIGKILLs a Chromium in the middle of page loads,
 * static downloads or live Bokeh WebSockets, and resets raw TLS sockets in the
 * middle of the same three. Throughout and afterwards the gateway process is
 * alive, 8786 and 8787 serve, the worker stays registered, a client
 * computation works, and the connections it held are released.
 */
import t from 'tap';
import { request as httpsRequest } from 'node:https';
import type { Page } from 'playwright-core';
import { DASK_2026, clientPrelude, requireDask, runClient, spawnDaskScript, startWorker, stopAll } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { metricValue, spawnGatewayChild, type GatewayChild } from '../hardening/child.js';
import { files, startBokehCluster, type BokehCluster } from './bokeh-cluster.js';
import { chromiumAvailable, launchKillableChromium } from './chromium.js';
import { getRequest, rawClient, upgradeRequest } from './raw-client.js';

const ROUNDS = 24;
const TIME_BOUND_MS = 240_000;

t.setTimeout(600_000);

type Phase = 'page load' | 'static download' | 'live websocket';
const PHASES: Phase[] = ['page load', 'static download', 'live websocket'];

function getJson(port: number, ca: string, path: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port, path, ca, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`timeout ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** One Chromium, killed (SIGKILL, its whole process group) while `phase` is under way. */
async function killBrowserDuring(phase: Phase, base: string, token: string, trust: string): Promise<void> {
  const { server, browser } = await launchKillableChromium({ trust });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const framed = new Promise<void>((resolve) => page.on('websocket', (ws) => ws.on('framereceived', () => resolve())));
    const loads = (p: Page, path: string) => p.goto(`${base}${path}`, { waitUntil: 'commit' }).catch(() => undefined);
    if (phase === 'page load') {
      // Killed while the token link, the redirect, the HTML and its scripts are in flight.
      void loads(page, `/status?token=${token}`);
      // A random moment is the point: the kill must land anywhere in the exchange, not after an event.
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 400));
    } else {
      await page.goto(`${base}/individual-task-stream?token=${token}`);
      if (phase === 'static download') {
        void page.evaluate(() => Promise.all(Array.from({ length: 6 }, (_, i) => fetch(`/static/js/bokeh.min.js?round=${i}`).then((r) => r.arrayBuffer())))).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 150)); // a random moment mid-download
      } else {
        const second = await context.newPage();
        void loads(second, '/status');
        await Promise.race([framed, new Promise((r) => setTimeout(r, 15_000))]);
        await new Promise((r) => setTimeout(r, Math.random() * 500)); // a random moment of the live WebSocket
      }
    }
  } finally {
    await server.kill();
  }
}

/** Raw TLS sockets reset (RST) during the same three phases. */
async function resetSocketsDuring(port: number, ca: string, origin: string, token: string): Promise<void> {
  const auth = { authorization: `Bearer ${token}` };
  const page = await rawClient(port, ca);
  page.tls.write(getRequest('/status', port, auth));
  await page.waitFor('HTTP/1.1 200', 15_000);
  page.reset();

  const download = await rawClient(port, ca);
  download.tls.write(getRequest('/static/js/bokeh.min.js', port, auth));
  await download.waitFor('HTTP/1.1 200', 15_000);
  download.reset();

  // A live Bokeh WebSocket needs the session token from its page.
  const html = await rawClient(port, ca);
  html.tls.write(getRequest('/individual-task-stream', port, { ...auth, connection: 'close' }));
  await html.closed();
  const bokehToken = /"token":"([^"]+)"/.exec(html.received().toString())?.[1];
  if (!bokehToken) throw new Error(`no Bokeh session token in the page: ${html.received().subarray(0, 300).toString()}`);
  const ws = await rawClient(port, ca);
  ws.tls.write(upgradeRequest('/individual-task-stream/ws', port, { ...auth, origin, 'sec-websocket-protocol': `bokeh, ${bokehToken}` }));
  await ws.waitFor('ACK', 15_000);
  ws.reset();
}

if (!chromiumAvailable()) {
  t.fail('chromium is required (scripts/test-packages.txt)');
} else if (requireDask(t, DASK_2026)) {
  t.teardown(stopAll);

  t.test(`${ROUNDS} rounds of browsers and sockets vanishing mid-exchange: the gateway, 8786, 8787 and its worker carry on`, async (t) => {
    const bc: BokehCluster = await startBokehCluster(t);
    const gw: GatewayChild = await spawnGatewayChild({
      t, passphrase: bc.cluster.passphrase,
      flags: {
        dir: bc.cluster.dir, listen: '127.0.0.1:0', scheduler: `127.0.0.1:${bc.scheduler.port}`, 'metrics-listen': '127.0.0.1:0',
        'dashboard-listen': `127.0.0.1:${bc.gatewayDashboardPort}`, 'dashboard-upstream': `127.0.0.1:${bc.scheduler.dashboardPort}`,
      },
    });
    const address = `tls://127.0.0.1:${gw.ports.p8786}`;
    const port = gw.ports.p8787;
    const ca = bc.cluster.caPem;
    const base = `https://localhost:${port}`;
    const worker = await startWorker({ scheduler: address, tls: files(await bc.cluster.issue('worker', 'w1')), name: 'w1', t, version: DASK_2026 });
    const client = files(await bc.cluster.issue('client', 'alice'));
    const { token } = bc.token('vanishing');
    const workersListed = async () => JSON.parse((await getJson(port, ca, '/json/counts.json', token)).body).workers as number;
    await waitFor(async () => (await workersListed()) === 1, { what: 'w1 listed by the scheduler' });
    const fdsBefore = await metricValue(gw.ports.metrics, 'scheduler_gateway_process_open_fds');

    // Work keeps the task stream (and so every Bokeh WebSocket) busy the whole time.
    const busy = spawnDaskScript(`${clientPrelude(address, client)}
import time
n = 0
while True:
    c.gather(c.map(lambda x: time.sleep(0.02) or x, range(40), pure=False))
    n += 1
    print("batch", n, flush=True)
`, { t, version: DASK_2026 });
    const batches = () => (busy.output().match(/^batch \d+$/gm) ?? []).length;

    const started = Date.now();
    let rounds = 0;
    let progress = 0;
    for (; rounds < ROUNDS && Date.now() - started < TIME_BOUND_MS; rounds++) {
      const phase = PHASES[rounds % PHASES.length]!;
      await Promise.all([
        killBrowserDuring(phase, base, token, bc.cluster.gatewayCertPath),
        resetSocketsDuring(port, ca, bc.origin, token),
      ]);
      if (gw.exited()) break;
      if (rounds % 6 === 5) {
        t.equal(await workersListed(), 1, `round ${rounds + 1}: 8787 answers and the scheduler still lists w1`);
        t.ok(batches() > progress, `round ${rounds + 1}: the busy client computed ${batches() - progress} more batches through 8786`);
        progress = batches();
      }
    }
    t.equal(rounds, ROUNDS, `${rounds} rounds within ${TIME_BOUND_MS / 1000} s (${Math.round((Date.now() - started) / 1000)} s)`);
    t.notOk(gw.exited(), 'the gateway process is alive');
    t.same(gw.errors(), [], 'no error line and nothing on stderr');
    t.same(gw.lines.filter((l) => l.level === 'warn' || l.event === 'dashboard_refused'), [], 'no warning and no refusal: a vanishing browser is not an incident');
    const done = batches();
    await waitFor(() => batches() >= done + 2, { timeoutMs: 30_000, what: 'the busy client still computing' });
    t.pass(`the busy client computed ${done} batches through 8786 during the rounds and carries on`);
    t.ok(worker.alive(), 'the worker process is still running');
    t.equal(await workersListed(), 1, 'the scheduler still lists the worker');
    t.notMatch(bc.scheduler.output(), /Remove worker/, 'the scheduler never lost it');
    const out = await runClient<{ total: number }>(`${clientPrelude(address, client)}
print(json.dumps({"total": sum(c.gather(c.map(lambda x: x + 1, range(100))))}))
c.close()
`, { version: DASK_2026 });
    t.equal(out.total, 5050, 'a fresh client computes through 8786');
    const browserEnds = await metricValue(gw.ports.metrics, 'scheduler_gateway_dashboard_disconnects_total', { peer: 'browser' });
    t.ok(browserEnds >= rounds * 3, `${browserEnds} browser disconnects counted`);
    await busy.stop('SIGKILL');
    await waitFor(async () => (await metricValue(gw.ports.metrics, 'scheduler_gateway_dashboard_websockets_open')) === 0, { timeoutMs: 15_000, what: 'no proxied WebSocket left open' });
    const fdsAfter = await waitFor(async () => {
      const n = await metricValue(gw.ports.metrics, 'scheduler_gateway_process_open_fds');
      return n <= fdsBefore + 5 ? n : undefined;
    }, { timeoutMs: 20_000, what: `open descriptors back to about ${fdsBefore}` });
    t.ok(fdsAfter <= fdsBefore + 5, `open descriptors ${fdsBefore} before, ${fdsAfter} after`);
  });
}
