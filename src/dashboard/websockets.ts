/**
 * Open proxied WebSockets: counted per identity (a limit), registered in the
 * gateway's SessionRegistry under their token id or certificate serial so a
 * revocation closes them at once, and swept every second so expiry (token,
 * session cookie, certificate) also closes them.
 */
import type { Socket } from 'node:net';
import type { SessionRegistry } from '../runtime/sessions.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import type { Logger } from '../log/logger.js';
import { describePrincipal, principalKey, type Principal } from './auth.js';
import { peerCertificateDer } from '../pki/peer-certificate.js';

interface Open {
  readonly principal: Principal;
  readonly socket: Socket;
  readonly unregister: () => void;
}

export class WebSocketTracker {
  readonly #open = new Set<Open>();
  readonly #perIdentity = new Map<string, number>();
  readonly #max: number;
  readonly #sessions: SessionRegistry;
  readonly #metrics: GatewayMetrics;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: { maxPerIdentity: number; sessions: SessionRegistry; metrics: GatewayMetrics; log: Logger }) {
    this.#max = opts.maxPerIdentity;
    this.#sessions = opts.sessions;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
  }

  get size(): number {
    return this.#open.size;
  }

  /** Would one more WebSocket for this identity exceed the limit? */
  atLimit(p: Principal): boolean {
    return (this.#perIdentity.get(principalKey(p)) ?? 0) >= this.#max;
  }

  /** Tracks a client socket from the moment it is handed to the proxy until it closes. */
  track(p: Principal, socket: Socket): void {
    const key = principalKey(p);
    this.#perIdentity.set(key, (this.#perIdentity.get(key) ?? 0) + 1);
    this.#metrics.websocketsOpen.inc();
    const entry: Open = {
      principal: p,
      socket,
      unregister: this.#sessions.add({
        kind: 'dashboard-ws',
        serial: p.kind === 'certificate' ? p.serial : undefined,
        tokenId: p.kind === 'token' ? p.tokenId : undefined,
        peerCertificate: () => peerCertificateDer(socket),
        close: (reason) => this.#cut(entry, reason),
      }),
    };
    this.#open.add(entry);
    socket.once('close', () => {
      if (!this.#open.delete(entry)) return;
      entry.unregister();
      this.#metrics.websocketsOpen.dec();
      const n = (this.#perIdentity.get(key) ?? 1) - 1;
      if (n <= 0) this.#perIdentity.delete(key);
      else this.#perIdentity.set(key, n);
    });
  }

  /** Checks every open WebSocket with `stillValid` each interval; closes the ones that are not. */
  startSweep(stillValid: (p: Principal) => string | undefined, intervalMs = 1000): void {
    this.#timer = setInterval(() => {
      for (const e of this.#open) {
        const why = stillValid(e.principal);
        if (why) this.#cut(e, why === 'expired' ? 'expired' : 'revoked');
      }
    }, intervalMs);
    this.#timer.unref();
  }

  /** Closes every WebSocket (drain/close). */
  closeAll(reason: 'drain'): void {
    for (const e of [...this.#open]) this.#cut(e, reason);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }

  #cut(e: Open, reason: 'revoked' | 'expired' | 'drain'): void {
    if (e.socket.destroyed) return;
    this.#log.audit('dashboard_websocket_closed', { reason, ...describePrincipal(e.principal) });
    if (reason !== 'drain') this.#metrics.revocationsAppliedTotal.inc({ kind: e.principal.kind === 'token' ? 'token' : 'certificate' });
    // Destroy, not a close frame: upstream may be mid-frame on this socket,
    // and an injected frame could land inside it. http-proxy-3 then ends the upstream leg.
    e.socket.destroy();
  }
}
