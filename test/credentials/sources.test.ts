import t, { type Test } from 'tap';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { CredentialHolder } from '../../src/credentials/holder.js';
import { startFileSource } from '../../src/credentials/file-source.js';
import { startCommandSource } from '../../src/credentials/command-source.js';
import type { SourceDeps } from '../../src/credentials/source.js';
import { waitFor } from '../helpers/wait.js';
import { fakeAws, processJson, secretsOf, tempDir, writeCredentialsFile } from './harness.js';

function deps(t: Test) {
  let text = '';
  const log = createLogger({ stream: new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }), level: 'debug' });
  const metrics = createMetrics({ defaultMetrics: false });
  const holder = new CredentialHolder({ log, metrics, now: () => new Date() });
  t.teardown(() => holder.clear());
  const d: SourceDeps = { holder, log, metrics, now: () => new Date() };
  const lines = () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  const reloads = async (result: string) => (await metrics.reloadsTotal.get()).values.find((v) => v.labels.what === 'credentials' && v.labels.result === result)?.value ?? 0;
  return { d, holder, log: () => text, lines, reloads };
}

const key = (h: CredentialHolder) => { const l = h.lookup('aws'); return l.state === 'ok' ? l.set.values['access_key_id'] : undefined; };

t.test('the credentials file is read at start and again when it is replaced', async (t) => {
  const { d, holder, reloads } = deps(t);
  const file = join(tempDir(t), 'aws.json');
  const a = fakeAws(3600_000);
  writeCredentialsFile(file, a);
  const src = startFileSource(d, { file, pollMs: 100, debounceMs: 20 });
  t.teardown(() => src.close());
  t.equal(key(holder), a.accessKeyId);
  const b = fakeAws(3600_000);
  writeCredentialsFile(file, b);
  await waitFor(() => key(holder) === b.accessKeyId, { timeoutMs: 10_000, what: 'the replaced file to be read' });
  t.ok((await reloads('success')) >= 2);
});

t.test('a broken rewrite keeps the previous credentials, logs the rule without the value, and counts a failed reload', async (t) => {
  const { d, holder, log, lines, reloads } = deps(t);
  const file = join(tempDir(t), 'aws.json');
  const a = fakeAws(3600_000);
  writeCredentialsFile(file, a);
  const src = startFileSource(d, { file, pollMs: 100, debounceMs: 20 });
  t.teardown(() => src.close());
  const bad = fakeAws(3600_000);
  writeFileSync(file, processJson(bad).replace('"Version":1', '"Version":1,"Extra":"' + bad.secretAccessKey + '"'), { mode: 0o600 });
  const failed = await waitFor(() => lines().find((l) => l.event === 'credentials_source_failed'), { timeoutMs: 10_000, what: 'the failure to be logged' });
  t.match(failed, { level: 'error', source: 'file', code: 'GW_CREDENTIALS_INVALID', problem: /unexpected key "Extra"/ });
  t.equal(key(holder), a.accessKeyId, 'the previous set is still served');
  t.equal(await reloads('failure'), 1);
  for (const s of [...secretsOf(bad), ...secretsOf(a)]) t.notOk(log().includes(s), 'no secret logged');
});

t.test('a credentials file other users can read is refused', async (t) => {
  const { d, holder, lines } = deps(t);
  const file = join(tempDir(t), 'aws.json');
  writeCredentialsFile(file, fakeAws(3600_000), 0o644);
  chmodSync(file, 0o644);
  const src = startFileSource(d, { file, pollMs: 100 });
  t.teardown(() => src.close());
  t.equal(holder.lookup('aws').state, 'none');
  t.match(lines().find((l) => l.event === 'credentials_source_failed'), { code: 'GW_CREDENTIALS_FILE', problem: /readable by other users; run chmod 600/ });
});

t.test('the credentials command runs again before the credentials expire, so they never lapse', async (t) => {
  const { d, holder, lines } = deps(t);
  const dir = tempDir(t);
  const first = fakeAws(3000);
  writeFileSync(join(dir, 'next.json'), processJson(first));
  const command = `echo run >> '${dir}/runs'; cat '${dir}/next.json'`;
  const src = startCommandSource(d, { command, timeoutMs: 10_000, refreshBeforeMs: 1000, random: () => 0.5 });
  t.teardown(() => src.close());
  await waitFor(() => key(holder) === first.accessKeyId, { timeoutMs: 10_000, what: 'the first run' });
  const scheduled = lines().find((l) => l.event === 'credentials_refresh_scheduled')!;
  t.ok(Number(scheduled['in_ms']) < first.expiration.getTime() - Date.now(), 'the refresh is scheduled before the expiration');
  const second = fakeAws(3600_000);
  writeFileSync(join(dir, 'next.json'), processJson(second));
  await waitFor(() => key(holder) === second.accessKeyId, { timeoutMs: 10_000, what: 'the refresh' });
  t.ok(Date.now() < first.expiration.getTime(), 'refreshed while the first set was still valid');
  t.notOk(lines().some((l) => l.event === 'credentials_expired'), 'no gap: nothing expired');
  t.equal(readFileSync(join(dir, 'runs'), 'utf8'), 'run\nrun\n');
});

t.test('a failing command is retried, and neither its stderr nor bad output reaches the log', async (t) => {
  const { d, holder, log, lines, reloads } = deps(t);
  const dir = tempDir(t);
  const leak = fakeAws(3600_000);
  // Fails loudly with the secret on stderr, then prints broken JSON holding it, then succeeds.
  const script = join(dir, 'helper.sh');
  writeFileSync(script, `#!/bin/sh
n=$(cat '${dir}/n' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '${dir}/n'
if [ $n = 1 ]; then echo "error: token ${leak.sessionToken} secret ${leak.secretAccessKey}" >&2; exit 3; fi
if [ $n = 2 ]; then echo '{"Version":1,"SecretAccessKey":"${leak.secretAccessKey}"'; exit 0; fi
cat '${dir}/good.json'
`, { mode: 0o700 });
  const good = fakeAws(3600_000);
  writeFileSync(join(dir, 'good.json'), processJson(good));
  const src = startCommandSource(d, { command: script, timeoutMs: 10_000, refreshBeforeMs: 1000, random: () => 0 });
  t.teardown(() => src.close());
  await waitFor(() => key(holder) === good.accessKeyId, { timeoutMs: 20_000, what: 'the third run to succeed' });
  const failures = lines().filter((l) => l.event === 'credentials_source_failed');
  t.match(failures[0], { code: 'GW_CREDENTIALS_COMMAND', problem: /exited with status 3 \(stderr: \d+ bytes, not logged\)/ });
  t.match(failures[1], { code: 'GW_CREDENTIALS_INVALID', problem: /not valid JSON/ });
  t.equal(await reloads('failure'), 2);
  for (const s of secretsOf(leak)) t.notOk(log().includes(s), 'no secret from stderr or stdout in the log');
});

t.test('a command that hangs is killed with its whole process group at the timeout', async (t) => {
  const { d, lines } = deps(t);
  const dir = tempDir(t);
  const src = startCommandSource(d, { command: `echo $$ > '${dir}/pid'; sleep 30 & echo $! > '${dir}/child'; wait`, timeoutMs: 500, refreshBeforeMs: 1000 });
  t.teardown(() => src.close());
  const failed = await waitFor(() => lines().find((l) => l.event === 'credentials_source_failed'), { timeoutMs: 10_000, what: 'the timeout' });
  t.match(failed, { code: 'GW_CREDENTIALS_COMMAND', problem: /no result within 500 ms/ });
  src.close(); // also kills a retry that may have started since
  const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
  for (const f of ['pid', 'child']) {
    const pid = Number(readFileSync(join(dir, f), 'utf8'));
    await waitFor(() => !alive(pid), { timeoutMs: 5000, what: `${f} ${pid} to be gone` });
    t.pass(`${f} process is gone`);
  }
});
