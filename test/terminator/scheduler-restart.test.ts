/**
 * The scheduler goes away and comes back: the gateway stays up, refuses
 * cleanly with upstream_unavailable meanwhile, and serves again after.
 */
import t from 'tap';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { clientPrelude, requireDask, runClient, startScheduler } from '../helpers/dask.js';
import { probeTls } from './tls-client.js';

t.test('a scheduler killed and restarted: the gateway refuses cleanly meanwhile and serves again after', async (t) => {
  if (!requireDask(t)) return;
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const tls = { ca: sched.caPath, cert: sched.certPath, key: sched.keyPath };
  const first = await startScheduler({ tls, t });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${first.port}`, t, flags: { 'upstream-connect-timeout-ms': '2000' } });
  const alice = await cluster.issue('client', 'alice');
  const files = { ca: alice.caPath, cert: alice.certPath, key: alice.keyPath };
  const ask = `${clientPrelude(gw.address, files)}
print(json.dumps({"type": c.scheduler_info()["type"]}))
c.close()
`;
  t.same(await runClient(ask), { type: 'Scheduler' }, 'served before');

  await first.stop('SIGKILL');
  const r = await probeTls(gw.port, { ca: cluster.caPem, cert: alice.certPem, key: alice.keyPem });
  t.equal(r.outcome, 'closed', 'the peer is closed, not left hanging');
  const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${r.localPort}`, 10_000);
  t.equal(line.reason, 'upstream_unavailable', 'audited as upstream_unavailable');
  t.equal(line.uri, `spiffe://${cluster.clusterId}/client/alice`, 'the refusal names the authenticated identity');
  t.ok(gw.gw.addresses.terminator, 'the gateway is still listening');

  await startScheduler({ tls, t, port: first.port });
  t.same(await runClient(ask), { type: 'Scheduler' }, 'served again after the restart');
});
