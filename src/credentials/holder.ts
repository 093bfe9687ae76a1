/**
 * The current credential set of each provider, in memory only. A newer set
 * replaces the old one whatever its expiration (the source is authoritative:
 * a rotation after a leak must win). An expired set is dropped at its
 * expiration time by a timer, and `lookup` checks the clock again, so an
 * expired value is never handed out even if a timer runs late.
 */
import type { Logger } from '../log/logger.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import { describeSet, type CredentialSet } from './credential.js';

export type Lookup =
  | { readonly state: 'ok'; readonly set: CredentialSet; readonly version: number }
  | { readonly state: 'expired'; readonly expiredAt: Date }
  | { readonly state: 'none' };

export interface HolderOptions {
  readonly log: Logger;
  readonly metrics: Pick<GatewayMetrics, 'credentialsExpirationSeconds'>;
  readonly now: () => Date;
}

type Listener = (set: CredentialSet) => void;

// setTimeout clamps delays above 2^31-1 ms to 1 ms; 36 h fits, but stay safe.
const MAX_TIMER_MS = 2 ** 31 - 1;

export class CredentialHolder {
  readonly #o: HolderOptions;
  readonly #sets = new Map<string, { set: CredentialSet; version: number; timer: NodeJS.Timeout }>();
  readonly #expired = new Map<string, Date>();
  readonly #listeners = new Set<Listener>();
  #version = 0;

  constructor(o: HolderOptions) {
    this.#o = o;
  }

  put(set: CredentialSet): void {
    const old = this.#sets.get(set.provider);
    if (old) clearTimeout(old.timer);
    const version = ++this.#version;
    const timer = setTimeout(() => this.#expire(set.provider, version), Math.min(MAX_TIMER_MS, Math.max(0, set.expiration.getTime() - this.#o.now().getTime()))).unref();
    this.#sets.set(set.provider, { set, version, timer });
    this.#expired.delete(set.provider);
    this.#o.metrics.credentialsExpirationSeconds.set({ provider: set.provider }, set.expiration.getTime() / 1000);
    this.#o.log.info('credentials_updated', { ...describeSet(set), version, replaced: old !== undefined });
    for (const l of this.#listeners) l(set);
  }

  lookup(provider: string): Lookup {
    const held = this.#sets.get(provider);
    if (held && held.set.expiration.getTime() <= this.#o.now().getTime()) this.#expire(provider, held.version);
    const live = this.#sets.get(provider);
    if (live) return { state: 'ok', set: live.set, version: live.version };
    const expiredAt = this.#expired.get(provider);
    return expiredAt ? { state: 'expired', expiredAt } : { state: 'none' };
  }

  /** Every unexpired set, by provider name. */
  all(): CredentialSet[] {
    const out: CredentialSet[] = [];
    for (const provider of [...this.#sets.keys()].sort()) {
      const l = this.lookup(provider);
      if (l.state === 'ok') out.push(l.set);
    }
    return out;
  }

  /** The expiration of a provider's live set (for refresh scheduling), without exposing it. */
  expiration(provider: string): Date | undefined {
    const l = this.lookup(provider);
    return l.state === 'ok' ? l.set.expiration : undefined;
  }

  onUpdate(l: Listener): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  /** Forgets everything (shutdown). */
  clear(): void {
    for (const h of this.#sets.values()) clearTimeout(h.timer);
    this.#sets.clear();
    this.#listeners.clear();
  }

  #expire(provider: string, version: number): void {
    const held = this.#sets.get(provider);
    if (!held || held.version !== version) return;
    clearTimeout(held.timer);
    this.#sets.delete(provider);
    this.#expired.set(provider, held.set.expiration);
    this.#o.log.warn('credentials_expired', { provider, expired_at: held.set.expiration.toISOString(), version, from: held.set.source });
  }
}
