import t from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenStore, mapStoreError } from '../../src/tokens/store.js';

function dir(t: import("tap").Test): string {
  return t.testdir({});
}

t.test('create stores only a hash and the file is private', async (t) => {
  const d = dir(t);
  const store = TokenStore.open(d);
  t.teardown(() => store.close());
  const { token, record } = store.create({ name: 'alice', scope: 'admin', expiresDays: 7 });
  t.equal(record.scope, 'admin');
  t.ok(record.expiresAt && record.expiresAt.getTime() - record.createdAt.getTime() === 7 * 86_400_000);
  t.equal(statSync(join(d, 'tokens.db')).mode & 0o777, 0o600);
  const rows = store.rows();
  t.equal(rows.length, 1);
  t.notOk(JSON.stringify(store.list()).includes(token), 'list output never holds the token');
  t.same(store.findByToken(token)?.id, record.id);
  t.equal(store.findByToken(token.slice(0, -1) + (token.endsWith('a') ? 'b' : 'a')), undefined);
});

t.test('names are unique among active tokens and reusable after revocation', async (t) => {
  const store = TokenStore.open(dir(t));
  t.teardown(() => store.close());
  const first = store.create({ name: 'bob' }).record;
  t.throws(() => store.create({ name: 'bob' }), { code: 'GW_TOKENS_NAME_TAKEN' });
  t.equal(store.revoke('bob').id, first.id, 'revoke by name');
  const second = store.create({ name: 'bob' }).record;
  t.equal(store.revoke(second.id).name, 'bob', 'revoke by id');
  t.throws(() => store.revoke('bob'), { code: 'GW_TOKENS_NOT_FOUND' });
  t.equal(store.list().length, 0);
  t.equal(store.list({ includeRevoked: true }).length, 2);
});

t.test('bad names, scopes and expiries are refused with stable codes', async (t) => {
  const store = TokenStore.open(dir(t));
  t.teardown(() => store.close());
  t.throws(() => store.create({ name: '' }), { code: 'GW_TOKENS_BAD_NAME' });
  t.throws(() => store.create({ name: 'a b' }), { code: 'GW_TOKENS_BAD_NAME' });
  t.throws(() => store.create({ name: 'x'.repeat(65) }), { code: 'GW_TOKENS_BAD_NAME' });
  t.throws(() => store.create({ name: 'ok', scope: 'root' as 'view' }), { code: 'GW_TOKENS_BAD_SCOPE' });
  t.throws(() => store.create({ name: 'ok', expiresDays: 0 }), { code: 'GW_TOKENS_BAD_EXPIRY' });
  t.throws(() => store.create({ name: 'ok', expiresDays: 1.5 }), { code: 'GW_TOKENS_BAD_EXPIRY' });
});

t.test('a read-only store refuses writes with a clear error instead of crashing', async (t) => {
  const d = dir(t);
  TokenStore.open(d).close();
  const ro = TokenStore.open(d, { readonly: true });
  t.teardown(() => ro.close());
  t.throws(() => ro.create({ name: 'carol' }), { code: 'GW_TOKENS_STORE_READONLY', message: /read-only/ });
  t.same(ro.list(), []);
});

t.test('a file that is not a token database is reported as corrupt', async (t) => {
  const d = dir(t);
  writeFileSync(join(d, 'tokens.db'), 'this is not sqlite'.repeat(100));
  t.throws(() => TokenStore.open(d), { code: 'GW_TOKENS_STORE_CORRUPT' });
});

t.test('a missing database opened read-only is a clear error', async (t) => {
  t.throws(() => TokenStore.open(dir(t), { readonly: true }), { code: 'GW_TOKENS_STORE_UNAVAILABLE' });
});

t.test('disk-full and read-only file-system errors map to their own codes', async (t) => {
  t.equal(mapStoreError('/x', { code: 'SQLITE_FULL' }).code, 'GW_TOKENS_STORE_FULL');
  t.equal(mapStoreError('/x', { code: 'ENOSPC' }).code, 'GW_TOKENS_STORE_FULL');
  t.equal(mapStoreError('/x', { code: 'EROFS' }).code, 'GW_TOKENS_STORE_READONLY');
  t.equal(mapStoreError('/x', { code: 'SQLITE_BUSY' }).code, 'GW_TOKENS_STORE_BUSY');
});

t.test('a database with a newer schema version is refused', async (t) => {
  const d = dir(t);
  TokenStore.open(d).close();
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(join(d, 'tokens.db'));
  db.pragma('user_version = 99');
  db.close();
  t.throws(() => TokenStore.open(d), { code: 'GW_TOKENS_SCHEMA_NEWER' });
});
