"""Every Client API a data scientist uses, through the gateway, with a client certificate.

Run by test/policy/client-api.test.ts with the interpreter of the Dask version
under test; argv: gateway address, CA, certificate, key, a scratch directory.
Prints one JSON object on its last line: API name -> {"ok": true, "value": ...}
or {"ok": false, "error": "Type: text"} (or "timeout"). Refused calls must
raise with the gateway's words; everything else must work, and the client must
keep working after every refusal (the last probes check that).
"""
import concurrent.futures
import json
import os
import sys
import time

import dask
import distributed
from distributed import Client, Event, Lock, Queue, Semaphore, Variable, fire_and_forget, get_task_stream, performance_report, wait
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.security import Security

address, ca, cert, key, scratch = sys.argv[1:6]
MODERN = not distributed.__version__.startswith("2022.")
sec = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)
c = Client(address, security=sec, timeout=60)
results = {}
pool = concurrent.futures.ThreadPoolExecutor(1)


def probe(name, fn, timeout=90):
    future = pool.submit(fn)
    try:
        value = future.result(timeout=timeout)
        json.dumps(value)
        results[name] = {"ok": True, "value": value}
    except concurrent.futures.TimeoutError:
        results[name] = {"ok": False, "error": "timeout"}
    except Exception as e:
        results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:600]}


def inc(x):
    return x + 1


probe("wait_for_workers", lambda: c.wait_for_workers(2, timeout=60) or len(c.scheduler_info()["workers"]))
probe("submit", lambda: c.submit(inc, 41).result())
probe("map_gather", lambda: sum(c.gather(c.map(inc, range(100)))))


def scatter_numpy():
    import numpy as np

    # A large uncompressed buffer: written by Dask >= 2023.11 with a leading length shorter than the message.
    a = np.arange(2_000_000, dtype="int64")
    [f] = c.scatter([a])
    return [int(c.submit(lambda v: int(v.sum()), f).result()), int(c.gather(f)[-1])]


probe("scatter_numpy", scatter_numpy)


def collections():
    import dask.array as da
    import dask.bag as db

    out = {"array": int(da.ones((1000, 1000), chunks=(250, 250)).sum().compute()), "bag": db.from_sequence(range(10), npartitions=3).map(inc).sum().compute()}
    try:
        import dask.dataframe as dd
        import pandas as pd

        out["dataframe"] = int(dd.from_pandas(pd.DataFrame({"x": range(100)}), npartitions=4).x.sum().compute())
    except ImportError:
        out["dataframe"] = "not installed"
    return out


probe("collections", collections)


def persist():
    import dask.array as da

    x = da.arange(1000, chunks=100).persist()
    wait(x)
    return int(x.sum().compute())


probe("persist", persist)


def fire_and_forget_():
    path = os.path.join(scratch, "ff")

    def touch(p):
        open(p, "w").write("done")

    fire_and_forget(c.submit(touch, path, pure=False))
    for _ in range(300):
        if os.path.exists(path):
            return True
        time.sleep(0.1)
    return False


probe("fire_and_forget", fire_and_forget_)


def datasets():
    c.publish_dataset(mydata=[1, 2, 3])
    got = c.get_dataset("mydata")
    names = list(c.list_datasets())
    c.unpublish_dataset("mydata")
    return [got, names]


probe("publish_dataset", datasets)
probe("get_versions", lambda: sorted(c.get_versions(check=False)["workers"]).__len__())
probe("run", lambda: len(c.run(os.getpid)))
probe("run_nanny", lambda: len(c.run(os.getpid, nanny=True)))


class Plugin(WorkerPlugin):
    name = "probe-plugin"

    def setup(self, worker):
        worker.probe_plugin = "set"


def worker_plugin():
    if hasattr(c, "register_plugin"):
        c.register_plugin(Plugin())
    else:
        c.register_worker_plugin(Plugin())
    return sorted(set(c.run(lambda dask_worker: getattr(dask_worker, "probe_plugin", None)).values()))


probe("register_worker_plugin", worker_plugin)


def nanny_plugin():
    if MODERN:
        from distributed.diagnostics.plugin import NannyPlugin

        class NP(NannyPlugin):
            name = "probe-nanny-plugin"

            def setup(self, nanny):
                nanny.probe_plugin = "nanny"

        c.register_plugin(NP())
    else:
        class NP:
            name = "probe-nanny-plugin"

            def setup(self, nanny):
                nanny.probe_plugin = "nanny"

        c.register_worker_plugin(NP(), nanny=True)
    return sorted(set(c.run(lambda dask_worker: getattr(dask_worker, "probe_plugin", None), nanny=True).values()))


probe("register_nanny_plugin", nanny_plugin)


def upload_file():
    path = os.path.join(scratch, "probe_module.py")
    with open(path, "w") as f:
        f.write("VALUE = 42\n")
    c.upload_file(path)
    return c.submit(lambda: __import__("probe_module").VALUE, pure=False).result()


probe("upload_file", upload_file)


def task_stream():
    with get_task_stream(client=c) as ts:
        c.gather(c.map(inc, range(10), pure=False))
    return len(ts.data) > 0


probe("get_task_stream", task_stream)


def perf_report():
    path = os.path.join(scratch, "report.html")
    with performance_report(filename=path):
        c.gather(c.map(inc, range(10), pure=False))
    return os.path.getsize(path) > 1000


probe("performance_report", perf_report)
probe("profile", lambda: isinstance(c.profile(), dict))


def events():
    c.log_event("probe-topic", {"x": 1})
    # log_event is a one-way message: poll until the scheduler has it (bounded, like fire_and_forget_).
    for _ in range(100):
        n = len(c.get_events("probe-topic"))
        if n:
            return n
        time.sleep(0.1)
    return 0


probe("log_event_get_events", events)


def coordination():
    v = Variable("probe-var") if MODERN else Variable("probe-var", client=c)
    v.set(7)
    q = Queue("probe-q") if MODERN else Queue("probe-q", client=c)
    q.put(3)
    lock = Lock("probe-lock") if MODERN else Lock("probe-lock", client=c)
    with lock:
        pass
    ev = Event("probe-ev") if MODERN else Event("probe-ev", client=c)
    ev.set()
    sem = Semaphore(max_leases=2, name="probe-sem")
    with sem:
        pass
    return [v.get(), q.get(), ev.is_set()]


probe("variables_queues_locks_events_semaphores", coordination)


def actors():
    class Counter:
        n = 0

        def increment(self):
            self.n += 1
            return self.n

    counter = c.submit(Counter, actor=True).result()
    counter.increment().result()
    return counter.increment().result()


probe("actors", actors)
probe("metadata", lambda: (c.set_metadata("probe", 5), c.get_metadata("probe"))[1])
probe("who_has_has_what_nthreads", lambda: [len(c.has_what()), len(c.nthreads())])
probe("logs", lambda: [len(c.get_worker_logs()) > 0, len(c.get_scheduler_logs()) > 0])
probe("call_stack", lambda: isinstance(c.call_stack(), dict))


def cancel_retry():
    def fail():
        raise ValueError("expected")

    f = c.submit(fail, pure=False)
    wait(f)
    c.retry([f])
    g = c.submit(time.sleep, 30, pure=False)
    c.cancel([g])
    return [f.status in ("error", "pending", "erred"), g.cancelled()]


probe("cancel_retry", cancel_retry)
probe("story", lambda: len(c.story(c.submit(inc, 1).key)) >= 0)
probe("rebalance", lambda: c.rebalance() or True)
probe("replicate", lambda: (c.replicate(c.scatter([1, 2, 3])), True)[1])
probe("dump_cluster_state", lambda: (c.dump_cluster_state(os.path.join(scratch, "state")), True)[1])
probe("benchmark_hardware", lambda: sorted(c.benchmark_hardware().keys()))
probe("dashboard_link", lambda: c.dashboard_link)

# Refused by the default policy: code in the scheduler process, the cluster's lifecycle.
probe("run_on_scheduler", lambda: c.run_on_scheduler(os.getpid))


def scheduler_plugin():
    from distributed.diagnostics.plugin import SchedulerPlugin

    class SP(SchedulerPlugin):
        name = "probe-scheduler-plugin"

    if hasattr(c, "register_plugin"):
        c.register_plugin(SP())
    else:
        c.register_scheduler_plugin(SP())
    return True


probe("register_scheduler_plugin", scheduler_plugin)


def progress_bar():
    import contextlib
    import io

    from distributed import progress

    f = c.submit(inc, 1, pure=False)
    with contextlib.redirect_stdout(io.StringIO()):  # the text bar draws on stdout
        progress(f, multi=False)
    return f.result()


probe("progress", progress_bar, timeout=60)
probe("shutdown", lambda: c.shutdown() or True, timeout=60)

# The client keeps working after every refusal.
probe("still_works", lambda: c.submit(inc, 99, pure=False).result())
probe("restart", lambda: (c.restart(timeout=120), c.wait_for_workers(2, timeout=120), c.submit(inc, 1, pure=False).result())[2], timeout=240)


def retire():
    workers = sorted(c.scheduler_info()["workers"])
    retired = c.retire_workers(workers=[workers[0]], close_workers=True)
    # The nanny may start a new worker in its place; the retired address is gone either way.
    return [sorted(retired) == [workers[0]], c.submit(inc, 2, pure=False).result()]


probe("retire_workers", retire, timeout=120)
print("\n" + json.dumps(results))
sys.stdout.flush()
os._exit(0)
