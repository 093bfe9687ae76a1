/**
 * Fetches a Prometheus text endpoint (the scheduler dashboard's /metrics)
 * with a deadline and a body cap, so a stuck or hostile endpoint costs at most
 * `timeoutMs` and `maxBytes`. Plain HTTP on loopback only: the scheduler's
 * dashboard is reachable nowhere else.
 */
import { request } from 'node:http';
import { telemetryError } from './errors.js';
import { isLoopbackHost } from '../config/loopback.js';

export interface ScrapeOptions {
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

export function scrapeText(url: URL, o: ScrapeOptions): Promise<string> {
  const failed = (reason: string) => telemetryError('scrapeFailed', { url: url.href, reason });
  // The scheduler's dashboard is plain HTTP: it is only ever read over loopback.
  if (url.protocol !== 'http:' || !isLoopbackHost(url.hostname)) return Promise.reject(failed('only http:// on a loopback address is scraped'));
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(text!);
    };
    const req = request(url, { method: 'GET', headers: { accept: 'text/plain; version=0.0.4' }, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return done(failed(`HTTP ${res.statusCode}`));
      }
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > o.maxBytes) return done(failed(`body of ${declared} bytes exceeds ${o.maxBytes}`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > o.maxBytes) return done(failed(`body exceeds ${o.maxBytes} bytes`));
        chunks.push(c);
      });
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        const text = buf.toString('utf8');
        // Invalid UTF-8 decodes to U+FFFD; refuse it rather than ship altered text.
        if (text.includes('\uFFFD') && !buf.includes(Buffer.from('\uFFFD'))) return done(failed('body is not valid UTF-8'));
        done(undefined, text);
      });
      res.on('error', (e) => done(failed(e.message)));
    });
    const timer = setTimeout(() => done(failed(`no complete answer within ${o.timeoutMs} ms`)), o.timeoutMs);
    req.on('error', (e: NodeJS.ErrnoException) => done(failed(e.code ?? e.message)));
    req.end();
  });
}
