/**
 * Dials the scheduler for one authenticated peer: TCP host:port or a Unix
 * socket, bounded by a connect timeout. One upstream connection per peer.
 */
import { connect, type Socket } from 'node:net';
import type { Endpoint } from '../config/spec.js';

export class UpstreamUnavailable extends Error {
  constructor(readonly kind: 'timeout' | 'refused' | 'error', readonly cause_: string) {
    super(`scheduler unreachable: ${cause_}`);
  }
}

/** Resolves with a connected socket; rejects with UpstreamUnavailable. `abort` cancels a dial in flight. */
export function dialUpstream(target: Endpoint, timeoutMs: number, abort: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = target.path !== undefined
      ? connect({ path: target.path, allowHalfOpen: true })
      : connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const fail = (err: UpstreamUnavailable) => {
      clearTimeout(timer);
      abort.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(new UpstreamUnavailable('error', 'peer went away'));
    const timer = setTimeout(() => fail(new UpstreamUnavailable('timeout', `no connection within ${timeoutMs} ms`)), timeoutMs);
    abort.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (e: NodeJS.ErrnoException) => fail(new UpstreamUnavailable(e.code === 'ECONNREFUSED' || e.code === 'ENOENT' ? 'refused' : 'error', e.code ?? e.message)));
    socket.once('connect', () => {
      clearTimeout(timer);
      abort.removeEventListener('abort', onAbort);
      socket.removeAllListeners('error');
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}
