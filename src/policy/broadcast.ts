/**
 * The broadcast guard, for every role but admin. `Scheduler.broadcast`
 * forwards `msg` to the addresses it is given (§4.5) and, unlike most
 * handlers, dials any `workers` entry without checking it is a worker; so a
 * non-admin broadcast must look like what the Client API sends:
 *   - inner op `run` / `run_coroutine` (Client.run) or `versions`
 *     (Client.get_versions): code on workers or nannies is what a client
 *     certificate may run anyway, through ordinary tasks;
 *   - targets (`workers`, or the workers on `hosts`) among the workers
 *     registered through this gateway, so the scheduler only dials real
 *     workers; `nanny: true` reaches the nannies the scheduler itself
 *     recorded for those workers.
 */
import type { OpMap } from '../wire/ops.js';
import { normalizeHost } from './pinning.js';
import type { WorkerDirectory } from './worker-directory.js';

const BROADCAST_OPS: ReadonlySet<string> = new Set(['run', 'run_coroutine', 'versions']);

/** Why this broadcast is refused, or null. */
export function broadcastProblem(m: OpMap, workers: WorkerDirectory): string | null {
  if (m.innerOp === undefined || m.innerOp === null || !BROADCAST_OPS.has(m.innerOp)) {
    return `forwards op ${JSON.stringify(m.innerOp ?? null)} to workers; only ${[...BROADCAST_OPS].join(', ')} are allowed`;
  }
  if (m.workers === null) return 'workers is not a list of worker addresses';
  for (const w of m.workers ?? []) if (!workers.hasAddress(w)) return `targets ${JSON.stringify(w.slice(0, 128))}, which is not a worker registered through this gateway`;
  if (m.hosts === null) return 'hosts is not a list of hosts';
  for (const h of m.hosts ?? []) if (!workers.hasHost(normalizeHost(h))) return `targets host ${JSON.stringify(h.slice(0, 128))}, which runs no worker registered through this gateway`;
  return null;
}
