import t from 'tap';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { createLogger, redact } from '../../src/log/logger.js';

function recorder(opts: { throws?: boolean } = {}) {
  const writes: string[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { writes.push(String(chunk)); cb(); } });
  if (opts.throws) stream.write = () => { throw Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }); };
  return { stream, writes, lines: () => writes.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}
const turn = () => new Promise((r) => setImmediate(r));

t.test('one JSON object per line, below-level events dropped, audit always written', async (t) => {
  const r = recorder();
  const log = createLogger({ stream: r.stream, level: 'warn', now: () => new Date(0) });
  log.info('ignored');
  log.warn('w', { n: 1 });
  log.audit('a', { who: 'x' });
  t.same(r.lines(), [
    { time: '1970-01-01T00:00:00.000Z', level: 'warn', event: 'w', n: 1 },
    { time: '1970-01-01T00:00:00.000Z', level: 'audit', event: 'a', who: 'x' },
  ]);
});

t.test('a token\'s id and name are kept: the audit trail says which token was used, never the token', async (t) => {
  t.same(redact({ token_id: 'tok_1', token_name: 'alice-laptop', tokenName: 'a', token: 'dgw_secret', token_value: 'dgw_x' }),
    { token_id: 'tok_1', token_name: 'alice-laptop', tokenName: 'a', token: '[redacted]', token_value: '[redacted]' });
});

t.test('secret-looking fields are redacted at any depth; *_id fields are kept', async (t) => {
  t.same(redact({ token: 'dgw_x', nested: { passphrase: 'p', token_id: 'abc' }, list: [{ Cookie: 'c' }] }),
    { token: '[redacted]', nested: { passphrase: '[redacted]', token_id: 'abc' }, list: [{ Cookie: '[redacted]' }] });
  const r = recorder();
  createLogger({ stream: r.stream }).child({ authorization: 'Bearer x' }).info('e', { privateKey: 'k' });
  const line = r.writes.join('');
  t.notMatch(line, /Bearer|"k"/, 'neither the binding nor the field leaks');
});

t.test('batch: the lines of one event-loop turn leave in one write, in order, children included', async (t) => {
  const r = recorder();
  const log = createLogger({ stream: r.stream, batch: true });
  const child = log.child({ conn: 'c1' });
  log.info('one');
  child.audit('two');
  log.info('three');
  t.equal(r.writes.length, 0, 'nothing written inside the turn');
  await turn();
  t.equal(r.writes.length, 1, 'one write for the turn');
  t.same(r.lines().map((l) => [l.event, l.conn]), [['one', undefined], ['two', 'c1'], ['three', undefined]]);
  log.info('four');
  await turn();
  t.equal(r.writes.length, 2, 'the next turn gets its own write');
});

t.test('batch: a flood is written as it goes, never buffered without bound', async (t) => {
  const r = recorder();
  const log = createLogger({ stream: r.stream, batch: true });
  for (let i = 0; i < 2000; i++) log.info('flood', { i, pad: 'x'.repeat(100) });
  t.ok(r.writes.length >= 3, `written during the turn (${r.writes.length} writes)`);
  t.ok(r.writes.every((w) => w.length < 64 * 1024 + 400), 'each write stays near the cap');
  await turn();
  t.equal(r.lines().length, 2000, 'every line arrives');
});

t.test('a stream that throws (EPIPE) degrades logging instead of crashing', async (t) => {
  const log = createLogger({ stream: recorder({ throws: true }).stream });
  t.doesNotThrow(() => log.error('e'));
  const batched = createLogger({ stream: recorder({ throws: true }).stream, batch: true });
  batched.error('e');
  await turn();
  t.pass('the deferred write swallowed it too');
});

t.test('batch: pending lines are flushed when the process exits, by exit() or by a crash', async (t) => {
  const loader = new URL('../../src/log/logger.ts', import.meta.url).href;
  for (const [how, code] of [['process.exit(3)', 3], ['throw new Error("boom")', 1]] as const) {
    const script = `import { createLogger } from ${JSON.stringify(loader)}; const log = createLogger({ batch: true }); log.audit('last_words', { how: ${JSON.stringify(how)} }); ${how};`;
    const p = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    t.equal(p.status, code, `${how}: exit code`);
    t.match(p.stdout, /"event":"last_words"/, `${how}: the pending audit line was written`);
  }
});
