import t from 'tap';
import { startFakeUpstream, startTestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';

t.test('a request without credentials gets the login page (browsers) or a 401 (scripts), and is counted', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const html = await d.request('/status', { headers: { accept: 'text/html' } });
  t.equal(html.status, 401);
  t.match(html.body, '<form method="post" action="/gateway/login">');
  t.match(html.body, 'value="/status"');
  const api = await d.request('/json/identity.json');
  t.equal(api.status, 401);
  t.match(api.headers['www-authenticate'], /^Bearer/);
  t.equal(up.seen.length, 0, 'nothing reached upstream');
  t.equal(await d.refusals('no_credentials'), 2, 'both counted');
  // The second, from the same address for the same reason, is coalesced into a later summary (src/log/coalesce.ts).
  t.equal(d.audits('dashboard_refused').length, 1, 'the first written in full');
});

t.test('a bearer token is checked, stripped, and replaced by our X-Forwarded headers', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('alice');
  const r = await d.request('/echo?x=1', {
    headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil', cookie: 'a=1; __Host-dgw_session=forged; b=2' },
  });
  t.equal(r.status, 200, r.body);
  const seen = JSON.parse(r.body);
  t.equal(seen.url, '/echo?x=1');
  t.equal(seen.headers.authorization, undefined, 'Authorization is not forwarded');
  t.equal(seen.headers.cookie, 'a=1; b=2', 'only the session cookie is removed');
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal(seen.headers['x-forwarded-host'], `localhost:${d.port}`);
  t.equal(seen.headers.host, `localhost:${d.port}`, 'Host is kept for Tornado origin checks');
  t.equal(r.headers['strict-transport-security'], 'max-age=31536000');
  t.equal(r.headers['x-content-type-options'], 'nosniff');
  t.equal(r.headers['x-frame-options'], 'DENY', "upstream's weaker value is overridden");
  t.equal(r.headers['referrer-policy'], 'no-referrer');
  t.match(String(r.headers['content-security-policy']), "frame-ancestors 'none'");
  t.notMatch(d.rawLog(), token, 'the token is never logged');
});

t.test('a wrong, malformed, expired or revoked bearer token is refused with its reason', async (t) => {
  const up = await startFakeUpstream(t);
  let now = new Date();
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  void now;
  const good = d.token('bob');
  const wrong = 'dgw_' + 'A'.repeat(49);
  t.equal((await d.request('/echo', { headers: { authorization: `Bearer ${wrong}` } })).status, 401);
  t.equal((await d.request('/echo', { headers: { authorization: 'Basic Ym9iOnB3' } })).status, 401);
  d.tokens.revoke(good.id);
  const deadline = Date.now() + 2000;
  let status = 0;
  while (Date.now() < deadline && (status = (await d.request('/echo', { headers: { authorization: `Bearer ${good.token}` } })).status) === 200) await new Promise((r) => setTimeout(r, 100));
  t.equal(status, 401, 'revoked within 2 s');
  t.equal(await d.refusals('token_malformed'), 1);
  t.equal(await d.refusals('bad_authorization_header'), 1);
  t.ok((await d.refusals('token_unknown')) >= 1);
  t.equal(up.seen.length, 0);
});

t.test('a token link sets a Secure HttpOnly SameSite cookie and redirects to the URL without the token', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token, id } = d.token('carol', 'view', 1);
  const r = await d.request(`/echo?a=1&token=${token}&b=2`);
  t.equal(r.status, 303);
  t.equal(r.headers.location, '/echo?a=1&b=2');
  const setCookie = String(r.headers['set-cookie']);
  t.match(setCookie, /^__Host-dgw_session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; Secure; SameSite=Strict$/);
  t.equal(up.seen.length, 0, 'the token request itself never reaches upstream');
  const cookie = setCookie.split(';')[0]!;
  const next = await d.request('/echo?a=1&b=2', { headers: { cookie } });
  t.equal(next.status, 200);
  t.equal(JSON.parse(next.body).headers.cookie, undefined, 'session cookie stripped');
  t.notMatch(d.rawLog(), token);
  t.notMatch(d.rawLog(), cookie.split('=')[1]!, 'the cookie value is never logged');
  t.ok(d.audits('dashboard_login').some((l) => l.token_id === id && l.method === 'link'));

  t.equal((await d.request('/echo', { headers: { cookie: cookie.slice(0, -3) + 'xyz' } })).status, 401, 'a tampered cookie is refused');
  d.tokens.revoke(id);
  const after = await waitFor(async () => {
    const r = await d.request('/echo', { headers: { cookie } });
    return r.status === 200 ? undefined : r;
  }, { timeoutMs: 2_000, what: 'the revocation to reach the session (documented: within 2 s)' });
  t.equal(after.status, 401, 'the cookie dies with its token');
  t.match(String(after.headers['set-cookie']), 'Max-Age=0');
});

t.test('a view token may read but not change state; an admin token may', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const view = d.token('viewer', 'view');
  const admin = d.token('admin', 'admin');
  t.equal((await d.request('/echo', { headers: { authorization: `Bearer ${view.token}` } })).status, 200);
  t.equal((await d.request('/echo', { method: 'POST', body: 'x', headers: { authorization: `Bearer ${view.token}` } })).status, 403);
  t.equal((await d.request('/api/v1/retire_workers', { headers: { authorization: `Bearer ${view.token}` } })).status, 403);
  t.equal((await d.request('/echo', { method: 'DELETE', headers: { authorization: `Bearer ${view.token}` } })).status, 403);
  t.equal(await d.refusals('scope'), 3);
  const post = await d.request('/echo', { method: 'POST', body: 'x', headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'text/plain' } });
  t.equal(post.status, 200);
  t.equal(JSON.parse(post.body).body, 'x');
});

t.test('the login form accepts a pasted token only from our own origin', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('dave');
  const form = (tok: string, next = '/status') => `token=${encodeURIComponent(tok)}&next=${encodeURIComponent(next)}`;
  const ct = { 'content-type': 'application/x-www-form-urlencoded' };
  t.equal((await d.request('/gateway/login', { headers: { accept: 'text/html' } })).status, 200);
  const foreign = await d.request('/gateway/login', { method: 'POST', body: form(token), headers: { ...ct, origin: 'https://evil.example' } });
  t.equal(foreign.status, 403);
  const noOrigin = await d.request('/gateway/login', { method: 'POST', body: form(token), headers: ct });
  t.equal(noOrigin.status, 403);
  const nullCross = await d.request('/gateway/login', { method: 'POST', body: form(token), headers: { ...ct, origin: 'null', 'sec-fetch-site': 'cross-site' } });
  t.equal(nullCross.status, 403, 'Origin: null from another site is refused');
  const nullSame = await d.request('/gateway/login', { method: 'POST', body: form(token), headers: { ...ct, origin: 'null', 'sec-fetch-site': 'same-origin' } });
  t.equal(nullSame.status, 303, 'Origin: null (no-referrer policy) with Sec-Fetch-Site: same-origin is our own form');
  const ok = await d.request('/gateway/login', { method: 'POST', body: form(token), headers: { ...ct, origin: d.origin } });
  t.equal(ok.status, 303);
  t.equal(ok.headers.location, '/status');
  t.match(String(ok.headers['set-cookie']), '__Host-dgw_session=');
  const offsite = await d.request('/gateway/login', { method: 'POST', body: form(token, '//evil.example/x'), headers: { ...ct, origin: d.origin } });
  t.equal(offsite.headers.location, '/', 'next never leaves the site');
  const bad = await d.request('/gateway/login', { method: 'POST', body: form('nope'), headers: { ...ct, origin: d.origin, accept: 'text/html' } });
  t.equal(bad.status, 401);
  t.match(bad.body, 'not valid');
  t.equal(await d.refusals('origin'), 3);
});

t.test('failed attempts from one address are rate limited with 429 and audited', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t, limits: { loginFailuresPerWindow: 3, loginWindowMs: 60_000 } });
  const { token } = d.token('erin');
  for (let i = 0; i < 3; i++) t.equal((await d.request('/echo', { headers: { authorization: `Bearer dgw_${'B'.repeat(49)}` } })).status, 401);
  const blocked = await d.request('/echo', { headers: { authorization: `Bearer ${token}` } });
  t.equal(blocked.status, 429, 'even a good token waits out the window');
  t.equal(blocked.headers['retry-after'], '60');
  t.equal(await d.refusals('rate_limited'), 1);
  t.ok(d.audits('dashboard_refused').some((l) => l.reason === 'rate_limited'));
  t.equal((await d.request('/gateway/health')).status, 200, 'health needs no login and is never limited');
});

t.test('health says whether upstream is reachable and nothing else', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const ok = await d.request('/gateway/health');
  t.equal(ok.status, 200);
  t.same(JSON.parse(ok.body), { gateway: 'ok', upstream: 'reachable' });
  await up.close();
  const down = await waitFor(async () => {
    const r = await d.request('/gateway/health');
    return r.status === 200 ? undefined : r;
  }, { timeoutMs: 10_000, what: 'health to notice the upstream is gone' });
  t.equal(down.status, 503);
  t.same(JSON.parse(down.body), { gateway: 'ok', upstream: 'unreachable' });
});

t.test('an unreachable upstream gives a clear 502 page quickly, not a hang', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  await up.close();
  const { token } = d.token('frank');
  const started = Date.now();
  const r = await d.request('/status', { headers: { authorization: `Bearer ${token}`, accept: 'text/html' } });
  t.equal(r.status, 502);
  t.match(r.body, 'Dask dashboard unavailable');
  t.match(r.body, 'ECONNREFUSED');
  t.ok(Date.now() - started < 5000, 'answered within 5 s');
  t.equal(r.headers['x-frame-options'], 'DENY');
});

t.test('the dashboard link template is logged at start', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const line = d.lines.find((l) => l.event === 'dashboard_listening');
  t.equal(line?.dashboard_link, `https://{host}:${d.port}/status`);
  t.equal(d.component.linkTemplate, `https://{host}:${d.port}/status`);
});
