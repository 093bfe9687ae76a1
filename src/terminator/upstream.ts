/**
 * Dials the scheduler for one authenticated peer: TCP host:port or a Unix
 * socket, bounded by a connect timeout. One upstream connection per peer.
 */
import { connect, type Socket } from 'node:net';
import type { Endpoint } from '../config/spec.js';
import type { GatewayError } from '../errors/base.js';
import { terminatorError } from './errors.js';

export type UpstreamFailure = 'timeout' | 'refused' | 'error';

function unavailable(kind: UpstreamFailure, cause: string): GatewayError {
  return terminatorError('upstreamUnavailable', { kind, cause });
}

/** Resolves with a connected socket; rejects with GW_TERM_UPSTREAM_UNAVAILABLE (details: kind, cause). `abort` cancels a dial in flight. */
export function dialUpstream(target: Endpoint, timeoutMs: number, abort: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.path !== undefined
      ? connect({ path: target.path, allowHalfOpen: true })
      : connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const fail = (err: GatewayError) => {
      clearTimeout(timer);
      abort.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(unavailable('error', 'peer went away'));
    const timer = setTimeout(() => fail(unavailable('timeout', `no connection within ${timeoutMs} ms`)), timeoutMs);
    abort.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (e: NodeJS.ErrnoException) => fail(unavailable(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'refused' : 'error', e.code ?? e.message)));
    socket.once('connect', () => {
      clearTimeout(timer);
      abort.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
