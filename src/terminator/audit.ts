/**
 * One audit line per connection decision on 8786, plus its metric, so the
 * log and the counters cannot disagree. Field names are stable: log
 * pipelines key on them.
 */
import type { Logger } from '../log/logger.js';
import type { RefusalCoalescer } from '../log/coalesce.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { sourceOf } from '../limits/source-counts.js';
import type { Denial } from './inspector.js';

export interface ConnectionFacts {
  readonly conn: string;
  /** "ip:port" of the peer as seen by the gateway. */
  readonly peer: string;
  /** The peer's address alone: what per-address limits and log coalescing key on. */
  readonly address: string;
  uri?: string;
  /** From a certificate whose chain did not verify: what the peer claims, not who it is. */
  claimedUri?: string;
  serial?: string;
  role?: string;
}

export class ConnectionAudit {
  readonly #log: Logger;
  readonly #metrics: GatewayMetrics;
  readonly #coalescer: RefusalCoalescer | undefined;

  constructor(log: Logger, metrics: GatewayMetrics, coalescer?: RefusalCoalescer) {
    this.#log = log;
    this.#metrics = metrics;
    this.#coalescer = coalescer;
  }

  /** Counted every time; written in full the first time per source and reason (log/coalesce.ts). */
  refused(c: ConnectionFacts, reason: string, detail?: string): void {
    this.#metrics.refusalsTotal.inc({ port: '8786', reason });
    if (this.#coalescer && !this.#coalescer.admit(sourceOf(c.address), reason, c.uri ?? c.claimedUri ?? c.serial)) return;
    this.#log.audit('connection_refused', { port: 8786, ...facts(c), reason, ...(detail ? { detail } : {}) });
  }

  accepted(c: ConnectionFacts): void {
    this.#metrics.connectionsTotal.inc({ port: '8786', role: c.role ?? 'unknown' });
    this.#log.audit('connection_accepted', { port: 8786, ...facts(c) });
  }

  /** Cuts decided by the gateway (revocation, policy, drain) are audited; ordinary ends are info. */
  closed(c: ConnectionFacts, reason: string, stats: { bytesIn: number; bytesOut: number; durationMs: number }, detail?: Record<string, unknown>): void {
    const fields = { port: 8786, ...facts(c), reason, bytes_in: stats.bytesIn, bytes_out: stats.bytesOut, duration_ms: stats.durationMs, ...detail };
    if (reason === 'revoked' || reason === 'expired' || reason === 'policy_denied' || reason === 'drain' || reason === 'idle_timeout' || reason === 'memory_budget' || reason === 'fair_share') this.#log.audit('connection_closed', fields);
    else this.#log.info('connection_closed', fields);
  }

  /**
   * A request refused and answered in Dask's words (the connection goes on).
   * Written in full the first time per source, certificate, code and op;
   * repeats are coalesced like connection refusals (counted by the caller).
   */
  requestRefused(c: ConnectionFacts, d: Denial): void {
    if (this.#coalescer && !this.#coalescer.admit(sourceOf(c.address), `request_refused:${d.code}:${d.op ?? ''}`, c.uri)) return;
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
