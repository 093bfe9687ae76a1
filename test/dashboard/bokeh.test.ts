/**
 * The real dashboard (Dask 2026.7.1 with Bokeh 3.9.2) in a real headless
 * Chromium through the gateway: 8786 carries a worker and a Python client,
 * 8787 the pages. Every main page renders Bokeh plots (canvas inside Bokeh's
 * own elements, a live Bokeh document, not the "needs bokeh" page) and keeps
 * receiving WebSocket frames after it has loaded; the task stream shows the
 * tasks a client submits; a token link, a cookie and a bearer token each get
 * in; revoking the token closes the page's Bokeh WebSocket. Screenshots of
 * each page are left in test/artifacts/dashboard/.
 */
import t from 'tap';
import { mkdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page, WebSocket as PageSocket } from 'playwright-core';
import { DASK_2026, clientPrelude, requireDask, runClient, startWorker, stopAll } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { bokehUpgradeStatus, files, startBokehCluster, type BokehCluster } from './bokeh-cluster.js';
import { chromiumAvailable, launchChromium } from './chromium.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/dashboard/', import.meta.url));

/** The page globals the page.evaluate() callbacks read; they run in Chromium. */
interface BokehModel { readonly name?: string | null; readonly data?: Record<string, ArrayLike<unknown>> }
interface BokehDocument { roots(): BokehModel[]; readonly all_models: Iterable<BokehModel> }
declare const window: { Bokeh?: { documents: BokehDocument[] } };
declare const document: { readonly body: { readonly innerText: string } };

const BOKEH_PAGES = ['/status', '/workers', '/tasks', '/system', '/profile', '/graph', '/groups', '/individual-task-stream'];

/** Frames a page's Bokeh WebSockets received, with when; and the sockets themselves. */
function watchSockets(page: Page): { frames: Array<{ at: number; text: string }>; sockets: PageSocket[] } {
  const w = { frames: [] as Array<{ at: number; text: string }>, sockets: [] as PageSocket[] };
  page.on('websocket', (ws) => {
    w.sockets.push(ws);
    ws.on('framereceived', (f) => {
      if (w.frames.length < 5000) w.frames.push({ at: Date.now(), text: typeof f.payload === 'string' ? f.payload : '' });
    });
  });
  return w;
}

/** Names of the root models of the page's Bokeh documents (empty when Bokeh never ran). */
function bokehRoots(page: Page): Promise<string[]> {
  return page.evaluate(() => (window.Bokeh?.documents ?? []).flatMap((d) => d.roots().map((r) => String(r.name ?? 'unnamed'))));
}

/** The `name` column of the task stream's data source in the page's Bokeh document. */
function taskStreamNames(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    for (const d of window.Bokeh?.documents ?? []) {
      for (const m of d.all_models) if (m.data && 'duration_text' in m.data && 'name' in m.data) return Array.from(m.data.name, String);
    }
    return [];
  });
}

if (!chromiumAvailable()) {
  t.fail('chromium is required (scripts/test-packages.txt)');
} else if (requireDask(t, DASK_2026)) {
  t.teardown(stopAll);
  let bc: BokehCluster;
  let gw: TestGateway;
  let browser: Browser;
  let base: string;
  let client: ReturnType<typeof files>;

  t.before(async () => {
    bc = await startBokehCluster(t);
    gw = await startTestGateway({
      cluster: bc.cluster, scheduler: `127.0.0.1:${bc.scheduler.port}`, t,
      flags: { 'dashboard-listen': `127.0.0.1:${bc.gatewayDashboardPort}`, 'dashboard-upstream': `127.0.0.1:${bc.scheduler.dashboardPort}` },
    });
    const w1 = await bc.cluster.issue('worker', 'w1');
    await startWorker({ scheduler: gw.address, tls: files(w1), name: 'w1', t, version: DASK_2026 });
    client = files(await bc.cluster.issue('client', 'alice'));
    browser = await launchChromium({ trust: bc.cluster.gatewayCertPath });
    base = `https://localhost:${bc.gatewayDashboardPort}`;
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  t.teardown(() => browser?.close());

  const newContext = async (t: { teardown(fn: () => unknown): void }): Promise<BrowserContext> => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    t.teardown(() => context.close());
    return context;
  };

  t.test('Bokeh only accepts the gateway\'s origin: the strict setting is in force upstream', async (t) => {
    t.equal(await bokehUpgradeStatus(bc.scheduler.dashboardPort, '/status/ws', 'https://elsewhere.example'), 403, 'a foreign Origin is refused by Bokeh itself');
    t.not(await bokehUpgradeStatus(bc.scheduler.dashboardPort, '/status/ws', bc.origin), 403, 'the gateway\'s origin passes Bokeh\'s check');
  });

  t.test('a token link, then the cookie: every main page renders real Bokeh plots that keep updating', async (t) => {
    const { token } = bc.token('pages');
    const context = await newContext(t);
    const page = await context.newPage();
    const first = await page.goto(`${base}/status?token=${token}`);
    t.equal(first?.status(), 200);
    t.equal(page.url(), `${base}/status`, 'the token left the address bar');
    t.match(await context.cookies(), [{ name: '__Host-dgw_session', httpOnly: true, secure: true, sameSite: 'Strict' }]);
    for (const path of BOKEH_PAGES) {
      await t.test(path, async (t) => {
        const p = path === '/status' ? page : await context.newPage();
        const sockets = watchSockets(p);
        if (p !== page) {
          const r = await p.goto(`${base}${path}`);
          t.equal(r?.status(), 200, 'served with the session cookie alone');
        } else {
          await p.reload();
        }
        await p.waitForLoadState('load');
        const loaded = Date.now();
        await p.locator('canvas').first().waitFor({ state: 'attached', timeout: 20_000 });
        t.ok(await p.locator('canvas').count() > 0, 'Bokeh drew canvases');
        t.ok((await bokehRoots(p)).length > 0, `a live Bokeh document (roots: ${(await bokehRoots(p)).join(', ')})`);
        t.notMatch(await p.evaluate(() => document.body.innerText), /needs bokeh/i);
        await waitFor(() => sockets.frames.some((f) => f.at > loaded), { timeoutMs: 15_000, what: `a WebSocket frame on ${path} after load` });
        t.match(sockets.sockets[0]?.url(), `${base.replace('https', 'wss')}${path}/ws`, 'the Bokeh WebSocket goes through 8787');
        await p.screenshot({ path: `${ARTIFACTS}${path.slice(1)}.png` });
        if (p !== page) await p.close();
      });
    }
  });

  t.test('the Info page lists the worker that joined through 8786', async (t) => {
    const { token } = bc.token('info');
    const page = await (await newContext(t)).newPage();
    const r = await page.goto(`${base}/info/main/workers.html?token=${token}`);
    t.equal(r?.status(), 200);
    t.match(await page.content(), /tls:\/\/127\.0\.0\.1:\d+/, 'the worker\'s address is listed');
    await page.screenshot({ path: `${ARTIFACTS}info-workers.png`, fullPage: true });
  });

  t.test('the task stream shows the tasks a client submits through 8786, while they run', async (t) => {
    const { token } = bc.token('task-stream');
    const page = await (await newContext(t)).newPage();
    const sockets = watchSockets(page);
    await page.goto(`${base}/status?token=${token}`);
    await page.locator('canvas').first().waitFor({ state: 'attached', timeout: 20_000 });
    t.same((await taskStreamNames(page)).filter((n) => n === 'dgw_probe'), [], 'nothing of ours before the computation');
    const out = await runClient<{ total: number }>(`${clientPrelude(gw.address, client)}
import time
def dgw_probe(x):
    time.sleep(0.1)  # long enough to be seen in the task stream while it runs
    return x
print(json.dumps({"total": sum(c.gather(c.map(dgw_probe, range(60))))}))
c.close()
`, { version: DASK_2026 });
    t.equal(out.total, 1770, 'the computation ran through 8786');
    const streamed = await waitFor(() => {
      const f = sockets.frames.filter((x) => x.text.includes('ColumnsStreamed') && x.text.includes('"dgw_probe"'));
      return f.length >= 3 ? f : undefined;
    }, { timeoutMs: 15_000, what: 'task-stream updates over the Bokeh WebSocket' });
    t.ok(streamed.length >= 3, `${streamed.length} task-stream updates arrived while the tasks ran`);
    await waitFor(async () => (await taskStreamNames(page)).includes('dgw_probe'), { timeoutMs: 10_000, what: 'dgw_probe in the task stream data source' });
    t.pass('the page\'s Bokeh document holds the submitted tasks');
    await page.screenshot({ path: `${ARTIFACTS}status-with-tasks.png` });
  });

  t.test('static assets and the JSON endpoints dask-labextension reads work with a bearer token', async (t) => {
    const { token } = bc.token('labextension');
    const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${token}` }) => new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port: bc.gatewayDashboardPort, path, ca: bc.cluster.caPem, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
      });
      req.on('error', reject);
      req.end();
    });
    const plots = await get('/individual-plots.json');
    t.equal(plots.status, 200);
    t.match(JSON.parse(plots.body), { 'Individual Task Stream': '/individual-task-stream', 'Individual Progress': '/individual-progress' }, 'what dask-labextension lists its panes from');
    // Not /json/identity.json: Dask 2026.7.1 itself answers it 500 once a worker has run tasks (tuple keys in its metrics).
    t.match(JSON.parse((await get('/json/counts.json')).body), { workers: 1 });
    t.match((await get('/metrics')).body, /^dask_scheduler_workers_added_total 1\.0$/m);
    const css = await get('/statics/css/base.css');
    t.equal(css.status, 200);
    t.match(css.type, 'text/css');
    const js = await get('/static/js/bokeh.min.js');
    t.equal(js.status, 200);
    t.match(js.type, 'javascript');
    t.ok(js.body.length > 500_000, `bokeh.min.js whole (${js.body.length} characters)`);
    t.equal((await get('/individual-plots.json', {})).status, 401, 'and nothing without it');
  });

  t.test('revoking the token closes the page\'s Bokeh WebSocket; the next load is the login page', async (t) => {
    const { token, id } = bc.token('revoke-me');
    const page = await (await newContext(t)).newPage();
    const sockets = watchSockets(page);
    await page.goto(`${base}/individual-task-stream?token=${token}`);
    await waitFor(() => sockets.frames.length > 0, { timeoutMs: 15_000, what: 'the Bokeh WebSocket open' });
    const ws = sockets.sockets[0]!;
    const closed = new Promise<number>((resolve) => ws.on('close', () => resolve(Date.now())));
    const revokedAt = Date.now();
    bc.revoke(id);
    const closedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Infinity), 10_000))]);
    t.ok(closedAt - revokedAt < 3000, `the WebSocket closed ${closedAt - revokedAt} ms after revocation`);
    t.ok(gw.audits('dashboard_websocket_closed').some((l) => l.reason === 'revoked' && l.token_id === id), 'audited');
    const again = await page.reload();
    t.equal(again?.status(), 401, 'the session ended with the token');
  });
}
