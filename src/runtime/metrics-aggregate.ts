/**
 * One reading of the metrics of several processes: this process's registry
 * combined with what its peers sent (their getMetricsAsJSON()), family by
 * family, by prom-client's AggregatorRegistry.aggregate() and each family's
 * `aggregator` (the rule is in metrics.ts). The result is one registry, so
 * the text has each family once, whatever the number of processes.
 *
 * Collecting the peers' metrics, and giving up on a peer that does not
 * answer, is the caller's: `peers` resolves with whatever arrived, possibly
 * nothing, and the reading is then this process's alone.
 */
import { AggregatorRegistry, type PrometheusContentType, type Registry } from 'prom-client';
import type { MetricsReader } from './metrics.js';

/** One process's metrics as structures: what Registry#getMetricsAsJSON() resolves with. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

export function aggregatedReader(local: Registry, peers: () => Promise<ReadonlyArray<MetricsJson>>): MetricsReader {
  // The local registry comes first: a family takes its aggregator from the first process that has it.
  const combined = async () => {
    const [own, others] = await Promise.all([local.getMetricsAsJSON(), peers()]);
    return AggregatorRegistry.aggregate<PrometheusContentType>([own, ...others]);
  };
  return {
    contentType: local.contentType,
    metrics: async () => (await combined()).metrics(),
    getMetricsAsJSON: async () => (await combined()).getMetricsAsJSON(),
  };
}
