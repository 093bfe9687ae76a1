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

/** API -> the op the default policy refuses it at (docs/policy.md has the reasons). */
function refusedApis(v: DaskVersion): Record<string, string> {
  return {
    run_on_scheduler: 'run_function',
    performance_report: 'run_function', // it calls run_on_scheduler for the scheduler's monitor count
    register_scheduler_plugin: 'register_scheduler_plugin',
    shutdown: 'terminate',
    // Since 2023.x upload_file registers a scheduler plugin that imports the file on the scheduler.
    ...(v.splitFraming ? { upload_file: 'register_scheduler_plugin' } : {}),
  };
}

/** What the APIs that work must return (the probe's values). */
const VALUES: Record<string, unknown> = {
  wait_for_workers: 2, submit: 42, map_gather: 5050, scatter_numpy: [1999999000000, 1999999],
  collections: { array: 1000000, bag: 55, dataframe: 4950 }, persist: 499500, fire_and_forget: true,
  publish_dataset: [[1, 2, 3], ['mydata']], get_versions: 2, run: 2, run_nanny: 2,
  register_worker_plugin: ['set'], register_nanny_plugin: ['nanny'], upload_file: 42, get_task_stream: true,
  profile: true, log_event_get_events: 1, variables_queues_locks_events_semaphores: [7, 3, true], actors: 2, metadata: 5,
  who_has_has_what_nthreads: [2, 2], logs: [true, true], call_stack: true, cancel_retry: [true, true], story: true,
  rebalance: true, replicate: true, dump_cluster_state: true, benchmark_hardware: ['disk', 'memory', 'network'],
  progress: 2, still_works: 100, restart: 2, retire_workers: [true, 3],
};

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
  const refused = refusedApis(version);
  for (const [api, expected] of Object.entries(VALUES)) {
    if (api in refused) continue;
    t.same(out[api], { ok: true, value: expected }, `${api} works`);
  }
  for (const [api, op] of Object.entries(refused)) {
    t.equal(out[api]?.ok, false, `${api} is refused`);
    t.match(out[api]?.error, new RegExp(`^Exception: scheduler-gateway refused "${op}" for client alice: ${op} is not allowed for client \\(GW_POLICY_DENIED, rule default-deny\\)$`), `${api}: Python raises with the gateway, the op and the rule`);
  }
  t.match(out.dashboard_link, { ok: true, value: /^https?:\/\// }, 'dashboard_link (the bundle configures it: test/dashboard/dashboard-link.test.ts)');
  const refusals = gw.lines.filter((l) => l.event === 'request_refused');
  t.ok(refusals.some((l) => l.op === 'feed'), 'the progress bar\'s feed was refused (and the bar ended instead of hanging)');
  for (const op of new Set(Object.values(refused))) t.ok(refusals.some((l) => l.op === op && l.role === 'client'), `audited: request_refused ${op}`);
  t.same(gw.lines.filter((l) => l.event === 'connection_closed' && l.reason === 'policy_denied'), [], 'no connection was closed: every refusal was answered');
  t.comment(`Dask ${version.id}: probe took ${Math.round((Date.now() - started) / 1000)} s`);
});
