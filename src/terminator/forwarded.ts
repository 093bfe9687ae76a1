/**
 * One authenticated, forwarding connection: registered as a live session by
 * certificate serial so a revocation can cut it, counted in the gauges, its
 * bytes read from the socket counters (never per chunk), and one line
 * written when it ends.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { GatewayContext } from '../runtime/context.js';
import type { LiveSession } from '../runtime/sessions.js';
import type { ConnectionAudit, ConnectionFacts } from './audit.js';
import type { Denial, InspectorFactory, PeerInfo } from './inspector.js';
import { pipeBoth } from './pipe.js';
import type { BudgetAccount, MemoryBudget } from '../limits/memory-budget.js';
import { FirstOp, type ConnectionKind } from './first-op.js';
import type { Slot } from './fair-shares.js';
import type { Reclaimable } from './admission.js';
import { peerCertificateDer } from '../pki/peer-certificate.js';

type CutReason = 'revoked' | 'expired' | 'drain' | 'idle_timeout' | 'policy_denied' | 'memory_budget' | 'fair_share';

export class ForwardedConnection {
  readonly #ctx: GatewayContext;
  readonly #audit: ConnectionAudit;
  readonly #facts: ConnectionFacts;
  readonly #peer: TLSSocket;
  readonly #upstream: Socket;
  readonly #started = Date.now();
  readonly #unregister: () => void;
  readonly #onGone: (c: ForwardedConnection) => void;
  readonly #account: BudgetAccount | undefined;
  /** The fair-shares slot this connection holds (fair-shares.ts). */
  readonly slot: Slot;
  #kind: ConnectionKind | null = null;
  #lastActive = Date.now();
  #cut: CutReason | undefined;
  #denial: Record<string, unknown> | undefined;
  #countedIn = 0;
  #countedOut = 0;

  constructor(args: {
    ctx: GatewayContext;
    audit: ConnectionAudit;
    facts: ConnectionFacts;
    peerInfo: PeerInfo;
    peer: TLSSocket;
    upstream: Socket;
    inspector: InspectorFactory | undefined;
    idleTimeoutMs: number;
    closeDeadlineMs: number;
    memoryBudget: MemoryBudget | undefined;
    slot: Slot;
    onGone: (c: ForwardedConnection) => void;
  }) {
    this.slot = args.slot;
    this.#ctx = args.ctx;
    this.#audit = args.audit;
    this.#facts = args.facts;
    this.#peer = args.peer;
    this.#upstream = args.upstream;
    this.#onGone = args.onGone;
    const session: LiveSession = { kind: 'dask', serial: args.peerInfo.serial, peerCertificate: () => peerCertificateDer(this.#peer), close: (reason) => this.cut(reason) };
    this.#unregister = this.#ctx.sessions.add(session);
    this.#ctx.metrics.connectionsActive.inc({ port: '8786', role: this.#facts.role ?? 'unknown' });
    const hooks = { refused: (d: Denial) => this.#refused(d) };
    let account: BudgetAccount | undefined;
    const pipe = pipeBoth(this.#peer, this.#upstream, args.inspector?.(args.peerInfo, hooks), args.closeDeadlineMs, {
      onDenied: (d, direction) => {
        this.#cut ??= 'policy_denied';
        this.#denial = { code: d.code, denial: d.reason, direction, ...(d.op ? { op: d.op } : {}), ...(d.rule ? { rule: d.rule } : {}), ...(d.detail ? { detail: d.detail } : {}) };
        this.#countDenial(d);
      },
      onClosed: (why) => this.#finish(why),
      onFlow: () => account?.set(pipe.heldBytes),
    });
    account = this.#account = args.memoryBudget?.account({
      pause: () => pipe.hold(true),
      resume: () => pipe.hold(false),
      evict: () => this.cut('memory_budget'),
    });
    this.#watch(args.idleTimeoutMs);
  }

  /**
   * Activity and kind, from the peer's bytes: the idle timeout closes quiet
   * request connections (Dask's pools notice and reconnect), never a stream:
   * a worker's stream is silent while its cluster is idle, and a worker whose
   * stream is cut exits (first-op.ts). The same facts make a connection
   * reclaimable for a fair share (fair-shares.ts chooseVictim).
   */
  #watch(idleTimeoutMs: number): void {
    const peer = this.#peer;
    if (idleTimeoutMs > 0) peer.setTimeout(idleTimeoutMs, () => this.cut('idle_timeout'));
    const first = new FirstOp();
    const onData = (chunk: Buffer) => {
      this.#lastActive = Date.now();
      if (this.#kind !== null) return;
      this.#kind = first.push(chunk);
      if (this.#kind === 'stream') peer.setTimeout(0);
    };
    peer.on('data', onData);
    this.#upstream.on('data', () => { this.#lastActive = Date.now(); });
  }

  /** What the reclaim rule (admission.ts, fair-shares.ts) needs to pick a connection to close for a newcomer. */
  reclaimable(now: number): Reclaimable {
    return {
      slot: this.slot,
      identity: this.slot.identity ?? '',
      cls: this.slot.live ?? 'client',
      reclaimable: this.#kind !== 'stream' && this.#cut === undefined,
      idleMs: now - this.#lastActive,
      cut: (detail) => this.cut('fair_share', { ...detail }),
    };
  }

  /** A request refused and answered in Dask's words; the connection goes on. */
  #refused(d: Denial): void {
    this.#countDenial(d);
    this.#audit.requestRefused(this.#facts, d);
  }

  #countDenial(d: Denial): void {
    this.#ctx.metrics.policyDenialsTotal.inc({ role: this.#facts.role ?? 'unknown', op: d.op ?? 'unknown', rule: d.rule ?? d.reason });
  }

  get serial(): string | undefined {
    return this.#facts.serial;
  }

  /** Closes both sides now; the reason (and any detail) lands in the audit line. */
  cut(reason: CutReason | 'drain', detail?: Record<string, unknown>): void {
    if (this.#cut === undefined && detail) this.#denial = detail;
    this.#cut ??= reason;
    if (reason === 'revoked' || reason === 'expired') this.#ctx.metrics.revocationsAppliedTotal.inc({ kind: 'certificate' });
    this.#peer.destroy();
    this.#upstream.destroy();
  }

  /** Adds the bytes moved since the last call to the counters (called on a coarse tick and at the end). */
  flushBytes(): void {
    const inNow = this.#upstream.bytesWritten;
    const outNow = this.#upstream.bytesRead;
    if (inNow > this.#countedIn) this.#ctx.metrics.bytesTotal.inc({ port: '8786', direction: 'in' }, inNow - this.#countedIn);
    if (outNow > this.#countedOut) this.#ctx.metrics.bytesTotal.inc({ port: '8786', direction: 'out' }, outNow - this.#countedOut);
    this.#countedIn = inNow;
    this.#countedOut = outNow;
  }

  #finish(why: string): void {
    this.#account?.close();
    this.#unregister();
    this.flushBytes();
    this.#ctx.metrics.connectionsActive.dec({ port: '8786', role: this.#facts.role ?? 'unknown' });
    this.#audit.closed(this.#facts, this.#cut ?? why, {
      bytesIn: this.#upstream.bytesWritten,
      bytesOut: this.#upstream.bytesRead,
      durationMs: Date.now() - this.#started,
    }, { kind: this.#kind ?? 'unknown', ...this.#denial });
    this.#onGone(this);
  }
}
