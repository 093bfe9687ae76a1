/**
 * Who may take an 8786 slot: the failed-handshake budget per address, the
 * fair shares (fair-shares.ts), and reclaiming an idle slot from the biggest
 * holder when a role's share is full. One implementation of those rules,
 * used where the bookkeeping lives: in the terminator itself with one
 * process, in the primary's broker (dataplane/) with several, where the
 * terminators of the data-plane processes reach it over IPC. Answers are
 * synchronous when nothing needs to be asked of another process, so the
 * one-process mode adds no promise per connection.
 */
import type { GatewayMetrics } from '../runtime/metrics.js';
import type { Role } from '../pki/identity.js';
import { FailureLimiter } from '../limits/failure-limiter.js';
import { FairShares, chooseVictim, isRefusal, type ReclaimCandidate, type ShareLimits, type ShareRefusal, type Slot } from './fair-shares.js';

export type Awaitable<T> = T | Promise<T>;

export interface RateRefusal {
  readonly reason: 'rate_limited' | 'admission_unavailable';
  readonly detail: string;
}

export type AdmissionRefusal = ShareRefusal | RateRefusal;

export interface ReclaimDetail {
  readonly reclaimed_for: string;
  readonly share: string;
}

/** A live connection as the reclaim rule sees it; `cut` closes it for the newcomer. */
export interface Reclaimable extends Omit<ReclaimCandidate<unknown>, 'item'> {
  readonly slot: Slot;
  cut(detail: ReclaimDetail): void;
}

/** The live connections that could give up a slot, wherever they are. */
export type ReclaimSource = () => Awaitable<Iterable<Reclaimable>>;

export interface Admission {
  /** A handshake slot for a new connection from `address`, or why not. */
  admit(address: string): Awaitable<Slot | AdmissionRefusal>;
  /** The authenticated connection becomes live, reclaiming an idle slot if its share is full, or why not. */
  promote(slot: Slot, identity: string, role: Role): Awaitable<ShareRefusal | null>;
  release(slot: Slot): void;
  /** A handshake from `address` failed: spend one of its tokens. */
  failed(address: string): void;
}

export function isAdmissionRefusal(x: Slot | AdmissionRefusal): x is AdmissionRefusal {
  return isRefusal(x as Slot | ShareRefusal);
}

const RECLAIMABLE_SHARES: ReadonlySet<string> = new Set(['client_share_full', 'worker_share_full', 'too_many_connections']);

export interface SharedAdmissionOptions {
  readonly limits: ShareLimits;
  readonly failedHandshakesPerMinute: number;
  readonly metrics: Pick<GatewayMetrics, 'connectionSlots' | 'connectionsReclaimedTotal'>;
  readonly reclaim: ReclaimSource;
}

export class SharedAdmission implements Admission {
  readonly #shares: FairShares;
  readonly #limiter: FailureLimiter;
  readonly #o: SharedAdmissionOptions;

  constructor(o: SharedAdmissionOptions) {
    this.#o = o;
    this.#shares = new FairShares(o.limits);
    this.#limiter = new FailureLimiter({ failures: o.failedHandshakesPerMinute, perMs: 60_000 });
  }

  /** Handshaking plus live. */
  get total(): number {
    return this.#shares.total;
  }

  admit(address: string): Slot | AdmissionRefusal {
    if (this.#limiter.blocked(address)) return { reason: 'rate_limited', detail: `more than ${this.#o.failedHandshakesPerMinute} failed handshakes per minute` };
    // Before any TLS work, so a flood costs the gateway an accept and a close.
    const slot = this.#shares.admit(address);
    if (!isRefusal(slot)) this.#publish();
    return slot;
  }

  promote(slot: Slot, identity: string, role: Role): Awaitable<ShareRefusal | null> {
    // Released while its promotion waited on another process (timed out, peer gone): nothing to promote.
    if (slot.released) return { reason: 'too_many_connections', detail: 'the connection ended before it was admitted' };
    const over = this.#shares.promote(slot, identity, role);
    if (!over || !RECLAIMABLE_SHARES.has(over.reason)) return this.#published(over);
    const live = this.#o.reclaim();
    return live instanceof Promise ? live.then((l) => this.#reclaimFor(slot, identity, role, over, l)) : this.#reclaimFor(slot, identity, role, over, live);
  }

  release(slot: Slot): void {
    if (slot.released) return;
    this.#shares.release(slot);
    this.#publish();
  }

  failed(address: string): void {
    this.#limiter.fail(address);
  }

  #reclaimFor(slot: Slot, identity: string, role: Role, over: ShareRefusal, live: Iterable<Reclaimable>): ShareRefusal | null {
    if (slot.released) return over;
    const cls = role === 'client' ? 'client' : 'cluster';
    const victim = chooseVictim([...live].map((c) => ({ ...c, item: c })), { identity, cls });
    if (!victim || victim.slot.released) return over;
    this.#shares.release(victim.slot); // now, not when its sockets finish closing: the newcomer takes the slot
    victim.cut({ reclaimed_for: identity, share: over.reason });
    this.#o.metrics.connectionsReclaimedTotal.inc({ class: cls });
    return this.#published(this.#shares.promote(slot, identity, role));
  }

  #published<T>(x: T): T {
    this.#publish();
    return x;
  }

  #publish(): void {
    const g = this.#o.metrics.connectionSlots;
    g.set({ state: 'handshaking' }, this.#shares.handshakes);
    g.set({ state: 'client' }, this.#shares.live('client'));
    g.set({ state: 'cluster' }, this.#shares.live('cluster'));
  }
}
