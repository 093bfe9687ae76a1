import t, { type Test } from 'tap';
import { runCli } from '../helpers/cli.js';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { makeTestCluster, type TestCluster } from '../helpers/pki.js';
import { waitFor } from '../helpers/wait.js';
import { testReceiver, type TestReceiver } from '../telemetry/helpers.js';
import { runCerts } from '../pki/cli-harness.js';
import { main as controlPlaneDev } from '../../src/cli/control-plane-dev.js';
import Database from 'better-sqlite3';
import { allBytes, fakeAws, fetchCred, processJson, secretsOf, startCredGateway, tempDir, type CredGateway, type FakeAws } from './harness.js';

interface Setup { c: TestCluster; rx: TestReceiver; gw: CredGateway; dir: string; spool: string }

/** A gateway streaming to the reference control plane, with its credentials listener on a free port. */
async function setup(t: Test): Promise<Setup> {
  const dir = tempDir(t);
  const c = await makeTestCluster();
  t.teardown(() => c.cleanup());
  const rx = await testReceiver(t, dir);
  await rx.start();
  const spool = join(dir, 'spool');
  const gw = await startCredGateway(t, c, {
    'control-plane': rx.url().href, 'control-plane-ca': rx.caPath, 'control-plane-credential': rx.enroll(c.clusterId),
    'spool-dir': spool, 'telemetry-interval': '200ms', 'scrape-interval': '200ms',
  });
  await waitFor(() => rx.db && gw.lines.some((l) => l.event === 'telemetry_stream_connected'), { timeoutMs: 20_000, what: 'the gateway to connect to the control plane' });
  return { c, rx, gw, dir, spool };
}

/** `control-plane-dev push-credentials`, in-process, the way an operator runs it. */
async function push(s: Setup, creds: FakeAws, wait = 0): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(s.dir, `push-${creds.accessKeyId}.json`);
  writeFileSync(file, processJson(creds), { mode: 0o600 });
  return runCli('control-plane-dev', controlPlaneDev, ['push-credentials', '--db', s.rx.dbPath, '--cluster', s.c.clusterId, '--from', file, '--wait', String(wait)], { cwd: s.dir });
}

t.test('credentials pushed by the reference control plane reach a worker fetch within 2 s, and no secret is logged, spooled or streamed', async (t) => {
  const s = await setup(t);
  const w = await s.c.issue('worker', 'w1');
  const creds = fakeAws(3600_000);
  const queued = Date.now();
  const r = await push(s, creds);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /queued push-credentials/);
  t.notOk(r.stdout.includes(creds.secretAccessKey), 'the CLI does not print the secret');
  const got = await waitFor(async () => {
    const res = await fetchCred(s.gw.credPort, '/v1/credentials/aws', { caPath: s.c.caPath, cert: w });
    return res.status === 200 ? res : undefined;
  }, { timeoutMs: 10_000, intervalMs: 25, what: 'the pushed credential at the worker endpoint' });
  const latency = Date.now() - queued;
  t.ok(latency < 2000, `queued to fetched in ${latency} ms (< 2000)`);
  t.equal(got.json()['SessionToken'], creds.sessionToken, 'a session token longer than 512 characters arrives whole');
  const applied = await s.gw.waitForLog((l) => l.event === 'telemetry_command_applied' && l['command'] === 'push-credentials');
  t.same(applied['args'], { provider: 'aws', expiration: creds.expiration.toISOString(), fields: ['access_key_id', 'secret_access_key', 'session_token'] }, 'the command audit shows the shape only');

  const rows = await waitFor(() => {
    const db = new Database(s.rx.dbPath, { readonly: true });
    try {
      const r = db.prepare("SELECT args, status FROM commands WHERE name = 'push-credentials'").all() as { args: string; status: string }[];
      return r.length === 1 && r[0]!.status === 'applied' ? r : undefined;
    } finally {
      db.close();
    }
  }, { timeoutMs: 10_000, what: 'the push to be marked applied' });
  t.equal(rows[0]!.args, '{}', 'the control plane keeps no values of an applied push');

  // Let telemetry carry at least two batches made after the push, so the batches searched below could have held it.
  const seqNow = s.rx.db.batches(s.c.clusterId).length;
  await waitFor(() => s.rx.db.batches(s.c.clusterId).length >= seqNow + 2, { timeoutMs: 20_000, what: 'two more telemetry batches' });
  const logged = JSON.stringify(s.gw.lines);
  const spooled = allBytes(s.spool);
  const batches = s.rx.db.batches(s.c.clusterId).map((b) => b.body).join('\n');
  t.ok(batches.includes('scheduler_gateway_credential_fetches_total'), 'batches do carry credential metrics');
  for (const secret of secretsOf(creds)) {
    t.notOk(logged.includes(secret), 'no secret in any gateway log line');
    t.notOk(spooled.includes(Buffer.from(secret)), 'no secret in the spool directory');
    t.notOk(batches.includes(secret), 'no secret in any telemetry batch');
  }
});

const BOTO = `
import json, sys
import botocore.session
session = botocore.session.Session()
creds = session.get_credentials()
print(json.dumps({"ready": True, "method": getattr(creds, "method", None)}), flush=True)
for line in sys.stdin:
    try:
        f = creds.get_frozen_credentials()
        print(json.dumps({"ok": True, "access_key": f.access_key, "secret_key": f.secret_key, "token": f.token}), flush=True)
    except Exception as e:
        print(json.dumps({"ok": False, "error": type(e).__name__}), flush=True)
`;

t.test('a botocore session configured with the worker bundle resolves pushed credentials, and the new ones once the old have expired', async (t) => {
  const s = await setup(t);
  const out = join(s.dir, 'bundle');
  const issued = await runCerts(['issue', '--dir', s.c.dir, '--role', 'worker', '--name', 'w-aws', '--out', out, '--credentials-port', String(s.gw.credPort)], { cwd: s.dir, env: { SCHEDULER_GATEWAY_PASSPHRASE: s.c.passphrase } });
  t.equal(issued.code, 0, issued.stderr);
  const configPath = join(out, 'w-aws-aws-config');
  const config = readFileSync(configPath, 'utf8');
  t.match(config, `[profile dask-worker]\ncredential_process = curl -sf --max-time 10 --cert ${join(out, 'w-aws.pem')} --key ${join(out, 'w-aws-key.pem')} --cacert ${join(out, 'ca.pem')} https://localhost:${s.gw.credPort}/v1/credentials/aws\n`);
  t.match(readFileSync(join(out, 'w-aws-README.md'), 'utf8'), `AWS_CONFIG_FILE=${configPath} AWS_PROFILE=dask-worker`);

  const first = fakeAws(12_000);
  t.equal((await push(s, first, 15)).code, 0, 'the first push is applied');

  const home = tempDir(t);
  const py = spawn('/usr/bin/python3', ['-c', BOTO], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home,
      AWS_CONFIG_FILE: configPath, AWS_PROFILE: 'dask-worker',
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'), AWS_EC2_METADATA_DISABLED: 'true',
    },
  });
  t.teardown(() => { py.kill('SIGKILL'); });
  let stderr = '';
  py.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
  const replies = createInterface({ input: py.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<Record<string, unknown>> => {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([replies.next(), new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`botocore did not answer: ${stderr}`)), 30_000); })])
      .finally(() => clearTimeout(timer));
    if (r.done) throw new Error(`botocore exited: ${stderr}`);
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  const resolve = async () => { py.stdin.write('resolve\n'); return next(); };

  t.match(await next(), { ready: true, method: 'custom-process' }, 'botocore uses credential_process');
  t.same(await resolve(), { ok: true, access_key: first.accessKeyId, secret_key: first.secretAccessKey, token: first.sessionToken });

  const second = fakeAws(3600_000);
  t.equal((await push(s, second, 15)).code, 0, 'the second push is applied');
  await waitFor(() => Date.now() > first.expiration.getTime() + 100, { timeoutMs: 15_000, what: 'the first credentials to expire' });
  t.same(await resolve(), { ok: true, access_key: second.accessKeyId, secret_key: second.secretAccessKey, token: second.sessionToken }, 'after expiry botocore refreshes to the new credentials');
  const served = s.gw.audits('credentials_fetch').filter((l) => l['result'] === 'allowed');
  t.ok(served.length >= 2, 'each SDK fetch is audited');
  t.match(served[0], { identity: `spiffe://${s.c.clusterId}/worker/w-aws`, provider: 'aws' });
  py.stdin.end();
});

t.test('control-plane-dev refuses an invalid document before queueing it, without printing the secret', async (t) => {
  const s = await setup(t);
  const stale = { ...fakeAws(3600_000), expiration: new Date(Date.now() - 1000) };
  const r = await push(s, stale);
  t.equal(r.code, 2);
  t.match(r.stderr, /expiration .* has already passed/);
  t.notOk(r.stderr.includes(stale.secretAccessKey) || r.stdout.includes(stale.secretAccessKey), 'no secret printed');
  t.same(s.rx.db.pendingCommands(s.c.clusterId), [], 'nothing queued');
});
