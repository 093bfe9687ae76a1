/**
 * Failures per source address, as a token bucket: each failure takes a
 * token, tokens refill steadily (`failures` per `perMs`, which is also the
 * burst), and an address with an empty bucket is refused before any work is
 * done for it. One limiter for failed TLS handshakes on 8786 and failed
 * logins on 8787. The table is bounded, so a scan from many addresses cannot
 * grow memory without limit. Addresses are keyed as every per-address limit
 * keys them (source-counts.ts): an IPv6 peer by its /64, or rotating through
 * its own /64 would reset its budget. Pure apart from the clock.
 */
import { sourceOf } from './source-counts.js';

export interface FailureLimiterOptions {
  /** Failures allowed per address in `perMs` (also the burst). */
  readonly failures: number;
  readonly perMs: number;
  /** Most addresses tracked at once. */
  readonly maxTracked?: number;
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FailureLimiter {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: FailureLimiterOptions) {
    this.#capacity = Math.max(1, opts.failures);
    this.#refillPerMs = this.#capacity / opts.perMs;
    this.#max = opts.maxTracked ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** True while this address has used up its failures and must be refused now. */
  blocked(address: string): boolean {
    const b = this.#buckets.get(sourceOf(address));
    if (!b) return false;
    this.#refill(b);
    return b.tokens < 1;
  }

  /** Records one failure from this address. */
  fail(address: string): void {
    const key = sourceOf(address);
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.#max) this.#evict();
      b = { tokens: this.#capacity, at: this.#now() };
      this.#buckets.set(key, b);
    } else {
      this.#refill(b);
    }
    b.tokens = Math.max(0, b.tokens - 1);
  }

  get size(): number {
    return this.#buckets.size;
  }

  #refill(b: Bucket): void {
    const t = this.#now();
    b.tokens = Math.min(this.#capacity, b.tokens + (t - b.at) * this.#refillPerMs);
    b.at = t;
  }

  // Full buckets carry no information: drop them first, then the oldest entries
  // (an attacker spraying addresses loses their own counters before anyone else's).
  #evict(): void {
    for (const [k, b] of this.#buckets) {
      this.#refill(b);
      if (b.tokens >= this.#capacity) this.#buckets.delete(k);
    }
    const excess = this.#buckets.size - Math.floor(this.#max * 0.9);
    if (excess <= 0) return;
    let i = 0;
    for (const k of this.#buckets.keys()) {
      if (i++ >= excess) break;
      this.#buckets.delete(k);
    }
  }
}
