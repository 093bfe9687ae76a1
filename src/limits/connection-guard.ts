/**
 * Connection caps for a TLS listener that terminates its own handshakes (the
 * dashboard on 8787, credentials on 8789): at most `maxConnections` open,
 * at most `maxPerAddress` from one source address (IPv6: one /64), counted
 * from accept to close, handshaking ones included. A connection over a cap
 * is closed before any TLS work (the peer sees a reset) and reported once
 * through `onRefused`.
 *
 * The guard puts itself in front of the server's own 'connection' listeners
 * (Node's TLS layer among them), so a refused socket never reaches TLS and
 * cannot surface again as a handshake error.
 */
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import { Counts, sourceOf } from './source-counts.js';

export type GuardRefusal = 'too_many_connections' | 'too_many_connections_from_address';

export interface GuardOptions {
  readonly maxConnections: number;
  readonly maxPerAddress: number;
  /** The flags that set the caps, named in refusal details. */
  readonly flags: { readonly maxConnections: string; readonly maxPerAddress: string };
  readonly onRefused: (reason: GuardRefusal, address: string | undefined, detail: string) => void;
}

export interface ConnectionGuard {
  /** Connections open now (accepted, not yet closed). */
  readonly open: number;
}

/** Install before listen(): wraps the 'connection' listeners present now. */
export function guardConnections(server: Server, o: GuardOptions): ConnectionGuard {
  const inner = server.listeners('connection') as Array<(s: Socket) => void>;
  server.removeAllListeners('connection');
  const bySource = new Counts();
  let open = 0;
  server.on('connection', (socket: Socket) => {
    const source = sourceOf(socket.remoteAddress);
    const refusal: [GuardRefusal, string] | undefined =
      open >= o.maxConnections ? ['too_many_connections', `all ${o.maxConnections} connections are taken (--${o.flags.maxConnections})`]
      : bySource.get(source) >= o.maxPerAddress ? ['too_many_connections_from_address', `${source} already holds ${o.maxPerAddress} connections (--${o.flags.maxPerAddress})`]
      : undefined;
    if (refusal) {
      socket.on('error', () => {});
      socket.destroy();
      return o.onRefused(refusal[0], socket.remoteAddress, refusal[1]);
    }
    open++;
    bySource.add(source);
    socket.once('close', () => {
      open--;
      bySource.remove(source);
    });
    for (const l of inner) l.call(server, socket);
  });
  return { get open() { return open; } };
}
