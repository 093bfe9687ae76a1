/**
 * Failed logins per source address in a fixed window. Bounded memory: at most
 * maxTracked addresses; when full, the oldest window is dropped first (an
 * attacker spraying addresses loses their own counters before anyone else's).
 */
export interface FailureLimiterOptions {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly maxTracked?: number;
  readonly now: () => number;
}

export class FailureLimiter {
  readonly #opts: Required<FailureLimiterOptions>;
  readonly #windows = new Map<string, { start: number; failures: number }>();

  constructor(opts: FailureLimiterOptions) {
    this.#opts = { maxTracked: 10_000, ...opts };
  }

  /** True while the address has used up its failures in the current window. */
  blocked(address: string): boolean {
    const w = this.#current(address);
    return w !== undefined && w.failures >= this.#opts.maxFailures;
  }

  fail(address: string): void {
    let w = this.#current(address);
    if (!w) {
      if (this.#windows.size >= this.#opts.maxTracked) this.#windows.delete(this.#windows.keys().next().value as string);
      w = { start: this.#opts.now(), failures: 0 };
      this.#windows.set(address, w);
    }
    w.failures++;
  }

  #current(address: string): { start: number; failures: number } | undefined {
    const w = this.#windows.get(address);
    if (w && this.#opts.now() - w.start >= this.#opts.windowMs) {
      this.#windows.delete(address);
      return undefined;
    }
    return w;
  }
}
