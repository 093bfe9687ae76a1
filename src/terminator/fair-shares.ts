/**
 * Who may hold which of the 8786 connection slots, so that no certificate,
 * address or role can starve the others. Checked twice per connection:
 *
 *   at accept (address known):   handshakes in flight, overall and per address;
 *                                 slots per address (handshaking + live)
 *   after TLS (identity known):  live connections per certificate identity;
 *                                 the role's share of live slots
 *
 * Of --max-connections N, at most H (--max-handshakes, never above N/4) may be
 * handshaking, and only they: live sessions take at most N - H, so new peers
 * can always start a handshake. Live sessions have a reserve per role class:
 * clients never take the last `reserve-workers` slots, workers and admins
 * never the last `reserve-clients`. So with every client slot and every
 * handshake slot taken, N - (N - H - Rw) - H = Rw slots are still open to
 * workers, and the reverse. When a share is full, chooseVictim lets a
 * certificate with few connections take an idle one from the certificate
 * with the most. Pure bookkeeping: no sockets, no clock.
 */
import { Counts, sourceOf } from '../limits/source-counts.js';
import type { Role } from '../pki/identity.js';

export interface ShareLimits {
  /** Every slot, handshaking ones included (already lowered to what descriptors back). */
  readonly maxConnections: number;
  readonly maxHandshakes: number;
  readonly maxHandshakesPerAddress: number;
  /** Handshaking plus live, from one source address (IPv6: one /64). */
  readonly maxPerAddress: number;
  /** Live sessions of one certificate identity (its SPIFFE URI). */
  readonly maxPerIdentity: number;
  readonly reserveWorkersPercent: number;
  readonly reserveClientsPercent: number;
}

export type ShareRefusalReason =
  | 'too_many_connections'
  | 'too_many_handshakes'
  | 'too_many_handshakes_from_address'
  | 'too_many_connections_from_address'
  | 'too_many_connections_for_identity'
  | 'client_share_full'
  | 'worker_share_full';

export interface ShareRefusal {
  readonly reason: ShareRefusalReason;
  /** Names the limit and its flag; safe to show the refused peer. */
  readonly detail: string;
}

/** One connection's hold on the shares; released exactly once. */
export interface Slot {
  readonly source: string;
  /** The primary's number for it, when the bookkeeping lives in another process (dataplane/). */
  readonly key?: number;
  identity?: string;
  live?: 'client' | 'cluster';
  released?: boolean;
}

/** The caps in force, derived once from the limits. */
export interface ShareCaps {
  readonly handshakes: number;
  /** Live sessions of client certificates, all together. */
  readonly client: number;
  /** Live sessions of worker and admin certificates, all together. */
  readonly cluster: number;
}

export function shareCaps(l: ShareLimits): ShareCaps {
  const n = l.maxConnections;
  const handshakes = Math.max(1, Math.min(l.maxHandshakes, Math.floor(n / 4)));
  const reserve = (pct: number) => Math.floor((n * pct) / 100);
  const live = (otherReserve: number) => Math.max(1, n - handshakes - otherReserve);
  return { handshakes, client: live(reserve(l.reserveWorkersPercent)), cluster: live(reserve(l.reserveClientsPercent)) };
}

export class FairShares {
  readonly #l: ShareLimits;
  readonly caps: ShareCaps;
  readonly #handshakesBySource = new Counts();
  readonly #slotsBySource = new Counts();
  readonly #liveByIdentity = new Counts();
  #handshakes = 0;
  #live = { client: 0, cluster: 0 };

  constructor(limits: ShareLimits) {
    this.#l = limits;
    this.caps = shareCaps(limits);
  }

  /** Handshaking plus live. */
  get total(): number {
    return this.#handshakes + this.#live.client + this.#live.cluster;
  }

  get handshakes(): number {
    return this.#handshakes;
  }

  live(cls: 'client' | 'cluster'): number {
    return this.#live[cls];
  }

  /** A handshake slot for a new connection from `address`, or why not. */
  admit(address: string | undefined): Slot | ShareRefusal {
    const source = sourceOf(address);
    const l = this.#l;
    if (this.total >= l.maxConnections) return refusal('too_many_connections', `all ${l.maxConnections} connection slots are taken (--max-connections)`);
    if (this.#handshakes >= this.caps.handshakes) return refusal('too_many_handshakes', `${this.caps.handshakes} TLS handshakes are already in progress (--max-handshakes)`);
    if (this.#handshakesBySource.get(source) >= l.maxHandshakesPerAddress) {
      return refusal('too_many_handshakes_from_address', `${source} already has ${l.maxHandshakesPerAddress} TLS handshakes in progress (--max-handshakes-per-address)`);
    }
    if (this.#slotsBySource.get(source) >= l.maxPerAddress) {
      return refusal('too_many_connections_from_address', `${source} already holds ${l.maxPerAddress} connections (--max-connections-per-address)`);
    }
    this.#handshakes++;
    this.#handshakesBySource.add(source);
    this.#slotsBySource.add(source);
    return { source };
  }

  /** The authenticated connection becomes a live session of `identity`, or stays a handshake slot and gets a refusal. */
  promote(slot: Slot, identity: string, role: Role): ShareRefusal | null {
    const l = this.#l;
    if (this.#liveByIdentity.get(identity) >= l.maxPerIdentity) {
      return refusal('too_many_connections_for_identity', `${identity} already holds ${l.maxPerIdentity} connections, the most one certificate may hold (--max-connections-per-identity)`);
    }
    const cls = role === 'client' ? 'client' : 'cluster';
    if (this.#live[cls] >= this.caps[cls]) {
      return cls === 'client'
        ? refusal('client_share_full', `client certificates hold all ${this.caps.client} connections they may share; the rest is reserved for workers (--reserve-workers-percent)`)
        : refusal('worker_share_full', `worker and admin certificates hold all ${this.caps.cluster} connections they may share; the rest is reserved for clients (--reserve-clients-percent)`);
    }
    if (this.#live.client + this.#live.cluster >= l.maxConnections - this.caps.handshakes) {
      return refusal('too_many_connections', `all ${l.maxConnections - this.caps.handshakes} slots for live connections are taken (--max-connections less the handshake share)`);
    }
    this.#handshakes--;
    this.#handshakesBySource.remove(slot.source);
    this.#live[cls]++;
    this.#liveByIdentity.add(identity);
    slot.identity = identity;
    slot.live = cls;
    return null;
  }

  release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    this.#slotsBySource.remove(slot.source);
    if (slot.live) {
      this.#live[slot.live]--;
      this.#liveByIdentity.remove(slot.identity!);
    } else {
      this.#handshakes--;
      this.#handshakesBySource.remove(slot.source);
    }
  }
}

function refusal(reason: ShareRefusalReason, detail: string): ShareRefusal {
  return { reason, detail };
}

export function isRefusal(x: Slot | ShareRefusal): x is ShareRefusal {
  return 'reason' in x;
}

export interface ReclaimCandidate<T> {
  readonly item: T;
  readonly identity: string;
  readonly cls: 'client' | 'cluster';
  /** A request connection (never a Dask stream) not already being cut. */
  readonly reclaimable: boolean;
  readonly idleMs: number;
}

/** A connection this quiet can be closed without cutting a request in flight. */
export const RECLAIM_MIN_IDLE_MS = 1_000;

/**
 * When a role's share is full, a newcomer holding few connections takes a
 * slot from the certificate holding the most: that certificate's longest-idle
 * request connection is closed (Dask's pool reconnects when it needs one).
 * Only from a holder with at least two more connections than the newcomer,
 * so slots flow toward an even split and never back and forth; never a Dask
 * stream, never a connection active in the last second. Pure.
 */
export function chooseVictim<T>(live: Iterable<ReclaimCandidate<T>>, newcomer: { identity: string; cls: 'client' | 'cluster' }): T | undefined {
  const byIdentity = new Map<string, Array<ReclaimCandidate<T>>>();
  for (const c of live) {
    if (c.cls !== newcomer.cls) continue;
    let list = byIdentity.get(c.identity);
    if (!list) byIdentity.set(c.identity, (list = []));
    list.push(c);
  }
  const mine = byIdentity.get(newcomer.identity)?.length ?? 0;
  const holders = [...byIdentity.entries()].filter(([id, list]) => id !== newcomer.identity && list.length > mine + 1).sort((a, b) => b[1].length - a[1].length);
  for (const [, list] of holders) {
    const idle = list.filter((c) => c.reclaimable && c.idleMs >= RECLAIM_MIN_IDLE_MS).sort((a, b) => b.idleMs - a.idleMs);
    if (idle.length > 0) return idle[0]!.item;
  }
  return undefined;
}
