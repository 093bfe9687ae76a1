import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { createLogger, redact, PIPE_BUF } from '../../src/log/logger.js';

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
  t.ok(r.writes.every((w) => Buffer.byteLength(w) <= PIPE_BUF), 'no write exceeds PIPE_BUF');
  await turn();
  t.equal(r.lines().length, 2000, 'every line arrives');
});

const bytes = (s: string) => Buffer.byteLength(s);

t.test('batch: writes are cut on line boundaries and hold at most PIPE_BUF bytes, multi-byte text counted in bytes', async (t) => {
  const r = recorder();
  const log = createLogger({ stream: r.stream, batch: true });
  const sent: string[] = [];
  for (let i = 0; i < 300; i++) {
    // 1 to 3 bytes per character, line lengths varying, so cuts fall anywhere.
    const pad = ['x', 'é', '€'][i % 3]!.repeat(40 + (i * 37) % 200);
    log.info('line', { i, pad });
    sent.push(pad);
  }
  await turn();
  t.ok(r.writes.every((w) => bytes(w) <= PIPE_BUF), `every write is at most ${PIPE_BUF} bytes (largest ${Math.max(...r.writes.map(bytes))})`);
  t.ok(r.writes.every((w) => w.endsWith('}\n') && w.startsWith('{"time"')), 'every write starts and ends on a line boundary');
  t.same(r.lines().map((l) => l['pad']), sent, 'every line, whole and in order');
  // Still batches, not a write per line: each write was cut only because the next line did not fit.
  const lengths = r.writes.map(bytes);
  const firstLineOf = (w: string) => bytes(w.slice(0, w.indexOf('\n') + 1));
  t.ok(r.writes.slice(1).every((w, k) => lengths[k]! + firstLineOf(w) > PIPE_BUF), `${r.writes.length} writes for 300 lines: each one full`);
});

t.test('batch: a line longer than PIPE_BUF is written alone, its neighbours batched around it', async (t) => {
  const r = recorder();
  const log = createLogger({ stream: r.stream, batch: true });
  log.info('before');
  log.info('huge', { pad: 'y'.repeat(2 * PIPE_BUF) });
  log.info('after');
  log.info('after2');
  await turn();
  t.same(r.writes.map((w) => w.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { event: string }).event)), [['before'], ['huge'], ['after', 'after2']]);
});

t.test('a write still pending (a full pipe) holds the next one back, so Node never joins them into one larger write', async (t) => {
  for (const batch of [true, false]) {
    const chunks: number[] = [];
    let newlines = 0;
    let joined = 0;
    let pending = 0;
    let overlapping = 0;
    // Completes each write a little later, as a full pipe does; Node queues what comes meanwhile and would pass it to writev.
    const stream = new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (++pending > 1) overlapping++;
        chunks.push(chunk.length);
        newlines += chunk.toString().split('\n').length - 1;
        setTimeout(() => { pending--; cb(); }, 1);
      },
      writev(list, cb) {
        joined++;
        chunks.push(list.reduce((n, c) => n + (c.chunk as Buffer).length, 0));
        newlines += list.reduce((n, c) => n + String(c.chunk).split('\n').length - 1, 0);
        setTimeout(cb, 1);
      },
    });
    const log = createLogger({ stream, batch });
    for (let i = 0; i < 200; i++) log.info('line', { i, pad: 'z'.repeat(200) });
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const poll = () => (newlines === 200 ? resolve()
        : Date.now() > deadline ? reject(new Error('timed out waiting for the writes')) : setTimeout(poll, 5));
      poll();
    });
    t.equal(joined, 0, `batch ${batch}: no writev`);
    t.equal(overlapping, 0, `batch ${batch}: one write at a time`);
    t.ok(chunks.every((n) => n <= PIPE_BUF), `batch ${batch}: ${chunks.length} writes, none over PIPE_BUF`);
  }
});

t.test('two processes logging to one pipe: every line arrives whole', async (t) => {
  const lines = 2000;
  const fixture = fileURLToPath(new URL('./fixtures/pipe-writers.ts', import.meta.url));
  const child = spawn(process.execPath, [...process.execArgv, fixture], {
    env: { ...process.env, SGW_PIPE_WRITERS: JSON.stringify({ lines, burst: 100 }) }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL'); });
  const out: Buffer[] = [];
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  // A reader slower than the writers fills the pipe, so that the writers block and compete for it mid-write.
  child.stdout.pause();
  const resume = setTimeout(() => child.stdout.resume(), 300);
  t.teardown(() => clearTimeout(resume));
  child.stdout.on('data', (c: Buffer) => {
    out.push(c);
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), 1);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.equal(code, 0, `the writers exit cleanly ${err}`);
  const text = Buffer.concat(out).toString('utf8');
  const rows = text.split('\n').filter(Boolean);
  let broken = 0;
  const seqs: Record<string, number[]> = { a: [], b: [] };
  for (const row of rows) {
    try {
      const l = JSON.parse(row) as { writer: 'a' | 'b'; seq: number };
      seqs[l.writer]!.push(l.seq);
    } catch {
      broken++;
    }
  }
  t.equal(broken, 0, `no line was split by the other process (${rows.length} lines, ${text.length} characters)`);
  const all = Array.from({ length: lines }, (_, i) => i);
  t.same(seqs['a'], all, 'writer a: every line, in order');
  t.same(seqs['b'], all, 'writer b: every line, in order');
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
