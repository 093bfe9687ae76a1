/**
 * A real headless Chromium against 8787: the token link, the login form, the
 * session cookie, a page of a real Dask scheduler, and WebSocket messages
 * from page script. Leaves a screenshot in test/artifacts/dashboard/.
 */
import t from 'tap';
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { requireDask, startScheduler, stopAll } from '../helpers/dask.js';
import { startFakeUpstream, startTestDashboard } from './harness.js';
import { chromiumAvailable, launchChromium } from './chromium.js';

const ARTIFACTS = fileURLToPath(new URL('../artifacts/dashboard/', import.meta.url));

// The page.evaluate() callbacks below run in Chromium, not in Node. The DOM lib
// cannot join the test program (it retypes WebCrypto for src/ too), so the few
// page globals they touch are declared here, scoped to this module.
declare const document: { readonly cookie: string };
declare const history: { readonly length: number };
declare const location: { readonly host: string };
/** `dgwSocket` is the slot the WebSocket test parks its page socket in. */
declare const window: { dgwSocket: WebSocket };

if (!chromiumAvailable()) {
  t.fail('chromium is required (scripts/test-packages.txt)');
} else if (requireDask(t)) {
  t.teardown(stopAll);
  let browser: Browser | undefined;
  t.before(async () => {
    browser = await launchChromium();
  });
  t.teardown(() => browser?.close());

  t.test('the token link logs a browser in, drops the token from the URL and shows a scheduler page', async (t) => {
    const scheduler = await startScheduler({ t });
    const d = await startTestDashboard({ upstreamPort: scheduler.dashboardPort, t });
    const { token } = d.token('browser-user');
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const response = await page.goto(`https://localhost:${d.port}/info/main/workers.html?token=${token}`, { timeout: 30_000 });
    t.equal(response?.status(), 200);
    t.equal(page.url(), `https://localhost:${d.port}/info/main/workers.html`, 'the token is gone from the URL');
    t.notMatch(page.url(), 'token');
    t.match(await page.content(), /Worker/i, 'a page of the real scheduler');
    const cookies = await context.cookies();
    t.equal(cookies.length, 1);
    t.match(cookies[0], { name: '__Host-dgw_session', httpOnly: true, secure: true, sameSite: 'Strict', path: '/' });
    t.equal(await page.evaluate(() => document.cookie), '', 'page script cannot read the session cookie');
    const json = await page.evaluate(async () => (await fetch('/json/identity.json')).json());
    t.match(json, { type: 'Scheduler' }, 'same-origin fetch from the page rides the cookie');
    const historyLength = await page.evaluate(() => history.length);
    t.ok(historyLength >= 1);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: `${ARTIFACTS}dask-2022-workers.png`, fullPage: true });
    t.ok(existsSync(`${ARTIFACTS}dask-2022-workers.png`), 'screenshot kept');
    t.notMatch(d.rawLog(), token, 'the token never reached a log line');
  });

  t.test('the login page accepts a pasted token and returns to the page asked for', async (t) => {
    const scheduler = await startScheduler({ t });
    const d = await startTestDashboard({ upstreamPort: scheduler.dashboardPort, t });
    const { token } = d.token('paster');
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    t.teardown(() => context.close());
    const page = await context.newPage();
    const first = await page.goto(`https://localhost:${d.port}/json/counts.json`);
    t.equal(first?.status(), 401);
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`https://localhost:${d.port}/json/counts.json`), page.click('button[type=submit]')]);
    t.match(JSON.parse(await page.innerText('body')), { workers: Number }, 'back on the page asked for, now authenticated');
  });

  t.test('page script exchanges WebSocket messages through the proxy; revocation closes it', async (t) => {
    const up = await startFakeUpstream(t);
    const d = await startTestDashboard({ upstreamPort: up.port, t });
    const { token, id } = d.token('ws-browser');
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    t.teardown(() => context.close());
    const page = await context.newPage();
    await page.goto(`https://localhost:${d.port}/echo?token=${token}`);
    t.equal(page.url(), `https://localhost:${d.port}/echo`);
    const got = await page.evaluate(
      () =>
        new Promise<string[]>((resolve, reject) => {
          const ws = new WebSocket(`wss://${location.host}/stream`);
          const seen: string[] = [];
          window.dgwSocket = ws;
          ws.onopen = () => ws.send('from-page');
          ws.onmessage = (e) => {
            seen.push(String(e.data));
            if (seen.some((s) => s === 'echo:from-page') && seen.some((s) => s.includes('tick'))) resolve(seen);
          };
          ws.onerror = () => reject(new Error('websocket error'));
          setTimeout(() => reject(new Error('no messages')), 15_000);
        }),
    );
    t.ok(got.includes('echo:from-page'), 'echo received');
    t.ok(got.some((s) => /"tick":\d+/.test(s)), 'stream received');
    const upgrade = up.seen.find((s) => s.method === 'UPGRADE')!;
    t.notMatch(String(upgrade.headers.cookie ?? ''), '__Host-dgw_session', 'upstream never sees the session cookie');
    const closedIn = page.evaluate(
      () =>
        new Promise<number>((resolve) => {
          const ws = window.dgwSocket;
          const started = performance.now();
          ws.onclose = () => resolve(performance.now() - started);
        }),
    );
    d.tokens.revoke(id);
    const ms = await closedIn;
    t.ok(ms < 2000, `the page saw its WebSocket close ${Math.round(ms)} ms after revocation`);
    const after = await page.goto(`https://localhost:${d.port}/echo`);
    t.equal(after?.status(), 401, 'and the next page load is the login page');
  });
}
