/**
 * Splits a byte stream of JSON log lines (the gateway's stdout format) into
 * lines, however the chunks fall. One splitter for every test that reads logs.
 */
import { Writable } from 'node:stream';

export type LineHandler = (raw: string, parsed: Record<string, unknown> | undefined) => void;

/** Returns a function to feed chunks to; calls onLine for each complete line. */
export function lineSplitter(onLine: LineHandler): (chunk: Buffer | string) => void {
  let partial = '';
  return (chunk) => {
    partial += chunk.toString();
    let i: number;
    while ((i = partial.indexOf('\n')) >= 0) {
      const raw = partial.slice(0, i);
      partial = partial.slice(i + 1);
      let parsed: Record<string, unknown> | undefined;
      try { parsed = JSON.parse(raw) as Record<string, unknown>; } catch { parsed = undefined; }
      onLine(raw, parsed);
    }
  };
}

/** A Writable to hand to createLogger({stream}) in tests. */
export function jsonLineSink(onLine: LineHandler): Writable {
  const feed = lineSplitter(onLine);
  return new Writable({ write(chunk: Buffer, _enc, cb) { feed(chunk); cb(); } });
}
