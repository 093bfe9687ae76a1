import t from 'tap';
import { TokenStore } from '../../src/tokens/store.js';
import { TokenCache } from '../../src/tokens/cache.js';

t.test('verify accepts an active token and refuses wrong, malformed, revoked and expired ones', async (t) => {
  const dir = t.testdir({});
  let now = new Date('2030-01-01T00:00:00Z');
  const clock = () => now;
  const cli = TokenStore.open(dir, { now: clock });
  const daemon = TokenStore.open(dir, { now: clock });
  t.teardown(() => { cli.close(); daemon.close(); });
  const invalidated: string[] = [];
  const cache = new TokenCache(daemon, { now: clock, onInvalidated: (id, why) => invalidated.push(`${id}:${why}`) });
  const a = cli.create({ name: 'a' });
  const b = cli.create({ name: 'b', expiresDays: 1 });
  t.match(cache.verify(a.token), { ok: true, token: { id: a.record.id } }, 'a token created by another process is seen at once');
  t.match(cache.verify('dgw_nope'), { ok: false, reason: 'malformed' });
  t.match(cache.verify(b.token), { ok: true });

  cli.revoke('a');
  now = new Date(now.getTime() + 1000);
  t.match(cache.check(a.record.id), { ok: false, reason: 'revoked' });
  t.match(cache.verify(a.token), { ok: false, reason: 'unknown' });
  t.ok(invalidated.includes(`${a.record.id}:revoked`), 'revocation in another process is reported');

  now = new Date(now.getTime() + 86_400_000);
  t.match(cache.verify(b.token), { ok: false, reason: 'expired' });
  cache.refresh();
  t.ok(invalidated.includes(`${b.record.id}:expired`), 'expiry is reported');
  t.equal(invalidated.filter((x) => x.endsWith('expired')).length, 1, 'once');
});

t.test('last use is written back to the database', async (t) => {
  const dir = t.testdir({});
  const store = TokenStore.open(dir);
  t.teardown(() => store.close());
  const { token, record } = store.create({ name: 'x' });
  const cache = new TokenCache(store, { now: () => new Date() });
  t.match(cache.verify(token), { ok: true });
  cache.stop();
  t.ok(store.list().find((r) => r.id === record.id)?.lastUsedAt, 'last_used set');
});
