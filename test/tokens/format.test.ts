import t from 'tap';
import { generateToken, isWellFormedToken, tokenHash, hashesEqual, TOKEN_PATTERN } from '../../src/tokens/format.js';

t.test('a generated token has the dgw_ prefix, 53 characters and a valid checksum', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const tok = generateToken();
    t.match(tok, TOKEN_PATTERN);
    t.equal(tok.length, 53);
    t.ok(isWellFormedToken(tok));
    seen.add(tok);
  }
  t.equal(seen.size, 200, 'no two tokens are equal');
});

t.test('a token with one character changed fails the checksum', async (t) => {
  const tok = generateToken();
  let refused = 0;
  for (let i = 4; i < tok.length; i++) {
    const c = tok[i] === 'a' ? 'b' : 'a';
    if (!isWellFormedToken(tok.slice(0, i) + c + tok.slice(i + 1))) refused++;
  }
  t.equal(refused, tok.length - 4, 'every single-character change is caught');
});

t.test('truncated, wrong-prefix and non-base62 strings are not tokens', async (t) => {
  const tok = generateToken();
  for (const bad of [tok.slice(0, -1), 'ghp_' + tok.slice(4), tok.replace(/.$/, '-'), '', 'dgw_', tok + 'x']) {
    t.notOk(isWellFormedToken(bad), JSON.stringify(bad));
  }
});

t.test('the stored hash is SHA-256 and compares in constant time', async (t) => {
  const tok = generateToken();
  t.equal(tokenHash(tok).length, 32);
  t.ok(hashesEqual(tokenHash(tok), tokenHash(tok)));
  t.notOk(hashesEqual(tokenHash(tok), tokenHash(generateToken())));
  t.notOk(hashesEqual(tokenHash(tok), Buffer.alloc(3)));
});
