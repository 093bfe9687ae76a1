/**
 * The idle timeout against real Dask (both versions): a cluster with a worker
 * and a client idles for several times a short --idle-timeout, then keeps
 * computing. The gateway closes the quiet pooled (request) connections,
 * Dask's ConnectionPool notices and reconnects; the worker's and the client's
 * streams, silent for longer than the timeout, are never cut (a worker whose
 * stream is cut exits). The worker runs under a nanny, as deployments run
 * it: the nanny's own connections to the scheduler are pooled ones too.
 */
import t from 'tap';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker } from '../helpers/dask.js';

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

eachDaskVersion(t, 'idling past the idle timeout, then computing: pooled connections cut and re-opened, no stream cut, no worker lost', async (t, version) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const scheduler = await startScheduler({ tls: files(await cluster.issue('scheduler', 'scheduler')), t, version });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, flags: { 'idle-timeout': '1500' } });
  const worker = await startWorker({ scheduler: gw.address, tls: files(await cluster.issue('worker', 'w1')), name: 'w1', t, version, nanny: true });
  const out = await runClient<{ before: number; after: number; pids: number[][]; workers: number[] }>(`${clientPrelude(gw.address, files(await cluster.issue('client', 'alice')))}
import time
c.wait_for_workers(1, timeout=60)
before = sum(c.gather(c.map(lambda x: x + 1, range(100), pure=False)))
pids = [sorted(c.run(os.getpid).values())]
n = [len(c.scheduler_info()["workers"])]
time.sleep(8)  # the point: idle for longer than --idle-timeout 1500 ms
after = sum(c.gather(c.map(lambda x: x + 1, range(100), pure=False)))
pids.append(sorted(c.run(os.getpid).values()))
n.append(len(c.scheduler_info()["workers"]))
print(json.dumps({"before": before, "after": after, "pids": pids, "workers": n}))
c.close()
`, { version, timeoutMs: 120_000 });
  t.equal(out.before, 5050, 'computes before idling');
  t.equal(out.after, 5050, 'and after idling 8 s past a 1.5 s idle timeout');
  t.same(out.pids[1], out.pids[0], 'the same worker process: its stream was never cut (a worker whose stream is cut exits)');
  t.same(out.workers, [1, 1], 'the scheduler never lost the worker');
  const idleCuts = gw.audits('connection_closed').filter((l) => l.reason === 'idle_timeout');
  t.ok(idleCuts.length >= 1, `the gateway did cut idle connections (${idleCuts.length}), so the test exercised the timeout`);
  t.same([...new Set(idleCuts.map((l) => l.kind))].filter((k) => k === 'stream'), [], 'none of them a Dask stream');
  t.notMatch(worker.output(), /Connection to scheduler broken|Restarting worker/, 'the worker never saw its scheduler connection break');
  t.ok(worker.alive(), 'the worker process runs');
  t.comment(`Dask ${version.id}: ${idleCuts.length} idle pooled connections cut (${[...new Set(idleCuts.map((l) => `${l.role}/${l.kind}`))].join(', ')}); computing continued`);
});
