/**
 * The typed configuration: one slice per component from one loader, with
 * precedence, unknown keys, one base for relative paths, and the `certs` /
 * `tokens` commands reading the same keys and environment as `run`.
 */
import t from 'tap';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { presentFlags, readConfigFile, resolveRunConfig, runSources } from '../../src/config/load.js';
import { runKeys, type RunConfig } from '../../src/config/keys/index.js';
import { checkCrossFlagRules, settingsFrom } from '../../src/gateway/settings.js';
import { openTrust } from '../../src/runtime/material.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { main as tokensMain } from '../../src/cli/tokens.js';
import { main as policyMain } from '../../src/cli/policy.js';
import { runCerts } from '../pki/cli-harness.js';
import { runCli } from '../helpers/cli.js';
import { commonKeys } from '../../src/config/keys/common.js';
import { PASSPHRASE_ENV, PASSPHRASE_FILE_ENV } from '../../src/pki/passphrase.js';

const PASS = 'correct horse battery staple';

t.test('every slice is typed from its declarations: defaults are values, keys without one may be undefined', async (t) => {
  const c: RunConfig = resolveRunConfig({ flags: {}, env: {}, cwd: '/srv' });
  const caps: number = c.terminator.maxConnections;
  const interval: number = c.telemetry.interval;
  const level: 'debug' | 'info' | 'warn' | 'error' = c.common.logLevel;
  // @ts-expect-error a key without a default is optional in its slice
  const cluster: string = c.common.cluster;
  t.equal(caps, 4096);
  t.equal(interval, 15_000);
  t.equal(level, 'info');
  t.equal(cluster, undefined);
  t.equal(c.credentials.refreshBefore, 300_000);
  t.equal(c.policy.unknownOps, 'deny');
  t.same(Object.keys(c).sort(), ['common', 'credentials', 'dashboard', 'policy', 'supervisor', 'telemetry', 'terminator']);
});

t.test('a flag beats the environment, which beats the file, which beats the default; per key', async (t) => {
  const file = { path: '/etc/gw/gw.yaml', values: { 'terminator.max-connections': 30, 'policy.max-frames': 31, 'telemetry.interval': '32s', 'dashboard.session-ttl': 3300 } };
  const env = { SCHEDULER_GATEWAY_MAX_CONNECTIONS: '20', SCHEDULER_GATEWAY_MAX_FRAMES: '21', SCHEDULER_GATEWAY_TELEMETRY_INTERVAL: '22s' };
  const c = resolveRunConfig({ flags: { 'max-connections': '10' }, env, file });
  t.equal(c.terminator.maxConnections, 10, 'flag');
  t.equal(c.policy.maxFrames, 21, 'environment over file');
  t.equal(c.telemetry.interval, 22_000, 'environment over file');
  t.equal(c.dashboard.sessionTtl, 3300, 'file over default');
  t.equal(c.credentials.maxConnections, 256, 'default');
  t.throws(() => resolveRunConfig({ flags: {}, env: { SCHEDULER_GATEWAY_MAX_FRAMES: '' }, file: { path: '/x.yaml', values: { 'policy.max-frames': 0 } } }),
    { code: 'GW_CONFIG_INVALID', message: /policy\.max-frames: expected an integer/ }, 'an empty variable is unset: the file value is the one judged');
});

t.test('an unknown key in a config file is refused, naming the key and the file', async (t) => {
  const dir = t.testdir({ 'gw.yaml': 'dashboard:\n  listen: 127.0.0.1:9\n  sesion-ttl: 60\n' });
  const sources = runSources({ config: 'gw.yaml' }, {}, dir);
  t.throws(() => resolveRunConfig(sources), { code: 'GW_CONFIG_INVALID', message: new RegExp(`dashboard\\.sesion-ttl: unknown key in config file ${join(dir, 'gw.yaml')}`) });
  t.same(sources.file?.values, { 'dashboard.listen': '127.0.0.1:9', 'dashboard.sesion-ttl': 60 });
});

t.test('relative paths: flags, environment and defaults from the working directory; a config file value from its directory', async (t) => {
  const cwd = t.testdir({ etc: { 'gw.yaml': 'policy:\n  file: policy.yaml\ntelemetry:\n  allowlist: ../shared/allow.yaml\n  spool-dir: /var/spool/gw\ncredentials:\n  file: creds.json\n' } });
  const env = { SCHEDULER_GATEWAY_CONFIG: 'etc/gw.yaml', SCHEDULER_GATEWAY_PASSPHRASE_FILE: 'secret/pass', SCHEDULER_GATEWAY_CREDENTIALS_FILE: 'env-creds.json' };
  const c = resolveRunConfig(runSources({ 'dashboard-tls-cert': 'tls/dash.pem', 'dashboard-tls-key': 'tls/dash-key.pem', 'dask-python': '.venv/bin/python' }, env, cwd));
  t.equal(c.common.config, join(cwd, 'etc/gw.yaml'), 'SCHEDULER_GATEWAY_CONFIG from the working directory');
  t.equal(c.common.dir, join(cwd, 'certs'), 'the default state directory');
  t.equal(c.common.passphraseFile, join(cwd, 'secret/pass'), 'environment');
  t.equal(c.dashboard.tlsCert, join(cwd, 'tls/dash.pem'), 'flag');
  t.equal(c.policy.file, join(cwd, 'etc/policy.yaml'), 'config file: beside the file');
  t.equal(c.telemetry.allowlist, join(cwd, 'shared/allow.yaml'), 'config file: ../ from the file');
  t.equal(c.telemetry.spoolDir, '/var/spool/gw', 'an absolute path is kept');
  t.equal(c.credentials.file, join(cwd, 'env-creds.json'), 'the environment beats the file, and its base goes with it');
  t.equal(c.supervisor.python, join(cwd, '.venv/bin/python'), 'an interpreter path with a slash');
  t.equal(resolveRunConfig({ flags: { 'dask-python': 'python3' }, env: {}, cwd }).supervisor.python, 'python3', 'a bare interpreter name is looked up on PATH');

  const pem = resolveRunConfig({ flags: { 'tls-ca': 'ca.pem', 'tls-cert': 'gw.pem', 'tls-key': 'gw-key.pem', 'tls-crl': 'crl.pem', 'state-dir': 'state', cluster: 'c' }, env: {}, cwd: '/etc/gw' });
  t.same(settingsFrom(pem).pki, { mode: 'pem', caPath: '/etc/gw/ca.pem', certPath: '/etc/gw/gw.pem', keyPath: '/etc/gw/gw-key.pem', crlPath: '/etc/gw/crl.pem', clusterId: 'c' });
  t.equal(settingsFrom(pem).stateDir, '/etc/gw/state');
});

t.test('cross-flag rules see a key set by any source, a config file included', async (t) => {
  const dir = t.testdir({ 'gw.yaml': 'tls:\n  cert: gw.pem\n' });
  const sources = runSources({}, {}, dir);
  t.equal(sources.file, undefined, 'no --config: nothing read');
  t.notOk(presentFlags(runKeys, sources).has('tls-cert'));
  const named = runSources({ config: join(dir, 'gw.yaml') }, {}, '/');
  t.same(named.file, readConfigFile(join(dir, 'gw.yaml')));
  t.throws(() => checkCrossFlagRules(presentFlags(runKeys, named)), { code: 'GW_USAGE', message: /--tls-cert requires --tls-key and --tls-ca/ });
});

t.test('certs, tokens and run read the same SCHEDULER_GATEWAY_DIR and SCHEDULER_GATEWAY_PASSPHRASE_FILE, relative to the working directory', async (t) => {
  const cwd = t.testdir({});
  mkdirSync(join(cwd, 'secret'), { mode: 0o700 });
  writeFileSync(join(cwd, 'secret', 'pass'), PASS + '\n', { mode: 0o600 });
  chmodSync(join(cwd, 'secret', 'pass'), 0o600);
  // A wrong SCHEDULER_GATEWAY_PASSPHRASE proves the file is the source used: it comes first, for every command.
  const env = { SCHEDULER_GATEWAY_DIR: 'state', SCHEDULER_GATEWAY_PASSPHRASE_FILE: 'secret/pass', SCHEDULER_GATEWAY_PASSPHRASE: 'not the passphrase at all' };

  const init = await runCerts(['init', '--cluster', 'env-agree'], { cwd, env });
  t.equal(init.code, 0, init.stderr);
  t.ok(existsSync(join(cwd, 'state', 'state.json')), 'certs init made the state directory named by SCHEDULER_GATEWAY_DIR');
  const issue = await runCerts(['issue', '--role', 'client', '--name', 'alice', '--out', join(cwd, 'out')], { cwd, env });
  t.equal(issue.code, 0, issue.stderr);
  t.ok(existsSync(join(cwd, 'out', 'alice.pem')), 'certs issue decrypted the CA key with the passphrase file');
  const revoke = await runCerts(['revoke', '--name', 'alice'], { cwd, env });
  t.equal(revoke.code, 0, revoke.stderr);

  const tokens = await runCli('tokens', tokensMain, ['create', '--name', 'ops'], { cwd, env });
  t.equal(tokens.code, 0, tokens.stderr);
  t.ok(existsSync(join(cwd, 'state', 'tokens.db')), 'tokens create used the same state directory');

  const config = resolveRunConfig(runSources({}, env, cwd));
  const { pki } = settingsFrom(config);
  t.same(pki, { mode: 'dir', dir: join(cwd, 'state'), passphraseFile: join(cwd, 'secret', 'pass') }, 'run resolves both the same way');
  const trust = await openTrust(pki, { env, log: silentLogger, metrics: createMetrics({ defaultMetrics: false }), pollMs: 200 });
  t.teardown(() => trust.close());
  t.equal(trust.current().clusterId, 'env-agree', 'run decrypts the gateway key with the same passphrase file');
  t.equal(trust.current().revokedSerials.size, 1, 'and sees the revocation certs made');

  const wrong = await runCerts(['issue', '--role', 'client', '--name', 'bob', '--out', join(cwd, 'out')], { cwd, env: { ...env, SCHEDULER_GATEWAY_PASSPHRASE_FILE: '' } });
  t.not(wrong.code, 0, 'an empty SCHEDULER_GATEWAY_PASSPHRASE_FILE is unset: the wrong SCHEDULER_GATEWAY_PASSPHRASE is used and refused');
});

t.test('policy explain reads --unknown-ops and --worker-client-ops as run does: flag, then environment', async (t) => {
  const cwd = t.testdir({});
  const explain = (argv: string[], env: NodeJS.ProcessEnv) => runCli('policy', policyMain, ['explain', '--role', 'client', '--op', 'no-such-op', ...argv], { cwd, env });
  t.equal((await explain([], {})).code, 1, 'an unknown op is denied by default');
  const allowed = await explain([], { SCHEDULER_GATEWAY_UNKNOWN_OPS: 'allow' });
  t.equal(allowed.code, 0, allowed.stderr);
  t.match(allowed.stdout, /^allow: client may send no-such-op/);
  t.equal((await explain(['--unknown-ops', 'deny'], { SCHEDULER_GATEWAY_UNKNOWN_OPS: 'allow' })).code, 1, 'the flag beats the environment');
  const bad = await explain([], { SCHEDULER_GATEWAY_UNKNOWN_OPS: 'maybe' });
  t.equal(bad.code, 2);
  t.match(bad.stderr, /SCHEDULER_GATEWAY_UNKNOWN_OPS: expected one of deny, allow, audit/);
});

t.test('the PKI reads the same passphrase variables that run declares (pki/ may not import config/, so both are checked here)', async (t) => {
  t.equal(commonKeys.passphraseFile.env, PASSPHRASE_FILE_ENV);
  t.match(commonKeys.passphraseFile.describe, PASSPHRASE_ENV);
});
