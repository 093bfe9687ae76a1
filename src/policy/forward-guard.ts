/**
 * The forward guard, for every role but admin. `Scheduler.broadcast` and
 * `Scheduler.proxy` forward `msg` to the addresses they are given
 * and, unlike most handlers, dial any address without checking it is a
 * worker; so a non-admin one must look like what the Client API sends:
 *   - broadcast: inner op `run` / `run_coroutine` (Client.run), `versions`
 *     (Client.get_versions), `get_story` (Client.story), `restart`
 *     (2022.12's Client.restart_workers); proxy: `actor_execute` / `actor_attribute`
 *     (Actors reached through the scheduler). Code on workers or nannies is
 *     what a client certificate may run anyway, through ordinary tasks;
 *   - targets (broadcast's `workers`, or the workers on `hosts`; proxy's
 *     `worker`) among the workers registered through this gateway, so the
 *     scheduler only dials real workers; broadcast's `nanny: true` reaches
 *     the nannies the scheduler itself recorded for those workers.
 */
import type { OpMap } from '../wire/ops.js';
import { normalizeHost } from './pinning.js';
import type { WorkerDirectory } from './worker-directory.js';

const INNER_OPS: Readonly<Record<string, ReadonlySet<string>>> = {
  broadcast: new Set(['run', 'run_coroutine', 'versions', 'get_story', 'restart']),
  proxy: new Set(['actor_execute', 'actor_attribute']),
};

/** Ops this guard applies to. */
export const FORWARDING_OPS: ReadonlySet<string> = new Set(Object.keys(INNER_OPS));

const quote = (s: string) => JSON.stringify(s.slice(0, 128));

/** Why this broadcast or proxy is refused, or null. */
export function forwardProblem(op: string, m: OpMap, workers: WorkerDirectory): string | null {
  const allowed = INNER_OPS[op];
  if (allowed === undefined) return null;
  if (m.innerOp === undefined || m.innerOp === null || !allowed.has(m.innerOp)) {
    return `forwards op ${JSON.stringify(m.innerOp ?? null)} to workers; only ${[...allowed].join(', ')} are allowed`;
  }
  if (op === 'proxy') {
    if (typeof m.worker !== 'string') return 'worker is not a worker address';
    return workers.hasAddress(m.worker) ? null : `targets ${quote(m.worker)}, which is not a worker registered through this gateway`;
  }
  if (m.workers === null) return 'workers is not a list of worker addresses';
  for (const w of m.workers ?? []) if (!workers.hasAddress(w)) return `targets ${quote(w)}, which is not a worker registered through this gateway`;
  if (m.hosts === null) return 'hosts is not a list of hosts';
  for (const h of m.hosts ?? []) if (!workers.hasHost(normalizeHost(h))) return `targets host ${quote(h)}, which runs no worker registered through this gateway`;
  return null;
}
