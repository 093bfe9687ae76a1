/**
 * Gathers what a batch holds: the gateway's own samples (read from its
 * registry's structures, registry-samples.ts) and the latest scrape of the
 * scheduler's /metrics (text from another process, through the strict
 * parser), both passed through the same privacy filter. The sender and
 * `telemetry preview` both call collect() and encodeBatch(), so the preview
 * is the batch.
 */
import { gzipSync } from 'node:zlib';
import type { Logger } from '../log/logger.js';
import { isGatewayError } from '../errors/base.js';
import type { GatewayMetrics } from '../runtime/metrics.js';
import type { Allowlist, Source } from './allowlist.js';
import { parsePrometheusText, type Sample } from './prom-parse.js';
import { filterSamples, type ShippedSample } from './privacy.js';
import { scrapeText } from './scrape.js';
import type { BatchMessage } from './protocol.js';

export interface CollectorOptions {
  /** The gateway's own samples (its registry, or a running gateway's endpoint parsed). */
  readonly gatewaySamples: () => Promise<readonly Sample[]>;
  readonly schedulerUrl: URL | undefined;
  readonly scrapeIntervalMs: number;
  readonly scrapeTimeoutMs: number;
  readonly scrapeMaxBytes: number;
  readonly allowlist: Allowlist;
  readonly hashKey: Buffer | undefined;
  readonly metrics: Pick<GatewayMetrics, 'scrapeErrorsTotal'>;
  readonly log: Logger;
  readonly now: () => Date;
}

export interface Collected {
  readonly samples: ShippedSample[];
  readonly scheduler: BatchMessage['scheduler'];
}

interface Scraped {
  readonly at: number;
  readonly samples?: readonly Sample[];
  readonly error?: string;
}

export class Collector {
  readonly #o: CollectorOptions;
  #latest: Scraped | undefined;
  #timer: NodeJS.Timeout | undefined;
  #inflight: Promise<void> | undefined;

  constructor(o: CollectorOptions) {
    this.#o = o;
  }

  start(): void {
    if (!this.#o.schedulerUrl) return;
    void this.scrapeOnce();
    this.#timer = setInterval(() => void this.scrapeOnce(), this.#o.scrapeIntervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One scrape; failures are logged and counted, never thrown. Overlapping calls share one request. */
  scrapeOnce(): Promise<void> {
    this.#inflight ??= this.#scrape().finally(() => (this.#inflight = undefined));
    return this.#inflight;
  }

  async #scrape(): Promise<void> {
    const url = this.#o.schedulerUrl;
    if (!url) return;
    try {
      const text = await scrapeText(url, { timeoutMs: this.#o.scrapeTimeoutMs, maxBytes: this.#o.scrapeMaxBytes });
      const parsed = parsePrometheusText(text, { maxBytes: this.#o.scrapeMaxBytes });
      this.#latest = { at: this.#o.now().getTime(), samples: parsed.samples };
    } catch (e) {
      const problem = isGatewayError(e) ? e.message : String(e);
      this.#o.metrics.scrapeErrorsTotal.inc();
      this.#o.log.warn('telemetry_scrape_failed', { url: url.href, problem, code: isGatewayError(e) ? e.code : undefined });
      this.#latest = { at: this.#o.now().getTime(), error: isGatewayError(e) ? e.code : 'error' };
    }
  }

  /** The samples of the next batch. A scrape older than two intervals counts as failed. */
  async collect(): Promise<Collected> {
    const samples = this.#filter('gateway', await this.#o.gatewaySamples());
    if (!this.#o.schedulerUrl) return { samples, scheduler: { ok: false, error: 'not configured' } };
    const latest = this.#latest;
    const fresh = latest && this.#o.now().getTime() - latest.at <= 2 * this.#o.scrapeIntervalMs;
    if (!latest || !fresh) return { samples, scheduler: { ok: false, error: latest ? 'stale' : 'not scraped yet' } };
    if (!latest.samples) return { samples, scheduler: { ok: false, error: latest.error ?? 'error' } };
    return { samples: [...this.#filter('scheduler', latest.samples), ...samples], scheduler: { ok: true } };
  }

  #filter(source: Source, samples: readonly Sample[]): ShippedSample[] {
    return filterSamples(source, samples, { allowlist: this.#o.allowlist, hashKey: this.#o.hashKey });
  }
}

export function batchMessage(cluster: string, seq: number, created: Date, c: Collected): BatchMessage {
  return { type: 'batch', v: 1, cluster, seq, created: created.toISOString(), scheduler: c.scheduler, samples: c.samples };
}

/** The bytes that are spooled and sent: JSON text, or its gzip (sent as a binary frame). */
export function encodeBatch(msg: BatchMessage, gzip: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(msg));
  return gzip ? gzipSync(json) : json;
}
