"""The bench's real Dask workload, run with Debian's /usr/bin/python3.

usage: workload.py ADDRESS TASKS ROUNDTRIPS SCATTER_MIB PASSES [CA CERT KEY]
Connects a Client (with a client certificate when CA/CERT/KEY are given),
waits for 2 workers, then times: TASKS small tasks submitted at once and
gathered, ROUNDTRIPS sequential submit->result, and a SCATTER_MIB scatter
followed by a gather checked byte for byte. The three parts run PASSES
times. Prints one JSON line: each part's best pass, and under "passes"
every pass (the bench reports the median over passes and their min-max).
"""
import json
import sys
import time

from distributed import Client
from distributed.security import Security


def inc(x):
    return x + 1


def main():
    address, tasks, roundtrips, scatter_mib, passes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    security = None
    if len(sys.argv) > 8:
        ca, cert, key = sys.argv[6:9]
        security = Security(tls_ca_file=ca, tls_client_cert=cert, tls_client_key=key, require_encryption=True)
    with Client(address, security=security, timeout=60) as client:
        client.wait_for_workers(2, timeout=60)
        # Warm up: import paths, worker threads, connection pools.
        client.gather(client.map(inc, range(50), pure=False))

        payload = bytes(range(256)) * (scatter_mib * 4096)
        runs = []
        for _ in range(passes):
            runs.append(one_pass(client, tasks, roundtrips, payload))

    best = {k: min(r[k] for r in runs) for k in runs[0]}
    print(json.dumps({**best, "total_s": sum(best.values()), "passes": runs}))


def one_pass(client, tasks, roundtrips, payload):
    t0 = time.perf_counter()
    results = client.gather(client.map(inc, range(tasks), pure=False))
    tasks_s = time.perf_counter() - t0
    assert sum(results) == sum(range(1, tasks + 1)), "wrong task results"

    t0 = time.perf_counter()
    for i in range(roundtrips):
        assert client.submit(inc, i, pure=False).result() == i + 1
    roundtrips_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    future = client.scatter(payload)
    back = client.gather(future)
    scatter_gather_s = time.perf_counter() - t0
    assert back == payload, "scatter/gather payload differs"
    del future
    return {"tasks_s": tasks_s, "roundtrips_s": roundtrips_s, "scatter_gather_s": scatter_gather_s}


if __name__ == "__main__":
    main()
