/**
 * One audit line per connection decision on 8786, plus its metric, so the
 * log and the counters cannot disagree. Field names are stable: log
 * pipelines key on them.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import type { Denial } from './inspector.js';

export interface ConnectionFacts {
  readonly conn: string;
  /** "ip:port" of the peer as seen by the gateway. */
  readonly peer: string;
  uri?: string;
  /** From a certificate whose chain did not verify: what the peer claims, not who it is. */
  claimedUri?: string;
  serial?: string;
  role?: string;
}

export class ConnectionAudit {
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;

  constructor(log: Logger, metrics: GatewayMetrics) {
    this.#log = log;
    this.#metrics = metrics;
  }

  refused(c: ConnectionFacts, reason: string, detail?: string): void {
    this.#metrics.refusalsTotal.inc({ port: '8786', reason });
    this.#log.audit('connection_refused', { port: 8786, ...facts(c), reason, ...(detail ? { detail } : {}) });
  }

  accepted(c: ConnectionFacts): void {
    this.#metrics.connectionsTotal.inc({ port: '8786', role: c.role ?? 'unknown' });
    this.#log.audit('connection_accepted', { port: 8786, ...facts(c) });
  }

  /** Cuts decided by the gateway (revocation, policy, drain) are audited; ordinary ends are info. */
  closed(c: ConnectionFacts, reason: string, stats: { bytesIn: number; bytesOut: number; durationMs: number }, detail?: Record<string, unknown>): void {
    const fields = { port: 8786, ...facts(c), reason, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, duration_ms: stats.durationMs, ...detail };
    if (reason === 'revoked' || reason === 'expired' || reason === 'policy_denied' || reason === 'drain' || reason === 'idle_timeout') this.#log.audit('connection_closed', fields);
    else this.#log.info('connection_closed', fields);
  }

  /** A request refused and answered in Dask's words (the connection goes on); one line per refusal. */
  requestRefused(c: ConnectionFacts, d: Denial): void {
    this.#log.audit('request_refused', { port: 8786, ...facts(c), code: d.code, denial: d.reason, ...(d.op ? { op: d.op } : {}), ...(d.rule ? { rule: d.rule } : {}), ...(d.detail ? { detail: d.detail } : {}) });
  }

  /** A peer that did not speak TLS: logged with what it spoke instead. */
  protocolMismatch(c: ConnectionFacts, spoke: 'http' | 'dask_plaintext' | 'garbage'): void {
    this.#metrics.inputRejectedTotal.inc({ surface: '8786', reason: spoke });
    this.refused(c, spoke === 'garbage' ? 'not_tls' : `plaintext_${spoke === 'http' ? 'http' : 'dask'}`,
      spoke === 'http' ? 'an HTTP request arrived on the Dask TLS port'
        : spoke === 'dask_plaintext' ? 'a plaintext Dask client (tcp://) connected to the TLS port; use tls:// with a client certificate'
          : 'the first bytes are neither a TLS ClientHello nor a known protocol');
  }
}

function facts(c: ConnectionFacts): Record<string, string> {
  const out: Record<string, string> = { conn: c.conn, peer: c.peer };
  if (c.uri) out.uri = c.uri;
  if (c.claimedUri) out.claimed_uri = c.claimedUri;
  if (c.serial) out.serial = c.serial;
  if (c.role) out.role = c.role;
  return out;
}
