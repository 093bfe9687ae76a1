/**
 * Every refusal on 8787 goes through here: one audit line (no secrets, the
 * query string redacted) and one count in refusals_total{port="8787",reason}.
 * abortHandshake answers a refused WebSocket upgrade with a plain HTTP status
 * and Connection: close before any WebSocket exists (as ws does).
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../log/logger.js';
import type { RefusalCoalescer } from '../log/coalesce.js';
import { sourceOf } from '../limits/source-counts.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { loggablePath } from './request-target.js';
import { SECURITY_HEADERS } from './security-headers.js';

export class Refusals {
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #coalescer: RefusalCoalescer | undefined;

  constructor(log: Logger, metrics: GatewayMetrics, coalescer?: RefusalCoalescer) {
    this.#log = log;
    this.#metrics = metrics;
    this.#coalescer = coalescer;
  }

  /** Counted every time; written in full the first time per source and reason (log/coalesce.ts). */
  record(req: IncomingMessage | undefined, reason: string, status: number, fields: Record<string, unknown> = {}, remote?: string): void {
    this.#metrics.refusalsTotal.inc({ port: '8787', reason });
    const subject = fields.token_id ?? fields.identity ?? fields.serial;
    if (this.#coalescer && !this.#coalescer.admit(sourceOf(remote ?? req?.socket.remoteAddress), reason, subject === undefined ? undefined : String(subject))) return;
    this.#log.audit('dashboard_refused', {
      reason,
      status,
      remote: remote ?? req?.socket.remoteAddress,
      method: req?.method,
      path: loggablePath(req?.url),
      upgrade: req ? req.headers.upgrade !== undefined : undefined,
      ...fields,
    });
  }
}

export function abortHandshake(socket: Duplex, status: number, message: string, extra: Record<string, string> = {}): void {
  if (socket.writable) {
    const body = message + '\n';
    const headers = { ...SECURITY_HEADERS, ...extra, connection: 'close', 'content-type': 'text/plain; charset=utf-8', 'content-length': String(Buffer.byteLength(body)) };
    const head = Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n');
    socket.once('finish', () => socket.destroy());
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${head}\r\n\r\n${body}`);
    // A peer that never reads must not hold the socket open.
    setTimeout(() => socket.destroy(), 2000).unref();
  } else {
    socket.destroy();
  }
}
