import t from 'tap';
import { request } from 'node:https';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';

t.test('the composed gateway serves the dashboard next to 8786 and stops it on close', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const g = await startTestGateway({ cluster, scheduler: '127.0.0.1:9', t });
  const addr = g.gw.addresses.dashboard;
  t.ok(addr && addr.port > 0, 'dashboard address reported');
  const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: addr!.port, path: '/gateway/health', servername: 'localhost', ca: cluster.caPem, agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(health.status, 503, 'no scheduler dashboard behind it');
  t.same(JSON.parse(health.body), { gateway: 'ok', upstream: 'unreachable' });
  t.ok(g.lines.some((l) => l.event === 'dashboard_listening' && l.dashboard_link === `https://{host}:${addr!.port}/status`), 'link template logged');
  await g.close();
  await t.rejects(
    new Promise((resolve, reject) => request({ host: '127.0.0.1', port: addr!.port, path: '/', ca: cluster.caPem, agent: false }, resolve).on('error', reject).end()),
    'closed with the gateway',
  );
});
