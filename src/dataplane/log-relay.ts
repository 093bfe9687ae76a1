/**
 * A data-plane process writes no log of its own: it formats and redacts its
 * lines with the gateway's logger (log/logger.ts, `dataplane` bound), and
 * the batch of each event-loop turn goes to the primary as text, which
 * writes it as it is. So the gateway has one log stream and one writer (the
 * lines of several processes never interleave), each line is serialized
 * once, and its time is when it happened, not when it arrived.
 */
import { createLogger, type Level, type Logger } from '../log/logger.js';
import type { Channel } from './channel.js';
import { OP } from './protocol.js';

export function relayLogger(ch: Channel, level: Exclude<Level, 'audit'>, index: number): Logger {
  const primary = { write: (text: string) => ch.notify(OP.log, text) };
  return createLogger({ stream: primary, level, batch: true, bindings: { dataplane: index } });
}

/** The primary's side: whole lines, already formatted. Anything else on the pipe is not a log line. */
export function writeRelayed(log: Logger, text: unknown): void {
  if (typeof text === 'string' && text.endsWith('\n')) log.raw(text);
}
