import t from 'tap';
import { closed, opened, refusedWith, startFakeUpstream, startTestDashboard } from './harness.js';
import { waitFor } from '../helpers/wait.js';
import type WebSocket from 'ws';
import { forgeCertificate } from '../helpers/pki.js';

function nextMessage(ws: WebSocket, pred: (s: string) => boolean = () => true): Promise<string> {
  return new Promise((resolve) => {
    const on = (m: Buffer) => {
      const s = m.toString();
      if (pred(s)) { ws.off('message', on); resolve(s); }
    };
    ws.on('message', on);
  });
}

t.test('a WebSocket through the proxy streams from upstream and echoes; credentials are stripped', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token } = d.token('ws-user');
  const ws = d.websocket('/stream', { headers: { authorization: `Bearer ${token}` } });
  await opened(ws);
  t.match(JSON.parse(await nextMessage(ws)), { tick: Number });
  ws.send('hello');
  t.equal(await nextMessage(ws, (s) => s.startsWith('echo:')), 'echo:hello');
  const seen = up.seen.find((s) => s.method === 'UPGRADE')!;
  t.equal(seen.headers.authorization, undefined);
  t.equal(seen.headers['x-forwarded-proto'], 'https');
  t.equal((await d.metrics.websocketsOpen.get()).values[0]?.value, 1);
  t.equal(d.ctx.sessions.tokenIds().length, 1, 'registered in the session registry');
  ws.close();
  await closed(ws);
  await waitFor(async () => (await d.metrics.websocketsOpen.get()).values[0]?.value === 0, { what: 'gauge back to 0' });
  t.equal(d.ctx.sessions.size, 0);
});

t.test('revoking the token closes its open WebSockets within 2 seconds', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t });
  const { token, id } = d.token('to-revoke');
  const a = d.websocket('/stream', { headers: { authorization: `Bearer ${token}` } });
  const b = d.websocket(`/stream?token=${token}`);
  await Promise.all([opened(a), opened(b)]);
  await nextMessage(a);
  const started = Date.now();
  d.tokens.revoke(id); // as `tokens revoke` in another process would
  await Promise.all([closed(a, 5000), closed(b, 5000)]);
  const took = Date.now() - started;
  t.ok(took < 2000, `closed after ${took} ms`);
  t.ok(d.audits('dashboard_token_invalidated').some((l) => l.token_id === id && l.reason === 'revoked'));
  t.equal(await refusedWith(d.websocket('/stream', { headers: { authorization: `Bearer ${token}` } })), 401, 'and cannot reconnect');
});

t.test('an expiring session cookie or token closes its WebSocket and refuses its next request', async (t) => {
  const up = await startFakeUpstream(t);
  let skew = 0;
  const d = await startTestDashboard({ upstreamPort: up.port, t, flags: { 'session-ttl': '60' }, now: () => new Date(Date.now() + skew) });
  const { token } = d.token('short');
  const login = await d.request(`/stream?token=${token}`);
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;
  const ws = d.websocket('/stream', { headers: { cookie, origin: d.origin } });
  await opened(ws);
  t.equal((await d.request('/echo', { headers: { cookie } })).status, 200, 'valid before the TTL');
  skew = 61_000;
  const started = Date.now();
  await closed(ws, 5000);
  t.ok(Date.now() - started < 2000, 'closed within 2 s of the session end');
  t.equal((await d.request('/echo', { headers: { cookie } })).status, 401, 'the cookie is refused after its TTL');

  const expiring = d.token('expiring', 'view', 1);
  const ws2 = d.websocket('/stream', { headers: { authorization: `Bearer ${expiring.token}` } });
  await opened(ws2);
  skew = 86_400_000 + 1000;
  await closed(ws2, 5000);
  t.equal((await d.request('/echo', { headers: { authorization: `Bearer ${expiring.token}` } })).status, 401, 'an expired token is refused');
  t.ok((await d.refusals('token_expired')) >= 1);
});

t.test('a client certificate of the cluster logs in when enabled; revoking it closes its WebSocket', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t, flags: { 'dashboard-client-cert-auth': true } });
  const client = await d.cluster.issue('client', 'alice');
  const admin = await d.cluster.issue('admin', 'root');
  const worker = await d.cluster.issue('worker', 'w1');
  const r = await d.request('/echo', { cert: client });
  t.equal(r.status, 200);
  t.equal((await d.request('/echo', { method: 'POST', body: 'x', cert: client })).status, 403, 'a client certificate has view scope');
  t.equal((await d.request('/echo', { method: 'POST', body: 'x', cert: admin })).status, 200, 'an admin certificate has admin scope');
  t.equal((await d.request('/echo', { cert: worker })).status, 401, 'a worker certificate is not a dashboard login');
  t.equal(await d.refusals('certificate_wrong_role'), 1);
  const otherCa = await d.cluster.forge({ uris: [`spiffe://${d.cluster.clusterId}/client/mallory`], issuer: await forgeCertificate({ isCA: true, eku: null }) });
  t.equal((await d.request('/echo', { cert: { ...client, certPem: otherCa.certPem, keyPem: otherCa.keyPem } })).status, 401, 'a certificate from another CA is refused');
  t.equal(await d.refusals('certificate_unknown_ca'), 1);

  const ws = d.websocket('/stream', { cert: client });
  await opened(ws);
  t.equal(d.ctx.sessions.serials().length, 1);
  const started = Date.now();
  await d.cluster.revoke(client.serial);
  await d.ctx.trust.reload('test');
  await closed(ws, 5000);
  t.ok(Date.now() - started < 2000 + 1000, 'closed within the sweep interval of the reload');
  t.equal((await d.request('/echo', { cert: client })).status, 401, 'a revoked certificate is refused');
  t.equal(await d.refusals('certificate_revoked'), 1);
});

t.test('upgrades are refused in a fixed order before any WebSocket exists', async (t) => {
  const up = await startFakeUpstream(t);
  const d = await startTestDashboard({ upstreamPort: up.port, t, flags: { 'max-websockets-per-identity': '2' } });
  const { token } = d.token('limits');
  const auth = { authorization: `Bearer ${token}` };
  t.equal(await refusedWith(d.websocket('/stream')), 401, 'no credentials');
  t.equal(await refusedWith(d.websocket('/stream', { headers: { ...auth, origin: 'https://evil.example' } })), 403, 'foreign Origin');
  const a = d.websocket('/stream', { headers: { ...auth, origin: d.origin } });
  const b = d.websocket('/stream', { headers: auth });
  await Promise.all([opened(a), opened(b)]);
  t.equal(await refusedWith(d.websocket('/stream', { headers: auth })), 429, 'per-identity limit');
  t.equal(await d.refusals('websocket_limit'), 1);
  t.equal(await d.refusals('origin'), 1);
  a.close();
  await closed(a);
  await waitFor(() => d.component.server!.websockets.size === 1, { what: 'one socket left' });
  const c = d.websocket('/stream', { headers: auth });
  await opened(c);
  t.pass('a slot frees when a WebSocket closes');
  b.close();
  c.close();
  await Promise.all([closed(b), closed(c)]);
  t.equal(up.seen.filter((s) => s.method === 'UPGRADE').length, 3, 'only accepted upgrades reached upstream');
});
