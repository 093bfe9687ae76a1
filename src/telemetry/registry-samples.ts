/**
 * The gateway's own samples, read from prom-client's registry as structures
 * (getMetricsAsJSON) instead of rendered to text and parsed back: the
 * registry is this process's own, so there is no text to distrust. Each
 * sample has the shape prom-parse.ts gives the scheduler's text (family,
 * series name, type, string labels in a prototype-less object), so both
 * sources pass through the same privacy filter unchanged.
 */
import type { MetricsReader } from '../runtime/metrics.js';
import type { MetricType, Sample } from './prom-parse.js';

/** prom-client's types declare a numeric enum; at run time `type` is the text-format word. */
const TYPES: readonly string[] = ['counter', 'gauge', 'histogram', 'summary'];

export async function registrySamples(reader: MetricsReader): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const family of await reader.getMetricsAsJSON()) {
    const type = String(family.type);
    if (!TYPES.includes(type)) throw new Error(`prom-client metric ${family.name} has unknown type ${type}`);
    for (const v of family.values as { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[]) {
      // The text format writes every label value with String(): `le` buckets and nodejs_version_info's numbers included.
      const labels = Object.create(null) as Record<string, string>;
      for (const [k, value] of Object.entries(v.labels)) labels[k] = String(value);
      out.push({ family: family.name, name: v.metricName ?? family.name, type: type as MetricType, labels, value: v.value });
    }
  }
  return out;
}
