/**
 * The delivered bundles work with real Dask over its own TLS, no gateway:
 * a scheduler started from the scheduler bundle's command line, a worker from
 * the worker bundle's command line, and clients using the client bundle's
 * distributed.yaml and its Security(...) snippet compute a sum of squares.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTestCluster } from '../helpers/pki.js';
import { freePort, requireDask, runClient, spawnDaskScript, stopAll, type DaskProcess } from '../helpers/dask.js';
import { GiveUp, waitFor } from '../helpers/wait.js';
import { runCerts } from './cli-harness.js';

if (requireDask(t)) {
  t.teardown(stopAll);
  t.test('scheduler, worker and clients complete a computation using only the issued bundles', async (t) => {
    const c = await makeTestCluster({ cluster: 'native-dask' });
    t.teardown(() => c.cleanup());
    const env = { SCHEDULER_GATEWAY_PASSPHRASE: c.passphrase };
    const out = (n: string) => join(c.root, 'bundles', n);
    for (const [role, name] of [['scheduler', 'sched'], ['worker', 'w1'], ['client', 'alice']] as const) {
      const r = await runCerts(['issue', '--dir', c.dir, '--role', role, '--name', name, '--out', out(name)], { cwd: c.root, env });
      t.equal(r.code, 0, r.stderr);
    }
    const commandOf = (name: string): string[] => {
      const readme = readFileSync(join(out(name), `${name}-README.md`), 'utf8');
      const line = readme.split('```sh\n')[1]!.split('\n')[0]!;
      return line.split(' ');
    };
    const asModule = (module: string, argv: string[]) =>
      `import sys, runpy\nsys.argv = ${JSON.stringify(['dask', ...argv])}\nrunpy.run_module(${JSON.stringify(module)}, run_name='__main__')`;

    // Scheduler: the bundle's `dask scheduler --protocol tls --tls-*` line, pinned to loopback.
    const schedCmd = commandOf('sched');
    t.same(schedCmd.slice(0, 4), ['dask', 'scheduler', '--protocol', 'tls']);
    const port = await freePort();
    const dash = await freePort();
    const scheduler = spawnDaskScript(asModule('distributed.cli.dask_scheduler',
      [...schedCmd.slice(2), '--host', '127.0.0.1', '--port', String(port), '--dashboard-address', `127.0.0.1:${dash}`, '--no-show']), { t });
    await waitFor(() => {
      if (!scheduler.alive()) throw new GiveUp(`scheduler exited:\n${scheduler.output()}`);
      return /Scheduler at:\s+tls:\/\/127\.0\.0\.1/.test(scheduler.output());
    }, { timeoutMs: 90_000, intervalMs: 200, what: 'TLS scheduler' });
    const address = `tls://127.0.0.1:${port}`;

    // Worker: the bundle's `dask worker ADDRESS --tls-*` line with the address pointed at this scheduler.
    const workerCmd = commandOf('w1');
    t.same(workerCmd.slice(0, 2), ['dask', 'worker']);
    t.match(workerCmd[2], /^tls:\/\//);
    const worker: DaskProcess = spawnDaskScript(asModule('distributed.cli.dask_worker',
      [address, ...workerCmd.slice(3), '--host', '127.0.0.1', '--name', 'w1', '--nthreads', '2', '--no-nanny', '--no-dashboard', '--memory-limit', '0']), { t });
    await waitFor(() => {
      if (!worker.alive()) throw new GiveUp(`worker exited:\n${worker.output()}`);
      return /Registered to:/.test(worker.output());
    }, { timeoutMs: 90_000, intervalMs: 200, what: 'worker registered over TLS' });

    const compute = [
      'futures = c.map(lambda x: x * x, range(100))',
      'total = c.submit(sum, futures).result(timeout=60)',
      'info = c.scheduler_info()',
      'print(json.dumps({"total": total, "workers": len(info["workers"]), "address": info["address"]}))',
    ].join('\n');

    // Client 1: nothing but the generated distributed.yaml (DASK_CONFIG), Client() builds Security from it.
    const viaYaml = await runClient<{ total: number; workers: number; address: string }>(
      `import json\nfrom distributed import Client\nc = Client(${JSON.stringify(address)}, timeout=60)\n${compute}`,
      { env: { DASK_CONFIG: out('alice') }, t, timeoutMs: 180_000 });
    t.same(viaYaml, { total: 328350, workers: 1, address }, 'the yaml configuration computes');

    // Client 2: the README's Security(...) snippet as delivered, with the address replaced.
    const readme = readFileSync(join(out('alice'), 'alice-README.md'), 'utf8');
    const snippet = readme.split('```python\n')[1]!.split('```')[0]!.replace(/Client\("tls:\/\/[^"]+"/, `Client(${JSON.stringify(address)}`);
    t.match(snippet, /Security\(/);
    const viaSnippet = await runClient<{ total: number; workers: number }>(`import json\n${snippet}\nc = client\n${compute}`, { t, timeoutMs: 180_000 });
    t.equal(viaSnippet.total, 328350, 'the Security(...) snippet computes');

    // Control: a client whose certificate comes from another cluster's CA is refused by Dask's TLS (it is mutual).
    const foreign = await makeTestCluster({ cluster: 'foreign' });
    t.teardown(() => foreign.cleanup());
    const stranger = await foreign.issue('client', 'mallory');
    const refused = await runClient<{ connected: boolean; error: string }>([
      'import json',
      'from distributed import Client',
      'from distributed.security import Security',
      `sec = Security(tls_ca_file=${JSON.stringify(join(out('alice'), 'ca.pem'))}, tls_client_cert=${JSON.stringify(stranger.certPath)}, tls_client_key=${JSON.stringify(stranger.keyPath)}, require_encryption=True)`,
      'try:',
      `    c = Client(${JSON.stringify(address)}, security=sec, timeout=10)`,
      '    print(json.dumps({"connected": True, "error": ""}))',
      'except Exception as e:',
      '    print(json.dumps({"connected": False, "error": type(e).__name__ + ": " + str(e)[:200]}))',
    ].join('\n'), { t, timeoutMs: 120_000 });
    t.equal(refused.connected, false, `a client with a foreign certificate is refused (${refused.error})`);
    t.notMatch(refused.error, /TypeError|ValueError/, 'refused by the handshake, not by a local configuration error');
  });
}
