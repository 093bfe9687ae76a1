import t from 'tap';
import { presentFlags, resolveRunConfig } from '../../src/config/load.js';
import { runKeys } from '../../src/config/keys/index.js';
import { checkCrossFlagRules, settingsFrom } from '../../src/gateway/settings.js';
import type { GatewayError } from '../../src/errors/base.js';

const rules = (flags: Record<string, string>, env: NodeJS.ProcessEnv = {}, file?: Record<string, unknown>) =>
  checkCrossFlagRules(presentFlags(runKeys, { flags, env, ...(file ? { file: { path: '/etc/gw/config.yaml', values: file } } : {}) }));

t.test('cross-flag rules name the flags involved', async (t) => {
  t.throws(() => rules({ 'tls-cert': 'c.pem' }), { code: 'GW_USAGE', message: /--tls-cert requires --tls-key and --tls-ca/ });
  t.throws(() => rules({ 'tls-cert': 'c.pem', 'tls-key': 'k.pem' }), { message: /requires --tls-ca/ });
  t.throws(() => rules({ 'tls-crl': 'crl.pem' }), { message: /--tls-crl requires --tls-cert and --tls-key and --tls-ca/ });
  t.throws(() => rules({ dir: 'certs', 'tls-ca': 'ca.pem' }), { message: /--dir excludes --tls-ca/ });
  t.throws(() => rules({ 'tls-cert': 'c', 'tls-key': 'k', 'tls-ca': 'a' }), { message: /--tls-cert requires --cluster/ });
  t.throws(() => rules({ 'tls-cert': 'c', 'tls-key': 'k', 'tls-ca': 'a', cluster: 'x', 'passphrase-file': 'p' }), { message: /--passphrase-file applies to --dir only/ });
  t.doesNotThrow(() => rules({ 'tls-cert': 'c', 'tls-key': 'k', 'tls-ca': 'a', cluster: 'x' }));
  t.doesNotThrow(() => rules({ dir: 'certs', 'passphrase-file': 'p' }));
  t.doesNotThrow(() => rules({}), 'no flags at all is the embedded default');
});

t.test('the rules see keys from the environment and the config file too', async (t) => {
  t.throws(() => rules({ dir: 'certs' }, { SCHEDULER_GATEWAY_TLS_CERT: 'c.pem' }), { message: /--dir excludes --tls-cert/ });
  t.throws(() => rules({}, {}, { 'tls.key': 'k.pem' }), { message: /--tls-key requires --tls-cert and --tls-ca/ });
});

t.test('a bad value stops the start with an error naming where it came from', async (t) => {
  const bad = (flags: Record<string, string>, env: NodeJS.ProcessEnv = {}, file?: Record<string, unknown>) => {
    try {
      resolveRunConfig({ flags, env, ...(file ? { file: { path: '/etc/gw/config.yaml', values: file } } : {}) });
    } catch (e) {
      return (e as GatewayError).message;
    }
    return 'accepted';
  };
  t.match(bad({ listen: 'nowhere' }), /--listen: expected HOST:PORT/);
  t.match(bad({ scheduler: 'relative/socket' }), /--scheduler: expected HOST:PORT or an absolute socket path/);
  t.match(bad({ 'max-connections': '0' }), /--max-connections: expected an integer from 1/);
  t.match(bad({ 'handshake-timeout-ms': 'soon' }), /--handshake-timeout-ms/);
  t.match(bad({}, { SCHEDULER_GATEWAY_FAILED_HANDSHAKE_RATE: '-1' }), /SCHEDULER_GATEWAY_FAILED_HANDSHAKE_RATE/);
  t.match(bad({}, {}, { 'terminator.upstream-connect-timeout-ms': 'x' }), /terminator\.upstream-connect-timeout-ms/);
  t.match(bad({}, {}, { 'terminator.no-such-key': 1 }), /terminator\.no-such-key: unknown key/);
  t.match(bad({ 'log-level': 'chatty' }), /--log-level: expected one of debug, info, warn, error/);
});

t.test('defaults: 0.0.0.0:8786, a 10-minute idle timeout, the embedded scheduler when none is given', async (t) => {
  const s = settingsFrom(resolveRunConfig({ flags: {}, env: {}, cwd: '/srv' }));
  t.same(s.listen, { host: '0.0.0.0', port: 8786 });
  t.equal(s.scheduler, undefined);
  t.equal(s.idleTimeoutMs, 600_000, 'longer than any Dask heartbeat interval');
  t.same(s.pki, { mode: 'dir', dir: '/srv/certs' });
});

t.test('a Unix socket path is a valid scheduler address, and PEM mode resolves paths against the working directory', async (t) => {
  const c = resolveRunConfig({ flags: { scheduler: '/run/dask.sock', 'tls-ca': 'ca.pem', 'tls-cert': 'gw.pem', 'tls-key': 'gw-key.pem', cluster: 'prod' }, env: {}, cwd: '/etc/gw' });
  const s = settingsFrom(c);
  t.same(s.scheduler, { path: '/run/dask.sock' });
  t.same(s.pki, { mode: 'pem', caPath: '/etc/gw/ca.pem', certPath: '/etc/gw/gw.pem', keyPath: '/etc/gw/gw-key.pem', clusterId: 'prod' });
});
