/**
 * A data-plane process writes no log of its own: its lines go to the
 * primary, which writes them through its logger with the process's number,
 * so the gateway has one log stream, one redaction and one writer (lines of
 * several processes never interleave). Lines of one event-loop turn travel
 * in one message. Fields are redacted here, before they leave the process.
 */
import { redact, type Fields, type Level, type Logger } from '../log/logger.js';
import type { Channel } from './channel.js';
import { OP, type LogEntry } from './protocol.js';

const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, audit: 50 };
/** A flood must not grow the batch without bound. */
const BATCH_MAX = 512;

export function relayLogger(ch: Channel, level: Exclude<Level, 'audit'>): Logger & { flush(): void } {
  let batch: LogEntry[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (batch.length === 0) return;
    const entries = batch;
    batch = [];
    ch.notify(OP.log, entries);
  };
  const emit = (lvl: Level, event: string, fields: Fields | undefined, bindings: Fields | undefined) => {
    if (RANK[lvl] < RANK[level]) return;
    const all = bindings ? { ...bindings, ...fields } : fields;
    batch.push({ level: lvl, event, fields: all === undefined ? undefined : (redact(all) as Fields) });
    if (batch.length >= BATCH_MAX) return flush();
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  };
  const make = (bindings: Fields | undefined): Logger => ({
    debug: (e, f) => emit('debug', e, f, bindings),
    info: (e, f) => emit('info', e, f, bindings),
    warn: (e, f) => emit('warn', e, f, bindings),
    error: (e, f) => emit('error', e, f, bindings),
    audit: (e, f) => emit('audit', e, f, bindings),
    child: (b) => make({ ...bindings, ...b }),
  });
  return Object.assign(make(undefined), { flush });
}

/** The primary's side: one logger per process, fed by relayLogger's batches. */
export function writeRelayed(log: Logger, entries: unknown): void {
  if (!Array.isArray(entries)) return;
  for (const e of entries as LogEntry[]) {
    if (typeof e?.event !== 'string' || !(e.level in RANK)) continue;
    log[e.level](e.event, e.fields);
  }
}
