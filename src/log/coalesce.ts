/**
 * Bounded audit logging of refusals under attack. The first refusal of each
 * (source, reason, subject) is written in full, the subject being the
 * certificate or token the peer presented, if any; repeats are counted and
 * written as one `refusals_coalesced` summary line per key and interval, so
 * one address hammering a port costs one line per reason and interval
 * instead of one per attempt, while every distinct reason and every distinct
 * credential still reaches the audit trail.
 *
 * Bounded on every axis: at most `maxNewPerInterval` first lines and
 * `maxSummaries` summary lines per interval and per port, at most `maxKeys`
 * keys in memory; what does not fit is counted under source "*". A key
 * quiet for a whole interval is forgotten, so its next refusal is written in
 * full again. Refusal metrics are counted by the callers, never coalesced.
 */
import type { Logger } from './logger.js';

export interface CoalesceOptions {
  /** The port label of the summary lines (8786, 8787, credentials). */
  readonly port: string;
  readonly intervalMs?: number;
  readonly maxKeys?: number;
  readonly maxNewPerInterval?: number;
  readonly maxSummaries?: number;
  /** Counts each refusal whose line was not written in full. */
  readonly onCoalesced?: () => void;
}

interface Entry {
  readonly source: string;
  readonly reason: string;
  readonly subject: string | undefined;
  count: number;
  active: boolean;
}

const AGGREGATE = '*';

export class RefusalCoalescer {
  readonly #log: Logger;
  readonly #o: Required<Omit<CoalesceOptions, 'onCoalesced'>> & Pick<CoalesceOptions, 'onCoalesced'>;
  readonly #keys = new Map<string, Entry>();
  readonly #timer: NodeJS.Timeout;
  #newThisInterval = 0;

  constructor(log: Logger, o: CoalesceOptions) {
    this.#log = log;
    this.#o = { intervalMs: 10_000, maxKeys: 10_000, maxNewPerInterval: 100, maxSummaries: 100, ...o };
    this.#timer = setInterval(() => this.flush(), this.#o.intervalMs).unref();
  }

  /** True when this refusal's line is to be written in full; false when it was counted for the next summary. */
  admit(source: string | undefined, reason: string, subject?: string): boolean {
    const src = source ?? 'unknown';
    const known = this.#keys.get(keyOf(src, reason, subject));
    if (known) return this.#count(known);
    if (this.#newThisInterval >= this.#o.maxNewPerInterval || this.#keys.size >= this.#o.maxKeys) {
      return this.#count(this.#entry(AGGREGATE, reason, undefined));
    }
    this.#newThisInterval++;
    this.#entry(src, reason, subject).active = true;
    return true;
  }

  /** Writes the summaries of the interval that ends now (called by the timer, and by close()). */
  flush(): void {
    this.#newThisInterval = 0;
    const due: Entry[] = [];
    for (const [k, e] of this.#keys) {
      if (e.count > 0) due.push(e);
      else if (!e.active) this.#keys.delete(k);
      e.active = false;
    }
    due.sort((a, b) => b.count - a.count);
    for (const e of due.slice(0, this.#o.maxSummaries)) this.#summary(e);
    const rest = due.slice(this.#o.maxSummaries);
    if (rest.length > 0) {
      this.#log.audit('refusals_coalesced', { port: this.#o.port, source: AGGREGATE, reason: 'various', count: rest.reduce((n, e) => n + e.count, 0), sources: rest.length, interval_ms: this.#o.intervalMs });
    }
    for (const e of due) e.count = 0;
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }

  #entry(source: string, reason: string, subject: string | undefined): Entry {
    const k = keyOf(source, reason, subject);
    let e = this.#keys.get(k);
    if (!e) this.#keys.set(k, (e = { source, reason, subject, count: 0, active: true }));
    return e;
  }

  #count(e: Entry): false {
    e.count++;
    e.active = true;
    this.#o.onCoalesced?.();
    return false;
  }

  #summary(e: Entry): void {
    this.#log.audit('refusals_coalesced', { port: this.#o.port, source: e.source, reason: e.reason, ...(e.subject ? { subject: e.subject } : {}), count: e.count, interval_ms: this.#o.intervalMs });
  }
}

function keyOf(source: string, reason: string, subject: string | undefined): string {
  return `${source}|${reason}|${subject ?? ''}`;
}
