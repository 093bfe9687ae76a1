/**
 * Structured JSON logger: one event per line on a writable stream (stdout by
 * default). Field values under secret-looking keys are replaced before
 * serialization so a token, cookie, passphrase or key never reaches a log.
 *
 * With `batch`, lines written in one event-loop turn leave in one write at
 * the end of the turn: stdout to a pipe or file is a synchronous syscall
 * per write, and two per connection were ~5 % of a handshake's CPU
 * (bench/FINDINGS.md). Pending lines are flushed on process exit; only a
 * SIGKILL can lose them, at most one turn's worth. Several processes may
 * share one stdout pipe: each write is cut on a line boundary, kept within
 * PIPE_BUF, which the kernel writes whole, and issued only once the previous
 * one is done, so no process's line is split by another's.
 *
 * While a write is pending (whoever reads stdout has stalled), the text that
 * follows waits in memory, at most MAX_BACKLOG_BYTES of it: a peer that makes
 * the gateway log fast must not grow its heap without limit. Past that, new
 * lines are dropped and counted (`droppedLines()`, the metric
 * `log_lines_dropped_total`) until the backlog has drained to half; then the
 * logger writes one `log_lines_dropped` line, where the gap is, saying how
 * many lines and bytes it lost. Audit lines are dropped like the others:
 * waiting for the reader would take a synchronous write that stalls every
 * connection, which is the attacker's win either way.
 */
import type { Writable } from 'node:stream';

export type Level = 'debug' | 'info' | 'warn' | 'error' | 'audit';
const LEVEL_RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, audit: 50 };

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(event: string, fields?: Fields): void;
  info(event: string, fields?: Fields): void;
  warn(event: string, fields?: Fields): void;
  error(event: string, fields?: Fields): void;
  /** Security-relevant decisions: always written, whatever the level. */
  audit(event: string, fields?: Fields): void;
  child(bindings: Fields): Logger;
  /** Writes lines another logger already formatted and redacted (a data-plane process's), as they are. */
  raw(lines: string): void;
  /** Lines dropped so far because the stream did not take them (shared by a logger and its children). */
  droppedLines(): number;
}

const SECRET_KEY = /token|secret|passphrase|password|authorization|cookie|private.?key|credential|session.?id/i;
// Identifiers and names of secrets are what an audit trail needs to say which one was used.
const NOT_SECRET = /(?:_id|Id|_name|Name)$/;
const REDACTED = '[redacted]';

export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value instanceof Error) return { name: value.name, message: value.message, code: (value as { code?: unknown }).code };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_KEY.test(k) && !NOT_SECRET.test(k) ? REDACTED : redact(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  stream?: Stream;
  level?: Exclude<Level, 'audit'>;
  bindings?: Fields;
  now?: () => Date;
  /** Coalesce the lines of one event-loop turn into one write. */
  batch?: boolean;
  /** The most text held while the stream is busy (default MAX_BACKLOG_BYTES; tests lower it). */
  maxBacklogBytes?: number;
}

/** `bytes`, when the caller knows it, spares measuring the text again. */
type Sink = (text: string, bytes?: number) => void;
/** A bare `{ write }` is enough (tests, embedders, a data-plane process's pipe to its primary). */
export type Stream = Writable | NodeJS.WritableStream | { write(text: string, done?: () => void): unknown };

/** False when the write threw: its callback will never come. */
function writeTo(stream: Stream, text: string, done?: () => void): boolean {
  try {
    stream.write(text, done);
    return true;
  } catch {
    // A closed stdout (EPIPE) must degrade logging, not crash the gateway.
    return false;
  }
}

const guarded = new WeakSet<object>();

/**
 * A write to a closed pipe (EPIPE) or a full disk (ENOSPC) fails
 * asynchronously, as an 'error' event on the stream, which no try/catch
 * sees and which kills the process when nobody listens. The gateway keeps
 * serving without its log: the lines are lost, the connections are not.
 */
export function survivesWriteErrors(stream: Stream): void {
  // A bare { write } sink (tests, embedders) cannot emit 'error'.
  if (guarded.has(stream) || !('on' in stream) || typeof stream.on !== 'function') return;
  guarded.add(stream);
  stream.on('error', () => {});
}

/**
 * POSIX writes at most PIPE_BUF bytes (4096 on Linux) to a pipe in one
 * piece; a longer write may be interleaved with another writer's. A batch
 * never exceeds it. One line longer than that is written alone and may
 * interleave on a shared pipe; lines are a few hundred bytes in practice.
 */
export const PIPE_BUF = 4096;
const pendingFlushes = new Set<() => void>();
let exitHooked = false;

/**
 * Sized for a log reader's hiccup (journald rotating, a shipper
 * reconnecting): some 25,000 lines of a few hundred bytes, seconds of a
 * flood that log/coalesce.ts has already thinned, and small next to the
 * 256 MiB memory budget for peers. It is the most a stalled reader costs
 * the gateway; data-plane processes hold nothing, their primary writes for
 * them (dataplane/log-relay.ts).
 */
export const MAX_BACKLOG_BYTES = 8 * 1024 * 1024;

interface Gap {
  lines: number;
  bytes: number;
}

interface Outlet {
  readonly send: Sink;
  /** Lines dropped since the outlet was made. */
  dropped(): number;
}

function linesIn(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * Writes batches one at a time. While a write is pending (a full pipe),
 * Node queues the next ones and hands them to the kernel together, in one
 * writev larger than PIPE_BUF that a full pipe takes in pieces; so the next
 * batch waits for the pending one's callback. A write the stream took at
 * once (writableLength back to 0) is not waited for, and a bare { write }
 * sink (tests, embedders), which has no writableLength, never is.
 *
 * What waits is bounded by `maxBytes`. Once a text does not fit, every text
 * is dropped until the queue is down to half, so the log has one gap per
 * stall, not lines missing here and there, and `gapEnded` writes where it is.
 */
function oneWriteAtATime(stream: Stream, maxBytes: number, gapEnded: (gap: Gap) => void): Outlet {
  const waiting: Array<{ text: string; bytes: number }> = [];
  let waitingBytes = 0;
  let inFlight: object | undefined;
  let gap: Gap | undefined;
  let dropped = 0;
  const issue = (text: string) => {
    const write = {};
    inFlight = write;
    const issued = writeTo(stream, text, () => {
      if (inFlight !== write) return;
      inFlight = undefined;
      next();
    });
    const pending = issued && (stream as Writable).writableLength > 0;
    if (!pending && inFlight === write) inFlight = undefined;
  };
  const next = () => {
    while (!inFlight && waiting.length > 0) {
      const w = waiting.shift()!;
      waitingBytes -= w.bytes;
      issue(w.text);
    }
    if (gap && waitingBytes <= maxBytes / 2) {
      const ended = gap;
      gap = undefined;
      gapEnded(ended);
    }
  };
  const send: Sink = (text, bytes) => {
    // The common case, an idle stream, costs no measuring.
    if (!inFlight && waiting.length === 0) return issue(text);
    const size = bytes ?? Buffer.byteLength(text);
    if (gap || waitingBytes + size > maxBytes) {
      const lines = linesIn(text);
      gap ??= { lines: 0, bytes: 0 };
      gap.lines += lines;
      gap.bytes += size;
      dropped += lines;
      return;
    }
    waiting.push({ text, bytes: size });
    waitingBytes += size;
    next();
  };
  return { send, dropped: () => dropped };
}

function batchedSink(send: Sink): Sink {
  let buffered = '';
  let bufferedBytes = 0;
  let scheduled = false;
  const cut = () => {
    if (!buffered) return;
    const text = buffered;
    const bytes = bufferedBytes;
    buffered = '';
    bufferedBytes = 0;
    send(text, bytes);
  };
  const flush = () => {
    scheduled = false;
    pendingFlushes.delete(flush);
    cut();
  };
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => { for (const f of [...pendingFlushes]) f(); });
  }
  return (line) => {
    const bytes = Buffer.byteLength(line);
    if (bufferedBytes + bytes > PIPE_BUF) cut();
    buffered += line;
    bufferedBytes += bytes;
    if (scheduled) return;
    scheduled = true;
    pendingFlushes.add(flush);
    setImmediate(flush);
  };
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? process.stdout;
  survivesWriteErrors(stream);
  const outlet = oneWriteAtATime(stream, opts.maxBacklogBytes ?? MAX_BACKLOG_BYTES, (gap) => {
    direct.error('log_lines_dropped', { lines: gap.lines, bytes: gap.bytes });
  });
  // Not batched: the report goes where the gap is, before lines of this turn still in a batch.
  const direct = loggerOn(outlet.send, outlet.dropped, opts);
  return opts.batch ? loggerOn(batchedSink(outlet.send), outlet.dropped, opts) : direct;
}

/** Children share their parent's sink, so a batch keeps the lines in order. */
function loggerOn(sink: Sink, dropped: () => number, opts: LoggerOptions): Logger {
  const minRank = LEVEL_RANK[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());
  // The bindings are constant for a logger: serialize them once, not per line.
  const bound = opts.bindings ? JSON.stringify(redact(opts.bindings)).slice(1, -1) : '';

  function write(level: Level, event: string, fields?: Fields): void {
    if (LEVEL_RANK[level] < minRank) return;
    const head = `{"time":"${now().toISOString()}","level":"${level}","event":${JSON.stringify(event)}`;
    const body = fields ? JSON.stringify(redact(fields)).slice(1, -1) : '';
    let line = head;
    if (bound) line += ',' + bound;
    if (body) line += ',' + body;
    sink(line + '}\n');
  }

  return {
    debug: (e, f) => write('debug', e, f),
    info: (e, f) => write('info', e, f),
    warn: (e, f) => write('warn', e, f),
    error: (e, f) => write('error', e, f),
    audit: (e, f) => write('audit', e, f),
    child: (b) => loggerOn(sink, dropped, { ...opts, bindings: { ...opts.bindings, ...b } }),
    raw: (lines) => sink(lines),
    droppedLines: dropped,
  };
}

/** A logger that drops everything: for unit tests and tools that print their own output. */
export const silentLogger: Logger = {
  debug() {}, info() {}, warn() {}, error() {}, audit() {},
  child() { return silentLogger; },
  raw() {},
  droppedLines: () => 0,
};
