import t from 'tap';
import { checkTarget, loggablePath, safeNext, withoutToken } from '../../src/dashboard/request-target.js';

t.test('origin-form paths pass; dot segments, encoded slashes, NUL and backslashes do not', async (t) => {
  const ok = ['/', '/status', '/info/main/workers.html?x=1', '/statics/js/a.b.js', '/a/..b/c', '/proxy/8787/127.0.0.1/status'];
  for (const p of ok) t.match(checkTarget(p), { ok: true }, p);
  const traversal = ['/../x', '/a/../b', '/a/./b', '/%2e%2e/x', '/%2E./x', '/.%2e/x', '/a%2fb', '/a%5cb', '/a%00', '/a\\b', '/a b'];
  for (const p of traversal) t.match(checkTarget(p), { ok: false, reason: 'path_traversal' }, p);
  const bad = ['', 'status', '*', 'http://x/y', '//evil/x', '/%zz', '/' + 'a'.repeat(9000)];
  for (const p of bad) t.match(checkTarget(p), { ok: false, reason: 'bad_target' }, p);
});

t.test('the token parameter is removed and the rest of the query kept', async (t) => {
  t.equal(withoutToken('/status?token=dgw_x'), '/status');
  t.equal(withoutToken('/a?b=1&token=x&c=2'), '/a?b=1&c=2');
  t.equal(withoutToken('/a'), '/a');
});

t.test('logged paths never include a query string', async (t) => {
  t.equal(loggablePath('/status?token=dgw_secret'), '/status?[redacted]');
  t.equal(loggablePath('/status'), '/status');
  t.equal(loggablePath(undefined), '');
});

t.test('a post-login destination stays on this site', async (t) => {
  t.equal(safeNext('/status?token=x&y=1'), '/status?y=1');
  for (const bad of ['//evil.example', '/\\evil.example', 'https://evil.example', '', null, '/../x']) t.equal(safeNext(bad), '/', String(bad));
});
