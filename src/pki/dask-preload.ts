/**
 * A Dask preload written into scheduler and worker bundles (tls_reload.py).
 * Dask reads its CA file, certificate and key once, at start, and the
 * scheduler dials workers directly with them; so without this a running
 * scheduler cannot reach a worker that holds a certificate from a new CA, and
 * keeps presenting a certificate that a renewal replaced. With it, the files
 * certs rotate-ca and certs renew rewrite reach the running process within a
 * second (docs/runbook.md). Tested against both supported Dask versions
 * (test/pki/lifecycle-dask.test.ts).
 */
export const TLS_RELOAD_FILE = 'tls_reload.py';

export const TLS_RELOAD_PRELOAD = `"""scheduler-gateway tls_reload: keeps a running Dask scheduler, worker or nanny
on the TLS files its Security names (CA file, certificate, key).

    dask scheduler --preload tls_reload.py ...
    dask worker --preload tls_reload.py --preload-nanny tls_reload.py ...

Every second it looks at the files; when they changed and load together,
outgoing connections get a context built afresh from them (exact trust: a CA
removed from the file is no longer trusted), and each TLS listener's context
is extended in place (new CAs and the new certificate apply to new
connections; a CA removed from the file stays trusted by a listener until
the process restarts). Written by scheduler-gateway certs issue/renew.
"""
import logging
import os
import ssl

from tornado.ioloop import PeriodicCallback

# Under "distributed" so Dask's own logging configuration prints it.
logger = logging.getLogger("distributed.scheduler_gateway_tls_reload")
INTERVAL_MS = 1000


def _role(server):
    return "scheduler" if type(server).__name__ == "Scheduler" else "worker"


def _files(server):
    sec = server.security
    role = _role(server)
    return sec.tls_ca_file, getattr(sec, "tls_%s_cert" % role), getattr(sec, "tls_%s_key" % role)


def _stamp(files):
    out = []
    for f in files:
        try:
            st = os.stat(f)
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _listener_contexts(server):
    for listener in getattr(server, "listeners", []):
        ctx = getattr(listener, "server_args", {}).get("ssl_options")
        if isinstance(ctx, ssl.SSLContext):
            yield ctx


class TlsReloader:
    def __init__(self, server):
        self.server = server
        self.files = _files(server)
        self.stamp = _stamp(self.files)

    def check(self):
        stamp = _stamp(self.files)
        if stamp == self.stamp:
            return
        ca, cert, key = self.files
        try:
            fresh = self.server.security.get_connection_args(_role(self.server))["ssl_context"]
        except (OSError, ssl.SSLError, ValueError) as e:
            # A bundle is rewritten file by file: a certificate may be ahead of its key. Next tick.
            logger.warning("tls_reload: %s not usable yet (%s); retrying", cert, e)
            return
        self.server.connection_args["ssl_context"] = fresh
        for ctx in _listener_contexts(self.server):
            ctx.load_verify_locations(cafile=ca)
            ctx.load_cert_chain(cert, key)
        self.stamp = stamp
        logger.info("tls_reload: %s reloaded %s and %s", _role(self.server), ca, cert)


def dask_setup(server):
    ctx = getattr(server, "connection_args", {}).get("ssl_context")
    if not isinstance(ctx, ssl.SSLContext) or not all(_files(server)):
        logger.warning("tls_reload: %s has no TLS files to watch", type(server).__name__)
        return
    # Started (and stopped at close) by Dask with its own periodic callbacks.
    server.periodic_callbacks["scheduler-gateway-tls-reload"] = PeriodicCallback(TlsReloader(server).check, INTERVAL_MS)
`;
