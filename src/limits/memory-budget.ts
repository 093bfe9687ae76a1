/**
 * One budget for the bytes the gateway holds on behalf of its peers, across
 * every connection: a partial frame 0 in the wire parser, decrypted TLS data
 * not yet forwarded, writes queued toward a slow scheduler or peer. Each
 * connection reports what it holds now (`account.set`); the budget never
 * allocates or frees anything itself.
 *
 * When the total passes the limit the budget is exhausted: every holder of
 * at least `smallHoldBytes` is paused (stops reading; its peer's bytes wait in
 * the kernel and TCP flow control slows the sender), until the total falls
 * below `resumeFraction` of the limit. Small holders (a length field, a small
 * message straddling two reads) keep going, so ordinary traffic is not
 * stopped behind a few large senders; that slack is bounded by the
 * connection cap times `smallHoldBytes`. If the budget stays exhausted for
 * `stallMs`, paused holders are waiting on each other: the largest are
 * evicted (closed by their owner) until the total is under the resume level.
 */

export interface BudgetHolder {
  /** Stop reading from the peer(s) whose bytes this holder buffers. */
  pause(): void;
  resume(): void;
  /** Close the connection to free what it holds (after a stall). */
  evict(): void;
}

export interface MemoryBudgetOptions {
  readonly limitBytes: number;
  readonly resumeFraction?: number;
  readonly smallHoldBytes?: number;
  readonly stallMs?: number;
  /** Called whenever use or the number of paused holders changes (metrics). */
  readonly onChange?: (used: number, paused: number) => void;
  readonly onEvict?: (held: number) => void;
}

export class MemoryBudget {
  readonly limit: number;
  readonly #resumeBelow: number;
  readonly #small: number;
  readonly #stallMs: number;
  readonly #o: MemoryBudgetOptions;
  readonly #accounts = new Set<BudgetAccount>();
  #used = 0;
  #paused = 0;
  #exhausted = false;
  #stall: NodeJS.Timeout | undefined;

  constructor(o: MemoryBudgetOptions) {
    this.#o = o;
    this.limit = o.limitBytes;
    this.#resumeBelow = Math.floor(o.limitBytes * (o.resumeFraction ?? 0.75));
    this.#small = o.smallHoldBytes ?? 64 * 1024;
    this.#stallMs = o.stallMs ?? 10_000;
  }

  get used(): number {
    return this.#used;
  }

  get exhausted(): boolean {
    return this.#exhausted;
  }

  get paused(): number {
    return this.#paused;
  }

  account(holder: BudgetHolder): BudgetAccount {
    const a = new BudgetAccount(this, holder);
    this.#accounts.add(a);
    return a;
  }

  /** @internal BudgetAccount reports its change here. */
  change(a: BudgetAccount, delta: number): void {
    this.#used += delta;
    if (!this.#exhausted && this.#used > this.limit) this.#exhaust();
    else if (this.#exhausted && this.#used < this.#resumeBelow) this.#relieve();
    else if (this.#exhausted && a.held >= this.#small) this.#pause(a);
    this.#o.onChange?.(this.#used, this.#paused);
  }

  /** @internal */
  forget(a: BudgetAccount): void {
    if (!this.#accounts.delete(a)) return;
    if (a.paused) this.#paused--;
    a.paused = false;
    const held = a.held;
    a.held = 0;
    this.change(a, -held);
  }

  #exhaust(): void {
    this.#exhausted = true;
    for (const a of this.#accounts) if (a.held >= this.#small) this.#pause(a);
    this.#stall = setTimeout(() => this.#evictLargest(), this.#stallMs).unref();
  }

  #relieve(): void {
    this.#exhausted = false;
    clearTimeout(this.#stall);
    for (const a of this.#accounts) {
      if (!a.paused) continue;
      a.paused = false;
      this.#paused--;
      a.holder.resume();
    }
  }

  #pause(a: BudgetAccount): void {
    if (a.paused) return;
    a.paused = true;
    this.#paused++;
    a.holder.pause();
  }

  #evictLargest(): void {
    if (!this.#exhausted) return;
    const largest = [...this.#accounts].sort((x, y) => y.held - x.held);
    let projected = this.#used;
    for (const a of largest) {
      if (projected < this.#resumeBelow || a.held === 0) break;
      projected -= a.held;
      this.#o.onEvict?.(a.held);
      a.holder.evict();
    }
    if (this.#exhausted) this.#stall = setTimeout(() => this.#evictLargest(), this.#stallMs).unref();
  }
}

/** One connection's share of the budget. */
export class BudgetAccount {
  readonly #budget: MemoryBudget;
  readonly holder: BudgetHolder;
  held = 0;
  paused = false;
  #closed = false;

  constructor(budget: MemoryBudget, holder: BudgetHolder) {
    this.#budget = budget;
    this.holder = holder;
  }

  /** What this connection holds now, in bytes. */
  set(bytes: number): void {
    if (this.#closed || bytes === this.held) return;
    const delta = bytes - this.held;
    this.held = bytes;
    this.#budget.change(this, delta);
  }

  /** The connection is gone: what it held is returned. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.forget(this);
  }
}
