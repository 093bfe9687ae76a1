/**
 * The outbound stream to the control plane: one WebSocket over TLS that
 * carries spooled batches out and acknowledgements and commands back.
 *
 * At-least-once: a batch leaves the spool only on its ack; after any failure
 * every unacknowledged batch is sent again and the receiver deduplicates by
 * (cluster, seq). Memory is bounded by the send window: batches are read from
 * disk just before sending, never queued in RAM. A connection that misbehaves
 * (TLS failure, refused credential, HTTP error, ack timeout, protocol
 * violation) is closed and retried with full-jitter backoff; a nacked batch is
 * resent on the same connection after a backoff delay. The data path never
 * waits on any of this.
 *
 * TLS is verified against the system CAs or the pinned CA file, always
 * (`rejectUnauthorized` is never false): an untrusted certificate means nothing
 * is sent.
 */
import WebSocket from 'ws';
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import type { Spool } from './spool.js';
import { FLAG_GZIP } from './spool.js';
import { Backoff } from './backoff.js';
import type { CommandProcessor } from './commands.js';
import { CLUSTER_HEADER, MAX_INBOUND_MESSAGE_BYTES, SUBPROTOCOL, parseInbound } from './protocol.js';

export interface StreamOptions {
  readonly url: URL;
  /** Pinned CA (PEM); undefined = the system CAs. */
  readonly caPem: string | undefined;
  readonly credential: string;
  readonly clusterId: string;
  readonly spool: Spool;
  readonly commands: CommandProcessor | undefined;
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'streamBatchesTotal' | 'streamLagSeconds' | 'streamErrorsTotal'>;
  readonly backoff: Backoff;
  /** Batches sent and not yet acknowledged, at most. */
  readonly window?: number;
  readonly connectTimeoutMs?: number;
  /** An ack slower than this closes the connection (the batch is resent). */
  readonly ackTimeoutMs?: number;
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME|ERR_TLS|ERR_SSL|EPROTO/;

export class TelemetryStream {
  readonly #o: StreamOptions;
  readonly #inflight = new Map<number, number>();
  #ws: WebSocket | undefined;
  #open = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #ackTimer: NodeJS.Timeout | undefined;
  #pumping = false;
  #pumpAgain = false;
  #newestAckedCreated = 0;
  /** After a nack, nothing is sent before this time. */
  #holdUntil = 0;
  #holdTimer: NodeJS.Timeout | undefined;

  constructor(o: StreamOptions) {
    this.#o = o;
  }

  start(): void {
    this.#connect();
  }

  get connected(): boolean {
    return this.#open;
  }

  /** A new batch is in the spool. */
  notify(): void {
    if (this.#open) void this.#pump();
    this.#updateLag();
  }

  async close(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#holdTimer);
    clearInterval(this.#ackTimer);
    const ws = this.#ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { ws.terminate(); resolve(); }, 1000);
      ws.once('close', () => { clearTimeout(t); resolve(); });
      try { ws.close(1001, 'gateway shutting down'); } catch { ws.terminate(); }
    });
  }

  #connect(): void {
    if (this.#stopped) return;
    const { url, caPem, credential, clusterId, log } = this.#o;
    const ws = new WebSocket(url, SUBPROTOCOL, {
      headers: { authorization: `Bearer ${credential}`, [CLUSTER_HEADER]: clusterId },
      ...(caPem ? { ca: caPem } : {}),
      rejectUnauthorized: true,
      handshakeTimeout: this.#o.connectTimeoutMs ?? 10_000,
      maxPayload: MAX_INBOUND_MESSAGE_BYTES,
      perMessageDeflate: false,
      followRedirects: false,
    });
    this.#ws = ws;
    let failed = false;
    const fail = (reason: string, fields: Record<string, unknown>) => {
      if (failed) return;
      failed = true;
      this.#o.metrics.streamErrorsTotal.inc({ reason });
      log.warn('telemetry_stream_failed', { reason, url: url.origin, ...fields });
    };
    ws.on('unexpected-response', (_req, res) => {
      fail(res.statusCode === 401 || res.statusCode === 403 ? 'auth' : 'http', { status: res.statusCode });
      res.resume();
      ws.terminate();
    });
    ws.on('error', (e: NodeJS.ErrnoException) => {
      const code = e.code ?? '';
      if (TLS_CODES.test(code) || /certificate|self.signed/i.test(e.message)) {
        fail('tls', { code, problem: e.message, sent: 'nothing: the control plane certificate is not trusted' });
      } else if (/timed? ?out/i.test(e.message)) {
        fail('timeout', { code, problem: e.message });
      } else {
        fail('network', { code, problem: e.message });
      }
    });
    ws.on('open', () => {
      this.#open = true;
      log.info('telemetry_stream_connected', { url: url.origin, backlog: this.#o.spool.size });
      this.#ackTimer = setInterval(() => {
        this.#checkAckTimeout();
        void this.#pump(); // a safety net: nothing stays unsent for want of a wake-up
      }, Math.min(1000, Math.max(50, (this.#o.ackTimeoutMs ?? 30_000) / 4)));
      void this.#pump();
    });
    ws.on('message', (data, isBinary) => {
      if (isBinary) return this.#violation(ws, 'binary message from the control plane');
      this.#onMessage(ws, data.toString()).catch((e: unknown) => this.#o.log.error('telemetry_stream_message_failed', { error: e }));
    });
    ws.on('close', (code) => {
      const wasOpen = this.#open;
      this.#open = false;
      this.#inflight.clear();
      clearInterval(this.#ackTimer);
      if (this.#ws === ws) this.#ws = undefined;
      if (wasOpen && !failed && !this.#stopped) fail('network', { closed: code });
      this.#scheduleRetry();
    });
  }

  #scheduleRetry(): void {
    if (this.#stopped) return;
    const delay = this.#o.backoff.next();
    this.#o.log.debug('telemetry_stream_retry', { in_ms: delay, attempt: this.#o.backoff.attempts });
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  async #onMessage(ws: WebSocket, text: string): Promise<void> {
    const msg = parseInbound(text);
    if (typeof msg === 'string') return this.#violation(ws, msg);
    if (msg.type === 'ack') {
      if (!this.#inflight.has(msg.seq)) {
        this.#o.log.debug('telemetry_stream_unexpected_ack', { seq: msg.seq });
        return;
      }
      this.#inflight.delete(msg.seq);
      const entry = this.#o.spool.get(msg.seq);
      if (entry) this.#newestAckedCreated = Math.max(this.#newestAckedCreated, entry.createdMs);
      await this.#o.spool.ack(msg.seq).catch((e: unknown) => this.#o.log.error('telemetry_spool_ack_failed', { seq: msg.seq, error: e }));
      this.#o.metrics.streamBatchesTotal.inc({ outcome: msg.duplicate ? 'duplicate' : 'acked' });
      this.#o.backoff.reset();
      this.#updateLag();
      void this.#pump();
      return;
    }
    if (msg.type === 'nack') {
      this.#o.metrics.streamBatchesTotal.inc({ outcome: 'nacked' });
      this.#o.metrics.streamErrorsTotal.inc({ reason: 'nack' });
      // The receiver refused this batch only: keep the connection (other acks are on their way),
      // hold new sends for a backoff delay, then resend it.
      this.#inflight.delete(msg.seq);
      const delay = this.#o.backoff.next();
      this.#o.log.warn('telemetry_stream_nack', { seq: msg.seq, problem: msg.error, retry_in_ms: delay });
      this.#holdUntil = Date.now() + delay;
      clearTimeout(this.#holdTimer);
      this.#holdTimer = setTimeout(() => void this.#pump(), delay);
      return;
    }
    if (!this.#o.commands) {
      this.#send(ws, { type: 'command-result', id: msg.id, ok: false, error: 'commands are not enabled on this gateway' });
      return;
    }
    const result = await this.#o.commands.handle(msg);
    this.#send(ws, result);
  }

  #violation(ws: WebSocket, reason: string): void {
    this.#o.metrics.streamErrorsTotal.inc({ reason: 'protocol' });
    this.#o.log.warn('telemetry_stream_protocol_violation', { problem: reason });
    ws.terminate();
  }

  #send(ws: WebSocket, obj: unknown): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
  }

  /** Sends the oldest unsent batches until the window is full; re-entrant calls coalesce. */
  /** Never rejects: a failed read (the spool removes what it cannot trust) just ends this round. */
  async #pump(): Promise<void> {
    try {
      await this.#pumpOnce();
    } catch (e) {
      this.#o.log.error('telemetry_stream_send_failed', { error: e });
    }
  }

  async #pumpOnce(): Promise<void> {
    if (this.#pumping) { this.#pumpAgain = true; return; }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        const held = this.#holdUntil - Date.now();
        if (held > 0) {
          // Timers may fire a little early: re-arm rather than rely on the one set at the nack.
          clearTimeout(this.#holdTimer);
          this.#holdTimer = setTimeout(() => void this.#pump(), held + 1);
          return;
        }
        const window = this.#o.window ?? 8;
        for (const e of this.#o.spool.oldest(window + this.#inflight.size)) {
          const ws = this.#ws;
          if (!this.#open || !ws || this.#inflight.size >= window) return;
          if (this.#inflight.has(e.seq)) continue;
          const rec = await this.#o.spool.read(e.seq);
          if (!rec || !this.#open || ws !== this.#ws) continue;
          this.#inflight.set(e.seq, Date.now());
          ws.send(rec.payload, { binary: (rec.entry.flags & FLAG_GZIP) !== 0 });
          this.#o.metrics.streamBatchesTotal.inc({ outcome: 'sent' });
        }
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
  }

  #checkAckTimeout(): void {
    const limit = this.#o.ackTimeoutMs ?? 30_000;
    const now = Date.now();
    for (const [seq, sent] of this.#inflight) {
      if (now - sent > limit) {
        this.#o.metrics.streamErrorsTotal.inc({ reason: 'ack_timeout' });
        this.#o.log.warn('telemetry_stream_ack_timeout', { seq, waited_ms: now - sent });
        this.#ws?.terminate();
        return;
      }
    }
  }

  #updateLag(): void {
    const newest = this.#o.spool.newest();
    const acked = this.#newestAckedCreated || this.#o.spool.oldest(1)[0]?.createdMs || 0;
    this.#o.metrics.streamLagSeconds.set(newest ? Math.max(0, (newest.createdMs - acked) / 1000) : 0);
  }
}
