/**
 * Real Dask of each supported version through a gateway with two data-plane
 * processes (--processes 2, inspection on): a scheduler, two nanny workers
 * and clients whose connections land in both processes; Client.run aimed at
 * the workers by address passes the broadcast guard in whichever process
 * holds the client, though each worker registered through one process only
 * (the registrations are relayed); a policy reload reaches both processes;
 * after a process is killed its replacement serves Dask again.
 * Raw-connection tests of the same processes: processes.test.ts.
 */
import t from 'tap';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster, type TestCluster, type TestIssued } from '../helpers/pki.js';
import { startTestGateway, type LogLine, type TestGateway } from '../helpers/gateway.js';
import { clientPrelude, eachDaskVersion, runClient, startScheduler, startWorker, type DaskProcess, type DaskVersion } from '../helpers/dask.js';
import { dataPlanePids, pidGone } from '../helpers/data-plane.js';
import { checkWorkout, workoutPython } from '../helpers/dask-workout.js';
import { DEFAULT_POLICY, type PolicyDocument } from '../../src/policy/rules.js';

t.setTimeout(480_000);

const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });
const processesOf = (lines: readonly LogLine[]) => new Set(lines.map((l) => l.dataplane));
/** Fresh Client objects, each with its own connections, so that some land in each process. */
const CLIENTS = 6;
const WORKOUT = { tasks: 500, mib: 8 };

eachDaskVersion(t, 'real Dask through two data-plane processes', async (t, version: DaskVersion) => {
  const cluster: TestCluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const policyPath = join(cluster.root, 'policy.json');
  const writePolicy = (clientDeny: string[]) => {
    const doc: PolicyDocument = { ...DEFAULT_POLICY, rules: { ...DEFAULT_POLICY.rules, client: { ...DEFAULT_POLICY.rules.client, deny: clientDeny } } };
    writeFileSync(`${policyPath}.tmp`, JSON.stringify(doc));
    // Renamed into place: the watcher never reads half a file.
    renameSync(`${policyPath}.tmp`, policyPath);
  };
  writePolicy([]);
  const scheduler = await startScheduler({ tls: files(await cluster.issue('scheduler', 'scheduler')), t, version });
  const gw: TestGateway = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t, flags: { processes: '2', policy: policyPath }, echo: !!process.env.ECHO });
  const workers: DaskProcess[] = [];
  for (const name of ['w1', 'w2']) workers.push(await startWorker({ scheduler: gw.address, tls: files(await cluster.issue('worker', name)), name, t, version, nanny: true }));
  const acceptedFor = (who: TestIssued) => gw.audits('connection_accepted').filter((l) => l.uri === who.uri);

  t.test('a client computes, scatters and gathers byte-exact, transfers between workers, uses Client.run and get_client', async (t) => {
    const alice = await cluster.issue('client', 'alice');
    const out = await runClient<Record<string, unknown>>(`${clientPrelude(gw.address, files(alice))}
${workoutPython(WORKOUT)}
c.close()
# Client.run by address: the broadcast guard of the process holding each client must know both workers.
runs = []
for i in range(${CLIENTS}):
    ci = Client(${JSON.stringify(gw.address)}, security=sec, timeout=30)
    runs.append(sorted(ci.run(lambda: os.getpid(), workers=ws).values()))
    ci.close()
print(json.dumps({**workout, "runs": runs}))
`, { timeoutMs: 110_000, version });
    checkWorkout(t, out, { ...WORKOUT, gatewayAddress: gw.address });
    const runs = out.runs as number[][];
    t.equal(runs.length, CLIENTS, `Client.run by address worked from each of ${CLIENTS} clients`);
    t.ok(runs.every((pids) => pids.length === 2 && pids[0] !== pids[1] && pids.join() === runs[0]!.join()), 'and reached both worker processes each time');
    t.same(processesOf(acceptedFor(alice)), new Set([1, 2]), "alice's connections were accepted by both processes");
    t.same(processesOf(gw.audits('connection_accepted')), new Set([1, 2]), 'connection_accepted lines carry dataplane 1 and 2');
    t.same(gw.lines.filter(denied), [], 'nothing was denied');
  });

  t.test('a policy reload reaches both processes: a denied op is refused wherever the client lands, then allowed again', async (t) => {
    const bob = await cluster.issue('client', 'bob');
    const ncores = () => runClient<{ ok: number; refused: string[] }>(`${clientPrelude(gw.address, files(bob))}
c.close()
ok, refused = 0, []
for i in range(${CLIENTS}):
    ci = Client(${JSON.stringify(gw.address)}, security=sec, timeout=30)
    try:
        ci.ncores()
        ok += 1
    except Exception as e:
        refused.append(str(e)[:300])
    ci.close()
print(json.dumps({"ok": ok, "refused": refused}))
`, { timeoutMs: 100_000, version });
    t.same(await ncores(), { ok: CLIENTS, refused: [] }, 'ncores is allowed at first');

    const reloads = gw.audits('policy_reloaded').length;
    writePolicy(['ncores']);
    await gw.waitForLog(() => gw.audits('policy_reloaded').length > reloads, 15_000, 'policy_reloaded (deny ncores)');
    const before = gw.lines.length;
    // Repeats of one refusal are coalesced per process: each process writes its first in full.
    const refusals = () => gw.lines.slice(before).filter((l) => denied(l) && l.op === 'ncores' && l.uri === bob.uri);
    const rounds: Array<{ ok: number; refused: string[] }> = [];
    // Each round opens new connections; until some landed in each process, at most 3 rounds.
    while (rounds.length < 3 && processesOf(refusals()).size < 2) rounds.push(await ncores());
    t.ok(rounds.every((r) => r.ok === 0 && r.refused.length === CLIENTS), `no client could call ncores after the reload (${rounds.length} round(s) of ${CLIENTS})`);
    t.ok(rounds.every((r) => r.refused.every((e) => /refused "ncores"/.test(e))), `each client read why: ${rounds[0]!.refused[0]}`);
    t.same(processesOf(refusals()), new Set([1, 2]), 'both processes refused ncores');

    writePolicy([]);
    await gw.waitForLog(() => gw.audits('policy_reloaded').length > reloads + 1, 15_000, 'policy_reloaded (allow ncores)');
    t.same(await ncores(), { ok: CLIENTS, refused: [] }, 'allowed again after the next reload');
  });

  t.test('after a data-plane process is killed, its replacement serves Dask: a new worker registers, clients compute on it', async (t) => {
    const [victim] = dataPlanePids(gw.lines);
    process.kill(victim!, 'SIGKILL');
    await gw.waitForLog((l) => l.event === 'dataplane_process_exited' && l.pid === victim, 10_000, 'dataplane_process_exited');
    const restarted = await gw.waitForLog((l) => l.event === 'dataplane_process_restarted' && l.dataplane === 1, 60_000, 'dataplane_process_restarted');
    t.ok(pidGone(victim!), 'the killed process is gone');
    // A Dask worker whose scheduler stream was in the killed process stops with its nanny
    // (worker-handle-scheduler-connection-broken), as with a one-process gateway restart.
    t.comment(`workers still running after the kill: ${workers.filter((w) => w.alive()).length} of 2`);
    const w3 = await startWorker({ scheduler: gw.address, tls: files(await cluster.issue('worker', 'w3')), name: 'w3', t, version, nanny: true });
    const carol = await cluster.issue('client', 'carol');
    const out = await runClient<{ r: number; runs: number[] }>(`${clientPrelude(gw.address, files(carol))}
c.close()
r, runs = 0, []
for i in range(${CLIENTS}):
    ci = Client(${JSON.stringify(gw.address)}, security=sec, timeout=30)
    [w3] = [a for a, w in ci.scheduler_info()["workers"].items() if w["name"] == "w3"]
    r += sum(ci.gather(ci.map(lambda x: x + 1, range(100), workers=[w3], pure=False)))
    runs += list(ci.run(lambda: os.getpid(), workers=[w3]).values())
    ci.close()
print(json.dumps({"r": r, "runs": runs}))
`, { timeoutMs: 110_000, version });
    t.equal(out.r, CLIENTS * 5050, `each of ${CLIENTS} clients computed on the worker registered after the kill`);
    t.ok(out.runs.length === CLIENTS && out.runs.every((pid) => pid === out.runs[0]), 'and ran a function on it by address');
    t.ok(w3.alive(), 'the new worker still runs');
    const fromNew = acceptedFor(carol).filter((l) => l.dataplane === 1 && Date.parse(String(l.time)) >= Date.parse(String(restarted.time)));
    t.ok(fromNew.length > 0, `the new process (pid ${String(restarted.pid)}) accepted ${fromNew.length} of the clients' connections`);
  });
});

function denied(l: LogLine): boolean {
  return (l.event === 'connection_closed' && l.reason === 'policy_denied') || l.event === 'request_refused';
}
