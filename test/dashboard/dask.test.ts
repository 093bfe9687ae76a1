/**
 * The proxy in front of a real Dask 2022.12.1 scheduler HTTP server (no
 * Bokeh): /health, /metrics, /info/..., /json/..., and the /eventstream
 * WebSocket, with each way of logging in, and every way of being refused.
 */
import t from 'tap';
import { requireDask, startScheduler, stopAll } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { closed, opened, refusedWith, startTestDashboard, type TestDashboard } from './harness.js';
import type { TestIssued } from '../helpers/pki.js';

if (requireDask(t)) {
  t.teardown(stopAll);
  const scheduler = await startScheduler({ t });
  const d: TestDashboard = await startTestDashboard({ upstreamPort: scheduler.dashboardPort, t, flags: { 'dashboard-client-cert-auth': true } });
  const view = d.token('dask-view', 'view');
  const admin = d.token('dask-admin', 'admin');
  const cert: TestIssued = await d.cluster.issue('client', 'browser');

  type Auth = { name: string; headers: () => Promise<Record<string, string>>; cert?: TestIssued };
  const cookieFor = async (token: string) => {
    const r = await d.request(`/health?token=${token}`);
    if (r.status !== 303) throw new Error(`link login gave ${r.status}`);
    return String(r.headers['set-cookie']).split(';')[0]!;
  };
  const methods: Auth[] = [
    { name: 'bearer token', headers: async () => ({ authorization: `Bearer ${view.token}` }) },
    { name: 'link and cookie', headers: async () => ({ cookie: await cookieFor(view.token), origin: d.origin }) },
    { name: 'client certificate', headers: async () => ({}), cert },
  ];

  for (const m of methods) {
    t.test(`scheduler pages and /eventstream work with a ${m.name}`, async (t) => {
      const headers = await m.headers();
      const opts = { headers, ...(m.cert ? { cert: m.cert } : {}) };
      const health = await d.request('/health', opts);
      t.equal(health.status, 200);
      t.equal(health.body, 'ok');
      const metrics = await d.request('/metrics', opts);
      t.equal(metrics.status, 200);
      t.match(metrics.body, 'dask_scheduler_workers');
      const identity = await d.request('/json/identity.json', opts);
      t.equal(identity.status, 200);
      t.match(JSON.parse(identity.body), { type: 'Scheduler', address: `tcp://127.0.0.1:${scheduler.port}` });
      const counts = await d.request('/json/counts.json', opts);
      t.equal(counts.status, 200);
      const workers = await d.request('/info/main/workers.html', opts);
      t.equal(workers.status, 200);
      t.match(workers.body, /<html|Worker/i);
      const info = await d.request('/info', opts);
      t.equal(info.status, 302, 'redirects from upstream pass through');
      t.match(info.headers.location, /info\/main\/workers\.html$/);
      t.equal(info.headers['x-frame-options'], 'DENY');

      const ws = d.websocket('/eventstream', opts);
      await opened(ws);
      t.pass('/eventstream upgraded through the proxy');
      ws.close();
      t.ok((await closed(ws)) > 0);
    });
  }

  t.test('the scheduler is refused without, with a wrong, an expired and a revoked token', async (t) => {
    t.equal((await d.request('/json/identity.json')).status, 401, 'without credentials');
    t.equal((await d.request('/json/identity.json', { headers: { authorization: `Bearer dgw_${'Z'.repeat(49)}` } })).status, 401, 'wrong');
    const store = d.tokens;
    const old = store.create({ name: 'old', expiresDays: 1 });
    // Expire it in the database as the clock would, without waiting a day.
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(store.path);
    db.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run(Date.now() - 1000, old.record.id);
    db.close();
    const expired = await waitFor(async () => {
      const r = await d.request('/json/identity.json', { headers: { authorization: `Bearer ${old.token}` } });
      return r.status === 200 ? undefined : r;
    }, { timeoutMs: 2_000, what: 'the expiry to be noticed (documented: within 2 s)' });
    t.equal(expired.status, 401, 'expired');
    const gone = d.token('gone');
    d.tokens.revoke('gone');
    t.equal((await d.request('/json/identity.json', { headers: { authorization: `Bearer ${gone.token}` } })).status, 401, 'revoked');
    t.equal(await refusedWith(d.websocket('/eventstream', { headers: { authorization: `Bearer ${gone.token}` } })), 401, 'revoked, WebSocket');
    t.equal(await refusedWith(d.websocket('/eventstream')), 401, 'no credentials, WebSocket');
    t.ok((await d.refusals('token_expired')) >= 1);
    t.ok((await d.refusals('token_unknown')) >= 2);
  });

  t.test('a view token cannot make a state-changing request; an admin token reaches the scheduler', async (t) => {
    const asView = await d.request('/api/v1/retire_workers', { method: 'POST', body: '{}', headers: { authorization: `Bearer ${view.token}`, 'content-type': 'application/json' } });
    t.equal(asView.status, 403);
    const asAdmin = await d.request('/api/v1/retire_workers', { method: 'POST', body: '{}', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' } });
    t.equal(asAdmin.status, 404, 'reached the scheduler (its API is opt-in, so 404 there)');
    t.match(asAdmin.headers.server ?? '', /Tornado/);
  });

  t.test('revoking a token closes its /eventstream WebSocket within 2 s', async (t) => {
    const tmp = d.token('eventstream-revoke');
    const ws = d.websocket('/eventstream', { headers: { authorization: `Bearer ${tmp.token}` } });
    await opened(ws);
    const started = Date.now();
    d.tokens.revoke(tmp.id);
    await closed(ws, 5000);
    t.ok(Date.now() - started < 2000, `closed after ${Date.now() - started} ms`);
  });
}
