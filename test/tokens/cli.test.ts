import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { main } from '../../src/cli/tokens.js';
import { TokenStore } from '../../src/tokens/store.js';

const BIN = fileURLToPath(new URL('../../src/cli/bin.ts', import.meta.url));

async function run(argv: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const sink = (f: (s: string) => void) => new Writable({ write(c, _e, cb) { f(String(c)); cb(); } });
  try {
    const code = await main(argv, { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)), env: {}, cwd });
    return { code, out, err };
  } catch (e) {
    return { code: 2, out, err: `${(e as Error).message} [${(e as { code?: string }).code}]` };
  }
}

/** The real binary in a child process, as a user (or several at once) would run it. */
function spawnCli(argv: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', BIN, ...argv], {
      cwd,
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}

t.test('create prints the token once; list never shows it; revoke by id and by name', async (t) => {
  const dir = t.testdir({});
  const created = await run(['create', '--name', 'alice', '--scope', 'admin', '--expires-days', '30', '--dir', dir], dir);
  t.equal(created.code, 0, created.err);
  const token = /\b(dgw_[0-9A-Za-z]{49})\b/.exec(created.out)?.[1];
  t.ok(token, 'the token is printed');
  t.match(created.out, `https://GATEWAY-HOST:8787/status?token=${token}`, 'with the login link template');
  const id = /Created token (tok_[0-9a-f]+)/.exec(created.out)![1]!;

  for (const argv of [['list'], ['list', '--json'], ['list', '--all']]) {
    const listed = await run([...argv, '--dir', dir], dir);
    t.equal(listed.code, 0);
    t.notMatch(listed.out, token!, `${argv.join(' ')} never prints the token`);
    t.notMatch(listed.out, /dgw_/);
    t.match(listed.out, 'alice');
  }
  const json = JSON.parse((await run(['list', '--json', '--dir', dir], dir)).out);
  t.match(json, [{ id, name: 'alice', scope: 'admin', created: String, expires: String, last_used: null }]);

  t.equal((await run(['create', '--name', 'bob', '--dir', dir], dir)).code, 0);
  const byId = await run(['revoke', id, '--dir', dir], dir);
  t.equal(byId.code, 0, byId.err);
  t.match(byId.out, `Revoked token ${id} 'alice'`);
  const byName = await run(['revoke', 'bob', '--dir', dir], dir);
  t.equal(byName.code, 0, byName.err);
  t.match((await run(['list', '--dir', dir], dir)).out, 'no tokens');
  const again = await run(['revoke', 'bob', '--dir', dir], dir);
  t.equal(again.code, 2);
  t.match(again.err, 'GW_TOKENS_NOT_FOUND');
});

t.test('usage errors name the problem', async (t) => {
  const dir = t.testdir({});
  t.match((await run(['list', '--dir', dir], dir)).out, 'no tokens', 'list before any token exists');
  t.equal((await run(['list', '--json', '--dir', dir], dir)).out, '[]\n');
  t.match((await run(['create', '--dir', dir], dir)).err, 'needs --name');
  t.match((await run(['create', '--name', 'x', '--scope', 'root', '--dir', dir], dir)).err, 'GW_TOKENS_BAD_SCOPE');
  t.match((await run(['create', '--name', 'x', '--expires-days', 'soon', '--dir', dir], dir)).err, 'GW_TOKENS_BAD_EXPIRY');
  t.match((await run(['frobnicate', '--dir', dir], dir)).err, 'unknown tokens subcommand');
});

t.test('parallel create processes never lose or corrupt an entry', async (t) => {
  const dir = t.testdir({});
  const N = 8;
  const results = await Promise.all(Array.from({ length: N }, (_, i) => spawnCli(['tokens', 'create', '--name', `user${i}`, '--json', '--dir', dir], dir)));
  for (const r of results) t.equal(r.code, 0, r.err);
  const printed = results.map((r) => JSON.parse(r.out) as { id: string; token: string });
  const store = TokenStore.open(dir, { readonly: true });
  t.teardown(() => store.close());
  const rows = store.list();
  t.equal(rows.length, N, 'every create is stored');
  t.same(new Set(rows.map((r) => r.name)), new Set(printed.map((_, i) => `user${i}`)));
  for (const p of printed) t.equal(store.findByToken(p.token)?.id, p.id, 'each printed token resolves to its own entry');
  const dupes = await Promise.all(Array.from({ length: 4 }, () => spawnCli(['tokens', 'create', '--name', 'same', '--dir', dir], dir)));
  t.equal(dupes.filter((r) => r.code === 0).length, 1, 'exactly one of four racing creates with one name wins');
  t.ok(dupes.filter((r) => r.code !== 0).every((r) => r.err.includes('GW_TOKENS_NAME_TAKEN')));
});
