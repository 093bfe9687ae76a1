import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/runtime/metrics.js';
import { CredentialHolder } from '../../src/credentials/holder.js';
import { pushCredentialsCommand } from '../../src/credentials/push-command.js';
import { credentialSet } from '../../src/credentials/credential.js';
import { waitFor } from '../helpers/wait.js';

function holder(t: Test) {
  let text = '';
  const log = createLogger({ stream: new Writable({ write(c: Buffer, _e, cb) { text += c.toString(); cb(); } }) });
  const metrics = createMetrics({ defaultMetrics: false });
  const h = new CredentialHolder({ log, metrics, now: () => new Date() });
  t.teardown(() => h.clear());
  return { h, metrics, log: () => text };
}

const set = (token: string, inMs: number, provider = 'gcp') => credentialSet(provider, { token }, new Date(Date.now() + inMs).toISOString(), 'test', new Date());

t.test('a newer set replaces the old one even when it expires sooner', async (t) => {
  const { h } = holder(t);
  h.put(set('first-token-value', 3600_000));
  h.put(set('second-token-value', 60_000));
  const l = h.lookup('gcp');
  t.equal(l.state === 'ok' && l.set.values['token'], 'second-token-value');
  t.same(h.all().map((s) => s.provider), ['gcp']);
});

t.test('a set is dropped at its expiration and reported as expired, never returned', async (t) => {
  const { h, metrics } = holder(t);
  const s = set('short-lived-token', 300);
  h.put(s);
  t.equal(h.lookup('gcp').state, 'ok');
  t.equal((await metrics.credentialsExpirationSeconds.get()).values[0]?.value, s.expiration.getTime() / 1000, 'the expiration is exported');
  await waitFor(() => h.lookup('gcp').state === 'expired', { timeoutMs: 5000, what: 'expiry' });
  t.same(h.lookup('gcp'), { state: 'expired', expiredAt: s.expiration });
  t.same(h.all(), []);
  t.equal(h.lookup('aws').state, 'none', 'a provider never held is "none"');
});

t.test('push-credentials installs a valid set, refuses a hostile one with a clear error, and audits only the shape', async (t) => {
  const { h, log } = holder(t);
  const cmd = pushCredentialsCommand(h, () => new Date());
  const args = { expiration: new Date(Date.now() + 600_000).toISOString(), access_key_id: 'ASIAIOSFODNN7EXAMPLE', secret_access_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', session_token: 'FwoGZXIvYXdzEJr//////////wEaDA==' };
  await cmd.apply(args, 'control-plane:abc');
  t.equal(h.lookup('aws').state, 'ok');
  t.same(cmd.auditArgs!(args), { provider: 'aws', expiration: args.expiration, fields: ['access_key_id', 'secret_access_key', 'session_token'] });
  await t.rejects(cmd.apply({ ...args, secret_access_key: 'abc$def!ghi%jkl^mno' }, 'control-plane:def'), { code: 'GW_CREDENTIALS_INVALID', message: /secret_access_key must be 16 to 128 base64 characters/ });
  await t.rejects(cmd.apply({ ...args, provider: 'aws', expiration: '2020-01-01T00:00:00Z' }, 'control-plane:ghi'), { message: /has already passed/ });
  const l = h.lookup('aws');
  t.equal(l.state === 'ok' && l.set.source, 'control-plane:abc', 'the refused pushes left the held set alone');
  t.notOk(log().includes(args.secret_access_key), 'the holder logs no value');
});
