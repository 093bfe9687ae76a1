/** The 8786 memory budget (limits/memory-budget.ts) with its gauges and eviction counter. */
import { MemoryBudget } from '../limits/memory-budget.js';
import type { GatewayMetrics } from './metrics.js';

export function meteredMemoryBudget(limitBytes: number, metrics: GatewayMetrics): MemoryBudget {
  metrics.memoryBudgetLimitBytes.set(limitBytes);
  return new MemoryBudget({
    limitBytes,
    onChange: (used, paused) => {
      metrics.memoryBudgetUsedBytes.set(used);
      metrics.memoryBudgetPausedConnections.set(paused);
    },
    onEvict: () => metrics.memoryBudgetEvictionsTotal.inc(),
  });
}
