/**
 * Every refusal on 8786 has its own audit reason, and a refused peer never
 * reaches the scheduler: the real Dask cluster behind keeps working.
 */
import t from 'tap';
import { makeTestCluster, EKU, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { clientPrelude, requireDask, runClient, startScheduler, startWorker, type DaskProcess } from '../helpers/dask.js';
import { probeTls } from './tls-client.js';

if (requireDask(t)) {
  let cluster: TestCluster;
  let foreign: TestCluster;
  let gw: TestGateway;
  let worker: DaskProcess;
  const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

  t.before(async () => {
    cluster = await makeTestCluster();
    foreign = await makeTestCluster();
    const sched = await cluster.issue('scheduler', 'scheduler');
    const scheduler = await startScheduler({ tls: files(sched), t });
    gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, flags: { 'failed-handshake-rate': '1000' } });
    worker = await startWorker({ scheduler: gw.address, tls: files(await cluster.issue('worker', 'w1')), name: 'w1', t });
  });
  t.teardown(() => { cluster?.cleanup(); foreign?.cleanup(); });

  const hour = 3_600_000;
  const cases: Array<{ name: string; reason: string; creds: () => Promise<{ cert?: string; key?: string }> }> = [
    { name: 'a peer without a client certificate', reason: 'no_certificate', creds: async () => ({}) },
    { name: 'a certificate from a foreign CA', reason: 'unknown_ca', creds: async () => pair(await foreign.issue('client', 'mallory')) },
    { name: 'an expired certificate', reason: 'expired', creds: async () => pair(await cluster.forge({ uris: [uri('client/old')], notBefore: new Date(Date.now() - 48 * hour), notAfter: new Date(Date.now() - 24 * hour) })) },
    { name: 'a certificate not yet valid', reason: 'not_yet_valid', creds: async () => pair(await cluster.forge({ uris: [uri('client/early')], notBefore: new Date(Date.now() + 24 * hour), notAfter: new Date(Date.now() + 48 * hour) })) },
    {
      name: 'a revoked certificate', reason: 'revoked', creds: async () => {
        const c = await cluster.issue('client', 'fired');
        await cluster.revoke(c.serial);
        await gw.waitForLog((l) => l.event === 'trust_reloaded' && Array.isArray(l.newly_revoked) && (l.newly_revoked as string[]).length > 0, 10_000);
        return pair(c);
      },
    },
    { name: "another cluster's URI under the same CA", reason: 'wrong_cluster', creds: async () => pair(await cluster.forge({ uris: ['spiffe://other-cluster/client/eve'] })) },
    { name: 'a scheduler certificate from outside', reason: 'wrong_role', creds: async () => pair(await cluster.issue('scheduler', 'scheduler-2')) },
    { name: 'a gateway identity from outside', reason: 'wrong_role', creds: async () => pair(await cluster.forge({ uris: [uri('gateway')], eku: [EKU.clientAuth] })) },
    { name: 'a certificate without the clientAuth EKU', reason: 'wrong_eku', creds: async () => pair(await cluster.forge({ uris: [uri('client/server-only')], eku: [EKU.serverAuth] })) },
    { name: 'a CA-signed leaf with no EKU extension at all', reason: 'wrong_eku', creds: async () => pair(await cluster.forge({ uris: [uri('client/no-eku')], eku: null })) },
  ];

  for (const c of cases) {
    t.test(`refuses ${c.name} with audit reason ${c.reason}`, async (t) => {
      const creds = await c.creds();
      const r = await probeTls(gw.port, { ca: cluster.caPem, ...creds });
      t.equal(r.outcome, 'closed', 'nothing was forwarded from the scheduler');
      const line = await gw.waitForLog((l) => l.event === 'connection_refused' && l.peer === `127.0.0.1:${r.localPort}`, 10_000, `refusal of ${c.name}`);
      t.equal(line.reason, c.reason, 'audited with its specific reason');
      t.equal(line.level, 'audit', 'written at audit level');
      t.equal(gw.audits('connection_accepted').filter((l) => l.peer === `127.0.0.1:${r.localPort}`).length, 0, 'never audited as accepted');
      if (c.reason === 'no_certificate') {
        t.notOk(line.serial ?? line.uri ?? line.claimed_uri, 'no certificate, no identity fields');
      } else {
        t.match(line.serial, /^[0-9a-f]+$/, 'the certificate serial is in the line');
        // Identity from a chain that did not verify is only what the peer claims.
        // OpenSSL refused these chains; a leaf with no EKU passes OpenSSL (RFC 5280: any purpose) and is refused by checkPeerCertificate.
        const verified = !['unknown_ca', 'expired', 'not_yet_valid'].includes(c.reason) && !(c.reason === 'wrong_eku' && c.name.includes('clientAuth'));
        t.match(verified ? line.uri : line.claimed_uri, /^spiffe:\/\//, verified ? 'the verified identity is in the line' : 'the unverified identity is logged as claimed_uri');
        if (!verified) t.equal(line.uri, undefined, 'and never as uri');
      }
    });
  }

  t.test('the cluster still works after all refusals', async (t) => {
    const out = await runClient<{ r: number; n: number }>(`${clientPrelude(gw.address, files(await cluster.issue('client', 'alice')))}
print(json.dumps({"r": c.submit(lambda: 6 * 7).result(), "n": len(c.scheduler_info()["workers"])}))
c.close()
`);
    t.equal(out.r, 42, 'a task still computes');
    t.equal(out.n, 1, 'the worker is still registered');
    t.ok(worker.alive(), 'the worker process still runs');
  });

  function uri(path: string): string {
    return `spiffe://${cluster.clusterId}/${path}`;
  }
}

function pair(c: { certPem: string; keyPem: string }): { cert: string; key: string } {
  return { cert: c.certPem, key: c.keyPem };
}
