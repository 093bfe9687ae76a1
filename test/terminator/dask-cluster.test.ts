/**
 * Real Dask through the gateway, on each supported version: a tcp://
 * scheduler on loopback, the gateway in front of it, two `dask worker`
 * processes under nannies on tls:// with worker certificates, and Python
 * clients with client and admin certificates.
 */
import t from 'tap';
import { connect as tlsConnect } from 'node:tls';
import { writeFileSync } from 'node:fs';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { clientPrelude, eachDaskVersion, runClient, spawnDaskScript, startScheduler, startWorker, type DaskProcess, type DaskVersion } from '../helpers/dask.js';
import { waitFor } from '../helpers/wait.js';
import { encryptPrivateKeyPem } from '../../src/pki/keystore.js';
import { normalizeSerial } from '../../src/pki/peer-certificate.js';
import { checkWorkout, workoutPython } from '../helpers/dask-workout.js';

const WORKOUT = { tasks: 2000, mib: 20 };
const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

eachDaskVersion(t, 'a real cluster through the gateway', async (t, version: DaskVersion) => {
  const cluster: TestCluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: files(sched), t, version });
  const gw: TestGateway = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, echo: !!process.env.ECHO });
  const workers: DaskProcess[] = [];
  for (const name of ['w1', 'w2']) {
    const w = await cluster.issue('worker', name);
    workers.push(await startWorker({ scheduler: gw.address, tls: files(w), name, t, version, nanny: true }));
  }
  const workerPids = async (who: { caPath: string; certPath: string; keyPath: string }) =>
    (await runClient<{ pids: number[] }>(`${clientPrelude(gw.address, files(who))}
print(json.dumps({"pids": sorted(c.run(lambda: os.getpid()).values())}))
c.close()
`, { version })).pids;

  t.test('a client through the gateway runs 2,000 tasks, moves 20 MiB byte-exact, transfers between workers, and uses client.run and get_client', async (t) => {
    const alice = await cluster.issue('client', 'alice');
    const out = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(alice))}
${workoutPython(WORKOUT)}
print(json.dumps({**workout, "pids": sorted(c.run(lambda: os.getpid()).values())}))
c.close()
`, { timeoutMs: 180_000, version });
    checkWorkout(t, out, { ...WORKOUT, gatewayAddress: gw.address });
    t.equal(new Set(out.pids as number[]).size, 2, 'client.run reached both worker processes');
    const accepted = gw.audits('connection_accepted');
    t.ok(accepted.some((l) => l.uri === `spiffe://${cluster.clusterId}/client/alice`), 'the client connection is audited with its identity');
    t.ok(accepted.some((l) => l.uri === `spiffe://${cluster.clusterId}/worker/w1` && l.serial), 'worker connections are audited with identity and serial');
  });

  t.test('run_on_scheduler works with an admin certificate', async (t) => {
    const root = await cluster.issue('admin', 'root');
    const out = await runClient<{ pid: number }>(`${clientPrelude(gw.address, files(root))}
print(json.dumps({"pid": c.run_on_scheduler(lambda: os.getpid())}))
c.close()
`, { version });
    t.type(out.pid, 'number');
    t.ok(gw.audits('connection_accepted').some((l) => l.role === 'admin'), 'admin connection audited');
  });

  t.test("revoking a connected client's certificate closes its connection within 2 s while workers keep running", async (t) => {
    const bob = await cluster.issue('client', 'bob');
    const long: DaskProcess = spawnDaskScript(`${clientPrelude(gw.address, files(bob))}
import time
print("CONNECTED", flush=True)
while True:
    c.submit(lambda: 1, pure=False).result()
    time.sleep(0.2)  # paced: busy but not flooding, until the revocation cuts it
`, { t, version });
    await waitFor(() => long.output().includes('CONNECTED'), { timeoutMs: 60_000, what: 'long-running client connected' });
    const serial = normalizeSerial(bob.serial);
    const revokedAt = Date.now();
    await cluster.revoke(bob.serial);
    const line = await gw.waitForLog((l) => l.event === 'connection_closed' && l.reason === 'revoked' && l.serial === serial, 10_000, 'revocation audit');
    const elapsed = Date.parse(String(line.time)) - revokedAt;
    t.ok(elapsed <= 2_000, `connection closed ${elapsed} ms after the revocation (limit 2000)`);
    t.equal(line.level, 'audit');
    t.equal(gw.gw.context.sessions.serials().includes(serial), false, 'no live session left for the serial');
    await long.stop('SIGKILL');
    t.ok(workers.every((w) => w.alive()), 'both workers still run');
    const carol = await cluster.issue('client', 'carol');
    const out = await runClient<{ n: number }>(`${clientPrelude(gw.address, files(carol))}
print(json.dumps({"n": len(c.scheduler_info()["workers"]), "r": c.submit(lambda: 7).result()}))
c.close()
`, { version });
    t.equal(out.n, 2, 'the cluster still has both workers');
    const refused = await new Promise<string>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: bob.certPem, key: bob.keyPem, checkServerIdentity: () => undefined });
      s.on('error', () => resolve('error'));
      s.on('close', () => resolve('closed'));
      s.on('data', () => resolve('data'));
    });
    t.not(refused, 'data', 'the revoked certificate cannot reconnect');
    await gw.waitForLog((l) => l.event === 'connection_refused' && l.reason === 'revoked' && l.serial === serial, 10_000);
  });

  t.test('a reload with a new server certificate keeps worker connections and serves the new certificate to new ones', async (t) => {
    const pidsBefore = await workerPids(await cluster.issue('client', 'erin'));
    const fresh = await cluster.issue('gateway', 'gateway-2');
    const dir = cluster.dir;
    writeFileSync(`${dir}/gateway-key.pem.tmp`, encryptPrivateKeyPem(fresh.keyPem, cluster.passphrase), { mode: 0o600 });
    writeFileSync(`${dir}/gateway.pem.tmp`, fresh.certPem);
    const { renameSync } = await import('node:fs');
    renameSync(`${dir}/gateway-key.pem.tmp`, `${dir}/gateway-key.pem`);
    renameSync(`${dir}/gateway.pem.tmp`, `${dir}/gateway.pem`);
    t.equal(await gw.gw.reload('SIGHUP'), true, 'reload succeeded');
    const dave = await cluster.issue('client', 'dave');
    const seen = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: cluster.caPem, cert: dave.certPem, key: dave.keyPem, checkServerIdentity: () => undefined }, () => {
        resolve(normalizeSerial(s.getPeerCertificate().serialNumber));
        s.destroy();
      });
      s.on('error', reject);
    });
    t.equal(seen, normalizeSerial(fresh.serial), 'a new connection sees the new server certificate');
    const out = await runClient<{ pids: number[]; r: number }>(`${clientPrelude(gw.address, files(dave))}
print(json.dumps({"pids": sorted(c.run(lambda: os.getpid()).values()), "r": sum(c.gather(c.map(lambda x: x + 1, range(100))))}))
c.close()
`, { version });
    t.same(out.pids, pidsBefore, 'the same worker processes are still registered and computing');
    t.equal(out.r, 5050);
    t.ok(workers.every((w) => w.alive()), 'no worker restarted');
  });
});
