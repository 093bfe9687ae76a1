/**
 * Port 8786: accept, sniff, TLS handshake under a deadline, authenticate,
 * dial the scheduler, forward. Each step is one module of this folder:
 *   sniff.ts         what the first bytes are (TLS, HTTP, plaintext Dask, garbage)
 *   admission.ts     failed-handshake budget, fair shares, reclaim (here or in the primary)
 *   fair-shares.ts   slots per address, per certificate, per role class
 *   tls-options.ts   the TLS policy (versions, suites, client certificates)
 *   authenticate.ts  chain verdict + identity (cluster, role, revocation, EKU)
 *   upstream.ts      the one upstream connection per peer
 *   pipe.ts          the byte copy, both ways, half-close, errors
 *   forwarded.ts     a live, authenticated connection (session, metrics, end)
 *   audit.ts         one line per decision
 * This folder knows nothing about Dask framing: wire-aware policy plugs in
 * through inspector.ts. It must not import dashboard/, telemetry/ internals
 * or policy/.
 */
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Component, GatewayContext } from '../runtime/context.js';
import { formatEndpoint, type Endpoint } from '../config/spec.js';
import { ConnectionAudit, type ConnectionFacts } from './audit.js';
import { authenticatePeer } from './authenticate.js';
import { terminatorError } from './errors.js';
import { ForwardedConnection } from './forwarded.js';
import type { InspectorFactory } from './inspector.js';
import type { Identity } from '../pki/identity.js';
import type { ShareLimits, ShareRefusal, Slot } from './fair-shares.js';
import { SharedAdmission, isAdmissionRefusal, type Admission, type AdmissionRefusal, type ReclaimSource } from './admission.js';
import { refuseDaskPeer } from './dask-refusal.js';
import { RefusalCoalescer } from '../log/coalesce.js';
import type { MemoryBudget } from '../limits/memory-budget.js';
import { HTTP_EXPLANATION, SNIFF_MAX_BYTES, sniff } from './sniff.js';
import { LISTENER_HANDSHAKE } from '../wire/reply.js';
import { secureContextOptions, serverOptions } from './tls-options.js';
import { dialUpstream } from './upstream.js';
import { isGatewayError } from '../errors/base.js';

export interface TerminatorOptions extends ShareLimits {
  readonly listen: Endpoint;
  readonly scheduler: Endpoint;
  /** From accept to an authenticated peer: bounds slowloris and half-open sockets. */
  readonly handshakeTimeoutMs: number;
  /** Failed handshakes per minute per source address before refusing it. */
  readonly failedHandshakesPerMinute: number;
  readonly upstreamConnectTimeoutMs: number;
  /** 0 disables. Never applies to Dask streams (forwarded.ts). */
  readonly idleTimeoutMs: number;
  /** After one side half-closes, how long the other direction may still flow. */
  readonly closeDeadlineMs?: number;
  readonly inspector?: InspectorFactory;
  /** Accept client certificates without any EKU extension (--allow-missing-eku). */
  readonly allowMissingEku?: boolean;
  /** What every connection buffers counts against this (limits/memory-budget.ts). */
  readonly memoryBudget?: MemoryBudget;
  /** Where slots are decided; default: here (admission.ts). A data-plane process asks the primary (dataplane/). */
  readonly admission?: (reclaim: ReclaimSource) => Admission;
}

export interface Terminator extends Component {
  /** The bound address (port 0 resolves to the real port). */
  readonly address: AddressInfo;
  /** Handshaking plus forwarding connections. */
  readonly connections: number;
}

interface Pending {
  readonly facts: ConnectionFacts;
  readonly raw: Socket;
  readonly slot: Slot;
  readonly startedAt: number;
  readonly timer: NodeJS.Timeout;
  settled: boolean;
  tlsError?: string;
}

const BYTES_TICK_MS = 5_000;
const EXPIRY_TICK_MS = 1_000;
/**
 * TLS clients send their ClientHello at once; a peer silent this long (or
 * half the handshake deadline, if shorter) is probed as a possible plaintext
 * Dask connector (sniff.ts). Generous on purpose: the probe would break a TLS
 * client whose event loop stalled between connect and ClientHello.
 */
const DASK_PROBE_AFTER_MS = 5_000;
/**
 * The pre-TLS deadline: a peer still silent this long after the probe is
 * neither TLS nor Dask and loses its slot now, not at the handshake deadline.
 * A plaintext Dask connector answers the probe at once.
 */
const PROBE_ANSWER_MS = 1_000;
const KEEPALIVE_AFTER_MS = 60_000;
/** A refused, authenticated Dask peer has this long to ask its first question and read the answer. */
const REFUSAL_ANSWER_MS = 5_000;

const PLAINTEXT_DASK_REFUSAL =
  'scheduler-gateway refused this connection (plaintext_dask): this port speaks Dask over mutual TLS. Connect to tls://HOST:PORT, ' +
  'not tcp://, with a client certificate: Security(tls_ca_file=..., tls_client_cert=..., tls_client_key=..., require_encryption=True)';

export async function startTerminator(ctx: GatewayContext, opts: TerminatorOptions): Promise<Terminator> {
  const t = new TerminatorServer(ctx, opts);
  await t.listen();
  return t;
}

class TerminatorServer implements Terminator {
  readonly name = 'terminator';
  readonly #ctx: GatewayContext;
  readonly #opts: TerminatorOptions;
  readonly #audit: ConnectionAudit;
  readonly #admission: Admission;
  readonly #coalescer: RefusalCoalescer;
  readonly #front: NetServer;
  readonly #tls: TlsServer;
  /** Handshaking connections by "address:port", so TLS events find their record. */
  readonly #pending = new Map<string, Pending>();
  readonly #live = new Set<ForwardedConnection>();
  /** notAfter (ms) of each live connection's certificate: a credential that expires while connected is cut, like a revoked one. */
  readonly #expires = new WeakMap<ForwardedConnection, number>();
  readonly #expiryTick: NodeJS.Timeout;
  readonly #idPrefix = randomBytes(3).toString('hex');
  readonly #stopTrust: () => void;
  readonly #tick: NodeJS.Timeout;
  #seq = 0;
  /** Slots this process holds (handshaking plus live): what drain waits for. */
  #held = 0;
  #draining = false;
  #closed: Promise<void> | undefined;

  constructor(ctx: GatewayContext, opts: TerminatorOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.#coalescer = new RefusalCoalescer(ctx.log, { port: '8786', onCoalesced: () => ctx.metrics.logLinesCoalescedTotal.inc({ port: '8786' }) });
    this.#audit = new ConnectionAudit(ctx.log, ctx.metrics, this.#coalescer);
    const reclaim: ReclaimSource = () => {
      const now = Date.now();
      return [...this.#live].map((c) => c.reclaimable(now));
    };
    this.#admission = opts.admission?.(reclaim) ?? new SharedAdmission({ limits: opts, failedHandshakesPerMinute: opts.failedHandshakesPerMinute, metrics: ctx.metrics, reclaim });
    // Not half-open while handshaking: a peer that sends FIN mid-handshake has
    // given up and is refused at once. Authenticated sockets switch to
    // half-open in #onSecure so the pipe can forward half-closes.
    this.#front = createNetServer({ allowHalfOpen: false }, (raw) => this.#onAccept(raw));
    this.#tls = createTlsServer(serverOptions(ctx.trust.current()));
    this.#tls.on('secureConnection', (s: TLSSocket) => this.#onSecure(s));
    this.#tls.on('tlsClientError', (err: NodeJS.ErrnoException, s: TLSSocket) => this.#onTlsError(err, s));
    // Established connections keep their context; only new handshakes see the new one.
    this.#stopTrust = ctx.trust.onChange((m) => this.#tls.setSecureContext(secureContextOptions(m)));
    this.#tick = setInterval(() => this.#flushBytes(), BYTES_TICK_MS).unref();
    this.#expiryTick = setInterval(() => this.#cutExpired(), EXPIRY_TICK_MS).unref();
  }

  get address(): AddressInfo {
    return this.#front.address() as AddressInfo;
  }

  get connections(): number {
    return this.#held;
  }

  listen(): Promise<void> {
    const l = this.#opts.listen;
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => reject(terminatorError('listen', { address: formatEndpoint(l), cause: e.code ?? e.message }));
      this.#front.once('error', onError);
      const done = () => {
        this.#front.off('error', onError);
        this.#front.on('error', (e) => this.#ctx.log.error('terminator_listener_error', { error: e }));
        this.#ctx.log.info('terminator_listening', { address: formatEndpoint(l), port: this.address.port, scheduler: formatEndpoint(this.#opts.scheduler) });
        resolve();
      };
      if (l.path !== undefined) this.#front.listen(l.path, done);
      else this.#front.listen({ host: l.host, port: l.port, backlog: 1024 }, done);
    });
  }

  #onAccept(raw: Socket): void {
    const remote = raw.remoteAddress ?? 'unknown';
    const facts: ConnectionFacts = { conn: `${this.#idPrefix}-${(++this.#seq).toString(36)}`, peer: `${remote}:${raw.remotePort ?? 0}`, address: remote };
    raw.on('error', () => {}); // resets before or during the handshake are normal; the close path audits them
    if (this.#draining) return void raw.destroy();
    const slot = this.#admission.admit(remote);
    if (slot instanceof Promise) {
      slot.then((s) => this.#admitted(raw, facts, s), () => this.#admitted(raw, facts, { reason: 'admission_unavailable', detail: 'the primary process did not answer' }));
    } else {
      this.#admitted(raw, facts, slot);
    }
  }

  #admitted(raw: Socket, facts: ConnectionFacts, slot: Slot | AdmissionRefusal): void {
    if (isAdmissionRefusal(slot)) {
      this.#audit.refused(facts, slot.reason, slot.detail);
      return void raw.destroy();
    }
    // Gone while the primary decided (another process's turn): the slot goes straight back.
    if (raw.destroyed || this.#draining) {
      this.#admission.release(slot);
      return void raw.destroy();
    }
    this.#held++;
    raw.setNoDelay(true);
    // A peer whose host vanished without a FIN gives its slot back (Linux: first probe after this, then 9 x 75 s).
    raw.setKeepAlive(true, KEEPALIVE_AFTER_MS);
    const key = facts.peer;
    const p: Pending = {
      facts,
      raw,
      slot,
      startedAt: performance.now(),
      settled: false,
      timer: setTimeout(() => this.#refuse(p, 'handshake_timeout', `no authenticated TLS session within ${this.#opts.handshakeTimeoutMs} ms`), this.#opts.handshakeTimeoutMs),
    };
    this.#pending.set(key, p);
    raw.once('close', () => {
      this.#admission.release(slot);
      this.#held--;
      if (this.#pending.get(key) === p) this.#pending.delete(key);
      clearTimeout(p.timer);
      if (!p.settled) this.#refuse(p, p.tlsError ? 'tls_handshake_failed' : 'handshake_aborted', p.tlsError ?? 'connection closed before the handshake completed');
    });
    this.#sniff(p);
  }

  #sniff(p: Pending): void {
    let seen: Buffer | undefined;
    let probed = false;
    // A Dask connector reads the listener's handshake before it writes, so a plaintext tcp:// client is silent
    // while a TLS client speaks at once: to a silent peer we say what a Dask listener says first.
    // Timers run before pending reads in a loop turn: on a lagging event loop a ClientHello that already arrived
    // would get the plaintext probe written into it. setImmediate lets the poll phase read it first.
    const probeAfter = Math.min(DASK_PROBE_AFTER_MS, this.#opts.handshakeTimeoutMs / 2);
    let silent: NodeJS.Timeout | undefined;
    const probe = setTimeout(() => setImmediate(() => {
      if (seen || p.settled || p.raw.destroyed) return;
      probed = true;
      p.raw.write(LISTENER_HANDSHAKE);
      silent = setTimeout(() => {
        if (!seen) this.#refuse(p, 'handshake_timeout', `sent nothing within ${probeAfter + PROBE_ANSWER_MS} ms of connecting: not a TLS client`);
      }, PROBE_ANSWER_MS);
    }), probeAfter);
    p.raw.once('close', () => { clearTimeout(probe); clearTimeout(silent); });
    const onData = (chunk: Buffer) => {
      clearTimeout(probe);
      clearTimeout(silent);
      seen = seen ? Buffer.concat([seen, chunk]) : chunk;
      const kind = sniff(seen);
      if (kind === 'need_more' && seen.length < SNIFF_MAX_BYTES) return;
      p.raw.off('data', onData);
      p.raw.pause();
      if (kind === 'tls') {
        // Node's TLSSocket feeds bytes already buffered on the socket to OpenSSL first.
        p.raw.unshift(seen);
        this.#tls.emit('connection', p.raw);
        return;
      }
      const spoke = kind === 'need_more' ? 'garbage' : kind;
      this.#settle(p);
      this.#audit.protocolMismatch(p.facts, spoke);
      this.#admission.failed(p.raw.remoteAddress ?? 'unknown');
      if (spoke === 'http') {
        p.raw.end(HTTP_EXPLANATION);
        setTimeout(() => p.raw.destroy(), 1_000).unref();
      } else if (spoke === 'dask_plaintext') {
        // Answered in Dask's framing, so the tcp:// caller's Python raises with the reason.
        void refuseDaskPeer(p.raw, { text: PLAINTEXT_DASK_REFUSAL, handshakeSent: probed, initial: seen, timeoutMs: this.#opts.handshakeTimeoutMs });
      } else {
        p.raw.destroy();
      }
    };
    p.raw.on('data', onData);
  }

  #pendingOf(s: TLSSocket): Pending | undefined {
    return this.#pending.get(`${s.remoteAddress}:${s.remotePort ?? 0}`);
  }

  #onTlsError(err: NodeJS.ErrnoException, s: TLSSocket): void {
    const p = this.#pendingOf(s);
    if (p) p.tlsError = err.code ?? err.message;
    s.destroy();
  }

  #onSecure(s: TLSSocket): void {
    const p = this.#pendingOf(s);
    if (!p) return void s.destroy();
    if (p.settled) return; // timed out or drained: the raw socket is already being destroyed
    const trust = this.#ctx.trust;
    const verdict = authenticatePeer(s, { clusterId: trust.current().clusterId, isRevoked: (x) => trust.isRevoked(x), now: this.#ctx.now(), allowMissingEku: this.#opts.allowMissingEku === true });
    if (verdict.serial) p.facts.serial = verdict.serial;
    if (verdict.uri) p.facts.uri = verdict.uri;
    if (!verdict.ok) {
      if (verdict.claimedUri) p.facts.claimedUri = verdict.claimedUri;
      return this.#refuse(p, verdict.reason, verdict.detail);
    }
    p.facts.role = verdict.identity.role;
    const over = this.#admission.promote(p.slot, verdict.uri, verdict.identity.role);
    const go = (o: ShareRefusal | null) => this.#promoted(p, s, o, verdict.identity, verdict.serial, verdict.sanHosts, verdict.notAfter);
    if (over instanceof Promise) over.then(go, () => go({ reason: 'too_many_connections', detail: 'the primary process did not answer' }));
    else go(over);
  }

  #promoted(p: Pending, s: TLSSocket, over: ShareRefusal | null, identity: Identity, serial: string, sanHosts: string[], notAfter: Date): void {
    if (p.settled || s.destroyed) return; // timed out or drained while the primary decided; the close releases the slot
    if (over) return this.#refuseOverShare(p, s, over);
    // Once per connection: refusals observe their own duration (#refuse, #refuseOverShare).
    this.#ctx.metrics.handshakeSeconds.observe({ port: '8786' }, (performance.now() - p.startedAt) / 1000);
    s.allowHalfOpen = true;
    s.setNoDelay(true);
    this.#settle(p);
    void this.#connectUpstream(p, s, identity, serial, sanHosts, notAfter);
  }

  async #connectUpstream(p: Pending, peer: TLSSocket, identity: Identity, serial: string, sanHosts: string[], notAfter: Date): Promise<void> {
    const abort = new AbortController();
    const onGone = () => abort.abort();
    peer.once('close', onGone);
    peer.on('error', () => {}); // the pipe installs the real handlers; a reset while dialing must not throw
    let upstream: Socket;
    try {
      upstream = await dialUpstream(this.#opts.scheduler, this.#opts.upstreamConnectTimeoutMs, abort.signal);
    } catch (e) {
      const details = isGatewayError(e) ? e.details : {};
      if (!abort.signal.aborted) {
        this.#ctx.metrics.upstreamErrorsTotal.inc({ upstream: 'scheduler', kind: String(details.kind ?? 'error') });
        this.#audit.refused(p.facts, 'upstream_unavailable', String(details.cause ?? e));
      } else {
        this.#ctx.log.info('connection_closed', { port: 8786, conn: p.facts.conn, peer: p.facts.peer, reason: 'peer_closed_while_dialing' });
      }
      peer.destroy();
      return;
    } finally {
      peer.off('close', onGone);
    }
    if (peer.destroyed || this.#draining) {
      if (!peer.destroyed) this.#audit.refused(p.facts, 'draining', 'the gateway began draining while this connection was being set up');
      upstream.destroy();
      peer.destroy();
      return;
    }
    this.#audit.accepted(p.facts);
    const conn = new ForwardedConnection({
      ctx: this.#ctx,
      audit: this.#audit,
      facts: p.facts,
      peerInfo: { identity, serial, remoteAddress: peer.remoteAddress ?? 'unknown', sanHosts, connectionId: p.facts.conn },
      peer,
      upstream,
      inspector: this.#opts.inspector,
      idleTimeoutMs: this.#opts.idleTimeoutMs,
      closeDeadlineMs: this.#opts.closeDeadlineMs ?? 30_000,
      memoryBudget: this.#opts.memoryBudget,
      slot: p.slot,
      onGone: (c) => this.#live.delete(c),
    });
    this.#live.add(conn);
    this.#expires.set(conn, notAfter.getTime());
  }

  /**
   * An authenticated peer over its share: audited, then told why in Dask's own
   * framing (dask-refusal.ts), so its Python raises with the reason. Not a
   * failed handshake: the rate limiter is for unauthenticated peers.
   */
  #refuseOverShare(p: Pending, s: TLSSocket, over: ShareRefusal): void {
    this.#settle(p);
    this.#ctx.metrics.handshakeSeconds.observe({ port: '8786' }, (performance.now() - p.startedAt) / 1000);
    this.#audit.refused(p.facts, over.reason, over.detail);
    void refuseDaskPeer(s, {
      text: `scheduler-gateway refused this connection (${over.reason}): ${over.detail}`,
      timeoutMs: Math.min(REFUSAL_ANSWER_MS, this.#opts.handshakeTimeoutMs),
    });
  }

  #settle(p: Pending): void {
    p.settled = true;
    clearTimeout(p.timer);
    if (this.#pending.get(p.facts.peer) === p) this.#pending.delete(p.facts.peer);
  }

  #refuse(p: Pending, reason: string, detail?: string): void {
    if (p.settled) return;
    this.#settle(p);
    if (reason !== 'upstream_unavailable') this.#admission.failed(p.raw.remoteAddress ?? p.facts.peer.replace(/:\d+$/, ''));
    this.#ctx.metrics.handshakeSeconds.observe({ port: '8786' }, (performance.now() - p.startedAt) / 1000);
    this.#audit.refused(p.facts, reason, detail);
    // Destroy exactly one of the raw socket and the TLSSocket wrapping its
    // handle: destroying both in one tick crashes Node 20 (SIGSEGV). The
    // raw socket's close destroys the TLSSocket.
    p.raw.destroy();
  }

  /** Judged on ctx.now(), so an injected or jumped clock applies too. */
  #cutExpired(): void {
    const now = this.#ctx.now().getTime();
    for (const c of [...this.#live]) if ((this.#expires.get(c) ?? Infinity) <= now) c.cut('expired');
  }

  #flushBytes(): void {
    for (const c of this.#live) c.flushBytes();
  }

  async drain(deadlineMs: number): Promise<void> {
    this.#draining = true;
    this.#front.close();
    const until = Date.now() + deadlineMs;
    while (this.#held > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    for (const c of [...this.#live]) c.cut('drain');
    for (const p of [...this.#pending.values()]) this.#refuse(p, 'draining');
  }

  /** Idempotent: drain and close race on SIGTERM during shutdown; the first call wins. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      await this.drain(0);
      this.#stopTrust();
      clearInterval(this.#tick);
      clearInterval(this.#expiryTick);
      const deadline = Date.now() + 2_000;
      while (this.#held > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      this.#coalescer.close();
      this.#ctx.log.info('terminator_closed', { remaining: this.#held });
    })();
    return this.#closed;
  }
}
