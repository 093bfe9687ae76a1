/**
 * Real Dask of each supported version through the gateway with the default
 * policy (composition root wiring, inspection on): normal clusters and
 * clients work; a client certificate cannot register a worker or run code on
 * the scheduler, and its Python says why; a worker cannot register someone
 * else's address; get_client() in a task works, and is refused when
 * worker-client-ops is off.
 */
import t from 'tap';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway, type LogLine } from '../helpers/gateway.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker, type DaskVersion } from '../helpers/dask.js';

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });
const denied = (l: LogLine) => (l.event === 'connection_closed' && l.reason === 'policy_denied') || l.event === 'request_refused';

eachDaskVersion(t, 'the default policy with real Dask', async (t, version: DaskVersion) => {
  const cluster: TestCluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: files(sched), t, version });
  const schedulerPort = scheduler.port;
  const gw: TestGateway = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, echo: !!process.env.ECHO });
  const w1 = await cluster.issue('worker', 'w1');
  await startWorker({ scheduler: gw.address, tls: files(w1), name: 'w1', t, version, nanny: true });

  t.test('with the default policy a client submits, gathers, scatters, locks and a task uses get_client()', async (t) => {
    const alice = await cluster.issue('client', 'alice');
    const out = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(alice))}
from distributed import Lock
c.wait_for_workers(1, timeout=60)
futs = c.map(lambda x: x + 1, range(200), pure=False)
total = sum(c.gather(futs))
[s] = c.scatter([b"x" * 100000])
n = c.submit(len, s).result()
with Lock("l1"):
    locked = True
def inner(v):
    from distributed import get_client
    return get_client().submit(lambda z: z * 10, v, pure=False).result()
nested = c.submit(inner, 4, pure=False).result()
ran = list(c.run(lambda: 5).values())
print(json.dumps({"total": total, "n": n, "locked": locked, "nested": nested, "ran": ran}))
c.close()
`, { timeoutMs: 180_000, version });
    t.same(out, { total: 20100, n: 100000, locked: true, nested: 40, ran: [5] });
    t.same(gw.lines.filter(denied), [], 'nothing was denied');
  });

  t.test('a real dask worker started with a client certificate is refused at register-worker', async (t) => {
    const mallory = await cluster.issue('client', 'mallory');
    await t.rejects(startWorker({ scheduler: gw.address, tls: files(mallory), name: 'rogue', t, version, readyTimeoutMs: 20_000 }));
    const line = await gw.waitForLog((l) => denied(l) && l.op === 'register-worker', 30_000, 'register-worker denial');
    t.match(line, { level: 'audit', role: 'client', code: 'GW_POLICY_DENIED', rule: 'default-deny' });
  });

  t.test('run_on_scheduler is refused for a client certificate and works for an admin', async (t) => {
    const bob = await cluster.issue('client', 'bob');
    const refused = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(bob))}
try:
    c.run_on_scheduler(lambda: os.getpid())
    print(json.dumps({"ran": True}))
except Exception as e:
    print(json.dumps({"ran": False, "error": type(e).__name__}))
`, { timeoutMs: 120_000, version });
    t.equal(refused.ran, false, `refused (${String(refused.error)})`);
    t.match(await gw.waitForLog((l) => denied(l) && l.op === 'run_function', 30_000), { role: 'client', code: 'GW_POLICY_DENIED' });
    const root = await cluster.issue('admin', 'root');
    const ok = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(root))}
print(json.dumps({"pid": c.run_on_scheduler(lambda: os.getpid())}))
`, { timeoutMs: 120_000, version });
    t.type(ok.pid, 'number', 'admin ran a function on the scheduler');
  });

  t.test('Client.run aimed at an address that is not a registered worker is refused (the scheduler would dial it)', async (t) => {
    const eve = await cluster.issue('client', 'eve');
    const out = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(eve))}
try:
    c.run(lambda: 1, workers=["tls://127.0.0.1:9"])
    print(json.dumps({"ran": True}))
except Exception as e:
    print(json.dumps({"ran": False, "error": type(e).__name__}))
`, { timeoutMs: 120_000, version });
    t.equal(out.ran, false);
    t.match(await gw.waitForLog((l) => denied(l) && l.op === 'broadcast', 30_000), { role: 'client', code: 'GW_POLICY_FORWARD', detail: /127\.0\.0\.1:9/ });
  });

  t.test('a worker registering an address that is not its own is refused and never reaches the scheduler', async (t) => {
    const w9 = await cluster.issue('worker', 'w9');
    const out = await runClient<Record<string, unknown>>(`
import asyncio, json
from distributed.comm import connect
from distributed.security import Security
sec = Security(tls_ca_file=${JSON.stringify(w9.caPath)}, tls_worker_cert=${JSON.stringify(w9.certPath)}, tls_worker_key=${JSON.stringify(w9.keyPath)}, require_encryption=True)
async def main():
    comm = await connect(${JSON.stringify(gw.address)}, **sec.get_connection_args("worker"))
    await comm.write({"op": "register-worker", "address": "tls://10.1.2.3:4567", "name": "w9", "reply": False, "status": "init",
                      "nthreads": 1, "now": 0, "resources": {}, "memory_limit": 0, "local_directory": "/tmp", "services": {},
                      "nanny": None, "pid": 1, "versions": {}, "metrics": {}, "extra": {}, "server_id": "x", "stimulus_id": "s"})
    try:
        reply = await asyncio.wait_for(comm.read(), 30)
        return {"refused": False, "reply": str(reply)[:200]}
    except Exception as e:
        return {"refused": True, "error": type(e).__name__}
print(json.dumps(asyncio.run(main())))
`, { timeoutMs: 120_000, version });
    t.equal(out.refused, true, `connection closed (${String(out.error)})`);
    t.match(await gw.waitForLog((l) => denied(l) && l.op === 'register-worker' && l.role === 'worker', 30_000), { code: 'GW_POLICY_PIN_ADDRESS', rule: 'pin-address', detail: /10\.1\.2\.3/ });
    const root = await cluster.issue('admin', 'root2');
    const info = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(root))}
print(json.dumps({"workers": sorted(c.scheduler_info()["workers"])}))
`, { timeoutMs: 120_000, version });
    t.notOk((info.workers as string[]).some((w) => w.includes('10.1.2.3')), 'the scheduler never saw the forged address');
  });

  t.test('with worker-client-ops off, get_client() inside a task is refused', async (t) => {
    const strict = await startTestGateway({ cluster, scheduler: `127.0.0.1:${schedulerPort}`, t, flags: { 'worker-client-ops': 'false' } });
    const w2 = await cluster.issue('worker', 'w2');
    await startWorker({ scheduler: strict.address, tls: files(w2), name: 'w2', t, version, nanny: true });
    const carol = await cluster.issue('client', 'carol');
    const out = await runClient<Record<string, unknown>>(`${clientPrelude(strict.address, files(carol))}
c.wait_for_workers(2, timeout=60)
def inner(v):
    from distributed import get_client
    try:
        return ["ok", get_client(timeout=10).submit(lambda z: z, v, pure=False).result(timeout=10)]
    except Exception as e:
        return ["refused", type(e).__name__]
print(json.dumps({"r": c.submit(inner, 1, workers=["w2"], pure=False).result(timeout=120)}))
c.close()
`, { timeoutMs: 180_000, version });
    t.equal((out.r as string[])[0], 'refused', `the task could not reach the scheduler as a client (${JSON.stringify(out.r)})`);
    t.match(await strict.waitForLog((l) => denied(l) && l.op === 'register-client', 30_000), { role: 'worker', code: 'GW_POLICY_DENIED', detail: /worker-client-ops is off/ });
  });
});
