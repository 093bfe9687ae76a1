/**
 * The everyday work of a Dask client on a two-worker cluster, as Python lines
 * to put after clientPrelude() and the checks of what they report: tasks,
 * scatter + gather byte-exact, a transfer from one worker to the other, and
 * get_client() inside a task. The lines leave `workout` (a dict, JSON-ready)
 * and `ws` (the sorted worker addresses) in scope.
 */
import type { Test } from 'tap';

export interface WorkoutSize {
  readonly tasks: number;
  readonly mib: number;
}

export function workoutPython(o: WorkoutSize): string {
  return `import time
c.wait_for_workers(2, timeout=60)
total = sum(c.gather(c.map(lambda x: x * 2, range(${o.tasks}), pure=False)))
payload = os.urandom(${o.mib} * 1024 * 1024)
[fut] = c.scatter([payload])
back = c.gather(fut)
ws = sorted(c.scheduler_info()["workers"])
a = c.submit(lambda: os.urandom(1_000_000), workers=[ws[0]], pure=False)
b = c.submit(lambda blob: hashlib.sha256(blob).hexdigest(), a, workers=[ws[1]])
moved = b.result() == hashlib.sha256(a.result()).hexdigest()
# The scheduler hears of the copy on the second worker by a message of its own: poll, bounded.
for _ in range(100):
    holders = sorted(c.who_has(a)[a.key])
    if len(holders) == 2:
        break
    time.sleep(0.1)
def inner(n):
    from distributed import get_client
    cl = get_client()
    return [cl.submit(lambda v: v + 1, n, pure=False).result(), cl.scheduler.address]
nested = c.submit(inner, 41, pure=False).result()
workout = {"total": total, "sent": hashlib.sha256(payload).hexdigest(), "received": hashlib.sha256(back).hexdigest(),
  "size": len(back), "workers": ws, "moved": moved, "holders": holders, "nested": nested}`;
}

export function checkWorkout(t: Test, out: Record<string, unknown>, o: WorkoutSize & { readonly gatewayAddress: string }): void {
  t.equal(out.total, o.tasks * (o.tasks - 1), `${o.tasks} tasks computed`);
  t.equal(out.size, o.mib * 1024 * 1024, `${o.mib} MiB came back`);
  t.equal(out.received, out.sent, 'scatter + gather is byte-exact (sha256)');
  t.equal(out.moved, true, 'a task on the second worker read data produced on the first');
  t.same(out.holders, out.workers, 'both workers hold the transferred key');
  t.same(out.nested, [42, o.gatewayAddress], 'get_client() inside a task connects through the gateway');
}
