/**
 * A stalled log reader (a full stdout pipe) must not grow the gateway's
 * heap: the logger holds at most its backlog cap, drops what does not fit,
 * counts it, and marks the gap with one log_lines_dropped line once the
 * stream moves again.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { createLogger, MAX_BACKLOG_BYTES, PIPE_BUF, type Logger } from '../../src/log/logger.js';
import { startGateway } from '../../src/gateway/compose.js';
import { resolveRunConfig } from '../../src/config/load.js';
import { lineSplitter } from '../helpers/json-lines.js';
import { waitFor } from '../helpers/wait.js';
import { makeTestCluster } from '../helpers/pki.js';
import { startEcho } from '../hardening/harness.js';
import { metricValue } from '../hardening/child.js';

type Line = Record<string, unknown>;
const turn = () => new Promise((r) => setImmediate(r));

/** A stream whose write callback never fires until release(): a pipe nobody reads. */
function stalled() {
  const lines: Line[] = [];
  const raw: string[] = [];
  let held: (() => void) | undefined;
  let flowing = false;
  const feed = lineSplitter((r, parsed) => { raw.push(r); lines.push(parsed!); });
  const stream = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      feed(chunk);
      if (flowing) setImmediate(cb);
      else held = cb;
    },
  });
  return {
    stream, lines, raw,
    release() { flowing = true; held?.(); held = undefined; },
    stall() { flowing = false; },
  };
}

/** Lines of one length whatever their number, so a dropped line's size is known. */
function flood(log: Logger, from: number, count: number): void {
  for (let i = from; i < from + count; i++) log.info('flood', { i: String(i).padStart(7, '0'), pad: 'x'.repeat(150) });
}

const bytesOf = (rows: string[]) => rows.reduce((n, r) => n + Buffer.byteLength(r) + 1, 0);
const seqs = (lines: Line[]) => lines.filter((l) => l['event'] === 'flood').map((l) => Number(l['i']));
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);

for (const batch of [false, true]) {
  t.test(`batch ${batch}: a stalled stream holds at most the cap; the rest is dropped, counted, and reported once where the gap is`, async (t) => {
    const cap = 64 * 1024;
    const s = stalled();
    const log = createLogger({ stream: s.stream, batch, maxBacklogBytes: cap, now: () => new Date(0) });
    const child = log.child({ conn: 'c1' });
    const sent = 20_000;
    // About 3.5 MB, 50 times the cap, over many event-loop turns as a real flood comes.
    for (let i = 0; i < sent; i += 500) {
      flood(i % 1000 === 0 ? log : child, i, 500);
      await turn();
    }
    t.ok(s.stream.writableLength <= PIPE_BUF, `the stream itself holds the one write in flight (${s.stream.writableLength} bytes)`);
    const dropped = log.droppedLines();
    t.equal(child.droppedLines(), dropped, 'a child reads the count of the sink it shares');
    t.ok(dropped > sent * 0.9, `most lines were dropped (${dropped} of ${sent})`);

    s.release();
    const report = await waitFor(() => s.lines.find((l) => l['event'] === 'log_lines_dropped'), { timeoutMs: 10_000, what: 'the log_lines_dropped line' });
    const at = s.lines.indexOf(report);
    const before = s.raw.slice(0, at);
    const held = bytesOf(before);
    t.ok(held <= cap + PIPE_BUF && held >= cap - PIPE_BUF, `what was held before the gap is the cap, give or take one write: ${held} bytes (cap ${cap})`);
    t.same(seqs(s.lines.slice(0, at)), range(0, sent - dropped), 'the lines before the gap arrive whole and in order');
    // Every line is the first one's size, plus the binding for the child's.
    const lineBytes = (i: number) => Buffer.byteLength(s.raw[0]!) + 1 + (i % 1000 < 500 ? 0 : Buffer.byteLength(',"conn":"c1"'));
    const droppedBytes = range(sent - dropped, sent).reduce((n, i) => n + lineBytes(i), 0);
    t.same(report, { time: new Date(0).toISOString(), level: 'error', event: 'log_lines_dropped', lines: dropped, bytes: droppedBytes },
      'the report says how many lines and bytes the gap lost; it carries no child\'s bindings');

    flood(child, sent, 10);
    await waitFor(() => seqs(s.lines).length === sent - dropped + 10 || undefined, { timeoutMs: 10_000, what: 'the lines after the gap' });
    t.same(seqs(s.lines.slice(at + 1)), range(sent, sent + 10), 'lines flow again after the report');
    t.equal(s.lines.filter((l) => l['event'] === 'log_lines_dropped').length, 1, 'one report per gap');
    t.equal(log.droppedLines(), dropped, 'nothing more dropped once the stream moves');
  });
}

t.test('every stall gets its own report, counting only its own gap; the reports add up to the total', async (t) => {
  const cap = 16 * 1024;
  const s = stalled();
  const log = createLogger({ stream: s.stream, batch: true, maxBacklogBytes: cap });
  const reports = () => s.lines.filter((l) => l['event'] === 'log_lines_dropped');
  let next = 0;
  for (let round = 1; round <= 3; round++) {
    s.stall();
    log.info('poke');
    await turn();
    for (let k = 0; k < 10; k++) {
      flood(log, next, 100 * round);
      next += 100 * round;
      await turn();
    }
    s.release();
    await waitFor(() => reports().length === round || undefined, { timeoutMs: 10_000, what: `report ${round}` });
  }
  const counted = reports().map((r) => r['lines'] as number);
  t.ok(counted.every((n) => n > 0), `three gaps: ${counted.join(', ')} lines`);
  t.equal(counted.reduce((a, b) => a + b, 0), log.droppedLines(), 'the reports add up to the count');
  t.equal(seqs(s.lines).length + log.droppedLines(), next, 'every line was either written or counted as dropped');
});

t.test('lines relayed by a data-plane process (raw) are dropped whole and counted by line', async (t) => {
  const cap = 8 * 1024;
  const s = stalled();
  const log = createLogger({ stream: s.stream, batch: true, maxBacklogBytes: cap });
  const relayed = (k: number) => range(0, 10).map((j) => JSON.stringify({ time: 'x', level: 'audit', event: 'flood', i: k * 10 + j, dataplane: 1 }) + '\n').join('');
  for (let k = 0; k < 200; k++) {
    log.raw(relayed(k));
    if (k % 10 === 9) await turn();
  }
  const dropped = log.droppedLines();
  t.equal(dropped % 10, 0, `whole relayed batches dropped: ${dropped} lines`);
  s.release();
  const report = await waitFor(() => s.lines.find((l) => l['event'] === 'log_lines_dropped'), { timeoutMs: 10_000, what: 'the report' });
  t.equal(report['lines'], dropped);
  t.equal(seqs(s.lines).length + dropped, 2000, 'every relayed line was either written or counted');
  t.ok(s.lines.every(Boolean), 'no line was cut');
});

t.test(`the default cap holds ${MAX_BACKLOG_BYTES} bytes, not more`, async (t) => {
  const s = stalled();
  const log = createLogger({ stream: s.stream, batch: true });
  const sent = 3 * Math.ceil(MAX_BACKLOG_BYTES / 200);
  for (let i = 0; i < sent; i += 2000) {
    flood(log, i, 2000);
    await turn();
  }
  t.ok(log.droppedLines() > sent / 2, `${log.droppedLines()} of ${sent} lines dropped`);
  s.release();
  const report = await waitFor(() => s.lines.find((l) => l['event'] === 'log_lines_dropped'), { timeoutMs: 30_000, what: 'the report' });
  const held = bytesOf(s.raw.slice(0, s.lines.indexOf(report)));
  t.ok(held <= MAX_BACKLOG_BYTES + PIPE_BUF && held >= MAX_BACKLOG_BYTES - PIPE_BUF, `held ${held} bytes`);
});

t.test('a real pipe whose reader is paused: the logging process holds the cap and no more, and reports the gap when read again', async (t) => {
  const fixture = fileURLToPath(new URL('./fixtures/stalled-writer.ts', import.meta.url));
  const sent = 60_000;
  const child = spawn(process.execPath, [...process.execArgv, fixture], {
    env: { ...process.env, SGW_STALLED_WRITER: JSON.stringify({ lines: sent }) }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  t.teardown(() => { clearTimeout(killer); child.kill('SIGKILL'); });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  // Nothing reads stdout until the child has written everything.
  const summary = await waitFor(() => (err.includes('\n') ? JSON.parse(err.slice(0, err.indexOf('\n'))) as { dropped: number } : undefined),
    { timeoutMs: 60_000, what: 'the writer\'s summary' });
  t.ok(summary.dropped > sent / 2, `the writer dropped ${summary.dropped} of ${sent} lines while nobody read`);

  const lines: Line[] = [];
  const raw: string[] = [];
  child.stdout.on('data', lineSplitter((r, parsed) => { raw.push(r); lines.push(parsed!); }));
  const report = await waitFor(() => lines.find((l) => l['event'] === 'log_lines_dropped'), { timeoutMs: 30_000, what: 'the report' });
  child.stdin.end('go\n');
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  t.equal(code, 0, `the writer exits cleanly ${err}`);
  const at = lines.indexOf(report);
  // What reached us before the gap was held by the logger, the kernel pipe (64 KiB) and our socket's read buffer.
  const held = bytesOf(raw.slice(0, at));
  t.ok(held <= MAX_BACKLOG_BYTES + 1024 * 1024, `${held} bytes before the gap`);
  t.same(seqs(lines.slice(0, at)), range(0, sent - summary.dropped), 'the lines before the gap, whole and in order');
  t.equal(report['lines'], summary.dropped, 'the report counts what the writer dropped');
  t.match(lines.slice(at + 1).map((l) => l['event']), ['after_gap'], 'a line logged after the gap arrives');
});

t.test('the gateway exports the count on /metrics as log_lines_dropped_total, with one process and with several', async (t) => {
  const cluster = await makeTestCluster();
  t.teardown(() => cluster.cleanup());
  const echo = await startEcho(t);
  for (const processes of ['1', '2']) {
    const s = stalled();
    const log = createLogger({ stream: s.stream, batch: true, maxBacklogBytes: 16 * 1024 });
    const config = resolveRunConfig({ flags: { dir: cluster.dir, listen: '127.0.0.1:0', 'dashboard-listen': '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', scheduler: `127.0.0.1:${echo.port}`, processes }, env: {} });
    const gw = await startGateway(config, { log, env: { SCHEDULER_GATEWAY_PASSPHRASE: cluster.passphrase } });
    t.teardown(() => gw.close());
    const port = gw.addresses.metrics!.port;
    t.equal(await metricValue(port, 'scheduler_gateway_log_lines_dropped_total'), log.droppedLines(), `--processes ${processes}: the count before the flood`);
    flood(log, 0, 2000);
    await turn();
    t.ok(log.droppedLines() > 1000, `--processes ${processes}: ${log.droppedLines()} lines dropped`);
    t.equal(await metricValue(port, 'scheduler_gateway_log_lines_dropped_total'), log.droppedLines(), `--processes ${processes}: /metrics says so`);
    s.release();
    await gw.close();
  }
});
