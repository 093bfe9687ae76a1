/**
 * The privacy filter: the only gate between parsed samples and a batch.
 * Pure: samples and an allowlist in, shippable samples out, no I/O.
 *
 * A sample leaves only if its family is allowlisted for its source. Its
 * labels leave only if the family's rule names them; the structural `le`
 * (histogram bucket) and `quantile` (summary) labels are kept. Any other label
 * is dropped, and samples that then share a series are combined with the
 * family's aggregate (sum, min, max); or, when hashing is configured, its value
 * is replaced by a truncated HMAC-SHA256 under a per-cluster key so series can
 * be told apart without revealing what they are.
 */
import { createHmac } from 'node:crypto';
import type { Allowlist, Aggregate, Source } from './allowlist.js';
import type { MetricType, Sample } from './prom-parse.js';
import { seriesKey } from './prom-parse.js';

export interface ShippedSample {
  readonly source: Source;
  readonly name: string;
  readonly type: MetricType;
  readonly labels: Record<string, string>;
  /** JSON has no NaN or infinities: those travel as the strings "NaN", "+Inf", "-Inf". */
  readonly value: number | 'NaN' | '+Inf' | '-Inf';
}

export interface PrivacyOptions {
  readonly allowlist: Allowlist;
  /** When set, non-allowlisted labels are replaced by a keyed hash instead of dropped. */
  readonly hashKey?: Buffer | undefined;
}

const STRUCTURAL_LABELS: Partial<Record<MetricType, string>> = { histogram: 'le', summary: 'quantile' };
/** 64 bits: enough to tell series apart, short enough to be no identifier in itself. */
const HASH_HEX_CHARS = 16;

export function hashLabelValue(key: Buffer, value: string): string {
  return 'h:' + createHmac('sha256', key).update('scheduler-gateway label v1\0').update(value).digest('hex').slice(0, HASH_HEX_CHARS);
}

export function filterSamples(source: Source, samples: readonly Sample[], opts: PrivacyOptions): ShippedSample[] {
  const rules = opts.allowlist[source];
  const series = new Map<string, { sample: Omit<ShippedSample, 'value'>; value: number; aggregate: Aggregate }>();
  for (const s of samples) {
    const rule = rules.get(s.family);
    if (!rule) continue;
    // `_created` samples are timestamps of counter creation: never aggregatable, never needed.
    if (s.name !== s.family && s.name.endsWith('_created')) continue;
    const labels: Record<string, string> = {};
    const structural = STRUCTURAL_LABELS[s.type];
    for (const [k, v] of Object.entries(s.labels)) {
      if (rule.labels.includes(k) || k === structural) labels[k] = v;
      else if (opts.hashKey) labels[k] = hashLabelValue(opts.hashKey, v);
    }
    const key = seriesKey(s.name, labels);
    const prev = series.get(key);
    if (!prev) series.set(key, { sample: { source, name: s.name, type: s.type, labels }, value: s.value, aggregate: rule.aggregate });
    else prev.value = combine(prev.aggregate, prev.value, s.value);
  }
  const out: ShippedSample[] = [];
  for (const [, e] of [...series.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    out.push({ ...e.sample, value: jsonValue(e.value) });
  }
  return out;
}

function combine(agg: Aggregate, a: number, b: number): number {
  if (agg === 'min') return Math.min(a, b);
  if (agg === 'max') return Math.max(a, b);
  return a + b;
}

function jsonValue(v: number): ShippedSample['value'] {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return v;
}
