"""The differential oracle: reads byte streams exactly as a Dask scheduler does.

Run with the interpreter of the Dask version under test (Debian's
/usr/bin/python3 for 2022.12.1, .venv-dask/bin/python for 2026.7.1). Reads
JSON lines {"id", "hex"} on stdin, each a byte stream as the gateway forwarded
it to the scheduler; writes one JSON line per stream:
  {"id", "messages": [{"f0": sha1 of frame 0, "shape", "maps", "nonMaps"}], "error": null | {...}}

Nothing here re-implements Dask: each stream is read by the installed
distributed's own TCP comm (comm/tcp.py TCP.read, unpack_frames) over a real
loopback connection, and each message decoded by its own from_frames /
protocol.core.loads with the scheduler's deserialize=False. Two hooks only
observe: from_frames is wrapped to see frame 0's bytes, and
distributed.protocol.pickle.loads is replaced by a recorder that returns a
marker instead of running the pickle (the oracle must not execute what the
fuzzer generates). The facts extracted from each decoded message are the
fields the gateway's policy reads, by the rules in src/wire/ops.ts.
"""
import asyncio
import hashlib
import json
import socket
import sys

import distributed
import distributed.comm.tcp as tcp
import distributed.protocol.pickle as dask_pickle
from distributed.comm.core import CommClosedError
from distributed.protocol.serialize import Serialized
from tornado.iostream import IOStream

FIELD_CAP = 1024  # ScanLimits.maxFieldBytes
MAX_TARGETS = 4096
ABSENT = "<absent>"


class PickledMarker:
    """What the recorder returns where Dask would have unpickled an object."""

    __slots__ = ()


def record_pickle(data, *args, **kwargs):
    return PickledMarker()


dask_pickle.loads = record_pickle

frame0_seen = []
real_from_frames = tcp.from_frames


async def observing_from_frames(frames, **kwargs):
    frame0_seen.append(bytes(frames[0]))
    return await real_from_frames(frames, **kwargs)


tcp.from_frames = observing_from_frames


def failed_resolving_enum(e):
    """The error came from resolving an __Enum__ map (msgpack_decode_default's import and getattr)."""
    if not isinstance(e, (AttributeError, ImportError)):
        return False
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "msgpack_decode_default" and "__Enum__" in frame.f_locals.get("obj", {}):
            return True
        tb = tb.tb_next
    return False


def contains(value, kind):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, kind):
            return True
        if isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
    return False


def short_str(v):
    return v if isinstance(v, str) and len(v.encode("utf-8")) <= FIELD_CAP else None


def field(d, key, convert):
    return convert(d[key]) if key in d else ABSENT


def name_value(v):
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return short_str(v)


def str_list(v):
    if v is None:
        return ABSENT
    if isinstance(v, tuple) and len(v) <= MAX_TARGETS and all(short_str(x) is not None for x in v):
        return list(v)
    return None


def inner_op(v):
    if not isinstance(v, dict):
        return None
    return short_str(v["op"]) if "op" in v else None


def map_facts(d):
    return {
        "op": field(d, "op", short_str),
        "address": field(d, "address", short_str),
        "worker": field(d, "worker", short_str),
        "client": field(d, "client", short_str),
        "name": field(d, "name", name_value),
        "status": field(d, "status", short_str),
        "workers": str_list(d["workers"]) if "workers" in d else ABSENT,
        "hosts": str_list(d["hosts"]) if "hosts" in d else ABSENT,
        "nanny": bool(d.get("nanny", False)),
        "reply": bool(d.get("reply", True)),
        "innerOp": field(d, "msg", inner_op),
        "key": d.get("key") is not None,
        "entries": len(d),
        "pickled": contains(d, PickledMarker),
        "serialized": contains(d, Serialized),
    }


def facts(msg):
    if isinstance(msg, dict):
        return {"shape": "map", "maps": [map_facts(msg)], "nonMaps": []}
    if isinstance(msg, (list, tuple)):
        maps, non_maps = [], []
        for element in msg:
            if isinstance(element, dict):
                maps.append(map_facts(element))
            else:
                non_maps.append(contains(element, PickledMarker))
        return {"shape": "array", "maps": maps, "nonMaps": non_maps}
    return {"shape": "scalar", "maps": [], "nonMaps": []}


async def read_stream(listener, data):
    loop = asyncio.get_running_loop()
    writer = socket.create_connection(listener.getsockname())
    reader, _ = await loop.sock_accept(listener)
    writer.setblocking(False)

    async def send():
        try:
            await loop.sock_sendall(writer, data)
        finally:
            writer.shutdown(socket.SHUT_WR)

    sending = asyncio.ensure_future(send())
    comm = tcp.TCP(IOStream(reader), "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", deserialize=False)
    comm.allow_offload = False
    messages, error = [], None
    while True:
        frame0_seen.clear()
        try:
            msg = await comm.read()
        except CommClosedError:
            break
        except BaseException as e:  # what the scheduler's comm raises on this stream
            error = {"at": len(messages), "type": type(e).__name__, "text": str(e)[:300], "enum": failed_resolving_enum(e)}
            break
        entry = facts(msg)
        entry["f0"] = hashlib.sha1(frame0_seen[0]).hexdigest()
        messages.append(entry)
    comm.abort()
    await sending
    writer.close()
    return messages, error


async def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    out = sys.stdout
    for line in sys.stdin:
        case = json.loads(line)
        messages, error = await read_stream(listener, bytes.fromhex(case["hex"]))
        out.write(json.dumps({"id": case["id"], "messages": messages, "error": error}) + "\n")
    out.flush()
    sys.stderr.write(f"distributed {distributed.__version__}\n")


asyncio.run(main())
