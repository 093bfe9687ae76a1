"""Parser-differential attacks on the gateway, over real mutual TLS.

argv: gateway host, port, CA, certificate, key, marker directory, the address
of a decoy listener that must never be dialled, the peer's own host. Speaks
Dask's framing by hand so that every byte is the attacker's choice. Each
attack's payload would, if the scheduler acted on it, create a file in the
marker directory (a pickle whose __reduce__ opens a file for writing), make
the scheduler dial the decoy, or register a worker at the decoy address.
Prints one JSON object: attack -> what came back ("closed" or the reply).
"""
import json
import os
import pickle
import socket
import ssl
import struct
import sys

host, port, ca, cert, key, markers, decoy, own_host = sys.argv[1:9]
port = int(port)


class Marker:
    """Unpickling this creates a file: proof that the scheduler ran attacker code."""

    def __init__(self, name):
        self.path = os.path.join(markers, name)

    def __reduce__(self):
        return (open, (self.path, "w"))


def fixstr(s):
    b = s.encode()
    return bytes([0xA0 | len(b)]) + b


def str8(s):
    b = s.encode()
    return b"\xd9" + bytes([len(b)]) + b


def str16(s):
    b = s.encode()
    return b"\xda" + struct.pack(">H", len(b)) + b


def str32(s):
    b = s.encode()
    return b"\xdb" + struct.pack(">I", len(b)) + b


def binv(b):
    return b"\xc6" + struct.pack(">I", len(b)) + b


def fixmap(*pairs):
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)


def array(*items):
    return bytes([0x90 | len(items)]) + b"".join(items)


def message(frames, L=None):
    n = len(frames)
    total = 8 + 8 * n + sum(map(len, frames))
    prelude = struct.pack("<QQ", total if L is None else L, n) + b"".join(struct.pack("<Q", len(f)) for f in frames)
    return prelude + b"".join(frames)


HANDSHAKE = message([fixmap((fixstr("compression"), b"\xc0"), (fixstr("python"), array(b"\x03", b"\x0b", b"\x02")), (fixstr("pickle-protocol"), b"\x05"))])


def connect():
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    s = ctx.wrap_socket(socket.create_connection((host, port), timeout=10))
    s.settimeout(5)
    return s


def read_all(s):
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data, "closed"
            data += chunk
    except (socket.timeout, TimeoutError):
        return data, "open"
    except (ssl.SSLError, ConnectionError) as e:
        return data, f"closed ({type(e).__name__})"


def frame0s(data):
    """The frame 0s of the framed messages in data."""
    out = []
    while len(data) >= 16:
        L, n = struct.unpack_from("<QQ", data)
        lens = struct.unpack_from(f"<{n}Q", data, 16)
        start = 16 + 8 * n
        out.append(data[start : start + lens[0]])
        data = data[start + sum(lens) :]
    return out


def attempt(name, *messages):
    s = connect()
    s.sendall(HANDSHAKE + b"".join(messages))
    data, state = read_all(s)
    s.close()
    import msgpack

    replies = []
    for f0 in frame0s(data)[1:]:  # after the scheduler's handshake
        try:
            replies.append(repr(msgpack.unpackb(f0, raw=False, strict_map_key=False))[:300])
        except Exception as e:
            replies.append(f"undecodable: {e}")
    return {"state": state, "replies": replies}


def pickled_subheader(marker):
    import msgpack

    return msgpack.packb({"pickled-obj": pickle.dumps(Marker(marker), protocol=4), "num-sub-frames": 0}, use_bin_type=True)


evil = pickle.dumps(Marker("run_function"), protocol=4)
results = {}

# 1. Hidden op: "op" twice, the second in str16. Python keeps the last: run_function.
results["hidden_op"] = attempt("hidden_op", message([fixmap((fixstr("op"), fixstr("identity")), (str16("op"), fixstr("run_function")), (fixstr("function"), binv(evil)), (fixstr("reply"), b"\xc3"))]))

# 2. Hidden op in str32 only (no duplicate): the gateway must read it as run_function.
results["op_in_str32"] = attempt("op_in_str32", message([fixmap((str32("op"), fixstr("run_function")), (fixstr("function"), binv(pickle.dumps(Marker("op_in_str32"), protocol=4))), (fixstr("reply"), b"\xc3"))]))

# 3. Hidden placeholder: a __Pickled__ key in str32 inside an op that may carry none.
results["hidden_placeholder"] = attempt("hidden_placeholder", message([fixmap((fixstr("op"), fixstr("identity")), (fixstr("x"), fixmap((str32("__Pickled__"), b"\x01"))), (fixstr("reply"), b"\xc3")), pickled_subheader("hidden_placeholder")]))

# 4. A placeholder whose value is hidden by a duplicate key in a nested map (Python decodes both values).
results["dropped_placeholder"] = attempt("dropped_placeholder", message([fixmap((fixstr("op"), fixstr("identity")), (fixstr("x"), fixmap((fixstr("k"), fixmap((fixstr("__Pickled__"), b"\x01"))), (str8("k"), b"\x00"))), (fixstr("reply"), b"\xc3")), pickled_subheader("dropped_placeholder")]))

# 5. Desynchronised framing: L covers frame 0 only; the trailing frame is a complete run_function message,
# which a 2022.12 reader would take as the next message. With L rewritten it stays an opaque frame.
hidden = message([fixmap((fixstr("op"), fixstr("run_function")), (fixstr("function"), binv(pickle.dumps(Marker("desync"), protocol=4))), (fixstr("reply"), b"\xc2"))])
f0 = fixmap((fixstr("op"), fixstr("identity")), (fixstr("reply"), b"\xc3"))
results["desync_short_L"] = attempt("desync_short_L", message([f0, hidden], L=8 + 16 + len(f0)))

# 6. L that ends inside a frame: no Dask writer does that.
results["desync_L_inside_frame"] = attempt("desync_L_inside_frame", message([f0, hidden], L=8 + 16 + len(f0) + 5))

# 7. Hidden broadcast target: "workers" twice; the last (str16) names the decoy.
run = fixmap((fixstr("op"), fixstr("run")), (fixstr("function"), binv(pickle.dumps(len))), (fixstr("args"), binv(pickle.dumps(((),)))), (fixstr("wait"), b"\xc3"))
results["hidden_broadcast_target"] = attempt("hidden_broadcast_target", message([fixmap((fixstr("op"), fixstr("broadcast")), (fixstr("msg"), run), (fixstr("workers"), array()), (str16("workers"), array(fixstr(decoy) if len(decoy) < 32 else str8(decoy))), (fixstr("reply"), b"\xc3"))]))

# 8. Hidden inner op: broadcast's msg carries "op" twice; the last is terminate.
inner = fixmap((fixstr("op"), fixstr("run")), (str8("op"), fixstr("terminate")))
results["hidden_inner_op"] = attempt("hidden_inner_op", message([fixmap((fixstr("op"), fixstr("broadcast")), (fixstr("msg"), inner), (fixstr("reply"), b"\xc3"))]))

# 9. Hidden address (worker certificate): register-worker with the peer's own address, then the decoy in str16.
own = f"tls://{own_host}:45678"
results["hidden_address"] = attempt("hidden_address", message([fixmap((fixstr("op"), str8("register-worker")), (fixstr("address"), str8(own)), (str16("address"), str8(decoy)), (fixstr("name"), fixstr("rogue")), (fixstr("reply"), b"\xc2"))]))

# 10. An address spelled in str32 that is not the peer's: pinning must read it.
results["address_in_str32"] = attempt("address_in_str32", message([fixmap((fixstr("op"), str8("register-worker")), (str32("address"), str8(decoy)), (fixstr("name"), fixstr("rogue")), (fixstr("reply"), b"\xc2"))]))

results["markers"] = sorted(os.listdir(markers))
print("\n" + json.dumps(results))
