import t from 'tap';
import { SessionCookies, readCookie, withoutCookie, SESSION_COOKIE, sessionKeyFrom } from '../../src/dashboard/session-cookie.js';

const now = new Date('2030-01-01T00:00:00Z');
const value = (setCookie: string) => setCookie.split(';')[0]!.slice(SESSION_COOKIE.length + 1);

t.test('a cookie verifies until its TTL and carries the token id', async (t) => {
  const c = new SessionCookies(3600);
  const { setCookie } = c.issue('tok_1', now);
  t.match(setCookie, /; Path=\/; Max-Age=3600; HttpOnly; Secure; SameSite=Strict$/);
  t.same(c.verify(value(setCookie), now), { tokenId: 'tok_1', exp: now.getTime() / 1000 + 3600 });
  t.equal(c.verify(value(setCookie), new Date(now.getTime() + 3600_000)), undefined, 'expired at the TTL');
});

t.test('the session never outlives its token', async (t) => {
  const c = new SessionCookies(3600);
  const { setCookie, claims } = c.issue('tok_1', now, new Date(now.getTime() + 60_000));
  t.equal(claims.exp, now.getTime() / 1000 + 60);
  t.match(setCookie, 'Max-Age=60;');
});

t.test('tampered, foreign-key and garbage cookies are refused', async (t) => {
  const c = new SessionCookies(3600);
  const v = value(c.issue('tok_1', now).setCookie);
  const [body, sig] = v.split('.');
  const forged = Buffer.from(JSON.stringify({ t: 'tok_admin', e: 9e9 })).toString('base64url');
  t.equal(c.verify(`${forged}.${sig}`, now), undefined, 'body swapped');
  t.equal(c.verify(`${body}.${sig!.slice(0, -2)}AA`, now), undefined, 'signature changed');
  t.equal(new SessionCookies(3600).verify(v, now), undefined, 'another process key');
  for (const g of ['', '.', 'abc', 'a.b.c', 'x'.repeat(600)]) t.equal(c.verify(g, now), undefined, JSON.stringify(g).slice(0, 20));
});

t.test('only the session cookie is removed from a Cookie header', async (t) => {
  t.equal(readCookie(`a=1; ${SESSION_COOKIE}=v; b=2`, SESSION_COOKIE), 'v');
  t.equal(withoutCookie(`a=1; ${SESSION_COOKIE}=v; b=2`, SESSION_COOKIE), 'a=1; b=2');
  t.equal(withoutCookie(`${SESSION_COOKIE}=v`, SESSION_COOKIE), undefined);
  t.equal(withoutCookie(undefined, SESSION_COOKIE), undefined);
});

t.test('the signing key comes from the gateway key and cluster: stable across restarts, different per key or cluster', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const pem = (generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const other = (generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  const before = new SessionCookies(3600, sessionKeyFrom(pem, 'c1'));
  const cookie = value(before.issue('tok_1', now).setCookie);
  t.same(new SessionCookies(3600, sessionKeyFrom(pem, 'c1')).verify(cookie, now), { tokenId: 'tok_1', exp: Math.floor(now.getTime() / 1000) + 3600 }, 'a restarted gateway accepts the cookie');
  t.equal(new SessionCookies(3600, sessionKeyFrom(other, 'c1')).verify(cookie, now), undefined, 'a new gateway key ends sessions');
  t.equal(new SessionCookies(3600, sessionKeyFrom(pem, 'c2')).verify(cookie, now), undefined, 'bound to the cluster');
});

t.test('rekeying to a renewed gateway key ends the sessions signed before it, and only those', async (t) => {
  const { generateKeyPairSync } = await import('node:crypto');
  const pem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const [oldKey, newKey] = [pem(), pem()];
  const c = new SessionCookies(3600, sessionKeyFrom(oldKey, 'c1'));
  const before = value(c.issue('tok_1', now).setCookie);
  c.rekey(sessionKeyFrom(oldKey, 'c1'));
  t.ok(c.verify(before, now), 'a reload that keeps the key keeps the session');
  c.rekey(sessionKeyFrom(newKey, 'c1'));
  t.equal(c.verify(before, now), undefined, 'the session from the old key is over');
  t.ok(c.verify(value(c.issue('tok_1', now).setCookie), now), 'a new login works under the new key');
});
