/**
 * Per-source-IP token bucket for failed TLS handshakes: each failure takes a
 * token, tokens refill at a steady rate, and an address with an empty bucket
 * is refused before any TLS work. The table is bounded so a scan from many
 * addresses cannot grow memory without limit. Pure apart from the clock.
 */

export interface RateLimiterOptions {
  /** Failed handshakes allowed per minute per address (also the burst). */
  readonly perMinute: number;
  /** Most addresses tracked at once. */
  readonly maxAddresses?: number;
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class FailedHandshakeLimiter {
  readonly #capacity: number;
  readonly #refillPerMs: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(opts: RateLimiterOptions) {
    this.#capacity = Math.max(1, opts.perMinute);
    this.#refillPerMs = this.#capacity / 60_000;
    this.#max = opts.maxAddresses ?? 10_000;
    this.#now = opts.now ?? Date.now;
  }

  /** True when this address has used up its failures and must be refused now. */
  isLimited(address: string): boolean {
    const b = this.#buckets.get(address);
    if (!b) return false;
    this.#refill(b);
    return b.tokens < 1;
  }

  /** Records one failed handshake from this address. */
  recordFailure(address: string): void {
    let b = this.#buckets.get(address);
    if (!b) {
      if (this.#buckets.size >= this.#max) this.#evict();
      b = { tokens: this.#capacity, at: this.#now() };
      this.#buckets.set(address, b);
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

  // Full buckets carry no information; drop them first, then the oldest entries.
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
