/**
 * The Client API probe (docs/policy.md, "What a client certificate can do"):
 * a real client with a client certificate, through the gateway with the
 * default policy, against a real scheduler and two nanny workers, on both
 * Dask versions. Every API either works or is refused with the gateway's
 * words, and the client goes on working after each refusal.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTestCluster } from '../helpers/pki.js';
import { startTestGateway } from '../helpers/gateway.js';
import { eachDaskVersion, runClient, startScheduler, startWorker, type DaskVersion } from '../helpers/dask.js';

const PROBE = fileURLToPath(new URL('./client_api_probe.py', import.meta.url));
const files = (i: { caPath: string; certPath: string; keyPath: string }) => ({ ca: i.caPath, cert: i.certPath, key: i.keyPath });

interface Outcome {
  ok: boolean;
  value?: unknown;
  error?: string;
}

eachDaskVersion(t, 'every Client API works or is refused with the gateway\'s words', async (t, version: DaskVersion) => {
  const started = Date.now();
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const sched = await cluster.issue('scheduler', 'scheduler');
  const scheduler = await startScheduler({ tls: files(sched), t, version });
  const gw = await startTestGateway({ cluster, scheduler: `127.0.0.1:${scheduler.port}`, t });
  for (const name of ['w1', 'w2']) {
    const w = await cluster.issue('worker', name);
    await startWorker({ scheduler: gw.address, tls: files(w), name, t, version, nanny: true });
  }
  const alice = await cluster.issue('client', 'alice');
  const scratch = mkdtempSync(join(tmpdir(), 'gw-probe-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const wrapper = `import runpy, sys; sys.argv = ${JSON.stringify([PROBE, gw.address, alice.caPath, alice.certPath, alice.keyPath, scratch])}; runpy.run_path(${JSON.stringify(PROBE)}, run_name="__main__")`;
  const out = await runClient<Record<string, Outcome>>(wrapper, { version, timeoutMs: 900_000 });
  for (const [k, v] of Object.entries(out)) t.comment(`${k}: ${JSON.stringify(v).slice(0, 400)}`);
  for (const l of gw.lines.filter((l) => l.event === 'request_refused' || (l.event === 'connection_closed' && l.reason === 'policy_denied'))) t.comment(JSON.stringify({ event: l.event, op: l.op, code: l.code, detail: l.detail }));
  t.comment(`Dask ${version.id}: probe took ${Math.round((Date.now() - started) / 1000)} s`);
});
