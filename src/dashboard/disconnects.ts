/**
 * A browser or the scheduler's dashboard going away mid-exchange: the most
 * ordinary event on 8787 (a closed tab resets every socket it had). Each
 * exchange that ends this way is one log line (debug for browsers, info for
 * the upstream, which should not vanish) and one count in
 * dashboard_disconnects_total{peer,stage}; never an audit line, never a
 * crash. One exchange can surface as several errors (read ECONNRESET, then
 * write EPIPE, then "socket hang up" on the upstream leg), so each is keyed by
 * its client socket and reported once.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { loggablePath } from './request-target.js';

export type Peer = 'browser' | 'upstream';
/** handshake: TLS; connection: between requests; request: before upstream answered; response: while relaying a body; upgrade: before the 101; websocket: after it. */
export type Stage = 'handshake' | 'connection' | 'request' | 'response' | 'upgrade' | 'websocket';

/** Error codes that mean "the other end is gone", not "the other end is hostile". */
const PEER_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

export function isPeerGone(err: unknown): boolean {
  return PEER_GONE.has(errorCode(err));
}

export function errorCode(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (typeof e?.code === 'string') return e.code;
  return typeof e?.message === 'string' ? e.message.slice(0, 64) : 'closed';
}

export class Disconnects {
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #reported = new WeakSet<object>();

  constructor(log: Logger, metrics: GatewayMetrics) {
    this.#log = log;
    this.#metrics = metrics;
  }

  /** Reports the end of the exchange on `socket` (the browser's), once however many errors follow. */
  note(socket: object, peer: Peer, stage: Stage, err?: unknown, url?: string): void {
    if (this.#reported.has(socket)) return;
    this.#reported.add(socket);
    this.#metrics.dashboardDisconnectsTotal.inc({ peer, stage });
    const fields = { peer, stage, code: err === undefined ? 'closed' : errorCode(err), path: url === undefined ? undefined : loggablePath(url) };
    if (peer === 'browser') this.#log.debug('dashboard_disconnect', fields);
    else this.#log.info('dashboard_disconnect', fields);
  }
}
