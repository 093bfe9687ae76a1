/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff and Jitter"): the n-th retry waits a uniformly random time in
 * [0, min(cap, base * 2^n)]. Full jitter spreads a fleet of gateways that lost
 * the control plane at the same moment, so they do not return in lockstep.
 */
export interface BackoffOptions {
  readonly baseMs: number;
  readonly capMs: number;
  /** Injected for tests; Math.random otherwise. */
  readonly random?: () => number;
}

export class Backoff {
  readonly #o: BackoffOptions;
  #attempt = 0;

  constructor(o: BackoffOptions) {
    if (!(o.baseMs > 0) || !(o.capMs >= o.baseMs)) throw new RangeError('backoff needs 0 < baseMs <= capMs');
    this.#o = o;
  }

  /** The delay before the next attempt; each call counts one failure. */
  next(): number {
    const ceiling = Math.min(this.#o.capMs, this.#o.baseMs * 2 ** Math.min(this.#attempt, 52));
    this.#attempt++;
    return Math.floor((this.#o.random ?? Math.random)() * ceiling);
  }

  /** A success: the next failure starts from the base again. */
  reset(): void {
    this.#attempt = 0;
  }

  get attempts(): number {
    return this.#attempt;
  }
}
